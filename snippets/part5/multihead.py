# --8<-- [start:sdpa]
import math

import matplotlib
import torch
import torch.nn.functional as F
from torch import nn

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = dict(dtype=torch.float64, device=device)


def attention(Q, K, V, mask=None):
    """缩放点积注意力。Q (..., T_q, d_k)，K (..., T_k, d_k)，V (..., T_k, d_v)。
    mask：布尔型时 True 表示「可以看」；浮点型时直接加到分数上（0 或 -inf）。"""
    d_k = Q.shape[-1]
    scores = Q @ K.transpose(-2, -1) / math.sqrt(d_k)          # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)                     # 对键的维度做 softmax，每行和为 1
    return weights @ V, weights                                 # (..., T_q, d_v)，(..., T_q, T_k)


N, h, T_q, T_k, d_k, d_v = 2, 3, 4, 5, 8, 6
Q = torch.randn(N, h, T_q, d_k, **f64)
K = torch.randn(N, h, T_k, d_k, **f64)
V = torch.randn(N, h, T_k, d_v, **f64)
out, w = attention(Q, K, V)
ref = F.scaled_dot_product_attention(Q, K, V)
print("Q", tuple(Q.shape), "K", tuple(K.shape), "V", tuple(V.shape))
print("输出", tuple(out.shape), "权重", tuple(w.shape))
print(f"每行权重之和与 1 的最大差：{(w.sum(-1) - 1).abs().max().item():.1e}")
print(f"无掩码：与 F.scaled_dot_product_attention 的最大差 {(out - ref).abs().max().item():.1e}")
assert out.shape == (N, h, T_q, d_v) and w.shape == (N, h, T_q, T_k)
assert torch.allclose(w.sum(-1), torch.ones((), **f64), atol=1e-12)
assert (out - ref).abs().max() <= 1e-10
# --8<-- [end:sdpa]

# --8<-- [start:masks]
# 1) 填充掩码：第 0 个样本的 5 个键都有效，第 1 个样本只有前 3 个有效，后 2 个是填充
lengths = torch.tensor([5, 3], device=device)
key_valid = torch.arange(T_k, device=device) < lengths[:, None]      # (N, T_k)，True = 有效的键
pad_mask = key_valid[:, None, None, :]                                # (N, 1, 1, T_k)，广播到每个头、每个查询
out_pad, w_pad = attention(Q, K, V, pad_mask)
ref_pad = F.scaled_dot_product_attention(Q, K, V, attn_mask=pad_mask)
err_pad = (out_pad - ref_pad).abs().max().item()
print(f"填充掩码（布尔，True = 可以看）：最大差 {err_pad:.1e}，"
      f"样本 1 落在填充键上的权重之和 {w_pad[1, :, :, 3:].sum().item():.1f}")
assert err_pad <= 1e-10 and (w_pad[1, :, :, 3:] == 0).all()

# 如果把约定弄反（把 True 当成「屏蔽」），样本 1 就只看两个填充位置，结果完全不同
flipped = F.scaled_dot_product_attention(Q[1:], K[1:], V[1:], attn_mask=~pad_mask[1:])
print(f"约定弄反时，与正确结果的最大差 {(flipped - ref_pad[1:]).abs().max().item():.2f}")
assert (flipped - ref_pad[1:]).abs().max() > 0.1

# 2) 因果掩码：自注意力（T_q = T_k = T），位置 i 只能看位置 0..i
T = 6
X = torch.randn(N, h, T, d_k, **f64)
causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))   # 下三角为 True
out_c, w_c = attention(X, X, X, causal)
ref_c = F.scaled_dot_product_attention(X, X, X, is_causal=True)
err_c = (out_c - ref_c).abs().max().item()
print(f"因果掩码：自己的下三角掩码 vs is_causal=True，最大差 {err_c:.1e}；"
      f"对角线以上的权重之和 {torch.triu(w_c, diagonal=1).sum().item():.1f}")
assert err_c <= 1e-10 and (torch.triu(w_c, diagonal=1) == 0).all()

# 3) 加性浮点掩码：可以看的位置加 0，屏蔽的位置加 -inf
additive = torch.zeros(T, T, **f64).masked_fill(~causal, float("-inf"))
ref_add = F.scaled_dot_product_attention(X, X, X, attn_mask=additive)
err_add = max((attention(X, X, X, additive)[0] - ref_add).abs().max().item(), (ref_add - ref_c).abs().max().item())
print(f"加性掩码（0 / -inf）：与布尔掩码、is_causal 的最大差 {err_add:.1e}")
print(additive[:3, :3].tolist())
assert err_add <= 1e-10
# --8<-- [end:masks]

# --8<-- [start:mha]
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, num_heads):
        super().__init__()
        assert d_model % num_heads == 0
        self.h, self.d_k = num_heads, d_model // num_heads
        self.W_q = nn.Linear(d_model, d_model)
        self.W_k = nn.Linear(d_model, d_model)
        self.W_v = nn.Linear(d_model, d_model)
        self.W_o = nn.Linear(d_model, d_model)

    def split(self, x):                       # (N, T, d) -> (N, h, T, d_k)
        N, T, _ = x.shape
        return x.view(N, T, self.h, self.d_k).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        Q = self.split(self.W_q(query))
        K = self.split(self.W_k(key))
        V = self.split(self.W_v(value))
        heads, weights = attention(Q, K, V, mask)               # (N, h, T_q, d_k)，(N, h, T_q, T_k)
        N, _, T_q, _ = heads.shape
        concat = heads.transpose(1, 2).reshape(N, T_q, self.h * self.d_k)   # 把 h 个头拼回 d_model
        return self.W_o(concat), weights.mean(dim=1)            # 权重对头取平均，与 PyTorch 的默认一致


d_model, num_heads = 16, 4
ours = MultiHeadAttention(d_model, num_heads).to(**f64)
torch_mha = nn.MultiheadAttention(d_model, num_heads, batch_first=True).to(**f64)
with torch.no_grad():                        # 把 PyTorch 的权重复制进我们的模块
    W_q, W_k, W_v = torch_mha.in_proj_weight.chunk(3, dim=0)    # (3d, d) 按行切成三块
    b_q, b_k, b_v = torch_mha.in_proj_bias.chunk(3, dim=0)
    for lin, W, b in [(ours.W_q, W_q, b_q), (ours.W_k, W_k, b_k), (ours.W_v, W_v, b_v),
                      (ours.W_o, torch_mha.out_proj.weight, torch_mha.out_proj.bias)]:
        lin.weight.copy_(W)
        lin.bias.copy_(b)

x = torch.randn(N, T_k, d_model, **f64)                       # 自注意力：查询、键、值都来自 x
y, attn = ours(x, x, x, key_valid[:, None, None, :])          # 我们的约定：True = 可以看
y_ref, attn_ref = torch_mha(x, x, x, key_padding_mask=~key_valid)   # PyTorch：True = 忽略
err_y, err_w = (y - y_ref).abs().max().item(), (attn - attn_ref).abs().max().item()
print(f"输出 {tuple(y.shape)}，平均注意力权重 {tuple(attn.shape)}")
print(f"与 nn.MultiheadAttention 的最大差：输出 {err_y:.1e}，权重 {err_w:.1e}")
assert err_y <= 1e-10 and err_w <= 1e-10

n_ours = sum(p.numel() for p in ours.parameters())
n_torch = sum(p.numel() for p in torch_mha.parameters())
formula = 4 * d_model**2 + 4 * d_model                         # 4 个 d×d 矩阵 + 4 个长 d 的偏置
print(f"参数量：公式 4d²+4d = {formula}，我们的模块 {n_ours}，nn.MultiheadAttention {n_torch}")
assert n_ours == n_torch == formula
# --8<-- [end:mha]

# --8<-- [start:variance]
torch.manual_seed(0)
n_samples = 20000
dims = [4, 16, 64, 256, 1024]
for d in dims:
    q = torch.randn(n_samples, d, device=device)
    k = torch.randn(n_samples, d, device=device)
    dot = (q * k).sum(-1)
    var = dot.var().item()
    print(f"d_k = {d:4d}：Var(q·k) = {var:7.1f}，Var(q·k) / d_k = {var / d:.3f}")
    # 2 万个样本下方差估计的相对标准误约为 1.3%（d_k = 4）到 1%（d_k 大时），5% 是 3.8 倍以上
    assert abs(var / d - 1) < 0.05
# --8<-- [end:variance]

# --8<-- [start:saturation]
def softmax_jacobian(p):
    """softmax 的雅可比矩阵 J = diag(p) - p pᵀ，p 的形状 (..., T)。"""
    return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]


# 先用自动微分核对一次雅可比公式
s = torch.randn(7, **f64)
J_auto = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, -1), s)
assert (J_auto - softmax_jacobian(torch.softmax(s, -1))).abs().max() <= 1e-12

torch.manual_seed(0)
trials, T_keys = 2000, 32
rows = []
for d in dims:
    q = torch.randn(trials, 1, d, device=device)
    k = torch.randn(trials, T_keys, d, device=device)
    raw = (q @ k.transpose(1, 2)).squeeze(1)                    # (trials, T_keys)，未缩放的分数
    row = {}
    for name, scores in [("缩放", raw / math.sqrt(d)), ("不缩放", raw)]:
        p = torch.softmax(scores, dim=-1)
        row[name] = (p.max(-1).values.mean().item(), softmax_jacobian(p).flatten(1).norm(dim=1).mean().item())
    rows.append(row)
    print(f"d_k = {d:4d}：最大权重 缩放 {row['缩放'][0]:.3f} / 不缩放 {row['不缩放'][0]:.3f}；"
          f"‖J‖ 缩放 {row['缩放'][1]:.3f} / 不缩放 {row['不缩放'][1]:.3f}")

max_s = [r["缩放"][0] for r in rows]
max_u = [r["不缩放"][0] for r in rows]
jac_s = [r["缩放"][1] for r in rows]
jac_u = [r["不缩放"][1] for r in rows]
# 不缩放：d_k 每大 4 倍，最大权重更接近 1，雅可比范数（梯度能传回去多少）更小
assert all(a < b for a, b in zip(max_u, max_u[1:])) and max_u[-1] > 0.95
assert all(a > b for a, b in zip(jac_u, jac_u[1:])) and jac_u[-1] < jac_u[0] / 4
# 缩放：分数的方差不随 d_k 变，最大权重与雅可比范数几乎不变（各 d_k 之间相差不到 10%）
assert max(max_s) / min(max_s) < 1.1 and max(jac_s) / min(jac_s) < 1.1

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for ax, (ys, yu), title in [(axes[0], (max_s, max_u), "最大注意力权重（32 个键的平均）"),
                            (axes[1], (jac_s, jac_u), "softmax 雅可比矩阵的范数 ‖J‖")]:
    ax.plot(dims, ys, "o-", label="除以 √d_k")
    ax.plot(dims, yu, "s--", label="不缩放")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_k")
    ax.set_title(title)
    ax.legend()
fig.tight_layout()
fig.savefig("multihead_saturation.svg", bbox_inches="tight")
# --8<-- [end:saturation]
