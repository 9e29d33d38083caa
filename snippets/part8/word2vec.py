# --8<-- [start:corpus]
import json
import math
import re
from collections import Counter
from pathlib import Path

import jieba
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
jieba.setLogLevel(60)  # 不打印加载词典的日志


def find_corpus(name: str = "book_corpus.jsonl") -> Path:
    """本书语料的带标签快照：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part8/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part8" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站第 8 部分的首页（part8/book_corpus.jsonl）下载，放在当前目录")


header, *records = [json.loads(line) for line in find_corpus().read_text(encoding="utf-8").splitlines()]
is_word = re.compile(r"[\u4e00-\u9fffA-Za-z]")  # 至少含一个汉字或字母：去掉标点、数字与空白
docs = [[w for w in jieba.lcut(r["text"]) if is_word.search(w)] for r in records]  # 精确模式
MIN_COUNT = 10
counts = Counter(w for d in docs for w in d)
itos = sorted((w for w, c in counts.items() if c >= MIN_COUNT), key=lambda w: (-counts[w], w))
stoi = {w: i for i, w in enumerate(itos)}
V = len(itos)
ids = [torch.tensor([stoi[w] for w in d if w in stoi], dtype=torch.long) for d in docs]  # 词表外的词直接删去
count = torch.tensor([counts[w] for w in itos], dtype=torch.float64)
n_tokens = int(count.sum())
print(f"{len(records)} 段，分词后 {sum(map(len, docs))} 个词（{len(counts)} 种）")
print(f"出现至少 {MIN_COUNT} 次的词 V = {V} 种，覆盖 {n_tokens} 个词")
print("最常见的 12 个：", " ".join(itos[:12]))
assert n_tokens == sum(len(d) for d in ids) and itos[0] == "的"
# --8<-- [end:corpus]


# --8<-- [start:subsample]
T_SUB = 1e-4  # 子采样阈值 t（本书语料小，取得比原论文的 1e-5 大）
freq = count / count.sum()
p_discard = (1 - torch.sqrt(T_SUB / freq)).clamp(min=0)  # Mikolov 等：以 1 - sqrt(t/f) 的概率丢掉一次出现
for w in ["的", "训练", "卷积", "注意力"]:
    print(f"{w}：出现 {counts[w]:4d} 次，频率 {freq[stoi[w]]:.5f}，丢弃概率 {p_discard[stoi[w]]:.3f}")
gen = torch.Generator().manual_seed(0)
kept = sum(int((torch.rand(len(d), generator=gen, dtype=torch.float64) >= p_discard[d]).sum()) for d in ids)
expected = float(((1 - p_discard) * count).sum())
std = float((p_discard * (1 - p_discard) * count).sum().sqrt())  # 每次出现是独立的伯努利试验
print(f"一次子采样后保留 {kept} 个词，期望 {expected:.1f} ± {std:.1f}")
assert abs(kept - expected) < 5 * std
# --8<-- [end:subsample]


# --8<-- [start:noise]
POWER = 0.75  # 噪声分布的幂（Mikolov 等，2013b）
noise = count**POWER / (count**POWER).sum()
by_hand = [c**POWER for c in count.tolist()]                 # 用 Python 浮点数独立算一遍
assert torch.allclose(noise, torch.tensor(by_hand, dtype=torch.float64) / sum(by_hand), rtol=1e-12, atol=0)
for w in ["的", "卷积", itos[-1]]:
    i = stoi[w]
    print(f"{w}：一元频率 {freq[i]:.5f} → 噪声概率 {noise[i]:.5f}（放大 {noise[i] / freq[i]:.2f} 倍）")

n_draws = 1_000_000
draws = torch.multinomial(noise.to(device), n_draws, replacement=True)
empirical = torch.bincount(draws, minlength=V).double().cpu() / n_draws
z = (empirical - noise).abs() / (noise * (1 - noise) / n_draws).sqrt()  # 每个词的频数是二项分布
print(f"{n_draws} 次抽样：经验频率与 count^0.75 分布的最大偏差 {(empirical - noise).abs().max():.2e}，"
      f"最大 |z| = {z.max():.2f}")
tail = math.erfc(5 / math.sqrt(2))                       # 标准正态 |z| > 5 的概率
print(f"单个词 |z| > 5 的概率 {tail:.1e}，对 {V} 个词取并不超过 {V * tail:.1e}")
assert z.max() < 5 and V * tail < 0.01
# --8<-- [end:noise]


# --8<-- [start:loss]
def sgns_loss(v_c, u_o, u_neg):
    """v_c: (B, d) 中心词向量；u_o: (B, d) 真实上下文词向量；u_neg: (B, K, d) 负样本向量。返回 (B,) 的损失。"""
    pos = (u_o * v_c).sum(-1)                               # (B,)   u_o·v_c
    neg = torch.bmm(u_neg, v_c.unsqueeze(-1)).squeeze(-1)   # (B, K) u_k·v_c
    return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)


B, K, D = 4, 5, 8
v_c, u_o, u_neg = (torch.randn(*s, dtype=torch.float64, device=device) for s in ((B, D), (B, D), (B, K, D)))
ours = sgns_loss(v_c, u_o, u_neg)
# 写法一：照公式逐项算 -log σ(u_o·v_c) - Σ_k log σ(-u_k·v_c)
formula = torch.stack([
    -torch.log(torch.sigmoid(u_o[b] @ v_c[b])) - sum(torch.log(torch.sigmoid(-u_neg[b, k] @ v_c[b])) for k in range(K))
    for b in range(B)])
# 写法二：K+1 个二分类，真实上下文的标签为 1、负样本为 0，交给 PyTorch 的带 logit 的二元交叉熵
logits = torch.cat([(u_o * v_c).sum(-1, keepdim=True), (u_neg @ v_c.unsqueeze(-1)).squeeze(-1)], dim=1)  # (B, K+1)
labels = torch.zeros_like(logits)
labels[:, 0] = 1
bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(-1)
print("本节的损失：", [round(x, 4) for x in ours.tolist()])
print(f"与公式的最大差 {(ours - formula).abs().max():.1e}，与 BCE 的最大差 {(ours - bce).abs().max():.1e}")
assert torch.allclose(ours, formula, rtol=0, atol=1e-12) and torch.allclose(ours, bce, rtol=0, atol=1e-12)
# --8<-- [end:loss]


# --8<-- [start:train]
WINDOW, DIM, BATCH, LR = 5, 50, 1024, 0.01


def make_pairs(gen):
    """一轮的 (中心词, 上下文词) 对：先子采样，再对每个中心词随机取窗口 1..WINDOW（近处的词更常被选中）。"""
    centers, contexts = [], []
    for d in ids:
        d = d[torch.rand(len(d), generator=gen, dtype=torch.float64) >= p_discard[d]]
        reach = torch.randint(1, WINDOW + 1, (len(d),), generator=gen)
        for o in range(1, min(WINDOW, len(d) - 1) + 1):
            left, right = reach[:-o] >= o, reach[o:] >= o       # 中心词的窗口够得着距离 o 吗
            centers += [d[:-o][left], d[o:][right]]
            contexts += [d[o:][left], d[:-o][right]]
    return torch.cat(centers), torch.cat(contexts)


def train_sgns(seed):
    """训练一轮 SGNS；返回训练前与训练后的中心词向量（V, DIM）和平均损失。"""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    v = torch.nn.Embedding(V, DIM).to(device)     # 中心词向量 v
    u = torch.nn.Embedding(V, DIM).to(device)     # 上下文词向量 u
    torch.nn.init.uniform_(v.weight, -0.5 / DIM, 0.5 / DIM)  # 与 word2vec 的 C 代码相同：v 小随机数，u 全零
    torch.nn.init.zeros_(u.weight)
    before = v.weight.detach().clone()
    opt = torch.optim.Adam([*v.parameters(), *u.parameters()], lr=LR)
    centers, contexts = make_pairs(gen)
    perm = torch.randperm(len(centers), generator=gen)
    centers, contexts = centers[perm].to(device), contexts[perm].to(device)
    noise_d = noise.to(device)
    losses = []
    for i in range(0, len(centers), BATCH):
        c, o = centers[i:i + BATCH], contexts[i:i + BATCH]
        negs = torch.multinomial(noise_d, len(c) * K, replacement=True).view(len(c), K)
        loss = sgns_loss(v(c), u(o), u(negs)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return before, v.weight.detach(), len(centers), losses


SEEDS = [0, 1, 2]
runs = {seed: train_sgns(seed) for seed in SEEDS}
for seed, (_, _, n_pairs, losses) in runs.items():
    print(f"种子 {seed}：{n_pairs} 个词对，{len(losses)} 步；前 20 步平均损失 {sum(losses[:20]) / 20:.3f}，"
          f"最后 20 步 {sum(losses[-20:]) / 20:.3f}")
assert all(sum(r[3][-20:]) < sum(r[3][:20]) - 20 * 0.5 for r in runs.values())  # 每个种子的损失都降了 0.5 以上
# --8<-- [end:train]


# --8<-- [start:neighbors]
def neighbors(E, word, k=5):
    X = F.normalize(E, dim=1)
    sim = X @ X[stoi[word]]
    sim[stoi[word]] = -2                                    # 排除自己
    top = sim.topk(k)
    return [(itos[i], s) for i, s in zip(top.indices.tolist(), top.values.tolist())]


E0 = runs[0][1]
QUERIES = [w for w in ["卷积", "梯度", "注意力", "损失", "词元", "量化"] if w in stoi]
for w in QUERIES:
    print(f"{w:>4}：" + "  ".join(f"{n}({s:.2f})" for n, s in neighbors(E0, w)))
# --8<-- [end:neighbors]


# --8<-- [start:check]
PARTS = ["part1", "part2", "part3", "part4", "part5", "part6", "part7", "part9", "part10", "part12"]
FREQ_MIN, SHARE = 20, 0.7
by_part = Counter((w, r["part"]) for r, d in zip(records, docs) for w in d)
specific = {}                                            # 某部分独有的词：≥ 70% 的出现在同一部分
for w in itos:
    if counts[w] >= FREQ_MIN:
        part = max(PARTS, key=lambda p: by_part[(w, p)])
        if by_part[(w, part)] >= SHARE * counts[w]:
            specific[w] = part
words = sorted(specific, key=lambda w: (PARTS.index(specific[w]), -counts[w], w))
idx = torch.tensor([stoi[w] for w in words], device=device)
part_of = torch.tensor([PARTS.index(specific[w]) for w in words], device=device)
same = part_of[:, None] == part_of[None, :]
off_diag = ~torch.eye(len(words), dtype=torch.bool, device=device)
print(f"部分独有的词 {len(words)} 个，同部分的词对 {int((same & off_diag).sum()) // 2} 对，"
      f"不同部分的词对 {int((~same).sum()) // 2} 对")
print("例：", "、".join(f"{w}({specific[w]})" for w in words[::12]))


def same_vs_diff(E):
    """同部分词对与不同部分词对的平均余弦相似度。"""
    X = F.normalize(E[idx].double(), dim=1)
    S = X @ X.T
    return S[same & off_diag].mean().item(), S[~same].mean().item()


def ppmi_svd(window=WINDOW, dim=DIM, power=POWER):
    """不训练的基线：窗口内共现计数 → 正的点互信息（PPMI）→ 截断 SVD。"""
    M = torch.zeros(V, V, dtype=torch.float64, device=device)
    for d in ids:
        d = d.to(device)
        for o in range(1, min(window, len(d) - 1) + 1):
            one = torch.ones(len(d) - o, dtype=torch.float64, device=device)
            M.index_put_((d[:-o], d[o:]), one, accumulate=True)
            M.index_put_((d[o:], d[:-o]), one, accumulate=True)
    p_wc = M / M.sum()
    p_w = p_wc.sum(1, keepdim=True)
    p_c = M.sum(0, keepdim=True) ** power                  # 上下文分布也取 0.75 次幂，与负采样对应
    p_c = p_c / p_c.sum()
    pmi = torch.log(p_wc / (p_w * p_c))
    ppmi = torch.where(torch.isfinite(pmi), pmi, torch.zeros_like(pmi)).clamp(min=0)
    torch.manual_seed(0)
    U, S, _ = torch.svd_lowrank(ppmi, q=dim + 10, niter=4)
    return U[:, :dim] * S[:dim].sqrt()


table = {f"训练前（随机初始化，种子 {s}）": same_vs_diff(runs[s][0]) for s in SEEDS}
table |= {f"SGNS（种子 {s}）": same_vs_diff(runs[s][1]) for s in SEEDS}
table["PPMI + SVD（不训练）"] = same_vs_diff(ppmi_svd())
print(f"{'向量':<22}{'同部分':>8}{'不同部分':>8}{'差':>8}")
for name, (s, d) in table.items():
    print(f"{name:<22}{s:8.3f}{d:8.3f}{s - d:8.3f}")
gaps = {name: s - d for name, (s, d) in table.items()}
# 种子 0–7 上 SGNS 的差在 0.184 与 0.228 之间，下限 0.12 留出余量；随机初始化的差在 ±0.007 以内
assert all(gaps[f"SGNS（种子 {s}）"] > 0.12 for s in SEEDS)
assert all(abs(gaps[f"训练前（随机初始化，种子 {s}）"]) < 0.02 for s in SEEDS)
assert gaps["PPMI + SVD（不训练）"] > 0.12
assert all(gaps["PPMI + SVD（不训练）"] > gaps[f"SGNS（种子 {s}）"] for s in SEEDS)  # 这个小语料上基线的差更大
# --8<-- [end:check]


# --8<-- [start:figure]
SHOW = ["part3", "part5", "part7", "part9"]
keep = [i for i, w in enumerate(words) if specific[w] in SHOW]
X = F.normalize(E0[idx[keep]].double(), dim=1).cpu()
X = X - X.mean(0)
_, _, Vt = torch.linalg.svd(X, full_matrices=False)
P = X @ Vt[:2].T                                         # 前两个主成分（PCA）
fig, ax = plt.subplots(figsize=(7, 5.5))
for part in SHOW:
    rows = [j for j, i in enumerate(keep) if specific[words[i]] == part]
    ax.scatter(P[rows, 0], P[rows, 1], s=14, label=f"第 {part[4:]} 部分")
    for j in rows[:5]:                                   # 每部分标出最常见的 5 个词
        ax.annotate(words[keep[j]], (P[j, 0], P[j, 1]), fontsize=8)
ax.set_xlabel("主成分 1")
ax.set_ylabel("主成分 2")
ax.legend(title="词主要出现在")
fig.savefig("word2vec_pca.svg", bbox_inches="tight")
print(f"图中 {len(keep)} 个词，来自 {len(SHOW)} 个部分")
# --8<-- [end:figure]
