# --8<-- [start:setup]
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:data]
CANVAS = 12  # 8×8 的数字放进 12×12 的画布，每个方向可平移 0..4 个像素


def place(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """把 (n, 1, 8, 8) 的数字各自放到画布上的随机位置，其余像素为 0（背景）。"""
    n = len(images)
    offset = torch.randint(0, CANVAS - 8 + 1, (n, 2), generator=gen)
    rows = offset[:, :1] + torch.arange(8)  # (n, 8)：每张图占用的行
    cols = offset[:, 1:] + torch.arange(8)
    canvas = torch.zeros(n, 1, CANVAS, CANVAS)
    canvas[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]] = images[:, 0]
    return canvas


X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
X_tr = torch.tensor(X_tr / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)  # 像素除以 16：背景为 0
X_te = torch.tensor(X_te / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)

place_gen = torch.Generator().manual_seed(0)
src_x, src_y = X_tr[y_tr < 5], y_tr[y_tr < 5]  # 源任务：数字 0–4，每轮重新随机放置
src_test = (place(X_te[y_te < 5], place_gen).to(device), y_te[y_te < 5].to(device))
pool_x = place(X_tr[y_tr >= 5], place_gen).to(device)  # 目标任务：数字 5–9，标签改成 0–4
pool_y = (y_tr[y_tr >= 5] - 5).to(device)
tgt_test = (place(X_te[y_te >= 5], place_gen).to(device), (y_te[y_te >= 5] - 5).to(device))
print(f"源任务训练 {len(src_y)} 张、测试 {len(src_test[1])} 张；目标任务可选 {len(pool_y)} 张、"
      f"测试 {len(tgt_test[1])} 张；图像 {tuple(pool_x.shape[1:])}")
# --8<-- [end:data]


# --8<-- [start:model]
def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    """骨干 features（三个卷积块，最后全局最大池化成 64 维特征）+ 分类头 head。"""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(1, 16), nn.MaxPool2d(2),  # 12×12 -> 6×6
            conv_bn_relu(16, 32), nn.MaxPool2d(2),  # 6×6 -> 3×3
            conv_bn_relu(32, 64), nn.AdaptiveMaxPool2d(1), nn.Flatten())  # 特征在哪儿出现都一样 -> 64
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


n_params = sum(p.numel() for p in SmallCNN().parameters())
by_layer = sum(9 * a * b + 2 * b for a, b in [(1, 16), (16, 32), (32, 64)]) + 64 * 5 + 5  # 卷积 + BN + 头
print(f"SmallCNN：{n_params} 个参数")
assert n_params == by_layer
# --8<-- [end:model]


# --8<-- [start:pretrain]
# 容差 ±0.03：换预训练种子，源任务测试准确率在 0.978 到 1.000 之间
@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


torch.manual_seed(0)
pretrained = SmallCNN().to(device)
opt = torch.optim.Adam(pretrained.parameters(), lr=3e-3)
for epoch in range(10):
    pretrained.train()
    x_epoch = place(src_x, place_gen).to(device)  # 每轮换一批随机位置：等于数据增强
    perm = torch.randperm(len(src_y), generator=place_gen)
    for i in range(0, len(perm), 64):
        idx = perm[i:i + 64]
        loss = F.cross_entropy(pretrained(x_epoch[idx]), src_y[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
src_acc = accuracy(pretrained, *src_test)
print(f"预训练后，源任务（数字 0–4）测试准确率 {src_acc:.3f}")
assert src_acc >= 0.95  # 换预训练种子（0、1、2）得到 0.978、0.994、1.000，下限留出余量
# --8<-- [end:pretrain]


# --8<-- [start:recipe]
# 容差 ±0.05：运行均值的改变取决于预训练出的骨干
def build(method: str, seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)  # 种子决定新分类头（从头训练时是整个网络）的初始值
    if method == "从头训练":
        model = SmallCNN().to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)
    model = copy.deepcopy(pretrained)  # 复制一份，预训练的网络本身不动
    model.head = nn.Linear(model.head.in_features, 5).to(device)  # 换上新的分类头
    if method == "特征提取":
        model.features.requires_grad_(False)  # 冻结骨干
        trainable = [p for p in model.parameters() if p.requires_grad]  # 只剩分类头
        return model, torch.optim.Adam(trainable, lr=1e-2)
    # 微调：全部参数都训练，骨干的学习率小 10 倍，以免一开始就冲掉预训练的特征
    return model, torch.optim.Adam([{"params": model.features.parameters(), "lr": 1e-3},
                                    {"params": model.head.parameters(), "lr": 1e-2}])


def set_train_mode(model: nn.Module, method: str) -> None:
    model.train()
    if method == "特征提取":
        model.features.eval()  # 冻结的骨干里 BN 继续用预训练时的运行统计量，也不再改写它们


for method in ["特征提取", "微调"]:
    model, opt = build(method, seed=0)
    n_train = sum(p.numel() for group in opt.param_groups for p in group["params"])
    print(f"{method}：优化器更新 {n_train} 个参数")
assert sum(p.numel() for p in build("特征提取", 0)[0].parameters() if p.requires_grad) == 64 * 5 + 5

# 为什么冻结时 BN 要切到 eval：只做前向，训练模式下的 BN 也会改写运行统计量
x_few = pool_x[:10]
for mode in ["train", "eval"]:
    frozen = copy.deepcopy(pretrained.features).requires_grad_(False)
    frozen.train(mode == "train")
    bn = frozen[4][1]  # 最后一个卷积块里的 BatchNorm2d
    before = bn.running_mean.clone()
    with torch.no_grad():
        alone = frozen(x_few[:1])[0]  # 同一张图：单独一批
        in_batch = frozen(x_few)[0]  # 同一张图：和另外 9 张一批
    moved = (bn.running_mean - before).abs().max().item()
    same = torch.allclose(alone, in_batch, atol=1e-6)
    print(f"{mode} 模式：运行均值改变 {moved:.3f}；同一张图的特征与同批的其他图无关 {same}")
    assert (moved > 0.01 and not same) if mode == "train" else (moved == 0 and same)
keep = (1 - bn.momentum) ** 40  # 每次训练模式的前向，旧的运行统计量乘以 1 - momentum
print(f"训练模式下前向 40 次后，预训练得到的运行统计量只剩 {keep:.3f} 的权重")
# --8<-- [end:recipe]


# --8<-- [start:compare]
# 容差 ±0.2：换平台相当于换一次预训练；换预训练种子时各格均值最多变化约 0.08，单个种子的准确率约 0.15
def sample(k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """每类取 k 个有标签的样本；同一个种子下 k 小的子集包含在 k 大的子集里。"""
    gen = torch.Generator().manual_seed(seed)
    idx = []
    for c in range(5):
        members = torch.nonzero(pool_y.cpu() == c).flatten()
        idx.append(members[torch.randperm(len(members), generator=gen)[:k]])
    idx = torch.cat(idx).to(device)
    return pool_x[idx], pool_y[idx]


STEPS = {"特征提取": 40, "微调": 40, "从头训练": 80}  # 各自训练到测试准确率基本不再变化


def run(method: str, k: int, seed: int) -> tuple[float, float, float]:
    """返回最后 10 步之前与训练结束时的目标任务测试准确率，以及训练样本上的准确率。"""
    x, y = sample(k, seed)
    model, opt = build(method, seed)
    for step in range(1, STEPS[method] + 1):  # 样本很少，每步用全部 5k 个样本
        set_train_mode(model, method)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == STEPS[method] - 10:
            before = accuracy(model, *tgt_test)
    return before, accuracy(model, *tgt_test), accuracy(model, x, y)


METHODS, KS, SEEDS = ["特征提取", "微调", "从头训练"], [1, 2, 4, 8], range(5)
res = {m: np.array([[run(m, k, seed) for seed in SEEDS] for k in KS]) for m in METHODS}
acc = {m: res[m][:, :, 1] for m in METHODS}  # 形状 (k 的个数, 种子数)

print("每类标签数 | " + " | ".join(f"{m:^12s}" for m in METHODS))
for i, k in enumerate(KS):
    cells = [f"{acc[m][i].mean():.3f} ± {acc[m][i].std(ddof=1):.3f}" for m in METHODS]
    print(f"{k:^10d} | " + " | ".join(cells))
change = {m: (res[m][:, :, 1] - res[m][:, :, 0]).mean(1) for m in METHODS}  # 最后 10 步里均值的变化
print("最后 10 步里均值的最大变化：" + "，".join(f"{m} {np.abs(change[m]).max():.3f}" for m in METHODS))
for k in [1, 2]:
    for m in METHODS:
        print(f"k = {k}，{m}，种子 0–4：{np.round(acc[m][KS.index(k)], 3).tolist()}")
# --8<-- [end:compare]

# --8<-- [start:checks]
# 容差 ±0.2：均值之差，理由同上（预训练种子 1、2 下 k = 8 时为 -0.020、-0.006）
# 下面每条结论在换用预训练种子 1、2、3（预训练出不同的骨干）时也都成立
ft, fe, sc = acc["微调"], acc["特征提取"], acc["从头训练"]
assert all(np.abs(c).max() < 0.03 for c in change.values())  # 都已训练到收敛附近
assert (res["从头训练"][:, :, 2] == 1).all()  # 从头训练总能把训练样本全部分对：差距在泛化，不在优化
i1, i2, i8 = KS.index(1), KS.index(2), KS.index(8)
assert (ft[i1] > sc[i1]).all() and (ft[i2] > sc[i2]).all()  # k = 1、2：微调在每个种子上都胜过从头训练
assert (fe[i1] > sc[i1]).all() and fe[i2].mean() > sc[i2].mean()  # 特征提取：k = 1 每个种子，k = 2 均值
assert (ft.mean(1)[1:] > fe.mean(1)[1:]).all()  # k ≥ 2 时微调的均值高于特征提取
assert fe[i8].mean() < sc[i8].mean()  # k = 8：冻结的特征已不如从头训练
gap = ft.mean(1) - sc.mean(1)
assert gap[i8] < gap[i1] / 2  # 微调的领先随标签增多而缩小
print("微调领先从头训练（均值之差）：" + "，".join(f"k = {k} 时 {g:.3f}" for k, g in zip(KS, gap)))
# --8<-- [end:checks]

# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(6, 3.8))
for m, marker in zip(METHODS, "osd"):
    ax.errorbar(KS, acc[m].mean(1), yerr=acc[m].std(1, ddof=1), marker=marker, capsize=3, label=m)
ax.axhline(0.2, color="gray", ls=":", label="随机猜测（5 类）")
ax.set(xscale="log", xticks=KS, xticklabels=KS, ylim=(0, 1), xlabel="目标任务每类的标签数 k",
       ylabel="目标任务测试准确率", title="数字 0–4 上预训练，迁移到数字 5–9（5 个种子，均值 ± 标准差）")
ax.minorticks_off()
ax.legend()
fig.savefig("transfer_labels.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
