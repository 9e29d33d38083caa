# --8<-- [start:corpus]
import io
import json
import re
from collections import Counter
from pathlib import Path

import jieba
import torch

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
texts = [r["text"] for r in records]
split = {"train": [t for i, t in enumerate(texts) if i % 10 < 8],   # 与 4.1 相同的固定划分：按 i mod 10
         "valid": [t for i, t in enumerate(texts) if i % 10 == 8],
         "test": [t for i, t in enumerate(texts) if i % 10 == 9]}
print(f"快照提交 {header['commit'][:7]}：{header['paragraphs']} 段，{header['characters']} 字符")
for name, ps in split.items():
    print(f"{name:>5}: {len(ps):4d} 段")
print("一条记录：", {k: (v[:24] + "…" if k == "text" else v) for k, v in records[1500].items()})
assert len(records) == header["paragraphs"] and sum(map(len, texts)) == header["characters"]
# --8<-- [end:corpus]


# --8<-- [start:clean]
RULES = [  # (名字, 模式, 替换)，按顺序作用在整篇 Markdown 上；顺序有意义
    ("代码块", re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.M | re.S), ""),
    ("行内代码", re.compile(r"`[^`\n]+`"), ""),                    # 先于 HTML：`<unk>` 不是标签
    ("行间公式", re.compile(r"\$\$.+?\$\$", re.S), ""),
    ("行内公式", re.compile(r"\$[^$\n]+\$"), ""),
    ("图片", re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),              # 先于链接：图片的写法里含有链接的写法
    ("链接", re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),          # 只留链接文字
    ("HTML 标签", re.compile(r"</?[A-Za-z][^>]*>"), ""),            # <output>6</output> 留下 6
]


def clean_markdown(markdown: str, rules=RULES) -> list[str]:
    """Markdown -> 正文段落的列表：按规则删除，再按空行分段，段内换行与多余空白合并。"""
    for _, pattern, repl in rules:
        markdown = pattern.sub(repl, markdown)
    paragraphs = []
    for block in re.split(r"\n\s*\n", markdown):
        p = re.sub(r"\s+", " ", block).strip()
        p = re.sub(r" ?([，。；：、！？）」]) ?", r"\1", p)  # 删掉代码、公式后留在中文标点两侧的空格
        p = re.sub(r"([（「]) ", r"\1", p)
        if p:
            paragraphs.append(p)
    return paragraphs


CASES = [  # (Markdown, 清洗后应剩下的段落)：每条规则至少一个手写例子
    ("前文\n\n```python\nx = \"$不是公式$\"\n```\n\n后文", ["前文", "后文"]),
    ("调用 `nn.Embedding` 得到向量", ["调用 得到向量"]),
    ("困惑度\n\n$$\n\\mathrm{PPL} = e^{H}\n$$\n\n是有效分支数", ["困惑度", "是有效分支数"]),
    ("损失是 $-\\log p$，越小越好", ["损失是，越小越好"]),
    ("![名次–频数图](figures/zipf.svg)\n\n见上图", ["见上图"]),
    ("见 [2.6 损失函数](../part2/losses.md)。", ["见 2.6 损失函数。"]),
    ("共 <output>6558</output> 种，`<unk>` 除外", ["共 6558 种，除外"]),
]
for markdown, expected in CASES:
    got = clean_markdown(markdown)
    print(f"{markdown!r:58} -> {got}")
    assert got == expected, (markdown, got)
# --8<-- [end:clean]


# --8<-- [start:holes]
hole = next(r for r in records if r["text"].startswith("反向模式从输出出发"))
print(hole["page"], "|", hole["h2"], "|", hole["h3"])
print(hole["text"])
assert "（，）" in hole["text"]  # 原文括号里是两个公式，删掉后只剩标点
with_holes = [t for t in texts if re.search(r"[（(][，,、\s]*[）)]|，，|，。|：。", t)]
print(f"带明显空洞（空括号、连续标点）的段落：{len(with_holes)} / {len(texts)}")
assert 0 < len(with_holes) < len(texts) // 4
# --8<-- [end:holes]


# --8<-- [start:modes]
tk = jieba.Tokenizer()  # 一个独立的分词器实例，只用 jieba 自带的词典


def words(tokens):
    return [t for t in tokens if t.strip()]  # 空白不算词元


sentence = next(t for t in texts if "训练神经网络，就是" in t).split("。")[0]
print(sentence)
print("精确：", " / ".join(words(tk.cut(sentence))))
print("全  ：", " / ".join(words(tk.cut(sentence, cut_all=True))))
print("搜索：", " / ".join(words(tk.cut_for_search(sentence))))

han = re.compile(r"[\u4e00-\u9fff]")
n = {"precise": [], "full": [], "search": [], "full_han": [], "precise_han": []}
overlap, precise_total, search_superset, dict_words_in_full = 0, 0, True, True
for text in split["test"]:  # 测试集的全部段落
    p, f, s = words(tk.cut(text)), words(tk.cut(text, cut_all=True)), words(tk.cut_for_search(text))
    n["precise"].append(len(p)), n["full"].append(len(f)), n["search"].append(len(s))
    n["precise_han"].append(sum(bool(han.search(t)) for t in p))
    n["full_han"].append(sum(bool(han.search(t)) for t in f))
    overlap += sum((Counter(p) & Counter(f)).values())  # 两种模式都切出的词元（按多重集计）
    precise_total += len(p)
    search_superset &= not (Counter(p) - Counter(s))      # 搜索模式的输出包含精确模式的每个词元
    long_dict_words = {t for t in p if len(t) > 1 and han.fullmatch(t[0]) and all(map(han.fullmatch, t))
                       and tk.FREQ.get(t)}                 # 精确模式切出的、词典里有的多字汉语词
    dict_words_in_full &= long_dict_words <= set(f)
n_par = len(split["test"])
for mode in ("precise", "full", "search"):
    print(f"{mode:>7}: 平均每段 {sum(n[mode]) / n_par:5.1f} 个词元")
fewer = sum(a < b for a, b in zip(n["full"], n["precise"]))
fewer_han = sum(a < b for a, b in zip(n["full_han"], n["precise_han"]))
print(f"全模式词元反而比精确模式少的段落：{fewer} / {n_par}；只数含汉字的词元：{fewer_han} / {n_par}")
print(f"精确模式的词元也出现在全模式里的比例：{overlap / precise_total:.2%}")
assert search_superset      # 每一段：搜索模式 = 精确模式的每个词 + 长词里的短词
assert dict_words_in_full   # 每一段：精确模式选出的多字词典词，全模式都切出了
assert sum(n["precise"]) < sum(n["search"]) < sum(n["full"])  # 平均而言：精确 < 搜索 < 全
assert fewer > fewer_han > 0  # 但「全模式词元更多」并非每段都成立
# --8<-- [end:modes]


# --8<-- [start:userdict]
TERMS = """反向传播 批归一化 层归一化 残差连接 自注意力 多头注意力 负采样 词向量 学习率 交叉熵 全连接层 特征图
卷积核 感受野 隐状态 预训练 最大池化 权重衰减 正则化 梯度下降 激活函数 丢弃法 超参数 语言模型 损失函数
过拟合 困惑度 束搜索 位置编码 循环神经网络 梯度消失 迁移学习 优化器 卷积层 小批量 词元 早停 微调""".split()
# 这些词都取自附录「符号与术语表」；jieba 的用户词典每行一个词，后面可选词频与词性

book = jieba.Tokenizer()
book.load_userdict(io.StringIO("\n".join(TERMS)))  # 也可以传一个文件名
split_by_default = [t for t in TERMS if len(tk.lcut(t)) > 1]
print(f"{len(TERMS)} 个术语里，默认词典切开 {len(split_by_default)} 个，例如",
      "；".join("/".join(tk.lcut(t)) for t in split_by_default[:6]))

book_tokens = [words(book.cut(text)) for text in texts]  # 全部语料，带词典的精确模式（下面的词表也用它）
occurrences, whole_before, whole_after = Counter(), Counter(), Counter()
for text, after in zip(texts, book_tokens):
    present = [t for t in TERMS if t in text]
    if present:
        before = tk.lcut(text)  # 默认词典只需切含有术语的段落
        for t in present:
            occurrences[t] += text.count(t)
            whole_before[t] += before.count(t)
            whole_after[t] += after.count(t)
total = sum(occurrences[t] for t in split_by_default)
before_n = sum(whole_before[t] for t in split_by_default)
after_n = sum(whole_after[t] for t in split_by_default)
print(f"这 {len(split_by_default)} 个术语在语料里出现 {total} 次：成为一个词元的，默认 {before_n} 次，加词典后 {after_n} 次")
missed = {t: occurrences[t] - whole_after[t] for t in split_by_default if occurrences[t] > whole_after[t]}
print("加词典后仍被切开的：", dict(sorted(missed.items(), key=lambda kv: -kv[1])[:5]))
example = next(s for t in texts for s in re.split("[。；]", t) if "反向传播" in s and "批归一化" in s)
print("默认：", " / ".join(words(tk.cut(example))))
print("词典：", " / ".join(words(book.cut(example))))
assert all(len(book.lcut(t)) == 1 for t in TERMS)  # 单独切一个术语：加词典后全部是一个词元
assert before_n == 0 and after_n > 0.97 * total   # 默认一次也不完整；加词典后 97% 以上完整
# --8<-- [end:userdict]


# --8<-- [start:vocab]
class Vocab:
    """从零写的词表：<pad>=0、<unk>=1 是保留的 id，其余词元按训练集频数从高到低编号。"""

    PAD, UNK = 0, 1

    def __init__(self, token_lists, min_freq=1):
        self.counts = Counter(t for tokens in token_lists for t in tokens)
        kept = sorted((t for t, c in self.counts.items() if c >= min_freq), key=lambda t: (-self.counts[t], t))
        self.itos = ["<pad>", "<unk>"] + kept
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        return [self.stoi.get(t, self.UNK) for t in tokens]

    def decode(self, ids):
        return [self.itos[i] for i in ids]


tokens = {name: [t for i, t in enumerate(book_tokens) if i % 10 in rule]    # 同一个 i mod 10 划分
          for name, rule in (("train", range(8)), ("test", (9,)))}


def unk_rate(vocab, token_lists):
    ids = [i for tokens in token_lists for i in vocab.encode(tokens)]
    return sum(i == Vocab.UNK for i in ids) / len(ids)


print(f"训练集 {sum(map(len, tokens['train']))} 个词元，{len(Vocab(tokens['train']).counts)} 种")
print("min_freq  词表大小  测试集 <unk> 率")
sizes, rates = [], []
for min_freq in (1, 2, 3, 5, 10, 20):
    vocab = Vocab(tokens["train"], min_freq)
    sizes.append(len(vocab))
    rates.append(unk_rate(vocab, tokens["test"]))
    print(f"{min_freq:8d}  {sizes[-1]:8d}  {rates[-1]:14.2%}")
assert all(a > b for a, b in zip(sizes, sizes[1:]))   # 门槛越高，词表越小
assert all(a < b for a, b in zip(rates, rates[1:]))   # 测试集的 <unk> 率随之单调上升
assert unk_rate(Vocab(tokens["train"], 1), tokens["train"]) == 0  # min_freq=1：训练集没有生词

vocab = Vocab(tokens["train"], min_freq=2)
sample = next(t[:12] for t in tokens["test"] if vocab.UNK in vocab.encode(t[:12]))  # 含生词的一段
ids = vocab.encode(sample)
print("词元：", " / ".join(sample))
print("id  ：", ids)
print("还原：", " / ".join(vocab.decode(ids)))
assert vocab.itos[:2] == ["<pad>", "<unk>"] and vocab.stoi["<pad>"] == 0 and vocab.stoi["<unk>"] == 1
assert all(d == t if t in vocab.stoi else d == "<unk>" for t, d in zip(sample, vocab.decode(ids)))
assert vocab.decode(ids) != sample  # 生词还原不回来：<unk> 丢掉了它是哪个词
# --8<-- [end:vocab]


# --8<-- [start:pad]
def pad_batch(seqs, pad_id=Vocab.PAD):
    """把长短不一的 id 序列补齐到最长的一条：返回 (B, T) 的 id 与同形状的布尔掩码（True 是真实词元）。"""
    T = max(map(len, seqs))
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
    return ids.to(device), (ids != pad_id).to(device)


seqs = [vocab.encode(t)[:L] for t, L in zip(tokens["test"][:4], (9, 3, 6, 12))]  # 截成 4 条不同长度的序列
ids, mask = pad_batch(seqs)
print("ids：\n", ids.cpu())
print("mask：\n", mask.int().cpu())
lengths = mask.sum(dim=1)

emb = torch.nn.Embedding(len(vocab), 8, padding_idx=Vocab.PAD).to(device)
x = emb(ids)                                                      # (B, T, d)
pooled = (x * mask.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(-1)  # 掩码平均：只除以真实长度
reference = torch.stack([emb(torch.tensor(s, device=device)).mean(dim=0) for s in seqs])
naive = x.mean(dim=1)                                              # 错误：把 <pad> 也算进平均
print(f"长度 {lengths.tolist()}；掩码平均与逐条平均的最大差 {(pooled - reference).abs().max().item():.1e}，"
      f"朴素平均的最大差 {(naive - reference).abs().max().item():.3f}")
assert lengths.tolist() == [len(s) for s in seqs]
assert torch.allclose(pooled, reference, atol=1e-6)
assert (naive - reference).abs().max() > 0.01  # 除了最长的一条，朴素平均都被 <pad> 拉向 0
# --8<-- [end:pad]


# --8<-- [start:bucket]
def pad_count(seqs, batch_size):
    """按给定顺序每 batch_size 条组成一批，补齐到批内最长，数补上的 <pad> 个数。"""
    total = 0
    for i in range(0, len(seqs), batch_size):
        batch = seqs[i:i + batch_size]
        total += max(map(len, batch)) * len(batch) - sum(map(len, batch))
    return total


train_ids = [vocab.encode(t) for t in tokens["train"]]
real = sum(map(len, train_ids))
g = torch.Generator().manual_seed(0)
shuffled = [train_ids[i] for i in torch.randperm(len(train_ids), generator=g).tolist()]
by_length = sorted(train_ids, key=len)  # 先按长度排序再切批（分桶的极端情形）
pads = {"随机顺序": pad_count(shuffled, 32), "按长度排序": pad_count(by_length, 32)}
for name, p in pads.items():
    print(f"{name}：{len(train_ids)} 段、{real} 个真实词元，补 {p} 个 <pad>（占 {p / (p + real):.1%}）")
assert pads["按长度排序"] * 10 < pads["随机顺序"]  # 排序后补的 <pad> 不到十分之一
# --8<-- [end:bucket]
