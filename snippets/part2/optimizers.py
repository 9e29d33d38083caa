# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 数据在 CPU 上生成再搬到 device，CPU/GPU 结果一致
f64 = torch.float64

# 逻辑回归（logistic regression）：n 个样本，d-1 个特征再加一列常数 1 充当偏置
n, d, B, STEPS = 128, 5, 16, 100
X = torch.cat([torch.randn(n, d - 1, generator=gen, dtype=f64), torch.ones(n, 1, dtype=f64)], dim=1)
w_true = torch.tensor([2.0, -1.0, 0.5, 1.5, -0.5], dtype=f64)
y = (torch.rand(n, generator=gen, dtype=f64) < torch.sigmoid(X @ w_true)).to(f64)
theta0 = 0.1 * torch.randn(d, generator=gen, dtype=f64)
X, y, theta0 = X.to(device), y.to(device), theta0.to(device)

# 固定的小批量顺序：每轮把 n 个下标打乱后切成 n/B 批，共取 STEPS 批
perms = [torch.randperm(n, generator=gen) for _ in range(math.ceil(STEPS * B / n))]
batches = [idx.to(device) for p in perms for idx in p.split(B)][:STEPS]
all_idx = torch.arange(n, device=device)


def loss(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """小批量 idx 上的平均二元交叉熵。"""
    return F.binary_cross_entropy_with_logits(X[idx] @ theta, y[idx])


def grad(theta: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """闭式梯度 X_B^T (σ(X_B θ) - y_B) / |B|，形状 (d,)。"""
    with torch.no_grad():
        return X[idx].T @ (torch.sigmoid(X[idx] @ theta) - y[idx]) / len(idx)


t_ = theta0.clone().requires_grad_()
loss(t_, batches[0]).backward()
print(f"初始全数据损失：{loss(theta0, all_idx).item():.4f}")
print(f"闭式梯度与 autograd 一致：{torch.allclose(t_.grad, grad(theta0, batches[0]), rtol=0, atol=1e-14)}")
assert torch.allclose(t_.grad, grad(theta0, batches[0]), rtol=0, atol=1e-14)
# --8<-- [end:setup]

# --8<-- [start:gd]
# 二次函数 f(θ) = ½ θᵀAθ，A = diag(1, 10)：梯度是 Aθ，最大曲率 L = 10
A = torch.diag(torch.tensor([1.0, 10.0], dtype=f64, device=device))
for lr in (0.19, 0.21):                       # 稳定的充要条件是 lr < 2/L = 0.2
    th = torch.tensor([1.0, 1.0], dtype=f64, device=device)
    for _ in range(100):
        th = th - lr * (A @ th)               # 梯度下降：θ ← θ - η ∇f(θ)
    predicted = abs(1 - lr * 10) ** 100           # 曲率 10 的方向每步乘以 |1 - 10η|，它主导 ‖θ‖
    print(f"lr = {lr}：100 步后 ‖θ‖ = {th.norm().item():.3e}，理论 |1 - 10η|^100 = {predicted:.3e}")
    assert math.isclose(th.norm().item(), predicted, rel_tol=1e-8)
    assert th.norm().item() < 1e-3 if lr < 0.2 else th.norm().item() > 1e3

# 一轮中各小批量梯度的平均 = 全数据梯度（每批大小相同、恰好不重不漏地覆盖数据）
epoch = perms[0].to(device).split(B)
g_mean = torch.stack([grad(theta0, idx) for idx in epoch]).mean(dim=0)
g_full = grad(theta0, all_idx)
spread = torch.stack([grad(theta0, idx) for idx in epoch]).std(dim=0).max().item()
print(f"一轮 {len(epoch)} 个小批量梯度的平均 = 全数据梯度：{torch.allclose(g_mean, g_full, rtol=0, atol=1e-14)}")
print(f"单个小批量梯度各分量的最大标准差：{spread:.3f}")
assert torch.allclose(g_mean, g_full, rtol=0, atol=1e-14) and spread > 0.01
# --8<-- [end:gd]


# --8<-- [start:harness]
def run_mine(update, **hp) -> torch.Tensor:
    """用自己写的更新公式 update(θ, g, state, t, **hp) 跑 STEPS 步小批量训练。"""
    theta, state = theta0.clone(), {}
    for t, idx in enumerate(batches, start=1):  # 步数 t 从 1 开始，与 PyTorch 一致
        theta = update(theta, grad(theta, idx), state, t, **hp)
    return theta


def run_torch(opt_cls, grad_fn=None, **hp) -> torch.Tensor:
    """同样的数据、同样的起点，用 torch.optim 跑 STEPS 步。"""
    p = theta0.clone().requires_grad_()
    opt = opt_cls([p], **hp)
    for idx in batches:
        opt.zero_grad()
        if grad_fn is None:
            p.grad = grad(p.detach(), idx)    # 等价于 loss(p, idx).backward()，上面已断言
        else:
            grad_fn(p, idx).backward()        # 对另一个损失做反向
        opt.step()
    return p.detach()


def compare(name: str, update, opt_cls, **hp) -> float:
    mine, ref = run_mine(update, **hp), run_torch(opt_cls, **hp)
    diff = (mine - ref).abs().max().item()
    final = loss(ref, all_idx).item()
    print(f"{name:<9} {STEPS} 步后全数据损失 {final:.4f}，与 torch.optim 的最大参数差 < 1e-10：{diff < 1e-10}")
    assert diff < 1e-10 and final < loss(theta0, all_idx).item()
    return final
# --8<-- [end:harness]


# --8<-- [start:sgd]
def sgd_update(theta, g, state, t, lr, momentum=0.0, dampening=0.0,
               weight_decay=0.0, nesterov=False):
    if weight_decay != 0:
        g = g + weight_decay * theta                  # L2 惩罚的梯度 λθ
    if momentum != 0:
        if t == 1:
            b = g.clone()                             # 第一步：缓冲区直接取 g
        else:
            b = momentum * state["b"] + (1 - dampening) * g
        state["b"] = b
        g = g + momentum * b if nesterov else b       # Nesterov：g + μb
    return theta - lr * g


compare("SGD", sgd_update, torch.optim.SGD, lr=0.5)
compare("Momentum", sgd_update, torch.optim.SGD,
        lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-3)
compare("Nesterov", sgd_update, torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True)
# --8<-- [end:sgd]

# --8<-- [start:nesterov]
mu, lr = 0.9, 0.1
# Sutskever 等（2013）的经典动量：v ← μv - ηg(θ)，θ ← θ + v；学习率不变时与 SGD(momentum) 相同
theta_c, v = theta0.clone(), torch.zeros_like(theta0)
for idx in batches:
    v = mu * v - lr * grad(theta_c, idx)
    theta_c = theta_c + v
gap_cm = (theta_c - run_torch(torch.optim.SGD, lr=lr, momentum=mu)).abs().max().item()
print(f"经典动量 θ 与 torch 的 SGD(momentum) 参数之差 < 1e-10：{gap_cm < 1e-10}")
assert gap_cm < 1e-10

# Sutskever 等（2013）的 NAG：在「前瞻点」θ + μv 处求梯度
theta_s, v = theta0.clone(), torch.zeros_like(theta0)
for idx in batches:
    v = mu * v - lr * grad(theta_s + mu * v, idx)
    theta_s = theta_s + v
lookahead = theta_s + mu * v                  # PyTorch 存的参数正是这个前瞻点
ref = run_torch(torch.optim.SGD, lr=lr, momentum=mu, nesterov=True)
gap = (lookahead - ref).abs().max().item()
print(f"原始 NAG 的前瞻点 θ + μv 与 torch 的 Nesterov 参数之差 < 1e-10：{gap < 1e-10}")
assert gap < 1e-10
# --8<-- [end:nesterov]


# --8<-- [start:adagrad]
def adagrad_update(theta, g, state, t, lr, lr_decay=0.0, weight_decay=0.0,
                   initial_accumulator_value=0.0, eps=1e-10):
    if weight_decay != 0:
        g = g + weight_decay * theta
    lr_t = lr / (1 + (t - 1) * lr_decay)              # 学习率随步数衰减
    s = state.get("s", torch.full_like(theta, initial_accumulator_value)) + g * g
    state["s"] = s                                    # 梯度平方的累加和
    return theta - lr_t * g / (s.sqrt() + eps)        # eps 加在开方之后


compare("AdaGrad", adagrad_update, torch.optim.Adagrad,
        lr=0.5, lr_decay=0.01, initial_accumulator_value=0.1)
# --8<-- [end:adagrad]


# --8<-- [start:rmsprop]
def rmsprop_update(theta, g, state, t, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
    if weight_decay != 0:
        g = g + weight_decay * theta
    v = alpha * state.get("v", torch.zeros_like(theta)) + (1 - alpha) * g * g
    state["v"] = v                                    # 梯度平方的指数移动平均
    return theta - lr * g / (v.sqrt() + eps)          # eps 加在开方之后


compare("RMSProp", rmsprop_update, torch.optim.RMSprop, lr=0.01, alpha=0.9)
# --8<-- [end:rmsprop]


# --8<-- [start:adam]
def adam_update(theta, g, state, t, lr, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.0, decoupled=False):
    beta1, beta2 = betas
    if decoupled:
        theta = theta - lr * weight_decay * theta     # AdamW：直接缩小参数
    elif weight_decay != 0:
        g = g + weight_decay * theta                  # Adam：把 λθ 加进梯度
    m = beta1 * state.get("m", torch.zeros_like(theta)) + (1 - beta1) * g
    v = beta2 * state.get("v", torch.zeros_like(theta)) + (1 - beta2) * g * g
    state["m"], state["v"] = m, v
    m_hat = m / (1 - beta1 ** t)                      # 偏差修正
    v_hat = v / (1 - beta2 ** t)
    return theta - lr * m_hat / (v_hat.sqrt() + eps)


def adamw_update(theta, g, state, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return adam_update(theta, g, state, t, lr, betas, eps, weight_decay, decoupled=True)


compare("Adam", adam_update, torch.optim.Adam, lr=0.05, weight_decay=1e-3)
compare("AdamW", adamw_update, torch.optim.AdamW, lr=0.05, weight_decay=0.1)
# --8<-- [end:adam]


# --8<-- [start:decay]
lam = 0.05


def l2_loss(p: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return loss(p, idx) + lam / 2 * (p ** 2).sum()    # L + (λ/2)‖θ‖²


sgd_wd = run_torch(torch.optim.SGD, lr=0.5, weight_decay=lam)
sgd_l2 = run_torch(torch.optim.SGD, grad_fn=l2_loss, lr=0.5)
adam_wd = run_torch(torch.optim.Adam, lr=0.05, weight_decay=lam)
adam_l2 = run_torch(torch.optim.Adam, grad_fn=l2_loss, lr=0.05)
adamw = run_torch(torch.optim.AdamW, lr=0.05, weight_decay=lam)
d_sgd = (sgd_wd - sgd_l2).abs().max().item()
d_adam = (adam_wd - adam_l2).abs().max().item()
d_adamw = (adamw - adam_l2).abs().max().item()
print(f"SGD(weight_decay=λ) 与 SGD 优化 L + (λ/2)‖θ‖² 之差 < 1e-10：{d_sgd < 1e-10}")
print(f"Adam(weight_decay=λ) 与 Adam 优化 L + (λ/2)‖θ‖² 之差 < 1e-10：{d_adam < 1e-10}")
print(f"AdamW(weight_decay=λ) 与 Adam 优化 L + (λ/2)‖θ‖² 的最大参数差：{d_adamw:.3f}")
print(f"‖θ‖：SGD+L2 {sgd_l2.norm().item():.3f}，Adam+L2 {adam_l2.norm().item():.3f}，"
      f"AdamW {adamw.norm().item():.3f}")
assert d_sgd < 1e-10 and d_adam < 1e-10 and d_adamw > 0.1
# --8<-- [end:decay]


# --8<-- [start:trajectories]
def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2     # 最小值 0，在 (1, 1)


def rosenbrock_grad(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return torch.stack([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])


settings = {                                          # 名称: (优化器, 超参数)
    "SGD": (torch.optim.SGD, dict(lr=1e-3)),
    "Momentum": (torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
    "Nesterov": (torch.optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
    "AdaGrad": (torch.optim.Adagrad, dict(lr=0.5)),
    "RMSProp": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.9)),
    "Adam": (torch.optim.Adam, dict(lr=0.1)),
}
start = torch.tensor([-1.5, 2.0], dtype=f64, device=device)
H = torch.autograd.functional.hessian(lambda q: rosenbrock(q[0], q[1]), start)
curv = torch.linalg.eigvalsh(H).max().item()      # 起点处的最大曲率
print(f"起点处海森矩阵的最大特征值 λ_max = {curv:.1f}，2 / λ_max = {2 / curv:.2e}")
assert 2000 < curv < 2200
paths, final_f = {}, {}
for name, (opt_cls, hp) in settings.items():
    p = start.clone().requires_grad_()
    opt = opt_cls([p], **hp)
    path = [p.detach().clone()]
    for _ in range(500):
        p.grad = rosenbrock_grad(p.detach())
        opt.step()
        path.append(p.detach().clone())
    paths[name] = torch.stack(path).cpu().numpy()
    final_f[name] = rosenbrock(*p.detach()).item()
    print(f"{name:<9} 500 步后 f = {final_f[name]:.4f}，位置 ({p[0].item():.3f}, {p[1].item():.3f})")

xs, ys = np.meshgrid(np.linspace(-2, 2, 61), np.linspace(-1, 3, 61))
fig, axes = plt.subplots(2, 3, figsize=(10, 6.4), sharex=True, sharey=True)
for ax, (name, path) in zip(axes.flat, paths.items()):
    ax.contour(xs, ys, np.log10(rosenbrock(xs, ys) + 1e-3), levels=np.linspace(-1, 3, 9),
               colors="0.7", linewidths=0.7)
    ax.plot(path[:, 0], path[:, 1], "-", color="C0", linewidth=1.2)
    ax.plot(*path[0], "o", color="C2", markersize=5)
    ax.plot(1, 1, "*", color="C3", markersize=10)
    ax.set_title(f"{name}: f = {final_f[name]:.3g}", fontsize=10)
for ax in axes[1]:
    ax.set_xlabel("$x$")
for ax in axes[:, 0]:
    ax.set_ylabel("$y$")
fig.tight_layout()
fig.savefig("optimizers_trajectories.svg", bbox_inches="tight")
plt.close(fig)

assert final_f["Momentum"] < final_f["SGD"] / 100 and final_f["Nesterov"] < final_f["SGD"] / 100
assert final_f["Adam"] < 0.1 and final_f["SGD"] > 1.0
assert {name for name, f in final_f.items() if f < 0.1} == {"Momentum", "Nesterov", "Adam"}  # 只有这三个接近最小值
assert paths["SGD"][-1, 0] < 0  # SGD 还停在谷底的左半段（x < 0）
step1 = {name: np.linalg.norm(path[1] - path[0]) for name, path in paths.items()}
assert step1["Nesterov"] > step1["Momentum"]  # Nesterov 的第一步跳得更远
# --8<-- [end:trajectories]
