# --8<-- [start:setup]
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:data]
def make_moons(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """两个交错的半月：类别 0 在上、类别 1 在下；标签是 0/1 的浮点数。"""
    t = torch.rand(n, generator=gen) * math.pi
    label = torch.randint(0, 2, (n,), generator=gen)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(label[:, None] == 1, lower, upper) + noise * torch.randn(n, 2, generator=gen)
    return x, label.float()


data_gen = torch.Generator().manual_seed(0)  # 数据在 CPU 上生成，CPU 与 GPU 上完全相同
train_set = TensorDataset(*make_moons(1000, 0.2, data_gen))
test_set = TensorDataset(*make_moons(500, 0.2, data_gen))
test_loader = DataLoader(test_set, batch_size=250)  # 评估不需要洗牌
xb, yb = next(iter(DataLoader(train_set, batch_size=50)))
print(f"训练集 {len(train_set)} 个，测试集 {len(test_set)} 个；一个批次：x {tuple(xb.shape)}，"
      f"y {tuple(yb.shape)} {yb.dtype}，类别 1 占 {train_set.tensors[1].mean().item():.3f}")
assert set(train_set.tensors[1].unique().tolist()) == {0.0, 1.0}
# --8<-- [end:data]


# --8<-- [start:loop]
def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    """训练一轮，返回这一轮的平均（每个样本）损失。"""
    model.train()  # 训练模式：丢弃法生效
    total, count = 0.0, 0
    for x, y in loader:  # 遍历 DataLoader，每次得到一个小批量
        x, y = x.to(device), y.to(device)
        logits = model(x).squeeze(1)  # (B, 1) -> (B,)，是 logit，不经过 sigmoid
        loss = loss_fn(logits, y)  # BCEWithLogitsLoss：目标是 0/1 浮点数
        optimizer.zero_grad()
        loss.backward()  # 每个批次恰好一次
        optimizer.step()
        total += loss.item() * len(y)  # loss 是批内平均，乘批大小再累加
        count += len(y)
    return total / count


@torch.no_grad()  # 评估时不记录计算图
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
             device: torch.device) -> tuple[float, float]:
    """返回平均损失与准确率。"""
    model.eval()  # 评估模式：丢弃法关闭
    total, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x).squeeze(1)
        total += loss_fn(logits, y).item() * len(y)
        correct += ((logits > 0).float() == y).sum().item()  # logit > 0 ⇔ 概率 > 0.5
        count += len(y)
    return total / count, correct / count
# --8<-- [end:loop]


# --8<-- [start:build]
EPOCHS, LR = 30, 0.1
loss_fn = nn.BCEWithLogitsLoss()


@dataclass
class Run:
    """一次训练用到的全部可变对象。"""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: DataLoader
    gen: torch.Generator  # 训练集加载器洗牌用的生成器


def build(seed: int) -> Run:
    torch.manual_seed(seed)  # 决定初始权重
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_set, batch_size=50, shuffle=True, generator=gen)
    return Run(model, optimizer, scheduler, loader, gen)


def fit(run: Run, start: int, stop: int) -> list[tuple]:
    """训练第 start 到 stop-1 轮（从 0 数起）；每轮记录 (学习率, 训练损失, 测试损失, 测试准确率)。"""
    history = []
    for epoch in range(start, stop):
        lr = run.optimizer.param_groups[0]["lr"]  # 这一轮使用的学习率
        train_loss = train_one_epoch(run.model, run.loader, loss_fn, run.optimizer, device)
        run.scheduler.step()  # 每轮一次，在这一轮所有 optimizer.step() 之后
        test_loss, test_acc = evaluate(run.model, test_loader, loss_fn, device)
        history.append((lr, train_loss, test_loss, test_acc))
    return history
# --8<-- [end:build]

# --8<-- [start:train]
run = build(seed=0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")  # 记录所有警告，包括以前出现过的
    history = fit(run, 0, EPOCHS)
for epoch in (0, 1, 4, 9, 19, 29):
    lr, tr, te, acc = history[epoch]
    print(f"第 {epoch + 1:2d} 轮  学习率 {lr:.4f}  训练损失 {tr:.3f}  测试损失 {te:.3f}  测试准确率 {acc:.3f}")
order_warnings = [w for w in caught if "lr_scheduler.step()" in str(w.message)]
print(f"与调度器顺序有关的警告：{len(order_warnings)} 条")
assert not order_warnings
final_acc = history[-1][3]
assert final_acc >= 0.94  # 实测 0.956
assert history[-1][1] < history[0][1] / 3  # 训练损失明显下降
# --8<-- [end:train]

# --8<-- [start:figure]
epochs = range(1, EPOCHS + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
ax1.plot(epochs, [h[1] for h in history], "o-", ms=3, label="训练损失")
ax1.plot(epochs, [h[2] for h in history], "s-", ms=3, label="测试损失")
ax1.set_xlabel("轮次")
ax1.set_ylabel("BCE 损失")
ax1.legend()
ax2.plot(epochs, [h[3] for h in history], "o-", ms=3, color="C2", label="测试准确率")
ax2.set_xlabel("轮次")
ax2.set_ylabel("测试准确率")
ax2.set_ylim(0.8, 1.0)
ax3 = ax2.twinx()
ax3.plot(epochs, [h[0] for h in history], color="C1", ls="--", label="学习率")
ax3.set_ylabel("学习率")
ax2.legend(handles=ax2.get_lines() + ax3.get_lines(), loc="lower right")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
fig.savefig("training_curves.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:schedule]
lrs = [h[0] for h in history]
formula = [0.5 * LR * (1 + math.cos(math.pi * t / EPOCHS)) for t in range(EPOCHS)]  # η_min = 0
err = max(abs(a - b) for a, b in zip(lrs, formula))
print(f"实际学习率与余弦公式的最大差 < 1e-12：{err < 1e-12}；训练结束后学习率 {run.scheduler.get_last_lr()[0]:.4f}")
assert err < 1e-12 and abs(run.scheduler.get_last_lr()[0]) < 1e-12

# 另一种常见调度：StepLR 每 step_size 轮把学习率乘 gamma
w = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
step_lr = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
step_lrs = []
for epoch in range(30):
    step_lrs.append(opt.param_groups[0]["lr"])
    opt.step()  # （这里梯度为空，只为演示调用顺序）
    step_lr.step()
assert all(abs(v - 0.1 * 0.5 ** (t // 10)) < 1e-15 for t, v in enumerate(step_lrs))
print("StepLR 第 1、11、21 轮的学习率：", [step_lrs[t] for t in (0, 10, 20)])
# --8<-- [end:schedule]

# --8<-- [start:wrong-order]
m = nn.Linear(2, 1)
opt = torch.optim.SGD(m.parameters(), lr=LR)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sched.step()  # 错误：还没有调用过 optimizer.step()
    first_lr = opt.param_groups[0]["lr"]  # 第一次更新将用到的学习率
    opt.step()
wrong = [str(w.message) for w in caught if "lr_scheduler.step()" in str(w.message)]
print("警告：", wrong[0].split(". ")[0])
print(f"第一次更新用的学习率是 {first_lr:.4f}，而不是 η_0 = {LR}")
assert len(wrong) == 1 and abs(first_lr - formula[1]) < 1e-12
# --8<-- [end:wrong-order]


# --8<-- [start:checkpoint]
def save_checkpoint(path: Path, epoch: int, run: Run) -> None:
    torch.save({
        "epoch": epoch,                                 # 已经完成的轮数
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),        # 含动量缓冲区和当前学习率
        "scheduler": run.scheduler.state_dict(),        # 含 last_epoch
        "loader_rng": run.gen.get_state(),              # 训练集洗牌用的生成器
        "torch_rng": torch.get_rng_state(),             # 全局 CPU 随机状态（丢弃法、评估加载器）
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }, path)


def load_checkpoint(path: Path, run: Run) -> int:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # 只反序列化张量和基本类型
    run.model.load_state_dict(ckpt["model"])          # 复制到模型所在的设备
    run.optimizer.load_state_dict(ckpt["optimizer"])  # 优化器状态会被搬到参数所在的设备
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.gen.set_state(ckpt["loader_rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt["cuda_rng"]:
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    return ckpt["epoch"]
# --8<-- [end:checkpoint]


# --8<-- [start:resume]
def same_state(a: dict, b: dict) -> bool:
    """逐位比较两个 state_dict（可以嵌套）。"""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


K = 12  # 在第 12 轮结束后「中断」
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "checkpoint.pt"
    run1 = build(seed=0)
    first_part = fit(run1, 0, K)
    save_checkpoint(path, K, run1)
    del run1  # 模拟进程结束
    print("检查点里的内容：", list(torch.load(path, weights_only=True).keys()))

    run2 = build(seed=123)  # 全新的对象，连初始权重和洗牌种子都不同
    start = load_checkpoint(path, run2)
    second_part = fit(run2, start, EPOCHS)

    run3 = build(seed=123)  # 反例：恢复了一切，唯独没恢复洗牌生成器
    load_checkpoint(path, run3)
    run3.gen.manual_seed(0)  # 相当于续训时用原来的种子重新建了 DataLoader
    fit(run3, start, EPOCHS)

same_model = same_state(run2.model.state_dict(), run.model.state_dict())
same_optim = same_state(run2.optimizer.state_dict(), run.optimizer.state_dict())
print(f"从第 {start} 轮续训到第 {EPOCHS} 轮，权重与一口气训练逐位相同：{same_model}")
print(f"优化器状态（动量缓冲区、学习率）也相同：{same_optim}")
print(f"续训各轮的学习率与损失也逐项相同：{first_part + second_part == history}")
print(f"没有恢复洗牌生成器时，权重相同：{same_state(run3.model.state_dict(), run.model.state_dict())}")
assert start == K and same_model and same_optim and first_part + second_part == history
assert same_state(run2.scheduler.state_dict(), run.scheduler.state_dict())
assert not same_state(run3.model.state_dict(), run.model.state_dict())
# --8<-- [end:resume]

# --8<-- [start:pitfalls]
# 越界输入的演示都放在 CPU 上：在 GPU 上，越界输入会触发设备端断言，使后续 CUDA 调用全部失败
raw = torch.tensor([2.5, -1.0, 0.3])  # 线性层的原始输出（logit），不在 [0, 1] 里
target = torch.tensor([1.0, 0.0, 1.0])
try:
    nn.BCELoss()(raw, target)
except RuntimeError as err:
    print("BCELoss 用在原始输出上：", str(err).splitlines()[0])

noisy_target = torch.randn(3, generator=torch.Generator().manual_seed(0))  # 不是 0/1 标签
try:
    nn.BCELoss()(torch.sigmoid(raw), noisy_target)
except RuntimeError as err:
    print("BCELoss 以 randn 为目标：", str(err).splitlines()[0])
silent = nn.BCEWithLogitsLoss(reduction="none")(raw, noisy_target)  # 不检查目标，悄悄算出一个数
print("BCEWithLogitsLoss 以 randn 为目标的逐样本「损失」：", [round(v, 3) for v in silent.tolist()])
assert (silent < 0).any()  # 交叉熵不可能为负：目标根本不是概率

good = loss_fn(raw, target)  # 正确：logit + BCEWithLogitsLoss
assert torch.allclose(good, nn.BCELoss()(torch.sigmoid(raw), target))

x0, y0 = train_set[0]  # 直接遍历 Dataset，得到的是单个样本而不是批次
print(f"Dataset 的一个元素：x {tuple(x0.shape)}，y {tuple(y0.shape)}；DataLoader 的一个批次：x {tuple(xb.shape)}")
assert x0.shape == (2,) and xb.shape == (50, 2)

# 平均损失的分母：逐样本累加再除以样本数是对的；对批内平均这样做，就小了约 B 倍
model = run.model.eval()
with torch.no_grad():
    per_sample = [loss_fn(model(x[None].to(device)).squeeze(1), y[None].to(device)).item() for x, y in train_set]
    batch_means = [loss_fn(model(x.to(device)).squeeze(1), y.to(device)).item()
                   for x, y in DataLoader(train_set, batch_size=50)]
mean_loss = sum(per_sample) / len(train_set)  # 遍历 Dataset：每项是一个样本的损失
too_small = sum(batch_means) / len(train_set)  # 遍历 DataLoader：每项是 50 个样本的平均
print(f"逐样本损失之和 / 样本数 = {mean_loss:.4f}；各批平均损失之和 / 样本数 = {too_small:.4f}，"
      f"小了 {mean_loss / too_small:.1f} 倍")
assert abs(sum(batch_means) / len(batch_means) - mean_loss) < 1e-4  # 20 个满批：批平均的平均就是样本平均
assert abs(mean_loss / too_small - 50) < 1e-2  # 恰好是批量大小

m = nn.Linear(2, 1)
loss = loss_fn(m(xb).squeeze(1), yb)
loss.backward()
try:
    loss.backward()  # 同一张图第二次反向
except RuntimeError as err:
    print("第二次 backward：", str(err).split(".")[0])
# --8<-- [end:pitfalls]
