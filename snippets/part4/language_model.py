# --8<-- [start:corpus]
import itertools
import math
from collections import Counter
from pathlib import Path

import jieba
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
jieba.setLogLevel(60)  # 不打印加载词典的日志


def find_corpus(name: str = "book_corpus.txt") -> Path:
    """本书语料快照：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part4/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


lines = find_corpus().read_text(encoding="utf-8").splitlines()
header = [line for line in lines if line.startswith("# ")]          # 说明行：提交、段数、字数
paragraphs = [line for line in lines if not line.startswith("# ")]  # 每行一段正文
split = {"train": [p for i, p in enumerate(paragraphs) if i % 10 < 8],   # 固定的划分：第 i 段按 i mod 10 分
         "valid": [p for i, p in enumerate(paragraphs) if i % 10 == 8],
         "test": [p for i, p in enumerate(paragraphs) if i % 10 == 9]}
print(header[0][2:header[0].index("（")])
for name, ps in split.items():
    print(f"{name:>5}: {len(ps):4d} 段，{sum(map(len, ps)):6d} 字符")
print("例：", split["test"][3][:40])
assert len(paragraphs) == sum(len(ps) for ps in split.values()) and min(map(len, paragraphs)) > 0
# --8<-- [end:corpus]


# --8<-- [start:vocab]
class Vocab:
    """词表：训练集中出现至少 min_freq 次的词元按频数排序，其余都映射到 <unk>；</s> 表示段落结束。"""

    def __init__(self, token_lists, min_freq=2):
        self.counts = Counter(t for tokens in token_lists for t in tokens)
        kept = sorted((t for t, c in self.counts.items() if c >= min_freq), key=lambda t: (-self.counts[t], t))
        self.itos = ["<unk>", "</s>"] + kept
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        return [self.stoi.get(t, 0) for t in tokens] + [1]  # 生词 -> 0（<unk>），末尾加 </s>


def coverage(vocab, token_lists):
    tokens = [t for tokens in token_lists for t in tokens]
    return sum(t in vocab.stoi for t in tokens) / len(tokens)


chars = {name: [list(p) for p in ps] for name, ps in split.items()}
words = {name: [[w for w in jieba.lcut(p) if w.strip()] for p in ps] for name, ps in split.items()}  # 空白不算词
print("分词示例：", " / ".join(words["test"][3][:14]))
for unit, tokens in (("字", chars), ("词", words)):
    n_train = sum(map(len, tokens["train"]))
    for min_freq in (1, 2, 5):
        v = Vocab(tokens["train"], min_freq)
        print(f"{unit}：训练集 {n_train:6d} 个词元，min_freq={min_freq} 时词表 {len(v):5d}（含 <unk>、</s>），"
              f"覆盖训练集 {coverage(v, tokens['train']):.2%}、测试集 {coverage(v, tokens['test']):.2%}")
char_vocab = Vocab(chars["train"], min_freq=2)
word_vocab = Vocab(words["train"], min_freq=2)
assert coverage(char_vocab, chars["test"]) > coverage(word_vocab, words["test"])  # 字的词表小，生词却更少
assert coverage(Vocab(chars["train"], 1), chars["train"]) == 1.0                 # min_freq=1：训练集没有生词
# --8<-- [end:vocab]


# --8<-- [start:zipf]
def zipf_slope(counts, top=1000):
    """rank–frequency 在双对数坐标下的最小二乘斜率（只用前 top 名，尾部的频数 1、2 是一级级台阶）。"""
    freq = torch.tensor(sorted(counts.values(), reverse=True)[:top], dtype=torch.float64, device=device)
    x = torch.log(torch.arange(1, len(freq) + 1, dtype=torch.float64, device=device))
    y = torch.log(freq)
    return (((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()).item()


fig, ax = plt.subplots(figsize=(6, 4.2))
slopes = {}
for unit, vocab in (("字", char_vocab), ("词", word_vocab)):
    freq = sorted(vocab.counts.values(), reverse=True)
    slopes[unit] = zipf_slope(vocab.counts)
    ax.loglog(range(1, len(freq) + 1), freq, label=f"{unit}（{len(freq)} 种，前 1000 名斜率 {slopes[unit]:.2f}）")
    top = sorted(vocab.counts, key=lambda t: (-vocab.counts[t], t))[:10]
    print(f"{unit}：最常见的 10 个 {' '.join(t if t.strip() else '␣' for t in top)}；"
          f"前 1000 名的双对数斜率 {slopes[unit]:.2f}")
ranks = torch.arange(1, 10001, dtype=torch.float64)
ax.loglog(ranks, 1e4 / ranks, "k--", lw=1, label="斜率 −1 的参考线")
ax.set_xlabel("名次（按频数从高到低）")
ax.set_ylabel("频数（训练集）")
ax.legend()
fig.savefig("zipf.svg", bbox_inches="tight")
assert -1.3 < slopes["词"] < -0.8 and slopes["字"] < slopes["词"] + 0.05  # 词的斜率接近 −1
# --8<-- [end:zipf]


# --8<-- [start:ngram]
BOS = -1  # 段首的填充，只出现在上文里，不是模型要预测的词元


class NGramCounts:
    """n 元语法的计数：c[k][(上文…, w)] 与 ctx[k][上文]，上文长度 k = 0, …, n-1。"""

    def __init__(self, seqs, n):
        self.n = n
        self.c = [Counter() for _ in range(n)]
        self.ctx = [Counter() for _ in range(n)]
        for s in seqs:
            padded = [BOS] * (n - 1) + s
            for i in range(n - 1, len(padded)):
                for k in range(n):
                    h = tuple(padded[i - k:i])
                    self.c[k][h + (padded[i],)] += 1
                    self.ctx[k][h] += 1

    def components(self, seqs):
        """测试序列每个位置的各阶最大似然估计 c(h,w)/c(h)；上文没见过时记为 nan。"""
        rows = []
        for s in seqs:
            padded = [BOS] * (self.n - 1) + s
            for i in range(self.n - 1, len(padded)):
                row = []
                for k in range(self.n):
                    h = tuple(padded[i - k:i])
                    row.append(self.c[k][h + (padded[i],)] / self.ctx[k][h] if self.ctx[k][h] else math.nan)
                rows.append(row)
        return torch.tensor(rows, dtype=torch.float64, device=device)  # (词元数, n)


def interpolate(ml, lambdas):
    """逐阶插值：P_k = λ_k·最大似然_k + (1-λ_k)·P_{k-1}；上文没见过时 P_k = P_{k-1}。P_1 就是一元频率。"""
    p = ml[:, 0]
    for k, lam in enumerate(lambdas, start=1):
        p = torch.where(ml[:, k].isnan(), p, lam * ml[:, k] + (1 - lam) * p)
    return p


train_ids = [char_vocab.encode(p) for p in chars["train"]]
counts = NGramCounts(train_ids, n=3)
ml = {name: counts.components([char_vocab.encode(p) for p in chars[name]]) for name in ("valid", "test")}
assert (ml["test"][:, 0] > 0).all()  # <unk> 也在训练集里出现过，所以一元模型不会给任何测试词元概率 0

def tune(ml_valid, n, grid=torch.arange(0.05, 1.0, 0.05, dtype=torch.float64).tolist()):
    """在验证集上网格搜索 n 元模型的 λ_2, …, λ_n（同时搜索全部组合），取验证集交叉熵最小的一组。"""
    candidates = list(itertools.product(grid, repeat=n - 1))
    nll = torch.stack([-interpolate(ml_valid, lams).log().mean() for lams in candidates])
    return candidates[nll.argmin().item()]


best = {n: tune(ml["valid"], n) for n in (1, 2, 3)}  # 每个模型各自选 λ；测试集只用来报告结果
ppl = {}
for n in (1, 2, 3):
    nll = {name: -interpolate(m, best[n]).log().mean().item() for name, m in ml.items()}
    ppl[n] = math.exp(nll["test"])
    print(f"{n} 元，λ = {[round(lam, 2) for lam in best[n]]}：验证集困惑度 {math.exp(nll['valid']):7.2f}，"
          f"测试集困惑度 {ppl[n]:7.2f}")
print(f"测试集 {len(ml['test'])} 个词元（含每段的 </s>），词表 {len(char_vocab)}")
assert ppl[3] < ppl[2] - 5 and ppl[2] < ppl[1] - 50  # 阶数越高越好：三元 < 二元 < 一元
# --8<-- [end:ngram]


# --8<-- [start:perplexity]
# 把插值二元模型写成完整的条件分布矩阵 P[上一字, 下一字]（(V+1, V)，最后一行是段首 BOS）
V = len(char_vocab)
uni = torch.zeros(V, dtype=torch.float64, device=device)
for (w,), c in counts.c[0].items():
    uni[w] = c / counts.ctx[0][()]
big = torch.zeros(V + 1, V, dtype=torch.float64, device=device)
for (h, w), c in counts.c[1].items():
    big[h, w] = c                                              # h = BOS = -1 正好落在最后一行
seen = big.sum(1, keepdim=True)
lam = best[2][0]
P = torch.where(seen > 0, lam * big / seen.clamp_min(1) + (1 - lam) * uni, uni)
assert torch.allclose(P.sum(1), torch.ones(V + 1, dtype=torch.float64, device=device), atol=1e-12)  # 每行是分布

test_ids = [char_vocab.encode(p) for p in chars["test"]]
prev = torch.tensor([h for s in test_ids for h in [BOS] + s[:-1]], device=device)
nxt = torch.tensor([w for s in test_ids for w in s], device=device)
ce = F.cross_entropy(P.log()[prev], nxt)                       # 把 log P 当作 logit：交叉熵 = 平均负对数概率
ppl_ce = ce.exp().item()
ppl_def = 1.0
for p in P[prev, nxt].tolist():
    ppl_def *= p ** (-1 / len(nxt))                            # 定义：1/P(全部测试文本) 的 N 次方根
print(f"交叉熵 {ce.item():.4f} nat，exp(交叉熵) = {ppl_ce:.4f}，按定义连乘 = {ppl_def:.4f}，插值计算 = {ppl[2]:.4f}")
assert abs(ppl_ce - ppl_def) < 1e-9 * ppl_def and abs(ppl_ce - ppl[2]) < 1e-9 * ppl_def

uniform = torch.full((len(nxt), V), 1 / V, dtype=torch.float64, device=device)
ppl_uniform = F.nll_loss(uniform.log(), nxt).exp().item()
print(f"均匀分布（每步在 {V} 个字里等可能地选）的困惑度 {ppl_uniform:.4f}")
assert abs(ppl_uniform - V) < 1e-9 * V  # 困惑度 = 有效分支数：均匀地在 V 个里选，困惑度就是 V
# --8<-- [end:perplexity]
