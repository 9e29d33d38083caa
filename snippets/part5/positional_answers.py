# --8<-- [start:imports]
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float64


def sinusoidal_pe(n: int, d: int) -> torch.Tensor:
    """与正文相同：PE[pos, 2i] = sin(pos·ω_i)，PE[pos, 2i+1] = cos(pos·ω_i)。"""
    pos = torch.arange(n, device=device, dtype=dtype)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d, 2, device=device, dtype=dtype) / d)
    pe = torch.zeros(n, d, device=device, dtype=dtype)
    pe[:, 0::2] = torch.sin(pos * omega)
    pe[:, 1::2] = torch.cos(pos * omega)
    return pe


def rope_real(x: torch.Tensor, m: int, theta: torch.Tensor) -> torch.Tensor:
    """与正文相同：相邻的两维 (x_{2i}, x_{2i+1}) 旋转角度 m·θ_i。"""
    c, s = torch.cos(m * theta), torch.sin(m * theta)
    out = torch.empty_like(x)
    out[0::2] = x[0::2] * c - x[1::2] * s
    out[1::2] = x[0::2] * s + x[1::2] * c
    return out
# --8<-- [end:imports]

# --8<-- [start:ex1]
vocab = {"我": 0, "爱": 1, "你": 2}
d = 8
emb = nn.Embedding(len(vocab), d).to(device, dtype)
attn = nn.MultiheadAttention(d, num_heads=2, batch_first=True).to(device, dtype).eval()


def self_attend(sentence: str, with_pe: bool) -> torch.Tensor:
    ids = torch.tensor([[vocab[c] for c in sentence]], device=device)
    x = emb(ids)
    if with_pe:
        x = x + sinusoidal_pe(len(sentence), d)  # 唯一的改动：加上位置编码
    with torch.no_grad():
        out, _ = attn(x, x, x)
    return out[0]


for with_pe in (False, True):
    a, b = self_attend("我爱你", with_pe), self_attend("你爱我", with_pe)
    diff = (a[0] - b[2]).abs().max().item()  # 「我」在两句中的输出
    print(f"加位置编码：{with_pe!s:5}  「我」在两句中的输出之差：{diff:.3f}")
    if with_pe:
        assert diff > 0.01
    else:
        assert diff <= 1e-10
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 容差 ±0.0000000001：这一段打印的误差是浮点舍入（1e-16 量级），在其他平台上末几位会不同
d_head = 16
theta = 10000.0 ** (-torch.arange(0, d_head, 2, device=device, dtype=dtype) / d_head)


def rope_half(x: torch.Tensor, m: int, theta: torch.Tensor) -> torch.Tensor:
    """「前一半、后一半」配对：第 i 维与第 i + d/2 维一起旋转（GPT-NeoX、LLaMA 的常见实现）。"""
    h = x.shape[-1] // 2
    x1, x2 = x[:h], x[h:]
    c, s = torch.cos(m * theta), torch.sin(m * theta)
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c])


# 交错排列：把 (x_0..x_{h-1}, x_h..x_{d-1}) 重排成 (x_0, x_h, x_1, x_{h+1}, ...)
h = d_head // 2
interleave = torch.stack([torch.arange(h), torch.arange(h) + h], dim=1).reshape(-1).to(device)
q = torch.randn(d_head, device=device, dtype=dtype)
k = torch.randn(d_head, device=device, dtype=dtype)
err = 0.0
for m in range(100):
    via_adjacent = torch.empty_like(q)
    via_adjacent[interleave] = rope_real(q[interleave], m, theta)  # 重排 → 相邻配对旋转 → 排回去
    err = max(err, (rope_half(q, m, theta) - via_adjacent).abs().max().item())
print(f"两种配对方式（重排维度后）的最大差：{err:.1e}")
assert err <= 1e-10
s = [torch.dot(rope_half(q, m, theta), rope_half(k, n, theta)).item() for m, n in [(3, 1), (10, 8), (100, 98)]]
print("前后一半配对的 ⟨RoPE(q, m), RoPE(k, n)⟩，m − n = 2：", [f"{v:.6f}" for v in s])
assert max(s) - min(s) <= 1e-10
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 容差 ±0.0000000001：这一段打印的误差是浮点舍入（1e-16 量级），在其他平台上末几位会不同
pe = sinusoidal_pe(1200, d_head)
for kk in [1, 5, 10]:
    fwd = (pe[100:1100] * pe[100 + kk : 1100 + kk]).sum(dim=1)  # PE(pos)·PE(pos+k)
    bwd = (pe[100:1100] * pe[100 - kk : 1100 - kk]).sum(dim=1)  # PE(pos)·PE(pos−k)
    print(f"k = {kk:2d}：PE(pos)·PE(pos+k) = {fwd[0].item():.6f}，PE(pos)·PE(pos−k) = {bwd[0].item():.6f}，pos = 100..1099 上的最大差 {(fwd - bwd).abs().max().item():.1e}")
    assert (fwd - bwd).abs().max().item() <= 1e-10
# 编码本身分得清方向：PE(pos+k) 与 PE(pos−k) 不同
assert (pe[105] - pe[95]).abs().max().item() > 0.1
# RoPE 的分数一般分得清方向：m − n = 2 与 m − n = −2 不同（因为 q ≠ k）
plus = torch.dot(rope_real(q, 3, theta), rope_real(k, 1, theta)).item()
minus = torch.dot(rope_real(q, 1, theta), rope_real(k, 3, theta)).item()
print(f"RoPE：m − n = 2 时 {plus:.6f}，m − n = −2 时 {minus:.6f}")
assert abs(plus - minus) > 0.01
# --8<-- [end:ex3]
