# --8<-- [start:imports]
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:norm_depth]
def depth_grads(norm_first, n_layers, seed, d=64):
    """堆叠 n_layers 个编码器层，返回（最后一层 FFN 第二个权重的梯度范数，各层输入处的梯度范数）。"""
    torch.manual_seed(seed)  # 先在 CPU 上初始化，CPU 与 GPU 得到同一组权重
    layers = nn.ModuleList(
        nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, dropout=0.0,
                                   batch_first=True, norm_first=norm_first)
        for _ in range(n_layers)).to(device)
    final = nn.LayerNorm(d).to(device) if norm_first else nn.Identity()  # 前置归一化末尾再加一个 LN
    x = torch.randn(8, 16, d).to(device)
    y = torch.randn(8, 16, d).to(device)
    h, hs = x.requires_grad_(), []
    for layer in layers:
        hs.append(h)
        h = layer(h)
        h.retain_grad()
    hs.append(h)
    loss = ((final(h) - y) ** 2).mean()
    hs[0].retain_grad()
    loss.backward()
    w_last = layers[-1].linear2.weight.grad.norm().item()
    return w_last, [t.grad.norm().item() for t in hs]   # hs[0] 是输入，hs[-1] 是最后一层的输出


depths, seeds = [3, 6, 12, 24], [0, 1, 2]
w_grad = {}                                # (norm_first, 层数, 种子) -> 最后一层权重梯度范数
bottom_over_top = {False: [], True: []}    # 24 层时 输入处 / 最后一层输出处 的梯度范数之比
for norm_first in (False, True):
    for seed in seeds:
        for n in depths:
            w, g = depth_grads(norm_first, n, seed)
            w_grad[norm_first, n, seed] = w
            if n == 24:
                bottom_over_top[norm_first].append(g[0] / g[-1])
for norm_first, name in ((False, "后置归一化"), (True, "前置归一化")):
    print(name, "最后一层 W2 的梯度范数（种子 0/1/2）：")
    for n in depths:
        print(f"  {n:2d} 层:", " ".join(f"{w_grad[norm_first, n, s]:.4f}" for s in seeds))
    print("  24 层时 输入处/输出处 梯度范数之比:", " ".join(f"{r:.2f}" for r in bottom_over_top[norm_first]))

for s in seeds:
    pre = [w_grad[True, n, s] for n in depths]
    assert all(a > b for a, b in zip(pre, pre[1:]))          # 前置：层数越多，顶层梯度越小
    # 观察值：前置 24/3 层之比 0.48–0.64，后置 0.84–1.05（种子 0、1、2）；阈值各留出余量
    assert w_grad[True, 24, s] / w_grad[True, 3, s] < 0.7
    assert w_grad[False, 24, s] / w_grad[False, 3, s] > 0.8  # 后置：顶层梯度不随层数变小
# 观察值：后置 0.40–0.66，前置 1.65–1.81（种子 0、1、2）
assert max(bottom_over_top[False]) < 0.8 and min(bottom_over_top[True]) > 1.4
# --8<-- [end:norm_depth]


# --8<-- [start:rmsnorm]
def rms_norm(x, weight, eps):
    """RMSNorm：不减均值，只除以均方根；只有缩放 weight，没有偏置。"""
    rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return x / rms * weight


d, eps = 16, 1e-6
x = torch.randn(4, 10, d, dtype=torch.float64, device=device) + 3.0   # 均值不为 0
ref = nn.RMSNorm(d, eps=eps).to(device, torch.float64)
with torch.no_grad():
    ref.weight.copy_(torch.rand(d, dtype=torch.float64) + 0.5)
err_rms = (rms_norm(x, ref.weight, eps) - ref(x)).abs().max().item()
print(f"手写 RMSNorm 与 nn.RMSNorm 的最大误差: {err_rms:.1e}")
assert err_rms <= 1e-10

ln = nn.LayerNorm(d, eps=eps, bias=False).to(device, torch.float64)
with torch.no_grad():
    ln.weight.copy_(ref.weight)
gap = (ln(x) - ref(x)).abs().max().item()
xc = x - x.mean(dim=-1, keepdim=True)                                  # 先减去均值
gap_centered = (ln(xc) - ref(xc)).abs().max().item()
print(f"均值不为 0 时 LayerNorm 与 RMSNorm 的最大差: {gap:.3f}")
print(f"输入均值为 0 时两者的最大差: {gap_centered:.1e}")
assert gap > 0.1 and gap_centered <= 1e-10
n_ln, n_rms = sum(p.numel() for p in nn.LayerNorm(d).parameters()), ref.weight.numel()
print(f"参数量：LayerNorm {n_ln}，RMSNorm {n_rms}")
assert (n_ln, n_rms) == (2 * d, d)
# --8<-- [end:rmsnorm]


# --8<-- [start:swiglu]
class SwiGLU(nn.Module):
    """FFN(x) = W2 (SiLU(W1 x) ⊙ W3 x)，不带偏置（LLaMA 的写法）。"""

    def __init__(self, d, hidden):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)   # 门
        self.w3 = nn.Linear(d, hidden, bias=False)   # 值
        self.w2 = nn.Linear(hidden, d, bias=False)   # 投影回 d

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


d = 768
gelu_ffn = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.GELU(), nn.Linear(4 * d, d, bias=False))
swiglu = SwiGLU(d, 8 * d // 3)
n_gelu = sum(p.numel() for p in gelu_ffn.parameters())
n_swiglu = sum(p.numel() for p in swiglu.parameters())
print(f"d = {d}: GELU FFN（隐藏 {4 * d}）参数量 {n_gelu}，SwiGLU（隐藏 {8 * d // 3}）参数量 {n_swiglu}")
assert n_gelu == 2 * d * 4 * d == 8 * d * d                 # 两个 d×4d 矩阵
assert n_swiglu == 3 * d * (8 * d // 3) == n_gelu           # 三个 d×(8d/3) 矩阵：正好相等

# LLaMA-7B 的取法：2/3 · 4d 再向上取到 256 的倍数
d7b, multiple_of = 4096, 256
hidden_7b = multiple_of * math.ceil(int(2 * 4 * d7b / 3) / multiple_of)
print(f"d = {d7b}: 8d/3 = {8 * d7b / 3:.1f}，取到 256 的倍数为 {hidden_7b}")
assert hidden_7b == 11008

small = SwiGLU(8, 24).to(device, torch.float64)
xs = torch.randn(5, 8, dtype=torch.float64, device=device)
W1, W2, W3 = small.w1.weight, small.w2.weight, small.w3.weight
a = xs @ W1.T
by_hand = ((a * torch.sigmoid(a)) * (xs @ W3.T)) @ W2.T    # SiLU(a) = a·σ(a)
err_swiglu = (by_hand - small(xs)).abs().max().item()
print(f"按公式计算与模块输出的最大误差: {err_swiglu:.1e}")
assert err_swiglu <= 1e-10
# --8<-- [end:swiglu]


# --8<-- [start:gqa]
def gqa_attention(q, k, v, causal=False):
    """q: (B, h, n, d_head)；k, v: (B, g, n, d_head)，h 是 g 的整数倍。
    把 h 个查询头分成 g 组，每组 h/g 个头共用一组 K/V——不复制 K/V。"""
    B, h, n, dh = q.shape
    g = k.shape[1]
    qg = q.view(B, g, h // g, n, dh)                           # (B, g, h/g, n, d_head)
    scores = qg @ k.unsqueeze(2).transpose(-2, -1) / math.sqrt(dh)   # (B, g, h/g, n, n)
    if causal:
        mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(dim=-1) @ v.unsqueeze(2)              # (B, g, h/g, n, d_head)
    return out.reshape(B, h, n, dh)


try:                                   # enable_gqa 自 PyTorch 2.5 起才有；它是内置函数，inspect 读不到签名
    F.scaled_dot_product_attention(*torch.zeros(3, 1, 2, 1, 4), enable_gqa=True)
    has_enable_gqa = True
except TypeError:
    has_enable_gqa = False
print("F.scaled_dot_product_attention 支持 enable_gqa:", has_enable_gqa)
B, h, n, dh = 2, 8, 10, 16
errs = []
for g in (1, 2, 4, 8):                                         # g = 1 是 MQA，g = h 是 MHA
    q = torch.randn(B, h, n, dh, dtype=torch.float64, device=device)
    k = torch.randn(B, g, n, dh, dtype=torch.float64, device=device)
    v = torch.randn(B, g, n, dh, dtype=torch.float64, device=device)
    for causal in (False, True):
        ours = gqa_attention(q, k, v, causal)
        k_rep = k.repeat_interleave(h // g, dim=1)             # 头 i 用第 i // (h/g) 组 K/V
        v_rep = v.repeat_interleave(h // g, dim=1)
        ref = F.scaled_dot_product_attention(q, k_rep, v_rep, is_causal=causal)
        e = [(ours - ref).abs().max().item()]
        if has_enable_gqa:
            ref2 = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
            e.append((ours - ref2).abs().max().item())
        errs += e
    print(f"g = {g}: 与 SDPA 的最大误差 {max(errs[-len(e) * 2:]):.1e}")
print(f"所有设置中的最大误差: {max(errs):.1e}")
assert max(errs) <= 1e-10


def attn_params(d, h, g):
    """W_Q, W_O 为 d×d；W_K, W_V 为 d×(g·d_head)；不计偏置。"""
    dh = d // h
    return 2 * d * d + 2 * d * g * dh


for g in (32, 8, 1):
    layer = [nn.Linear(4096, 4096, bias=False, device="meta"), nn.Linear(4096, g * 128, bias=False, device="meta"),
             nn.Linear(4096, g * 128, bias=False, device="meta"), nn.Linear(4096, 4096, bias=False, device="meta")]
    count = sum(p.numel() for m in layer for p in m.parameters())
    assert count == attn_params(4096, 32, g)
    print(f"d = 4096, h = 32, g = {g:2d}: 一层注意力参数量 {count}")
# --8<-- [end:gqa]


# --8<-- [start:kv_cache]
def kv_cache_bytes(layers, g, d_head, seq_len, batch, bytes_per_elem):
    return 2 * layers * g * d_head * seq_len * batch * bytes_per_elem   # 2：K 和 V


def kv_cache_allocated(layers, g, d_head, seq_len, batch, dtype):
    """独立的计数：在 meta 设备上真的为每层分配 K、V 缓存张量（不占内存），把字节数加起来。"""
    total = 0
    for _ in range(layers):
        for _ in ("K", "V"):
            t = torch.empty(batch, g, seq_len, d_head, dtype=dtype, device="meta")
            total += t.numel() * t.element_size()
    return total


cfg = dict(layers=32, d_head=128, seq_len=4096, batch=1)        # 类似 7B 模型：32 层、32 个头
mha = kv_cache_bytes(g=32, bytes_per_elem=2, **cfg)
gqa = kv_cache_bytes(g=8, bytes_per_elem=2, **cfg)
mqa = kv_cache_bytes(g=1, bytes_per_elem=2, **cfg)
assert mha == kv_cache_allocated(g=32, dtype=torch.float16, **cfg)
assert gqa == kv_cache_allocated(g=8, dtype=torch.float16, **cfg)
for name, b in (("MHA g=32", mha), ("GQA g=8 ", gqa), ("MQA g=1 ", mqa)):
    print(f"{name}: {b} 字节 = {b / 2**30:.4f} GiB")
print(f"MHA / GQA = {mha // gqa}，MHA / MQA = {mha // mqa}")
assert mha == 2**31 and mha // gqa == 32 // 8 and mha // mqa == 32
# --8<-- [end:kv_cache]


# --8<-- [start:flash]
def flash_attention(q, k, v, block_q, block_k, causal=False):
    """分块注意力 + 在线 softmax。q, k, v: (n, d)。每次只看一块 S（block_q × block_k），
    为每个查询保存运行最大值 m、运行和 l 与未归一化的输出 acc，遇到更大的分数时重新缩放。"""
    n, d = q.shape
    out = torch.empty_like(q)
    largest_block = 0
    for i0 in range(0, n, block_q):
        qi = q[i0:i0 + block_q]
        rows = torch.arange(i0, i0 + qi.shape[0], device=q.device)
        m = torch.full((qi.shape[0], 1), float("-inf"), dtype=q.dtype, device=q.device)
        l = torch.zeros(qi.shape[0], 1, dtype=q.dtype, device=q.device)
        acc = torch.zeros_like(qi)
        for j0 in range(0, n, block_k):
            if causal and j0 > rows[-1]:
                break                                        # 整块都在对角线右上方：跳过
            kj, vj = k[j0:j0 + block_k], v[j0:j0 + block_k]
            s = qi @ kj.T / math.sqrt(d)                     # (block_q, block_k) 的分数块
            largest_block = max(largest_block, s.numel())
            if causal:
                cols = torch.arange(j0, j0 + kj.shape[0], device=q.device)
                s = s.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
            m_new = torch.maximum(m, s.max(dim=-1, keepdim=True).values)
            scale = torch.exp(m - m_new)                     # 旧的和与输出按新最大值重新缩放
            p = torch.exp(s - m_new)
            l = l * scale + p.sum(dim=-1, keepdim=True)
            acc = acc * scale + p @ vj
            m = m_new
        out[i0:i0 + block_q] = acc / l
    return out, largest_block


n, d = 50, 16
q, k, v = (torch.randn(n, d, dtype=torch.float64, device=device) for _ in range(3))
worst = 0.0
for causal in (False, True):
    scores = q @ k.T / math.sqrt(d)                              # 完整的 n×n 分数矩阵
    if causal:
        above = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
        scores = scores.masked_fill(above, float("-inf"))
    full = scores.softmax(dim=-1) @ v
    sdpa = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal)[0]
    assert (full - sdpa).abs().max().item() <= 1e-10
    for bq, bk in ((1, 1), (7, 16), (16, 7), (64, 64)):
        out, largest = flash_attention(q, k, v, bq, bk, causal)
        err = (out - full).abs().max().item()
        worst = max(worst, err)
        assert largest == min(bq, n) * min(bk, n)               # 从未出现比一块更大的分数矩阵
        print(f"causal={causal!s:5} 块 {bq:2d}×{bk:2d}: 与完整 softmax 注意力的最大误差 {err:.1e}")
print(f"8 种设置中的最大误差: {worst:.1e}")
assert worst <= 1e-10
# --8<-- [end:flash]


# --8<-- [start:flash_memory]
n_tok, d_head, bq, bk, fp16 = 4096, 128, 128, 128, 2
full_scores = n_tok * n_tok * fp16                              # 完整的 n×n 分数（或概率）矩阵
working = (bq * d_head            # Q 块
           + 2 * bk * d_head      # K、V 块
           + bq * bk              # 分数块 S
           + bq * d_head          # 输出累加 acc
           + 2 * bq) * fp16       # 运行最大值 m、运行和 l
print(f"n = {n_tok}: 每个头的 n×n 分数矩阵 {full_scores} 字节，分块的工作集 {working} 字节，"
      f"比值 {full_scores / working:.1f}")
for n_tok2 in (8192, 16384):
    ratio = (n_tok2 * n_tok2 * fp16) / full_scores
    assert ratio == (n_tok2 / n_tok) ** 2                         # 分数矩阵随 n 平方增长，工作集与 n 无关
assert full_scores == 2**25 and working < full_scores / 200
# --8<-- [end:flash_memory]
