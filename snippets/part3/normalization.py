# --8<-- [start:setup]
import copy

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Polygon
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机输入在 CPU 上生成再搬到 device


def randn(*shape: int) -> torch.Tensor:
    """float64 的标准正态随机张量（CPU 上用 gen 生成，结果与设备无关）。"""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device)
# --8<-- [end:setup]


# --8<-- [start:bn-scratch]
class BatchNorm2dScratch(nn.Module):
    """按公式实现的批归一化：输入 (N, C, H, W)，每个通道一组 μ、σ²、γ、β。"""

    def __init__(self, num_channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_channels))    # 缩放 γ，形状 (C,)
        self.beta = nn.Parameter(torch.zeros(num_channels))    # 平移 β，形状 (C,)
        self.register_buffer("running_mean", torch.zeros(num_channels))  # 运行均值
        self.register_buffer("running_var", torch.ones(num_channels))    # 运行方差

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:                                      # 训练：用这一批的统计量
            mean = x.mean(dim=(0, 2, 3))                       # μ_B，(C,)
            var = x.var(dim=(0, 2, 3), correction=0)           # σ²_B：有偏，除以 m
            m = x.numel() // x.shape[1]                        # 每个通道的元素数 m = N·H·W
            with torch.no_grad():                              # 运行统计量不参与求导
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * m / (m - 1))  # 无偏
        else:                                                  # 评估：用运行统计量
            mean, var = self.running_mean, self.running_var
        shape = (1, -1, 1, 1)                                  # (C,) 沿 N、H、W 广播
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self.gamma.view(shape) * x_hat + self.beta.view(shape)
# --8<-- [end:bn-scratch]


# --8<-- [start:bn-check]
C = 3
ours = BatchNorm2dScratch(C).double().to(device)
ref = nn.BatchNorm2d(C).double().to(device)                   # 默认 eps=1e-5，momentum=0.1
gamma, beta = randn(C), randn(C)                               # 随机的 γ、β，检查仿射部分
with torch.no_grad():
    ours.gamma.copy_(gamma), ours.beta.copy_(beta)
    ref.weight.copy_(gamma), ref.bias.copy_(beta)
rv_biased = torch.ones(C, dtype=torch.float64, device=device)  # 对照：若用有偏方差更新运行方差

print("步 | 批均值[0] | running_mean[0] | 批方差[0](有偏) | running_var[0] | 与 PyTorch 的最大误差 < 1e-10")
for step in range(5):
    x = randn(8, C, 5, 5) * (1 + step) + 2 * step              # 每步的分布都在变：均值 2·step，标准差 1+step
    y_ours, y_ref = ours(x), ref(x)                            # 两者都处于训练模式
    var_b = x.var(dim=(0, 2, 3), correction=0)
    rv_biased = 0.9 * rv_biased + 0.1 * var_b
    err = max((y_ours - y_ref).abs().max().item(),
              (ours.running_mean - ref.running_mean).abs().max().item(),
              (ours.running_var - ref.running_var).abs().max().item())
    print(f"{step:2d} | {x[:, 0].mean().item():9.4f} | {ours.running_mean[0].item():15.4f} | "
          f"{var_b[0].item():15.4f} | {ours.running_var[0].item():14.4f} | {err < 1e-10}")
    assert err < 1e-10                                        # 输出与两个运行统计量都一致
assert ref.num_batches_tracked.item() == 5                    # PyTorch 还数了更新的次数
gap = (rv_biased - ref.running_var).abs().max().item()
print(f"若用有偏方差更新运行方差，5 步后与 PyTorch 相差 {gap:.4f}")
assert gap > 1e-3                                             # 这个区别是真实的，不是舍入误差

ours.eval(), ref.eval()                                       # 评估模式：用运行统计量
x = randn(8, C, 5, 5) * 5 + 8
y_eval = ours(x)
err = (y_eval - ref(x)).abs().max().item()
by_hand = (x - ref.running_mean.view(1, -1, 1, 1)) / torch.sqrt(ref.running_var.view(1, -1, 1, 1) + 1e-5)
by_hand = by_hand * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
print(f"评估模式：与 nn.BatchNorm2d 的最大误差 < 1e-10：{err < 1e-10}，"
      f"与按运行统计量手算的最大误差 < 1e-10：{(y_eval - by_hand).abs().max().item() < 1e-10}")
assert err < 1e-10 and (y_eval - by_hand).abs().max().item() < 1e-10
one = ours(x[:1])                                             # 评估模式下每个样本的输出与同批的其他样本无关
assert (one - y_eval[:1]).abs().max().item() < 1e-12
# --8<-- [end:bn-check]

# --8<-- [start:bn-grad]
ours.train(), ref.train()
x = randn(8, C, 5, 5).requires_grad_()
g_out = randn(8, C, 5, 5)                                     # 上游传来的梯度 ∂L/∂y
grads_ours = torch.autograd.grad(ours(x), [x, ours.gamma, ours.beta], g_out)
grads_ref = torch.autograd.grad(ref(x), [x, ref.weight, ref.bias], g_out)
for name, a, b in zip(["x", "γ", "β"], grads_ours, grads_ref):
    e = (a - b).abs().max().item()
    print(f"∂L/∂{name} {str(tuple(a.shape)):13s} 最大误差 < 1e-10：{e < 1e-10}")
    assert e < 1e-10
s = grads_ours[0].sum(dim=(0, 2, 3))                          # 梯度在每个通道上的和
print(f"∂L/∂x 在每个通道上的和（应为 0）：最大绝对值 < 1e-10：{s.abs().max().item() < 1e-10}")
assert s.abs().max().item() < 1e-10
# --8<-- [end:bn-grad]

# --8<-- [start:scale]
x = randn(256, 64)                                            # 一批输入 (n, d_in)
W = randn(32, 64)                                             # 一个全连接层的权重 (d_out, d_in)
target = randn(256, 32)


def bn_linear(W: torch.Tensor) -> torch.Tensor:
    """全连接层后接批归一化（不含 γ、β；eps=0，只看数学上的性质）。"""
    z = x @ W.T
    return (z - z.mean(dim=0)) / z.std(dim=0, correction=0)


def loss_and_grad(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    W = W.clone().requires_grad_()
    y = bn_linear(W)
    loss = ((y - target) ** 2).mean()
    return y.detach(), torch.autograd.grad(loss, W)[0]


y1, g1 = loss_and_grad(W)
print(" a   | 输出变化 < 1e-10 | ‖∂L/∂(aW)‖ / ‖∂L/∂W‖ | 1/a")
for a in [0.1, 10.0, 1000.0]:
    ya, ga = loss_and_grad(a * W)
    ratio = (ga.norm() / g1.norm()).item()
    print(f"{a:6g} | {(ya - y1).abs().max().item() < 1e-10} | {ratio:20.4f} | {1 / a:.4f}")
    assert (ya - y1).abs().max().item() < 1e-10              # 输出不随权重的尺度变化
    assert abs(ratio - 1 / a) < 1e-10 / a                     # 梯度按 1/a 缩放
assert abs((g1 * W).sum().item()) < 1e-10                     # 梯度与 W 正交：梯度步只会让 ‖W‖ 变大
# --8<-- [end:scale]


# --8<-- [start:others]
def normalize(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    """在 dims 这些维上减均值、除以标准差（有偏方差），其余的维各算各的。"""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=0)
    return (x - mean) / torch.sqrt(var + eps)


def layer_norm(x, gamma, beta):            # 每个样本在 (C, H, W) 上；γ、β 的形状为 (C, H, W)
    return normalize(x, (1, 2, 3)) * gamma + beta


def instance_norm(x, gamma, beta):         # 每个样本、每个通道在 (H, W) 上；γ、β 为 (C,)
    return normalize(x, (2, 3)) * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def group_norm(x, G, gamma, beta):         # 通道分成 G 组，每个样本、每组在 (C/G, H, W) 上
    N, C, H, W = x.shape
    x_hat = normalize(x.view(N, G, C // G, H, W), (2, 3, 4)).view(N, C, H, W)
    return x_hat * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


N, C, H, W, G = 4, 6, 5, 5, 3
x = randn(N, C, H, W) * 3 + 1
ln = nn.LayerNorm([C, H, W]).double().to(device)
gn = nn.GroupNorm(G, C).double().to(device)
inorm = nn.InstanceNorm2d(C, affine=True).double().to(device)   # 默认 affine=False，这里打开以检查 γ、β
for layer in [ln, gn, inorm]:
    with torch.no_grad():                                         # 随机的 γ、β
        layer.weight.copy_(randn(*layer.weight.shape))
        layer.bias.copy_(randn(*layer.bias.shape))
checks = {
    "LayerNorm": (layer_norm(x, ln.weight, ln.bias), ln(x)),
    "GroupNorm": (group_norm(x, G, gn.weight, gn.bias), gn(x)),
    "InstanceNorm2d": (instance_norm(x, inorm.weight, inorm.bias), inorm(x)),
}
for name, (a, b) in checks.items():
    e = (a - b).abs().max().item()
    print(f"{name:14s} 与 nn.{name} 的最大误差 < 1e-10：{e < 1e-10}")
    assert e < 1e-10

gn1 = F.group_norm(x, 1)                                          # 不带 γ、β，只比较归一化本身
gnC = F.group_norm(x, C)
e1 = (gn1 - F.layer_norm(x, (C, H, W))).abs().max().item()
eC = (gnC - F.instance_norm(x)).abs().max().item()
print(f"GroupNorm(1 组) == LayerNorm((C, H, W))：{e1 < 1e-10}；GroupNorm(C 组) == InstanceNorm：{eC < 1e-10}")
assert e1 < 1e-10 and eC < 1e-10

bn = nn.BatchNorm2d(C).double().to(device)                        # 训练模式
print("第 1 个样本的输出是否与同批其他样本无关：")
for name, layer in [("BatchNorm2d", bn), ("LayerNorm", ln), ("GroupNorm", gn), ("InstanceNorm2d", inorm)]:
    alone = layer(x[:1])                                          # 只送第 1 个样本
    in_batch = layer(x)[:1]                                       # 与另外 3 个样本一起送
    independent = (alone - in_batch).abs().max().item() < 1e-10
    print(f"  {name:14s} {independent}")
    assert independent == (name != "BatchNorm2d")                 # 只有 BN 的训练模式依赖整个批
# --8<-- [end:others]

# --8<-- [start:axes-figure]
def draw_cube(ax, mask: torch.Tensor, title: str) -> None:
    """画一个 N×C×(H·W) 的立方体，mask[n, c, s] 为 True 的格子涂色（同一组统计量）。"""
    Nn, Cc, S = mask.shape
    dx, dy = 0.5, 0.45                                            # N 轴（纵深）的斜投影方向

    def P(c, s, n):                                               # 三维格点 -> 平面坐标
        return (c + n * dx, s + n * dy)

    def face(corners, on):
        ax.add_patch(Polygon([P(*q) for q in corners], closed=True, linewidth=0.6,
                             facecolor="#4c72b0" if on else "#f2f2f2", edgecolor="#555555"))

    for c in range(Cc):                                           # 正面：n = 0
        for s in range(S):
            face([(c, s, 0), (c + 1, s, 0), (c + 1, s + 1, 0), (c, s + 1, 0)], mask[0, c, s])
    for c in range(Cc):                                           # 顶面：s = S
        for n in range(Nn):
            face([(c, S, n), (c + 1, S, n), (c + 1, S, n + 1), (c, S, n + 1)], mask[n, c, S - 1])
    for s in range(S):                                            # 右侧面：c = C
        for n in range(Nn):
            face([(Cc, s, n), (Cc, s, n + 1), (Cc, s + 1, n + 1), (Cc, s + 1, n)], mask[n, Cc - 1, s])
    ax.text(Cc / 2, -0.6, "C（通道）", ha="center", va="top")
    ax.text(-0.3, S / 2, "H, W", ha="right", va="center")
    ax.text(Cc + Nn * dx / 2 + 0.3, Nn * dy / 2 - 0.3, "N（样本）", ha="left", va="top")
    ax.set_title(title)
    ax.set_xlim(-1.6, Cc + Nn * dx + 1.8)
    ax.set_ylim(-1.4, S + Nn * dy + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")


Nn, Cc, S = 4, 6, 4
n_idx = torch.arange(Nn).view(-1, 1, 1)
c_idx = torch.arange(Cc).view(1, -1, 1)
full = torch.ones(Nn, Cc, S, dtype=torch.bool)
masks = {
    "批归一化\n每个通道：(N, H, W)": full & (c_idx == 1),
    "层归一化\n每个样本：(C, H, W)": full & (n_idx == 0),
    "实例归一化\n每个样本、每个通道：(H, W)": full & (n_idx == 0) & (c_idx == 1),
    "组归一化（G = 3，每组 2 个通道）\n每个样本、每组：(C/G, H, W)": full & (n_idx == 0) & (c_idx // 2 == 1),
}
fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
for ax, (title, mask) in zip(axes.flat, masks.items()):
    draw_cube(ax, mask, title)
fig.savefig("normalization_axes.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:axes-figure]

# --8<-- [start:data]
X_all, y_all = load_digits(return_X_y=True)                       # (1797, 64)，像素为 0..16
X_tr, X_te, y_tr, y_te = train_test_split(
    X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)                   # 只用训练集估计
sigma[sigma == 0] = 1.0                                           # 恒为 0 的像素不缩放
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device)
X_te = torch.tensor((X_te - mu) / sigma, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)
print(f"训练集 {tuple(X_tr.shape)}，测试集 {tuple(X_te.shape)}")
# --8<-- [end:data]

# --8<-- [start:deep-net]
DEPTH, WIDTH = 16, 64                                             # 16 个全连接层，隐藏层宽 64


def deep_mlp(bn: bool, seed: int) -> nn.Module:
    """没有残差连接的朴素深层网络；bn=True 时每个隐藏层在 ReLU 之前加 BatchNorm1d。"""
    layers: list[nn.Module] = []
    d = 64
    for _ in range(DEPTH - 1):
        layers += [nn.Linear(d, WIDTH), nn.BatchNorm1d(WIDTH) if bn else nn.Identity(), nn.ReLU()]
        d = WIDTH
    net = nn.Sequential(nn.Sequential(*layers), nn.Linear(WIDTH, 10))   # net[0]：隐藏层，net[1]：输出层
    torch.manual_seed(seed)                                       # 两种网络的全连接层初值完全相同
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # 2.9 节的 Kaiming 初始化
            nn.init.zeros_(m.bias)
    return net.to(device)


lin_plain = [m.weight for m in deep_mlp(False, 0).modules() if isinstance(m, nn.Linear)]
lin_bn = [m.weight for m in deep_mlp(True, 0).modules() if isinstance(m, nn.Linear)]
assert len(lin_plain) == len(lin_bn) == DEPTH
same = all(torch.equal(a, b) for a, b in zip(lin_plain, lin_bn))
print(f"全连接层 {len(lin_bn)} 个；两种网络的初始权重逐位相同：{same}")
assert same                                                       # 同一种子：初值逐位相同
# --8<-- [end:deep-net]


# --8<-- [start:train]
def train(bn: bool, lr: float, seed: int, epochs: int = 10, batch: int = 128) -> tuple[nn.Module, dict]:
    """SGD（动量 0.9）训练 deep_mlp；记录每步的小批量损失、最后一个隐藏层输出的标准差与梯度范数。"""
    net = deep_mlp(bn, seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)                       # 打乱顺序的随机数，与 bn 无关
    hist: dict = {"loss": [], "act": [], "grad": [], "diverged": False}
    for _ in range(epochs):
        perm = torch.randperm(len(X_tr), generator=g).to(device)
        for i in range(0, len(X_tr) - batch + 1, batch):          # 每轮 11 个满批
            idx = perm[i:i + batch]
            h = net[0](X_tr[idx])                                 # 最后一个隐藏层的输出 (batch, 64)
            loss = F.cross_entropy(net[1](h), y_tr[idx])
            if not torch.isfinite(loss):                          # 发散：损失变成 inf 或 nan
                hist["diverged"] = True
                return net, hist
            opt.zero_grad()
            loss.backward()
            grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in net.parameters()))
            opt.step()
            hist["loss"].append(loss.item())
            hist["act"].append(h.std().item())
            hist["grad"].append(grad_norm.item())
    return net, hist


def evaluate(net: nn.Module) -> tuple[float, float]:
    net.eval()
    with torch.no_grad():
        train_loss = F.cross_entropy(net(X_tr), y_tr).item()     # 整个训练集上的损失（评估模式）
        acc = (net(X_te).argmax(dim=1) == y_te).float().mean().item()
    return train_loss, acc


# 容差 ±0.5：训练结果，换平台（ARM、GPU）相当于换种子（学习率 0.01 时训练损失在种子 0–9 间的标准差约 0.11）；
# 发散的运行（步数、最大值）在不同平台上可以完全不同
LRS, SEEDS = [0.01, 0.1], [0, 1, 2]
runs = {}
print(" 学习率 | BN | 种子 | 完成步数 | 训练损失 | 测试准确率 | 隐藏输出标准差最大值 | 梯度范数最大值")
for lr in LRS:
    for bn in [False, True]:
        for seed in SEEDS:
            net, hist = train(bn, lr, seed)
            loss, acc = evaluate(net)
            runs[lr, bn, seed] = dict(net=net, hist=hist, loss=loss, acc=acc)
            print(f" {lr:6g} | {'有' if bn else '无'} | {seed:4d} | {len(hist['loss']):8d} | {loss:8.4f} | "
                  f"{acc:10.3f} | {max(hist['act']):20.3g} | {max(hist['grad']):14.3g}")
# --8<-- [end:train]

# --8<-- [start:train-asserts]
for seed in SEEDS:
    plain, withbn = runs[0.1, False, seed], runs[0.1, True, seed]
    # 阈值来自种子 0–9 的试验：学习率 0.1 时不加 BN 的 10 次中 4 次发散，其余训练损失最小 1.06；
    # 加 BN 的训练损失最大 0.083、测试准确率最小 0.931；学习率 0.01 时两种网络的训练损失最大 0.49
    assert plain["hist"]["diverged"] or plain["loss"] > 1.0       # 学习率 0.1：不加 BN 学不会
    assert withbn["loss"] < 0.15 and withbn["acc"] >= 0.9         # 学习率 0.1：加 BN 训练得很好
    assert max(withbn["hist"]["act"]) < 1.0                       # 加 BN：隐藏输出的尺度始终不到 1
    for bn in [False, True]:
        assert runs[0.01, bn, seed]["loss"] < 0.6                 # 学习率 0.01：两种网络都能训练


def mean_loss(lr: float, bn: bool) -> float:
    return sum(runs[lr, bn, s]["loss"] for s in SEEDS) / len(SEEDS)


# 容差 ±0.3：3 个种子的平均训练损失，换平台相当于换种子（标准差约 0.11/√3）
wins = [runs[0.01, True, s]["loss"] < runs[0.01, False, s]["loss"] for s in SEEDS]
print(f"学习率 0.01 时加 BN 的训练损失更低的种子：{[s for s, w in zip(SEEDS, wins) if w]}")
print(f"3 个种子的平均训练损失：学习率 0.01 无 BN {mean_loss(0.01, False):.4f}，有 BN {mean_loss(0.01, True):.4f}；"
      f"学习率 0.1 有 BN {mean_loss(0.1, True):.4f}")
assert not all(wins)                                              # 学习率 0.01：BN 并不在每个种子上都更好
assert mean_loss(0.1, True) < min(mean_loss(0.01, False), mean_loss(0.01, True))  # 大学习率 + BN 最好
# --8<-- [end:train-asserts]

# --8<-- [start:train-figure]
fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
for col, lr in enumerate(LRS):
    for bn, color in [(False, "C3"), (True, "C0")]:
        for seed in SEEDS:
            hist = runs[lr, bn, seed]["hist"]
            label = ("有 BN" if bn else "无 BN") if seed == 0 else None
            axes[0, col].plot(hist["loss"], color=color, lw=1, alpha=0.8, label=label)
            axes[1, col].plot(hist["act"], color=color, lw=1, alpha=0.8, label=label)
            if hist["diverged"]:                                  # 发散的位置画一个叉
                axes[0, col].plot(len(hist["loss"]) - 1, hist["loss"][-1], "x", color=color, ms=8)
    axes[0, col].set(title=f"学习率 {lr}（3 个种子）", yscale="log", ylabel="小批量训练损失")
    axes[1, col].set(yscale="log", xlabel="更新步数", ylabel="最后一个隐藏层输出的标准差")
    axes[0, col].legend()
fig.suptitle("16 层全连接网络在 load_digits 上的训练：有无批归一化（× 表示损失变成 nan）", y=1.0)
fig.tight_layout()
fig.savefig("normalization_training.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:train-figure]

# --8<-- [start:eval-mode]
# 容差 ±0.1：准确率，换平台相当于换种子（种子 0–2 的网络上各行相差约 0.02）
net = runs[0.1, True, 0]["net"]                                   # 学习率 0.1、种子 0 训练出的 BN 网络


def accuracy_in_train_mode(batches: list[torch.Tensor]) -> float:
    """错误做法：在训练模式下按给定的分批做预测（在副本上做，以免改动原网络的运行统计量）。"""
    m = copy.deepcopy(net).train()
    with torch.no_grad():
        hits = sum((m(X_te[b]).argmax(dim=1) == y_te[b]).sum().item() for b in batches)
    return hits / len(X_te)


_, acc_eval = evaluate(net)
perm = torch.randperm(len(X_te), generator=gen).to(device)
by_class = [torch.nonzero(y_te == k).flatten() for k in range(10)]   # 每批只有一个类别
print(f"评估模式（model.eval()）              测试准确率 {acc_eval:.3f}")
results = {}
for B in [360, 32, 8, 2]:
    results[B] = accuracy_in_train_mode(list(perm.split(B)))
    print(f"训练模式，随机分批，每批 {B:3d} 个         测试准确率 {results[B]:.3f}")
acc_class = accuracy_in_train_mode(by_class)
print(f"训练模式，每批只含一个类别（约 36 个）  测试准确率 {acc_class:.3f}")
try:
    copy.deepcopy(net).train()(X_te[:1])
except ValueError as err:
    print(f"训练模式，每批 1 个：ValueError: {err}")

assert acc_eval >= 0.9                                            # 与上面训练时的断言相同
assert all(results[a] > results[b] for a, b in [(360, 32), (32, 8), (8, 2)])  # 批越小越差
assert results[2] < acc_eval - 0.1                                # 每批 2 个：批统计量噪声很大，准确率明显下降
assert acc_class < acc_eval - 0.3                                 # 每批一个类别：准确率大幅下降
# --8<-- [end:eval-mode]

# --8<-- [start:eval-side-effect]
# 容差 ±6：种子 0–2 的网络上运行均值的改变在 4.6 到 7.5 之间，之后的准确率在 0.36 到 0.49 之间
m = copy.deepcopy(net)                                            # 训练模式的前向会改写运行统计量
before = m[0][1].running_mean.clone()
m.train()
with torch.no_grad():
    for _ in range(20):
        m(X_te[by_class[0]])                                      # 只含数字 0 的一批，前向 20 次
shift = (m[0][1].running_mean - before).abs().max().item()
_, acc_after = evaluate(m)
print(f"用只含数字 0 的批在训练模式下前向 20 次：第一个 BN 层的运行均值最多改变 {shift:.3f}，"
      f"之后评估模式的测试准确率 {acc_after:.3f}")
assert acc_after < acc_eval - 0.1                                 # 运行统计量被改写后，评估模式也坏了
# --8<-- [end:eval-side-effect]

# --8<-- [start:batch-noise]
# 容差 ±0.04：依赖训练出的 W1，与理论值的相对偏差不超过 10%（断言）
W1 = net[0][0].weight.detach()                                    # 第一个 BN 层的输入是 X W1ᵀ + b1
Z = X_tr @ W1.T                                                   # (1437, 64)：全训练集，作为「总体」
pop_std = Z.std(dim=0, correction=0)
n = len(Z)
print("  批量大小 B | 批均值偏离总体均值（以总体标准差为单位）| 理论 √((n−B)/(B(n−1)))")
noise = {}
for B in [2, 8, 32, 128]:
    idx = torch.stack([torch.randperm(n, generator=gen)[:B] for _ in range(200)]).to(device)  # 200 个不放回的批
    batch_means = Z[idx].mean(dim=1)                              # (200, 64)
    noise[B] = ((batch_means - Z.mean(dim=0)) / pop_std).pow(2).mean().sqrt().item()
    theory = ((n - B) / (B * (n - 1))) ** 0.5
    print(f"  {B:10d} | {noise[B]:37.3f} | {theory:.3f}")
    assert abs(noise[B] / theory - 1) < 0.1                      # 与抽样理论相差不到 10%
# --8<-- [end:batch-noise]
