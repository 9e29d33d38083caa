# --8<-- [start:corpus]
import heapq
import json
from collections import Counter, defaultdict
from itertools import repeat
from pathlib import Path

import jieba
import matplotlib.pyplot as plt
import regex
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

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
split = {"train": [t for i, t in enumerate(texts) if i % 10 < 8],     # 与 4.1 相同的固定划分：按 i mod 10
         "valid": [t for i, t in enumerate(texts) if i % 10 == 8],
         "test": [t for i, t in enumerate(texts) if i % 10 == 9]}
print(f"语料：提交 {header['commit'][:7]}，{len(records)} 段，{header['characters']} 字符")
for name, ps in split.items():
    chars, nbytes = sum(map(len, ps)), sum(len(p.encode("utf-8")) for p in ps)
    print(f"{name:>5}: {len(ps):4d} 段，{chars:6d} 字符，{nbytes:7d} 个 UTF-8 字节，每字符 {nbytes / chars:.3f} 字节")

han = [c for t in texts for c in t if "\u4e00" <= c <= "\u9fff"]          # 中日韩统一表意文字的基本区
print(f"汉字占全部字符的 {len(han) / header['characters']:.1%}，每个汉字的 UTF-8 字节数：{sorted({len(c.encode()) for c in han})}")
assert sum(map(len, texts)) == header["characters"] and {len(c.encode()) for c in han} == {3}
# --8<-- [end:corpus]


# --8<-- [start:words]
train_words = [jieba.lcut(p) for p in split["train"]]
test_words = [jieba.lcut(p) for p in split["test"]]
word_vocab = Counter(w for ws in train_words for w in ws)
char_vocab = Counter(c for p in split["train"] for c in p)
oov_words = [w for ws in test_words for w in ws if w not in word_vocab]   # 词表之外：只能记成 <unk>
oov_chars = [c for p in split["test"] for c in p if c not in char_vocab]
n_test_words = sum(map(len, test_words))
n_test_chars = sum(map(len, split["test"]))
print(f"词：训练集 {len(word_vocab)} 种；测试集 {n_test_words} 个词里 {len(oov_words)} 个没见过"
      f"（{len(oov_words) / n_test_words:.2%}），例如 {'、'.join(sorted(set(oov_words), key=oov_words.index)[:8])}")
print(f"字：训练集 {len(char_vocab)} 种；测试集 {n_test_chars} 个字符里 {len(oov_chars)} 个没见过"
      f"（{len(oov_chars) / n_test_chars:.2%}）：{''.join(sorted(set(oov_chars)))}")
assert len(word_vocab) > 6 * len(char_vocab) and len(oov_words) / n_test_words > 10 * len(oov_chars) / n_test_chars
# --8<-- [end:words]


# --8<-- [start:bytes]
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 的字节到字符映射：188 个可打印的字节映射到自己，其余 68 个依次映射到 U+0100 起的字符。"""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


BYTE2CHAR = bytes_to_unicode()
CHAR2BYTE = {c: b for b, c in BYTE2CHAR.items()}


def show(token: bytes) -> str:
    """把字节串写成 tokenizers 里的样子（每个字节一个可打印字符）。"""
    return "".join(BYTE2CHAR[b] for b in token)


# GPT-2 的预切分正则：英文缩写、（可带一个前导空格的）一串字母、一串数字、一串标点，以及空白
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def pre_tokenize(text: str) -> list[bytes]:
    return [piece.encode("utf-8") for piece in GPT2_PATTERN.findall(text)]


example = "字节级 BPE（GPT-2，2019）从 256 个字节出发。"
print([p.decode() for p in pre_tokenize(example)])
print([show(p) for p in pre_tokenize(example)])

hf_pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
same = sum([w for w, _ in hf_pre.pre_tokenize_str(p)] == [show(w) for w in pre_tokenize(p)] for p in split["train"])
print(f"映射后的 256 个字符 == ByteLevel.alphabet()：{set(BYTE2CHAR.values()) == set(pre_tokenizers.ByteLevel.alphabet())}；"
      f"预切分与 tokenizers 相同的训练段落：{same}/{len(split['train'])}")
assert len(set(BYTE2CHAR.values())) == 256 and all(c.isprintable() and not c.isspace() for c in BYTE2CHAR.values())
assert set(BYTE2CHAR.values()) == set(pre_tokenizers.ByteLevel.alphabet()) and same == len(split["train"])
# --8<-- [end:bytes]


# --8<-- [start:train]
ALPHABET = sorted(range(256), key=lambda b: BYTE2CHAR[b])     # 初始编号：按映射后字符的码位排序（与 tokenizers 相同）


def train_bpe(word_counts: Counter, num_merges: int, min_frequency: int):
    """字节级 BPE 的训练。返回 vocab（编号 -> 字节串）、merges（依次合并的编号对）与训练记录。"""
    vocab = [bytes([b]) for b in ALPHABET]
    token_id = {tok: i for i, tok in enumerate(vocab)}
    words = [[token_id[bytes([b])] for b in w] for w in word_counts]   # 每个不同的预切分片段只存一次
    freq = list(word_counts.values())
    pair_count, where = defaultdict(int), defaultdict(set)       # 对的计数；对出现在哪些片段里
    for i, (w, f) in enumerate(zip(words, freq)):
        for pair in zip(w, w[1:]):
            pair_count[pair] += f
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_count.items()]         # 最大堆：计数大者先，计数相同时编号对小者先
    heapq.heapify(heap)
    n_tokens = sum(len(w) * f for w, f in zip(words, freq))
    merges, log = [], {"count": [], "tokens": [n_tokens], "ties": []}
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        if -neg != pair_count[pair]:                              # 过期的记录：计数已经变小，按新计数放回
            if pair_count[pair] > 0:
                heapq.heappush(heap, (-pair_count[pair], pair))
            continue
        if -neg < min_frequency:
            break
        tie = find_tie(heap, pair_count, -neg)
        if tie:
            log["ties"].append((len(merges), pair, tie))
        a, b = pair
        new = vocab[a] + vocab[b]
        if new not in token_id:                                   # 同一个字节串可能由两种合并得到：沿用旧编号
            token_id[new] = len(vocab)
            vocab.append(new)
        new_id = token_id[new]
        merges.append(pair)
        log["count"].append(-neg)
        touched = set()
        for i in where.pop(pair):                                 # 只处理含这一对的片段
            w, f = words[i], freq[i]
            j = 0
            while True:
                try:
                    j = w.index(a, j)                             # 下一个 a 的位置
                except ValueError:
                    break
                if j + 1 < len(w) and w[j + 1] == b:              # 找到 (a, b)：只有它两侧的对会变
                    if j > 0:
                        pair_count[w[j - 1], a] -= f
                        pair_count[w[j - 1], new_id] += f
                        touched.add((w[j - 1], new_id))
                        where[w[j - 1], new_id].add(i)
                    if j + 2 < len(w):
                        pair_count[b, w[j + 2]] -= f
                        pair_count[new_id, w[j + 2]] += f
                        touched.add((new_id, w[j + 2]))
                        where[new_id, w[j + 2]].add(i)
                    w[j:j + 2] = [new_id]
                    n_tokens -= f
                j += 1
        del pair_count[pair]
        for p in touched:
            heapq.heappush(heap, (-pair_count[p], p))
        log["tokens"].append(n_tokens)
    return vocab, merges, log


def find_tie(heap, pair_count, c):
    """堆里是否还有一对的真实计数也是 c（堆中记录的计数只会偏大，故只需看记录为 c 的那些）。"""
    stack = [0]
    while stack:
        i = stack.pop()
        if i < len(heap) and -heap[i][0] == c:
            if pair_count[heap[i][1]] == c:
                return heap[i][1]
            stack += [2 * i + 1, 2 * i + 2]
    return None


NUM_MERGES, MIN_FREQUENCY = 3000, 2
word_counts = Counter(w for p in split["train"] for w in pre_tokenize(p))
vocab, merges, log = train_bpe(word_counts, NUM_MERGES, MIN_FREQUENCY)
print(f"训练集：{sum(word_counts.values())} 个预切分片段，{len(word_counts)} 种；"
      f"合并 {len(merges)} 次，词表 {len(vocab)} 个词元")
print(f"第 1 次合并的计数 {log['count'][0]}，第 {len(merges)} 次 {log['count'][-1]}；"
      f"{len(log['ties'])} 次合并时最高计数有平局")
assert len(merges) == NUM_MERGES and len(vocab) == 256 + NUM_MERGES
assert all(x >= y for x, y in zip(log["count"], log["count"][1:]))   # 被合并的计数单调不增
assert all(t0 - t1 >= 1 for t0, t1 in zip(log["tokens"], log["tokens"][1:]))  # 每次合并都让训练集变短
# --8<-- [end:train]


# --8<-- [start:merges]
def readable(token: bytes) -> str:
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        return "（不完整的字符）"


for k, (a, b) in enumerate(merges[:12]):
    print(f"{k + 1:2d}. {vocab[a].hex(' '):>8} + {vocab[b].hex(' '):<5} -> {readable(vocab[a] + vocab[b]):8s}"
          f" 计数 {log['count'][k]}")
rank_of = {vocab[a] + vocab[b]: k + 1 for k, (a, b) in enumerate(merges)}
for ch in "的，。是一":
    print(f"「{ch}」= {ch.encode().hex(' ')}，在第 {rank_of[ch.encode()]} 次合并时成为一个词元")
partial = [t for t in vocab[256:] if readable(t) == "（不完整的字符）"]
longest = sorted(vocab[256:], key=lambda t: (-len(readable(t)), t))[:6]
print(f"{len(partial)} 个合并出的词元不是完整的 UTF-8 字符；最长的词元：{' | '.join(readable(t) for t in longest)}")
assert all(rank_of[ch.encode()] <= 12 for ch in "的，。")          # 的、，、。都在前 12 次合并里完成
assert all(0xE0 <= vocab[a][0] <= 0xEF for a, b in merges[:12])   # 前 12 次都从 3 字节字符的首字节开始
assert vocab[merges[0][0]] + vocab[merges[0][1]] == b"\xef\xbc" and all(c.encode()[:2] == b"\xef\xbc" for c in "，（）：；？！")
# --8<-- [end:merges]


# --8<-- [start:encode]
NEVER = float("inf")                                     # 没学过的对：永不合并


class ByteBPE:
    """用前 k 次合并编码：每个片段里反复合并「最早学到」的相邻对，与训练时的顺序一致。"""

    def __init__(self, vocab, merges, k=None):
        self.vocab = vocab
        token_id = {tok: i for i, tok in enumerate(vocab)}
        self.merges = merges[:k]
        self.rank = {pair: r for r, pair in enumerate(self.merges)}                  # 编号对 -> 第几次合并
        self.new_id = [token_id[vocab[a] + vocab[b]] for a, b in self.merges]        # 合并成的词元编号
        self.byte_id = {vocab[i][0]: i for i in range(256)}
        self.cache = {}

    def encode_piece(self, piece: bytes) -> list[int]:
        if piece not in self.cache:
            ids = [self.byte_id[b] for b in piece]
            while len(ids) > 1:
                rank = min(map(self.rank.get, zip(ids, ids[1:]), repeat(NEVER)))   # 最早学到的相邻对
                if rank == NEVER:
                    break
                a, b = self.merges[rank]
                new_id, out, j = self.new_id[rank], [], 0
                while j < len(ids):
                    if j + 1 < len(ids) and ids[j] == a and ids[j + 1] == b:
                        out.append(new_id)
                        j += 2
                    else:
                        out.append(ids[j])
                        j += 1
                ids = out
            self.cache[piece] = ids
        return self.cache[piece]

    def encode(self, text: str) -> list[int]:
        return [i for piece in pre_tokenize(text) for i in self.encode_piece(piece)]

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.vocab[i] for i in ids).decode("utf-8")   # 先拼字节，最后才解码


bpe = ByteBPE(vocab, merges)
sentence = "反向传播算出每个参数的梯度。"
ids = bpe.encode(sentence)
print(f"{len(sentence)} 个字 -> {len(ids)} 个词元：{' | '.join(readable(vocab[i]) for i in ids)}")
x = torch.tensor(ids, device=device)                     # 模型收到的是这串编号，例如交给 nn.Embedding
print(x.tolist())

pages = defaultdict(list)
for r in records:
    pages[r["page"]].append(r["text"])
pages = {page: "\n".join(paras) for page, paras in pages.items()}   # 一页的各段用换行连起来
ok = sum(bpe.decode(bpe.encode(text)) == text for text in pages.values())
print(f"编码再解码与原文逐字相同的页面：{ok}/{len(pages)}")
assert bpe.decode(ids) == sentence and ok == len(pages) == len({r["page"] for r in records})
# --8<-- [end:encode]


# --8<-- [start:hf]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=256 + NUM_MERGES, min_frequency=MIN_FREQUENCY, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
tokenizer.train_from_iterator(split["train"], trainer=trainer)
hf_model = json.loads(tokenizer.to_str())["model"]
hf_merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in hf_model["merges"]]
our_merges = [(show(vocab[a]), show(vocab[b])) for a, b in merges]
first_diff = next((k for k, (m, h) in enumerate(zip(our_merges, hf_merges)) if m != h), None)
print(f"tokenizers：{len(hf_merges)} 次合并，词表 {tokenizer.get_vocab_size()}；第一处不同：{first_diff}")
print("前 3 次合并（tokenizers 的写法）：", hf_merges[:3])
same_vocab = tokenizer.get_vocab() == {show(t): i for i, t in enumerate(vocab)}
hf_ids = [e.ids for e in tokenizer.encode_batch(split["test"])]
same_ids = hf_ids == [bpe.encode(p) for p in split["test"]]
print(f"词表（词元与编号）相同：{same_vocab}；测试集 {len(hf_ids)} 段的编码相同：{same_ids}")
k, chosen, other = log["ties"][0]
print(f"第一次平局：第 {k + 1} 次合并，计数 {log['count'][k]}："
      + "，".join(f"{p} = {show(vocab[p[0]])} + {show(vocab[p[1]])} -> 「{readable(vocab[p[0]] + vocab[p[1]])}」"
                 for p in (chosen, other)) + "，编号对小的先合并")
assert first_diff is None and our_merges == hf_merges and same_vocab and same_ids
assert all(chosen < other for _, chosen, other in log["ties"])     # 平局时总是编号对小的先合并
assert all(tokenizer.decode(e) == p for e, p in zip(hf_ids, split["test"]))
# --8<-- [end:hf]


# --8<-- [start:compare]
test = split["test"]
rows = [("UTF-8 字节", 256, sum(len(p.encode()) for p in test)),
        ("字", len(char_vocab), n_test_chars),
        ("jieba 词", len(word_vocab), n_test_words)]
for k in (500, 1000, 2000, 3000):
    enc = ByteBPE(vocab, merges, k)
    rows.append((f"BPE {k} 次合并", 256 + k, sum(len(enc.encode(p)) for p in test)))
print(f"{'切分':<14}{'词表大小':>8}{'测试集词元数':>12}{'每字符词元数':>12}")
for name, size, n in rows:
    print(f"{name:<14}{size:>10}{n:>16}{n / n_test_chars:>16.3f}")
per_char = {name: n / n_test_chars for name, _, n in rows}
bpe_curve = [per_char[f"BPE {k} 次合并"] for k in (500, 1000, 2000, 3000)]
assert per_char["UTF-8 字节"] > per_char["字"] == 1 > per_char["jieba 词"]
assert all(x > y for x, y in zip([per_char["UTF-8 字节"]] + bpe_curve, bpe_curve))   # 合并越多，词元越少
assert per_char["BPE 500 次合并"] > 1 > per_char["BPE 1000 次合并"]   # 500 次合并还不如按字切，1000 次就更短
assert per_char["jieba 词"] < bpe_curve[-1] < 1.01 * per_char["jieba 词"] and 256 + 3000 < len(word_vocab) / 2

n_train_chars = sum(map(len, split["train"]))
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(range(len(log["tokens"])), [n / n_train_chars for n in log["tokens"]], label="BPE，训练集")
ax.plot([500, 1000, 2000, 3000], bpe_curve, "o", label="BPE，测试集")
ax.axhline(1, color="gray", ls="--", lw=1, label="字")
ax.axhline(per_char["jieba 词"], color="k", ls=":", lw=1, label="jieba 词（测试集）")
ax.set_xlabel("合并次数")
ax.set_ylabel("每字符的词元数")
ax.legend()
fig.savefig("bpe_tokens_per_char.svg", bbox_inches="tight")
# --8<-- [end:compare]
