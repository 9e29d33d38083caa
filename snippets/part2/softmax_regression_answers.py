# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = torch.float64
X_all, y_all = load_digits(return_X_y=True)
d, K = 64, 10


def split(random_state: int = 0):
    """与正文相同：分层划分 4:1，用训练集的均值、标准差标准化。"""
    X_tr, X_te, y_tr, y_te = train_test_split(
        X_all, y_all, test_size=0.2, stratify=y_all, random_state=random_state)
    mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
    sigma[sigma == 0] = 1.0
    as_t = lambda a, dt: torch.tensor(a, dtype=dt, device=device)
    return (as_t((X_tr - mu) / sigma, f64), as_t((X_te - mu) / sigma, f64),
            as_t(y_tr, torch.long), as_t(y_te, torch.long))


def train(data, seed: int = 0, signal: str = "softmax", zero_init: bool = False,
          lr: float = 0.5, epochs: int = 20, batch_size: int = 64):
    """正文的小批量 SGD。signal="softmax" 用 P - Y；signal="argmax" 把 P 换成预测类别的独热向量。"""
    X_tr, _, y_tr, _ = data
    torch.manual_seed(seed)
    lin = nn.Linear(d, K).to(device, f64)
    W, b = lin.weight.detach().T.clone(), lin.bias.detach().clone()
    if zero_init:
        W, b = torch.zeros_like(W), torch.zeros_like(b)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y_tr), generator=g).to(device).split(batch_size):
            O = X_tr[idx] @ W + b
            P = torch.softmax(O, dim=1) if signal == "softmax" else F.one_hot(O.argmax(dim=1), K).to(f64)
            G = (P - F.one_hot(y_tr[idx], K).to(f64)) / len(idx)
            W, b = W - lr * X_tr[idx].T @ G, b - lr * G.sum(dim=0)
    return W, b


def accuracy(W, b, X, y) -> float:
    return ((X @ W + b).argmax(dim=1) == y).double().mean().item()


data = split(0)
# --8<-- [end:imports]

# --8<-- [start:ex1]
W0, b0 = train(data, epochs=0)                                # 初值
W, b = train(data)                                            # 训练 20 轮
X_tr = data[0]
v, c = torch.randn(d, 1, dtype=f64, device=device), 3.0
P = torch.softmax(X_tr @ W + b, dim=1)
P_shift = torch.softmax(X_tr @ (W + v) + (b + c), dim=1)     # 每一列都加上同一个 v，每个偏置都加 c
print(f"每列加上同一个 v 后概率的最大变化 < 1e-12：{(P - P_shift).abs().max().item() < 1e-12}")
drift = (W.sum(dim=1) - W0.sum(dim=1)).abs().max().item()    # Σ_k w_k：W 的行和
print(f"训练前后 Σ_k w_k 的最大变化 < 1e-12：{drift < 1e-12}；Σ_k b_k 的变化 < 1e-12："
      f"{abs((b.sum() - b0.sum()).item()) < 1e-12}")
assert (P - P_shift).abs().max() < 1e-12 and drift < 1e-12 and abs((b.sum() - b0.sum()).item()) < 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
gen = torch.Generator().manual_seed(1)
O = torch.randn(16, 2, generator=gen, dtype=f64).to(device).requires_grad_()
t = torch.randint(0, 2, (16,), generator=gen).to(device)
z = O[:, 1] - O[:, 0]                                         # 逻辑回归的 logit
ce, bce = F.cross_entropy(O, t), F.binary_cross_entropy_with_logits(z, t.to(f64))
g_ce, = torch.autograd.grad(ce, O, retain_graph=True)
g_z, = torch.autograd.grad(bce, z)
print(f"K = 2：交叉熵 {ce.item():.6f}，二元交叉熵 {bce.item():.6f}")
print(f"∂L/∂o₁ = -∂L/∂o₀ = ∂L/∂z（差 < 1e-15）：{(g_ce[:, 1] - g_z).abs().max().item() < 1e-15}")
assert abs(ce.item() - bce.item()) < 1e-12
assert (g_ce[:, 1] - g_z).abs().max() < 1e-15 and (g_ce[:, 0] + g_z).abs().max() < 1e-15

# 多类感知机（K = 2）与感知机一节的二分类感知机：逐个样本，从 0 出发，o_y ≤ 另一类的 o 就算分错
Xs = torch.randn(40, 2, generator=gen, dtype=f64)
ys = (Xs[:, 0] - 0.5 * Xs[:, 1] + 0.3 > 0).long()             # 线性可分的两类
Xs1 = torch.cat([Xs, torch.ones(40, 1, dtype=f64)], dim=1)   # 增广 x̃ = (x, 1)
Wm = torch.zeros(3, 2, dtype=f64)                             # 多类感知机：每类一列
w_bin = torch.zeros(3, dtype=f64)                             # 二分类感知机：一个 w̃，标签 ±1
updates, same = 0, True
for epoch in range(100):
    mistakes = 0
    for x, yk in zip(Xs1, ys.tolist()):
        o = x @ Wm
        if o[yk] <= o[1 - yk]:                                # 多类感知机的更新
            Wm[:, yk] += x
            Wm[:, 1 - yk] -= x
            mistakes += 1
        s = 1.0 if yk == 1 else -1.0
        if s * (w_bin @ x) <= 0:                              # 二分类感知机的更新，η = 2
            w_bin += 2 * s * x
        same &= torch.equal(Wm[:, 1] - Wm[:, 0], w_bin)
    updates += mistakes
    if mistakes == 0:
        break
print(f"{epoch + 1} 轮后收敛，共更新 {updates} 次；每一步 w₁ - w₀ 都等于二分类感知机（η = 2）的 w̃：{same}")
assert same and mistakes == 0
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 容差 ±0.003：训练的结果在其他平台上末几位不同，可能改变个别样本的预测
X_te, y_te = data[1], data[3]
acc_soft = accuracy(*train(data, zero_init=True), X_te, y_te)
W_a, b_a = train(data, signal="argmax", zero_init=True, lr=0.5)   # 感知机：P 换成 E_ŷ
W_b, b_b = train(data, signal="argmax", zero_init=True, lr=0.01)
acc_perc = accuracy(W_a, b_a, X_te, y_te)
scaled = max(((W_a - 50 * W_b).abs().max() / W_a.abs().max()).item(),
             ((b_a - 50 * b_b).abs().max() / b_a.abs().max()).item())
print(f"从 0 出发训练 20 轮的测试准确率：softmax 回归 {acc_soft:.4f}，感知机 {acc_perc:.4f}")
print(f"感知机 lr = 0.5 的参数恰为 lr = 0.01 时的 50 倍（相对差 < 1e-12）：{scaled < 1e-12}")
assert scaled < 1e-12 and acc_perc < acc_soft
# --8<-- [end:ex3]

# --8<-- [start:ex4]
# 容差 ±0.003：同上
by_split = [accuracy(*train(split(rs)), *split(rs)[1::2]) for rs in range(20)]
print("random_state 0–19：", " ".join(f"{a:.4f}" for a in by_split))
print(f"范围 {min(by_split):.4f} … {max(by_split):.4f}，最差与最好相差 "
      f"{round((max(by_split) - min(by_split)) * 360)} 个测试样本；低于 0.95 的划分有 {sum(a < 0.95 for a in by_split)} 个")
assert max(by_split) - min(by_split) > 0.9694 - 0.9639        # 比正文中换模型种子的范围大
# --8<-- [end:ex4]
