# --8<-- [start:dataset]
import math

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, random_split

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DigitsDataset(Dataset):
    """把 (N, 64) 的数组包装成 Dataset：第 i 个样本是 (1×8×8 图像, 标签)。"""

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        self.x = torch.as_tensor(features, dtype=torch.float32).reshape(-1, 1, 8, 8)
        self.y = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


X, y = load_digits(return_X_y=True)
full = DigitsDataset(X, y)
image, label = full[0]
print(len(full), tuple(image.shape), image.dtype, label.item(), label.dtype)
assert len(full) == 1797 and image.shape == (1, 8, 8) and label.dtype == torch.long
# --8<-- [end:dataset]

# --8<-- [start:split]
# 分层划分：训练集与测试集中各类比例与全体相同
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, stratify=y, random_state=0)
print("分层划分:", len(y_train), len(y_test), "测试集各类:", np.bincount(y_test).tolist())

# 不分层的随机划分：random_split 配一个带种子的生成器
parts = random_split(full, [1437, 360], generator=torch.Generator().manual_seed(0))
again = random_split(full, [1437, 360], generator=torch.Generator().manual_seed(0))
test_counts = np.bincount(y[parts[1].indices], minlength=10)
print("random_split:", len(parts[0]), len(parts[1]), "测试集各类:", test_counts.tolist())

expected = np.bincount(y) * 0.2  # 按全体比例，测试集中每类「应有」的样本数
print(f"与比例的最大偏差：分层 {np.abs(np.bincount(y_test) - expected).max():.1f}，"
      f"随机 {np.abs(test_counts - expected).max():.1f}")
assert np.abs(np.bincount(y_test) - expected).max() <= 1  # 分层：每类至多差 1 个
assert parts[0].indices == again[0].indices  # 同一种子，同一划分
assert sorted(parts[0].indices + parts[1].indices) == list(range(1797))  # 不重不漏
# --8<-- [end:split]

# --8<-- [start:standardize]
mu = X_train.mean(axis=0)  # 每个像素的均值与标准差，只用训练集估计
sigma = X_train.std(axis=0)
constant = sigma < 1e-8  # 训练集中恒为 0 的角落像素
sigma[constant] = 1.0  # 避免除以 0
X_train_std = (X_train - mu) / sigma
X_test_std = (X_test - mu) / sigma  # 测试集用训练集的 μ、σ
print("恒定像素个数:", int(constant.sum()))
print(f"训练集: 均值绝对值最大 {np.abs(X_train_std.mean(0)).max():.4f}，"
      f"非恒定像素标准差 {X_train_std[:, ~constant].std(0).min():.4f}..."
      f"{X_train_std[:, ~constant].std(0).max():.4f}")
print(f"测试集: 均值绝对值最大 {np.abs(X_test_std.mean(0)).max():.4f}")
assert np.all(X_train[:, constant] == 0)
assert np.allclose(X_train_std.mean(0), 0, atol=1e-12)
assert np.allclose(X_train_std[:, ~constant].std(0), 1)
train_set = DigitsDataset(X_train_std, y_train)
test_set = DigitsDataset(X_test_std, y_test)
# --8<-- [end:standardize]

# --8<-- [start:loader]
def make_loader(dataset, seed: int, batch_size: int = 64, drop_last: bool = False) -> DataLoader:
    g = torch.Generator().manual_seed(seed)  # 洗牌只用这个生成器
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g,
                      drop_last=drop_last, num_workers=0)


loader = make_loader(train_set, seed=0)
xb, yb = next(iter(loader))
print("一个批次:", tuple(xb.shape), xb.dtype, tuple(yb.shape), yb.dtype)
sizes = [len(yb) for _, yb in loader]
print("批次数:", len(loader), "最后一批:", sizes[-1])
print("drop_last=True 时批次数:", len(make_loader(train_set, seed=0, drop_last=True)))
assert len(loader) == math.ceil(1437 / 64) == 23 and sizes[-1] == 1437 - 22 * 64
assert len(make_loader(train_set, seed=0, drop_last=True)) == 1437 // 64
# --8<-- [end:loader]

# --8<-- [start:reproducible]
def epoch_batches(loader: DataLoader) -> list[torch.Tensor]:
    return [yb for _, yb in loader]


a, b = make_loader(train_set, seed=0), make_loader(train_set, seed=0)
c = make_loader(train_set, seed=1)
a1, b1, c1 = epoch_batches(a), epoch_batches(b), epoch_batches(c)
a2 = epoch_batches(a)  # 同一个 loader 的第二个 epoch
print("种子 0 第一批前 8 个标签:", a1[0][:8].tolist())
print("种子 0 再建一次        :", b1[0][:8].tolist())
print("种子 1                 :", c1[0][:8].tolist())
print("种子 0 第二个 epoch    :", a2[0][:8].tolist())
assert all(torch.equal(p, q) for p, q in zip(a1, b1))  # 同种子：批次顺序完全相同
assert not torch.equal(torch.cat(a1), torch.cat(c1))  # 换种子：顺序不同
assert not torch.equal(torch.cat(a1), torch.cat(a2))  # 每个 epoch 重新洗牌

# 洗牌顺序只取决于样本数、批大小和生成器，所以可以用一个「编号数据集」还原它
index_loader = make_loader(range(len(train_set)), seed=0)
seen = []
for (xb, yb), ib in zip(make_loader(train_set, seed=0), index_loader):
    assert torch.equal(xb, train_set.x[ib]) and torch.equal(yb, train_set.y[ib])
    seen.append(ib)
seen = torch.cat(seen)
print("一个 epoch 取到的样本数:", len(seen), "其中不同的:", len(seen.unique()))
assert torch.equal(seen.sort().values, torch.arange(1437))  # 每个样本恰好一次
# --8<-- [end:reproducible]

# --8<-- [start:collate]
# 变长序列：默认的 collate 只会 torch.stack，长度不同就失败
g = torch.Generator().manual_seed(0)
lengths = torch.randint(3, 11, (20,), generator=g)
sequences = [torch.randn(int(n), generator=g) for n in lengths]
seq_data = [(s, int(len(s) > 6)) for s in sequences]  # 标签：长度是否大于 6


def pad_collate(batch):
    """把一批 (序列, 标签) 补零成 (B, T_max)，并返回各自的真实长度。"""
    seqs, labels = zip(*batch)
    lens = torch.tensor([len(s) for s in seqs])
    return pad_sequence(list(seqs), batch_first=True), lens, torch.tensor(labels)


try:
    next(iter(DataLoader(seq_data, batch_size=4)))
except RuntimeError as err:
    print("默认 collate:", type(err).__name__)
padded, lens, labels = next(iter(DataLoader(seq_data, batch_size=4, collate_fn=pad_collate)))
print("补零后:", tuple(padded.shape), "长度:", lens.tolist(), "标签:", labels.tolist())
assert padded.shape == (4, int(lens.max()))
for row, n in zip(padded, lens):
    assert torch.all(row[n:] == 0)  # 补的位置全是 0
# --8<-- [end:collate]

# --8<-- [start:to-device]
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).to(device)
count = 0
with torch.no_grad():
    for xb, yb in DataLoader(test_set, batch_size=100):  # 评估时不必洗牌
        xb, yb = xb.to(device), yb.to(device)  # 每个批次搬到模型所在设备
        logits = model(xb)
        assert logits.shape == (len(yb), 10)
        count += len(yb)
same_device = logits.device == next(model.parameters()).device
print("测试集样本数:", count, "logits 与模型在同一设备:", same_device)
assert count == len(test_set) == 360 and same_device
# --8<-- [end:to-device]
