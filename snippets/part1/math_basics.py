# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
f64 = torch.float64                     # 检验恒等式一律用 float64


def randn(*shape: int) -> torch.Tensor:
    """形状为 shape 的标准正态随机张量（float64，放在 device 上）。"""
    return torch.randn(*shape, generator=gen, dtype=f64).to(device)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """相对误差 ‖a - b‖ / ‖b‖（Frobenius 范数）。"""
    return ((a - b).norm() / b.norm()).item()
# --8<-- [end:setup]


# --8<-- [start:matcalc]
n, m = 4, 3
A = randn(n, n)                                  # 一般的方阵，不对称
x = randn(n).requires_grad_()                    # x: (4,)
(g_quad,) = torch.autograd.grad(x @ A @ x, x)    # f(x) = xᵀAx 是标量
quad = (A + A.T) @ x.detach()
print(f"∇(xᵀAx) 与 (A + Aᵀ)x：相对误差 < 1e-10：{rel_err(g_quad, quad) < 1e-10}")
print(f"∇(xᵀAx) 与 2Ax 的相对误差：{rel_err(g_quad, 2 * A @ x.detach()):.2f}（A 不对称时 2Ax 是错的）")
H = torch.autograd.functional.hessian(lambda v: v @ A @ v, x.detach())
print(f"海森矩阵 (4, 4) 等于 A + Aᵀ，且对称：{rel_err(H, A + A.T) < 1e-10 and rel_err(H, H.T) < 1e-12}")

P = randn(m, n).requires_grad_()                 # P: (3, 4)
B = randn(n, m)                                  # B: (4, 3)，PB: (3, 3)
(g_tr,) = torch.autograd.grad(torch.trace(P @ B), P)
print(f"∂tr(PB)/∂P 的形状 {tuple(g_tr.shape)}，与 Bᵀ 相对误差 < 1e-10：{rel_err(g_tr, B.T) < 1e-10}")

C = randn(n, n).requires_grad_()                 # 可逆方阵，行列式可正可负
sign, logabsdet = torch.linalg.slogdet(C)        # log|det C|
(g_ld,) = torch.autograd.grad(logabsdet, C)
C_inv = torch.linalg.inv(C.detach())
print(f"det C 的符号 {sign.item():+.0f}；∂log|det C|/∂C 与 C⁻ᵀ 相对误差 < 1e-10：{rel_err(g_ld, C_inv.T) < 1e-10}")
print(f"∂log|det C|/∂C 与 C⁻¹（少了转置）的相对误差：{rel_err(g_ld, C_inv):.2f}")
assert max(rel_err(g_quad, quad), rel_err(H, A + A.T), rel_err(g_tr, B.T), rel_err(g_ld, C_inv.T)) < 1e-10
assert rel_err(g_quad, 2 * A @ x.detach()) > 0.1 and rel_err(g_ld, C_inv) > 0.1 and rel_err(H, H.T) < 1e-12
# --8<-- [end:matcalc]


# --8<-- [start:eigen]
M = randn(5, 5)
S = (M + M.T) / 2                                # 对称矩阵 S: (5, 5)
lam, Q = torch.linalg.eigh(S)                    # 特征值升序；Q 的第 i 列是 λ_i 的特征向量
I5 = torch.eye(5, dtype=f64, device=device)
print("S 的特征值（实数）：", [round(v, 4) for v in lam.tolist()])
print(f"SQ = QΛ：{rel_err(S @ Q, Q * lam) < 1e-12}；QᵀQ = I：{rel_err(Q.T @ Q, I5) < 1e-12}；"
      f"QΛQᵀ = S：{rel_err(Q @ torch.diag(lam) @ Q.T, S) < 1e-12}")
R = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=f64, device=device)  # 旋转 90°，不对称
ev = torch.linalg.eigvals(R)
print(f"旋转矩阵的特征值：实部 0，虚部 {sorted(round(v) for v in ev.imag.tolist())}")
assert rel_err(S @ Q, Q * lam) < 1e-12 and rel_err(Q.T @ Q, I5) < 1e-12
assert rel_err(Q @ torch.diag(lam) @ Q.T, S) < 1e-12
assert ev.real.abs().max() < 1e-12 and torch.allclose(ev.imag.abs(), torch.ones(2, dtype=f64, device=device))
# --8<-- [end:eigen]


# --8<-- [start:svd]
rows, cols, r = 6, 5, 3
L = randn(rows, r) @ randn(r, cols)              # 两个秩 3 的因子相乘：L: (6, 5)，秩为 3
U, s, Vh = torch.linalg.svd(L, full_matrices=False)   # U: (6, 5)，s: (5,)，Vh = Vᵀ: (5, 5)
print("L 的奇异值：", [f"{v:.4f}" for v in s.tolist()])
tol = s.max().item() * max(rows, cols) * torch.finfo(f64).eps   # matrix_rank 的默认阈值
rank_svd = int((s > tol).sum())
rank_lib = int(torch.linalg.matrix_rank(L))
print(f"大于阈值 {tol:.1e} 的奇异值个数：{rank_svd}；torch.linalg.matrix_rank：{rank_lib}")
# 从零计算：奇异值是 LᵀL 的特征值的平方根
s_eig = torch.linalg.eigvalsh(L.T @ L).flip(0)[:r].sqrt()
print(f"前 3 个奇异值 = LᵀL 前 3 个特征值的平方根：{rel_err(s_eig, s[:r]) < 1e-10}")
L_r = U[:, :r] @ torch.diag(s[:r]) @ Vh[:r]      # 只用前 3 项：Σ σ_i u_i v_iᵀ
print(f"前 3 项之和重建 L：{rel_err(L_r, L) < 1e-12}")
assert rank_svd == rank_lib == r
assert rel_err(s_eig, s[:r]) < 1e-10 and rel_err(L_r, L) < 1e-12
# --8<-- [end:svd]


# --8<-- [start:cond]
k = 6
U0, _ = torch.linalg.qr(randn(k, k))             # 两个随机正交矩阵
V0, _ = torch.linalg.qr(randn(k, k))
sig = torch.logspace(0, -6, k, dtype=f64, device=device)   # 奇异值 1, 0.063, …, 1e-6
K = U0 @ torch.diag(sig) @ V0.T                  # K = U Σ Vᵀ，κ(K) = 1e6
kappa = (sig[0] / sig[-1]).item()
print(f"κ = σ_max/σ_min = {kappa:.4e}；torch.linalg.cond：{torch.linalg.cond(K).item():.4e}")


def amplification(b: torch.Tensor, db: torch.Tensor) -> float:
    """解 Kx = b 与 K(x + δx) = b + δb，返回 (‖δx‖/‖x‖) / (‖δb‖/‖b‖)。"""
    x = torch.linalg.solve(K, b)
    dx = torch.linalg.solve(K, b + db) - x
    return ((dx.norm() / x.norm()) / (db.norm() / b.norm())).item()


eps = 1e-8                                       # 扰动的相对大小
u_max, u_min = U0[:, 0], U0[:, -1]               # 最大、最小奇异值对应的左奇异向量
cases = {
    "b 随机，δb 随机": [amplification(b, eps * randn(k)) for b in [randn(k) for _ in range(200)]],
    "b = u_max，δb 随机": [amplification(u_max, eps * randn(k)) for _ in range(200)],
    "b = u_max，δb ∝ u_min": [amplification(u_max, eps * u_min)],
}
for name, ratios in cases.items():
    print(f"{name}：放大倍数最大 {max(ratios):.1f}，与 κ 之比 {max(ratios) / kappa:.6f}")
worst = max(max(v) for v in cases.values())
assert abs(torch.linalg.cond(K).item() / kappa - 1) < 1e-6
assert worst <= kappa * (1 + 1e-6)               # 上界：放大倍数不超过 κ
assert cases["b = u_max，δb ∝ u_min"][0] / kappa > 0.9999   # 最坏情形取到上界
assert max(cases["b 随机，δb 随机"]) < kappa / 100
# --8<-- [end:cond]


# --8<-- [start:mc]
mu, var = 1 / 2, 1 / 12                          # X ~ U(0, 1)：E[X] 与 Var[X]（积分算出）
sigma = math.sqrt(var)
mu4 = 1 / 80                                     # 四阶中心矩 E[(X − μ)⁴]
print(f"正态分布偏离均值超过 4 个标准差的概率：{math.erfc(4 / math.sqrt(2)):.1e}")
print("       n   样本均值  |误差|/SE   样本方差  |误差|/SE")
for p in range(2, 7):
    n = 10 ** p
    xs = torch.rand(n, generator=gen, dtype=f64).to(device)
    mean, s2 = xs.mean().item(), xs.var().item()       # var() 默认除以 n − 1（无偏）
    z_mean = abs(mean - mu) / (sigma / math.sqrt(n))
    z_var = abs(s2 - var) / math.sqrt((mu4 - var ** 2) / n)
    print(f"{n:>8d}  {mean:.5f}  {z_mean:8.2f}  {s2:.5f}  {z_var:8.2f}")
    assert z_mean < 4 and z_var < 4                    # 都在 4 个标准误之内
# --8<-- [end:mc]


# --8<-- [start:se]
reps, ns, sds = 400, [10, 100, 1000, 10000], []
for n in ns:
    means = torch.rand(reps, n, generator=gen, dtype=f64).to(device).mean(dim=1)  # 400 个独立的样本均值
    sds.append(means.std().item())
    print(f"n = {n:>5d}：样本均值的标准差 {sds[-1]:.5f}，σ/√n = {sigma / math.sqrt(n):.5f}，"
          f"比值 {sds[-1] / (sigma / math.sqrt(n)):.3f}")
log_n = torch.tensor(ns, dtype=f64).log()
log_sd = torch.tensor(sds, dtype=f64).log()
slope = (((log_n - log_n.mean()) * (log_sd - log_sd.mean())).sum() / ((log_n - log_n.mean()) ** 2).sum()).item()
print(f"log(标准差) 对 log n 的斜率：{slope:.3f}（理论值 −0.5）")
assert abs(slope + 0.5) < 0.05
assert all(0.85 < sd / (sigma / math.sqrt(n)) < 1.15 for sd, n in zip(sds, ns))
# --8<-- [end:se]


# --8<-- [start:figure]
steps = torch.arange(1, 100001, dtype=f64, device=device)
path = torch.rand(100000, generator=gen, dtype=f64).to(device).cumsum(0) / steps   # 前 n 个数的平均
band = 4 * sigma / steps.sqrt()
inside = bool(((path - mu).abs() < band).all())
print(f"n = 1 … 100000 的样本均值都在 μ ± 4σ/√n 之内：{inside}")
idx = torch.logspace(0, 5, 500, dtype=f64).round().long().unique().to(device) - 1   # 画图只取对数均匀的点
n_np, path_np, band_np = steps[idx].cpu().numpy(), path[idx].cpu().numpy(), band[idx].cpu().numpy()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].semilogx(n_np, path_np, color="C0", lw=1, label="前 n 个数的样本均值")
axes[0].fill_between(n_np, mu - band_np, mu + band_np, color="C0", alpha=0.15,
                     label=r"$\mu \pm 4\sigma/\sqrt{n}$")
axes[0].axhline(mu, color="0.3", lw=0.8)
axes[0].set_ylim(0.2, 0.8)
axes[0].set_xlabel("样本数 n")
axes[0].legend(fontsize=9)
axes[1].loglog(ns, sds, "o", color="C3", label="400 次重复得到的标准差")
axes[1].loglog(ns, [sigma / math.sqrt(n) for n in ns], color="0.3", lw=1, label=r"$\sigma/\sqrt{n}$")
axes[1].set_xlabel("样本数 n")
axes[1].legend(fontsize=9)
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig("math_lln.svg", bbox_inches="tight")
plt.close(fig)
assert inside
# --8<-- [end:figure]


# --8<-- [start:mle]
n, d, noise = 200, 3, 0.5                        # 样本数、特征数、噪声标准差 σ
X = randn(n, d)                                  # X: (200, 3)
w_true = torch.tensor([1.0, -2.0, 0.5], dtype=f64, device=device)
y = X @ w_true + noise * randn(n)                # y = Xw + ε，ε ~ N(0, σ²)


def gauss_nll(w: torch.Tensor) -> torch.Tensor:
    """平均负对数似然 −(1/n) Σ log N(y_i; x_iᵀw, σ²)，由 torch.distributions 计算。"""
    return -Normal(X @ w, noise).log_prob(y).mean()


const = 0.5 * math.log(2 * math.pi * noise ** 2)
gaps = []
for _ in range(3):                               # 任取 3 个 w
    w = randn(d)
    nll, mse = gauss_nll(w).item(), F.mse_loss(X @ w, y).item()
    gaps.append(nll - mse / (2 * noise ** 2))
    print(f"高斯 NLL = {nll:.6f}，MSE/(2σ²) + ½log(2πσ²) = {mse / (2 * noise ** 2) + const:.6f}")
w_mle = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)   # 最小二乘 = 最小化 MSE
w_var = w_mle.clone().requires_grad_()
(g_mle,) = torch.autograd.grad(gauss_nll(w_var), w_var)
print(f"最小二乘解 {[round(v, 3) for v in w_mle.tolist()]} 处 NLL 的梯度为 0：{g_mle.norm().item() < 1e-12}")
assert max(abs(gap - const) for gap in gaps) < 1e-12 and g_mle.norm().item() < 1e-12

z = randn(n)                                     # 二分类的 logit
t = torch.bernoulli(torch.sigmoid(z).cpu(), generator=gen).to(device)   # 标签 t ∈ {0, 1}
bern_nll = -Bernoulli(logits=z).log_prob(t).mean()
p = torch.sigmoid(z)
bce_formula = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
bce = F.binary_cross_entropy_with_logits(z, t)
print(f"伯努利 NLL = {bern_nll.item():.6f}，BCE 公式 = {bce_formula.item():.6f}，"
      f"F.binary_cross_entropy_with_logits = {bce.item():.6f}")
assert rel_err(bern_nll, bce) < 1e-12 and rel_err(bce_formula, bce) < 1e-12
# --8<-- [end:mle]


# --8<-- [start:map]
tau = 0.3                                        # 先验 w ~ N(0, τ²I)
lam = 1 / (n * tau ** 2)                         # 对应的权重衰减系数 λ = 1/(nτ²)
prior = Normal(torch.zeros(d, dtype=f64, device=device), tau)


def neg_log_post(w: torch.Tensor) -> torch.Tensor:
    """−(1/n)[log p(D | w) + log p(w)]，与 −(1/n) log p(w | D) 只差一个常数。"""
    return -(Normal(X @ w, noise).log_prob(y).sum() + prior.log_prob(w).sum()) / n


const_prior = d / (2 * n) * math.log(2 * math.pi * tau ** 2)
gaps = []
for _ in range(3):
    w = randn(d)
    gaps.append(neg_log_post(w).item() - (gauss_nll(w).item() + lam / 2 * w.pow(2).sum().item()))
print(f"λ = {lam:.5f}；三个 w 上 −log 后验/n − (NLL + λ/2‖w‖²) 都等于 {gaps[0]:.6f}："
      f"{max(abs(gap - const_prior) for gap in gaps) < 1e-12}")

I_d = torch.eye(d, dtype=f64, device=device)
w_map = torch.linalg.solve(X.T @ X + noise ** 2 / tau ** 2 * I_d, X.T @ y)   # 闭式解（岭回归）
w_sgd = torch.zeros(d, dtype=f64, device=device, requires_grad=True)
opt = torch.optim.SGD([w_sgd], lr=0.2, weight_decay=lam)   # 损失只用 NLL，先验交给 weight_decay
for _ in range(200):
    opt.zero_grad()
    gauss_nll(w_sgd).backward()
    opt.step()
print(f"w_MAP（闭式解）= {[round(v, 4) for v in w_map.tolist()]}")
print(f"SGD(weight_decay=λ) 训练 200 步后与 w_MAP 相对误差 < 1e-10：{rel_err(w_sgd.detach(), w_map) < 1e-10}")
print(f"‖w_MLE‖ = {w_mle.norm().item():.4f}，‖w_MAP‖ = {w_map.norm().item():.4f}")
assert max(abs(gap - const_prior) for gap in gaps) < 1e-12
assert rel_err(w_sgd.detach(), w_map) < 1e-10 and w_map.norm() < w_mle.norm()
# --8<-- [end:map]
