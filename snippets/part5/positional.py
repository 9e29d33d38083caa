# --8<-- [start:setup]
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float64  # 等式检查都用 float64，误差界取 1e-10
# --8<-- [end:setup]

# --8<-- [start:perm]
# 容差 ±0.0000000001：这一段打印的误差是浮点舍入（1e-16 量级），在其他平台上末几位会不同
vocab = {"我": 0, "爱": 1, "你": 2}
d = 8
emb = nn.Embedding(len(vocab), d).to(device, dtype)
attn = nn.MultiheadAttention(d, num_heads=2, batch_first=True).to(device, dtype).eval()


def self_attend(sentence: str) -> torch.Tensor:
    ids = torch.tensor([[vocab[c] for c in sentence]], device=device)
    x = emb(ids)  # (1, n, d)：只有词嵌入，没有位置信息
    with torch.no_grad():
        out, _ = attn(x, x, x)
    return out[0]  # (n, d)


a = self_attend("我爱你")
b = self_attend("你爱我")
perm = [2, 1, 0]  # 「你爱我」是「我爱你」倒过来
err_perm = (b - a[perm]).abs().max().item()
print(f"「你爱我」的输出与「我爱你」的输出按同样顺序重排后的最大差：{err_perm:.1e}")
print(f"「我」在两句中的输出之差：{(a[0] - b[2]).abs().max().item():.1e}")
assert err_perm <= 1e-10
assert (a[0] - b[2]).abs().max().item() <= 1e-10  # 「我」的输出在两句中相同

# 一般地：对随机输入和随机置换，f(PX) = P f(X)
x = torch.randn(1, 7, d, device=device, dtype=dtype)
p = torch.randperm(7, device=device)
with torch.no_grad():
    y, _ = attn(x, x, x)
    y_p, _ = attn(x[:, p], x[:, p], x[:, p])
err_rand = (y_p - y[:, p]).abs().max().item()
print(f"随机 7 个词、随机置换：最大差 {err_rand:.1e}")
assert err_rand <= 1e-10
# --8<-- [end:perm]


# --8<-- [start:sinusoid]
def sinusoidal_pe(n: int, d: int) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos·ω_i)，PE[pos, 2i+1] = cos(pos·ω_i)，ω_i = 1 / 10000^(2i/d)。形状 (n, d)。"""
    pos = torch.arange(n, device=device, dtype=dtype)[:, None]  # (n, 1)
    omega = 10000.0 ** (-torch.arange(0, d, 2, device=device, dtype=dtype) / d)  # (d/2,)
    pe = torch.zeros(n, d, device=device, dtype=dtype)
    pe[:, 0::2] = torch.sin(pos * omega)
    pe[:, 1::2] = torch.cos(pos * omega)
    return pe


d_model = 16
omega = 10000.0 ** (-torch.arange(0, d_model, 2, device=device, dtype=dtype) / d_model)
pe = sinusoidal_pe(1200, d_model)
print("PE 的形状：", tuple(pe.shape))
print("各频率 ω_i：", [f"{w:.2e}" for w in omega.tolist()])
print("波长 2π/ω_i 从", f"{2 * math.pi / omega[0].item():.2f}", "到", f"{2 * math.pi / omega[-1].item():.1f}")
# 与逐元素照公式计算的结果比较
ref = torch.tensor(
    [[math.sin(p / 10000 ** (2 * (j // 2) / d_model)) if j % 2 == 0
      else math.cos(p / 10000 ** (2 * (j // 2) / d_model)) for j in range(d_model)] for p in range(50)],
    dtype=dtype,
)
assert (pe[:50].cpu() - ref).abs().max().item() <= 1e-10
assert pe.abs().max().item() <= 1.0
# --8<-- [end:sinusoid]


# --8<-- [start:mk]
# 容差 ±0.0000000001：这一段打印的误差是浮点舍入（1e-16 量级），在其他平台上末几位会不同
def rotation_blocks(k: float, omega: torch.Tensor) -> torch.Tensor:
    """M_k：对角线上是 d/2 个 2×2 块 [[cos kω_i, sin kω_i], [-sin kω_i, cos kω_i]]。只用到 k，不用 pos。"""
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    blocks = [torch.stack([torch.stack([ci, si]), torch.stack([-si, ci])]) for ci, si in zip(c, s)]
    return torch.block_diag(*blocks)


worst = 0.0
for k in range(0, 101):
    m_k = rotation_blocks(k, omega)  # (d, d)
    pred = pe[: 1000] @ m_k.T  # 每一行是 M_k · PE(pos)，pos = 0..999
    worst = max(worst, (pred - pe[k : k + 1000]).abs().max().item())
print(f"k = 0..100、pos = 0..999：max |M_k·PE(pos) − PE(pos+k)| = {worst:.1e}")
assert worst <= 1e-10


def fit_blocks(k: int, p: int, q: int) -> torch.Tensor:
    """只看数据：用位置 p、q 和 p+k、q+k 上的编码，逐个 2×2 块解出把 PE(·) 映到 PE(·+k) 的矩阵。"""
    blocks = []
    for i in range(d_model // 2):
        X = torch.stack([pe[p, 2 * i : 2 * i + 2], pe[q, 2 * i : 2 * i + 2]], dim=1)  # 两列
        Y = torch.stack([pe[p + k, 2 * i : 2 * i + 2], pe[q + k, 2 * i : 2 * i + 2]], dim=1)
        blocks.append(Y @ torch.linalg.inv(X))
    return torch.block_diag(*blocks)


k = 5
for p in [0, 100, 500, 1000]:
    m_fit = fit_blocks(k, p, p + 7)
    diff = (m_fit - rotation_blocks(k, omega)).abs().max().item()
    print(f"由 pos = {p:4d}, {p + 7:4d} 附近的数据解出的 M_5 与公式之差：{diff:.1e}")
    assert diff <= 1e-10
m_k = rotation_blocks(k, omega)
assert (m_k @ m_k.T - torch.eye(d_model, device=device, dtype=dtype)).abs().max().item() <= 1e-10  # 正交
assert (rotation_blocks(-k, omega) - m_k.T).abs().max().item() <= 1e-10  # M_{-k} = M_k^T
# --8<-- [end:mk]

# --8<-- [start:dot]
print(" k   PE(pos)·PE(pos+k) 的最小值 最大值    Σ cos(kω_i)")
dot_of = {}
for k in [0, 1, 2, 5, 10, 50]:
    dots = (pe[:1000] * pe[k : k + 1000]).sum(dim=1)  # pos = 0..999
    formula = torch.cos(k * omega).sum().item()
    print(f"{k:2d}   {dots.min().item():10.6f} {dots.max().item():10.6f}   {formula:10.6f}")
    assert (dots - formula).abs().max().item() <= 1e-10
    dot_of[k] = formula
assert dot_of[50] > dot_of[10]  # 点积随距离整体变小，但不单调
# --8<-- [end:dot]

# --8<-- [start:figure]
pe_fig = sinusoidal_pe(64, 64).cpu()
ks = torch.arange(0, 64)
dot_k = (sinusoidal_pe(1, 64) @ sinusoidal_pe(64, 64).T)[0].cpu()
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
im = ax1.imshow(pe_fig.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
ax1.set_xlabel("维度 j")
ax1.set_ylabel("位置 pos")
ax1.set_title("正弦位置编码 PE（d = 64）")
fig.colorbar(im, ax=ax1)
ax2.plot(ks.numpy(), dot_k.numpy(), marker=".")
ax2.set_xlabel("距离 k")
ax2.set_ylabel("PE(0)·PE(k)")
ax2.set_title("点积只取决于距离 k")
fig.savefig("positional_sinusoid.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]


# --8<-- [start:rope]
# 容差 ±0.0000000001：这一段打印的误差是浮点舍入（1e-16 量级），在其他平台上末几位会不同
def rope_complex(x: torch.Tensor, m: int, theta: torch.Tensor) -> torch.Tensor:
    """复数形式：把 (x_{2i}, x_{2i+1}) 看成复数 x_{2i} + i·x_{2i+1}，乘以 e^{i·m·θ_i}。"""
    z = torch.view_as_complex(x.reshape(-1, 2).contiguous())  # (d/2,)
    z = z * torch.polar(torch.ones_like(theta), m * theta)
    return torch.view_as_real(z).reshape(-1)


def rope_real(x: torch.Tensor, m: int, theta: torch.Tensor) -> torch.Tensor:
    """实数形式：每一对 (x_{2i}, x_{2i+1}) 左乘 2×2 旋转矩阵 [[cos mθ_i, -sin mθ_i], [sin mθ_i, cos mθ_i]]。"""
    c, s = torch.cos(m * theta), torch.sin(m * theta)
    x0, x1 = x[0::2], x[1::2]
    out = torch.empty_like(x)
    out[0::2] = x0 * c - x1 * s
    out[1::2] = x0 * s + x1 * c
    return out


d_head = 16
theta = 10000.0 ** (-torch.arange(0, d_head, 2, device=device, dtype=dtype) / d_head)  # θ_i，与 ω_i 相同
q = torch.randn(d_head, device=device, dtype=dtype)
k_vec = torch.randn(d_head, device=device, dtype=dtype)
err_forms = max((rope_complex(v, m, theta) - rope_real(v, m, theta)).abs().max().item()
                for v in (q, k_vec) for m in range(0, 200))
print(f"复数形式与实数形式（m = 0..199）的最大差：{err_forms:.1e}")
assert err_forms <= 1e-10

scores = {}
for m, n in [(3, 1), (10, 8), (100, 98), (1000, 998)]:
    scores[(m, n)] = torch.dot(rope_real(q, m, theta), rope_real(k_vec, n, theta)).item()
    print(f"m = {m:4d}, n = {n:4d}, m − n = {m - n}：⟨RoPE(q, m), RoPE(k, n)⟩ = {scores[(m, n)]:.6f}")
s0 = scores[(3, 1)]
assert all(abs(s - s0) <= 1e-10 for s in scores.values())
# 与直接按相对位置旋转一次的结果相同：⟨R_m q, R_n k⟩ = ⟨R_{m−n} q, k⟩
assert abs(torch.dot(rope_real(q, 2, theta), k_vec).item() - s0) <= 1e-10
print(f"不旋转时 ⟨q, k⟩ = {torch.dot(q, k_vec).item():.6f}；m − n = 5 时 = "
      f"{torch.dot(rope_real(q, 5, theta), k_vec).item():.6f}")

norm_err = max(abs(rope_real(q, m, theta).norm().item() - q.norm().item()) for m in range(0, 200))
print(f"‖RoPE(q, m)‖ 与 ‖q‖ 的最大差（m = 0..199）：{norm_err:.1e}")
assert norm_err <= 1e-10
# --8<-- [end:rope]

# --8<-- [start:learned]
max_len = 512
learned = nn.Embedding(max_len, d_model).to(device, dtype)  # 每个位置一个可学习的向量
n_params = sum(p.numel() for p in learned.parameters())
print(f"可学习的绝对位置嵌入（{max_len} 个位置，d = {d_model}）的参数量：{n_params}")
assert n_params == max_len * d_model  # 公式：位置数 × 维度
print("它的最后一个位置编号：", learned.num_embeddings - 1, "；正弦编码与 RoPE 的参数量：0")
# --8<-- [end:learned]
