# --8<-- [start:imports]
import math

import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
def kv_cache_bytes(layers, g, d_head, seq_len, batch, bytes_per_elem):
    return 2 * layers * g * d_head * seq_len * batch * bytes_per_elem


cfg = dict(layers=80, d_head=128, seq_len=4096, bytes_per_elem=2)   # 类似 70B：80 层、64 个查询头
per_seq_mha = kv_cache_bytes(g=64, batch=1, **cfg)
per_seq_gqa = kv_cache_bytes(g=8, batch=1, **cfg)
budget = 40 * 2**30                                                  # 留给 KV 缓存的 40 GiB
print(f"每条序列：MHA {per_seq_mha / 2**30:.2f} GiB，GQA {per_seq_gqa / 2**30:.2f} GiB")
print(f"40 GiB 能放下的序列数：MHA {budget // per_seq_mha}，GQA {budget // per_seq_gqa}")
assert per_seq_mha // per_seq_gqa == 64 // 8
assert budget // per_seq_mha == 4 and budget // per_seq_gqa == 32
# --8<-- [end:ex1]


# --8<-- [start:ex2]
x = torch.randn(6, 32, dtype=torch.float64, device=device)


def rms(x, eps=0.0):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def layer_norm(x, eps=0.0):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)


scale_rms = (rms(3.7 * x) - rms(x)).abs().max().item()
shift_rms = (rms(x + 2.0) - rms(x)).abs().max().item()
shift_ln = (layer_norm(x + 2.0) - layer_norm(x)).abs().max().item()
print(f"RMSNorm：乘 3.7 后的变化 {scale_rms:.1e}，加 2.0 后的变化 {shift_rms:.3f}")
print(f"LayerNorm：加 2.0 后的变化 {shift_ln:.1e}")
assert scale_rms <= 1e-12 and shift_ln <= 1e-12 and shift_rms > 0.1
# --8<-- [end:ex2]


# --8<-- [start:ex3]
s = torch.tensor([100.0, 101.0, 99.0, 102.0], device=device)   # float32 中 exp(88.8) 就已溢出
naive = torch.exp(s) / torch.exp(s).sum()

m, l = torch.tensor(float("-inf"), device=device), torch.tensor(0.0, device=device)
for si in s:                                                    # 一次读一个分数的在线 softmax
    m_new = torch.maximum(m, si)
    l = l * torch.exp(m - m_new) + torch.exp(si - m_new)
    m = m_new
online = torch.exp(s - m) / l
print("直接 exp 的 softmax:", naive.tolist())
print("在线 softmax:", [round(p, 4) for p in online.tolist()])
print(f"在线 m + log l = {(m + torch.log(l)).item():.4f}，torch.logsumexp = {torch.logsumexp(s, 0).item():.4f}")
assert torch.isnan(naive).all()
assert torch.allclose(online, torch.softmax(s, 0), atol=1e-6)
assert abs((m + torch.log(l)).item() - torch.logsumexp(s, 0).item()) < 1e-4
# --8<-- [end:ex3]
