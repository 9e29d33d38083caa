# --8<-- [start:imports]
from fractions import Fraction

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def count_macs(model: nn.Module, in_shape: tuple) -> list:
    """与正文相同：前向钩子逐层数一个样本的乘加，模型和输入都在 meta 设备上。"""
    rows = []

    def hook(name):
        def record(layer, inputs, out):
            if isinstance(layer, nn.Conv2d):
                per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
                rows.append((name, layer, out[0].numel() * per_output))
            else:
                rows.append((name, layer, layer.in_features * layer.out_features))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.empty(1, *in_shape, device="meta"))
    for h in handles:
        h.remove()
    return rows


def conv_bn_relu(cin: int, cout: int, k: int, s: int = 1, groups: int = 1) -> list:
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def ds_block(cin: int, cout: int, s: int) -> list:
    return conv_bn_relu(cin, cin, 3, s, groups=cin) + conv_bn_relu(cin, cout, 1)


V1_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 代数：k = 3 时节省的倍数 1 / (1/N + 1/9) = 9N / (N + 9) < 9，且 >= 8 当且仅当 N >= 72
first = next(N for N in range(1, 10_000) if 1 / (Fraction(1, N) + Fraction(1, 9)) >= 8)
print(f"节省 >= 8 倍所需的最小 N = {first}；N 趋于无穷时趋于 9 倍")
assert first == 72 and all(1 / (Fraction(1, N) + Fraction(1, 9)) < 9 for N in range(1, 5000))

# MobileNetV1 的 13 个可分离层，逐层与「同样输入输出的标准 3×3 卷积」比较（钩子计数）
H, cin, in_range = 112, 32, 0
for i, (cout, s) in enumerate(V1_CFG, start=1):
    with torch.device("meta"):
        sep = nn.Sequential(nn.Conv2d(cin, cin, 3, s, 1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False))
        std = nn.Conv2d(cin, cout, 3, s, 1, bias=False)
    saving = Fraction(sum(m for *_, m in count_macs(std, (cin, H, H))), sum(m for *_, m in count_macs(sep, (cin, H, H))))
    assert saving == 1 / (Fraction(1, cout) + Fraction(1, 9))
    in_range += 8 <= saving < 9
    if i in (1, 2, 13):
        print(f"第 {i:2d} 层：{cin:4d} -> {cout:4d}，节省 {float(saving):.2f} 倍")
    cin, H = cout, H // s
print(f"13 层中节省在 8 到 9 倍之间的有 {in_range} 层")
assert in_range == 12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# MobileNetV2 论文图 1 的实验：二维螺旋线嵌入 n 维（随机矩阵 T），过 ReLU，问还能不能还原
gen = torch.Generator().manual_seed(0)
theta = torch.linspace(0.1, 4 * torch.pi, 500, dtype=torch.float64, device=device)
spiral = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], dim=1)     # (500, 2)
print("n    线性（无 ReLU）最大误差  ReLU 后无法还原的点（模拟）  公式 (n+1)/2^n")
lost_by_n = []
for n in [2, 3, 5, 10, 15, 30]:
    T = torch.randn(200, n, 2, generator=gen, dtype=torch.float64).to(device)  # 200 个随机的嵌入矩阵
    Z = torch.einsum("tnd,pd->tpn", T, spiral)                              # (200, 500, n)：T x
    back = torch.einsum("tdn,tpn->tpd", torch.linalg.pinv(T), Z)            # 线性：T⁺ T x
    lin_err = (back - spiral).abs().max().item()
    # ReLU(Tx) 只保留 t_i·x > 0 的那些坐标；这些行的秩为 2（至少 2 行，随机行几乎必然不共线）才能解出 x
    lost = ((Z > 0).sum(dim=2) < 2).double().mean().item()
    formula = (n + 1) / 2 ** n
    lost_by_n.append(lost)
    print(f"{n:<5}{lin_err:.1e}                  {lost:.4f}                        {formula:.4f}")
    assert lin_err < 1e-10 and abs(lost - formula) < 0.02
assert all(a >= b for a, b in zip(lost_by_n, lost_by_n[1:]))  # 维度越高，丢失越少
assert lost_by_n[0] > 0.5 and lost_by_n[-2] < 0.01 and lost_by_n[-1] == 0
# --8<-- [end:ex2]

# --8<-- [start:ex3]
M = 4
torch.manual_seed(0)
dw = nn.Conv2d(M, M, 3, padding=1, groups=M, bias=False).to(device)
pw = nn.Conv2d(M, M, 1, bias=False).to(device)
x = torch.randn(1, M, 6, 6, device=device, requires_grad=True)


def dependence(f) -> torch.Tensor:
    """D[c, m] = 输出通道 c 对输入通道 m 的梯度范数：为 0 表示 c 完全不依赖 m。"""
    D = torch.zeros(M, M)
    for c in range(M):
        (g,) = torch.autograd.grad(f(x)[:, c].sum(), x)
        D[c] = g[0].abs().sum(dim=(1, 2)).cpu()
    return D


D_dw = dependence(lambda t: dw(dw(dw(t))))              # 连续三层 depthwise
D_ds = dependence(lambda t: pw(dw(t)))                  # depthwise + pointwise
print("三层 depthwise：输出通道 c 依赖的输入通道\n", (D_dw > 0).int())
print("depthwise + pointwise：\n", (D_ds > 0).int())
assert torch.equal(D_dw > 0, torch.eye(M, dtype=torch.bool))   # 只依赖自己的通道
assert (D_ds > 0).all()                                         # 每个输出都混合了所有输入通道
# --8<-- [end:ex3]

# --8<-- [start:ex4]
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
to_img = lambda a: torch.tensor(a, dtype=torch.float32).view(-1, 1, 8, 8).div(16).to(device)
X_tr, X_te = to_img(X_tr), to_img(X_te)
y_tr, y_te = torch.tensor(y_tr, device=device), torch.tensor(y_te, device=device)


def small_net(separable: bool, width: int = 1) -> nn.Sequential:
    """正文的 small_net，多一个参数 width：除第一层外每层通道数乘以 width。"""
    layers, cin = conv_bn_relu(1, 16, 3), 16
    for cout, s in [(32, 1), (64, 2), (64, 1)]:
        layers += ds_block(cin, cout * width, s) if separable else conv_bn_relu(cin, cout * width, 3, s)
        cin = cout * width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def train(model: nn.Module, seed: int, epochs: int = 10, batch: int = 256) -> float:
    """与正文的 train 相同的设置：Adam 0.01，批量 256，10 轮。"""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X_tr), generator=gen).to(device)
        for i in range(0, len(X_tr), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(X_te).argmax(1) == y_te).float().mean().item()


# 容差 ±0.02：正文 small_net 在种子 0–9 上准确率的标准差约 0.005，取 3√2 倍
cost, acc = {}, {}
for name, w in [("宽度 ×1", 1), ("宽度 ×2", 2)]:
    with torch.device("meta"):
        cost[name] = sum(m for *_, m in count_macs(small_net(True, w), (1, 8, 8)))
    torch.manual_seed(0)
    acc[name] = train(small_net(True, w).to(device), seed=0)
    print(f"MobileNet 式，{name}：乘加 {cost[name]}，测试准确率 {acc[name]:.3f}")
with torch.device("meta"):
    plain = sum(m for *_, m in count_macs(small_net(False), (1, 8, 8)))
print(f"宽度 ×2 的乘加是宽度 ×1 的 {cost['宽度 ×2'] / cost['宽度 ×1']:.2f} 倍，是普通 CNN 的 {cost['宽度 ×2'] / plain:.2f} 倍")
assert cost["宽度 ×1"] == 163_968                        # 与正文相同的网络
assert 3 < cost["宽度 ×2"] / cost["宽度 ×1"] < 4 and cost["宽度 ×2"] < plain / 2
assert min(acc.values()) >= 0.96 and abs(acc["宽度 ×2"] - acc["宽度 ×1"]) <= 0.02
# --8<-- [end:ex4]
