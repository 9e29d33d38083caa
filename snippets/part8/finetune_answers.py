# --8<-- [start:imports]
import json
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

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
         "test": [d for i, d in enumerate(data) if i % 10 == 9]}
test_texts = {t for t, _ in split["test"]}
pretrain_texts = [t for t, _ in split["train"] if t not in test_texts]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS = 0, 1, 2
counts = Counter(c for p in pretrain_texts for c in p)
itos = SPECIALS + sorted((c for c, k in counts.items() if k >= 5), key=lambda c: (-counts[c], c))
stoi = {c: i for i, c in enumerate(itos)}
V, N = len(itos), 32


def to_batch(texts):
    x = torch.full((len(texts), N), PAD, dtype=torch.long)
    for k, t in enumerate(texts):
        ids = [CLS] + [stoi.get(c, UNK) for c in t][:N - 1]
        x[k, :len(ids)] = torch.tensor(ids)
    return x


X = {s: to_batch([t for t, _ in split[s]]).to(device) for s in split}
Y = {s: torch.tensor([y for _, y in split[s]], device=device) for s in split}


class TinyBERT(nn.Module):
    """与正文相同的编码器（略去用不到的 MLM 头）。"""

    def __init__(self, vocab=V, max_len=N, d=64, h=4, layers=2, d_ff=256):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.emb_norm = nn.LayerNorm(d)
        block = nn.TransformerEncoderLayer(d, h, d_ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        for e in (self.tok, self.pos):
            nn.init.normal_(e.weight, std=0.02)

    def forward(self, ids):
        h = self.emb_norm(self.tok(ids) + self.pos.weight[: ids.shape[1]])
        return self.final_norm(self.enc(h, src_key_padding_mask=ids == PAD))


def mean_pool(h, ids):
    keep = (ids != PAD).unsqueeze(-1).float()
    return (h * keep).sum(1) / keep.sum(1)
# --8<-- [end:imports]


# --8<-- [start:ex1]
def trainable(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


d, d_ff, L, K = 64, 256, 2, len(PARTS)
layer = (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + 2 * 2 * d     # 一个编码器层
head = d * K + K
enc = TinyBERT().to(device)
for name, p in enc.named_parameters():                  # 只解冻最后一个编码器层和栈末的 LayerNorm
    p.requires_grad_(name.startswith(("enc.layers.1.", "final_norm.")))
top = trainable(enc) + head
emb = V * d + N * d + 2 * d                              # 两张嵌入表 + 嵌入后的 LayerNorm
full = emb + L * layer + 2 * d + head
print(f"只训练最后一层 + 分类层：{top}（公式 {layer + 2 * d + head}），占全量微调 {full} 的 {top / full:.1%}")
print(f"其中嵌入占全量微调的 {emb / full:.1%}")
assert top == layer + 2 * d + head
# --8<-- [end:ex1]


# --8<-- [start:ex2]
pre_chars = sum(map(len, pretrain_texts))
label_chars = sum(len(t) for t, _ in split["train"])
seen = 200 * 64 * (N - 1)                                # 正文预训练：200 步 × 64 个窗口 × 至多 31 个字
print(f"预训练段落 {len(pretrain_texts)} 段 {pre_chars} 字；有标签的训练段落 {len(split['train'])} 段 {label_chars} 字")
print(f"预训练至多看到 {seen} 个字的位置，其中约 15% 要预测，即约 {round(seen * 0.15)} 个")
assert set(pretrain_texts) <= {t for t, _ in split["train"]}   # 预训练的文字全部来自有标签的训练段落
assert seen * 0.15 < pre_chars                                 # 被预测的位置还不到预训练文字的一遍
# --8<-- [end:ex2]
