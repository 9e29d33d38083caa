# --8<-- [start:setup]
import copy
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float64                                  # 等式检查用 float64
gen = torch.Generator().manual_seed(0)                 # 数据在 CPU 上生成再搬到 device


def randn(*shape, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, dtype=dtype)).to(device)
# --8<-- [end:setup]


# --8<-- [start:params]
D, H = 8, 16                                           # 输入维度、隐状态维度
with torch.device("meta"):                             # 只建结构，不分配内存
    rnn_meta, lstm_meta, gru_meta = nn.RNN(D, H), nn.LSTM(D, H), nn.GRU(D, H)
for name, p in rnn_meta.named_parameters():
    print(f"{name:13s} {tuple(p.shape)}")
count = {m.__class__.__name__: sum(p.numel() for p in m.parameters())
         for m in (rnn_meta, lstm_meta, gru_meta)}
per_block = H * (D + H) + 2 * H                        # 一组 W_ih、W_hh、b_ih、b_hh
print(f"参数量：RNN {count['RNN']}（公式 H(D+H)+2H = {per_block}），"
      f"LSTM {count['LSTM']}，GRU {count['GRU']}")
assert [n for n, _ in rnn_meta.named_parameters()] == [
    "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
assert count["RNN"] == per_block
assert count["LSTM"] == 4 * per_block and count["GRU"] == 3 * per_block   # 4 组、3 组（门与候选）
# --8<-- [end:params]


# --8<-- [start:forward]
def rnn_forward(X, h0, W_ih, W_hh, b_ih, b_hh, act=torch.tanh):
    """X: (T, B, D)，h0: (B, H)。返回每一步的隐状态 (T, B, H) 与最后一步的 h_T (B, H)。"""
    h, outputs = h0, []
    for x_t in X:                                      # 沿时间逐步计算，每一步用同一组参数
        h = act(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        outputs.append(h)
    return torch.stack(outputs), h


T, B = 5, 3                                            # 序列长度、批量大小
for batch_first in (False, True):
    rnn = nn.RNN(D, H, batch_first=batch_first).to(device, dtype)
    X = randn(T, B, D)                                 # 时间在前：(T, B, D)
    h0 = randn(B, H)
    X_in = X.transpose(0, 1) if batch_first else X     # batch_first=True 时输入是 (B, T, D)
    output, h_n = rnn(X_in, h0.unsqueeze(0))           # h0 要写成 (层数, B, H)
    weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    with torch.no_grad():
        my_out, my_h = rnn_forward(X, h0, *weights)
    if batch_first:
        my_out = my_out.transpose(0, 1)
    err = max((output - my_out).abs().max().item(), (h_n[0] - my_h).abs().max().item())
    last = output[:, -1] if batch_first else output[-1]
    print(f"batch_first={batch_first}：output {tuple(output.shape)}，h_n {tuple(h_n.shape)}，"
          f"与手写的最大误差 {err:.1e}")
    assert err <= 1e-10
    assert torch.equal(last, h_n[0])                   # 单层单向：output 的最后一步就是 h_n
    assert h_n.shape == (1, B, H)                      # h_n 不受 batch_first 影响
# --8<-- [end:forward]


# --8<-- [start:bptt]
def rnn_backward(X, h0, Hs, dL_dH, W_ih, W_hh, k=None):
    """手写时间反向传播。Hs: 前向得到的 (T, B, H)；dL_dH: 损失对每个 h_t 的直接偏导 (T, B, H)。
    k 不为 None 时按长度 k 的块截断：梯度不从块的第一步传回上一块。"""
    dW_ih, dW_hh = torch.zeros_like(W_ih), torch.zeros_like(W_hh)
    db, dX = torch.zeros(W_hh.shape[0], dtype=X.dtype, device=X.device), torch.zeros_like(X)
    dh_next = torch.zeros_like(h0)                     # 从 t+1 步传回来的 ∂L/∂h_t
    for t in reversed(range(X.shape[0])):
        dh = dL_dH[t] + dh_next                        # h_t 的总梯度：直接项 + 经 h_{t+1} 传回的项
        da = dh * (1 - Hs[t] ** 2)                     # 穿过 tanh：tanh'(a) = 1 - h^2
        h_prev = Hs[t - 1] if t > 0 else h0
        dW_ih += da.T @ X[t]
        dW_hh += da.T @ h_prev
        db += da.sum(0)
        dX[t] = da @ W_ih
        dh_next = da @ W_hh                            # 传给 h_{t-1}
        if k is not None and t % k == 0:
            dh_next = torch.zeros_like(dh_next)        # 截断：上一块的 h 被 detach 了
    return dW_ih, dW_hh, db, dX, dh_next               # 最后的 dh_next 就是 ∂L/∂h_0


rnn = nn.RNN(D, H).to(device, dtype)
X, h0, Y = randn(T, B, D).requires_grad_(), randn(B, H).requires_grad_(), randn(T, B, H)
output, _ = rnn(X, h0.unsqueeze(0))
loss = 0.5 * ((output - Y) ** 2).sum()                 # L = ½ Σ_t ‖h_t − y_t‖²
loss.backward()

with torch.no_grad():
    W = (rnn.weight_ih_l0, rnn.weight_hh_l0)
    Hs, _ = rnn_forward(X, h0, *W, rnn.bias_ih_l0, rnn.bias_hh_l0)
    dW_ih, dW_hh, db, dX, dh0 = rnn_backward(X, h0, Hs, Hs - Y, *W)   # ∂L/∂h_t 的直接项 = h_t − y_t
pairs = {"W_ih": (dW_ih, rnn.weight_ih_l0.grad), "W_hh": (dW_hh, rnn.weight_hh_l0.grad),
         "b_ih": (db, rnn.bias_ih_l0.grad), "b_hh": (db, rnn.bias_hh_l0.grad),
         "X": (dX, X.grad), "h0": (dh0, h0.grad)}
for name, (mine, auto) in pairs.items():
    err = (mine - auto).abs().max().item()
    print(f"∂L/∂{name:4s} 手写 BPTT 与 autograd 的最大误差 {err:.1e}")
    assert err <= 1e-10
# --8<-- [end:bptt]


# --8<-- [start:gradnorm]
def grad_norms_through_time(W_hh, act, T, X, W_ih, c):
    """损失 L = Σ_b c·h_T。返回每一步的 ‖∂L/∂h_t‖ (T, B)、逐样本的雅可比 ∂h_T/∂h_t 的谱范数及其上界。"""
    Bn, Hn = X.shape[1], W_hh.shape[0]
    h, hs = torch.zeros(Bn, Hn, dtype=dtype, device=device), []
    for x_t in X[:T]:
        h = act(x_t @ W_ih.T + h @ W_hh.T)             # 为简洁起见偏置取 0
        hs.append(h)
    grads = torch.autograd.grad((hs[-1] @ c).sum(), hs)          # 对中间结果求导：∂L/∂h_t
    norms = torch.stack(grads).norm(dim=-1)                      # (T, B)
    # 用雅可比连乘验证：∂h_T/∂h_t = ∏ diag(φ'(a_k)) W_hh，k = T, T-1, …, t+1
    with torch.no_grad():
        sigma_max = torch.linalg.matrix_norm(W_hh, ord=2)          # 最大奇异值 σ_max
        J = torch.eye(Hn, dtype=dtype, device=device).expand(Bn, Hn, Hn)   # t = T 时是单位阵
        bound = torch.ones(Bn, dtype=dtype, device=device)
        J_norms, bounds = [None] * T, [None] * T
        for t in reversed(range(T)):                             # hs[t] 是第 t+1 步的隐状态
            J_norms[t], bounds[t] = torch.linalg.matrix_norm(J, ord=2), bound.clone()
            assert ((grads[t] - c @ J).norm(dim=-1) <= 1e-10 * bound).all()   # autograd == cᵀ J
            if t > 0:
                d = 1 - hs[t] ** 2 if act is torch.tanh else torch.ones_like(hs[t])   # φ'(a)
                J = J @ (d.unsqueeze(-1) * W_hh)                 # 右乘 diag(φ'(a)) W_hh
                bound = bound * d.max(dim=1).values * sigma_max  # ‖diag(φ')‖₂ = max φ'
    return norms, torch.stack(J_norms), torch.stack(bounds), sigma_max


Hh, Dg, Tg, Bg = 32, 4, 50, 8
A = torch.randn(Hh, Hh, generator=gen, dtype=dtype).to(device) / math.sqrt(Hh)
rho_A = torch.linalg.eigvals(A).abs().max()                      # A 的谱半径
W_ih_g, X_g = randn(Hh, Dg, scale=0.1 / math.sqrt(Dg)), randn(300, Bg, Dg)
c = randn(Hh)
c = c / c.norm()                                                 # ‖∂L/∂h_T‖ = ‖c‖ = 1
radii = [0.5, 0.9, 1.0, 1.1, 1.5]
curves = {}
print(" 激活   ρ   σ_max | ‖∂L/∂h_1‖（批量平均） | 上界 σ_max^(T-1)")
for name, act in (("tanh", torch.tanh), ("线性", lambda a: a)):
    for rho in radii:
        W_hh = (A * rho / rho_A).requires_grad_()                # 把谱半径缩放到 ρ
        norms, J_norms, bounds, s_max = grad_norms_through_time(W_hh, act, Tg, X_g, W_ih_g, c)
        curves[name, rho] = norms.mean(dim=1).cpu()
        steps_left = torch.arange(Tg - 1, -1, -1, device=device, dtype=dtype).unsqueeze(1)   # T - t
        assert (norms <= J_norms * (1 + 1e-9)).all()             # ‖Jᵀc‖ ≤ ‖J‖₂（‖c‖ = 1）
        assert (J_norms <= bounds * (1 + 1e-9)).all()            # ≤ ∏ ‖diag(φ')‖₂ ‖W_hh‖₂
        assert (bounds <= s_max ** steps_left * (1 + 1e-9)).all()   # ≤ σ_max^(T−t)
        print(f" {name} {rho:4.1f} {s_max.item():6.3f} | {norms[0].mean().item():21.2e} |"
              f" {(s_max ** (Tg - 1)).item():.2e}")
assert curves["tanh", 1.5][0] < curves["tanh", 1.1][0] < 1     # tanh 饱和：不再随 ρ 增长
assert curves["线性", 1.5][0] > 1e6                             # 线性 RNN：爆炸
# --8<-- [end:gradnorm]


# --8<-- [start:rate]
T_long = 300
print(" ρ   | 线性 RNN 实测增长率 | σ_max")
for rho in radii:
    W_hh = (A * rho / rho_A).requires_grad_()
    norms, _, _, s_max = grad_norms_through_time(W_hh, lambda a: a, T_long, X_g, W_ih_g, c)
    n = norms.mean(dim=1)                              # 线性时 ∂L/∂h_t = (W_hhᵀ)^(T−t) c，与输入无关
    k1, k2 = 50, T_long - 1                            # 距终点 50 步与 299 步
    rate = (n[T_long - 1 - k2] / n[T_long - 1 - k1]) ** (1 / (k2 - k1))
    print(f" {rho:.1f} | {rate.item():19.4f} | {s_max.item():.3f}")
    assert abs(rate.item() - rho) < 0.01 * rho         # 增长率 → 谱半径 ρ
    assert s_max.item() > 1.4 * rho                    # 而不是最大奇异值（这个矩阵不是正规矩阵）
# --8<-- [end:rate]


# --8<-- [start:figure]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
t_axis = torch.arange(1, Tg + 1)
for ax, name in zip(axes, ("tanh", "线性")):
    for rho in radii:
        ax.semilogy(t_axis, curves[name, rho], label=f"ρ = {rho}")
    ax.set(title=f"{name} RNN，T = {Tg}，损失只取决于 h_T", xlabel="时间步 t")
    ax.grid(True, which="major", alpha=0.3)
axes[0].set_ylabel("‖∂L/∂h_t‖（8 条序列的平均）")   # 含中文的标签不用 $…$ 公式
axes[1].legend(title="W_hh 的谱半径")
fig.savefig("rnn_gradients.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]


# --8<-- [start:clip]
def clip_grad_norm(parameters, max_norm):
    """把所有参数的梯度看成一个长向量 g：若 ‖g‖ > max_norm，整体乘以 max_norm / ‖g‖。返回裁剪前的 ‖g‖。"""
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    coef = max_norm / (total_norm + 1e-6)              # 1e-6 防止除以 0，与 PyTorch 相同
    if coef < 1:
        for g in grads:
            g.mul_(coef)                               # 只缩短，不改方向
    return total_norm


model_a = nn.RNN(D, H).to(device, dtype)
with torch.no_grad():
    model_a.weight_hh_l0.mul_(8.0)                     # 放大 W_hh，制造大梯度
model_b = copy.deepcopy(model_a)
X_c, Y_c = randn(20, B, D), randn(20, B, H)
for m in (model_a, model_b):
    out, _ = m(X_c)
    (0.5 * ((out - Y_c) ** 2).sum()).backward()
before = torch.cat([p.grad.flatten() for p in model_a.parameters()]).clone()
max_norm = 1.0
mine = clip_grad_norm(list(model_a.parameters()), max_norm)
theirs = nn.utils.clip_grad_norm_(model_b.parameters(), max_norm)
after = torch.cat([p.grad.flatten() for p in model_a.parameters()])
grad_err = max((p.grad - q.grad).abs().max().item()
               for p, q in zip(model_a.parameters(), model_b.parameters()))
cos = nn.functional.cosine_similarity(before, after, dim=0).item()
print(f"裁剪前 ‖g‖：手写 {mine.item():.4f}，clip_grad_norm_ {theirs.item():.4f}")
print(f"裁剪后 ‖g‖ = {after.norm().item():.4f}，方向的余弦 {cos:.4f}，两种实现的梯度最大差 {grad_err:.1e}")
assert abs(mine.item() - theirs.item()) <= 1e-10 * theirs.item() and grad_err <= 1e-12
assert mine.item() > max_norm and abs(after.norm().item() - max_norm) < 1e-5
assert cos > 1 - 1e-12                                 # 方向不变

again = clip_grad_norm(list(model_a.parameters()), 10.0)   # 范数已不超过阈值：什么也不做
assert again.item() < 10.0 and torch.equal(torch.cat([p.grad.flatten() for p in model_a.parameters()]), after)
# --8<-- [end:clip]


# --8<-- [start:truncated]
T_tr, k = 12, 4                                        # 序列长 12，每块 4 步
rnn = nn.RNN(D, H).to(device, dtype)
W = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
X_tr, Y_tr = randn(T_tr, B, D), randn(T_tr, B, H)
h_init = torch.zeros(B, H, dtype=dtype, device=device)


def run(loss_of, k=None):
    """前向 + 反向，返回损失值、参数梯度与输入梯度。k=None 为完整 BPTT；否则每 k 步 detach 一次。"""
    for p in W:
        p.grad = None
    Xg = X_tr.clone().requires_grad_()
    h, total, k = h_init, 0.0, k or T_tr
    for s in range(0, T_tr, k):                        # 逐块前向
        out, h = rnn_forward(Xg[s:s + k], h, *W)
        loss = loss_of(out, s)
        loss.backward()                                # 每块各自反向，梯度累加到 .grad
        total += loss.item()
        h = h.detach()                                 # 截断：下一块把 h 当作常数
    return total, [p.grad.clone() for p in W], Xg.grad


c_tr = randn(H)
last_only = lambda out, s: (out[-1] @ c_tr).sum() if s + len(out) == T_tr else out.sum() * 0
loss_full, _, dX_full = run(last_only)
loss_trunc, _, dX_trunc = run(last_only, k)
x_norm_full, x_norm_trunc = dX_full.norm(dim=(1, 2)), dX_trunc.norm(dim=(1, 2))
print("t        " + " ".join(f"{t:7d}" for t in range(1, T_tr + 1)))
print("完整 BPTT " + " ".join(f"{v:7.1e}" for v in x_norm_full.tolist()))
print("截断 k=4  " + " ".join(f"{v:7.1e}" for v in x_norm_trunc.tolist()))
assert loss_full == loss_trunc                         # detach 不改变前向
assert (x_norm_full > 0).all()
assert (dX_trunc[:T_tr - k] == 0).all()                # 最后一块之前的输入：梯度恰好为 0
assert (dX_trunc[T_tr - k:] - dX_full[T_tr - k:]).abs().max() <= 1e-12   # 最后一块内部：与完整 BPTT 相同

all_steps = lambda out, s: 0.5 * ((out - Y_tr[s:s + len(out)]) ** 2).sum()   # L = ½ Σ_t ‖h_t − y_t‖²
loss_full, g_full, _ = run(all_steps)
loss_trunc, g_trunc, dX_trunc = run(all_steps, k)
with torch.no_grad():
    Hs, _ = rnn_forward(X_tr, h_init, *W)
    dW_ih, dW_hh, db, dX_hand, _ = rnn_backward(X_tr, h_init, Hs, Hs - Y_tr, *W[:2], k=k)
hand_err = max((dW_ih - g_trunc[0]).abs().max(), (dW_hh - g_trunc[1]).abs().max(),
               (db - g_trunc[2]).abs().max(), (dX_hand - dX_trunc).abs().max()).item()
rel = [((a - b).norm() / a.norm()).item() for a, b in zip(g_full, g_trunc)]
print(f"L = ½Σ‖h_t − y_t‖²：损失相同 {loss_full == loss_trunc}；截断与完整 BPTT 的梯度相对差 "
      f"W_ih {rel[0]:.3f}，W_hh {rel[1]:.3f}，b {rel[2]:.3f}")
print(f"截断 BPTT 与「每块开头把 dh_next 置 0」的手写反向传播的最大误差 {hand_err:.1e}")
assert loss_full == loss_trunc and hand_err <= 1e-10
assert all(0 < r < 1 for r in rel)                     # 不同，但不是毫不相关
# --8<-- [end:truncated]
