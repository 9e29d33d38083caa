# --8<-- [start:imports]
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# 以下定义照抄自 snippets/part2/training.py（页面上已展示），使本文件可以单独运行
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


def same_state(a: dict, b: dict) -> bool:
    """逐位比较两个 state_dict（可以嵌套）。"""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


# --8<-- [start:ex1]
def build_step(seed: int) -> Run:
    """与 build 相同，只把余弦退火换成 StepLR：每 10 轮学习率乘 0.5。"""
    run = build(seed)
    run.scheduler = torch.optim.lr_scheduler.StepLR(run.optimizer, step_size=10, gamma=0.5)
    return run


run_step = build_step(seed=0)
history_step = fit(run_step, 0, EPOCHS)
for epoch in (0, 9, 10, 19, 20, 29):
    lr, tr, te, acc = history_step[epoch]
    print(f"第 {epoch + 1:2d} 轮  学习率 {lr:.4f}  训练损失 {tr:.3f}  测试损失 {te:.3f}  测试准确率 {acc:.3f}")
# schedule 一节的断言改为与 StepLR 的公式 η_t = η_0·γ^⌊t/s⌋ 比较
step_formula = [LR * 0.5 ** (t // 10) for t in range(EPOCHS)]
err = max(abs(h[0] - f) for h, f in zip(history_step, step_formula))
print(f"实际学习率与 StepLR 公式的最大差 < 1e-15：{err < 1e-15}；训练结束后学习率 {run_step.scheduler.get_last_lr()[0]:.4f}")
assert err < 1e-15 and abs(run_step.scheduler.get_last_lr()[0] - LR * 0.5 ** 3) < 1e-15

COSINE_ACC = fit(build(seed=0), 0, EPOCHS)[-1][3]         # 重跑正文 train 一节的余弦退火，取最终测试准确率
last10 = [h[3] for h in history_step[-10:]]
print(f"最终测试准确率：StepLR {history_step[-1][3]:.3f}，余弦退火 {COSINE_ACC:.3f}；"
      f"StepLR 最后 10 轮在 {min(last10):.3f} 到 {max(last10):.3f} 之间")
assert history_step[-1][3] >= 0.94                        # 正文的下限仍然成立
assert abs(history_step[-1][3] - COSINE_ACC) * len(test_set) <= 5   # 相差不超过 5 个测试样本
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def build_variant(seed: int, dropout: bool) -> Run:
    """与 build 相同；dropout=False 时去掉丢弃层。"""
    run = build(seed)
    if not dropout:
        torch.manual_seed(seed)                           # 与 build 一样决定初始权重
        run.model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(),
                                  nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).to(device)
        run.optimizer = torch.optim.SGD(run.model.parameters(), lr=LR, momentum=0.9)
        run.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(run.optimizer, T_max=EPOCHS)
    return run


K2, STOP2 = 2, 3                                          # 缩短：第 2 轮后中断，续训 1 轮就足以看出差别
for dropout in (True, False):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        ref = build_variant(0, dropout)                   # 一口气训练，顺便在第 K2 轮后存检查点
        fit(ref, 0, K2)
        save_checkpoint(path, K2, ref)
        fit(ref, K2, STOP2)

        resumed = build_variant(123, dropout)
        start = load_checkpoint(path, resumed)            # 洗牌生成器也恢复了
        torch.manual_seed(0)                              # 反例：载入之后又重置全局随机状态
        fit(resumed, start, STOP2)
    same = same_state(resumed.model.state_dict(), ref.model.state_dict())
    print(f"{'有' if dropout else '无'}丢弃层：续训前重置全局随机状态，最终权重与一口气训练逐位相同：{same}")
    assert same == (not dropout)

# 没有丢弃层时，全局随机状态照样在变：未指定生成器的 test_loader 每次迭代都从中取一个种子
state = torch.get_rng_state()
evaluate(ref.model, test_loader, loss_fn, device)
print(f"evaluate 一次之后全局随机状态改变了：{not torch.equal(state, torch.get_rng_state())}")
assert not torch.equal(state, torch.get_rng_state())
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def fit_saving(run: Run, start: int, stop: int, folder: Path, select: dict[str, DataLoader]) -> dict:
    """与 fit 相同，另外每轮保存一个检查点，并为 select 中的每个数据集另存准确率最高的那一轮
    （best_<名字>.pt；准确率相同时保留较早的一轮）。返回各数据集的 (最高准确率, 轮次)。"""
    best = {name: (-1.0, -1) for name in select}
    for epoch in range(start, stop):
        train_one_epoch(run.model, run.loader, loss_fn, run.optimizer, device)
        run.scheduler.step()
        save_checkpoint(folder / f"epoch_{epoch + 1:02d}.pt", epoch + 1, run)
        for name, loader in select.items():
            acc = evaluate(run.model, loader, loss_fn, device)[1]
            if acc > best[name][0]:
                best[name] = (acc, epoch + 1)
                save_checkpoint(folder / f"best_{name}.pt", epoch + 1, run)
    return best


# 改法：从 1000 个训练点中留出 200 个作验证集，只用验证集挑选检查点；再取 5000 个新样本估计「真实」准确率
train_part, val_part = Subset(train_set, range(800)), Subset(train_set, range(800, 1000))
val_loader = DataLoader(val_part, batch_size=200)
fresh_loader = DataLoader(TensorDataset(*make_moons(5000, 0.2, torch.Generator().manual_seed(1))), batch_size=5000)
run3 = build(seed=0)
run3.loader = DataLoader(train_part, batch_size=50, shuffle=True, generator=run3.gen)
with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp)
    best = fit_saving(run3, 0, EPOCHS, folder, {"test": test_loader, "val": val_loader})
    n_files = len(list(folder.glob("epoch_*.pt")))
    acc = {}
    for name in ("test", "val"):
        load_checkpoint(folder / f"best_{name}.pt", run3)
        acc[name] = (evaluate(run3.model, test_loader, loss_fn, device)[1],
                     evaluate(run3.model, fresh_loader, loss_fn, device)[1])
        print(f"按{'测试' if name == 'test' else '验证'}准确率选中第 {best[name][1]:2d} 轮：测试准确率 {acc[name][0]:.3f}，"
              f"5000 个新样本上 {acc[name][1]:.3f}")
print(f"共保存 {n_files} 个逐轮检查点；{len(test_set)} 个测试样本上，准确率 0.96 的标准误约为 "
      f"{math.sqrt(0.96 * 0.04 / len(test_set)):.3f}")
assert n_files == EPOCHS and acc["test"][0] == best["test"][0] >= acc["val"][0]   # 按测试集挑的，测试准确率必然最高
if device.type == "cpu":  # 新数据上只差 20 个样本（5000 个中），CUDA 上的舍入可能改变它；输出也只在 CPU 上比对
    assert acc["test"][1] < acc["val"][1]                 # 按测试集挑出的检查点，在新数据上并不更好
    assert all(test_acc < fresh_acc for test_acc, fresh_acc in acc.values())   # 这次看不到高估
# --8<-- [end:ex3]


# --8<-- [start:ex4]
def train_clipped(where: str, epochs: int = 3) -> tuple[dict, int]:
    """按正文的 train_one_epoch 训练，把 clip_grad_norm_(max_norm=1.0) 放在 where 处；返回权重与真正被裁剪的批次数。"""
    run = build(seed=0)
    clipped = 0
    for _ in range(epochs):
        run.model.train()
        for x, y in run.loader:
            x, y = x.to(device), y.to(device)
            loss = loss_fn(run.model(x).squeeze(1), y)
            run.optimizer.zero_grad()
            if where == "backward 之前":
                nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=1.0)    # 此时梯度是 None
            loss.backward()
            if where == "backward 与 step 之间":
                norm = nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=1.0)  # 返回裁剪前的范数
                clipped += int(norm > 1.0)
            run.optimizer.step()
            if where == "step 之后":
                nn.utils.clip_grad_norm_(run.model.parameters(), max_norm=1.0)    # 下一批的 zero_grad 会清掉它
        run.scheduler.step()
    return run.model.state_dict(), clipped


plain, _ = train_clipped("不裁剪")
for where in ("backward 之前", "backward 与 step 之间", "step 之后"):
    weights, clipped = train_clipped(where)
    same = same_state(weights, plain)
    print(f"裁剪放在 {where}：与不裁剪的权重逐位相同：{same}" + (f"（{clipped} 个批次的梯度范数超过 1 被裁剪）" if clipped else ""))
    assert same == (where != "backward 与 step 之间")
    if where == "backward 与 step 之间":
        assert clipped > 0
# --8<-- [end:ex4]
