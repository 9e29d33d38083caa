# --8<-- [start:data]
import json
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
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
    """本书语料的带标签快照：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part8/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part8" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站第 8 部分的首页（part8/book_corpus.jsonl）下载，放在当前目录")


header, *records = [json.loads(line) for line in find_corpus().read_text(encoding="utf-8").splitlines()]
PARTS = ["part1", "part2", "part3", "part4", "part5", "part6", "part7", "part9", "part10", "part12"]
NAMES = [f"第 {p[4:]} 部分" for p in PARTS]
data = [(r["text"], PARTS.index(r["part"])) for r in records if r["part"] in PARTS]   # 10 个类别
split = {"train": [d for i, d in enumerate(data) if i % 10 < 8],     # 与 4.1 相同的固定划分：按 i mod 10
         "valid": [d for i, d in enumerate(data) if i % 10 == 8],
         "test": [d for i, d in enumerate(data) if i % 10 == 9]}
texts = {k: [t for t, _ in v] for k, v in split.items()}
labels = {k: np.array([y for _, y in v]) for k, v in split.items()}
print("快照提交：", header["commit"], " 段落：", len(data))
for k in split:
    counts = np.bincount(labels[k], minlength=10)
    print(f"{k:>5}: {len(split[k]):4d} 段，各部分 {counts.tolist()}")
train_counts = np.bincount(labels["train"], minlength=10)
print(f"训练集最多 / 最少：{NAMES[train_counts.argmax()]} {train_counts.max()} 段，"
      f"{NAMES[train_counts.argmin()]} {train_counts.min()} 段，相差 {train_counts.max() / train_counts.min():.2f} 倍")
assert sum(len(v) for v in split.values()) == len(data) and train_counts.min() > 0
# 各页共用的套话（如「代码中的断言证明了以下结论……」）在书中多次出现，可能同时落在训练集与测试集里
seen = set(texts["train"])
copies = [(t, y) for t, y in split["test"] if t in seen]
print(f"测试集中与某段训练文字一字不差的：{len(copies)} 段，不同的文字 {len({t for t, _ in copies})} 种")
assert len(copies) < 0.03 * len(split["test"])   # 不到 3%：影响很小，但要知道它在那里
# --8<-- [end:data]


# --8<-- [start:metrics]
def confusion(y_true, y_pred, k=10):
    """混淆矩阵：第 i 行第 j 列 = 真实类别 i 被预测成 j 的段落数。"""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def macro_f1(y_true, y_pred, k=10):
    """从混淆矩阵算每一类的精确率、召回率、F1，再对 k 类做不加权的平均。"""
    m = confusion(y_true, y_pred, k)
    tp = np.diag(m).astype(float)
    pred_pos, true_pos = m.sum(0), m.sum(1)            # 预测为该类的段数、真实为该类的段数
    precision = np.divide(tp, pred_pos, out=np.zeros(k), where=pred_pos > 0)
    recall = np.divide(tp, true_pos, out=np.zeros(k), where=true_pos > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)  # 没有命中的类 F1 记为 0
    return f1.mean()


# 手算的小例子：3 类，真实 [0,0,0,0,1,2]，预测 [0,0,0,1,1,1]
# 类 0：P=1, R=3/4, F1=6/7；类 1：P=1/3, R=1, F1=1/2；类 2：P=0, R=0, F1=0
hand = macro_f1(np.array([0, 0, 0, 0, 1, 2]), np.array([0, 0, 0, 1, 1, 1]), k=3)
print(f"手算例子：macro-F1 = {hand:.6f}，(6/7 + 1/2 + 0) / 3 = {(6 / 7 + 1 / 2) / 3:.6f}")
assert abs(hand - (6 / 7 + 1 / 2) / 3) < 1e-12

# 永远猜训练集里最多的一类：准确率等于这一类在测试集的占比，macro-F1 却很低
major = np.full_like(labels["test"], train_counts.argmax())
acc_major = (major == labels["test"]).mean()
f1_major = macro_f1(labels["test"], major)
print(f"永远猜{NAMES[train_counts.argmax()]}：准确率 {acc_major:.3f}，macro-F1 {f1_major:.3f}")
assert abs(f1_major - f1_score(labels["test"], major, average="macro", zero_division=0)) < 1e-12
assert f1_major < acc_major / 4
# --8<-- [end:metrics]


# --8<-- [start:baseline]
# 字的一元 + 二元语法，tf-idf 加权（sublinear_tf：词频取 1 + log）；在训练集上建词表、拟合
vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
X_train = vectorizer.fit_transform(texts["train"])
X_test = vectorizer.transform(texts["test"])
logreg = LogisticRegression(C=10.0, max_iter=1000).fit(X_train, labels["train"])
pred_lr = logreg.predict(X_test)
acc_lr = (pred_lr == labels["test"]).mean()
f1_lr = macro_f1(labels["test"], pred_lr)
print(f"tf-idf 特征：{X_train.shape[1]} 维（训练集 {X_train.shape[0]} 段）")
print(f"逻辑回归  测试集：准确率 {acc_lr:.3f}，macro-F1 {f1_lr:.3f}")
assert abs(f1_lr - f1_score(labels["test"], pred_lr, average="macro")) < 1e-12   # 从零实现 == scikit-learn
# 逻辑回归（lbfgs）是确定性的，没有种子可换；CPU 上 0.808 / 0.792，下限留 0.03 的余量
assert acc_lr > 0.78 and f1_lr > 0.76
# --8<-- [end:baseline]


# --8<-- [start:vocab]
MAX_LEN = 48  # 每段只取前 48 个字（段落长度的中位数约 80 字），为了让 CPU 上的训练只花几秒
counter = Counter(ch for t in texts["train"] for ch in t)
itos = ["<pad>", "<unk>"] + sorted((c for c, n in counter.items() if n >= 2), key=lambda c: (-counter[c], c))
stoi = {c: i for i, c in enumerate(itos)}


def encode(ts):
    """字 -> 编号，截断到 MAX_LEN，不足的在右边补 0（<pad>）。"""
    x = torch.zeros(len(ts), MAX_LEN, dtype=torch.long)
    for i, t in enumerate(ts):
        ids = [stoi.get(c, 1) for c in t[:MAX_LEN]]
        x[i, :len(ids)] = torch.tensor(ids)
    return x.to(device)


X = {k: encode(texts[k]) for k in split}
Y = {k: torch.tensor(labels[k], device=device) for k in split}
print(f"字表 {len(itos)} 个（含 <pad>、<unk>），输入形状 {tuple(X['train'].shape)}")
# --8<-- [end:vocab]


# --8<-- [start:textcnn]
class TextCNN(nn.Module):
    """Kim（2014）：词向量 -> 几种宽度的一维卷积 -> 沿时间的最大池化 -> 拼接 -> 丢弃法 -> 全连接。"""

    def __init__(self, vocab_size, embed=64, channels=32, widths=(2, 3, 4), classes=10):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed, channels, w) for w in widths)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(channels * len(widths), classes)

    def forward(self, x):                          # x: (B, T) 的字编号
        e = self.embed(x).transpose(1, 2)          # (B, d, T)：Conv1d 把第 1 维当作通道
        h = [F.relu(conv(e)).amax(dim=2) for conv in self.convs]   # 每种宽度 (B, C)
        return self.fc(self.drop(torch.cat(h, dim=1)))             # (B, 10) 的 logit


def count(model):
    return sum(p.numel() for p in model.parameters())


V, d, C, H = len(itos), 64, 32, 32
n_cnn = count(TextCNN(V))
print(f"TextCNN 参数量：{n_cnn}")
assert n_cnn == V * d + sum(w * d * C + C for w in (2, 3, 4)) + 3 * C * 10 + 10
# --8<-- [end:textcnn]


# --8<-- [start:bilstm]
class BiLSTM(nn.Module):
    """双向 LSTM：两个方向的输出拼接，在有效位置（非 <pad>）上沿时间取最大值，再接全连接。"""

    def __init__(self, vocab_size, embed=64, hidden=32, classes=10):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):                          # x: (B, T)
        out, _ = self.lstm(self.embed(x))          # (B, T, 2h)
        out = out.masked_fill((x == 0).unsqueeze(2), -1e4)   # <pad> 位置不参加最大池化
        return self.fc(self.drop(out.amax(dim=1)))


n_lstm = count(BiLSTM(V))
print(f"BiLSTM 参数量：{n_lstm}")
# 每个方向：4 个门，W_ih (4h×d)、W_hh (4h×h) 和两份偏置 b_ih、b_hh（PyTorch 的约定）
assert n_lstm == V * d + 2 * (4 * H * (d + H) + 2 * 4 * H) + 2 * H * 10 + 10
# --8<-- [end:bilstm]


# --8<-- [start:train]
def predict(model, x):
    model.eval()
    with torch.no_grad():
        p = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    model.train()
    return p.cpu().numpy()


def train(make_model, seed, epochs=4, batch=64, lr=5e-3):
    """训练 epochs 轮；每轮末在验证集上算 macro-F1，保留最好的一轮的参数，最后只在测试集上评一次。"""
    torch.manual_seed(seed)
    model = make_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best = (-1.0, None)
    for _ in range(epochs):
        perm = torch.randperm(len(Y["train"])).to(device)
        for i in range(0, len(perm), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(X["train"][idx]), Y["train"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        f1_valid = macro_f1(labels["valid"], predict(model, X["valid"]))
        if f1_valid > best[0]:
            best = (f1_valid, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    pred = predict(model, X["test"])
    return (pred == labels["test"]).mean(), macro_f1(labels["test"], pred), pred


SEEDS = [0, 1, 2]
results = {"TextCNN": [], "BiLSTM": []}
for name, make in [("TextCNN", lambda: TextCNN(V)), ("BiLSTM", lambda: BiLSTM(V))]:
    for seed in SEEDS:
        acc, f1, pred = train(make, seed)
        assert abs(f1 - f1_score(labels["test"], pred, average="macro")) < 1e-12
        results[name].append((acc, f1))
        print(f"{name:>7} 种子 {seed}：准确率 {acc:.3f}，macro-F1 {f1:.3f}")
for name, r in results.items():
    a, f = np.array(r).T
    print(f"{name:>7} {len(SEEDS)} 个种子：准确率 {a.mean():.3f} ± {a.std():.3f}，macro-F1 {f.mean():.3f} ± {f.std():.3f}")
print(f"逻辑回归（确定性）：准确率 {acc_lr:.3f}，macro-F1 {f1_lr:.3f}")
# 公平的对照：神经网络只读每段的前 MAX_LEN 个字，让逻辑回归也只读这么多
cut = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), min_df=2, sublinear_tf=True)
cut_train = cut.fit_transform([t[:MAX_LEN] for t in texts["train"]])
logreg_cut = LogisticRegression(C=10.0, max_iter=1000).fit(cut_train, labels["train"])
pred_cut = logreg_cut.predict(cut.transform([t[:MAX_LEN] for t in texts["test"]]))
acc_cut, f1_cut = (pred_cut == labels["test"]).mean(), macro_f1(labels["test"], pred_cut)
print(f"逻辑回归（也只读前 {MAX_LEN} 字）：准确率 {acc_cut:.3f}，macro-F1 {f1_cut:.3f}")
cnn, lstm = np.array(results["TextCNN"]), np.array(results["BiLSTM"])
# 下限：种子 0–9 在 CPU 与 CUDA（H200）上各跑一遍。TextCNN 准确率 CPU 0.551–0.596、CUDA 0.509–0.609，
# macro-F1 CPU 0.484–0.538、CUDA 0.449–0.559（CUDA 的丢弃法用另一串随机数，相当于又多了一批种子）；
# BiLSTM 准确率 CPU 0.483–0.528、CUDA 0.491–0.546，macro-F1 CPU 0.364–0.421、CUDA 0.361–0.420。
# 下限比 20 次运行的最小值低约 0.04
assert cnn[:, 0].min() > 0.47 and cnn[:, 1].min() > 0.41
assert lstm[:, 0].min() > 0.44 and lstm[:, 1].min() > 0.32
# 排名只断言每个种子都成立的部分：逻辑回归高于每个种子的两种神经网络，TextCNN 在每个种子上高于同种子的 BiLSTM
assert (acc_lr > cnn[:, 0]).all() and (f1_lr > cnn[:, 1]).all()
assert (acc_cut > cnn[:, 0]).all() and (f1_cut > cnn[:, 1]).all()     # 读同样多的字，仍然如此
assert acc_cut < acc_lr and f1_cut < f1_lr                              # 读整段比只读前 48 字好
assert (cnn[:, 0] > lstm[:, 0]).all() and (cnn[:, 1] > lstm[:, 1]).all()
# 每个模型的 macro-F1 都低于准确率；同一种子上 BiLSTM 两者的差距大于 TextCNN，两者又都大于逻辑回归
assert (cnn[:, 1] < cnn[:, 0]).all() and (lstm[:, 1] < lstm[:, 0]).all() and f1_lr < acc_lr
assert ((lstm[:, 0] - lstm[:, 1]) > (cnn[:, 0] - cnn[:, 1])).all()
assert ((cnn[:, 0] - cnn[:, 1]) > acc_lr - f1_lr).all()
print(f"逻辑回归比 TextCNN 最好的种子高：准确率 {acc_lr - cnn[:, 0].max():.3f}，macro-F1 {f1_lr - cnn[:, 1].max():.3f}；"
      f"只读前 {MAX_LEN} 字时高 {acc_cut - cnn[:, 0].max():.3f} 与 {f1_cut - cnn[:, 1].max():.3f}")
# --8<-- [end:train]


# --8<-- [start:confusion]
cm = confusion(labels["test"], pred_lr)
off = [(cm[i, j], NAMES[i], NAMES[j]) for i in range(10) for j in range(10) if i != j]
off.sort(key=lambda t: (-t[0], t[1], t[2]))
print("逻辑回归在测试集上最常见的错误（真实 -> 预测：段数）：")
for n, a, b in off[:4]:
    print(f"  {a} -> {b}：{n}")
recall = np.diag(cm) / cm.sum(1)
print("各部分的召回率：", " ".join(f"{NAMES[i][2:-3]}:{recall[i]:.2f}" for i in range(10)))
assert cm.sum() == len(labels["test"]) and (np.diag(cm).sum() == (pred_lr == labels["test"]).sum())
# 正文的说法：最常见的错误是第 1 部分被判成第 2 部分，第 1 部分的召回率是 10 类里最低的
assert off[0][1:] == ("第 1 部分", "第 2 部分") and recall.argmin() == 0
assert off[1][1:] == ("第 10 部分", "第 3 部分") and off[0][0] > 2 * off[1][0]   # 其次的错误不到最多的一半
# 召回率最低的 3 个部分，正是训练集里段数最少的 3 个部分
assert set(np.argsort(recall)[:3]) == set(np.argsort(train_counts)[:3])

fig, ax = plt.subplots(figsize=(6.4, 5.6))
ax.imshow(cm / cm.sum(1, keepdims=True), cmap="Blues", vmin=0, vmax=1)
for i in range(10):
    for j in range(10):
        if cm[i, j]:
            ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > 0.5 * cm[i].sum() else "black")
ax.set_xticks(range(10), NAMES, rotation=45, ha="right")
ax.set_yticks(range(10), NAMES)
ax.set_xlabel("预测")
ax.set_ylabel("真实")
ax.set_title("逻辑回归在测试集上的混淆矩阵（颜色：按行归一化）")
fig.savefig("classification_confusion.svg", bbox_inches="tight")
# --8<-- [end:confusion]
