# --8<-- [start:imports]
import math

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
X_xor = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=device)
y_xor = torch.tensor([0.0, 1.0, 1.0, 0.0], device=device)


def train_xor(seed: int, hidden: int = 8, steps: int = 100, act: type = nn.Tanh) -> nn.Module:
    """与正文 xor-train 一节相同，只多了一个参数 act：隐藏层用哪种激活。"""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, hidden), act(), nn.Linear(hidden, 1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        loss = loss_fn(model(X_xor).squeeze(1), y_xor)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 容差 ±0.5：概率都停在 0.5 附近，准确率取决于 1e-3 量级的舍入噪声落在 0.5 的哪一侧
for seed in range(5):
    model = train_xor(seed, act=nn.Identity)
    with torch.no_grad():
        prob = torch.sigmoid(model(X_xor).squeeze(1))
        W_eff = model[2].weight @ model[0].weight                   # (1, 2)：两层合成一个线性层
        b_eff = model[2].weight @ model[0].bias + model[2].bias      # (1,)
        gap = (model(X_xor) - (X_xor @ W_eff.T + b_eff)).abs().max().item()
        loss = nn.functional.binary_cross_entropy(prob, y_xor).item()
    acc = ((prob > 0.5).float() == y_xor).float().mean().item()
    print(f"seed {seed}：概率 {[round(p, 3) for p in prob.tolist()]}，损失 {loss:.4f}，准确率 {acc:.2f}，"
          f"与合成的单层之差 <= 1e-5：{gap <= 1e-5}")
    assert gap <= 1e-5 and acc <= 0.75                    # 等价于一层线性模型：最多分对 3 个点
    assert ((prob - 0.5).abs() < 0.01).all()              # 概率都停在 0.5 附近
    assert abs(loss - math.log(2)) < 1e-3                 # 损失停在 ln 2：线性模型在异或上的最优值
# --8<-- [end:ex1]

# --8<-- [start:ex2]
failed = []
for seed in range(20):
    model = train_xor(seed, hidden=2)
    with torch.no_grad():
        prob = torch.sigmoid(model(X_xor).squeeze(1))
    if not ((prob > 0.5).float() == y_xor).all():
        failed.append((seed, [round(p, 3) for p in prob.tolist()]))
print(f"hidden = 2，种子 0 到 19：{len(failed)} 个种子没有分对全部 4 个点")
for seed, prob in failed:
    print(f"  seed {seed}：概率 {prob}")
assert 0 < len(failed) < 20

tanh_net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)).to(device)   # 2 个 tanh 单元也能算出异或
with torch.no_grad():
    tanh_net[0].weight.fill_(10.0)                                   # h1 = tanh(10(x1 + x2 - 0.5))
    tanh_net[0].bias.copy_(torch.tensor([-5.0, -15.0]))              # h2 = tanh(10(x1 + x2 - 1.5))
    tanh_net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))            # z = h1 - h2 - 1
    tanh_net[2].bias.fill_(-1.0)
    z_tanh = tanh_net(X_xor).squeeze(1)
print(f"手工的 2 单元 tanh 网络：z = {[round(v, 3) for v in z_tanh.tolist()]}")
assert torch.equal((z_tanh > 0).float(), y_xor)

model = train_xor(1, hidden=2, steps=1000)                  # 失败的 seed 1 再多训练 900 步
with torch.no_grad():
    h = torch.tanh(model[0](X_xor))                         # 4 个点的隐藏表示 (4, 2)
    prob = torch.sigmoid(model(X_xor).squeeze(1))
print(f"seed 1 训练 1000 步：概率 {[round(p, 3) for p in prob.tolist()]}")
print(f"  (1,0) 与 (1,1) 的隐藏表示 {[round(v, 3) for v in h[2].tolist()]}、{[round(v, 3) for v in h[3].tolist()]}")
assert (h[2] - h[3]).abs().max() < 1e-2 and (prob[2:] - 0.5).abs().max() < 0.01   # 两点被合并，只能输出 0.5
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X_all, y_all = load_digits(return_X_y=True)                 # 与正文 digits-data 一节相同
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device)
X_te = torch.tensor((X_te - mu) / sigma, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)


def train_digits(sizes: list[int]) -> tuple[int, float, float]:
    """与正文 digits-model、digits-train 两节相同的模型与训练；返回参数量、训练与测试准确率。"""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(d_in, d_out), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    shuffle_gen = torch.Generator().manual_seed(0)
    for epoch in range(10):
        net.train()
        perm = torch.randperm(len(y_tr), generator=shuffle_gen).to(device)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = loss_fn(net(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accs = [(net(X).argmax(dim=1) == y).float().mean().item() for X, y in [(X_tr, y_tr), (X_te, y_te)]]
    return sum(p.numel() for p in net.parameters()), accs[0], accs[1]


results = {}
print("sizes              | 参数量 | 训练准确率 | 测试准确率")
for sizes in [[64, 10], [64, 32, 10], [64, 256, 64, 10]]:
    results[len(sizes)] = n_params, train_acc, test_acc = train_digits(sizes)
    print(f"{str(sizes):18} | {n_params:6d} | {train_acc:10.3f} | {test_acc:10.3f}")
assert results[2][0] == 64 * 10 + 10 and results[3][0] == (64 * 32 + 32) + (32 * 10 + 10)
assert results[4][2] >= 0.96                                    # 正文的模型：与正文相同的 0.975
assert results[2][2] < results[3][2] < results[4][2]            # 参数越多，测试准确率越高
assert results[2][1] < results[3][1] < results[4][1]            # 训练准确率也是：线性模型连训练集都没拟合好
# --8<-- [end:ex3]

# --8<-- [start:ex4]
def relu_interpolant(f, a: float, b: float, m: int) -> nn.Module:
    """与正文 approx 一节相同：1-m-1 的 ReLU 网络，等于 f 在 m+1 个等距节点上的折线插值。"""
    t = torch.linspace(a, b, m + 1, dtype=torch.float64)
    slopes = (f(t[1:]) - f(t[:-1])) / (t[1:] - t[:-1])
    net = nn.Sequential(nn.Linear(1, m), nn.ReLU(), nn.Linear(m, 1)).double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(-t[:-1])
        net[2].weight.copy_(torch.cat([slopes[:1], slopes.diff()])[None])
        net[2].bias.fill_(f(t[:1]).item())
    return net.to(device)


def f10(t):
    return torch.sin(10 * t)                                    # f'' = -100 sin(10 t)，max|f''| = 100


xs = torch.linspace(-math.pi, math.pi, 2001, dtype=torch.float64, device=device)[:, None]
print(" 宽度 m | sin x 的误差 | sin 10x 的误差 | sin 10x 的上界 (2π/m)^2/8 × 100")
for width in [16, 64, 256]:
    with torch.no_grad():
        err1 = (relu_interpolant(torch.sin, -math.pi, math.pi, width)(xs) - torch.sin(xs)).abs().max().item()
        err10 = (relu_interpolant(f10, -math.pi, math.pi, width)(xs) - f10(xs)).abs().max().item()
    bound10 = (2 * math.pi / width) ** 2 / 8 * 100               # Δ^2/8 × max|f''|
    print(f" {width:6d} | {err1:12.2e} | {err10:14.2e} | {bound10:.2e}")
    assert err10 <= bound10 and err10 > 50 * err1                # 上界成立；同样宽度下误差大得多
# --8<-- [end:ex4]
