# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = torch.float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def loss_fn(Y_hat: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    return F.cross_entropy(Y_hat, target) if kind == "ce" else F.mse_loss(Y_hat, target)


def output_grad(Y_hat: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """G2 = ∂L/∂Ŷ，与正文 manual_backward 的前两行相同。"""
    n, k = Y_hat.shape
    if kind == "ce":
        return (torch.softmax(Y_hat, dim=1) - F.one_hot(target, k).to(Y_hat.dtype)) / n
    return 2 * (Y_hat - target) / (n * k)


# 与正文 forward 一节相同的数据（同一个生成器、同样的调用顺序）
gen = torch.Generator().manual_seed(0)
N, d, h, K = 8, 5, 4, 3
X = torch.randn(N, d, generator=gen, dtype=f64).to(device)
t = torch.randint(0, K, (N,), generator=gen).to(device)
T = torch.randn(N, K, generator=gen, dtype=f64).to(device)
params = [(torch.randn(d, h, generator=gen, dtype=f64) / d ** 0.5).to(device).requires_grad_(),
          torch.zeros(h, dtype=f64, device=device, requires_grad=True),
          (torch.randn(h, K, generator=gen, dtype=f64) / h ** 0.5).to(device).requires_grad_(),
          torch.zeros(K, dtype=f64, device=device, requires_grad=True)]
names = ["W1", "b1", "W2", "b2"]
# --8<-- [end:imports]

# --8<-- [start:ex1]
def forward_relu(X: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    W1, b1, W2, b2 = params
    H = torch.relu(X @ W1 + b1)            # (N, h)；H > 0 当且仅当 A1 > 0
    return H, H @ W2 + b2


@torch.no_grad()
def manual_backward_relu(X, H, Y_hat, target, W2, kind) -> list[torch.Tensor]:
    G2 = output_grad(Y_hat, target, kind)
    G1 = (G2 @ W2.T) * (H > 0).to(H.dtype)  # ReLU'(A1) = 1[A1 > 0]，由 H 就能知道
    return [X.T @ G1, G1.sum(dim=0), H.T @ G2, G2.sum(dim=0)]


for kind, target in [("ce", t), ("mse", T)]:
    H, Y_hat = forward_relu(X, params)
    auto = torch.autograd.grad(loss_fn(Y_hat, target, kind), params)
    manual = manual_backward_relu(X, H, Y_hat, target, params[2], kind)
    errs = [rel_err(m, a) for m, a in zip(manual, auto)]
    print(f"ReLU，{kind.upper():>3}：四个梯度的最大相对误差 < 1e-10：{max(errs) < 1e-10}；"
          f"A1 中大于 0 的元素 {int((H > 0).sum())} / {H.numel()} 个")
    assert max(errs) < 1e-10
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def forward(X: torch.Tensor, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    W1, b1, W2, b2 = params                # 与正文相同：sigmoid 隐藏层
    H = torch.sigmoid(X @ W1 + b1)
    return H, H @ W2 + b2


@torch.no_grad()
def manual_backward(X, H, Y_hat, target, W2, kind, forget_1_over_n: bool = False) -> list[torch.Tensor]:
    G2 = output_grad(Y_hat, target, kind)
    if forget_1_over_n:
        G2 = G2 * len(Y_hat)               # 故意的错误：交叉熵梯度漏掉 1/N
    G1 = (G2 @ W2.T) * H * (1 - H)
    return [X.T @ G1, G1.sum(dim=0), H.T @ G2, G2.sum(dim=0)]


H, Y_hat = forward(X, params)
loss = loss_fn(Y_hat, t, "ce")
auto = torch.autograd.grad(loss, params)
wrong = manual_backward(X, H, Y_hat, t, params[2], "ce", forget_1_over_n=True)
errs = [rel_err(m, a) for m, a in zip(wrong, auto)]
print(f"CE 损失 {loss.item():.6f}（与正文相同）；漏掉 1/N 后的相对误差："
      + "，".join(f"{n} {e:.6f}" for n, e in zip(names, errs)))
assert all(abs(e - (N - 1)) < 1e-10 for e in errs)           # 每个梯度都是正确值的 N 倍：误差 N - 1 = 7

eps, worst = 1e-6, 0.0
for i, idx in [(0, (0, 0)), (2, (2, 1)), (3, (2,))]:          # 取三个分量做中心差分
    p = params[i]
    with torch.no_grad():
        old = p[idx].item()
        p[idx] = old + eps
        up = loss_fn(forward(X, params)[1], t, "ce").item()
        p[idx] = old - eps
        down = loss_fn(forward(X, params)[1], t, "ce").item()
        p[idx] = old
    numeric = (up - down) / (2 * eps)
    print(f"{names[i]}{list(idx)}：中心差分 {numeric:.6f}，漏掉 1/N 的手推梯度 {wrong[i][idx].item():.6f}")
    worst = max(worst, abs(numeric - wrong[i][idx].item()))
assert worst > 1e-3                                           # 远超 1e-8 的阈值：梯度检验能发现
# --8<-- [end:ex2]

# --8<-- [start:ex3]
h2 = 6                                                         # 第二个隐藏层的宽度
g3 = torch.Generator().manual_seed(1)                          # 另一个生成器：不打乱 gen 的序列
params3 = [torch.randn(d, h, generator=g3, dtype=f64) / d ** 0.5, torch.zeros(h, dtype=f64),       # W1, b1
           torch.randn(h, h2, generator=g3, dtype=f64) / h ** 0.5, torch.zeros(h2, dtype=f64),     # W3, b3
           torch.randn(h2, K, generator=g3, dtype=f64) / h2 ** 0.5, torch.zeros(K, dtype=f64)]     # W2, b2
params3 = [p.to(device).requires_grad_() for p in params3]
names3 = ["W1", "b1", "W3", "b3", "W2", "b2"]


def forward3(X, params3):
    W1, b1, W3, b3, W2, b2 = params3
    H1 = torch.sigmoid(X @ W1 + b1)          # (N, h)
    H2 = torch.sigmoid(H1 @ W3 + b3)         # (N, h2)
    return H1, H2, H2 @ W2 + b2              # Ŷ: (N, K)


@torch.no_grad()
def manual_backward3(X, H1, H2, Y_hat, target, W3, W2, kind):
    G2 = output_grad(Y_hat, target, kind)    # (N, K)
    G3 = (G2 @ W2.T) * H2 * (1 - H2)         # (N, h2) = ∂L/∂A2
    G1 = (G3 @ W3.T) * H1 * (1 - H1)         # (N, h)  = ∂L/∂A1
    return [X.T @ G1, G1.sum(dim=0),         # dW1 (d, h)，db1 (h,)
            H1.T @ G3, G3.sum(dim=0),        # dW3 (h, h2)，db3 (h2,)
            H2.T @ G2, G2.sum(dim=0)]        # dW2 (h2, K)，db2 (K,)


for kind, target in [("ce", t), ("mse", T)]:
    H1, H2, Y_hat = forward3(X, params3)
    auto = torch.autograd.grad(loss_fn(Y_hat, target, kind), params3)
    manual = manual_backward3(X, H1, H2, Y_hat, target, params3[2], params3[4], kind)
    errs = [rel_err(m, a) for m, a in zip(manual, auto)]
    print(f"三层，{kind.upper():>3}：" + "，".join(f"{n} {tuple(m.shape)}" for n, m in zip(names3, manual))
          + f"；最大相对误差 < 1e-10：{max(errs) < 1e-10}")
    assert all(m.shape == p.shape for m, p in zip(manual, params3)) and max(errs) < 1e-10
# --8<-- [end:ex3]

# --8<-- [start:ex4]
# 容差 ±0.01：参数的相对误差是舍入误差，末位随计算路径（CPU 指令集、GPU）而变；断言只要求它在 0.1 到 1000 个机器精度之间
digits = load_digits()                                         # 与正文 train 一节相同的数据、划分与初值
Xd = torch.tensor(digits.data / 16.0, dtype=f64)
yd = torch.tensor(digits.target)
perm = torch.randperm(len(yd), generator=gen)
tr, te = perm[:1437], perm[1437:]
init = [torch.randn(64, 32, generator=gen, dtype=f64) / 64 ** 0.5, torch.zeros(32, dtype=f64),
        torch.randn(32, 10, generator=gen, dtype=f64) / 32 ** 0.5, torch.zeros(10, dtype=f64)]


def train(dtype: torch.dtype, steps: int = 200, lr: float = 1.5):
    """正文的训练循环，数据与参数换成 dtype；返回最终损失、测试准确率、两份参数的相对误差。"""
    X_tr, y_tr = Xd[tr].to(device, dtype), yd[tr].to(device)
    X_te, y_te = Xd[te].to(device, dtype), yd[te].to(device)
    p_manual = [p.to(device, dtype).clone().requires_grad_() for p in init]   # clone：不改动 init
    p_auto = [p.detach().clone().requires_grad_() for p in p_manual]
    opt = torch.optim.SGD(p_auto, lr=lr)
    for _ in range(steps):
        H, Y_hat = forward(X_tr, p_manual)
        grads = manual_backward(X_tr, H, Y_hat, y_tr, p_manual[2], "ce")
        with torch.no_grad():
            for p, g in zip(p_manual, grads):
                p -= lr * g
        opt.zero_grad()
        loss_fn(forward(X_tr, p_auto)[1], y_tr, "ce").backward()
        opt.step()
    with torch.no_grad():
        loss = loss_fn(forward(X_tr, p_manual)[1], y_tr, "ce").item()
        acc = (forward(X_te, p_manual)[1].argmax(dim=1) == y_te).double().mean().item()
    return loss, acc, max(rel_err(a, b) for a, b in zip(p_manual, p_auto))


results = {}
for dtype in [f64, torch.float32]:
    results[dtype] = loss, acc, drift = train(dtype)
    eps_dt = torch.finfo(dtype).eps
    print(f"{str(dtype):<13}：200 步后训练损失 {loss:.4f}，测试准确率 {acc:.3f}；手推与 autograd 的参数"
          f"相对误差 {drift:.1e}（机器精度 {eps_dt:.1e}）")
    assert 0.1 < drift / eps_dt < 1000                           # 两种精度下都只是舍入误差
(loss64, acc64, drift64), (loss32, acc32, drift32) = results[f64], results[torch.float32]
assert drift64 < 1e-10 < drift32                                 # float32 不再小于 1e-10
assert abs(loss32 - loss64) < 1e-3 and abs(acc32 - acc64) <= 1 / 360   # 训练结果几乎不变
# --8<-- [end:ex4]
