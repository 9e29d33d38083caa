# --8<-- [start:imports]
import math
import re
import tempfile
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, TensorDataset

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
X, y = load_digits(return_X_y=True)
# --8<-- [end:imports]


# --8<-- [start:ex1]
def make_loader(dataset, seed: int, batch_size: int = 64, drop_last: bool = False,
                num_workers: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)  # 洗牌只用这个生成器
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g,
                      drop_last=drop_last, num_workers=num_workers)


X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
train_set = TensorDataset(torch.tensor(X_train, dtype=torch.float32).reshape(-1, 1, 8, 8),
                          torch.tensor(y_train))
n, B = len(train_set), 100
print(f"公式：ceil({n}/{B}) = {math.ceil(n / B)} 批，最后一批 {n} - {B} × {math.ceil(n / B) - 1} = "
      f"{n - B * (math.ceil(n / B) - 1)} 个；drop_last 时 floor({n}/{B}) = {n // B} 批")
loader = make_loader(train_set, seed=0, batch_size=B)
sizes = [len(yb) for _, yb in loader]
print("实测：批次数", len(loader), "最后一批", sizes[-1],
      "drop_last=True 时", len(make_loader(train_set, seed=0, batch_size=B, drop_last=True)))
assert len(loader) == math.ceil(1437 / 100) == 15 and sizes[-1] == 1437 - 14 * 100 == 37
assert len(make_loader(train_set, seed=0, batch_size=B, drop_last=True)) == 1437 // 100 == 14
# --8<-- [end:ex1]

# --8<-- [start:ex2]
expected = np.bincount(y) * 0.2  # 测试集中每类「应有」的样本数
dev = {}
for stratify in (None, y):
    dev[stratify is not None] = [
        np.abs(np.bincount(train_test_split(X, y, test_size=0.2, stratify=stratify, random_state=rs)[3],
                           minlength=10) - expected).max()
        for rs in range(10)]
print("不分层，random_state 0..9：", " ".join(f"{d:.1f}" for d in dev[False]))
print("分层，  random_state 0..9：", " ".join(f"{d:.1f}" for d in dev[True]))
N, n_test, N_k = len(y), 360, 180  # 一类约 180 个：测试集中它的个数服从超几何分布
sd = math.sqrt(n_test * N_k / N * (1 - N_k / N) * (N - n_test) / (N - 1))
print(f"不分层时一类在测试集中个数的标准差约 {sd:.1f}")
assert max(dev[True]) <= 1 and min(dev[False]) > 3 * max(dev[True])  # 每个种子下都差得多
# --8<-- [end:ex2]

# --8<-- [start:ex3]
NAME_RE = re.compile(r"digit_(\d+)_(\d+)\.png")


def parse_name(path: Path) -> tuple[int, int]:
    m = NAME_RE.fullmatch(path.name)
    if m is None:
        raise ValueError(f"文件名不符合 digit_<label>_<index>.png: {path.name}")
    return int(m.group(1)), int(m.group(2))


class DigitFolder(Dataset):
    def __init__(self, root: Path, transform: Callable | None = None):
        self.files = sorted(Path(root).glob("*.png"))
        self.labels = [parse_name(p)[0] for p in self.files]  # 构造时就解析全部文件名
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(plt.imread(self.files[i])[..., 0].copy()).unsqueeze(0)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


digits = load_digits()
tmp = tempfile.TemporaryDirectory(prefix="my_digits_")
root = Path(tmp.name)
for k in range(10):  # 每类 1 张
    i = int(np.flatnonzero(digits.target == k)[0])
    plt.imsave(root / f"digit_{k}_{i:04d}.png", digits.images[i], cmap="gray", vmin=0, vmax=16)

inverted = DigitFolder(root, transform=lambda img: 1 - img)  # 黑白反转
max_err = 0.0
for path, (image, label) in zip(inverted.files, inverted):
    idx = parse_name(path)[1]
    gray = torch.from_numpy(digits.images[idx]).float()          # 原图的整数灰度 0..16
    assert label == digits.target[idx]
    assert torch.equal(torch.round((1 - image[0]) * 16), gray)    # 反转回去再乘 16，整数灰度完全恢复
    max_err = max(max_err, (image[0] - (1 - gray / 16)).abs().max().item())  # 与反转后的原图比较
print(f"反转后：{len(inverted)} 个样本，与反转的原图最大误差 {max_err:.4f} <= 1/255：{max_err <= 1 / 255}")
assert max_err <= 1 / 255

plt.imsave(root / "digit_x_0001.png", digits.images[0], cmap="gray", vmin=0, vmax=16)
try:
    DigitFolder(root)
    raise AssertionError("带 x 的文件名应当在构造数据集时就报错")
except ValueError as err:
    print("构造 DigitFolder 时：", err)
tmp.cleanup()
# --8<-- [end:ex3]


# --8<-- [start:ex4]
def epoch_batches(loader: DataLoader) -> list[torch.Tensor]:
    return [yb for _, yb in loader]


if __name__ == "__main__":  # 子进程在 spawn 方式下会重新导入本脚本，不能让它们也执行这里
    same = True
    for workers in (0, 2):
        loader = make_loader(train_set, seed=0, num_workers=workers)
        epochs = [epoch_batches(loader) for _ in range(2)]  # 两轮：第二轮用生成器的后续状态
        if workers == 0:
            reference = epochs
        else:
            same = all(torch.equal(p, q) for ep, ref in zip(epochs, reference) for p, q in zip(ep, ref))
        print(f"num_workers={workers}：每轮 {len(epochs[0])} 批，第一批前 8 个标签 {epochs[0][0][:8].tolist()}")
    print("两轮的批次与 num_workers=0 完全相同：", same)
    assert same
# --8<-- [end:ex4]
