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


# --8<-- [start:chinchilla]
# Hoffmann 等（2022）的两条经验规则：训练算力 C ≈ 6·N·D（N 参数量，D 训练 token 数），
# 算力最优时每个参数约配 20 个 token（Chinchilla：70B 参数、1.4T token）
TOKENS_PER_PARAM = 20


def compute_optimal(C: float) -> tuple[float, float]:
    """C = 6·N·D 且 D = 20·N  =>  C = 120·N²，N = sqrt(C / 120)。"""
    N = (C / (6 * TOKENS_PER_PARAM)) ** 0.5
    return N, TOKENS_PER_PARAM * N


print(f"{'算力 C (FLOP)':>12} {'参数量 N':>10} {'token 数 D':>10} {'D/N':>5}")
budgets = [1e18, 1e20, 1e22, 1e24]
for C in budgets:
    N, D = compute_optimal(C)
    assert abs(6 * N * D / C - 1) < 1e-12          # 反代回去正好是给定的算力
    print(f"{C:>12.0e} {N:>10.3g} {D:>10.3g} {D / N:>5.0f}")

# 算力每乘 100，N 与 D 各乘 10（都按 C^0.5 增长）
ratios = [compute_optimal(b)[0] / compute_optimal(a)[0] for a, b in zip(budgets, budgets[1:])]
assert all(abs(r - 10) < 1e-9 for r in ratios)

# 两个真实模型：Gopher（280B 参数、300B token）与 Chinchilla（70B 参数、1.4T token）
models = {"Gopher": (280e9, 300e9), "Chinchilla": (70e9, 1.4e12)}
C_model = {name: 6 * N * D for name, (N, D) in models.items()}
for name, (N, D) in models.items():
    print(f"{name:>10}: C ≈ 6ND = {C_model[name]:.3g} FLOP，每个参数 {D / N:.3g} 个 token")
print(f"两者算力之比（Chinchilla / Gopher）：{C_model['Chinchilla'] / C_model['Gopher']:.3f}")
assert models["Chinchilla"][1] / models["Chinchilla"][0] == TOKENS_PER_PARAM
# --8<-- [end:chinchilla]


# --8<-- [start:fit]
# Hoffmann 等（2022）方法三拟合的损失：L(N, D) = E + A / N^alpha + B / D^beta（论文公布的舍入后的常数）
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def fitted_loss(N: float, D: float) -> float:
    return E + A / N**ALPHA + B / D**BETA


loss = {name: fitted_loss(N, D) for name, (N, D) in models.items()}
for name, (N, D) in models.items():
    print(f"{name:>10}: 参数项 {A / N**ALPHA:.4f}  数据项 {B / D**BETA:.4f}  预测损失 {loss[name]:.4f}")
# 算力相近，把参数减到 1/4、数据加到约 4.7 倍，拟合预测的损失更低
assert loss["Chinchilla"] < loss["Gopher"]
# --8<-- [end:fit]


# --8<-- [start:data]
X, y = load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32)     # 像素缩放到 [0, 1]
y = torch.tensor(y)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
X_tr, X_te, y_tr, y_te = X_tr.to(device), X_te.to(device), y_tr.to(device), y_te.to(device)


def make_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)


def train(seed: int, steps: int = 150) -> nn.Module:
    torch.manual_seed(seed)
    model = make_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):                           # 全批量训练，1257 个样本
        loss = F.cross_entropy(model(X_tr), y_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


n_params = sum(p.numel() for p in make_mlp().parameters())
assert n_params == (64 * 64 + 64) + (64 * 10 + 10)   # 每个 Linear：权重 d_in·d_out + 偏置 d_out
print(f"训练集 {len(y_tr)}，测试集 {len(y_te)}，MLP 参数量 {n_params}")
# --8<-- [end:data]


# --8<-- [start:fgsm]
def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """快速梯度符号法：x + eps·sign(∇_x L)，再截断到合法像素范围 [0, 1]。x: (n, 64)。"""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def random_sign(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """同样大小（每个像素 ±eps）但方向随机的扰动，作对照。"""
    signs = torch.randint(0, 2, x.shape, generator=gen).to(x.device) * 2 - 1
    return (x + eps * signs).clamp(0, 1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()
# --8<-- [end:fgsm]


# --8<-- [start:attack]
EPS = [0.0, 0.05, 0.1, 0.2, 0.3]
SEEDS = [0, 1, 2]
acc_fgsm = np.zeros((len(SEEDS), len(EPS)))
acc_rand = np.zeros((len(SEEDS), len(EPS)))
for i, seed in enumerate(SEEDS):
    model = train(seed)
    gen = torch.Generator().manual_seed(seed)
    for j, eps in enumerate(EPS):
        acc_fgsm[i, j] = accuracy(model, fgsm(model, X_te, y_te, eps), y_te)
        acc_rand[i, j] = accuracy(model, random_sign(X_te, eps, gen), y_te)

print(f"{'ε':>5} {'FGSM 准确率':>14} {'随机符号噪声':>14}")
for j, eps in enumerate(EPS):
    print(f"{eps:>5.2f} {acc_fgsm[:, j].mean():>8.3f} ± {acc_fgsm[:, j].std(ddof=1):.3f}"
          f" {acc_rand[:, j].mean():>8.3f} ± {acc_rand[:, j].std(ddof=1):.3f}")

# 设计时种子 0–5：干净准确率 0.970–0.978；ε=0.1 时 FGSM 0.307–0.357、随机噪声 0.948–0.967
i01 = EPS.index(0.1)
assert (acc_fgsm[:, 0] > 0.95).all()                       # 每个种子干净准确率都高于 0.95
assert (acc_fgsm[:, i01] < 0.5).all()                      # ε=0.1 的 FGSM：每个种子都跌到 0.5 以下
assert (acc_rand[:, i01] > 0.9).all()                      # 同样大小的随机噪声：每个种子仍高于 0.9
assert (acc_rand[:, i01] - acc_fgsm[:, i01] > 0.4).all()   # 差距（观测最小 0.59）留出 0.19 的余量
assert (np.diff(acc_fgsm, axis=1) < 0).all()               # 每个种子上 ε 越大，FGSM 后准确率越低
assert (acc_fgsm[:, 1:] < acc_rand[:, 1:]).all()           # 每个 ε>0、每个种子：FGSM 都比随机噪声伤得重
# --8<-- [end:attack]


# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.errorbar(EPS, acc_fgsm.mean(0), yerr=acc_fgsm.std(0, ddof=1), marker="o", label="FGSM（沿梯度符号）")
ax.errorbar(EPS, acc_rand.mean(0), yerr=acc_rand.std(0, ddof=1), marker="s", label="随机符号噪声")
ax.set_xlabel("每个像素的扰动上限 ε（像素范围 [0, 1]）")
ax.set_ylabel("测试准确率")
ax.set_ylim(0, 1.02)
ax.legend()
ax.grid(alpha=0.3)
fig.savefig("trends_fgsm.svg", bbox_inches="tight")
# --8<-- [end:figure]
