# --8<-- [start:imports]
import math

import torch
from sklearn.linear_model import Ridge

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)
f64 = torch.float64

# 与正文相同的数据：y = Xw + b + ε，ε ~ N(0, 0.5²)
n, d = 1000, 3
w_true, b_true, sigma = torch.tensor([2.0, -3.4, 1.7], dtype=f64), 4.2, 0.5
X = torch.randn(n, d, generator=gen, dtype=f64)
y = X @ w_true + b_true + sigma * torch.randn(n, generator=gen, dtype=f64)
X, y = X.to(device), y.to(device)
X1 = torch.cat([X, torch.ones(n, 1, dtype=f64, device=device)], dim=1)   # X̃ = [X, 1]
w_ols = torch.linalg.lstsq(X1, y[:, None]).solution[:, 0]                # 普通最小二乘解
# --8<-- [end:imports]

# --8<-- [start:ex1]
lam = 0.1
D = torch.diag(torch.tensor([1.0] * d + [0.0], dtype=f64, device=device))   # 只惩罚 w，不惩罚 b
w_ridge = torch.linalg.solve(X1.T @ X1 + n * lam * D, X1.T @ y)           # (X̃ᵀX̃ + nλD) w̃ = X̃ᵀy
sk = Ridge(alpha=n * lam).fit(X.cpu().numpy(), y.cpu().numpy())          # sklearn：‖y - Xw - b‖² + α‖w‖²
w_sk = torch.tensor([*sk.coef_, sk.intercept_], dtype=f64, device=device)
print("岭回归 (λ = 0.1)：", [round(v, 4) for v in w_ridge.tolist()])
print(f"与 Ridge(alpha=n·λ) 之差 < 1e-10：{(w_ridge - w_sk).abs().max().item() < 1e-10}")
print(f"‖w‖：最小二乘 {w_ols[:d].norm().item():.4f}，岭回归 {w_ridge[:d].norm().item():.4f}")
assert (w_ridge - w_sk).abs().max() < 1e-10 and w_ridge[:d].norm() < w_ols[:d].norm()

# 条件数：AᵀA 的特征值 s_i² 变成 s_i² + α
U, _ = torch.linalg.qr(torch.randn(200, 5, generator=gen, dtype=f64))
V, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=f64))
s = torch.logspace(0, -6, 5, dtype=f64)                                  # κ(A) = 10⁶
A = ((U * s) @ V.T).to(device)
prev = float("inf")
for alpha in [0.0, 1e-8, 1e-4]:
    kappa = torch.linalg.cond(A.T @ A + alpha * torch.eye(5, dtype=f64, device=device)).item()
    formula = (s[0] ** 2 + alpha) / (s[-1] ** 2 + alpha)
    print(f"α = {alpha:.0e}：κ(AᵀA + αI) = {kappa:.1e}，公式 (s₁² + α)/(s₅² + α) = {formula.item():.1e}")
    assert abs(kappa / formula.item() - 1) < 1e-2 and kappa < prev
    prev = kappa
# --8<-- [end:ex1]

# --8<-- [start:ex2]
G = 2 * (X1 @ w_ols - y)[:, None] * X1        # 最优点处每个样本的梯度 (n, d+1)，均值为 0
tr_sigma = (G ** 2).sum(dim=1).mean().item()
R = 2000
print("   B   实测方差   tr Σ/B · (n-B)/(n-1)   实测/预测")
for B in [1, 16, 256, 1000]:
    idx = torch.rand(R, n, generator=gen).argsort(dim=1)[:, :B].to(device)   # 每行一个不放回的小批量
    var = (G[idx].mean(dim=1) ** 2).sum(dim=1).mean().item()
    pred = tr_sigma / B * (n - B) / (n - 1)
    print(f"{B:4d} {var:11.5f} {pred:16.5f} " + (f"{var / pred:14.3f}" if B < n else "          —"))
    assert (abs(var / pred - 1) < 0.1) if B < n else var < 1e-20   # B = n：每次都是全部样本，方差为 0
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X_raw = X * torch.tensor([1.0, 10.0, 1.0], dtype=f64, device=device) \
    + torch.tensor([0.0, 0.0, 3.0], dtype=f64, device=device)           # 正文中「原始单位」的特征
Xr1 = torch.cat([X_raw, torch.ones(n, 1, dtype=f64, device=device)], dim=1)
H = 2 / n * Xr1.T @ Xr1
lam_min, lam_max = torch.linalg.eigvalsh(H)[[0, -1]].tolist()
kappa = lam_max / lam_min
w_star = torch.linalg.lstsq(Xr1, y[:, None]).solution[:, 0]


def run(lr: float, max_steps: int, tol: float = 1e-6) -> tuple[int, float]:
    """返回（停下时的步数，最后的相对误差 ‖w̃_t - w̃*‖/‖w̃_0 - w̃*‖）。"""
    w1 = torch.zeros(d + 1, dtype=f64, device=device)
    for t in range(1, max_steps + 1):
        w1 = w1 - lr * 2 / n * Xr1.T @ (Xr1 @ w1 - y)
        err = ((w1 - w_star).norm() / w_star.norm()).item()
        if err <= tol:
            break
    return t, err


steps_a, _ = run(1 / lam_max, 50_000)
steps_b, _ = run(2 / (lam_min + lam_max), 50_000)
bound_b = math.ceil(math.log(1e-6) / math.log((kappa - 1) / (kappa + 1)))
_, err_c = run(2.1 / lam_max, 100)
print(f"κ = {kappa:.2f}")
print(f"η = 1/λ_max：{steps_a} 步；η = 2/(λ_min + λ_max)：{steps_b} 步（上界 {bound_b}）")
print(f"η = 2.1/λ_max：100 步后相对误差 {err_c:.1e}")
assert steps_b <= bound_b and steps_b < 0.6 * steps_a and err_c > 1e3
# --8<-- [end:ex3]

# --8<-- [start:ex4]
scale = 0.4                                                   # Laplace 分布的尺度 s
W = w_ols + torch.randn(20, d + 1, generator=gen, dtype=f64).to(device)   # 20 组参数
mae = (X1 @ W.T - y[:, None]).abs().mean(dim=0)               # 平均绝对误差 (20,)
nll = -torch.distributions.Laplace(X1 @ W.T, scale).log_prob(y[:, None]).sum(dim=0)
formula = n / scale * mae + n * math.log(2 * scale)           # NLL = (n/s)·MAE + n·log(2s)
print(f"公式：NLL = {n / scale:.1f} × MAE - {-n * math.log(2 * scale):.4f}")   # log(2s) < 0
print(f"20 组参数上最大相对差 < 1e-12：{((formula - nll).abs() / nll.abs()).max().item() < 1e-12}")
assert ((formula - nll).abs() / nll.abs()).max() < 1e-12

s_grid = torch.linspace(0.1, 1.0, 901, dtype=f64, device=device)   # 固定 w̃，在网格上找最优的 s
r = (X1 @ w_ols - y).abs()
nll_s = n * torch.log(2 * s_grid) + r.sum() / s_grid
print(f"使 NLL 最小的 s = {s_grid[nll_s.argmin()].item():.3f}，MAE = {r.mean().item():.4f}")
assert abs(s_grid[nll_s.argmin()] - r.mean()) <= 0.001
# --8<-- [end:ex4]
