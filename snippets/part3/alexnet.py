# --8<-- [start:setup]
from fractions import Fraction

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:size]
def out_size(h: int, f: int, p: int = 0, s: int = 1) -> Fraction:
    """卷积或池化的输出边长 (h + 2p - f)/s + 1，用分数精确计算、不取整。"""
    return Fraction(h + 2 * p - f, s) + 1


w1 = torch.empty(96, 3, 11, 11, device="meta")            # conv1：96 个 11×11×3 的卷积核
for h in (224, 227):
    exact = out_size(h, f=11, s=4)
    meta_out = F.conv2d(torch.empty(1, 3, h, h, device="meta"), w1, stride=4)
    real_out = F.conv2d(torch.randn(1, 3, h, h, device=device), torch.randn(96, 3, 11, 11, device=device), stride=4)
    print(f"输入 {h}×{h}：(h - 11)/4 + 1 = {float(exact)}，F.conv2d 输出 {tuple(meta_out.shape)}")
    assert meta_out.shape == real_out.shape == (1, 96, int(exact), int(exact))   # PyTorch 向下取整
assert out_size(224, 11, s=4) == Fraction(217, 4) and out_size(227, 11, s=4) == 55
used = 4 * (54 - 1) + 11                                   # 224 时 54 个窗口覆盖到的边长
print(f"224 输入：54 个窗口只覆盖前 {used} 行（列），最后 {224 - used} 行（列）没有被任何窗口用到")
tv = out_size(224, f=11, p=2, s=4)                         # torchvision 的写法：224 输入、填充 2
print(f"224 输入、填充 2：(224 + 4 - 11)/4 + 1 = {float(tv)}，向下取整为 {int(tv)}")
assert int(tv) == 55
# --8<-- [end:size]


# --8<-- [start:arch]
def alexnet_2012(num_classes: int = 1000) -> nn.Sequential:
    """原论文的 AlexNet（两块 GPU）：conv2、conv4、conv5 只连本 GPU 的一半通道，即 groups=2。"""
    lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)       # 论文的 n=5, α=1e-4, β=0.75, k=2（α 的写法见 LRN 一节）
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),  # conv1
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),                          # conv3：跨 GPU 全连接
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),                # conv4
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),   # conv5
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(0.5),               # fc6，输出上用丢弃法
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),                      # fc7，输出上用丢弃法
        nn.Linear(4096, num_classes),                                           # fc8
    )


def alexnet_1tower(num_classes: int = 1000) -> nn.Sequential:
    """单塔变体（torchvision 的 AlexNet）：不分组，通道 64-192-384-256-256，无 LRN，224 输入、conv1 填充 2。"""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),               # torchvision 把丢弃法放在 fc6、fc7 之前
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, num_classes),
    )


def layer_shapes(model: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple]]:
    """把 x 逐层送过 model，记下每个卷积、池化、全连接层的输出形状（去掉批量维）。"""
    shapes, n = [], {"Conv2d": 0, "MaxPool2d": 0, "Linear": 0}
    for layer in model:
        x = layer(x)
        kind = type(layer).__name__
        if kind in n:
            n[kind] += 1
            shapes.append((f"{kind}-{n[kind]}", tuple(x.shape[1:])))
    return shapes


with torch.device("meta"):                                 # 只建结构，不分配内存
    paper, tower = alexnet_2012(), alexnet_1tower()
shapes = layer_shapes(paper, torch.empty(1, 3, 227, 227, device="meta"))
for name, shape in shapes:
    print(f"{name:12s} {shape}")
assert [s for _, s in shapes] == [
    (96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13), (256, 13, 13),
    (256, 6, 6), (4096,), (4096,), (1000,)]
assert layer_shapes(tower, torch.empty(1, 3, 224, 224, device="meta"))[-4][1] == (256, 6, 6)   # 单塔：224 也得到 6×6

conv_fc = [shape for name, shape in shapes if not name.startswith("MaxPool")]   # 5 个卷积层与 3 个全连接层
neurons = [torch.Size(shape).numel() for shape in conv_fc]
paper_neurons = [253440, 186624, 64896, 64896, 43264, 4096, 4096, 1000]          # 论文第 3 节给出的各层神经元数
print("各层神经元数：", neurons)
assert neurons[1:] == paper_neurons[1:] and neurons[0] == 55 * 55 * 96 != paper_neurons[0]
# --8<-- [end:arch]

# --8<-- [start:mismatch]
try:
    paper(torch.empty(1, 3, 224, 224, device="meta"))       # 原论文的结构（无填充）直接喂 224×224
    raise AssertionError("不应该走到这里")
except RuntimeError as err:
    print("224 输入：", str(err).split(",")[0])
pool5 = layer_shapes(paper[:16], torch.empty(1, 3, 224, 224, device="meta"))[-1][1]
print(f"pool5 输出 {pool5}，展平后 {256 * pool5[1] * pool5[2]} 维，而 fc6 需要 {256 * 6 * 6} 维")
assert pool5 == (256, 5, 5)
# --8<-- [end:mismatch]

# --8<-- [start:count]
# 独立的逐层清单：(名字, 输入通道/维数, 输出通道/维数, 卷积核边长（全连接为 None）, groups, 输出边长)
SPEC_2012 = [("conv1", 3, 96, 11, 1, 55), ("conv2", 96, 256, 5, 2, 27), ("conv3", 256, 384, 3, 1, 13),
             ("conv4", 384, 384, 3, 2, 13), ("conv5", 384, 256, 3, 2, 13),
             ("fc6", 9216, 4096, None, 1, 1), ("fc7", 4096, 4096, None, 1, 1), ("fc8", 4096, 1000, None, 1, 1)]
SPEC_1TOWER = [("conv1", 3, 64, 11, 1, 55), ("conv2", 64, 192, 5, 1, 27), ("conv3", 192, 384, 3, 1, 13),
               ("conv4", 384, 256, 3, 1, 13), ("conv5", 256, 256, 3, 1, 13),
               ("fc6", 9216, 4096, None, 1, 1), ("fc7", 4096, 4096, None, 1, 1), ("fc8", 4096, 1000, None, 1, 1)]


def params_formula(c_in: int, c_out: int, k: int | None, groups: int) -> int:
    """卷积：c_out 个 (c_in/groups)×k×k 的核加 c_out 个偏置；全连接：c_in×c_out 个权重加 c_out 个偏置。"""
    return c_out * (c_in // groups) * (k or 1) ** 2 + c_out


def macs_formula(c_in: int, c_out: int, k: int | None, groups: int, side: int) -> int:
    """乘加次数：每个输出元素要做 (c_in/groups)·k² 次乘加。"""
    return c_out * side * side * (c_in // groups) * (k or 1) ** 2


for label, model, spec in [("原论文（两块 GPU）", paper, SPEC_2012), ("单塔（torchvision）", tower, SPEC_1TOWER)]:
    layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    print(f"{label}：")
    for (name, c_in, c_out, k, g, side), layer in zip(spec, layers):
        n = params_formula(c_in, c_out, k, g)
        assert n == sum(p.numel() for p in layer.parameters())        # 逐层：公式 == 实际张量
        print(f"  {name:5s} 参数 {n:9d}  乘加 {macs_formula(c_in, c_out, k, g, side):11d}")
    total = sum(params_formula(c_in, c_out, k, g) for _, c_in, c_out, k, g, _ in spec)
    fc = sum(params_formula(c_in, c_out, k, g) for name, c_in, c_out, k, g, _ in spec if name.startswith("fc"))
    macs = [macs_formula(*row[1:]) for row in spec]
    print(f"  合计 {total} 个参数（sum(p.numel()) = {sum(p.numel() for p in model.parameters())}），"
          f"{sum(macs)} 次乘加；全连接层占参数的 {fc / total:.3f}，卷积层占乘加的 {sum(macs[:5]) / sum(macs):.3f}")
    assert total == sum(p.numel() for p in model.parameters())
conv_2012 = sum(params_formula(c_in, c_out, k, g) for _, c_in, c_out, k, g, _ in SPEC_2012[:5])
print(f"原论文版本：fc6 的参数是 5 个卷积层合计（{conv_2012}）的 {params_formula(9216, 4096, None, 1) / conv_2012:.1f} 倍")
assert params_formula(9216, 4096, None, 1) > 10 * conv_2012
assert sum(p.numel() for p in paper.parameters()) == 60_965_224
assert sum(p.numel() for p in tower.parameters()) == 61_100_840
# --8<-- [end:count]


# --8<-- [start:lrn]
def lrn(a: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> torch.Tensor:
    """论文的局部响应归一化：b_i = a_i / (k + α Σ_j a_j²)^β，j 取通道 i 前后共 n 个通道（越界的不算）。
    a 的形状为 (N, C, H, W)。α 是论文的写法：直接乘平方和，不除以 n。"""
    C = a.shape[1]
    b = torch.empty_like(a)
    for i in range(C):
        lo, hi = max(0, i - n // 2), min(C - 1, i + (n - 1) // 2)   # n 为奇数时即 i ± n/2
        s = a[:, lo:hi + 1].pow(2).sum(dim=1)                       # (N, H, W)
        b[:, i] = a[:, i] / (k + alpha * s) ** beta
    return b


a = 20 * torch.randn(2, 16, 5, 5, dtype=torch.float64, device=device).relu()   # ReLU 之后的非负激活
ours = lrn(a)                                                                  # 论文常数：n=5, α=1e-4, β=0.75, k=2
right = nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75, k=2.0)(a)           # PyTorch 用 α/n：要传 n·α
wrong = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a)                # 直接传论文的 α
err_right, err_wrong = (ours - right).abs().max().item(), (ours - wrong).abs().max().item()
print(f"alpha=5e-4：与手写公式的最大误差 {err_right:.1e}")
print(f"alpha=1e-4：与手写公式的最大误差 {err_wrong:.1e}（相当于论文的 α = 2e-5）")
assert err_right <= 1e-10 and err_wrong > 1e-2

spike = torch.ones(1, 9, 1, 1, dtype=torch.float64, device=device)
spike[0, 4] = 100.0                                         # 第 4 个通道响应特别强
b = lrn(spike)[0, :, 0, 0]
base = lrn(torch.ones_like(spike))[0, :, 0, 0]              # 没有强响应时的输出
print("各通道都为 1 时的输出：    ", [round(v, 3) for v in base.tolist()])
print("第 4 个通道为 100 时的输出：", [round(v, 3) for v in b.tolist()])
assert (b[2:4] < base[2:4] - 0.1).all() and (b[5:7] < base[5:7] - 0.1).all()   # 前后各 2 个通道被「侧抑制」
assert torch.equal(b[[0, 1, 7, 8]], base[[0, 1, 7, 8]])     # 窗口之外的通道完全不受影响
# --8<-- [end:lrn]

# --8<-- [start:digits]
X_all, y_all = load_digits(return_X_y=True)                 # 1797 张 8×8 灰度图，像素 0..16
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0                                     # 恒为 0 的像素不缩放
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device).reshape(-1, 1, 8, 8)
y_tr = torch.tensor(y_tr, device=device)
print(f"训练集 {tuple(X_tr.shape)}（用训练集的均值和标准差标准化）")


def small_cnn(act: type[nn.Module], seed: int) -> nn.Sequential:
    """两层卷积的小 CNN；act 是唯一的变量。权重按 He 初始化（同一种子给出同一组权重）。"""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), act(), nn.MaxPool2d(2),      # (8, 4, 4)
        nn.Conv2d(8, 16, 3, padding=1), act(), nn.MaxPool2d(2),     # (16, 2, 2)
        nn.Flatten(), nn.Linear(64, 32), act(), nn.Linear(32, 10))
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net.to(device)


def train_errors(net: nn.Module, seed: int, epochs: int, lr: float = 0.01) -> list[float]:
    """论文的优化器：SGD，动量 0.9，批量 128。返回每轮的训练错误率（该轮各小批量在更新前分错的比例）。"""
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


def epochs_to(errors: list[float], threshold: float) -> int | None:
    """训练错误率第一次不超过 threshold 的轮数（从 1 数起）；一直没达到则为 None。"""
    return next((e + 1 for e, err in enumerate(errors) if err <= threshold), None)
# --8<-- [end:digits]

# --8<-- [start:relu-tanh]
SEEDS, EPOCHS = [0, 1, 2], 12
curves = {}
for seed in SEEDS:
    relu_net, tanh_net = small_cnn(nn.ReLU, seed), small_cnn(nn.Tanh, seed)
    assert all(torch.equal(p, q) for p, q in zip(relu_net.parameters(), tanh_net.parameters()))  # 初始权重相同
    for name, net in [("ReLU", relu_net), ("tanh", tanh_net)]:
        curves[name, seed] = train_errors(net, seed, EPOCHS)
e25 = {key: epochs_to(errors, 0.25) for key, errors in curves.items()}     # 到 25%（论文的阈值）的轮数
last = {key: errors[-1] for key, errors in curves.items()}                   # 第 12 轮的训练错误率
print("种子 | 激活 | 到 25% 的轮数 | 第 12 轮的训练错误率")
for seed in SEEDS:
    for name in ("ReLU", "tanh"):
        print(f"  {seed}  | {name:4s} | {e25[name, seed]:13d} | {last[name, seed]:.3f}")
mean = lambda name, d: sum(d[name, s] for s in SEEDS) / len(SEEDS)
print(f"平均：到 25% ReLU {mean('ReLU', e25):.2f} 轮、tanh {mean('tanh', e25):.2f} 轮；"
      f"第 12 轮 ReLU {mean('ReLU', last):.3f}、tanh {mean('tanh', last):.3f}")
assert all(abs(e25["ReLU", s] - e25["tanh", s]) <= 2 for s in SEEDS)         # 到 25%：每个种子相差不超过 2 轮
assert not all(e25["ReLU", s] < e25["tanh", s] for s in SEEDS)               # ReLU 并非每个种子都更快
assert mean("tanh", e25) / mean("ReLU", e25) < 1.5                           # 远不到论文的 6 倍
assert all(last["tanh", s] - last["ReLU", s] >= 0.01 for s in SEEDS)         # 第 12 轮：ReLU 在每个种子上都更低
# --8<-- [end:relu-tanh]

# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for seed in SEEDS:
    for name, style in [("ReLU", "-"), ("tanh", "--")]:
        ax.plot(range(1, EPOCHS + 1), curves[name, seed], style, color=f"C{seed}",
                label=f"{name}，种子 {seed}")
ax.axhline(0.25, color="gray", lw=0.8)
ax.set(xlabel="轮", ylabel="训练错误率", yscale="log", title="同一个小 CNN、同一组初始权重：ReLU（实线）与 tanh（虚线）")
ax.legend(ncol=2, fontsize=8, loc="lower left")
fig.savefig("alexnet_relu_tanh.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
