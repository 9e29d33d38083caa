# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = dict(dtype=torch.float64, device=device)


def naive_attention(Q, K, V, mask):
    """正文里的写法：布尔掩码 True = 可以看。"""
    scores = (Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ V
# --8<-- [end:imports]

# --8<-- [start:ex1]
Q = torch.randn(1, 1, 2, 4, **f64)
K = torch.randn(1, 1, 3, 4, **f64)
V = torch.randn(1, 1, 3, 4, **f64)
mask = torch.tensor([[True, True, False],
                     [False, False, False]], device=device)     # 第 2 个查询一个键也不能看

out = naive_attention(Q, K, V, mask)
print("手写版第 2 行：", [round(v, 3) for v in out[0, 0, 1].tolist()])
assert torch.isnan(out[0, 0, 1]).all() and not torch.isnan(out[0, 0, 0]).any()


def safe_attention(Q, K, V, mask):
    """整行被屏蔽时输出 0：先用有限的大负数代替 -inf，再把没有任何可看键的行清零。"""
    scores = (Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])).masked_fill(~mask, torch.finfo(Q.dtype).min)
    weights = torch.softmax(scores, dim=-1) * mask.any(dim=-1, keepdim=True)
    return weights @ V


safe = safe_attention(Q, K, V, mask)
ref = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask)
print("修正版第 2 行：", [round(v, 3) for v in safe[0, 0, 1].tolist()])
print(f"第 1 行与 F.scaled_dot_product_attention 的最大差 {(safe[0, 0, 0] - ref[0, 0, 0]).abs().max().item():.1e}")
assert (safe[0, 0, 1] == 0).all() and (safe[0, 0, 0] - ref[0, 0, 0]).abs().max() <= 1e-10
if device.type == "cpu":   # PyTorch 2.13.0 在 CPU 上对整行被屏蔽的查询也返回 0（其他后端不保证，这里不断言）
    print("PyTorch（CPU）第 2 行：", [round(v, 3) for v in ref[0, 0, 1].tolist()])
    assert (ref[0, 0, 1] == 0).all()
# --8<-- [end:ex1]

# --8<-- [start:ex2]
d = 64
for h in [1, 2, 4, 8, 16]:
    mha = nn.MultiheadAttention(d, h, batch_first=True)
    n = sum(p.numel() for p in mha.parameters())
    print(f"d = {d}，h = {h:2d}：参数量 {n}")
    assert n == 4 * d * d + 4 * d                          # 与头数无关

kdim, vdim = 32, 48                                         # 交叉注意力：键、值来自另一个宽度的序列
cross = nn.MultiheadAttention(d, 8, kdim=kdim, vdim=vdim, batch_first=True)
n_cross = sum(p.numel() for p in cross.parameters())
formula = d * d + d * kdim + d * vdim + d * d + 4 * d       # W_q + W_k + W_v + W_o，再加 4 个偏置
print(f"kdim = {kdim}，vdim = {vdim}：参数量 {n_cross}，公式 {formula}；in_proj_weight 是 {cross.in_proj_weight}")
print("分开存放的投影：", tuple(cross.q_proj_weight.shape), tuple(cross.k_proj_weight.shape),
      tuple(cross.v_proj_weight.shape))
assert n_cross == formula and cross.in_proj_weight is None
# --8<-- [end:ex2]

# --8<-- [start:ex3]
torch.manual_seed(0)
n_samples, sigma = 20000, 2.0
for d in [16, 256]:
    q = sigma * torch.randn(n_samples, d, device=device)
    k = sigma * torch.randn(n_samples, d, device=device)
    dot = (q * k).sum(-1)
    var = dot.var().item()
    var_sqrt = (dot / math.sqrt(d)).var().item()
    var_right = (dot / (sigma**2 * math.sqrt(d))).var().item()
    print(f"σ = {sigma}，d_k = {d:3d}：Var(q·k) / (d_k σ⁴) = {var / (d * sigma**4):.3f}，"
          f"Var(q·k / √d_k) = {var_sqrt:.2f}，Var(q·k / (σ²√d_k)) = {var_right:.3f}")
    # 相对标准误约 1%，5% 的容差是 4 倍以上
    assert abs(var / (d * sigma**4) - 1) < 0.05 and abs(var_sqrt / sigma**4 - 1) < 0.05 and abs(var_right - 1) < 0.05
# --8<-- [end:ex3]
