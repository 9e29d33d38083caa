# --8<-- [start:imports]
import itertools
import math
from collections import Counter
from pathlib import Path

import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BOS = -1


def find_corpus(name: str = "book_corpus.txt") -> Path:
    """与正文相同：当前目录、本文件旁边、本书仓库里的 docs/part4/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


paragraphs = [line for line in find_corpus().read_text(encoding="utf-8").splitlines() if not line.startswith("# ")]
split = {"train": [list(p) for i, p in enumerate(paragraphs) if i % 10 < 8],
         "valid": [list(p) for i, p in enumerate(paragraphs) if i % 10 == 8],
         "test": [list(p) for i, p in enumerate(paragraphs) if i % 10 == 9]}


def make_vocab(token_lists, min_freq):
    """正文 Vocab 的精简版：返回 encode 函数与词表大小（0 是 <unk>，1 是 </s>）。"""
    counts = Counter(t for tokens in token_lists for t in tokens)
    kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    stoi = {t: i for i, t in enumerate(["<unk>", "</s>"] + kept)}
    return (lambda tokens: [stoi.get(t, 0) for t in tokens] + [1]), len(stoi)


def ml_components(train_ids, seqs, n=3):
    """与正文 NGramCounts 相同：每个位置各阶的最大似然估计，上文没见过时为 nan。形状 (词元数, n)。"""
    c, ctx = [Counter() for _ in range(n)], [Counter() for _ in range(n)]
    for s in train_ids:
        padded = [BOS] * (n - 1) + s
        for i in range(n - 1, len(padded)):
            for k in range(n):
                c[k][tuple(padded[i - k:i + 1])] += 1
                ctx[k][tuple(padded[i - k:i])] += 1
    rows = []
    for s in seqs:
        padded = [BOS] * (n - 1) + s
        for i in range(n - 1, len(padded)):
            rows.append([c[k][tuple(padded[i - k:i + 1])] / ctx[k][tuple(padded[i - k:i])]
                         if ctx[k][tuple(padded[i - k:i])] else math.nan for k in range(n)])
    return torch.tensor(rows, dtype=torch.float64, device=device)


def interpolate(ml, lambdas):
    p = ml[:, 0]
    for k, lam in enumerate(lambdas, start=1):
        p = torch.where(ml[:, k].isnan(), p, lam * ml[:, k] + (1 - lam) * p)
    return p


def tune(ml_valid, n, grid=torch.arange(0.05, 1.0, 0.05, dtype=torch.float64).tolist()):
    """与正文相同：在验证集上同时搜索 λ_2, …, λ_n 的全部组合。"""
    candidates = list(itertools.product(grid, repeat=n - 1))
    nll = torch.stack([-interpolate(ml_valid, lams).log().mean() for lams in candidates])
    return candidates[nll.argmin().item()]
# --8<-- [end:imports]


# --8<-- [start:ex1]
for min_freq in (1, 2):
    encode, V = make_vocab(split["train"], min_freq)
    test_ids = [encode(p) for p in split["test"]]
    n_unk = sum(s.count(0) for s in test_ids)
    ml = ml_components([encode(p) for p in split["train"]], test_ids, n=1)
    with torch.no_grad():
        zero = (ml[:, 0] == 0).sum().item()
        ppl = (-ml[:, 0].log().mean()).exp().item()
    print(f"min_freq={min_freq}：词表 {V}，测试集 {n_unk} 个 <unk>，其中概率为 0 的 {zero} 个，一元困惑度 {ppl:.2f}")
    if min_freq == 1:
        assert zero == n_unk > 0 and math.isinf(ppl)  # 训练集里没有 <unk>：测试集的生字概率为 0，困惑度无穷大
    else:
        assert zero == 0 and math.isfinite(ppl)
# --8<-- [end:ex1]


# --8<-- [start:ex2]
encode, V = make_vocab(split["train"], 2)
train_ids = [encode(p) for p in split["train"]]
ml = {name: ml_components(train_ids, [encode(p) for p in split[name]]) for name in ("valid", "test")}
on_valid, on_test = tune(ml["valid"], 3), tune(ml["test"], 3)  # 第二个是错误做法：用测试集选超参数
test_ppl = {}
for how, lams in (("验证集", on_valid), ("测试集", on_test)):
    test_ppl[how] = (-interpolate(ml["test"], lams).log().mean()).exp().item()
    print(f"在{how}上选 λ = {[round(x, 2) for x in lams]}：测试集困惑度 {test_ppl[how]:.2f}")
assert test_ppl["测试集"] <= test_ppl["验证集"]  # 在测试集上选出的数字只会更好看：偏乐观的估计
# --8<-- [end:ex2]


# --8<-- [start:ex3]
for n in (1, 2, 3):
    ppl = (-interpolate(ml["test"], tune(ml["valid"], n)).log().mean()).exp().item()
    print(f"{n} 元：困惑度 {ppl:7.2f}，每字 {math.log2(ppl):.2f} 比特，相当于每步在 {ppl:.0f} 个字里等可能地猜")
print(f"均匀分布：困惑度 {V}，每字 {math.log2(V):.2f} 比特")
assert 1 < ppl < V  # 困惑度的下界是 1（每步都以概率 1 猜中），均匀分布给出上界式的参照 V
# --8<-- [end:ex3]
