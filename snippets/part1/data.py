# --8<-- [start:digits]
import matplotlib.pyplot as plt
import numpy as np
import torch
from mnist1d.data import get_dataset_args, make_dataset
from sklearn.datasets import load_digits

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

digits = load_digits()  # 随 scikit-learn 安装，离线可用
X_digits, y_digits = digits.data, digits.target
print("images:", digits.images.shape, "data:", X_digits.shape, X_digits.dtype)
print("labels:", y_digits.shape, y_digits.dtype)
print("像素取值:", np.unique(X_digits).astype(int).tolist())
print("各类样本数:", np.bincount(y_digits).tolist())

assert digits.images.shape == (1797, 8, 8) and X_digits.shape == (1797, 64)
assert np.array_equal(digits.images.reshape(1797, 64), X_digits)  # data 是 images 按行展平
assert np.array_equal(np.unique(X_digits), np.arange(17))  # 整数灰度 0..16
assert np.array_equal(np.unique(y_digits), np.arange(10))
assert np.bincount(y_digits).min() >= 174 and np.bincount(y_digits).sum() == 1797
# --8<-- [end:digits]

# --8<-- [start:digits-figure]
fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
for label in range(10):
    first = np.flatnonzero(y_digits == label)[:3]  # 每类取前 3 个样本
    for row, i in enumerate(first):
        ax = axes[row, label]
        ax.imshow(digits.images[i], cmap="gray_r", vmin=0, vmax=16)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(str(label))
fig.savefig("data_digits.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:digits-figure]

# --8<-- [start:mnist1d]
args = get_dataset_args()  # 只是一组参数，不会联网
print("num_samples:", args.num_samples, "train_split:", args.train_split,
      "final_seq_length:", args.final_seq_length, "seed:", args.seed)
data = make_dataset(args)  # 由模板离线生成
x_train, y_train = data["x"], data["y"]
x_test, y_test = data["x_test"], data["y_test"]
print("train:", x_train.shape, x_train.dtype, "test:", x_test.shape, y_test.dtype)
print("训练集各类:", np.bincount(y_train).tolist())
print("测试集各类:", np.bincount(y_test).tolist())
x_all = np.concatenate([x_train, x_test])
print(f"全体均值的绝对值 {abs(x_all.mean()):.4f}，标准差 {x_all.std():.4f}")

assert x_train.shape == (4000, 40) and x_test.shape == (1000, 40)
assert np.all(np.bincount(np.concatenate([y_train, y_test])) == 500)  # 每类恰好 500 条
assert abs(x_all.mean()) < 1e-6 and abs(x_all.std() - 1) < 1e-6
u = np.random.rand()  # make_dataset 之后的第一个全局随机数
np.random.seed(123)  # 无论之前的全局状态是什么……
again = make_dataset(get_dataset_args())  # ……再生成一次，数据逐位相同
assert np.array_equal(again["x"], x_train) and np.array_equal(again["y_test"], y_test)
assert np.random.rand() == u  # ……并且全局随机状态被重置到同一处
# --8<-- [end:mnist1d]

# --8<-- [start:mnist1d-figure]
fig, axes = plt.subplots(2, 5, figsize=(11, 4), sharex=True, sharey=True)
for label, ax in enumerate(axes.flat):
    for i in np.flatnonzero(y_train == label)[:3]:  # 每类 3 条训练样本
        ax.plot(x_train[i], lw=1)
    ax.set_title(f"类别 {label}")
for ax in axes[1]:
    ax.set_xlabel("位置")
fig.savefig("data_mnist1d.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:mnist1d-figure]

# --8<-- [start:synthetic]
def make_blobs(n_per_class: int, centers: list[list[float]], std: float,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """二维高斯混合：每个中心一类，噪声来自带种子的独立生成器。"""
    g = torch.Generator().manual_seed(seed)  # 不碰全局随机状态
    c = torch.tensor(centers)
    y = torch.arange(len(c)).repeat_interleave(n_per_class)
    x = c[y] + std * torch.randn(len(y), 2, generator=g)
    return x, y


centers = [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]
x_syn, y_syn = make_blobs(200, centers, std=0.5, seed=0)
print("synthetic:", tuple(x_syn.shape), x_syn.dtype, tuple(y_syn.shape), y_syn.dtype)
for k in range(3):
    m = x_syn[y_syn == k].mean(0)
    print(f"类别 {k} 的样本均值: ({m[0]:.3f}, {m[1]:.3f})")

x_same, _ = make_blobs(200, centers, std=0.5, seed=0)
x_other, _ = make_blobs(200, centers, std=0.5, seed=1)
assert torch.equal(x_syn, x_same) and not torch.equal(x_syn, x_other)
tol = 4 * 0.5 / 200 ** 0.5  # 4 倍标准误 σ/√n
dev = torch.stack([x_syn[y_syn == k].mean(0) for k in range(3)]) - torch.tensor(centers)  # (3, 2) 均值 - 中心
k_max, j_max = divmod(dev.abs().argmax().item(), 2)
print(f"4 倍标准误 {tol:.3f}；偏差绝对值最大的是类别 {k_max} 的第 {j_max + 1} 个坐标：{dev[k_max, j_max]:.3f}")
assert dev.abs().max() <= tol and (k_max, j_max) == (2, 0)
x_syn, y_syn = x_syn.to(device), y_syn.to(device)  # 在 CPU 上生成，再搬到设备
# --8<-- [end:synthetic]
