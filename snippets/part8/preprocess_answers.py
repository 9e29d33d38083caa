# --8<-- [start:imports]
import io
import json
import re
from collections import Counter
from pathlib import Path

import jieba
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
jieba.setLogLevel(60)


def find_corpus(name: str = "book_corpus.jsonl") -> Path:
    """本书语料的带标签快照：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part8/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part8" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站第 8 部分的首页（part8/book_corpus.jsonl）下载，放在当前目录")


header, *records = [json.loads(line) for line in find_corpus().read_text(encoding="utf-8").splitlines()]
texts = [r["text"] for r in records]
# --8<-- [end:imports]


# --8<-- [start:ex1]
RULES = [  # 与正文相同的规则与顺序
    ("代码块", re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.M | re.S), ""),
    ("行内代码", re.compile(r"`[^`\n]+`"), ""),
    ("行间公式", re.compile(r"\$\$.+?\$\$", re.S), ""),
    ("行内公式", re.compile(r"\$[^$\n]+\$"), ""),
    ("图片", re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),
    ("链接", re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    ("HTML 标签", re.compile(r"</?[A-Za-z][^>]*>"), ""),
]


def clean_markdown(markdown, rules=RULES):
    for _, pattern, repl in rules:
        markdown = pattern.sub(repl, markdown)
    paragraphs = []
    for block in re.split(r"\n\s*\n", markdown):
        p = re.sub(r"\s+", " ", block).strip()
        p = re.sub(r" ?([，。；：、！？）」]) ?", r"\1", p)
        p = re.sub(r"([（「]) ", r"\1", p)
        if p:
            paragraphs.append(p)
    return paragraphs


def swapped(rules, a, b):
    """把名为 a、b 的两条规则对调位置。"""
    names = [r[0] for r in rules]
    i, j = names.index(a), names.index(b)
    rules = list(rules)
    rules[i], rules[j] = rules[j], rules[i]
    return rules


image = "![名次–频数图](figures/zipf.svg)\n\n见上图"
code = "共 <output>6558</output> 种，`<unk>` 除外"
print("原顺序      ：", clean_markdown(image), clean_markdown(code))
bad1 = clean_markdown(image, swapped(RULES, "图片", "链接"))
bad2 = clean_markdown(code, swapped(RULES, "行内代码", "HTML 标签"))
print("链接先于图片：", bad1)
print("HTML 先于代码：", bad2)
assert bad1 == ["!名次–频数图", "见上图"]  # 链接规则吃掉了 [..](..)，剩下感叹号和图的说明
assert bad2 == ["共 6558 种，`` 除外"]     # <unk> 被当成标签删掉，两个反引号之间空了，行内代码规则不再匹配
# --8<-- [end:ex1]


# --8<-- [start:ex2]
book = jieba.Tokenizer()
TERMS = """反向传播 批归一化 层归一化 残差连接 自注意力 多头注意力 负采样 词向量 学习率 交叉熵 全连接层 特征图
卷积核 感受野 隐状态 预训练 最大池化 权重衰减 正则化 梯度下降 激活函数 丢弃法 超参数 语言模型 损失函数
过拟合 困惑度 束搜索 位置编码 循环神经网络 梯度消失 迁移学习 优化器 卷积层 小批量 词元 早停 微调""".split()
book.load_userdict(io.StringIO("\n".join(TERMS)))  # 与正文相同的用户词典
han = re.compile(r"[\u4e00-\u9fff]+")
test = [t for i, t in enumerate(texts) if i % 10 == 9]
new_words, n_tokens = {}, {}
for hmm in (True, False):
    tokens = [w for t in test for w in book.cut(t, HMM=hmm) if w.strip()]
    n_tokens[hmm] = len(tokens)
    new_words[hmm] = Counter(w for w in tokens if len(w) > 1 and han.fullmatch(w) and not book.FREQ.get(w))
    print(f"HMM={hmm!s:5}：{n_tokens[hmm]} 个词元，其中词典里没有的多字汉语词 {sum(new_words[hmm].values())} 个，"
          f"{len(new_words[hmm])} 种")
print("HMM 造出的词（最常见的 10 个）：", " ".join(w for w, _ in new_words[True].most_common(10)))
assert sum(new_words[False].values()) == 0 < sum(new_words[True].values())  # 关掉 HMM：只剩词典词和单字
assert n_tokens[False] > n_tokens[True]  # 新词被拆成单字，词元变多
# --8<-- [end:ex2]


# --8<-- [start:ex3]
tokens = [[w for w in book.cut(t) if w.strip()] for t in texts]
train = [t for i, t in enumerate(tokens) if i % 10 < 8]
test_tokens = [t for i, t in enumerate(tokens) if i % 10 == 9]


def unk_rate(counts, min_freq, token_lists):
    flat = [w for ts in token_lists for w in ts]
    return sum(counts[w] < min_freq for w in flat) / len(flat)  # 计数不够（或没见过）的就是 <unk>


train_counts = Counter(w for ts in train for w in ts)
all_counts = Counter(w for ts in tokens for w in ts)   # 错误：把测试集也数进词表
print("min_freq  只用训练集  用全部语料（泄漏）")
leak = []
for min_freq in (1, 2, 5):
    honest, leaked = unk_rate(train_counts, min_freq, test_tokens), unk_rate(all_counts, min_freq, test_tokens)
    leak.append((honest, leaked))
    print(f"{min_freq:8d}  {honest:10.2%}  {leaked:16.2%}")
assert leak[0][1] == 0 and all(leaked < honest for honest, leaked in leak)  # 泄漏的估计在每个门槛上都更乐观
# --8<-- [end:ex3]
