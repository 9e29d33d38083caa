# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LinearRegression

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
f64 = torch.float64                     # 比较解时一律用 float64


def add_ones(X: torch.Tensor) -> torch.Tensor:
    """X̃ = [X, 1]：在 X 右侧补一列 1，把偏置 b 并入权重 w̃ = (w, b)。"""
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """相对误差 ‖a - b‖ / ‖b‖。"""
    return ((a - b).norm() / b.norm()).item()
# --8<-- [end:setup]


# --8<-- [start:data]
n, d = 1000, 3
w_true = torch.tensor([2.0, -3.4, 1.7], dtype=f64)   # 生成数据用的真权重
b_true, sigma = 4.2, 0.5                              # 真偏置、噪声的标准差
X = torch.randn(n, d, generator=gen, dtype=f64)
y = X @ w_true + b_true + sigma * torch.randn(n, generator=gen, dtype=f64)   # y = Xw + b + ε
X, y = X.to(device), y.to(device)
X1 = add_ones(X)                                      # X̃：(n, d+1)
print(f"真参数 w = {w_true.tolist()}，b = {b_true}，噪声标准差 σ = {sigma}")
print(f"X {tuple(X.shape)}，y {tuple(y.shape)}，X̃ {tuple(X1.shape)}")
# --8<-- [end:data]


# --8<-- [start:closed-form]
w_normal = torch.linalg.solve(X1.T @ X1, X1.T @ y)           # 正规方程 X̃ᵀX̃ w̃ = X̃ᵀy（解方程，不求逆）
w_lstsq = torch.linalg.lstsq(X1, y[:, None]).solution[:, 0]   # 基于 QR 分解，不构造 X̃ᵀX̃
sk = LinearRegression().fit(X.cpu().numpy(), y.cpu().numpy())  # scikit-learn（在 CPU 上）
w_sk = torch.tensor(np.append(sk.coef_, sk.intercept_), dtype=f64, device=device)

print("      w1       w2       w3        b")
for name, w in [("生成数据用的真值", torch.cat([w_true, torch.tensor([b_true], dtype=f64)])),
                ("正规方程", w_normal), ("torch.linalg.lstsq", w_lstsq), ("LinearRegression", w_sk)]:
    print(" ".join(f"{v:8.4f}" for v in w.tolist()), "  " + name)
gap = max((w_normal - w_lstsq).abs().max().item(), (w_sk - w_lstsq).abs().max().item())
residual = X1 @ w_lstsq - y                                   # 残差 r = X̃w̃ - y
print(f"三种解两两之差 < 1e-10：{gap < 1e-10}")
print(f"残差与 X̃ 的每一列正交，max|X̃ᵀr| < 1e-9：{(X1.T @ residual).abs().max().item() < 1e-9}")
assert gap < 1e-10 and (X1.T @ residual).abs().max() < 1e-9
# --8<-- [end:closed-form]


# --8<-- [start:conditioning]
def with_condition(kappa: float, m: int = 200, k: int = 5) -> torch.Tensor:
    """构造 A = U diag(s) Vᵀ，奇异值 s 从 1 等比降到 1/κ，于是 κ(A) = κ。"""
    U, _ = torch.linalg.qr(torch.randn(m, k, generator=gen, dtype=f64))   # (m, k)，列正交
    V, _ = torch.linalg.qr(torch.randn(k, k, generator=gen, dtype=f64))   # (k, k)，正交
    s = torch.logspace(0, -math.log10(kappa), k, dtype=f64)
    return ((U * s) @ V.T).to(device)


u = 2.0 ** -53                                        # float64 的单位舍入
# 容差 ±0.001：舍入误差的具体数值取决于 LAPACK 的实现
# driver="gels"：不带列主元的 QR（CUDA 上唯一的驱动），在 CPU 上逐位可复现
print(f"u = {u:.1e}")
print("                                正规方程的误差            lstsq")
print(" κ(A)   κ(AᵀA)   κ²u      inv(AᵀA)Aᵀy  solve(AᵀA, Aᵀy)   κu      误差")
for kappa in [1e2, 1e4, 1e6]:
    A = with_condition(kappa)
    w_star = torch.randn(5, generator=gen, dtype=f64).to(device)
    b_vec = A @ w_star                                # 方程组相容：精确解就是 w_star
    errs = [rel_err(torch.linalg.inv(A.T @ A) @ (A.T @ b_vec), w_star),
            rel_err(torch.linalg.solve(A.T @ A, A.T @ b_vec), w_star),
            rel_err(torch.linalg.lstsq(A, b_vec[:, None], driver="gels").solution[:, 0], w_star)]
    cond = torch.linalg.cond(A).item()
    print(f"{cond:5.0e} {torch.linalg.cond(A.T @ A).item():8.1e} {cond ** 2 * u:8.1e} {errs[0]:12.1e} "
          f"{errs[1]:14.1e} {cond * u:12.1e} {errs[2]:8.1e}")
    assert errs[2] < cond * u                         # QR：误差不超过 κu
assert abs(cond / 1e6 - 1) < 1e-6                     # 最后一行 κ(A) = 10⁶
assert min(errs[:2]) > 100 * errs[2]                  # 正规方程的误差比 QR 大两个数量级以上
# --8<-- [end:conditioning]


# --8<-- [start:gd]
def mse(w1: torch.Tensor, X1: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((X1 @ w1 - y) ** 2).mean()               # L(w̃) = ‖X̃w̃ - y‖² / n


def grad(w1: torch.Tensor, X1: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 / len(y) * X1.T @ (X1 @ w1 - y)         # ∇L = (2/n) X̃ᵀ(X̃w̃ - y)，形状 (d+1,)


w_probe = torch.randn(d + 1, generator=gen, dtype=f64).to(device).requires_grad_()
auto = torch.autograd.grad(mse(w_probe, X1, y), w_probe)[0]
print(f"手写梯度与 autograd 的相对误差 < 1e-12：{rel_err(grad(w_probe.detach(), X1, y), auto) < 1e-12}")

lr, steps = 0.1, 200
w1 = torch.zeros(d + 1, dtype=f64, device=device)   # 从 w̃ = 0 出发
for t in range(steps + 1):
    if t in (0, 10, 20, 50, 200):
        print(f"第 {t:3d} 步：L = {mse(w1, X1, y).item():.6f}")
    if t < steps:
        w1 = w1 - lr * grad(w1, X1, y)
print("梯度下降的解：", [round(v, 4) for v in w1.tolist()])
print(f"与 lstsq 之差 < 1e-10：{(w1 - w_lstsq).abs().max().item() < 1e-10}")
assert rel_err(grad(w_probe.detach(), X1, y), auto) < 1e-12
assert (w1 - w_lstsq).abs().max() < 1e-10
# --8<-- [end:gd]


# --8<-- [start:mle]
W = w_lstsq + torch.randn(20, d + 1, generator=gen, dtype=f64).to(device)   # 20 组参数，每行一组
mse_vals = ((X1 @ W.T - y[:, None]) ** 2).mean(dim=0)                         # (20,)
nll = -torch.distributions.Normal(X1 @ W.T, sigma).log_prob(y[:, None]).sum(dim=0)   # (20,) 负对数似然
slope, intercept = n / (2 * sigma ** 2), n / 2 * math.log(2 * math.pi * sigma ** 2)
fit = torch.linalg.lstsq(torch.stack([mse_vals, torch.ones_like(mse_vals)], dim=1), nll[:, None]).solution[:, 0]
print(f"MSE 的范围 {mse_vals.min().item():.2f} … {mse_vals.max().item():.2f}")
print(f"直线拟合：NLL = {fit[0].item():.4f} × MSE + {fit[1].item():.4f}")
print(f"公式：    NLL = {slope:.4f} × MSE + {intercept:.4f}")
dev = ((slope * mse_vals + intercept - nll).abs() / nll.abs()).max().item()
print(f"20 组参数上公式与 NLL 的最大相对差 < 1e-12：{dev < 1e-12}")

sigma2_hat = mse(w_lstsq, X1, y)                     # σ² 的极大似然估计 = 最优解处的 MSE
log_s = (0.5 * sigma2_hat.log()).requires_grad_()    # 在 log σ̂ 处对 log σ 求导
nll_at = -torch.distributions.Normal(X1 @ w_lstsq, log_s.exp()).log_prob(y).sum()
g_hat = torch.autograd.grad(nll_at, log_s)[0]
print(f"σ² 的极大似然估计 = 最优 MSE = {sigma2_hat.item():.4f}（生成数据用的 σ² = {sigma ** 2}）")
print(f"该处 ∂NLL/∂log σ = 0（|·| < 1e-9）：{abs(g_hat.item()) < 1e-9}")
assert dev < 1e-12 and abs(fit[0].item() - slope) < 1e-6 * slope and abs(g_hat.item()) < 1e-9
# --8<-- [end:mle]


# --8<-- [start:noise]
G = 2 * (X1 @ w_lstsq - y)[:, None] * X1             # 每个样本的梯度 ∇ℓ_i(w̃*)，(n, d+1)
full = G.mean(dim=0)                                 # 全批量梯度 = 0（最优点）
tr_sigma = ((G - full) ** 2).sum(dim=1).mean().item()   # tr Σ：单个样本梯度的总方差
print(f"最优点处全批量梯度的范数 < 1e-12：{full.norm().item() < 1e-12}，tr Σ = {tr_sigma:.4f}")

R, batch_sizes, measured = 4000, [1, 4, 16, 64, 256], []
print("   B   实测 E‖g_B - ∇L‖²   tr Σ / B   实测/预测   与上一行之比")
for B in batch_sizes:
    idx = torch.randint(0, n, (R, B), generator=gen).to(device)   # R 个小批量，有放回均匀抽样
    g_B = G[idx].mean(dim=1)                                       # (R, d+1)：R 个小批量梯度
    var = ((g_B - full) ** 2).sum(dim=1).mean().item()
    ratio = f"{measured[-1] / var:10.2f}" if measured else ""
    measured.append(var)
    print(f"{B:4d} {var:16.5f} {tr_sigma / B:12.5f} {var * B / tr_sigma:10.3f} {ratio}")
slope_B = np.polyfit(np.log(batch_sizes), np.log(measured), 1)[0]
print(f"log 方差对 log B 的斜率：{slope_B:.3f}")
assert all(abs(v * B / tr_sigma - 1) < 0.1 for v, B in zip(measured, batch_sizes))
assert abs(slope_B + 1) < 0.05
# --8<-- [end:noise]


# --8<-- [start:scaling]
def gd_to_tol(X1: torch.Tensor, y: torch.Tensor, tol: float = 1e-6, max_steps: int = 50_000):
    """η = 1/λ_max 的梯度下降，返回 κ、‖w̃_t - w̃*‖/‖w̃_0 - w̃*‖ ≤ tol 所需的步数和误差曲线。"""
    H = 2 / len(y) * X1.T @ X1                       # 海森矩阵 (d+1, d+1)
    lam = torch.linalg.eigvalsh(H)                   # 特征值，升序
    w_star = torch.linalg.lstsq(X1, y[:, None]).solution[:, 0]
    w1 = torch.zeros_like(w_star)
    e0, curve = (w1 - w_star).norm(), [1.0]
    for _ in range(max_steps):
        w1 = w1 - grad(w1, X1, y) / lam[-1]
        curve.append(((w1 - w_star).norm() / e0).item())
        if curve[-1] <= tol:
            break
    return (lam[-1] / lam[0]).item(), len(curve) - 1, curve, w1


scale = torch.tensor([1.0, 10.0, 1.0], dtype=f64, device=device)
shift = torch.tensor([0.0, 0.0, 3.0], dtype=f64, device=device)
X_raw = X * scale + shift                    # 同一份数据换了单位：特征 2 放大 10 倍，特征 3 平移 3
mu, sd = X_raw.mean(dim=0), X_raw.std(dim=0)
X_std = (X_raw - mu) / sd                    # 标准化：每个特征均值 0、标准差 1

tol, runs = 1e-6, {}
print("特征        κ(H)      实测步数   上界 ⌈ln ε / ln(1 - 1/κ)⌉")
for name, Xf in [("原始单位", X_raw), ("标准化后", X_std)]:
    kappa, k, curve, w_fit = gd_to_tol(add_ones(Xf), y, tol)
    bound = math.ceil(math.log(tol) / math.log(1 - 1 / kappa))
    runs[name] = (kappa, k, curve, w_fit)
    print(f"{name}  {kappa:10.2f} {k:10d} {bound:12d}")
    assert k <= bound                        # 收敛定理：误差每步至少缩小到 (1 - 1/κ) 倍

w_s = runs["标准化后"][3]                     # 把标准化坐标下的解换回原始单位
w_back = torch.cat([w_s[:d] / sd, (w_s[d] - (w_s[:d] / sd * mu).sum())[None]])
w_raw_star = torch.linalg.lstsq(add_ones(X_raw), y[:, None]).solution[:, 0]
print(f"换回原始单位后与原始特征的最小二乘解一致（相对误差 < 1e-5）：{rel_err(w_back, w_raw_star) < 1e-5}")
assert runs["原始单位"][1] > 1000 * runs["标准化后"][1]
assert rel_err(w_back, w_raw_star) < 1e-5
# --8<-- [end:scaling]

# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
ax1.loglog(batch_sizes, measured, "o", label="实测")
ax1.loglog(batch_sizes, [tr_sigma / B for B in batch_sizes], "k--", lw=1, label=r"$\mathrm{tr}\,\Sigma / B$")
ax1.set(xlabel="批量大小 B", ylabel=r"$E\,\|g_B - \nabla L\|^2$", title="小批量梯度的方差")
ax1.legend()
for (name, (kappa, k, curve, _)), color in zip(runs.items(), ["C3", "C0"]):
    steps_axis = np.arange(1, len(curve) + 1)
    ax2.loglog(steps_axis, curve, color=color, label=f"{name}（κ = {kappa:.2f}）")
    ax2.loglog(steps_axis, (1 - 1 / kappa) ** (steps_axis - 1), color=color, ls=":", lw=1)
ax2.axhline(tol, color="gray", lw=0.8)
ax2.set(xlabel="步数 + 1", ylabel="相对误差", title="梯度下降（点线：理论上界）", ylim=(tol / 10, 2))
ax2.legend()
fig.tight_layout()
fig.savefig("linear_regression_noise_scaling.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
