# --8<-- [start:setup]
import math
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:corpus]
def find_corpus(name: str = "book_corpus.txt") -> Path:
    """本书语料快照：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part4/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


lines = find_corpus().read_text(encoding="utf-8").splitlines()
paragraphs = [line for line in lines if not line.startswith("# ")]      # 每行一段正文
train_paras = [p for i, p in enumerate(paragraphs) if i % 10 < 8]       # 与 4.1 相同的固定划分
test_paras = [p for i, p in enumerate(paragraphs) if i % 10 == 9]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
counts = Counter(c for p in train_paras for c in p)
itos = SPECIALS + sorted((c for c, k in counts.items() if k >= 5), key=lambda c: (-counts[c], c))
stoi = {c: i for i, c in enumerate(itos)}
V = len(itos)                                                          # 词表大小（含 5 个特殊词元）


def encode(text):
    return [stoi.get(c, UNK) for c in text]                             # 训练集中少于 5 次的字 -> [UNK]


unk_rate = sum(i == UNK for p in test_paras for i in encode(p)) / sum(map(len, test_paras))
print(f"训练集 {len(train_paras)} 段，测试集 {len(test_paras)} 段；词表 {V}（含 5 个特殊词元），"
      f"测试集中 [UNK] 占 {unk_rate:.2%}")
assert itos[:5] == SPECIALS and len(set(itos)) == V
# --8<-- [end:corpus]


# --8<-- [start:masking]
def mask_tokens(ids, gen, p=0.15):
    """掩码语言模型的输入与标签。ids: (B, n) 的整数（CPU 上生成，像数据管线那样）。

    不是 [PAD]/[CLS]/[SEP]/[MASK] 的位置以概率 p 被选中；被选中的位置 80 % 换成 [MASK]，
    10 % 换成随机的普通字，10 % 保持原样。标签只在被选中的位置是原来的词元，其余为 -100（损失忽略）。
    """
    special = (ids == PAD) | (ids == CLS) | (ids == SEP) | (ids == MASK)
    chosen = (torch.rand(ids.shape, generator=gen) < p) & ~special
    r = torch.rand(ids.shape, generator=gen)                           # 决定被选中的位置怎么处理
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = MASK
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    random_ids = torch.randint(len(SPECIALS), V, ids.shape, generator=gen)   # 只从普通字里随机
    inputs[rand_pos] = random_ids[rand_pos]
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, labels


# 大样本检验：2000 个长 512 的序列，开头 [CLS]、中间和末尾 [SEP]、尾部随机长度的 [PAD]
gen = torch.Generator().manual_seed(0)
ids = torch.randint(len(SPECIALS), V, (2000, 512), generator=gen)
ids[:, 0], ids[:, 255], ids[:, 511] = CLS, SEP, SEP
lengths = torch.randint(300, 512, (2000,), generator=gen)
ids[torch.arange(512)[None, :] >= lengths[:, None]] = PAD
inputs, labels = mask_tokens(ids, gen)

eligible = (ids != PAD) & (ids != CLS) & (ids != SEP)
chosen = labels != -100
n_elig, n_chosen = eligible.sum().item(), chosen.sum().item()
frac = {"选中": n_chosen / n_elig,
        "[MASK]": (inputs[chosen] == MASK).float().mean().item(),
        "随机字": ((inputs[chosen] != MASK) & (inputs[chosen] != ids[chosen])).float().mean().item(),
        "原样": (inputs[chosen] == ids[chosen]).float().mean().item()}
n_ord = V - len(SPECIALS)                       # 随机字恰好抽到原字的概率是 1/n_ord，这部分算作「原样」
expect = {"选中": 0.15, "[MASK]": 0.8, "随机字": 0.1 * (1 - 1 / n_ord), "原样": 0.1 + 0.1 / n_ord}
for k in frac:
    n = n_elig if k == "选中" else n_chosen
    sd = math.sqrt(expect[k] * (1 - expect[k]) / n)      # 二项比例的标准差
    print(f"{k}：{frac[k]:.4f}（期望 {expect[k]:.4f}，|差| = {abs(frac[k] - expect[k]) / sd:.1f} 个标准差）")
    # 容差取 4 个标准差：正态近似下偶然超出的概率约 6e-5
    assert abs(frac[k] - expect[k]) < 4 * sd
print(f"可选位置 {n_elig} 个，选中 {n_chosen} 个")
assert not chosen[~eligible].any()                        # 特殊词元从不被选中
assert (labels[chosen] == ids[chosen]).all()              # 标签是原来的字
assert (inputs[~chosen] == ids[~chosen]).all()            # 没选中的位置输入不变，标签都是 -100
# --8<-- [end:masking]


# --8<-- [start:example]
def show(ids):
    return "".join(itos[i] for i in ids)


gen = torch.Generator().manual_seed(3)
x = torch.tensor([[CLS] + encode(test_paras[3][:40]) + [SEP]])
xi, xl = mask_tokens(x, gen)
print("原文：", show(x[0].tolist()))
print("输入：", show(xi[0].tolist()))
print("标签：", "".join(itos[t] if t != -100 else "·" for t in xl[0].tolist()))
# --8<-- [end:example]


# --8<-- [start:nsp]
S = 16                                          # 每个片段的字数；输入长 2S + 3


def make_pairs(paras, n, gen):
    """下一句预测的样本：[CLS] A [SEP] B [SEP]。一半 B 是 A 在原段落中紧接着的 S 个字（标签 1），
    一半 B 是另一段里随机的 S 个字（标签 0）。返回词元、片段编号和标签。"""
    long = [p for p in paras if len(p) >= 2 * S]
    ids = torch.empty(n, 2 * S + 3, dtype=torch.long)
    seg = torch.zeros(n, 2 * S + 3, dtype=torch.long)
    seg[:, S + 2:] = 1                          # [CLS] A [SEP] 属于片段 0，B [SEP] 属于片段 1
    is_next = torch.rand(n, generator=gen) < 0.5
    for k in range(n):
        i = torch.randint(len(long), (1,), generator=gen).item()
        o = torch.randint(len(long[i]) - 2 * S + 1, (1,), generator=gen).item()
        a, b = long[i][o:o + S], long[i][o + S:o + 2 * S]
        if not is_next[k]:                      # 换成另一段里的随机片段
            j = (i + 1 + torch.randint(len(long) - 1, (1,), generator=gen).item()) % len(long)
            o = torch.randint(len(long[j]) - S + 1, (1,), generator=gen).item()
            b = long[j][o:o + S]
        ids[k] = torch.tensor([CLS] + encode(a) + [SEP] + encode(b) + [SEP])
    return ids, seg, is_next.long()


ids, seg, nxt = make_pairs(test_paras, 4000, torch.Generator().manual_seed(1))
for k in range(2):
    print(f"标签 {nxt[k].item()}：", show(ids[k].tolist()))
print("片段编号：", "".join(map(str, seg[0].tolist())))
assert (ids[:, 0] == CLS).all() and (ids[:, S + 1] == SEP).all() and (ids[:, -1] == SEP).all()
assert ((ids == CLS).sum(1) == 1).all() and ((ids == SEP).sum(1) == 2).all()
assert (seg[:, :S + 2] == 0).all() and (seg[:, S + 2:] == 1).all()
share = nxt.float().mean().item()
print(f"4000 对中「是下一句」占 {share:.4f}")
assert abs(share - 0.5) < 4 * math.sqrt(0.25 / 4000)     # 4 个标准差
# --8<-- [end:nsp]


# --8<-- [start:model]
class TinyBERT(nn.Module):
    """词元 + 位置 + 片段嵌入 -> 编码器层 × L -> MLM 头（输出矩阵与词嵌入共享）与 NSP 头。"""

    def __init__(self, vocab, max_len, d=64, h=4, layers=2, d_ff=256, norm_first=True):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)                 # 可学习的位置向量，同 BERT
        self.seg = nn.Embedding(2, d)
        self.emb_norm = nn.LayerNorm(d)
        block = nn.TransformerEncoderLayer(d, h, d_ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d) if norm_first else nn.Identity()   # 前置归一化的栈末尾
        self.mlm_dense, self.mlm_norm = nn.Linear(d, d), nn.LayerNorm(d)
        self.mlm_bias = nn.Parameter(torch.zeros(vocab))     # 输出矩阵就是 self.tok.weight
        self.pooler, self.nsp = nn.Linear(d, d), nn.Linear(d, 2)
        for e in (self.tok, self.pos, self.seg):
            nn.init.normal_(e.weight, std=0.02)             # 同 BERT；共享的输出矩阵若按 N(0,1) 初始化，初始 logits 太大

    def forward(self, ids, seg):                            # (B, n) -> (B, n, d)
        pos = self.pos.weight[: ids.shape[1]]
        return self.final_norm(self.enc(self.emb_norm(self.tok(ids) + pos + self.seg(seg))))

    def mlm_logits(self, h):                                # 只对需要预测的位置算 V 路 logits
        return self.mlm_norm(F.gelu(self.mlm_dense(h))) @ self.tok.weight.T + self.mlm_bias

    def cls_vector(self, h):                                # [CLS] 的表示经过 pooler
        return torch.tanh(self.pooler(h[:, 0]))


def bert_params(vocab, max_len, d, layers, d_ff, norm_first):
    """逐层公式：嵌入 + 编码器层 + MLM 头 + pooler 与 NSP 头。"""
    emb = vocab * d + max_len * d + 2 * d + 2 * d                      # 三张嵌入表 + 嵌入后的 LayerNorm
    layer = (4 * d * d + 4 * d) + (2 * d * d_ff + d_ff + d) + 2 * 2 * d  # 注意力 + FFN + 2 个 LayerNorm
    final = 2 * d if norm_first else 0
    mlm = d * d + d + 2 * d + vocab                                   # 变换 + LayerNorm + 偏置；输出矩阵共享
    nsp = (d * d + d) + (2 * d + 2)
    return emb + layers * layer + final + mlm + nsp


def count(m):
    return sum(p.numel() for p in m.parameters())           # 共享的参数只算一次


model = TinyBERT(V, 2 * S + 3).to(device)
base = TinyBERT(30522, 512, d=768, h=12, layers=12, d_ff=3072, norm_first=False).to("meta")
print(f"TinyBERT 参数量 {count(model)}；BERT-base（同一个类，meta 设备）参数量 {count(base)}")
assert count(model) == bert_params(V, 2 * S + 3, 64, 2, 256, True)
assert count(base) == bert_params(30522, 512, 768, 12, 3072, False)
assert sum(p.shape == (V, 64) for p in model.parameters()) == 1     # 只有一张 V×d 的表：MLM 头没有自己的输出矩阵
# --8<-- [end:model]


# --8<-- [start:train]
def pretrain(seed, steps=300, batch=64, lr=3e-3):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TinyBERT(V, 2 * S + 3).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)  # 预热 10 %
    history = []
    for _ in range(steps):
        ids, seg, nxt = make_pairs(train_paras, batch, gen)
        inputs, labels = mask_tokens(ids, gen)
        inputs, seg, labels, nxt = inputs.to(device), seg.to(device), labels.to(device), nxt.to(device)
        h = net(inputs, seg)
        picked = labels != -100
        mlm = F.cross_entropy(net.mlm_logits(h[picked]), labels[picked])
        loss = mlm + F.cross_entropy(net.nsp(net.cls_vector(h)), nxt)     # 两个目标相加
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append(mlm.item())
    return net, history


net, history = pretrain(seed=0)

# 留出集：测试集段落上固定的 1000 对，用固定的随机数掩码
gen = torch.Generator().manual_seed(1234)
t_ids, t_seg, t_nxt = make_pairs(test_paras, 1000, gen)
t_in, t_lab = mask_tokens(t_ids, gen)
t_in, t_seg, t_lab, t_nxt = t_in.to(device), t_seg.to(device), t_lab.to(device), t_nxt.to(device)
net.eval()
with torch.no_grad():
    h = net(t_in, t_seg)
    picked = t_lab != -100
    logits = net.mlm_logits(h[picked])
    mlm_loss = F.cross_entropy(logits, t_lab[picked]).item()
    acc = (logits.argmax(-1) == t_lab[picked]).float().mean().item()
    nsp_acc = (net.nsp(net.cls_vector(h)).argmax(-1) == t_nxt).float().mean().item()

# 一元基线：训练集的字频。总猜最常见的字，以及按字频给概率时的交叉熵
freq = torch.bincount(torch.tensor([i for p in train_paras for i in encode(p)]), minlength=V).float()
top = freq.argmax().item()
uni = (freq / freq.sum()).to(device)
uni_acc = (t_lab[picked] == top).float().mean().item()
uni_loss = -uni[t_lab[picked]].clamp_min(1e-12).log().mean().item()
print(f"留出集 {picked.sum().item()} 个被选中的位置：")
print(f"  TinyBERT：MLM 损失 {mlm_loss:.3f}，准确率 {acc:.3f}")
print(f"  一元基线（总猜「{itos[top]}」）：交叉熵 {uni_loss:.3f}，准确率 {uni_acc:.3f}")
print(f"  下一句预测准确率 {nsp_acc:.3f}")
# 种子 0–4 各训练 300 步：MLM 损失 5.236、5.288、5.242、5.333、5.260（最大 5.333），
# 准确率 0.088、0.095、0.093、0.087、0.087（最小 0.087）；一元基线 5.681 与 0.075。
# 断言损失 < 5.45（比最差的种子高 0.12，约为种子间的极差，给其他设备上的数值差异留余量），准确率高于一元基线
assert mlm_loss < 5.45 and mlm_loss < uni_loss
assert acc > uni_acc
# --8<-- [end:train]


# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(5.5, 3.4))
smooth = [sum(history[max(0, i - 19):i + 1]) / len(history[max(0, i - 19):i + 1]) for i in range(len(history))]
ax.plot(history, color="0.8", label="每步的 MLM 损失")
ax.plot(smooth, label="20 步滑动平均")
ax.axhline(uni_loss, color="k", ls="--", label="一元基线（留出集）")
ax.set_xlabel("训练步数")
ax.set_ylabel("交叉熵（nat）")
ax.legend()
fig.savefig("bert_loss.svg", bbox_inches="tight")
# --8<-- [end:figure]


# --8<-- [start:finetune]
class Classifier(nn.Module):
    """微调：预训练的编码器 + [CLS] 上的一个线性层。"""

    def __init__(self, bert, n_classes):
        super().__init__()
        self.bert, self.head = bert, nn.Linear(bert.pooler.out_features, n_classes)

    def forward(self, ids, seg):
        return self.head(self.bert.cls_vector(self.bert(ids, seg)))


clf = Classifier(net, n_classes=3).to(device)
clf.zero_grad(set_to_none=True)                          # 清掉预训练最后一步留下的梯度
ids = t_ids[:8].to(device)                               # 微调时输入里没有 [MASK]
y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1], device=device)
loss = F.cross_entropy(clf(ids, torch.zeros_like(ids)), y)
loss.backward()
used = [n for n, p in clf.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
unused = [n for n, p in clf.named_parameters() if n not in used]
print(f"新增参数 {count(clf.head)} 个；得到梯度的参数张量 {len(used)} 个，没有梯度的：{unused}")
# 除了只在预训练时使用的 MLM 头和 NSP 头，编码器的每个参数都得到梯度，微调时一起更新
assert all(n.startswith(("bert.mlm_", "bert.nsp.")) for n in unused)
assert count(clf.head) == 64 * 3 + 3
# --8<-- [end:finetune]
