# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 数据在 CPU 上生成再搬到 device
# --8<-- [end:setup]

# --8<-- [start:forward]
d0, d1, d2 = 2, 8, 1                                  # 输入维度、隐藏层宽度、输出维度
mlp = nn.Sequential(nn.Linear(d0, d1), nn.ReLU(), nn.Linear(d1, d2)).to(device)
X = torch.randn(5, d0, generator=gen).to(device)      # 一个小批量：n = 5 个样本，形状 (n, d0)

W1, b1 = mlp[0].weight, mlp[0].bias                   # W1: (d1, d0)，b1: (d1,)
W2, b2 = mlp[2].weight, mlp[2].bias                   # W2: (d2, d1)，b2: (d2,)
H = torch.relu(X @ W1.T + b1)                         # 隐藏层输出 H: (n, d1)
Y_hat = H @ W2.T + b2                                 # 输出 Y_hat: (n, d2)
print(f"W1 {tuple(W1.shape)}，b1 {tuple(b1.shape)}，W2 {tuple(W2.shape)}，b2 {tuple(b2.shape)}")
print(f"X {tuple(X.shape)} -> H {tuple(H.shape)} -> Y_hat {tuple(Y_hat.shape)}")
assert torch.allclose(Y_hat, mlp(X), atol=1e-6)       # 手写前向 == nn.Sequential
# --8<-- [end:forward]

# --8<-- [start:xor-hand]
X_xor = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=device)
y_xor = torch.tensor([0.0, 1.0, 1.0, 0.0], device=device)     # 异或
hand = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).to(device)
with torch.no_grad():
    hand[0].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))   # h1 = ReLU(x1 + x2)
    hand[0].bias.copy_(torch.tensor([0.0, -1.0]))                 # h2 = ReLU(x1 + x2 - 1)
    hand[2].weight.copy_(torch.tensor([[1.0, -2.0]]))             # y = h1 - 2 h2
    hand[2].bias.zero_()
    hidden = hand[1](hand[0](X_xor))
    out = hand(X_xor).squeeze(1)
print("x1 x2 | h1 h2 | y")
for (x1, x2), (h1, h2), o in zip(X_xor.int().tolist(), hidden.tolist(), out.tolist()):
    print(f" {x1}  {x2} | {h1:.0f}  {h2:.0f}  | {o:.0f}")
assert torch.equal(out, y_xor)                                 # 恰好算出异或
# --8<-- [end:xor-hand]


# --8<-- [start:xor-train]
def train_xor(seed: int, hidden: int = 8, steps: int = 100) -> nn.Module:
    """用 Adam 在 4 个异或点上全批量训练一个 2-hidden-1 的 MLP（输出为 logit）。"""
    torch.manual_seed(seed)                      # 不同种子 -> 不同的初始权重
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)   # Adam 优化器，见 2.8 节
    loss_fn = nn.BCEWithLogitsLoss()             # 二分类损失，见 2.6 节
    for _ in range(steps):
        loss = loss_fn(model(X_xor).squeeze(1), y_xor)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


xor_models = []
for seed in range(5):
    model = train_xor(seed)
    with torch.no_grad():
        prob = torch.sigmoid(model(X_xor).squeeze(1))           # 预测为正类的概率
    acc = ((prob > 0.5).float() == y_xor).float().mean().item()
    xor_models.append(model)
    print(f"seed {seed}：概率 {[round(p, 3) for p in prob.tolist()]}，准确率 {acc:.2f}")
    assert acc == 1.0                                            # 每个种子都把 4 个点全部分对
    assert ((prob - y_xor).abs() < 0.01).all()                   # 而且概率离标签不到 0.01
    shown = torch.tensor([round(p, 3) for p in prob.tolist()])   # 打印出的 3 位小数
    assert (shown[y_xor.cpu() == 1] >= 0.999).all() and (shown[y_xor.cpu() == 0] <= 0.002).all()
# --8<-- [end:xor-train]

# --8<-- [start:figure]
g = torch.linspace(-0.5, 1.5, 201)
gx, gy = torch.meshgrid(g, g, indexing="xy")
grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)   # (201*201, 2)
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9), sharey=True)
for seed, (ax, model) in enumerate(zip(axes, xor_models)):
    with torch.no_grad():
        p = torch.sigmoid(model(grid)).reshape(gx.shape).cpu()
    ax.contourf(gx, gy, p, levels=[0, 0.5, 1], colors=["#f4c7c3", "#c6dbef"])
    ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1)
    pts, lab = X_xor.cpu(), y_xor.cpu()
    ax.scatter(*pts[lab == 1].T, marker="o", color="C0", s=50, zorder=3)
    ax.scatter(*pts[lab == 0].T, marker="x", color="C3", s=50, zorder=3)
    ax.set(title=f"seed {seed}", xlabel="$x_1$", aspect="equal")
axes[0].set_ylabel("$x_2$")
fig.suptitle("MLP 学到的异或决策区域（蓝：预测为 1，红：预测为 0）", y=1.02)
fig.savefig("mlp_xor.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:approx]
def relu_interpolant(f, a: float, b: float, m: int) -> nn.Module:
    """构造 1-m-1 的 ReLU 网络，恰好等于 f 在 m+1 个等距节点上的折线插值（不用训练）。"""
    t = torch.linspace(a, b, m + 1, dtype=torch.float64)     # 节点 t_0 < ... < t_m
    slopes = (f(t[1:]) - f(t[:-1])) / (t[1:] - t[:-1])        # 每段折线的斜率
    net = nn.Sequential(nn.Linear(1, m), nn.ReLU(), nn.Linear(m, 1)).double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(-t[:-1])                            # 第 j 个单元：ReLU(x - t_j)
        net[2].weight.copy_(torch.cat([slopes[:1], slopes.diff()])[None])  # 在 t_j 处改变斜率
        net[2].bias.fill_(f(t[:1]).item())
    return net.to(device)


xs = torch.linspace(-math.pi, math.pi, 2001, dtype=torch.float64, device=device)[:, None]
print(" 宽度 m | 最大误差 | 误差上界 (2π/m)^2/8")
prev = float("inf")
for width in [4, 16, 64, 256]:
    net = relu_interpolant(torch.sin, -math.pi, math.pi, width)
    with torch.no_grad():
        err = (net(xs) - torch.sin(xs)).abs().max().item()
    bound = (2 * math.pi / width) ** 2 / 8                     # 折线插值误差 <= h^2 max|f''| / 8
    print(f" {width:6d} | {err:.2e} | {bound:.2e}")
    assert err <= bound and err < prev                         # 越宽越准，且不超过理论上界
    prev = err
# --8<-- [end:approx]

# --8<-- [start:digits-data]
X_all, y_all = load_digits(return_X_y=True)                   # (1797, 64)，像素为 0..16 的整数
X_tr, X_te, y_tr, y_te = train_test_split(
    X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)   # 分层划分
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)               # 只用训练集估计
sigma[sigma == 0] = 1.0                                       # 恒为 0 的像素不缩放
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device)
X_te = torch.tensor((X_te - mu) / sigma, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)
print(f"训练集 {tuple(X_tr.shape)}，测试集 {tuple(X_te.shape)}")
# --8<-- [end:digits-data]

# --8<-- [start:digits-model]
torch.manual_seed(0)                                          # 固定初始权重
sizes = [64, 256, 64, 10]                                     # 输入 64 维，两个隐藏层，10 类
layers: list[nn.Module] = []
for d_in, d_out in zip(sizes[:-1], sizes[1:]):
    layers += [nn.Linear(d_in, d_out), nn.ReLU()]
net = nn.Sequential(*layers[:-1]).to(device)                  # 最后一层后不加激活：输出 10 个 logit
print(net)

n_formula = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
n_torch = sum(p.numel() for p in net.parameters())
print(f"按公式：{n_formula}，sum(p.numel())：{n_torch}")
assert n_formula == n_torch == (64 * 256 + 256) + (256 * 64 + 64) + (64 * 10 + 10)
# --8<-- [end:digits-model]


# --8<-- [start:digits-train]
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(X).argmax(dim=1) == y).float().mean().item()


opt = torch.optim.Adam(net.parameters(), lr=2e-3)
loss_fn = nn.CrossEntropyLoss()                              # 多分类交叉熵，见 2.6 节
batch_size, epochs = 64, 10
shuffle_gen = torch.Generator().manual_seed(0)
for epoch in range(epochs):
    net.train()
    perm = torch.randperm(len(y_tr), generator=shuffle_gen).to(device)   # 每轮重新打乱
    for i in range(0, len(perm), batch_size):
        idx = perm[i:i + batch_size]
        loss = loss_fn(net(X_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if (epoch + 1) % 2 == 0:
        train_acc, test_acc = accuracy(net, X_tr, y_tr), accuracy(net, X_te, y_te)
        print(f"第 {epoch + 1:2d} 轮：训练准确率 {train_acc:.3f}，测试准确率 {test_acc:.3f}")
print(f"最终测试准确率：{test_acc:.3f}")
assert test_acc >= 0.96
assert train_acc == 1.0 and test_acc < train_acc   # 训练集全对，测试集没有：泛化差距
# --8<-- [end:digits-train]
