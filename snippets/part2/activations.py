# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)   # 随机数在 CPU 上生成再搬到 device
dt = torch.float64                       # 比较导数时用 float64
# --8<-- [end:setup]


# --8<-- [start:define]
ALPHA = 0.01                    # LeakyReLU 负半轴的斜率（与 F.leaky_relu 的默认值相同）
C = math.sqrt(2 / math.pi)      # GELU tanh 近似中的常数


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def d_sigmoid(x):
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):
    return 2 * sigmoid(2 * x) - 1          # 与 (e^x - e^-x)/(e^x + e^-x) 相等，但 |x| 很大时不溢出


def d_tanh(x):
    return 1 - tanh(x) ** 2


def relu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


def d_relu(x):
    return (x > 0).to(x.dtype)             # x = 0 处不可导，约定取 0


def leaky_relu(x):
    return torch.where(x > 0, x, ALPHA * x)


def d_leaky_relu(x):
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ALPHA))


def Phi(x):                                # 标准正态分布的累积分布函数
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def phi(x):                                # 标准正态分布的密度函数
    return torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)


def gelu(x):
    return x * Phi(x)


def d_gelu(x):
    return Phi(x) + x * phi(x)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(C * (x + 0.044715 * x ** 3)))


def d_gelu_tanh(x):
    t = torch.tanh(C * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * C * (1 + 3 * 0.044715 * x ** 2)


ACTS = {   # 名称 -> (手写函数, 手写导数, PyTorch 内置)
    "sigmoid": (sigmoid, d_sigmoid, torch.sigmoid),
    "tanh": (tanh, d_tanh, torch.tanh),
    "ReLU": (relu, d_relu, F.relu),
    "LeakyReLU": (leaky_relu, d_leaky_relu, lambda x: F.leaky_relu(x, negative_slope=ALPHA)),
    "GELU": (gelu, d_gelu, lambda x: F.gelu(x, approximate="none")),
    "GELU(tanh)": (gelu_tanh, d_gelu_tanh, lambda x: F.gelu(x, approximate="tanh")),
}
# --8<-- [end:define]

# --8<-- [start:check]
x = torch.linspace(-8, 8, 1000, dtype=dt, device=device)   # 1000 个点，步长 16/999，不含 0
x = torch.cat([x, torch.tensor([-1e-3, 1e-3, -30.0, 30.0], dtype=dt, device=device)])
assert (x != 0).all()                                        # ReLU 类在 0 处不可导，避开它
x.requires_grad_(True)
for name, (f, df, builtin) in ACTS.items():
    y = f(x)
    (g,) = torch.autograd.grad(y.sum(), x)                   # 逐元素函数：对求和求导即得每点导数
    with torch.no_grad():
        err_f = (y - builtin(x)).abs().max().item()
        err_d = (g - df(x)).abs().max().item()
    print(f"{name:<10}  与内置函数之差 <= 1e-12：{err_f <= 1e-12}，"
          f"解析导数与 autograd 之差 <= 1e-12：{err_d <= 1e-12}")
    assert err_f <= 1e-12 and err_d <= 1e-12
# --8<-- [end:check]

# --8<-- [start:table]
pts = torch.tensor([-4.0, -2.0, -0.5, 0.5, 2.0, 4.0], dtype=dt, device=device)
print(f"{'x':<11}" + "".join(f"{v:>8.1f}" for v in pts.tolist()))
for name, (_, df, _) in ACTS.items():
    print(f"{name + chr(39):<11}" + "".join(f"{v:>8.4f}" for v in df(pts).tolist()))
assert d_sigmoid(pts).max() <= 0.25 and d_relu(pts[:3]).eq(0).all()

zero = torch.zeros(1, dtype=dt, device=device, requires_grad=True)
(g0,) = torch.autograd.grad(F.relu(zero).sum(), zero)
print(f"autograd 在 x = 0 处给出的 ReLU' = {g0.item()}")
assert g0.item() == 0.0                     # PyTorch 在不可导点取 0，与 d_relu 的约定一致
# --8<-- [end:table]

# --8<-- [start:saturate]
grid = torch.arange(-1000, 1001, dtype=dt, device=device) / 100   # -10 到 10，步长 0.01，含 x = 0
ds = d_sigmoid(grid)
print(f"sigmoid' 的最大值 {ds.max().item():.4f}，在 x = {grid[ds.argmax()].item():.1f} 处取到")
assert abs(ds.max().item() - 0.25) < 1e-12 and grid[ds.argmax()].item() == 0.0
assert (d_tanh(grid) <= 1).all()

# 把 10 个 sigmoid 复合起来：链式法则把 10 个 <= 1/4 的因子乘在一起
z = torch.tensor(0.0, dtype=dt, device=device, requires_grad=True)
out, inputs = z, []
for _ in range(10):
    inputs.append(out.item())            # 这一层 sigmoid 的输入
    out = torch.sigmoid(out)
(g10,) = torch.autograd.grad(out, z)
print(f"10 层 sigmoid 复合在 0 处的导数 = {g10.item():.3e}，上界 0.25^10 = {0.25 ** 10:.3e}")
print(f"第 2 到 10 层的输入在 [{min(inputs[1:]):.4f}, {max(inputs[1:]):.4f}] 之间")
assert g10.item() < 0.25 ** 10 and min(inputs[1:]) > 0  # 后面各层的输入都不是 0，导数都小于 1/4
# --8<-- [end:saturate]

# --8<-- [start:gelu-approx]
xg = torch.linspace(-6, 6, 12001, dtype=dt, device=device)
gap = (gelu(xg) - gelu_tanh(xg)).abs()
print(f"GELU 精确式与 tanh 近似在 [-6, 6] 上的最大差 = {gap.max().item():.2e}")
assert gap.max().item() < 1e-3

gv, gd = gelu(xg), d_gelu(xg)                     # GELU 不单调：有一个负的最小值
print(f"GELU 的最小值 {gv.min().item():.4f}（x = {xg[gv.argmin()].item():.2f}），"
      f"导数的范围 [{gd.min().item():.4f}, {gd.max().item():.4f}]")
assert abs(gv.min().item() + 0.17) < 1e-3 and gd.min() < 0 and abs(gd.max().item() - 1.13) < 1e-2
# --8<-- [end:gelu-approx]


# --8<-- [start:softmax]
def softmax_naive(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_stable(z: torch.Tensor) -> torch.Tensor:
    z = z - z.max(dim=-1, keepdim=True).values   # 先减去最大值：指数的自变量都 <= 0
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


Z = torch.randn(4, 10, generator=gen, dtype=dt).to(device) * 3    # 4 个样本，各 10 个 logit
err_naive = (softmax_naive(Z) - torch.softmax(Z, dim=-1)).abs().max().item()
err_stable = (softmax_stable(Z) - torch.softmax(Z, dim=-1)).abs().max().item()
print(f"普通输入：朴素版与 torch.softmax 的最大差 <= 1e-12：{err_naive <= 1e-12}，"
      f"稳定版 <= 1e-12：{err_stable <= 1e-12}")
assert err_naive <= 1e-12 and err_stable <= 1e-12
assert torch.allclose(softmax_stable(Z + 100), softmax_stable(Z), rtol=0, atol=1e-12)  # 平移不变

for dtype in [torch.float32, torch.float64]:
    big = torch.tensor([[1000.0, 1000.0], [-1000.0, 1000.0]], dtype=dtype, device=device)
    naive, stable, ref = softmax_naive(big), softmax_stable(big), torch.softmax(big, dim=-1)
    print(f"{dtype}：朴素版 {naive.tolist()}，稳定版 {stable.tolist()}")
    assert torch.isnan(naive).any()                              # 朴素版：inf / inf = nan
    assert torch.isfinite(stable).all() and torch.equal(stable, ref)
    assert torch.equal(stable.cpu(), torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=dtype))

for dtype in [torch.float32, torch.float64]:
    fmax = torch.finfo(dtype).max                                 # 能表示的最大有限数
    print(f"{dtype}：最大有限数 {fmax:.1e}，exp(x) 在 x > ln(max) = {math.log(fmax):.2f} 时上溢")
e88, e89 = torch.exp(torch.tensor([88.0, 89.0], device=device))   # float32 的 exp 在 88.72 附近上溢
print(f"float32：exp(88) = {e88.item():.4e}，exp(89) = {e89.item()}")
assert math.isfinite(e88.item()) and math.isinf(e89.item())
# --8<-- [end:softmax]

# --8<-- [start:softmax-jacobian]
z = torch.randn(5, generator=gen, dtype=dt).to(device)
s = softmax_stable(z)
J_analytic = torch.diag(s) - torch.outer(s, s)                   # ∂s_i/∂z_j = s_i (δ_ij - s_j)
J_auto = torch.autograd.functional.jacobian(softmax_stable, z)
err_J = (J_auto - J_analytic).abs().max().item()
row_sums = J_auto.sum(dim=1)          # J·1：沿 1 方向平移 z 时 s 的变化率（平移不变性 ⇒ 0）
col_sums = J_auto.sum(dim=0)          # 1ᵀJ：Σ_i s_i 对 z 的梯度（Σ_i s_i ≡ 1 ⇒ 0）
shift_gap = (softmax_stable(z + 0.5) - s).abs().max().item()     # softmax(z + c·1) 与 softmax(z) 之差
print(f"softmax 雅可比 {tuple(J_auto.shape)}：与解析式的最大差 <= 1e-12：{err_J <= 1e-12}")
print(f"每行之和（J·1）的最大绝对值 <= 1e-12：{row_sums.abs().max().item() <= 1e-12}；"
      f"平移 0.5 后 softmax 的最大变化 <= 1e-12：{shift_gap <= 1e-12}")
print(f"每列之和（1ᵀJ）的最大绝对值 <= 1e-12：{col_sums.abs().max().item() <= 1e-12}；"
      f"Σ s = {s.sum().item():.12f}")
assert err_J <= 1e-12 and row_sums.abs().max().item() <= 1e-12 and shift_gap <= 1e-12
assert col_sums.abs().max().item() <= 1e-12 and abs(s.sum().item() - 1) <= 1e-12
# --8<-- [end:softmax-jacobian]

# --8<-- [start:figure]
xp = torch.linspace(-4, 4, 801, dtype=dt)
plot_acts = {   # LeakyReLU 画图时用斜率 0.1，否则负半轴与 ReLU 几乎重合
    "sigmoid": (sigmoid(xp), d_sigmoid(xp)),
    "tanh": (tanh(xp), d_tanh(xp)),
    "ReLU": (relu(xp), d_relu(xp)),
    "LeakyReLU (α=0.1)": (torch.where(xp > 0, xp, 0.1 * xp), torch.where(xp > 0, 1.0, 0.1)),
    "GELU": (gelu(xp), d_gelu(xp)),
}
styles = ["-", "-", "--", ":", "-."]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for (name, (fx, dfx)), ls in zip(plot_acts.items(), styles):
    axes[0].plot(xp, fx, ls, label=name)
    axes[1].plot(xp, dfx, ls, label=name)
axes[0].set(title="激活函数", xlabel="$x$", ylim=(-1.5, 4))
axes[1].set(title="导数", xlabel="$x$", ylim=(-0.2, 1.2))
axes[1].axhline(0.25, color="0.6", linewidth=0.8)
axes[1].text(-3.9, 0.28, "1/4（sigmoid 导数的最大值）", fontsize=8, color="0.4")
for ax in axes:
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig("activations.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
