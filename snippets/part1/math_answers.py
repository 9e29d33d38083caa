# --8<-- [start:imports]
import math

import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(1)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
f64 = torch.float64


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=f64).to(device)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()
# --8<-- [end:imports]


# --8<-- [start:ex1]
n, d = 50, 4
X, y = randn(n, d), randn(n)                     # X: (50, 4)，y: (50,)
w = randn(d).requires_grad_()
(g_auto,) = torch.autograd.grad((X @ w - y).pow(2).sum(), w)
g_formula = 2 * X.T @ (X @ w.detach() - y)       # 2Xᵀ(Xw − y)
w_normal = torch.linalg.solve(X.T @ X, X.T @ y)  # 正规方程 XᵀXw = Xᵀy
w_lstsq = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
print(f"autograd 与 2Xᵀ(Xw − y) 相对误差 < 1e-10：{rel_err(g_auto, g_formula) < 1e-10}")
print(f"正规方程的解与 torch.linalg.lstsq 相对误差 < 1e-10：{rel_err(w_normal, w_lstsq) < 1e-10}")
assert rel_err(g_auto, g_formula) < 1e-10 and rel_err(w_normal, w_lstsq) < 1e-10
# --8<-- [end:ex1]


# --8<-- [start:ex2]
n, d = 50, 5
U, _ = torch.linalg.qr(randn(n, d))              # U: (50, 5)，列正交
V, _ = torch.linalg.qr(randn(d, d))
Xc = U @ torch.diag(torch.logspace(0, -6, d, dtype=f64, device=device)) @ V.T   # κ(X) = 1e6
w_true = randn(d)
yc = Xc @ w_true                                 # 无噪声：真解已知
k_X, k_XtX = torch.linalg.cond(Xc).item(), torch.linalg.cond(Xc.T @ Xc).item()
print(f"κ(X) = {k_X:.3e}，κ(XᵀX) = {k_XtX:.3e}，κ(XᵀX)/κ(X)² = {k_XtX / k_X ** 2:.3f}")
err_normal = rel_err(torch.linalg.solve(Xc.T @ Xc, Xc.T @ yc), w_true)
err_lstsq = rel_err(torch.linalg.lstsq(Xc, yc.unsqueeze(1)).solution.squeeze(1), w_true)
print(f"正规方程：相对误差 > 1e-8：{err_normal > 1e-8}；lstsq（QR 分解）：相对误差 < 1e-8：{err_lstsq < 1e-8}")
assert abs(k_XtX / k_X ** 2 - 1) < 0.01
assert err_normal > 1e-8 > err_lstsq and err_normal > 100 * err_lstsq
# --8<-- [end:ex2]


# --8<-- [start:ex3]
reps, n, var = 200000, 5, 1 / 12                 # 200000 次实验，每次 5 个 U(0, 1) 样本
xs = torch.rand(reps, n, generator=gen, dtype=f64).to(device)
dev2 = (xs - xs.mean(dim=1, keepdim=True)).pow(2).sum(dim=1)   # Σ(x_i − x̄)²，每次实验一个
for name, est, target in [("除以 n    ", dev2 / n, (n - 1) / n * var),
                          ("除以 n − 1", dev2 / (n - 1), var)]:
    mean, se = est.mean().item(), est.std().item() / math.sqrt(reps)
    print(f"{name}：估计的平均 {mean:.5f}，理论期望 {target:.5f}，偏离 {abs(mean - target) / se:.2f} 个标准误，"
          f"与 σ² 差 {abs(mean - var) / se:.1f} 个标准误")
    assert abs(mean - target) < 4 * se
    assert (abs(mean - var) > 10 * se) == (name.strip() == "除以 n")
# --8<-- [end:ex3]


# --8<-- [start:ex4]
d, noise, tau = 3, 0.5, 0.3
w_true = torch.tensor([1.0, -2.0, 0.5], dtype=f64, device=device)
gaps = []
for n in [20, 200, 2000, 20000]:
    X = randn(n, d)
    y = X @ w_true + noise * randn(n)
    w_mle = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    w_map = torch.linalg.solve(X.T @ X + noise ** 2 / tau ** 2 * torch.eye(d, dtype=f64, device=device), X.T @ y)
    gaps.append((w_map - w_mle).norm().item())
    print(f"n = {n:>5d}：λ = 1/(nτ²) = {1 / (n * tau ** 2):.6f}，‖w_MAP − w_MLE‖ = {gaps[-1]:.6f}")
print(f"每多 10 倍数据，差距缩小的倍数：{[round(a / b, 1) for a, b in zip(gaps, gaps[1:])]}")
assert all(5 < a / b < 20 for a, b in zip(gaps, gaps[1:]))   # 单调缩小，大致与 1/n 成正比
# --8<-- [end:ex4]
