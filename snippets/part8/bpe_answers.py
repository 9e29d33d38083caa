# --8<-- [start:imports]
import codecs
import heapq
import json
from collections import Counter, defaultdict
from pathlib import Path

import regex
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

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
train = [r["text"] for i, r in enumerate(records) if i % 10 < 8]
printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
BYTE2CHAR = {**{b: chr(b) for b in printable},
             **{b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in printable)}}
CHAR2BYTE = {c: b for b, c in BYTE2CHAR.items()}
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
ALPHABET = sorted(range(256), key=lambda b: BYTE2CHAR[b])
subset = train[::4]                                   # 为了省时间：训练集每 4 段取 1 段
word_counts = Counter(w.encode() for p in subset for w in GPT2_PATTERN.findall(p))


def show(token: bytes) -> str:
    return "".join(BYTE2CHAR[b] for b in token)


def to_bytes(shown: str) -> bytes:
    return bytes(CHAR2BYTE[c] for c in shown)


def train_bpe(word_counts, num_merges, min_frequency, tie_key):
    """正文 train_bpe 的精简版；堆按 (-计数, tie_key(对)) 排序，tie_key 决定平局时谁先合并。"""
    vocab = [bytes([b]) for b in ALPHABET]
    token_id = {t: i for i, t in enumerate(vocab)}
    words = [[token_id[bytes([b])] for b in w] for w in word_counts]
    freq = list(word_counts.values())
    pair_count, where = defaultdict(int), defaultdict(set)
    for i, (w, f) in enumerate(zip(words, freq)):
        for p in zip(w, w[1:]):
            pair_count[p] += f
            where[p].add(i)
    heap = [(-c, tie_key(vocab, p), p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges, counts = [], []
    while len(merges) < num_merges and heap:
        neg, _, (a, b) = heapq.heappop(heap)
        if -neg != pair_count[a, b]:
            if pair_count[a, b] > 0:
                heapq.heappush(heap, (-pair_count[a, b], tie_key(vocab, (a, b)), (a, b)))
            continue
        if -neg < min_frequency:
            break
        new = vocab[a] + vocab[b]
        if new not in token_id:
            token_id[new] = len(vocab)
            vocab.append(new)
        new_id = token_id[new]
        merges.append((a, b))
        counts.append(-neg)
        touched = set()
        for i in where.pop((a, b)):
            w, f, j = words[i], freq[i], 0
            while True:
                try:
                    j = w.index(a, j)
                except ValueError:
                    break
                if j + 1 < len(w) and w[j + 1] == b:
                    for p_old, p_new in ([((w[j - 1], a), (w[j - 1], new_id))] if j > 0 else []) + \
                                        ([((b, w[j + 2]), (new_id, w[j + 2]))] if j + 2 < len(w) else []):
                        pair_count[p_old] -= f
                        pair_count[p_new] += f
                        touched.add(p_new)
                        where[p_new].add(i)
                    w[j:j + 2] = [new_id]
                j += 1
        del pair_count[a, b]
        for p in touched:
            heapq.heappush(heap, (-pair_count[p], tie_key(vocab, p), p))
    return vocab, merges, counts


def by_id(vocab, pair):        # tokenizers 的规则：比较编号对
    return pair


def by_bytes(vocab, pair):     # 另一种看似自然的规则：比较两边的字节串
    return vocab[pair[0]], vocab[pair[1]]


def merges_as_text(vocab, merges):
    return [(show(vocab[a]), show(vocab[b])) for a, b in merges]
# --8<-- [end:imports]


# --8<-- [start:ex1]
N = 300
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=256 + N, min_frequency=2, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
tokenizer.train_from_iterator(subset, trainer=trainer)
hf = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in json.loads(tokenizer.to_str())["model"]["merges"]]
result, trained = {}, {}
for name, key in (("编号对", by_id), ("字节串", by_bytes)):
    vocab, merges, counts = trained[name] = train_bpe(word_counts, N, 2, key)
    ours = merges_as_text(vocab, merges)
    first = next((k for k, (m, h) in enumerate(zip(ours, hf)) if m != h), None)
    result[name] = (first, sum(m == h for m, h in zip(ours, hf)))
    print(f"平局按{name}比较：第一处不同 {first}，{N} 次合并里位置相同的 {result[name][1]} 次")
    if first is not None:
        for label, (x, y), c in (("按字节串", ours[first], counts[first]),
                                 ("tokenizers", hf[first], trained["编号对"][2][first])):
            print(f"  第 {first + 1} 次，{label}合并 {to_bytes(x).hex(' ')} + {to_bytes(y).hex(' ')}（{x} + {y}），计数 {c}")
first = result["字节串"][0]
assert result["编号对"] == (None, N) and first is not None
assert trained["编号对"][2][first] == trained["字节串"][2][first]   # 分歧处两对的计数相同：是平局
assert to_bytes(hf[first][0]) > to_bytes(ours[first][0]) and BYTE2CHAR[0x20] > hf[first][0]  # 字节序与编号序相反
# --8<-- [end:ex1]


# --8<-- [start:ex2]
chars_in_corpus = {c for r in records for c in r["text"]}
text = "龘🙂"                                            # 语料里没有的一个汉字与一个表情符号
tokens = [to_bytes(t) for t in tokenizer.encode(text).tokens]
print(f"在语料中：{[c in chars_in_corpus for c in text]}；UTF-8：{[c.encode().hex(' ') for c in text]}")
print(f"{len(text)} 个字符 -> {len(tokens)} 个词元：{[t.hex(' ') for t in tokens]}；"
      f"解码：{tokenizer.decode(tokenizer.encode(text).ids)}")
assert not any(c in chars_in_corpus for c in text) and len(tokens) == len(text.encode()) == 7
assert tokenizer.decode(tokenizer.encode(text).ids) == b"".join(tokens).decode() == text
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def is_complete(token: bytes) -> bool:
    try:
        token.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


vocab, merges, _ = trained["编号对"]
partial = [t for t in vocab[256:] if not is_complete(t)]               # 合并出的词元里不完整的
text = "词元化与梯度"
pieces = [to_bytes(t) for t in tokenizer.encode(text).tokens]
one_by_one = "".join(t.decode("utf-8", errors="replace") for t in pieces)     # 每个词元单独解码
stream = codecs.getincrementaldecoder("utf-8")()                                # 流式解码器：不完整的字节先攒着
streamed = "".join(stream.decode(t) for t in pieces) + stream.decode(b"", final=True)
print(f"{N} 次合并得到的词元里有 {len(partial)} 个不是完整的 UTF-8 字符，"
      f"单字节词元里有 {sum(not is_complete(t) for t in vocab[:256])} 个（0x80–0xFF）")
print(f"{[t.hex(' ') for t in pieces]}")
print(f"逐个解码：{one_by_one}；流式解码：{streamed}")
assert one_by_one != text and "\ufffd" in one_by_one and streamed == text
# --8<-- [end:ex3]
