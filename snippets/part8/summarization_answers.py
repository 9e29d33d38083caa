# --8<-- [start:imports]
import itertools
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

import jieba
import numpy as np
import torch
from rouge_score import rouge_scorer

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
PARTS = ["part1", "part2", "part3", "part4", "part5", "part6", "part7", "part9", "part10", "part12"]
pages = {}
for r in records:
    if r["part"] in PARTS:
        pages.setdefault(r["page"], []).append(r)
docs = []  # 与正文相同的 65 页：原理的句子、小结、导读
for page, rs in pages.items():
    body = [s.strip() for r in rs if r["h2"] == "原理" for s in re.split(r"(?<=[。！？；])", r["text"]) if len(s.strip()) >= 8]
    summary = "".join(r["text"] for r in rs if r["h2"] == "小结")
    intro = "".join(r["text"] for r in rs if r["h2"] == "")
    if body and summary and intro:
        docs.append({"body": body, "summary": summary, "intro": intro})


def rouge_n(ref: list[str], hyp: list[str], n: int) -> float:
    """ROUGE-N 的 F（正文 rouge 的精简版），ref、hyp 是已经切好的词元。"""
    r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    overlap = sum((r & h).values())
    return 2 * overlap / (sum(r.values()) + sum(h.values())) if overlap else 0.0  # 2PR/(P+R) 化简后的形式


def chars(text: str) -> list[str]:
    return [c for c in text.lower() if c.isalnum()]


def lead(body: list[str], budget: int) -> str:
    return "".join(body)[:budget]  # 前 k 句：从头取，取满与参考同样多的字符


assert len(docs) == 65
# --8<-- [end:imports]


# --8<-- [start:ex1]
def words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.isalnum()]  # 与按字一样去掉标点，只是单位换成词


by_char, by_word = {1: [], 2: []}, {1: [], 2: []}
for d in docs:
    cand = lead(d["body"], len(d["summary"]))
    for n in (1, 2):
        by_char[n].append(rouge_n(chars(d["summary"]), chars(cand), n))
        by_word[n].append(rouge_n(words(d["summary"]), words(cand), n))
for n in (1, 2):
    print(f"前 k 句 vs 小结，ROUGE-{n} F：按字 {np.mean(by_char[n]):.3f}，按 jieba 词 {np.mean(by_word[n]):.3f}")
for n in (1, 2):
    assert np.mean(by_word[n]) < np.mean(by_char[n])
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def textrank_order(body: list[str], d: float = 0.85) -> np.ndarray:
    """正文 TextRank 的紧凑版：相似度矩阵、按行归一化、幂迭代，返回按得分从高到低的句号。"""
    wl = [[w for w in jieba.lcut(s) if len(w) >= 2 and w.isalnum()] for s in body]
    n = len(body)
    W = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        if len(wl[i]) > 1 and len(wl[j]) > 1:
            W[i, j] = W[j, i] = len(set(wl[i]) & set(wl[j])) / (math.log(len(wl[i])) + math.log(len(wl[j])))
    deg = W.sum(axis=1, keepdims=True)
    P = np.where(deg > 0, W / np.where(deg > 0, deg, 1.0), 1.0 / n)
    s = np.linalg.solve(np.eye(n) - d * P.T, np.full(n, (1 - d) / n))  # 正文已证明与幂迭代相同
    return np.argsort(-s, kind="stable")


def extract(body: list[str], order, budget: int) -> str:
    picked, used = [], 0
    for i in order:
        if used >= budget:
            break
        picked.append((i, body[i][:budget - used]))
        used += len(picked[-1][1])
    return "".join(p for _, p in sorted(picked))


f1 = {"TextRank": [], "前 k 句": [], "随机": []}
for d in docs:
    ref, body = d["intro"], d["body"]
    B = len(ref)
    f1["TextRank"].append(rouge_n(chars(ref), chars(extract(body, textrank_order(body), B)), 1))
    f1["前 k 句"].append(rouge_n(chars(ref), chars(extract(body, range(len(body)), B)), 1))
    f1["随机"].append(np.mean([rouge_n(chars(ref), chars(extract(body, random.Random(s).sample(range(len(body)), len(body)), B)), 1)
                             for s in (0, 1, 2)]))
print("参考 = 导读，ROUGE-1 F（65 页平均）：" + "，".join(f"{k} {np.mean(v):.3f}" for k, v in f1.items()))
tr, ld = np.array(f1["TextRank"]), np.array(f1["前 k 句"])
print(f"逐页：TextRank 高于前 k 句 {(tr > ld).sum()} 页，高于随机 {(tr > np.array(f1['随机'])).sum()} 页")
assert min(np.mean(f1["TextRank"]), np.mean(f1["随机"])) > np.mean(f1["前 k 句"])  # 两者都高于前 k 句
assert abs(np.mean(f1["TextRank"]) - np.mean(f1["随机"])) < 0.01                    # 两者之差不到 0.01
assert (tr > ld).sum() > len(docs) / 2
# --8<-- [end:ex2]


# --8<-- [start:ex3]
class SpaceTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return text.split()


scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=SpaceTokenizer())
ref, hyp = "今天天气很好", "今天天气不好"
unspaced = scorer.score(ref, hyp)["rouge1"].fmeasure                        # 忘了先按字切开：整句是一个词元
spaced = scorer.score(" ".join(ref), " ".join(hyp))["rouge1"].fmeasure
print(f"没切开：{unspaced:.4f}；按字切开：{spaced:.4f}；完全相同的两句没切开：{scorer.score(ref, ref)['rouge1'].fmeasure:.4f}")
assert unspaced == 0.0 and abs(spaced - 5 / 6) < 1e-12
# --8<-- [end:ex3]
