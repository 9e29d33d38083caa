# --8<-- [start:imports]
import json
import math
import re
from collections import Counter
from pathlib import Path

import jieba
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
jieba.setLogLevel(60)


def find_corpus(name: str = "book_corpus.jsonl") -> Path:
    """与正文相同：当前目录、本文件旁边、本书仓库里的 docs/part8/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part8" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站第 8 部分的首页（part8/book_corpus.jsonl）下载，放在当前目录")


header, *records = [json.loads(line) for line in find_corpus().read_text(encoding="utf-8").splitlines()]
is_word = re.compile(r"[\u4e00-\u9fffA-Za-z]")
docs = [[w for w in jieba.lcut(r["text"]) if is_word.search(w)] for r in records]   # 与正文相同的分词与过滤
counts = Counter(w for d in docs for w in d)
itos = sorted((w for w, c in counts.items() if c >= 10), key=lambda w: (-counts[w], w))
stoi = {w: i for i, w in enumerate(itos)}
count = torch.tensor([counts[w] for w in itos], dtype=torch.float64)
ids = [torch.tensor([stoi[w] for w in d if w in stoi], dtype=torch.long) for d in docs]
V = len(itos)
# --8<-- [end:imports]


# --8<-- [start:ex1]
top10 = slice(0, 10)                              # 最常见的 10 个词（itos 按频数排序）
rare = count < 20                                 # 出现 10–19 次的词
print(f"V = {V}，其中出现不到 20 次的词 {int(rare.sum())} 种")
share = {}
for power in (0.0, 0.5, 0.75, 1.0):
    q = count**power / (count**power).sum()
    share[power] = (q[top10].sum().item(), q[rare].sum().item())
    print(f"幂 {power:.2f}：最常见 10 个词占负样本的 {share[power][0]:.1%}，罕见词合占 {share[power][1]:.1%}")
# 幂越小，常见词的份额越小、罕见词的份额越大；0.75 介于一元分布（幂 1）与均匀分布（幂 0）之间
powers = sorted(share)
assert all(share[a][0] < share[b][0] and share[a][1] > share[b][1] for a, b in zip(powers, powers[1:]))
# --8<-- [end:ex1]


# --8<-- [start:ex2]
K, D, B = 5, 50, 64
v = torch.empty(V, D, dtype=torch.float64, device=device).uniform_(-0.5 / D, 0.5 / D).requires_grad_()
u = torch.zeros(V, D, dtype=torch.float64, device=device, requires_grad=True)   # 与正文相同：u 全零
c, o = torch.randint(V, (B,), device=device), torch.randint(V, (B,), device=device)
neg = torch.randint(V, (B, K), device=device)
vc = v[c]
pos = (u[o] * vc).sum(-1)
ng = torch.bmm(u[neg], vc.unsqueeze(-1)).squeeze(-1)
loss = (-F.logsigmoid(pos) - F.logsigmoid(-ng).sum(-1)).mean()
loss.backward()
print(f"第一步的损失 {loss.item():.6f}，(K+1)·ln 2 = {(K + 1) * math.log(2):.6f}")
print(f"v 的梯度最大绝对值 {v.grad.abs().max().item():.1e}，u 的梯度最大绝对值 {u.grad.abs().max().item():.1e}")
# 手算 u 的梯度：∂L/∂u_o = (σ(s_o) - 1) v_c / B，∂L/∂u_k = σ(s_k) v_c / B，按词累加
g_u = torch.zeros_like(u)
g_u.index_add_(0, o, (torch.sigmoid(pos) - 1).unsqueeze(-1) * vc / B)
g_u.index_add_(0, neg.reshape(-1), (torch.sigmoid(ng).unsqueeze(-1) * vc.unsqueeze(1)).reshape(-1, D) / B)
print(f"手算的 u 梯度与 autograd 的最大差 {(g_u - u.grad).abs().max().item():.1e}")
assert abs(loss.item() - (K + 1) * math.log(2)) < 1e-12
assert v.grad.abs().max() == 0 and u.grad.abs().max() > 0
assert torch.allclose(g_u, u.grad, rtol=0, atol=1e-15)
# --8<-- [end:ex2]


# --8<-- [start:ex3]
WINDOW = 5
freq = count / count.sum()
function_words = torch.zeros(V, dtype=torch.bool)
function_words[:20] = True                        # 最常见的 20 个词（的、是、与……）


def pair_stats(t_sub, seed=0):
    """正文 make_pairs 的计数版：子采样阈值 t_sub（None 表示不做子采样）下一轮的词对数，
    以及中心词是最常见 20 个词的词对所占比例。"""
    gen = torch.Generator().manual_seed(seed)
    p_discard = torch.zeros(V, dtype=torch.float64) if t_sub is None else (1 - torch.sqrt(t_sub / freq)).clamp(min=0)
    n_pairs = n_func = 0
    for d in ids:
        d = d[torch.rand(len(d), generator=gen, dtype=torch.float64) >= p_discard[d]]
        reach = torch.randint(1, WINDOW + 1, (len(d),), generator=gen)
        for off in range(1, min(WINDOW, len(d) - 1) + 1):
            for centers in (d[:-off][reach[:-off] >= off], d[off:][reach[off:] >= off]):
                n_pairs += len(centers)
                n_func += int(function_words[centers].sum())
    return n_pairs, n_func / n_pairs


with_sub, without_sub = pair_stats(1e-4), pair_stats(None)
print(f"子采样 t=1e-4：{with_sub[0]} 个词对，中心词是最常见 20 个词的占 {with_sub[1]:.1%}")
print(f"不做子采样：  {without_sub[0]} 个词对，中心词是最常见 20 个词的占 {without_sub[1]:.1%}")
print(f"词对数是子采样时的 {without_sub[0] / with_sub[0]:.2f} 倍")
assert without_sub[0] > 2.5 * with_sub[0] and without_sub[1] > 3 * with_sub[1]
# --8<-- [end:ex3]
