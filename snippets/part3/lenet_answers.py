# --8<-- [start:imports]
from collections import OrderedDict

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

X, y = load_digits(return_X_y=True)
X_tr8, X_te8, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)


def to_32(a) -> torch.Tensor:
    img = torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
    return F.interpolate(img, scale_factor=4, mode="bilinear", align_corners=False)


mean, std = to_32(X_tr8).mean().item(), to_32(X_tr8).std().item()
X_tr, X_te = ((to_32(X_tr8) - mean) / std).to(device), ((to_32(X_te8) - mean) / std).to(device)
y_tr, y_te = torch.tensor(y_tr).to(device), torch.tensor(y_te).to(device)
background = (0 - mean) / std


def lenet5() -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("C1", nn.Conv2d(1, 6, kernel_size=5)), ("relu1", nn.ReLU()), ("S2", nn.MaxPool2d(2)),
        ("C3", nn.Conv2d(6, 16, kernel_size=5)), ("relu3", nn.ReLU()), ("S4", nn.MaxPool2d(2)),
        ("C5", nn.Conv2d(16, 120, kernel_size=5)), ("relu5", nn.ReLU()), ("flatten", nn.Flatten()),
        ("F6", nn.Linear(120, 84)), ("relu6", nn.ReLU()), ("OUT", nn.Linear(84, 10)),
    ]))


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m), value=background)
    off = torch.randint(0, 2 * m + 1, (n, 2), generator=gen).to(x.device)
    rows = off[:, 0, None] + torch.arange(h, device=x.device)
    cols = off[:, 1, None] + torch.arange(w, device=x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return padded[idx, 0, rows[:, :, None], cols[:, None, :]][:, None]


def train(seed: int, epochs: int = 12, batch: int = 64, max_shift: int = 2) -> nn.Module:
    """与正文的 train 相同，只是不打印、只返回模型。"""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = lenet5().to(device)
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    steps = epochs * ((len(X_tr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X_tr), generator=gen).to(device)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            xb = random_shift(X_tr[idx], max_shift, gen) if max_shift else X_tr[idx]
            loss = F.cross_entropy(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()
# --8<-- [end:imports]

# --8<-- [start:ex1]
class ScaledTanh(nn.Module):
    """LeCun 等（1998）的激活：f(a) = 1.7159 tanh(2a/3)。"""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(2 * a / 3)


class Subsampling(nn.Module):
    """原始的 S2、S4：2×2 窗口内 4 个值求和，乘以每个通道一个可训练的系数，再加一个可训练的偏置。"""

    def __init__(self, channels: int):
        super().__init__()
        self.coef = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.avg_pool2d(x, 2) * 4                        # 窗口内求和
        return total * self.coef[:, None, None] + self.bias[:, None, None]


class PartialC3(nn.Module):
    """与正文相同：按连接表，每个输出通道只读几个输入通道。"""

    def __init__(self, table: list[list[int]]):
        super().__init__()
        self.table = table
        self.convs = nn.ModuleList(nn.Conv2d(len(s), 1, 5) for s in table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x[:, s]) for conv, s in zip(self.convs, self.table)], dim=1)


class RBFOutput(nn.Module):
    """输出层：y_i = sum_j (x_j - w_ij)^2，越小越像第 i 类。w 是手工设定的 ±1 位图，不训练；
    这里用随机的 ±1 代替论文中 7×12 的字符位图，只为检查形状。"""

    def __init__(self, d: int = 84, classes: int = 10):
        super().__init__()
        self.register_buffer("w", torch.randint(0, 2, (classes, d)).float() * 2 - 1)   # buffer：不是参数

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x[:, None, :] - self.w) ** 2).sum(dim=2)


C3_TABLE = ([[j, j + 1, j + 2] for j in range(6)] + [[j, j + 1, j + 2, j + 3] for j in range(6)]
            + [[j, j + 1, j + 3, j + 4] for j in range(3)] + [[0, 1, 2, 3, 4, 5]])
C3_TABLE = [sorted(i % 6 for i in s) for s in C3_TABLE]
original = nn.Sequential(OrderedDict([
    ("C1", nn.Conv2d(1, 6, 5)), ("act1", ScaledTanh()),
    ("S2", Subsampling(6)), ("act2", ScaledTanh()),
    ("C3", PartialC3(C3_TABLE)), ("act3", ScaledTanh()),
    ("S4", Subsampling(16)), ("act4", ScaledTanh()),
    ("C5", nn.Conv2d(16, 120, 5)), ("act5", ScaledTanh()), ("flatten", nn.Flatten()),
    ("F6", nn.Linear(120, 84)), ("act6", ScaledTanh()),
    ("OUT", RBFOutput()),
])).to(device)

formula = {"C1": 6 * (25 + 1), "S2": 6 * 2, "C3": sum(len(s) * 25 + 1 for s in C3_TABLE),
           "S4": 16 * 2, "C5": 120 * (16 * 25 + 1), "F6": 84 * (120 + 1), "OUT": 0}
print("层   公式    构造")
for name, n in formula.items():
    built = sum(p.numel() for p in getattr(original, name).parameters())
    print(f"{name:4s} {n:6d} {built:7d}")
    assert n == built
total = sum(p.numel() for p in original.parameters())
print(f"合计 {sum(formula.values()):6d} {total:7d}（RBF 的 {original.OUT.w.numel()} 个固定值不计）")
print(f"输出形状 {tuple(original(torch.zeros(2, 1, 32, 32, device=device)).shape)}")
assert total == sum(formula.values()) == 60000
assert 61706 - 60000 == (2416 - 1516) - (12 + 32) + 850       # 与正文的现代写法相差的来源
# --8<-- [end:ex1]

# --8<-- [start:ex2]
descr = " ".join(load_digits().DESCR.split())                # 数据集自带的说明，合并换行
start = descr.index("32x32 bitmaps")
print(descr[start:descr.index("0..16.", start) + 6])
assert "32x32 bitmaps are divided into nonoverlapping blocks of 4x4" in descr

net32, net28 = lenet5().to(device), lenet5()
net28.C1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)           # 28×28 输入，C1 补 2 圈：28 + 4 - 5 + 1 = 28
net28 = net28.to(device)
h32, h28 = torch.zeros(1, 1, 32, 32, device=device), torch.zeros(1, 1, 28, 28, device=device)
same_shapes = True
for a, b in zip(net32.children(), net28.children()):
    h32, h28 = a(h32), b(h28)
    same_shapes &= h32.shape == h28.shape
print(f"C1 之后各层形状相同：{same_shapes}；参数量 {sum(p.numel() for p in net28.parameters())}")
assert same_shapes and sum(p.numel() for p in net28.parameters()) == 61706

ramp = torch.arange(8.0).reshape(1, 1, 1, 8)                  # 8 个不同的值，看每个原像素变成几个像素
for size in [32, 28]:
    up = F.interpolate(ramp, size=(1, size), mode="nearest")
    widths = torch.bincount(up.flatten().long(), minlength=8).tolist()
    print(f"8 -> {size}（最近邻）：每个原像素的宽度 {widths}")
    assert sum(widths) == size and (len(set(widths)) == 1) == (size == 32)
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def shift8(a, dx: int, dy: int) -> torch.Tensor:
    """在 8×8 的原图上右移 dx、下移 dy 个像素，移出的部分丢掉，空出的补 0。"""
    img = F.pad(torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8), (1, 1, 1, 1))
    return img[..., 1 - dy:9 - dy, 1 - dx:9 - dx].reshape(-1, 64)


# 2.4 节的 MLP：同样的划分，在 8×8 原图上逐像素标准化，64-256-64-10，Adam，10 轮
mu, sigma = X_tr8.mean(axis=0), X_tr8.std(axis=0)
sigma[sigma == 0] = 1.0
mu, sigma = torch.tensor(mu, dtype=torch.float32), torch.tensor(sigma, dtype=torch.float32)
torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt = torch.optim.Adam(mlp.parameters(), lr=2e-3)
gen = torch.Generator().manual_seed(0)
X_mlp = ((torch.tensor(X_tr8, dtype=torch.float32) - mu) / sigma).to(device)
for _ in range(10):
    perm = torch.randperm(len(X_mlp), generator=gen).to(device)
    for i in range(0, len(perm), 64):
        idx = perm[i:i + 64]
        loss = F.cross_entropy(mlp(X_mlp[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
mlp.eval()

models = {"LeNet（训练时平移）": train(seed=0), "LeNet（不平移）": train(seed=0, max_shift=0)}
results = {}
print("平移 (dx, dy) | LeNet（训练时平移） | LeNet（不平移） | MLP")
for dx, dy in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1)]:
    a8 = shift8(X_te8, dx, dy)
    with torch.no_grad():
        accs = [(m(((to_32(a8) - mean) / std).to(device)).argmax(1) == y_te).float().mean().item()
                for m in models.values()]
        accs.append((mlp(((a8 - mu) / sigma).to(device)).argmax(1) == y_te).float().mean().item())
    results[(dx, dy)] = accs
    print(f"{str((dx, dy)):13s} | {accs[0]:18.3f} | {accs[1]:14.3f} | {accs[2]:.3f}")
one_px = [(1, 0), (-1, 0), (0, 1), (0, -1)]
avg = [sum(results[s][k] for s in one_px) / 4 for k in range(3)]
print(f"4 个方向各平移 1 像素的平均 | {avg[0]:.3f} | {avg[1]:.3f} | {avg[2]:.3f}")
assert all(min(acc) >= 0.96 for acc in [results[(0, 0)]])             # 不平移：三者都在 0.96 以上
assert results[(0, 0)][0] > results[(0, 0)][2]                        # 不平移：LeNet（训练时平移）高于 MLP
assert all(results[s][0] > max(results[s][1:]) for s in results if s != (0, 0))   # 每个平移下它都最高
assert avg[0] > avg[1] > avg[2]                                       # 平均：训练时平移 > 不平移 > MLP
assert all(results[s][k] < results[(0, 0)][k] - 0.05 for s in one_px for k in range(3))   # 平移 1 像素都明显下降
# --8<-- [end:ex3]
