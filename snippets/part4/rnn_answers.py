# --8<-- [start:imports]
import copy
import math

import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float64
gen = torch.Generator().manual_seed(0)


def randn(*shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).to(device)


def rnn_forward(X, h0, W_ih, W_hh, b_ih, b_hh, act=torch.tanh):
    """与正文相同：X (T, B, D)，h0 (B, H)。"""
    h, outputs = h0, []
    for x_t in X:
        h = act(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        outputs.append(h)
    return torch.stack(outputs), h
# --8<-- [end:imports]


# --8<-- [start:ex1]
H, D, T, B = 32, 4, 50, 8
Q, _ = torch.linalg.qr(torch.randn(H, H, generator=gen, dtype=dtype))   # 随机正交矩阵
Q = Q.to(device)
W_ih, X = randn(H, D, scale=0.1 / math.sqrt(D)), randn(T, B, D)
c = randn(H)
c = c / c.norm()
steps_left = torch.arange(T - 1, -1, -1, device=device, dtype=dtype)    # T − t，t = 1..T
for rho in (0.5, 0.9, 1.0, 1.1, 1.5):
    W_hh = (rho * Q).requires_grad_()
    s = torch.linalg.svdvals(W_hh.detach())
    row = []
    for act in (lambda a: a, torch.tanh):             # 线性 RNN 与 tanh RNN
        h, hs = torch.zeros(B, H, dtype=dtype, device=device), []
        for x_t in X:
            h = act(x_t @ W_ih.T + h @ W_hh.T)
            hs.append(h)
        grads = torch.autograd.grad((hs[-1] @ c).sum(), hs)
        row.append(torch.stack(grads).norm(dim=-1))                     # (T, B)
    lin, tnh = row
    print(f"ρ = {rho}：σ_max = σ_min = {s.max().item():.4f}；线性 ‖∂L/∂h_1‖ = {lin[0, 0].item():.3e}"
          f"（ρ^49 = {rho ** 49:.3e}），tanh {tnh[0].mean().item():.3e}")
    assert (s.max() - rho).abs() < 1e-12 and (s.min() - rho).abs() < 1e-12   # 所有奇异值都是 ρ
    assert torch.allclose(lin, (rho ** steps_left).unsqueeze(1).expand_as(lin), rtol=1e-10)
    assert (tnh <= (rho ** steps_left).unsqueeze(1) * (1 + 1e-10)).all()     # tanh' ≤ 1：只会更小
assert tnh[0].mean() > 10                              # ρ = 1.5 时 tanh RNN 的梯度也在爆炸
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def clip_grad_norm(parameters, max_norm):
    """与正文相同：按总范数整体缩放。"""
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    coef = max_norm / (total_norm + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return total_norm


def flat_grad(model):
    return torch.cat([p.grad.flatten() for p in model.parameters()])


model = nn.RNN(8, 16).to(device, dtype)
with torch.no_grad():
    model.weight_hh_l0.mul_(8.0)                       # 与正文相同的做法：放大 W_hh 制造大梯度
X_c, Y_c = randn(20, 3, 8), randn(20, 3, 16)
out, _ = model(X_c)
(0.5 * ((out - Y_c) ** 2).sum()).backward()
g = flat_grad(model).clone()
by_norm, by_value = copy.deepcopy(model), copy.deepcopy(model)    # deepcopy 不复制 .grad
for m in (by_norm, by_value):
    for p, q in zip(model.parameters(), m.parameters()):
        q.grad = p.grad.clone()
clip_grad_norm(list(by_norm.parameters()), 1.0)
nn.utils.clip_grad_value_(by_value.parameters(), 3000.0)   # 每个分量截到 [-3000, 3000]
for name, m in (("按范数（阈值 1）", by_norm), ("按数值（阈值 3000）", by_value)):
    gc = flat_grad(m)
    cos = nn.functional.cosine_similarity(g, gc, dim=0).item()
    print(f"{name}：裁剪后 ‖g‖ = {gc.norm().item():.4f}，与原梯度方向的余弦 {cos:.4f}")
print(f"原梯度中绝对值超过 3000 的分量占 {(g.abs() > 3000).float().mean().item():.1%}")
cos_value = nn.functional.cosine_similarity(g, flat_grad(by_value), dim=0).item()
cos_norm = nn.functional.cosine_similarity(g, flat_grad(by_norm), dim=0).item()
assert cos_norm > 1 - 1e-12 and cos_value < 0.99      # 按数值裁剪改变了方向
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def truncation_gap(rho, k, T=40, H=16, D=8, B=4, seed=0):
    """把 W_hh 的谱半径缩放到 rho；返回截断（每 k 步 detach）与完整 BPTT 的 ∂L/∂W_hh 相对差。"""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=dtype).to(device)
    A = rnd(H, H)
    W_hh = (A * rho / torch.linalg.eigvals(A).abs().max()).requires_grad_()
    W_ih, b = rnd(H, D) / math.sqrt(D), torch.zeros(H, dtype=dtype, device=device)
    X, Y = rnd(T, B, D), rnd(T, B, H)
    grads = []
    for kk in (T, k):                                  # 先完整（一块），再截断
        W_hh.grad = None
        h = torch.zeros(B, H, dtype=dtype, device=device)
        for s in range(0, T, kk):
            out, h = rnn_forward(X[s:s + kk], h, W_ih, W_hh, b, b)
            (0.5 * ((out - Y[s:s + kk]) ** 2).sum()).backward()
            h = h.detach()
        grads.append(W_hh.grad.clone())
    full, trunc = grads
    return ((full - trunc).norm() / full.norm()).item()


ks = (2, 5, 10, 20)
rhos = (0.5, 0.9, 1.5)
gaps = {(rho, k): truncation_gap(rho, k) for rho in rhos for k in ks}
print("ρ \\ k " + "".join(f"{k:>8d}" for k in ks))
for rho in rhos:
    print(f"{rho:5.1f} " + "".join(f"{gaps[rho, k]:8.4f}" for k in ks))
assert truncation_gap(0.9, 40) == 0.0                  # k = T：不截断
for rho in rhos:                                       # 窗口越长，差得越少
    assert all(gaps[rho, a] > gaps[rho, b] for a, b in zip(ks, ks[1:]))
for k in ks:                                           # 谱半径越小，丢掉的远程项越小
    assert gaps[0.5, k] < gaps[0.9, k] < gaps[1.5, k]
# --8<-- [end:ex3]
