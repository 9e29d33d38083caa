# --8<-- [start:imports]
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def find_corpus(name: str = "book_corpus.jsonl") -> Path:
    """与正文相同：当前目录、本文件旁边、本书仓库里的 docs/part8/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part8" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站第 8 部分的首页（part8/book_corpus.jsonl）下载，放在当前目录")


header, *records = [json.loads(line) for line in find_corpus().read_text(encoding="utf-8").splitlines()]
PARTS = ["part1", "part2", "part3", "part4", "part5", "part6", "part7", "part9", "part10", "part12"]
data = [(r["text"], PARTS.index(r["part"])) for r in records if r["part"] in PARTS]
split = {"train": [d for i, d in enumerate(data) if i % 10 < 8],
         "valid": [d for i, d in enumerate(data) if i % 10 == 8],
         "test": [d for i, d in enumerate(data) if i % 10 == 9]}
texts = {k: [t for t, _ in v] for k, v in split.items()}
labels = {k: np.array([y for _, y in v]) for k, v in split.items()}


def evaluate(pred):
    """测试集上的准确率与 macro-F1（这里直接用 scikit-learn；正文已证明从零实现与它相等）。"""
    return (pred == labels["test"]).mean(), f1_score(labels["test"], pred, average="macro")
# --8<-- [end:imports]


# --8<-- [start:ex1]
scores, preds = {}, {}
for ngrams in [(1, 1), (1, 2)]:
    vec = TfidfVectorizer(analyzer="char", ngram_range=ngrams, min_df=2, sublinear_tf=True)
    A, B = vec.fit_transform(texts["train"]), vec.transform(texts["test"])
    pred = LogisticRegression(C=10.0, max_iter=1000).fit(A, labels["train"]).predict(B)
    scores[ngrams], preds[ngrams] = evaluate(pred), pred
    print(f"字的 n 元 {ngrams}：{A.shape[1]:5d} 维，准确率 {scores[ngrams][0]:.3f}，macro-F1 {scores[ngrams][1]:.3f}")
assert scores[(1, 2)][0] > scores[(1, 1)][0] + 0.03 and scores[(1, 2)][1] > scores[(1, 1)][1] + 0.03
# --8<-- [end:ex1]


# --8<-- [start:ex2]
# 不加权的结果就是练习 1 里 (1, 2) 的那次拟合；A、B 也是它的特征
weighted = LogisticRegression(C=10.0, max_iter=1000, class_weight="balanced").fit(A, labels["train"]).predict(B)
result = {}
for name, pred in [("None", preds[(1, 2)]), ("balanced", weighted)]:
    acc, f1 = evaluate(pred)
    recall_1 = (pred[labels["test"] == 0] == 0).mean()   # 第 1 部分（类别 0）的召回率
    result[name] = (acc, f1, recall_1)
    print(f"class_weight={name:>8}：准确率 {acc:.3f}，macro-F1 {f1:.3f}，第 1 部分的召回率 {recall_1:.3f}")
# 在这一个划分上：加权后三个数都更高，第 1 部分的召回率升得最多
assert all(result["balanced"][i] > result["None"][i] for i in range(3))
assert result["balanced"][2] - result["None"][2] > 0.2
# --8<-- [end:ex2]


# --8<-- [start:ex3]
torch.manual_seed(0)
embed = nn.Embedding(100, 8, padding_idx=0).to(device)
conv = nn.Conv1d(8, 4, 3).to(device)
x = torch.tensor([[5, 7, 9, 0, 0, 0, 0]], device=device)      # 3 个字，后面补 4 个 <pad>
h = F.relu(conv(embed(x).transpose(1, 2)))                    # (1, 4, 5)：5 个窗口
loss = h.amax(dim=2).sum()
loss.backward()
print("全是 <pad> 的窗口（第 4、5 个）的输出：", [[round(v, 3) for v in row] for row in h[0, :, 3:].T.tolist()])
print("relu(偏置)：", [round(v, 3) for v in F.relu(conv.bias).tolist()])
print("<pad> 的词向量的梯度为 0：", bool((embed.weight.grad[0] == 0).all()))
assert torch.allclose(h[0, :, 3], F.relu(conv.bias)) and torch.allclose(h[0, :, 4], F.relu(conv.bias))
assert (embed.weight[0] == 0).all() and (embed.weight.grad[0] == 0).all()
# --8<-- [end:ex3]
