# --8<-- [start:write-pngs]
import re
import tempfile
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, Dataset

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

digits = load_digits()
tmp = tempfile.TemporaryDirectory(prefix="my_digits_")  # 目录名里故意带下划线
root = Path(tmp.name)
chosen = [int(i) for k in range(10) for i in np.flatnonzero(digits.target == k)[:3]]
for i in chosen:  # 每类 3 张，文件名 digit_<标签>_<编号>.png
    plt.imsave(root / f"digit_{digits.target[i]}_{i:04d}.png", digits.images[i],
               cmap="gray", vmin=0, vmax=16)
(root / "notes.txt").write_text("不是图片，Dataset 应当忽略它")
names = sorted(p.name for p in root.iterdir())
print("写入文件数:", len(names), "例如:", names[:3], "以及", names[-1])
# --8<-- [end:write-pngs]

# --8<-- [start:dataset]
NAME_RE = re.compile(r"digit_(\d+)_(\d+)\.png")


def parse_name(path: Path) -> tuple[int, int]:
    """只看文件名（不看目录），返回 (标签, 编号)；不合格式就报错而不是猜。"""
    m = NAME_RE.fullmatch(path.name)
    if m is None:
        raise ValueError(f"文件名不符合 digit_<label>_<index>.png: {path.name}")
    return int(m.group(1)), int(m.group(2))


class DigitFolder(Dataset):
    """一个文件夹里的 PNG 数字图像；标签来自文件名。"""

    def __init__(self, root: Path, transform: Callable | None = None):
        self.files = sorted(Path(root).glob("*.png"))  # 只要 PNG，并排序：顺序与文件系统无关
        self.labels = [parse_name(p)[0] for p in self.files]  # 先解析全部文件名，有错立即报告
        self.transform = transform  # 可选；None 表示原样返回

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rgba = plt.imread(self.files[i])  # (H, W, 4) float32，取值 [0, 1]
        image = torch.from_numpy(rgba[..., 0].copy()).unsqueeze(0)  # 灰度图三个通道相同，取一个
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


folder = DigitFolder(root)
image, label = folder[0]
print("样本数:", len(folder), "第一个:", folder.files[0].name,
      tuple(image.shape), image.dtype, label)
assert len(folder) == 30 and image.shape == (1, 8, 8) and image.dtype == torch.float32
assert parse_name(Path("/tmp/a_b_c/digit_7_0123.png")) == (7, 123)  # 目录里的下划线不干扰
try:
    parse_name(Path("digit_7.png"))
    raise AssertionError("格式不对的文件名应当报错")
except ValueError as err:
    print("格式不对:", err)
# --8<-- [end:dataset]

# --8<-- [start:roundtrip]
loader = DataLoader(folder, batch_size=8, shuffle=False)
xb, yb = next(iter(loader))
print("批次:", tuple(xb.shape), xb.dtype, yb.tolist())

max_err = 0.0
for path, (image, label) in zip(folder.files, folder):
    lab, idx = parse_name(path)
    original = torch.from_numpy(digits.images[idx]).float() / 16  # 原始灰度缩放到 [0, 1]
    assert label == digits.target[idx]  # 标签逐个还原
    assert torch.equal(torch.round(image[0] * 16), original * 16)  # 0..16 的整数灰度完全还原
    max_err = max(max_err, (image[0] - original).abs().max().item())
print(f"与原图的最大误差: {max_err:.4f}（8 位 PNG 的量化步长 1/255 = {1 / 255:.4f}）")
assert max_err <= 1 / 255
assert sorted(folder[i][1] for i in range(len(folder))) == sorted(digits.target[chosen].tolist())
xb = xb.to(device)  # 之后就和其他批次一样送进模型
tmp.cleanup()
# --8<-- [end:roundtrip]
