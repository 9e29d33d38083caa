# --8<-- [start:setup]
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


# --8<-- [start:loss]
def log_softmax_scratch(z: torch.Tensor) -> torch.Tensor:
    """逐行 log softmax：先减去每行最大值，避免 exp 溢出。z: (B, K)。"""
    z = z - z.max(dim=1, keepdim=True).values
    return z - z.exp().sum(dim=1, keepdim=True).log()


def distill_loss(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)，两项都对批量取平均。"""
    log_q = log_softmax_scratch(s / T)                 # 学生的软化分布（取对数），(B, K)
    log_p = log_softmax_scratch(t / T)                 # 教师的软目标（取对数），(B, K)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
    ce = -log_softmax_scratch(s).gather(1, y[:, None]).mean()   # 硬标签的交叉熵，温度为 1
    return alpha * T**2 * kl + (1 - alpha) * ce


def distill_loss_torch(s, t, y, T, alpha):
    kl = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(s, y)


B, K = 8, 10                                           # 批量大小、类别数
s = torch.randn(B, K, dtype=torch.float64, device=device) * 3   # 学生 logit
t = torch.randn(B, K, dtype=torch.float64, device=device) * 3   # 教师 logit
y = torch.randint(0, K, (B,), device=device)
worst = 0.0
for T in [1.0, 4.0, 20.0]:
    for alpha in [0.0, 0.5, 0.9]:
        a, b = distill_loss(s, t, y, T, alpha), distill_loss_torch(s, t, y, T, alpha)
        worst = max(worst, (a - b).abs().item())
print(f"从零实现 vs F.kl_div + F.cross_entropy（float64，9 组 T 与 alpha）：最大误差 < 1e-12：{worst < 1e-12}")
assert worst < 1e-12

# 常见错误：reduction="mean" 对全部 B*K 个元素取平均（逐元素结果的 .mean()），比 "batchmean" 小 K 倍
kl_elem = F.kl_div(F.log_softmax(s / 4, dim=1), F.softmax(t / 4, dim=1), reduction="none")   # (B, K)
kl_batch = F.kl_div(F.log_softmax(s / 4, dim=1), F.softmax(t / 4, dim=1), reduction="batchmean")
print(f"batchmean / mean = {(kl_batch / kl_elem.mean()).item():.1f}（= K）")
assert torch.allclose(kl_batch, kl_elem.sum() / B, rtol=1e-12)
assert torch.allclose(kl_batch, kl_elem.mean() * K, rtol=1e-12)
# --8<-- [end:loss]

# --8<-- [start:t2]
s = torch.randn(B, K, dtype=torch.float64, device=device)
t = torch.randn(B, K, dtype=torch.float64, device=device)
s, t = s - s.mean(dim=1, keepdim=True), t - t.mean(dim=1, keepdim=True)   # 每行 logit 均值为 0
approx = (s - t) / (B * K)                             # 高温极限下 T^2 * 梯度的近似值
print("   T | ‖∂KL/∂s‖（不乘 T²） | ‖T²·∂KL/∂s‖ | 与 (s−t)/(BK) 的相对误差")
norms, rel_errs = [], []
for T in [1, 2, 5, 10, 20, 50]:
    s_ = s.clone().requires_grad_(True)
    kl = F.kl_div(F.log_softmax(s_ / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    (g,) = torch.autograd.grad(kl, s_)                 # 不乘 T² 的软损失对学生 logit 的梯度
    exact = (F.softmax(s / T, dim=1) - F.softmax(t / T, dim=1)) / (B * T)   # 解析梯度
    assert torch.allclose(g, exact, atol=1e-14)
    rel = ((T**2 * g - approx).norm() / approx.norm()).item()
    norms.append(g.norm().item())
    rel_errs.append(rel)
    print(f"{T:4d} | {g.norm().item():.3e}          | {T**2 * g.norm().item():.4f}     | {rel:.4f}")
ratios = [norms[i] * Tv**2 / (norms[-1] * 50**2) for i, Tv in enumerate([1, 2, 5, 10, 20, 50])]
assert all(a > b for a, b in zip(rel_errs, rel_errs[1:]))   # 温度越高，近似越准
assert rel_errs[-1] < 0.02                                   # T = 50 时相对误差 < 2%
assert all(abs(rel_errs[i] * Tv / (rel_errs[-1] * 50) - 1) < 0.1 for i, Tv in enumerate([10, 20], 3))  # 误差约按 1/T 缩小
assert all(abs(r - 1) < 0.05 for r in ratios[2:])            # T >= 5 起，梯度 * T^2 几乎不变：梯度按 1/T^2 缩小
# --8<-- [end:t2]

# --8<-- [start:data]
X_all, y_all = load_digits(return_X_y=True)            # (1797, 64)，像素 0..16
X_all = torch.tensor(X_all / 16.0, dtype=torch.float32)
y_all = torch.tensor(y_all)
X_pool, X_te, y_pool, y_te = train_test_split(
    X_all, y_all, test_size=0.3, stratify=y_all, random_state=0)   # 分层划分
X_pool, y_pool = X_pool.to(device), y_pool.to(device)
X_te, y_te = X_te.to(device), y_te.to(device)
print(f"教师的训练集 {tuple(X_pool.shape)}，测试集 {tuple(X_te.shape)}")


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers[:-2]).to(device)      # 最后一层只留 Linear：输出 logit


def n_params_formula(sizes: list[int]) -> int:
    return sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()


teacher_sizes, student_sizes = [64, 128, 128, 10], [64, 32, 10]
for name, sizes in [("教师", teacher_sizes), ("学生", student_sizes)]:
    n = sum(p.numel() for p in mlp(sizes).parameters())
    print(f"{name} {sizes}：参数量 {n}")
    assert n == n_params_formula(sizes)
assert n_params_formula(teacher_sizes) == (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)
assert n_params_formula(student_sizes) == (64 * 32 + 32) + (32 * 10 + 10)
# --8<-- [end:data]

# --8<-- [start:teacher]
# 容差 ±0.01：训练的结果在其他平台上末几位不同，可能改变个别测试样本的预测（一个样本 = 1/540）
torch.manual_seed(0)
teacher = mlp(teacher_sizes, dropout=0.2)
opt = torch.optim.Adam(teacher.parameters(), lr=2e-3)
for step in range(200):                                 # 全批量训练
    teacher.train()
    loss = F.cross_entropy(teacher(X_pool), y_pool)
    opt.zero_grad()
    loss.backward()
    opt.step()
teacher_acc = accuracy(teacher, X_te, y_te)
print(f"教师：训练准确率 {accuracy(teacher, X_pool, y_pool):.3f}，测试准确率 {teacher_acc:.3f}")
assert teacher_acc >= 0.95   # 种子 0 上为 0.978；教师只训练一次，阈值留出 CUDA 上的浮点差异
# --8<-- [end:teacher]

# --8<-- [start:dark]
# 容差 ±0.02：教师的输出随训练时的舍入而变，概率与熵的末几位会不同
teacher.eval()
i = int(torch.nonzero(y_te == 8)[0])                   # 测试集里第一个「8」
with torch.no_grad():
    logit = teacher(X_te[i:i + 1])[0]
temps = [1, 4, 10]
probs = {T: F.softmax(logit / T, dim=0).cpu() for T in temps}
print("类别:  " + " ".join(f"{k:6d}" for k in range(10)))
for T in temps:
    print(f"T={T:<3d}  " + " ".join(f"{p:6.3f}" for p in probs[T].tolist()))
wrong = torch.tensor([k != 8 for k in range(10)])   # 9 个错误类别
order = probs[4][wrong].argsort(descending=True)
runner_up = torch.arange(10)[wrong][order[:3]].tolist()
print(f"T=4 时质量最大的 3 个错误类别：{runner_up}")
rest = wrong.clone()
rest[runner_up[0]] = False                             # 去掉正确类别和最大的错误类别，剩下 8 个
mass = {T: probs[T][rest].sum().item() for T in temps}
print("其余 8 个错误类别的总概率：" + "，".join(f"T={T} {m:.3f}" for T, m in mass.items()))
entropy = [-(p * p.log()).sum().item() for p in probs.values()]
print("熵（nat）：" + "，".join(f"T={T} {h:.3f}" for T, h in zip(temps, entropy)))
assert all(probs[T].argmax() == 8 for T in temps)      # 升温不改变排序：最大的仍是正确类别
assert entropy[0] < entropy[1] < entropy[2]            # 温度越高，分布越平
assert runner_up[:2] == [9, 6]                         # 最像 8 的错误类别：9，其次 6
assert set(probs[4].argsort()[:2].tolist()) == {1, 4}  # 得到概率最少的两个类别：1 和 4
assert mass[1] < 0.01 and mass[4] > 20 * mass[1]       # T=1 时几乎看不见的类别，T=4 时显露出来
# --8<-- [end:dark]

# --8<-- [start:students]
# 容差 ±0.02：每类 5 个样本训练的学生对舍入敏感，种子间的标准差约 0.015
T_kd, alpha = 4.0, 0.9
per_class, steps = 5, 200


def train_student(seed: int, use_kd: bool) -> float:
    """从教师的训练集里每类抽 per_class 个样本，训练学生；返回测试准确率。"""
    g = torch.Generator().manual_seed(seed)             # 抽样只由种子决定，有无蒸馏用同一批样本
    idx = torch.cat([torch.nonzero(y_pool.cpu() == c).flatten()[
        torch.randperm(int((y_pool == c).sum()), generator=g)[:per_class]] for c in range(10)]).to(device)
    X_s, y_s = X_pool[idx], y_pool[idx]
    with torch.no_grad():
        t_logit = teacher(X_s)                          # 教师在这 50 个样本上的 logit
    torch.manual_seed(seed)                             # 有无蒸馏，初始权重相同
    student = mlp(student_sizes)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for step in range(steps):
        student.train()
        out = student(X_s)
        if use_kd:
            loss = distill_loss(out, t_logit, y_s, T_kd, alpha)
        else:
            loss = F.cross_entropy(out, y_s)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(student, X_te, y_te)


seeds = range(5)
acc_hard = np.array([train_student(sd, use_kd=False) for sd in seeds])
acc_kd = np.array([train_student(sd, use_kd=True) for sd in seeds])
print("种子 | 只用硬标签 | 知识蒸馏 | 提升")
for sd, a, b in zip(seeds, acc_hard, acc_kd):
    print(f"  {sd}  |   {a:.3f}    |  {b:.3f}   | {b - a:+.3f}")
print(f"只用硬标签：{acc_hard.mean():.3f} ± {acc_hard.std(ddof=1):.3f}")
print(f"知识蒸馏：  {acc_kd.mean():.3f} ± {acc_kd.std(ddof=1):.3f}")
# 设计时跑了种子 0..7：每个种子的提升在 0.076 到 0.115 之间，阈值 0.03 留出一半以上的余量
assert all(b - a >= 0.03 for a, b in zip(acc_hard, acc_kd))
assert acc_kd.mean() < teacher_acc                      # 学生仍不如教师
# --8<-- [end:students]

# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
width = 0.27
for j, T in enumerate(temps):
    ax1.bar(np.arange(10) + (j - 1) * width, probs[T].numpy(), width, label=f"T = {T}")
ax1.set(xticks=range(10), xlabel="类别", ylabel="概率", yscale="log", ylim=(1e-6, 1.5),
        title="教师对一个「8」的软目标")
ax1.legend()
ax2.plot(list(seeds), acc_hard, "o-", label="只用硬标签")
ax2.plot(list(seeds), acc_kd, "s-", label=f"知识蒸馏（T = {T_kd:g}，α = {alpha}）")
ax2.axhline(teacher_acc, color="gray", ls="--", label="教师")
ax2.set(xticks=list(seeds), xlabel="种子", ylabel="测试准确率", title="学生：每类 5 个样本")
ax2.legend(loc="lower right")
fig.savefig("distillation_results.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
