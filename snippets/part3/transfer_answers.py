# --8<-- [start:imports]
import copy

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 与正文相同的数据划分、网络与三种做法；区别只有画布大小 CANVAS（8 表示数字居中，不平移）
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
X_tr = torch.tensor(X_tr / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
X_te = torch.tensor(X_te / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)


def place(images: torch.Tensor, gen: torch.Generator, canvas: int) -> torch.Tensor:
    n = len(images)
    offset = torch.randint(0, canvas - 8 + 1, (n, 2), generator=gen)
    rows, cols = offset[:, :1] + torch.arange(8), offset[:, 1:] + torch.arange(8)
    out = torch.zeros(n, 1, canvas, canvas)
    out[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]] = images[:, 0]
    return out


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 16), nn.MaxPool2d(2), conv_bn_relu(16, 32), nn.MaxPool2d(2),
            conv_bn_relu(32, 64), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def setting(canvas: int) -> dict:
    """按画布大小准备数据，并在数字 0–4 上预训练（与正文的 pretrain 一段相同）。"""
    gen = torch.Generator().manual_seed(0)
    src_x, src_y = X_tr[y_tr < 5], y_tr[y_tr < 5].to(device)
    src_test = (place(X_te[y_te < 5], gen, canvas).to(device), y_te[y_te < 5].to(device))
    s = {"pool_x": place(X_tr[y_tr >= 5], gen, canvas).to(device), "pool_y": (y_tr[y_tr >= 5] - 5).to(device),
         "test": (place(X_te[y_te >= 5], gen, canvas).to(device), (y_te[y_te >= 5] - 5).to(device))}
    torch.manual_seed(0)
    net = SmallCNN().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(10):
        net.train()
        x_epoch = place(src_x, gen, canvas).to(device)
        perm = torch.randperm(len(src_y), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(x_epoch[idx]), src_y[idx.to(device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
    s["pretrained"], s["src_acc"] = net, accuracy(net, *src_test)
    return s


STEPS = {"特征提取": 40, "微调": 40, "从头训练": 80}


def run(s: dict, method: str, k: int, seed: int, bn_eval: bool = True) -> tuple[float, nn.Module]:
    """正文的 sample + build + run 合在一起；bn_eval=False 时特征提取忘了把骨干切到 eval。"""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(s["pool_y"].cpu() == c).flatten()[
        torch.randperm(int((s["pool_y"] == c).sum()), generator=gen)[:k]] for c in range(5)]).to(device)
    x, y = s["pool_x"][idx], s["pool_y"][idx]
    torch.manual_seed(seed)
    if method == "从头训练":
        model = SmallCNN().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        model = copy.deepcopy(s["pretrained"])
        model.head = nn.Linear(64, 5).to(device)
        if method == "特征提取":
            model.features.requires_grad_(False)
            opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        else:
            opt = torch.optim.Adam([{"params": model.features.parameters(), "lr": 1e-3},
                                    {"params": model.head.parameters(), "lr": 1e-2}])
    for _ in range(STEPS[method]):
        model.train()
        if method == "特征提取" and bn_eval:
            model.features.eval()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(model, *s["test"]), model
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 容差 ±0.15：换预训练种子 0、1、2 时，各做法的均值最多相差约 0.06，单个种子约 0.1
centered = setting(canvas=8)  # 数字居中，不平移
print(f"居中的数字：源任务测试准确率 {centered['src_acc']:.3f}")
result = {m: np.array([run(centered, m, k=2, seed=s)[0] for s in range(5)])
          for m in ["特征提取", "微调", "从头训练"]}
for m, a in result.items():
    print(f"k = 2，{m}：{a.mean():.3f} ± {a.std(ddof=1):.3f}  {np.round(a, 3).tolist()}")
fe, ft, sc = result["特征提取"], result["微调"], result["从头训练"]
assert sc.mean() > ft.mean() > fe.mean()  # 居中时从头训练的均值最高，特征提取最低
assert (sc > fe).all()  # 从头训练在每个种子上都胜过特征提取
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 容差 ±0.15：理由同练习 1；运行均值的改变取决于预训练出的骨干
stats = {}
for bn_eval in [True, False]:
    accs = []
    for seed in range(5):
        a, model = run(centered, "特征提取", k=2, seed=seed, bn_eval=bn_eval)
        accs.append(a)
    bn_new, bn_old = model.features[4][1], centered["pretrained"].features[4][1]  # 种子 4 的最后一个 BN
    moved = (bn_new.running_mean - bn_old.running_mean).abs().max().item()
    frozen_weights = all(torch.equal(a, b) for a, b in zip(model.features.parameters(),
                                                            centered["pretrained"].features.parameters()))
    stats[bn_eval] = np.array(accs)
    name = "骨干切到 eval" if bn_eval else "忘了 eval"
    print(f"{name}：k = 2 测试准确率 {np.mean(accs):.3f} ± {np.std(accs, ddof=1):.3f}；"
          f"最后一个 BN 的运行均值最多改变 {moved:.3f}；骨干的参数没变 {frozen_weights}")
    assert frozen_weights  # requires_grad_(False) 确实冻住了权重
    assert (moved == 0) if bn_eval else (moved > 0.05)  # 但冻不住 BN 的运行统计量
assert abs(stats[True].mean() - stats[False].mean()) < 0.05  # 准确率的差别不大
# --8<-- [end:ex2]


# --8<-- [start:ex3]
class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18_trunk(small_input: bool, width: int = 64, in_channels: int = 1) -> list[tuple[str, nn.Module]]:
    """正文 ResNet18 的茎与 4 个阶段，按顺序列出（只看形状，不要 fc）。"""
    if small_input:
        stem = [("茎 3×3 卷积", nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False))]
    else:
        stem = [("茎 7×7 卷积/2", nn.Conv2d(in_channels, width, 7, 2, padding=3, bias=False)),
                ("最大池化/2", nn.MaxPool2d(3, 2, padding=1))]
    stages, c_in = [], width
    for stage in range(4):
        c = width * 2**stage
        stages.append((f"阶段 {stage + 1}", nn.Sequential(BasicBlock(c_in, c, 1 if stage == 0 else 2),
                                                          BasicBlock(c, c))))
        c_in = c
    return stem + stages


sizes = {}
for small_input in [False, True]:
    with torch.device("meta"):
        x = torch.empty(1, 1, 8, 8)
        row = []
        for name, layer in resnet18_trunk(small_input):
            x = layer.eval()(x)  # eval：BN 用运行统计量，1×1 的单张图也能前向
            row.append(f"{name} {x.shape[-2]}×{x.shape[-1]}")
    sizes[small_input] = row
    print(("小图配置：" if small_input else "ImageNet 配置：") + " -> ".join(row))
assert sizes[False][-4:] == ["阶段 1 2×2", "阶段 2 1×1", "阶段 3 1×1", "阶段 4 1×1"]
assert sizes[True] == ["茎 3×3 卷积 8×8", "阶段 1 8×8", "阶段 2 4×4", "阶段 3 2×2", "阶段 4 1×1"]

# 1×1 的特征图四周补 0 后做 3×3 卷积：9 个权重中只有中心那个碰到真实数据
w = torch.randn(1, 1, 3, 3, dtype=torch.float64)
x1 = torch.randn(1, 1, 1, 1, dtype=torch.float64)
assert torch.allclose(F.conv2d(x1, w, padding=1), x1 * w[0, 0, 1, 1])
# --8<-- [end:ex3]
