# --8<-- [start:imports]
import math
from collections import Counter
from pathlib import Path

import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
V = 966                                                   # 正文的词表大小


def mask_tokens(ids, gen, p=0.15):                        # 与正文相同
    special = (ids == PAD) | (ids == CLS) | (ids == SEP) | (ids == MASK)
    chosen = (torch.rand(ids.shape, generator=gen) < p) & ~special
    r = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = MASK
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    inputs[rand_pos] = torch.randint(len(SPECIALS), V, ids.shape, generator=gen)[rand_pos]
    return inputs, torch.where(chosen, ids, torch.full_like(ids, -100))


gen = torch.Generator().manual_seed(0)
ids = torch.randint(len(SPECIALS), V, (1000, 512), generator=gen)   # 全是普通字
inputs, labels = mask_tokens(ids, gen)
seen_mask = (inputs == MASK).float().mean().item()
visible = inputs != MASK                                  # 模型看到的是一个普通字的位置
labelled_share = (labels[visible] != -100).float().mean().item()
n = ids.numel()
print(f"输入中 [MASK] 占 {seen_mask:.4f}（推导 0.12）")
print(f"看到普通字的位置里要预测的占 {labelled_share:.4f}（推导 0.03 / 0.88 = {0.03 / 0.88:.4f}）")
assert abs(seen_mask - 0.12) < 4 * math.sqrt(0.12 * 0.88 / n)                       # 4 个标准差
n_vis = visible.sum().item()
assert abs(labelled_share - 0.03 / 0.88) < 4 * math.sqrt(0.034 * 0.966 / n_vis)
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def bert_params(vocab, max_len, d, layers, d_ff, norm_first):     # 与正文相同的逐层公式
    emb = vocab * d + max_len * d + 2 * d + 2 * d
    layer = (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + 2 * 2 * d
    final = 2 * d if norm_first else 0
    return emb + layers * layer + final + (d * d + 3 * d + vocab) + (d * d + d + 2 * d + 2)


def built(vocab, max_len, d, h, layers, d_ff):            # 第二种构造：在 meta 设备上搭出来再数
    parts = nn.ModuleList([nn.Embedding(vocab, d), nn.Embedding(max_len, d), nn.Embedding(2, d),
                           nn.LayerNorm(d),
                           nn.TransformerEncoder(nn.TransformerEncoderLayer(d, h, d_ff, batch_first=True),
                                                 layers, enable_nested_tensor=False),
                           nn.Linear(d, d), nn.LayerNorm(d),     # MLM 头的变换（输出矩阵共享词嵌入）
                           nn.Linear(d, d), nn.Linear(d, 2)]).to("meta")   # pooler 与 NSP
    return sum(p.numel() for p in parts.parameters()) + vocab      # + MLM 头每个字一个偏置


for name, (L, d, h) in {"BERT-base": (12, 768, 12), "BERT-large": (24, 1024, 16)}.items():
    total = bert_params(30522, 512, d, L, 4 * d, norm_first=False)
    emb = 30522 * d + 512 * d + 2 * d + 2 * d
    print(f"{name}：{total} 个参数，嵌入占 {emb / total:.1%}")
    assert total == built(30522, 512, d, h, L, 4 * d)
tiny = bert_params(V, 35, 64, 2, 256, norm_first=True)
print(f"正文的 TinyBERT：{tiny} 个参数，嵌入占 {(V * 64 + 35 * 64 + 2 * 64 + 2 * 64) / tiny:.1%}")
assert tiny == 173960
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def find_corpus(name: str = "book_corpus.txt") -> Path:   # 与正文相同
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


paragraphs = [line for line in find_corpus().read_text(encoding="utf-8").splitlines() if not line.startswith("# ")]
train_paras = [p for i, p in enumerate(paragraphs) if i % 10 < 8]
test_paras = [p for i, p in enumerate(paragraphs) if i % 10 == 9]
S = 16


def make_text_pairs(paras, n, gen):                       # 与正文的 make_pairs 相同的抽样，只返回文字
    long = [p for p in paras if len(p) >= 2 * S]
    is_next = torch.rand(n, generator=gen) < 0.5
    pairs = []
    for k in range(n):
        i = torch.randint(len(long), (1,), generator=gen).item()
        o = torch.randint(len(long[i]) - 2 * S + 1, (1,), generator=gen).item()
        a, b = long[i][o:o + S], long[i][o + S:o + 2 * S]
        if not is_next[k]:
            j = (i + 1 + torch.randint(len(long) - 1, (1,), generator=gen).item()) % len(long)
            o = torch.randint(len(long[j]) - S + 1, (1,), generator=gen).item()
            b = long[j][o:o + S]
        pairs.append((a, b))
    return pairs, is_next


def overlap(a, b):                                        # B 中有多少个字也出现在 A 里（不看顺序，只看「话题」）
    return sum(c in set(a) for c in b) / len(b)


# 在训练段落的 2000 对上选阈值，在测试段落的 4000 对上评估
pairs, y = make_text_pairs(train_paras, 2000, torch.Generator().manual_seed(0))
scores = torch.tensor([overlap(a, b) for a, b in pairs])
thresholds = scores.unique()
best = max(thresholds.tolist(), key=lambda t: ((scores >= t) == y).float().mean().item())
pairs, y = make_text_pairs(test_paras, 4000, torch.Generator().manual_seed(1))
acc = ((torch.tensor([overlap(a, b) for a, b in pairs]) >= best) == y).float().mean().item()
print(f"只看字的重合（阈值 {best:.3f}）判断「是不是下一句」：测试集 4000 对上准确率 {acc:.3f}")
assert acc > 0.5 + 4 * math.sqrt(0.25 / 4000)            # 显著高于瞎猜（4 个标准差）
# --8<-- [end:ex3]
