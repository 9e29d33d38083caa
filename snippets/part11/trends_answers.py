# --8<-- [start:imports]
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
# Hoffmann 等（2022）方法三拟合的常数（论文公布的舍入值）
E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28


def fitted_loss(N: np.ndarray, D: np.ndarray) -> np.ndarray:
    return E + A / N**ALPHA + B / D**BETA


def optimum_closed_form(C: float) -> float:
    """对 L(N, C/(6N)) 关于 N 求导并令其为 0：N* = G·(C/6)^(β/(α+β))，G = (αA/(βB))^(1/(α+β))。"""
    G = (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA))
    return G * (C / 6) ** (BETA / (ALPHA + BETA))


print(f"{'算力 C':>8} {'N*（网格）':>11} {'N*（闭式）':>11} {'D*/N*':>7}")
ratios = []
for C in [1e20, 1e22, 5.88e23, 1e24]:
    N_grid = np.logspace(6, 14, 40001)                 # 在 10^6–10^14 上按对数等距搜索
    N_num = N_grid[np.argmin(fitted_loss(N_grid, C / (6 * N_grid)))]
    N_cf = optimum_closed_form(C)
    assert abs(N_num / N_cf - 1) < 1e-3                # 网格搜索与闭式解一致
    ratios.append(C / (6 * N_cf) / N_cf)
    print(f"{C:>8.3g} {N_num:>11.3g} {N_cf:>11.3g} {ratios[-1]:>7.1f}")
print(f"N* 的指数 β/(α+β) = {BETA / (ALPHA + BETA):.3f}")
assert all(r2 > r1 for r1, r2 in zip(ratios, ratios[1:]))   # 每个参数配的 token 随算力增加
assert min(ratios) > 2 * 20                                  # 这四个预算上都远多于 20
# --8<-- [end:ex1]


# --8<-- [start:ex2]
X, y = load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32)
y = torch.tensor(y)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
X_tr, X_te, y_tr, y_te = X_tr.to(device), X_te.to(device), y_tr.to(device), y_te.to(device)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(seed: int, adv_eps: float = 0.0, steps: int = 150) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        # 对抗训练：每一步先对当前模型生成 FGSM 样本，再在这些样本上训练
        x = fgsm(model, X_tr, y_tr, adv_eps) if adv_eps > 0 else X_tr
        loss = F.cross_entropy(model(x), y_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


plain, robust = train(0), train(0, adv_eps=0.1)
rows = {}
for name, model in [("普通训练", plain), ("FGSM 对抗训练", robust)]:
    rows[name] = [accuracy(model, fgsm(model, X_te, y_te, e), y_te) for e in (0.0, 0.1, 0.2)]
    print(f"{name:>10}: 干净 {rows[name][0]:.3f}  FGSM ε=0.1 {rows[name][1]:.3f}  FGSM ε=0.2 {rows[name][2]:.3f}")
# 设计时种子 0–5：对抗训练后 ε=0.1 的 FGSM 准确率 0.787–0.822（普通训练 0.307–0.357）
assert rows["FGSM 对抗训练"][1] > rows["普通训练"][1] + 0.3
assert rows["FGSM 对抗训练"][0] > rows["普通训练"][0] - 0.02     # 干净准确率没有明显下降
assert rows["FGSM 对抗训练"][2] < 0.5                            # 训练时没见过的 ε=0.2 仍然大半被攻破
# --8<-- [end:ex2]


# --8<-- [start:ex3]
x = X_te.clone().requires_grad_(True)
losses = F.cross_entropy(plain(x), y_te, reduction="none")
(g,) = torch.autograd.grad(losses.sum(), x)             # 每个测试样本各自的输入梯度，(540, 64)
l1, l2 = g.abs().sum(dim=1), g.norm(dim=1)
ratio = (l1 / l2).cpu()
print(f"‖g‖₁ / ‖g‖₂：均值 {ratio.mean():.2f}，最小 {ratio.min():.2f}，最大 {ratio.max():.2f}（上限 √64 = 8）")
assert (ratio >= 1 - 1e-6).all() and (ratio <= 8 + 1e-6).all()
# --8<-- [end:ex3]
