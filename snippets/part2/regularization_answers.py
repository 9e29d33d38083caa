# --8<-- [start:imports]
import copy
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# 以下几行照抄自 snippets/part2/regularization.py（页面上已展示），使本文件可以单独运行
digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32) / 16
labels = torch.tensor(digits.target)
flat = images.reshape(-1, 64)
perm = torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))
idx = {"train": perm[:100], "val": perm[100:400], "test": perm[400:1100]}
data = {k: (flat[v].to(device), labels[v].to(device)) for k, v in idx.items()}


def make_mlp(p: float = 0.0, width: int = 256) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, 10)).to(device)


@torch.no_grad()
def evaluate(model: nn.Module, split: str) -> tuple[float, float]:
    model.eval()
    X, y = data[split]
    logits = model(X)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def random_shift(imgs: torch.Tensor, lbls: torch.Tensor, g: torch.Generator):
    n = len(imgs)
    padded = F.pad(imgs, (1, 1, 1, 1))
    moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    empty = lambda t: t.abs().sum(-1) == 0  # noqa: E731
    row_ok = {-1: empty(imgs[:, 0, :]), 0: torch.ones(n, dtype=torch.bool), 1: empty(imgs[:, -1, :])}
    col_ok = {-1: empty(imgs[:, :, 0]), 0: torch.ones(n, dtype=torch.bool), 1: empty(imgs[:, :, -1])}
    allowed = torch.stack([row_ok[dy] & col_ok[dx] for dy, dx in moves], dim=1)
    choice = torch.multinomial(allowed.float(), 1, generator=g).squeeze(1)
    out = torch.empty_like(imgs)
    for k, (dy, dx) in enumerate(moves):
        sel = choice == k
        out[sel] = padded[sel, 1 - dy:9 - dy, 1 - dx:9 - dx]
    return out, lbls, [moves[k] for k in choice.tolist()]


# --8<-- [start:ex1]
def train_final(model: nn.Module, weight_decay: float = 0.0, epochs: int = 80, augment=None) -> dict:
    """与正文的 fit 同样训练 80 轮（训练过程逐位相同），但只在最后评估一次：省掉每轮在三个集合上的评估，快几倍。
    augment(X) 若给出，每轮训练前对训练输入做一次随机变换。"""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    X, y = data["train"]
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(X if augment is None else augment(X)), y).backward()
        opt.step()
    return {split: evaluate(model, split) for split in ("train", "val", "test")}


base = train_final(make_mlp())                          # λ = 0：正文的「无正则化」，后面的练习也用它对照
n_val = len(idx["val"])
runs1 = {lam: train_final(make_mlp(), weight_decay=lam) for lam in (1e-4, 1e-3, 1e-2, 1e-1)}
print("λ        训练损失  训练准确率  验证损失  验证准确率（分对个数）")
for lam, r in {0.0: base, **runs1}.items():
    print(f"{lam:<7g}  {r['train'][0]:.1e}   {r['train'][1]:.3f}       {r['val'][0]:.3f}     "
          f"{r['val'][1]:.3f}（{round(r['val'][1] * n_val)}）")
chosen = max((1e-4, 1e-3, 1e-2), key=lambda lam: runs1[lam]["val"][1])   # 只按验证准确率选（并列取较小的 λ）
print(f"按验证准确率选中 λ = {chosen:g}；只对它报告一次测试准确率：{runs1[chosen]['test'][1]:.3f}")

val_correct = {lam: round(runs1[lam]["val"][1] * n_val) for lam in runs1}
train_losses = [runs1[lam]["train"][0] for lam in sorted(runs1)]
assert train_losses == sorted(train_losses)                 # λ 越大，训练损失越高
assert runs1[1e-2]["val"][0] < min(runs1[1e-4]["val"][0], runs1[1e-3]["val"][0])  # 1e-2 的验证损失最低
assert max(val_correct[lam] for lam in (1e-4, 1e-3, 1e-2)) - min(val_correct[lam] for lam in (1e-4, 1e-3, 1e-2)) < 10
assert runs1[1e-1]["train"][1] < 0.9 and val_correct[1e-1] < val_correct[1e-2] - 50   # λ = 0.1：欠拟合
if device.type == "cpu":  # 前两名只差 1 个验证样本，CUDA 上的舍入就可能让它翻转；输出也只在 CPU 上比对
    assert chosen == 1e-4 and val_correct[1e-4] - val_correct[1e-3] == 1
    assert val_correct[1e-4] > val_correct[1e-3] > val_correct[1e-2]
    assert round(base["val"][1] * n_val) > val_correct[1e-4]     # λ = 0 的验证准确率比三个 λ 都高
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def fit_es(model: nn.Module, by: str, patience: int = 20, epochs: int = 80):
    """每轮在验证集上评估，按验证损失（by="loss"）或验证准确率（by="acc"）保存最好的检查点并早停。
    只在严格更好时才更新，所以并列时保留较早的一轮。"""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, y = data["train"]
    history, best = [], (None, -1, None)                  # 每轮的 (验证损失, 验证准确率)；(指标, 轮次, 权重)
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
        val_loss, val_acc = evaluate(model, "val")
        history.append((val_loss, val_acc))
        score = -val_loss if by == "loss" else val_acc    # 越大越好
        if best[0] is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        if epoch - best[1] >= patience:
            break
    model.load_state_dict(best[2])                        # 恢复最好的检查点
    return history, best[1]


results2 = {}
for by in ("loss", "acc"):
    model = make_mlp()
    history, best_epoch = fit_es(model, by)
    val_loss, val_acc = evaluate(model, "val")
    test_loss, test_acc = evaluate(model, "test")
    results2[by] = (test_loss, test_acc, best_epoch)
    print(f"按验证{'损失' if by == 'loss' else '准确率'}早停：第 {len(history)} 轮停止，最佳在第 {best_epoch + 1} 轮；"
          f"恢复后验证损失 {val_loss:.3f}、验证准确率 {val_acc:.3f}，测试损失 {test_loss:.3f}、测试准确率 {test_acc:.3f}")
    # 早停一节的断言，按新的指标改写
    accs = [a for _, a in history]
    if by == "acc":
        assert val_acc == max(accs) and accs.index(max(accs)) == best_epoch   # 恢复的是第一次达到最高验证准确率的一轮
    else:
        assert abs(val_loss - min(l for l, _ in history)) <= 1e-6
    assert len(history) == best_epoch + 1 + 20 or len(history) == 80         # 最佳之后又等了 20 轮（或训练满 80 轮）
assert results2["acc"][1] > results2["loss"][1] + 0.02     # 按准确率早停，测试准确率更高
assert results2["acc"][0] > results2["loss"][0]            # 代价是测试损失更高
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def make_mlp_seed(seed: int, p: float = 0.0, width: int = 256) -> nn.Module:
    torch.manual_seed(seed)                               # 正文的 make_mlp 固定用种子 0
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, width), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(width, 10)).to(device)


settings3 = {"无正则化": (0.0, 0.0), "权重衰减": (1e-3, 0.0), "丢弃法": (0.0, 0.5)}   # (weight_decay, p)
print("种子  设置        测试损失  测试减训练  验证准确率（分对个数）")
order = {}
for seed in (1, 2, 3):
    r3 = {name: train_final(make_mlp_seed(seed, p), weight_decay=wd) for name, (wd, p) in settings3.items()}
    for name, r in r3.items():
        print(f"{seed:4d}  {name:<8}    {r['test'][0]:.3f}     {r['test'][0] - r['train'][0]:.3f}       "
              f"{r['val'][1]:.3f}（{round(r['val'][1] * n_val)}）")
    for name in ("权重衰减", "丢弃法"):                    # 正文的断言：最终测试损失与泛化差距都至少低 0.05
        assert r3[name]["test"][0] <= r3["无正则化"]["test"][0] - 0.05
        assert (r3[name]["test"][0] - r3[name]["train"][0]) <= (r3["无正则化"]["test"][0] - r3["无正则化"]["train"][0]) - 0.05
    order[seed] = sorted(r3, key=lambda name: -r3[name]["val"][1])
    print(f"      验证准确率从高到低：{' > '.join(order[seed])}")
se = math.sqrt(0.86 * (1 - 0.86) / n_val)                 # 准确率的标准误 √(p(1-p)/n)
print(f"{n_val} 个验证样本上，准确率 p = 0.86 的标准误 √(p(1-p)/n) = {se:.3f}，约 {se * n_val:.0f} 个样本")
if device.type == "cpu":  # 有的差距只有 1 个验证样本，CUDA 上可能翻转；输出也只在 CPU 上比对
    assert all(o == ["无正则化", "权重衰减", "丢弃法"] for o in order.values())
# --8<-- [end:ex3]


# --8<-- [start:ex4]
def shifted_batch(g: torch.Generator):
    """每轮把 100 个训练样本各自随机平移（在 CPU 上抽样，再搬到 device）。"""
    train_imgs = flat[idx["train"]].reshape(-1, 8, 8)
    return lambda X: random_shift(train_imgs, None, g)[0].reshape(-1, 64).to(device)


runs4 = {s: train_final(make_mlp(), augment=shifted_batch(torch.Generator().manual_seed(s))) for s in (0, 1, 2)}
n_test = len(idx["test"])
print("                    训练损失  验证损失  验证准确率（分对个数）  测试损失  测试准确率（分对个数）")
for name, r in {"不增强": base, **{f"随机平移，种子 {s}": r for s, r in runs4.items()}}.items():
    print(f"{name:<16}    {r['train'][0]:.1e}   {r['val'][0]:.3f}     {r['val'][1]:.3f}（{round(r['val'][1] * n_val)}）"
          f"             {r['test'][0]:.3f}     {r['test'][1]:.3f}（{round(r['test'][1] * n_test)}）")
for r in runs4.values():
    assert r["val"][0] < base["val"][0] - 0.5 and r["train"][0] > 10 * base["train"][0]
    assert r["val"][1] > base["val"][1]                   # 三个种子的验证准确率都高于不增强
    assert r["val"][0] < runs1[1e-3]["val"][0]            # 验证损失比 λ = 1e-3 的权重衰减还低
if device.type == "cpu":  # 只差 4 到 8 个测试样本，CUDA 上的舍入可能改变它
    assert all(r["test"][1] < base["test"][1] for r in runs4.values())

# 数字在图中是否居中：每张图笔画的重心（按像素值加权的列坐标、行坐标）
cols = torch.arange(8, dtype=torch.float32)
for split in ("train", "val", "test"):
    im = flat[idx[split]].reshape(-1, 8, 8)
    mass = im.sum((1, 2))
    cx, cy = (im.sum(1) * cols).sum(1) / mass, (im.sum(2) * cols).sum(1) / mass
    print(f"{split:<5} 重心的列坐标 {cx.mean():.2f} ± {cx.std():.2f}，行坐标 {cy.mean():.2f} ± {cy.std():.2f}")
    assert cx.std() < 0.5 and cy.std() < 0.5             # 重心的散布不到半个像素，远小于平移的 1 个像素
# --8<-- [end:ex4]
