# --8<-- [start:setup]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
f64 = torch.float64                     # 比较梯度时一律用 float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """相对误差 ‖a - b‖ / ‖b‖（Frobenius 范数）。"""
    return ((a - b).norm() / b.norm()).item()
# --8<-- [end:setup]


# --8<-- [start:forward]
def init_params(d: int, h: int, k: int) -> list[torch.Tensor]:
    """W1: (d, h)，b1: (h,)，W2: (h, k)，b2: (k,)；都设置 requires_grad，供 autograd 对照。"""
    W1 = torch.randn(d, h, generator=gen, dtype=f64) / d ** 0.5
    b1 = torch.zeros(h, dtype=f64)
    W2 = torch.randn(h, k, generator=gen, dtype=f64) / h ** 0.5
    b2 = torch.zeros(k, dtype=f64)
    return [p.to(device).requires_grad_() for p in (W1, b1, W2, b2)]


def forward(X: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    W1, b1, W2, b2 = params
    A1 = X @ W1 + b1              # (N, h)：第一层的线性部分
    H = torch.sigmoid(A1)         # (N, h)：隐藏层输出
    Y_hat = H @ W2 + b2           # (N, K)：输出（logit 或回归值）
    return H, Y_hat               # 反向只需要 H（σ' = H(1 - H)），不必保存 A1


def loss_fn(Y_hat: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "ce":
        return F.cross_entropy(Y_hat, target)   # target: (N,) 类别下标
    return F.mse_loss(Y_hat, target)            # target: (N, K) 实数


N, d, h, K = 8, 5, 4, 3
X = torch.randn(N, d, generator=gen, dtype=f64).to(device)
t = torch.randint(0, K, (N,), generator=gen).to(device)             # CE 的目标
T = torch.randn(N, K, generator=gen, dtype=f64).to(device)          # MSE 的目标
params = init_params(d, h, K)
H, Y_hat = forward(X, params)
print(f"X {tuple(X.shape)} -> H {tuple(H.shape)} -> Y_hat {tuple(Y_hat.shape)}")
print("参数形状：", [tuple(p.shape) for p in params])
# --8<-- [end:forward]


# --8<-- [start:manual]
@torch.no_grad()
def manual_backward(X: torch.Tensor, H: torch.Tensor, Y_hat: torch.Tensor, target: torch.Tensor,
                    W2: torch.Tensor, kind: str) -> list[torch.Tensor]:
    n, k = Y_hat.shape
    if kind == "ce":                              # G2 = ∂L/∂Ŷ，形状 (N, K)
        G2 = (torch.softmax(Y_hat, dim=1) - F.one_hot(target, k).to(Y_hat.dtype)) / n
    else:
        G2 = 2 * (Y_hat - target) / (n * k)
    dW2 = H.T @ G2                                # (h, N) @ (N, K) -> (h, K)
    db2 = G2.sum(dim=0)                           # (K,)：b2 被广播到 N 行，反向对行求和
    dH = G2 @ W2.T                                # (N, K) @ (K, h) -> (N, h)
    G1 = dH * H * (1 - H)                         # (N, h)：逐元素乘 σ'(A1) = H(1 - H)
    dW1 = X.T @ G1                                # (d, N) @ (N, h) -> (d, h)
    db1 = G1.sum(dim=0)                           # (h,)
    return [dW1, db1, dW2, db2]


names = ["W1", "b1", "W2", "b2"]
for kind, target in [("ce", t), ("mse", T)]:
    H, Y_hat = forward(X, params)
    loss = loss_fn(Y_hat, target, kind)
    auto = torch.autograd.grad(loss, params)      # autograd 的结果，作为对照
    manual = manual_backward(X, H, Y_hat, target, params[2], kind)
    errs = [rel_err(m, a) for m, a in zip(manual, auto)]
    print(f"{kind.upper():>3}：loss = {loss.item():.6f}")
    for name, m, e in zip(names, manual, errs):
        print(f"     {name} {str(tuple(m.shape)):7} 相对误差 < 1e-10：{e < 1e-10}")
    assert all(m.shape == p.shape for m, p in zip(manual, params))
    assert max(errs) < 1e-10
# --8<-- [end:manual]


# --8<-- [start:numeric]
@torch.no_grad()
def loss_at(params: list[torch.Tensor], kind: str, target: torch.Tensor) -> float:
    return loss_fn(forward(X, params)[1], target, kind).item()


eps = 1e-6
H, Y_hat = forward(X, params)
manual = manual_backward(X, H, Y_hat, t, params[2], "ce")
probe = {"W1": [(0, 0), (4, 3)], "b1": [(1,)], "W2": [(2, 1), (3, 0)], "b2": [(2,)]}
worst = 0.0
print("参数  位置     手推梯度      中心差分")
for i, name in enumerate(names):
    for idx in probe[name]:
        p = params[i]
        with torch.no_grad():
            old = p[idx].item()
            p[idx] = old + eps
            up = loss_at(params, "ce", t)
            p[idx] = old - eps
            down = loss_at(params, "ce", t)
            p[idx] = old                          # 恢复原值
        numeric = (up - down) / (2 * eps)
        analytic = manual[i][idx].item()
        worst = max(worst, abs(numeric - analytic))
        print(f"{name:4} {str(idx):7} {analytic:12.6f} {numeric:12.6f}")
print(f"最大绝对差 < 1e-8：{worst < 1e-8}")
assert worst < 1e-8
# --8<-- [end:numeric]

# --8<-- [start:train]
digits = load_digits()
Xd = torch.tensor(digits.data / 16.0, dtype=f64)           # (1797, 64)，像素缩放到 [0, 1]
yd = torch.tensor(digits.target)                            # (1797,)，类别 0..9
perm = torch.randperm(len(yd), generator=gen)
tr, te = perm[:1437], perm[1437:]                           # 1437 个训练、360 个测试
X_tr, y_tr = Xd[tr].to(device), yd[tr].to(device)
X_te, y_te = Xd[te].to(device), yd[te].to(device)

p_manual = init_params(64, 32, 10)                          # 用手推梯度更新
p_auto = [p.detach().clone().requires_grad_() for p in p_manual]   # 同一初值，用 autograd + SGD
opt = torch.optim.SGD(p_auto, lr=1.5)
lr, steps, history = 1.5, 200, []
for step in range(steps):
    H, Y_hat = forward(X_tr, p_manual)                      # 全批量梯度下降
    history.append(loss_fn(Y_hat, y_tr, "ce").item())
    grads = manual_backward(X_tr, H, Y_hat, y_tr, p_manual[2], "ce")
    with torch.no_grad():
        for p, g in zip(p_manual, grads):
            p -= lr * g
    opt.zero_grad()
    loss_fn(forward(X_tr, p_auto)[1], y_tr, "ce").backward()
    opt.step()
history.append(loss_fn(forward(X_tr, p_manual)[1], y_tr, "ce").item())   # history[k]：k 次更新后的损失

for k in [0, steps // 4, steps // 2, 3 * steps // 4, steps]:
    print(f"{k:3d} 次更新后：训练损失 {history[k]:.4f}")
with torch.no_grad():
    acc = (forward(X_te, p_manual)[1].argmax(dim=1) == y_te).double().mean().item()
drift = max(rel_err(a, b) for a, b in zip(p_manual, p_auto))
print(f"测试准确率：{acc:.3f}")
print(f"{steps} 步后手推梯度与 autograd + SGD 的参数相对误差 < 1e-10：{drift < 1e-10}")
assert history[-1] < 0.2 * history[0] and all(b < a for a, b in zip(history, history[1:]))
assert acc >= 0.94 and drift < 1e-10     # 实测 0.958
# --8<-- [end:train]
