# --8<-- [start:imports]
from fractions import Fraction

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2).double().to(device)   # 原论文的 conv2
x = torch.randn(2, 96, 13, 13, dtype=torch.float64, device=device)
W, b = conv2.weight, conv2.bias                          # W: (256, 48, 5, 5)，每个核只看 48 个输入通道
gpu1 = F.conv2d(x[:, :48], W[:128], b[:128], padding=2)   # 第 1 块 GPU：前 48 个输入通道 -> 前 128 个输出通道
gpu2 = F.conv2d(x[:, 48:], W[128:], b[128:], padding=2)   # 第 2 块 GPU：后 48 个 -> 后 128 个
err = (torch.cat([gpu1, gpu2], dim=1) - conv2(x)).abs().max().item()
print(f"groups=2 与两块 GPU 各算一半再拼接：最大误差 {err:.1e}")
assert err <= 1e-10

with torch.device("meta"):
    grouped = nn.Conv2d(96, 256, 5, padding=2, groups=2)
    full = nn.Conv2d(96, 256, 5, padding=2)
n_grouped, n_full = (sum(p.numel() for p in m.parameters()) for m in (grouped, full))
print(f"conv2 参数：groups=2 {n_grouped}，groups=1 {n_full}")
assert n_grouped == 256 * 48 * 25 + 256 and n_full == 256 * 96 * 25 + 256

extra = (256 * 48 * 25) + (384 * 192 * 9) + (256 * 192 * 9)   # conv2、conv4、conv5 的权重各多出一倍
print(f"三层都不分组：参数多 {extra}，共 {60965224 + extra}")
assert 60965224 + extra == 62378344
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def out_size(h: int, f: int, p: int = 0, s: int = 1) -> Fraction:
    return Fraction(h + 2 * p - f, s) + 1


hits = []
for p in range(4):
    for h in range(215, 236):
        o = out_size(h, f=11, p=p, s=4)
        if int(o) == 55:                                     # PyTorch 向下取整后为 55
            hits.append((p, h, o.denominator == 1))        # 分母为 1：窗口恰好铺满填充后的输入
for p in range(4):
    hs = [h for q, h, _ in hits if q == p]
    exact = [h for q, h, ok in hits if q == p and ok]
    print(f"填充 {p}：输入 {hs[0]}..{hs[-1]} 都得到 55，其中恰好铺满的是 {exact}")
    assert len(hs) == 4 and exact == [227 - 2 * p]
assert (2, 224, False) in hits                               # torchvision：224 配填充 2，得到 55，但没有恰好铺满
used = 4 * (55 - 1) + 11                                     # 55 个窗口覆盖填充后的前 used 行（第 0..used-1 行）
print(f"224 加填充 2：填充后共 {224 + 4} 行，窗口用到前 {used} 行，真实像素是第 2..{2 + 224 - 1} 行")
assert used == 227 and 2 + 224 <= used                       # 没用上的只有最后 1 行填充
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X_all, y_all = load_digits(return_X_y=True)                  # 与正文相同的数据、模型与训练函数
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device).reshape(-1, 1, 8, 8)
y_tr = torch.tensor(y_tr, device=device)


def small_cnn(act: type[nn.Module], seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), act(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 32), act(), nn.Linear(32, 10))
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net.to(device)


def train_errors(net: nn.Module, seed: int, epochs: int, lr: float = 0.01) -> list[float]:
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    errors = []
    for _ in range(epochs):
        perm = torch.randperm(len(y_tr), generator=gen).to(device)
        wrong = 0
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            logits = net(X_tr[idx])
            loss = F.cross_entropy(logits, y_tr[idx])
            wrong += (logits.argmax(dim=1) != y_tr[idx]).sum().item()
            opt.zero_grad()
            loss.backward()
            opt.step()
        errors.append(wrong / len(y_tr))
    return errors


SEEDS, EPOCHS = [0, 1, 2], 12
last = {}
print("种子 | 第 12 轮的训练错误率（lr = 0.03）：ReLU | tanh")
for seed in SEEDS:
    for name, act in [("ReLU", nn.ReLU), ("tanh", nn.Tanh)]:
        last[name, seed] = train_errors(small_cnn(act, seed), seed, EPOCHS, lr=0.03)[-1]
    print(f"  {seed}  | {last['ReLU', seed]:.3f} | {last['tanh', seed]:.3f}")
mean = {name: sum(last[name, s] for s in SEEDS) / len(SEEDS) for name in ("ReLU", "tanh")}
print(f"平均：ReLU {mean['ReLU']:.3f}，tanh {mean['tanh']:.3f}")
assert all(abs(last["ReLU", s] - last["tanh", s]) < 0.02 for s in SEEDS)   # 每个种子差距都小于 0.02
assert any(last["tanh", s] < last["ReLU", s] for s in SEEDS)              # 也有 tanh 更低的种子
assert all(last[key] < 0.05 for key in last)                              # 6 次训练都低于 0.05
assert mean["ReLU"] < 0.060 and mean["tanh"] < 0.109                      # 都低于正文 lr = 0.01 时的平均值
# --8<-- [end:ex3]
