# --8<-- [start:imports]
import math

import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
def with_temperature(logits, T):
    return torch.softmax(logits / T, dim=-1)


def entropy(probs):
    return -(probs * probs.clamp_min(1e-300).log()).sum(-1)


V = 1136
z = 3 * torch.randn(V, dtype=torch.float64, device=device)       # 任意一组 logit
for T in (1.0, 10.0, 100.0, 1e4):
    print(f"T = {T:g}：熵 {entropy(with_temperature(z, T)).item():.4f}，log V = {math.log(V):.4f}")
assert math.log(V) - entropy(with_temperature(z, 1e4)).item() < 1e-4   # T → ∞：趋于均匀分布
# top-k 取 k = 1、top-p 取很小的 p，都只留下最大的一个：与贪心相同
probs = torch.softmax(z, -1)
vals, ids = probs.sort(descending=True, stable=True)
keep_p = (vals.cumsum(-1) - vals) < 1e-9
assert keep_p.sum() == 1 and ids[0] == z.argmax()
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def n_params(vocab, n_ctx, d, layers, tied=True):              # 与正文的逐层公式相同
    return vocab * d + n_ctx * d + layers * (12 * d * d + 13 * d) + 2 * d + (0 if tied else vocab * d)


class Block(nn.Module):                                          # 与正文相同的结构，只为在 meta 设备上数参数
    def __init__(self, d):
        super().__init__()
        self.ln1, self.qkv, self.proj = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


with torch.device("meta"):
    vocab, n_ctx, d, L = 50257, 1024, 768, 12                    # GPT-2 最小配置
    parts = [nn.Embedding(vocab, d), nn.Embedding(n_ctx, d), nn.LayerNorm(d)] + [Block(d) for _ in range(L)]
    counted = sum(p.numel() for m in parts for p in m.parameters())
tied, untied = n_params(vocab, n_ctx, d, L), n_params(vocab, n_ctx, d, L, tied=False)
print(f"GPT-2 最小配置：共享输出层 {tied} 个参数，不共享 {untied} 个，多出 {untied - tied}（{(untied - tied) / tied:.1%}）")
print(f"本节的小 GPT：共享 {n_params(V, 64, 48, 2)}，不共享 {n_params(V, 64, 48, 2, tied=False)}")
assert counted == tied and untied - tied == vocab * d
# --8<-- [end:ex2]
