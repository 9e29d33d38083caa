# --8<-- [start:imports]
import math

import torch
from scipy.optimize import linear_sum_assignment

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 与正文相同的噪声表、数据与 W1
T = 200
beta = torch.cat([torch.zeros(1, dtype=torch.float64),
                  torch.linspace(1e-4, 0.05, T, dtype=torch.float64)])
alpha = 1 - beta
alpha_bar = torch.cumprod(alpha, 0)
angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
centers = 2 * torch.stack([angles.cos(), angles.sin()], 1)          # 8 个中心，半径 2
std = 0.2


def eight_gaussians(n, gen):
    k = torch.randint(0, 8, (n,), generator=gen)
    return centers[k] + std * torch.randn(n, 2, generator=gen, dtype=torch.float64)


def w1(a, b):
    cost = torch.cdist(a.double().cpu(), b.double().cpu()).numpy()
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 8 个高斯的混合加噪声后仍是混合：q_t(x) = Σ_k (1/8) N(x; √ᾱ_t c_k, s_t² I)，s_t² = ᾱ_t std² + 1 − ᾱ_t。
# 它的得分 ∇log q_t(x) = Σ_k r_k(x) (√ᾱ_t c_k − x) / s_t²（r_k 是后验权重），最优的 ε = −√(1−ᾱ_t) ∇log q_t(x)。
ab = alpha_bar.to(device)
c = centers.to(device)


def exact_eps(x, t):
    a = ab[t]
    s2 = a * std ** 2 + 1 - a
    diff = a.sqrt() * c[None] - x[:, None]                       # (n, 8, 2)
    r = torch.softmax(-(diff ** 2).sum(-1) / (2 * s2), 1)        # (n, 8)
    score = (r[:, :, None] * diff).sum(1) / s2
    return -(1 - a).sqrt() * score


def ddim_exact(xT, n_steps):
    ts = torch.linspace(T, 1, n_steps).round().long().tolist() + [0]
    x = xT
    for t, s in zip(ts[:-1], ts[1:]):
        eps = exact_eps(x, t)
        x0_hat = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        x = ab[s].sqrt() * x0_hat + (1 - ab[s]).sqrt() * eps
    return x


gen = torch.Generator().manual_seed(0)
held_out = eight_gaussians(1000, gen)
floor_w1 = sum(w1(eight_gaussians(1000, gen), eight_gaussians(1000, gen)) for _ in range(5)) / 5
xT = torch.randn(1000, 2, generator=gen, dtype=torch.float64).to(device)
print(f"下限（数据 vs 数据）W1 = {floor_w1:.3f}")
print("DDIM 步数   W1（精确 ε）")
res = {}
for n_steps in (2, 5, 10, 20, 50, 200):
    res[n_steps] = w1(ddim_exact(xT, n_steps), held_out)
    print(f"{n_steps:6d}      {res[n_steps]:.3f}")
assert res[2] > res[5] > res[20]                 # 步数很少时离散化误差主导
assert res[20] - floor_w1 < 0.05 and res[200] - floor_w1 < 0.05
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# DDIM 的一般形式每步加方差 σ_t²(η) = η² (1−ᾱ_{t−1})/(1−ᾱ_t) · (1 − ᾱ_t/ᾱ_{t−1})。
# 逐步走（每步 t → t−1）且 η = 1 时，它应当等于 DDPM 后验方差 β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) · β_t。
t = torch.arange(2, T + 1)
sigma2_ddim = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * (1 - alpha_bar[t] / alpha_bar[t - 1])
beta_tilde = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * beta[t]
err = (sigma2_ddim - beta_tilde).abs().max().item()
print(f"max |σ_t²(η=1) − β̃_t| = {err:.1e}")
assert err < 1e-15
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 一维数据 x_0 ~ N(0, s0²)：x_t ~ N(0, ᾱ s0² + 1 − ᾱ)，E[ε | x_t] = √(1−ᾱ) x_t / (ᾱ s0² + 1 − ᾱ)。
# 用 n 个样本做 ε 对 x_t 的最小二乘（过原点），斜率应等于这个系数，也等于 −√(1−ᾱ) 乘得分的系数。
s0, n = 0.5, 200_000
print("  t   回归斜率   理论 √(1−ᾱ)/(ᾱ s0² + 1 − ᾱ)   标准误个数")
for tt in (10, 50, 200):
    a = alpha_bar[tt].item()
    x0 = s0 * torch.randn(n, dtype=torch.float64, device=device)
    eps = torch.randn(n, dtype=torch.float64, device=device)
    xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    slope = ((xt * eps).sum() / (xt * xt).sum()).item()
    theory = math.sqrt(1 - a) / (a * s0 ** 2 + 1 - a)
    resid = eps - slope * xt
    se = (resid.std() / (xt * xt).sum().sqrt()).item()
    z = abs(slope - theory) / se
    print(f"{tt:3d}   {slope:.4f}     {theory:.4f}                         {z:.2f}")
    assert z < 4
# --8<-- [end:ex3]
