# --8<-- [start:setup]
import copy
import math
from functools import partial

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 数据一律用 CPU 生成器生成再搬到 device
# --8<-- [end:setup]


# --8<-- [start:weight-decay]
def l2_penalty(model: nn.Module) -> torch.Tensor:
    """所有参数的平方和 ||θ||²（与 weight_decay 一样，也包括偏置）。"""
    return sum((p ** 2).sum() for p in model.parameters())


def max_gap(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


Xs = torch.randn(32, 4, generator=gen, dtype=torch.float64).to(device)
ys = torch.randint(0, 3, (32,), generator=gen).to(device)
net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().to(device)
lam, steps = 0.1, 10


def compare(make_opt, lam: float, steps: int) -> float:
    """A：优化器自带 weight_decay=λ；B：weight_decay=0，损失里加 (λ/2)||θ||²。返回各步最大差。"""
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    opt_a, opt_b = make_opt(a.parameters(), weight_decay=lam), make_opt(b.parameters(), weight_decay=0.0)
    gaps = []
    for _ in range(steps):
        for model, opt, extra in ((a, opt_a, 0.0), (b, opt_b, lam)):
            opt.zero_grad()
            loss = F.cross_entropy(model(Xs), ys) + extra / 2 * l2_penalty(model)
            loss.backward()
            opt.step()
        gaps.append(max_gap(a, b))
    return max(gaps)


optimizers = {
    "SGD": partial(torch.optim.SGD, lr=0.1),
    "SGD+动量": partial(torch.optim.SGD, lr=0.1, momentum=0.9),
    "Adam": partial(torch.optim.Adam, lr=0.01),
    "AdamW": partial(torch.optim.AdamW, lr=0.01),
}
gap = {name: compare(make, lam, steps) for name, make in optimizers.items()}
for name, g in gap.items():
    shown = "< 1e-12" if g < 1e-12 else f"{g:.2f}"
    print(f"{name}：weight_decay=λ 与损失加 (λ/2)||θ||²，{steps} 步内参数最大差 {shown}")
assert gap["SGD"] < 1e-12 and gap["SGD+动量"] < 1e-12 and gap["Adam"] < 1e-12
assert gap["AdamW"] > 1e-4  # AdamW 的解耦权重衰减不等价于 L2 损失项

# 普通 SGD 一步：θ ← (1 - ηλ)θ - η∇L，先把参数按比例「衰减」再走梯度
m = copy.deepcopy(net)
opt = torch.optim.SGD(m.parameters(), lr=0.1, weight_decay=lam)
opt.zero_grad()
F.cross_entropy(m(Xs), ys).backward()
expected = [(1 - 0.1 * lam) * p.detach() - 0.1 * p.grad for p in m.parameters()]
opt.step()
assert all(torch.allclose(p, e, rtol=0, atol=1e-14) for p, e in zip(m.parameters(), expected))
# --8<-- [end:weight-decay]


# --8<-- [start:dropout-scratch]
def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """倒置丢弃法：以概率 p 置 0，保留下来的元素乘 1/(1-p)。"""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    mask = torch.empty_like(x).bernoulli_(1 - p)  # 每个元素以概率 1-p 取 1
    return x * (mask / (1 - p))


# 逐位比较放在 CPU 上：CUDA 上的 F.dropout 用融合内核，消耗随机数的方式不同
x_cpu = torch.randn(1000, generator=gen)
torch.manual_seed(1)
ours = dropout(x_cpu, p=0.3)
torch.manual_seed(1)
theirs = F.dropout(x_cpu, p=0.3, training=True)
kept = ours != 0
print(f"与 F.dropout 逐位相同：{torch.equal(ours, theirs)}")
print(f"保留的元素都乘了 1/(1-p) = {1 / 0.7:.4f}：{torch.allclose(ours[kept], x_cpu[kept] / 0.7)}")
assert torch.equal(ours, theirs)
assert torch.allclose(ours[kept], x_cpu[kept] / 0.7) and 0 < kept.sum() < len(x_cpu)
assert torch.equal(dropout(x_cpu, 0.3, training=False), x_cpu)
# --8<-- [end:dropout-scratch]

# --8<-- [start:dropout-expectation]
p, n_samples = 0.5, 100_000
x = torch.tensor([-2.0, -0.5, 0.1, 1.0, 2.0], device=device)
drop = nn.Dropout(p).to(device)  # 新建的模块默认处于训练模式
samples = drop(x.expand(n_samples, -1))  # 同一个 x 复制 n 份，每份独立地丢弃
mean = samples.mean(dim=0)
se = x.abs() * math.sqrt(p / (1 - p) / n_samples)  # 样本均值的标准误（中心极限定理）
zero_frac = (samples == 0).float().mean().item()
within = bool(torch.all((mean - x).abs() <= 4 * se))
print("x            :", " ".join(f"{v:6.2f}" for v in x.tolist()))
print("丢弃后的均值 :", " ".join(f"{v:6.2f}" for v in mean.tolist()))
print("标准误 SE    :", " ".join(f"{v:6.4f}" for v in se.tolist()))
print(f"每个分量都在 4 个标准误之内：{within}；被置 0 的比例：{zero_frac:.2f}")
assert within  # 期望不变
assert abs(zero_frac - p) <= 4 * math.sqrt(p * (1 - p) / samples.numel())

drop.eval()  # 评估模式：丢弃法什么也不做
print(f"eval 模式下输出与输入相同：{torch.equal(drop(x), x)}")
assert torch.equal(drop(x), x)
# --8<-- [end:dropout-expectation]

# --8<-- [start:augment]
digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32) / 16  # (1797, 8, 8)，像素在 [0, 1]
labels = torch.tensor(digits.target)


def random_shift(imgs: torch.Tensor, lbls: torch.Tensor, g: torch.Generator):
    """把每张图随机平移 (dy, dx) ∈ {-1, 0, 1}²，只在不会把笔画移出画面的方向中选。"""
    n = len(imgs)
    padded = F.pad(imgs, (1, 1, 1, 1))  # (n, 10, 10)，四周补一圈 0
    moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    empty = lambda t: t.abs().sum(-1) == 0  # noqa: E731  某一行/列是否全为 0
    row_ok = {-1: empty(imgs[:, 0, :]), 0: torch.ones(n, dtype=torch.bool), 1: empty(imgs[:, -1, :])}
    col_ok = {-1: empty(imgs[:, :, 0]), 0: torch.ones(n, dtype=torch.bool), 1: empty(imgs[:, :, -1])}
    allowed = torch.stack([row_ok[dy] & col_ok[dx] for dy, dx in moves], dim=1)  # (n, 9)
    choice = torch.multinomial(allowed.float(), 1, generator=g).squeeze(1)  # 每张图抽一个方向
    out = torch.empty_like(imgs)
    for k, (dy, dx) in enumerate(moves):
        sel = choice == k
        out[sel] = padded[sel, 1 - dy:9 - dy, 1 - dx:9 - dx]  # out[i, j] = img[i - dy, j - dx]
    return out, lbls, [moves[k] for k in choice.tolist()]


edges = {"上": images[:, 0, :], "下": images[:, -1, :], "左": images[:, :, 0], "右": images[:, :, -1]}
print("边缘一行（列）全为 0 的图像比例：",
      {side: round((e.sum(-1) == 0).float().mean().item(), 3) for side, e in edges.items()})
first = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(10)])  # 每类第一张
shifted, same_labels, shifts = random_shift(images[first], labels[first], torch.Generator().manual_seed(0))
mass_in, mass_out = images[first].sum((1, 2)), shifted.sum((1, 2))
print("形状：", tuple(images[first].shape), "->", tuple(shifted.shape))
print("每张图的平移 (dy, dx)：", shifts)
print(f"标签不变：{torch.equal(same_labels, labels[first])}，像素总量不变：{torch.equal(mass_in, mass_out)}")
assert shifted.shape == images[first].shape and torch.equal(same_labels, labels[first])
assert torch.equal(mass_in, mass_out) and sum(s != (0, 0) for s in shifts) >= 5

fig, axes = plt.subplots(2, 10, figsize=(8, 1.9))
for c in range(10):
    for row, img in enumerate((images[first][c], shifted[c])):
        axes[row, c].imshow(img.numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[row, c].set_xticks([])
        axes[row, c].set_yticks([])
axes[0, 0].set_ylabel("原图")
axes[1, 0].set_ylabel("平移后")
fig.savefig("regularization_augment.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:augment]

# --8<-- [start:overfit-data]
flat = images.reshape(-1, 64)
perm = torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))
idx = {"train": perm[:100], "val": perm[100:400], "test": perm[400:1100]}  # 100 / 300 / 700
data = {k: (flat[v].to(device), labels[v].to(device)) for k, v in idx.items()}
print({k: len(v) for k, v in idx.items()})
# --8<-- [end:overfit-data]


# --8<-- [start:overfit-train]
def make_mlp(p: float = 0.0, width: int = 256) -> nn.Module:
    torch.manual_seed(0)  # 三个实验用同一组初始权重
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, 10)).to(device)


@torch.no_grad()
def evaluate(model: nn.Module, split: str) -> tuple[float, float]:
    model.eval()
    X, y = data[split]
    logits = model(X)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def fit(model: nn.Module, weight_decay: float = 0.0, epochs: int = 80, patience: int | None = None):
    """全批量训练（100 个样本，一轮一步）；记录曲线，并保留验证损失最低时的权重。"""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    X, y = data["train"]
    hist = {k: [] for k in ("train", "val", "test", "train_acc", "val_acc", "test_acc")}
    best = (math.inf, -1, None)  # (验证损失, 轮次, 权重)
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
        for split in ("train", "val", "test"):
            loss, acc = evaluate(model, split)
            hist[split].append(loss)
            hist[split + "_acc"].append(acc)
        if hist["val"][-1] < best[0]:
            best = (hist["val"][-1], epoch, copy.deepcopy(model.state_dict()))
        if patience is not None and epoch - best[1] >= patience:
            break  # 早停：连续 patience 轮没有刷新最低验证损失
    return hist, best
# --8<-- [end:overfit-train]

# --8<-- [start:overfit-run]
base = make_mlp()
n_params = sum(q.numel() for q in base.parameters())
print(f"参数量 {n_params}，是训练样本数的 {n_params / len(idx['train']):.0f} 倍")
hist, best = fit(base)
t_min = min(range(len(hist["test"])), key=hist["test"].__getitem__)
for e in (0, 10, t_min, 50, 79):
    print(f"第 {e + 1:2d} 轮：训练损失 {hist['train'][e]:.1e}  测试损失 {hist['test'][e]:.3f}  "
          f"训练准确率 {hist['train_acc'][e]:.3f}  测试准确率 {hist['test_acc'][e]:.3f}")
print(f"测试损失最低在第 {t_min + 1} 轮：{hist['test'][t_min]:.3f}；最后一轮：{hist['test'][-1]:.3f}")
assert hist["train"][-1] < 1e-3 and hist["train_acc"][-1] == 1.0  # 训练集被完全记住
assert hist["train_acc"][t_min] == 1.0 and hist["train"][-1] < hist["train"][t_min]  # 记住之后训练损失仍在下降
assert hist["test_acc"][-1] <= hist["train_acc"][-1] - 0.04 and hist["test_acc"][-1] >= 0.87
assert hist["test"][-1] >= hist["test"][t_min] + 0.05  # 测试损失越过最低点后回升
# --8<-- [end:overfit-run]

# --8<-- [start:regularize]
runs = {"无正则化": hist, "权重衰减 λ=1e-3": fit(make_mlp(), weight_decay=1e-3)[0],
        "丢弃法 p=0.5": fit(make_mlp(p=0.5))[0]}
print("                 训练损失  验证损失  测试损失  测试减训练  训练准确率  验证准确率  测试准确率")
for name, h in runs.items():
    print(f"{name:12s}  {h['train'][-1]:.1e}   {h['val'][-1]:.3f}     {h['test'][-1]:.3f}     "
          f"{h['test'][-1] - h['train'][-1]:.3f}       {h['train_acc'][-1]:.3f}       "
          f"{h['val_acc'][-1]:.3f}       {h['test_acc'][-1]:.3f}")
n_test = len(idx["test"])
correct = {name: round(h["test_acc"][-1] * n_test) for name, h in runs.items()}  # 分对的测试样本数
print(f"{n_test} 个测试样本中分对的个数：{correct}，最多相差 {max(correct.values()) - min(correct.values())} 个")
for name in ("权重衰减 λ=1e-3", "丢弃法 p=0.5"):
    assert runs[name]["train_acc"][-1] == 1.0
    assert runs[name]["train"][-1] > 1e-3  # 训练损失没有被压到 1e-4 量级
    assert runs[name]["test"][-1] <= hist["test"][-1] - 0.05  # 最终测试损失至少低 0.05
    assert (runs[name]["test"][-1] - runs[name]["train"][-1]) <= (hist["test"][-1] - hist["train"][-1]) - 0.05
assert max(correct.values()) - min(correct.values()) < 10  # 准确率的差别不到 10 个样本，不断言谁高谁低
# --8<-- [end:regularize]

# --8<-- [start:figure]
epochs = range(1, len(hist["train"]) + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.plot(epochs, hist["train"], color="C0", label="训练损失")
ax1.plot(epochs, hist["test"], color="C3", label="测试损失")
ax1.axvline(t_min + 1, color="0.5", ls=":", lw=1)
ax1.set_yscale("log")
ax1.set_xlabel("轮次")
ax1.set_title("无正则化：100 个训练样本")
ax1.legend(fontsize=9)
for (name, h), color in zip(runs.items(), ("C3", "C2", "C1")):
    ax2.plot(epochs, h["test"], color=color, label=name)
ax2.set_xlabel("轮次")
ax2.set_title("测试损失")
ax2.set_ylim(0.3, 0.8)
ax2.legend(fontsize=9)
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
fig.savefig("regularization_overfit.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:early-stop]
es_model = make_mlp()
es_hist, (es_val, es_epoch, es_state) = fit(es_model, patience=20)
es_model.load_state_dict(es_state)  # 恢复验证损失最低时的权重
restored_val, _ = evaluate(es_model, "val")
es_test, es_acc = evaluate(es_model, "test")
print(f"早停：训练了 {len(es_hist['val'])} 轮（比 80 轮少 {80 - len(es_hist['val'])} 轮），"
      f"最佳检查点在第 {es_epoch + 1} 轮")
print(f"恢复后验证损失 {restored_val:.3f}，等于记录中的最小值 {min(es_hist['val']):.3f}")
print(f"恢复后测试损失 {es_test:.3f}，测试准确率 {es_acc:.3f}")
assert abs(restored_val - min(es_hist["val"])) <= 1e-6 and es_val == min(es_hist["val"])
assert len(es_hist["val"]) == es_epoch + 1 + 20  # 最佳之后又等了 20 轮才停
assert all(torch.equal(es_state[k], best[2][k]) for k in es_state)  # 与完整训练的最佳检查点相同
assert es_test <= hist["test"][-1] - 0.05  # 比训练到底的模型测试损失更低
assert es_acc < hist["test_acc"][-1]  # 但测试准确率比训练到底的模型低
# --8<-- [end:early-stop]
