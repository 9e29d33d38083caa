# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# 以下几行照抄自 snippets/part2/optimizers.py（页面上已展示），使本文件可以单独运行
gen = torch.Generator().manual_seed(0)
f64 = torch.float64
n, d, B, STEPS = 128, 5, 16, 100
X = torch.cat([torch.randn(n, d - 1, generator=gen, dtype=f64), torch.ones(n, 1, dtype=f64)], dim=1)
w_true = torch.tensor([2.0, -1.0, 0.5, 1.5, -0.5], dtype=f64)
y = (torch.rand(n, generator=gen, dtype=f64) < torch.sigmoid(X @ w_true)).to(f64)
theta0 = 0.1 * torch.randn(d, generator=gen, dtype=f64)
X, y, theta0 = X.to(device), y.to(device), theta0.to(device)
perms = [torch.randperm(n, generator=gen) for _ in range(math.ceil(STEPS * B / n))]
batches = [idx.to(device) for p in perms for idx in p.split(B)][:STEPS]
all_idx = torch.arange(n, device=device)


def loss(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(X[idx] @ theta, y[idx])


def grad(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return X[idx].T @ (torch.sigmoid(X[idx] @ theta) - y[idx]) / len(idx)


def run_mine(update, **hp) -> torch.Tensor:
    theta, state = theta0.clone(), {}
    for t, idx in enumerate(batches, start=1):
        theta = update(theta, grad(theta, idx), state, t, **hp)
    return theta


def run_torch(opt_cls, grad_fn=None, **hp) -> torch.Tensor:
    p = theta0.clone().requires_grad_()
    opt = opt_cls([p], **hp)
    for idx in batches:
        opt.zero_grad()
        if grad_fn is None:
            p.grad = grad(p.detach(), idx)
        else:
            grad_fn(p, idx).backward()
        opt.step()
    return p.detach()


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_grad(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return torch.stack([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])


start = torch.tensor([-1.5, 2.0], dtype=f64, device=device)


# --8<-- [start:ex1]
def hessian_lmax(P: torch.Tensor) -> torch.Tensor:
    """Rosenbrock 函数在每个位置 P[k] = (x, y) 处海森矩阵的最大特征值（2×2 对称矩阵的解析式）。"""
    x, y = P[..., 0], P[..., 1]
    a = 2 - 400 * (y - x * x) + 800 * x * x       # ∂²f/∂x²
    b = -400 * x                                  # ∂²f/∂x∂y
    c = 200.0                                     # ∂²f/∂y²
    return (a + c) / 2 + torch.sqrt(((a - c) / 2) ** 2 + b * b)


H0 = torch.autograd.functional.hessian(lambda q: rosenbrock(q[0], q[1]), start)
assert math.isclose(hessian_lmax(start).item(), torch.linalg.eigvalsh(H0).max().item(), rel_tol=1e-12)


def sgd_path(lr: float, steps: int = 500) -> torch.Tensor:
    p = start.clone().requires_grad_()
    opt = torch.optim.SGD([p], lr=lr)
    path = [p.detach().clone()]
    for _ in range(steps):
        p.grad = rosenbrock_grad(p.detach())
        opt.step()
        path.append(p.detach().clone())
    return torch.stack(path).cpu()


paths = {lr: sgd_path(lr) for lr in (2e-3, 2.5e-3)}
print("步  η = 2e-3 时的位置 (x, y) 与 λ_max（2/η = 1000）  │  η = 2.5e-3 时（2/η = 800）")
for k in range(20):
    row = []
    for path in paths.values():
        u, w = path[k].tolist()
        row.append(f"({u:10.4g}, {w:10.4g})  λ_max = {hessian_lmax(path[k]).item():9.4g}")
    print(f"{k:2d}  " + "  │  ".join(row))
f_500 = {lr: rosenbrock(*path[-1]).item() for lr, path in paths.items()}
print(f"500 步后 f：η = 2e-3 为 {f_500[2e-3]:.2e}，η = 2.5e-3 为 {f_500[2.5e-3]}")
assert f_500[2e-3] < 1e-3 and math.isnan(f_500[2.5e-3])
assert hessian_lmax(paths[2.5e-3][2]).item() * 2.5e-3 > 10     # 第 2 步落在极陡处：ηλ_max > 10

# η = 2e-3 时最小值 (1, 1) 本身并不稳定：2/λ_max(1, 1) 略小于 2e-3。用 Python 浮点数多跑几万步看看
lmax_min = hessian_lmax(torch.tensor([1.0, 1.0], dtype=f64)).item()
u, w, f_long = -1.5, 2.0, {}                     # 位置 (x, y)
for k in range(1, 20001):
    u, w = u - 2e-3 * (-2 * (1 - u) - 400 * u * (w - u * u)), w - 2e-3 * 200 * (w - u * u)
    if k in (10000, 20000):
        f_long[k] = rosenbrock(u, w)
print(f"最小值 (1, 1) 处 λ_max = {lmax_min:.1f}，2/λ_max = {2 / lmax_min:.4e} < 2e-3；"
      f"η = 2e-3 时 f：1 万步 {f_long[10000]:.1e}，2 万步 {f_long[20000]:.1e}")
assert 2 / lmax_min < 2e-3 and f_long[10000] < 1e-8 and f_long[20000] > 1e-4

# Adam 的三个学习率：每个坐标每步移动不超过约 η，所以不会像 SGD 那样发散
adam_f = {}
for lr in (0.01, 0.1, 0.5):
    p = start.clone().requires_grad_()
    opt = torch.optim.Adam([p], lr=lr)
    path = [p.detach().clone()]
    for _ in range(500):
        p.grad = rosenbrock_grad(p.detach())
        opt.step()
        path.append(p.detach().clone())
    P = torch.stack(path)
    fs = rosenbrock(P[:, 0], P[:, 1])
    max_step = (P[1:] - P[:-1]).abs().max().item()
    adam_f[lr] = fs[-1].item()
    print(f"Adam lr = {lr:<4}：500 步后 f = {adam_f[lr]:.4f}，途中最大 f = {fs.max().item():.1f}，"
          f"单个坐标的最大步长 / η = {max_step / lr:.3f}")
    assert max_step <= lr * (1 + 1e-6)
assert adam_f[0.01] > 1 and adam_f[0.5] < adam_f[0.1] < 0.1
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def adam_steps(bias_correction: bool, lr=0.05, betas=(0.9, 0.999), eps=1e-8, steps=5) -> list[float]:
    """在逻辑回归上跑 steps 步 Adam，返回每步的步长 ‖θ_t - θ_{t-1}‖。"""
    beta1, beta2 = betas
    theta, m, v, sizes = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0), []
    for t, idx in enumerate(batches[:steps], start=1):
        g = grad(theta, idx)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if bias_correction:
            m_used, v_used = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        else:
            m_used, v_used = m, v                 # 去掉偏差修正
        new = theta - lr * m_used / (v_used.sqrt() + eps)
        sizes.append((new - theta).norm().item())
        theta = new
    return sizes


with_bc, without_bc = adam_steps(True), adam_steps(False)
print(" t   有修正    无修正    比值   梯度恒定时的比值 (1-β1^t)/√(1-β2^t)")
for t, (a, b) in enumerate(zip(with_bc, without_bc), start=1):
    print(f"{t:2d}  {a:.4f}   {b:.4f}   {b / a:.3f}   {(1 - 0.9 ** t) / math.sqrt(1 - 0.999 ** t):.3f}")
assert all(b > 3 * a for a, b in zip(with_bc, without_bc))
assert math.isclose(without_bc[0] / with_bc[0], 0.1 / math.sqrt(0.001), rel_tol=1e-4)  # 第 1 步恰为 √10 倍
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def rmsprop_tf_update(theta, g, state, t, lr, alpha=0.99, eps=1e-8):
    v = alpha * state.get("v", torch.zeros_like(theta)) + (1 - alpha) * g * g
    state["v"] = v
    return theta - lr * g / (v + eps).sqrt()          # TensorFlow 的写法：eps 在开方之内


for eps in (1e-8, 1.0):
    tf = run_mine(rmsprop_tf_update, lr=0.01, alpha=0.9, eps=eps)
    pt = run_torch(torch.optim.RMSprop, lr=0.01, alpha=0.9, eps=eps)
    gap = (tf - pt).abs().max().item()
    print(f"eps = {eps:g}：最大参数差 {gap:.1e}；全数据损失 TF 写法 {loss(tf, all_idx).item():.4f}，"
          f"PyTorch {loss(pt, all_idx).item():.4f}；‖θ - θ0‖ 分别为 {(tf - theta0).norm().item():.3f}、"
          f"{(pt - theta0).norm().item():.3f}")
    if eps == 1e-8:
        gap_small, loss_small = gap, loss(pt, all_idx).item()
    else:
        gap_big, losses_big = gap, (loss(tf, all_idx).item(), loss(pt, all_idx).item())
assert 1e-10 < gap_small < 1e-3 and gap_big > 100 * gap_small
assert min(losses_big) > loss_small + 0.1         # eps = 1 时两种写法都几乎退化成学习率 0.01 的 SGD
# --8<-- [end:ex3]


# --8<-- [start:ex4]
def sgdw_update(theta, g, state, t, lr, weight_decay=0.0, momentum=0.0):
    """SGDW：先把参数乘以 1 - ηλ（解耦衰减），再用不含 λθ 的梯度做（动量）SGD。"""
    theta = theta - lr * weight_decay * theta
    if momentum != 0:
        g = state["b"] = g.clone() if t == 1 else momentum * state["b"] + g
    return theta - lr * g


lam = 0.05
gap_plain = (run_mine(sgdw_update, lr=0.5, weight_decay=lam)
             - run_torch(torch.optim.SGD, lr=0.5, weight_decay=lam)).abs().max().item()
gap_mom = (run_mine(sgdw_update, lr=0.1, weight_decay=lam, momentum=0.9)
           - run_torch(torch.optim.SGD, lr=0.1, weight_decay=lam, momentum=0.9)).abs().max().item()
print(f"无动量：SGDW 与 SGD(weight_decay=λ) 的最大参数差 < 1e-12：{gap_plain < 1e-12}")
print(f"动量 0.9：SGDW 与 SGD(momentum=0.9, weight_decay=λ) 的最大参数差 {gap_mom:.3f}")
assert gap_plain < 1e-12 and gap_mom > 0.01
# --8<-- [end:ex4]
