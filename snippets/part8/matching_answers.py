# --8<-- [start:imports]
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path

import torch
from sklearn.feature_extraction.text import TfidfVectorizer

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
GENERIC = {"", "原理", "图示", "代码", "验证", "小结", "练习", "参考文献"}
used = [r for r in records if (r["h3"] or r["h2"]) not in GENERIC]
headings = defaultdict(list)
for r in used:
    if (r["h3"] or r["h2"]) not in headings[r["page"]]:
        headings[r["page"]].append(r["h3"] or r["h2"])
data = [(r["text"], r["page"], headings[r["page"]].index(r["h3"] or r["h2"])) for r in used]
train = [d for i, d in enumerate(data) if i % 10 < 8]
test = [d for i, d in enumerate(data) if i % 10 == 9]
golds = [y for _, _, y in test]


def ranking_metrics(score_lists, golds, ties="expected"):
    """正文的 recall@1 与 MRR；ties="optimistic" 时把并列都算作正确答案赢（名次 = 1 + 严格更高的个数）。"""
    r1, rr = [], []
    for s, y in zip(score_lists, golds):
        s = torch.as_tensor(s, dtype=torch.float64)
        g = int((s > s[y]).sum())
        t = int((s == s[y]).sum()) - 1 if ties == "expected" else 0
        r1.append(1.0 / (t + 1) if g == 0 else 0.0)
        rr.append(sum(1.0 / (g + k) for k in range(1, t + 2)) / (t + 1))
    return sum(r1) / len(r1), sum(rr) / len(rr)


def tfidf_scores(vectorizer, items, candidates):
    return [(vectorizer.transform(candidates(text, page, y)) @ vectorizer.transform([text]).T).toarray().ravel()
            for text, page, y in items]


same_page = lambda text, page, y: headings[page]          # noqa: E731  正文的候选集
char_tfidf = TfidfVectorizer(analyzer="char").fit([t for t, _, _ in train])
base = tfidf_scores(char_tfidf, test, same_page)
# --8<-- [end:imports]


# --8<-- [start:ex1]
constant = [[0.0] * len(headings[page]) for _, page, _ in test]
for name, scores in [("常数打分", constant), ("字的 tf-idf", base)]:
    fair = ranking_metrics(scores, golds)
    optimistic = ranking_metrics(scores, golds, ties="optimistic")
    print(f"{name}：按期望 recall@1 {fair[0]:.4f}、MRR {fair[1]:.4f}；"
          f"并列算赢 recall@1 {optimistic[0]:.4f}、MRR {optimistic[1]:.4f}")
tied = [s[y] for s, y in zip(base, golds) if int((torch.tensor(s) == s[y]).sum()) > 1]
zero = sum(v == 0 for v in tied)
print(f"tf-idf 下正确标题与别的候选并列的查询：{len(tied)} / {len(test)}，其中余弦为 0 的 {zero} 个")
assert ranking_metrics(constant, golds, ties="optimistic") == (1.0, 1.0)
fair, optimistic = ranking_metrics(base, golds), ranking_metrics(base, golds, ties="optimistic")
assert optimistic[0] > fair[0] and optimistic[1] > fair[1]
# --8<-- [end:ex1]


# --8<-- [start:ex2]
for ngram in [(1, 1), (1, 2), (2, 2)]:
    vec = TfidfVectorizer(analyzer="char", ngram_range=ngram).fit([t for t, _, _ in train])
    r1, mrr = ranking_metrics(tfidf_scores(vec, test, same_page), golds)
    print(f"ngram_range={ngram}：词表 {len(vec.vocabulary_)}，recall@1 {r1:.4f}，MRR {mrr:.4f}")
    if ngram != (1, 1):   # 加上二元组、只用二元组：recall@1 与 MRR 都高于只用单字
        assert r1 > ranking_metrics(base, golds)[0] and mrr > ranking_metrics(base, golds)[1]
# --8<-- [end:ex2]


# --8<-- [start:ex3]
rng = random.Random(0)
pool = [(page, h) for page, hs in headings.items() for h in hs]   # 全书的 (页面, 标题)


def other_pages(text, page, y):
    """候选数与正文相同：正确标题 + 从别的页随机抽的 n-1 个标题。"""
    others = rng.sample([h for p, h in pool if p != page], len(headings[page]) - 1)
    return [headings[page][y]] + others


far = tfidf_scores(char_tfidf, test, other_pages)
far_r1, far_mrr = ranking_metrics(far, [0] * len(test))
near_r1, near_mrr = ranking_metrics(base, golds)
print(f"同页的标题作干扰项：recall@1 {near_r1:.4f}，MRR {near_mrr:.4f}")
print(f"别页随机的标题作干扰项：recall@1 {far_r1:.4f}，MRR {far_mrr:.4f}")
assert far_r1 > near_r1 + 0.15 and far_mrr > near_mrr + 0.1
# --8<-- [end:ex3]
