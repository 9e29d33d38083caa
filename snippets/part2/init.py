# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数一律在 CPU 上生成再搬到 device，CPU/GPU 结果一致
f64 = torch.float64
# --8<-- [end:setup]

# --8<-- [start:variance]
n_in, n_out, N = 256, 128, 4096
var_w, var_x = 0.01, 4.0
x = (math.sqrt(var_x) * torch.randn(N, n_in, generator=gen, dtype=f64)).to(device)
W = (math.sqrt(var_w) * torch.randn(n_out, n_in, generator=gen, dtype=f64)).to(device)
y = x @ W.T                                        # (N, n_out)，每个输出是 n_in 项之和
theory = n_in * var_w * var_x                      # Var[y] = n_in · Var[w] · Var[x]
print(f"理论 Var[y] = {theory:.2f}，实测 {y.var().item():.2f}")
assert abs(y.var().item() / theory - 1) < 0.05
print(f"每层方差因子 c 连乘 50 层：c = 0.9 时 {0.9 ** 50:.3f}，c = 1.1 时 {1.1 ** 50:.0f}")
# --8<-- [end:variance]


# --8<-- [start:fans]
def fans(shape: torch.Size) -> tuple[int, int]:
    """权重形状 (out, in, *kernel) 的 fan_in 与 fan_out。"""
    receptive = math.prod(shape[2:])               # 全连接层为 1，卷积层为 k×k
    return shape[1] * receptive, shape[0] * receptive


GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0)}
for name, g in GAINS.items():
    assert math.isclose(g, nn.init.calculate_gain(name), rel_tol=1e-12)
print(f"增益与 nn.init.calculate_gain 一致：{ {k: round(v, 4) for k, v in GAINS.items()} }")
print("Linear(256→512) 的权重 (512, 256)：fan_in, fan_out =", fans(torch.Size([512, 256])))
print("Conv2d(32→64, 3×3) 的权重 (64, 32, 3, 3)：fan_in, fan_out =", fans(torch.Size([64, 32, 3, 3])))
# --8<-- [end:fans]


# --8<-- [start:init-fns]
@torch.no_grad()
def xavier_uniform(w: torch.Tensor, gain: float = 1.0, generator=None) -> torch.Tensor:
    fan_in, fan_out = fans(w.shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))  # U(-a, a) 的方差 a²/3 = 2·gain²/(fan_in + fan_out)
    return w.uniform_(-a, a, generator=generator)


@torch.no_grad()
def xavier_normal(w: torch.Tensor, gain: float = 1.0, generator=None) -> torch.Tensor:
    fan_in, fan_out = fans(w.shape)
    return w.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


@torch.no_grad()
def kaiming_normal(w: torch.Tensor, gain: float = math.sqrt(2.0), mode: str = "fan_in",
                   generator=None) -> torch.Tensor:
    fan = fans(w.shape)[0 if mode == "fan_in" else 1]
    return w.normal_(0.0, gain / math.sqrt(fan), generator=generator)


@torch.no_grad()
def kaiming_uniform(w: torch.Tensor, gain: float = math.sqrt(2.0), mode: str = "fan_in",
                    generator=None) -> torch.Tensor:
    fan = fans(w.shape)[0 if mode == "fan_in" else 1]
    bound = gain * math.sqrt(3.0 / fan)                 # 方差 bound²/3 = gain²/fan
    return w.uniform_(-bound, bound, generator=generator)
# --8<-- [end:init-fns]


# --8<-- [start:init-check]
def check(name: str, shape: torch.Size, mine, ref, std: float, kurtosis: float) -> None:
    """mine/ref(w, generator) 就地初始化 w；比较样本标准差与理论值 std，并比较两者逐元素是否相同。"""
    w_mine = mine(torch.empty(shape), torch.Generator().manual_seed(1))
    w_ref = ref(torch.empty(shape), torch.Generator().manual_seed(1))
    # 样本标准差的相对标准误约为 sqrt((峰度 - 1) / (4N))，允许 5 倍
    tol = 5 * math.sqrt((kurtosis - 1) / (4 * w_ref.numel()))
    ok = abs(w_ref.std().item() / std - 1) < tol and abs(w_mine.std().item() / std - 1) < tol
    same = torch.equal(w_mine, w_ref)
    print(f"{name:<16}{str(tuple(shape)):<16} 理论 std {std:.5f}  nn.init 实测 {w_ref.std().item():.5f}"
          f"  相对误差 < {tol:.4f}：{ok}  与自己的实现逐元素相同：{same}")
    assert ok and same


UNIFORM, NORMAL = 1.8, 3.0                         # 均匀分布与正态分布的峰度
for shape in (torch.Size([512, 256]), torch.Size([64, 32, 3, 3])):
    fan_in, fan_out = fans(shape)
    check("xavier_uniform", shape,
          lambda w, g: xavier_uniform(w, 5 / 3, g),
          lambda w, g: nn.init.xavier_uniform_(w, gain=5 / 3, generator=g),
          5 / 3 * math.sqrt(2 / (fan_in + fan_out)), UNIFORM)
    check("xavier_normal", shape,
          lambda w, g: xavier_normal(w, 1.0, g),
          lambda w, g: nn.init.xavier_normal_(w, generator=g),
          math.sqrt(2 / (fan_in + fan_out)), NORMAL)
    check("kaiming_normal", shape,
          lambda w, g: kaiming_normal(w, generator=g),
          lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
          math.sqrt(2 / fan_in), NORMAL)
    check("kaiming_uniform", shape,
          lambda w, g: kaiming_uniform(w, mode="fan_out", generator=g),
          lambda w, g: nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu", generator=g),
          math.sqrt(2 / fan_out), UNIFORM)

# nn.Linear 的默认初始化是 kaiming_uniform_(a=√5)，即 U(-1/√fan_in, 1/√fan_in)，std = 1/√(3·fan_in)
lin = nn.Linear(256, 512)
std_default = 1 / math.sqrt(3 * 256)
tol = 5 * math.sqrt((UNIFORM - 1) / (4 * lin.weight.numel()))
print(f"nn.Linear(256, 512) 默认权重：理论 std {std_default:.5f}，实测 {lin.weight.std().item():.5f}")
assert abs(lin.weight.std().item() / std_default - 1) < tol
# --8<-- [end:init-check]


# --8<-- [start:deep]
depth, width, batch = 50, 256, 128
x0 = torch.randn(batch, width, generator=gen, dtype=f64).to(device)


def propagate(act, init) -> tuple[list[float], torch.Tensor]:
    """把 x0 送过 depth 层「线性 + 激活」（无偏置），返回每层输出的标准差和最后一层输出。"""
    h, stds = x0, []
    for _ in range(depth):
        W = init(torch.empty(width, width, dtype=f64), generator=gen).to(device)
        h = act(h @ W.T)
        stds.append(h.std().item())
    return stds, h


def normal(std: float):
    return lambda w, generator: w.normal_(0.0, std, generator=generator)


settings = {   # 名称: (激活函数, 初始化)
    "tanh + Xavier, g=5/3": (torch.tanh, lambda w, generator: xavier_normal(w, 5 / 3, generator)),
    "tanh + N(0, 0.01²)": (torch.tanh, normal(0.01)),
    "tanh + N(0, 1)": (torch.tanh, normal(1.0)),
    "ReLU + Kaiming": (torch.relu, kaiming_normal),
    "ReLU + Xavier, g=1": (torch.relu, xavier_normal),
    "ReLU + N(0, 0.01²)": (torch.relu, normal(0.01)),
    "ReLU + N(0, 1)": (torch.relu, normal(1.0)),
}
curves, ratio, last = {}, {}, {}
for name, (act, init) in settings.items():
    curves[name], last[name] = propagate(act, init)
    stds = curves[name]
    ratio[name] = stds[-1] / stds[0]
    print(f"{name:<24} 第 1 层 std {stds[0]:.3g}，第 {depth} 层 {stds[-1]:.3g}，比值 {ratio[name]:.3g}")
saturated = (last["tanh + N(0, 1)"].abs() > 0.99).double().mean().item()
print(f"tanh + N(0, 1) 第 {depth} 层中 |h| > 0.99（饱和）的比例：{saturated:.2f}")
tiny32 = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0)).item()   # float32 能表示的最小正数
print(f"各层标准差的最小值 {min(min(c) for c in curves.values()):.1e}，float32 能表示的最小正数 {tiny32:.1e}")

# 方差传播公式的预测：标准差每层乘以因子 f，第 50 层与第 1 层之比约为 f^49
small = math.sqrt(width * 0.01 ** 2)                     # N(0, 0.01²)：sqrt(n_in·Var[w])
print(f"N(0, 0.01²)：n_in·Var[w] = {width * 0.01 ** 2:.4f}")
factor = {"tanh + N(0, 0.01²)": small,                   # tanh 在小输入上近似恒等
          "ReLU + N(0, 0.01²)": small * math.sqrt(0.5),  # ReLU 再把二阶矩减半
          "ReLU + N(0, 1)": math.sqrt(width / 2),
          "ReLU + Xavier, g=1": math.sqrt(0.5)}          # Xavier 保持方差，ReLU 每层减半
for name, f in factor.items():
    print(f"{name:<20} 每层因子 {f:.3g}，预测比值 {f ** (depth - 1):.2g}，实测 {ratio[name]:.3g}")
    assert 1 / 3 < ratio[name] / f ** (depth - 1) < 3    # 预测与实测相差不到 3 倍
relu_std = math.sqrt(0.5 - 1 / (2 * math.pi))            # ReLU 输出与预激活的标准差之比
print(f"ReLU + Kaiming：第 1 层标准差的预测 {relu_std:.3f} × √2 = {relu_std * math.sqrt(2):.3f}，"
      f"实测 {curves['ReLU + Kaiming'][0]:.3f}")
assert abs(curves["ReLU + Kaiming"][0] / (relu_std * math.sqrt(2)) - 1) < 0.05

assert 0.5 <= ratio["tanh + Xavier, g=5/3"] <= 2 and 0.5 <= ratio["ReLU + Kaiming"] <= 2
assert ratio["tanh + N(0, 0.01²)"] < 1e-3 and ratio["ReLU + N(0, 0.01²)"] < 1e-3
assert ratio["ReLU + Xavier, g=1"] < 1e-3 and ratio["ReLU + N(0, 1)"] > 1e3
assert saturated > 0.5 and min(min(c) for c in curves.values()) < tiny32
assert max(curves["tanh + N(0, 0.01²)"][-1], curves["ReLU + N(0, 0.01²)"][-1]) < 1e-39  # 小结中的量级
assert curves["ReLU + N(0, 1)"][-1] > 1e51
# --8<-- [end:deep]

# --8<-- [start:figure]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
layers = range(1, depth + 1)
for name, stds in curves.items():
    ax = axes[0] if name.startswith("tanh") else axes[1]
    ax.semilogy(layers, stds, label=name)
for ax, title in zip(axes, ["tanh", "ReLU"]):
    ax.set_title(title)
    ax.set_xlabel("层")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("该层输出的标准差（对数坐标）")
fig.tight_layout()
fig.savefig("init_variance.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:symmetry]
# 两个交错的半月形（two moons）：上半月 200 个点（标签 0），下半月 120 个点（标签 1）
n0, n1 = 200, 120
t0 = math.pi * torch.rand(n0, generator=gen, dtype=f64)            # 半月上的角度
t1 = math.pi * torch.rand(n1, generator=gen, dtype=f64)
upper = torch.stack([t0.cos(), t0.sin()], dim=1)
lower = torch.stack([1 - t1.cos(), 0.5 - t1.sin()], dim=1)
pts = torch.cat([upper, lower]) + 0.1 * torch.randn(n0 + n1, 2, generator=gen, dtype=f64)
labels = torch.cat([torch.zeros(n0, dtype=f64), torch.ones(n1, dtype=f64)])
pts, labels = pts.to(device), labels.to(device)


def make_net(act: nn.Module, zero_init: bool) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), act, nn.Linear(16, 1)).to(device, f64)
    if zero_init:
        for p in net.parameters():
            nn.init.zeros_(p)                      # 所有权重和偏置都设为 0
    return net


def train(net: nn.Module, steps: int = 200) -> tuple[float, float]:
    opt = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    spread = 0.0                                   # 隐藏单元之间梯度的最大差异
    for _ in range(steps):
        opt.zero_grad()
        out = net(pts).squeeze(1)
        nn.functional.binary_cross_entropy_with_logits(out, labels).backward()
        g1, g2 = net[0].weight.grad, net[2].weight.grad   # (16, 2) 与 (1, 16)：每个隐藏单元一行 / 一列
        spread = max(spread, (g1 - g1[0]).abs().max().item(), (g2 - g2[:, :1]).abs().max().item())
        opt.step()
    acc = ((net(pts).squeeze(1) > 0) == (labels > 0.5)).double().mean().item()
    return spread, acc


net0 = make_net(nn.Sigmoid(), zero_init=True)
spread0, acc0 = train(net0)
net1 = make_net(nn.Sigmoid(), zero_init=False)
spread1, acc1 = train(net1)
W1 = net0[0].weight.detach()
row_gap = (W1 - W1[0]).abs().max().item()
print(f"全零初始化：200 步中各隐藏单元梯度的最大差异 < 1e-12：{spread0 < 1e-12}，"
      f"训练后 16 行权重相同（差 < 1e-10）：{row_gap < 1e-10}，最大 |w| = {W1.abs().max().item():.3f}")
print(f"准确率：全零初始化 {acc0:.3f}，默认随机初始化 {acc1:.3f}")
assert spread0 < 1e-12 and row_gap < 1e-10 and W1.abs().max().item() > 0.1
assert spread1 > 1e-3 and acc1 >= 0.97 and acc0 <= 0.93

# 换成 tanh：tanh(0) = 0 且输出层权重为 0，隐藏层的梯度恰好全是 0，永远学不动
net_t = make_net(nn.Tanh(), zero_init=True)
nn.functional.binary_cross_entropy_with_logits(net_t(pts).squeeze(1), labels).backward()
all_zero = bool((net_t[0].weight.grad == 0).all() and (net_t[2].weight.grad == 0).all())
print(f"tanh + 全零初始化：两层权重的梯度全为 0：{all_zero}")
assert all_zero
# --8<-- [end:symmetry]
