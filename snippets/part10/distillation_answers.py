# --8<-- [start:imports]
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 与正文相同的数据划分、模型与训练（教师在 1257 个样本上训练，学生每类只拿 5 个样本）
X_all, y_all = load_digits(return_X_y=True)
X_all = torch.tensor(X_all / 16.0, dtype=torch.float32)
y_all = torch.tensor(y_all)
X_pool, X_te, y_pool, y_te = train_test_split(X_all, y_all, test_size=0.3, stratify=y_all, random_state=0)
X_pool, y_pool, X_te, y_te = X_pool.to(device), y_pool.to(device), X_te.to(device), y_te.to(device)


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers[:-2]).to(device)


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()


def train_teacher(X: torch.Tensor, y: torch.Tensor, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    teacher = mlp([64, 128, 128, 10], dropout=0.2)
    opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
    for _ in range(200):
        teacher.train()
        loss = F.cross_entropy(teacher(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher.eval()


def kd_loss(s, t, y, T, alpha):
    kl = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(s, y)


def subset(seed: int, per_class: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.nonzero(y_pool.cpu() == c).flatten()[
        torch.randperm(int((y_pool == c).sum()), generator=g)[:per_class]] for c in range(10)]).to(device)


def train_student(seed: int, teacher: nn.Module | None, T: float = 4.0, alpha: float = 0.9) -> float:
    idx = subset(seed)
    X_s, y_s = X_pool[idx], y_pool[idx]
    if teacher is not None:
        with torch.no_grad():
            t_logit = teacher(X_s)
    torch.manual_seed(seed)
    student = mlp([64, 32, 10])
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(200):
        student.train()
        out = student(X_s)
        loss = F.cross_entropy(out, y_s) if teacher is None else kd_loss(out, t_logit, y_s, T, alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(student, X_te, y_te)


teacher = train_teacher(X_pool, y_pool)
seeds = range(5)
acc_hard = np.array([train_student(sd, None) for sd in seeds])
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 容差 ±0.02：每类 5 个样本训练的学生对舍入敏感，种子间的标准差约 0.015
print(f"只用硬标签：{acc_hard.mean():.3f} ± {acc_hard.std(ddof=1):.3f}")
means = {}
for T in [1.0, 2.0, 4.0, 8.0]:
    acc = np.array([train_student(sd, teacher, T=T) for sd in seeds])
    means[T] = acc.mean()
    print(f"T = {T:g}：{acc.mean():.3f} ± {acc.std(ddof=1):.3f}，每个种子的提升 {np.round(acc - acc_hard, 3).tolist()}")
# 设计时跑了种子 0..7：T=1 平均 0.864，T=4 平均 0.931，T=8 平均 0.935
assert all(m > acc_hard.mean() for m in means.values())   # 每个温度的均值都高于只用硬标签
assert means[1.0] < means[2.0] < means[4.0]                 # 从 1 升到 4，越高越好
assert abs(means[8.0] - means[4.0]) < 0.02                  # 再升到 8，变化不到 0.02
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 容差 ±0.02：同上
acc_same = []
for sd in seeds:
    idx = subset(sd)
    small_teacher = train_teacher(X_pool[idx], y_pool[idx], seed=sd)   # 教师只见过这 50 个样本
    t_acc = accuracy(small_teacher, X_te, y_te)
    s_acc = train_student(sd, small_teacher)
    acc_same.append(s_acc)
    print(f"种子 {sd}：小教师 {t_acc:.3f}，蒸馏出的学生 {s_acc:.3f}，只用硬标签 {acc_hard[sd]:.3f}")
acc_same = np.array(acc_same)
gain = acc_same - acc_hard
print(f"蒸馏出的学生：{acc_same.mean():.3f} ± {acc_same.std(ddof=1):.3f}，"
      f"平均提升 {gain.mean():+.4f}（最小 {gain.min():+.3f}，最大 {gain.max():+.3f}）")
assert abs(gain.mean()) < 0.03                              # 提升几乎消失：远小于正文里大教师带来的提升
assert gain.min() < 0 < gain.max()                          # 有的种子更好，有的更差
# --8<-- [end:ex2]

# --8<-- [start:ex3]
torch.manual_seed(0)
s = torch.randn(6, 10, dtype=torch.float64, device=device, requires_grad=True)
t = torch.randn(6, 10, dtype=torch.float64, device=device) * 2
T = 3.0
p = F.softmax(t / T, dim=1)                                  # 软目标
kl = F.kl_div(F.log_softmax(s / T, dim=1), p, reduction="batchmean")
ce_soft = -(p * F.log_softmax(s / T, dim=1)).sum(dim=1).mean()   # 以软目标为标签的交叉熵
entropy = -(p * p.log()).sum(dim=1).mean()                   # 教师软目标的熵，与学生无关
(g_kl,) = torch.autograd.grad(kl, s, retain_graph=True)
(g_ce,) = torch.autograd.grad(ce_soft, s)
print(f"交叉熵 − KL = {(ce_soft - kl).item():.6f}，教师的熵 = {entropy.item():.6f}")
print(f"两者梯度的最大差 < 1e-12：{(g_kl - g_ce).abs().max().item() < 1e-12}")
assert torch.allclose(ce_soft - kl, entropy, atol=1e-12)
assert (g_kl - g_ce).abs().max() < 1e-12
# --8<-- [end:ex3]
