# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:config]
# 论文表 1 的五种配置：整数 c 表示 c 个 3×3 卷积核（步幅 1、填充 1），(c, 1) 表示 c 个 1×1 卷积核，"M" 表示 2×2、步幅 2 的最大池化
CFGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M", 512, 512, (512, 1), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(cfg: list, in_channels: int = 3) -> nn.Sequential:
    """按配置表堆出卷积部分：卷积后接 ReLU，"M" 处做 2×2 最大池化。"""
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out, k = v if isinstance(v, tuple) else (v, 3)
            layers += [nn.Conv2d(c, out, kernel_size=k, padding=k // 2), nn.ReLU()]
            c = out
    return nn.Sequential(*layers)


def vgg(cfg: list, num_classes: int = 1000, in_channels: int = 3, side: int = 224,
        hidden: tuple = (4096, 4096), dropout: float = 0.5) -> nn.Sequential:
    """卷积部分 + 全连接部分；每个隐藏的全连接层后接 ReLU 和丢弃法。"""
    features = make_features(cfg, in_channels)
    c_last = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    d = c_last * (side // 2 ** cfg.count("M")) ** 2          # 展平后的维数：224 经 5 次减半为 7
    layers: list[nn.Module] = [features, nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, num_classes))
# --8<-- [end:config]


# --8<-- [start:shapes]
with torch.device("meta"):                                 # 只建结构，不分配内存
    vgg16 = vgg(CFGS["D"])
convs = [m for m in vgg16.modules() if isinstance(m, nn.Conv2d)]
pools = [m for m in vgg16.modules() if isinstance(m, nn.MaxPool2d)]
fcs = [m for m in vgg16.modules() if isinstance(m, nn.Linear)]
print(f"卷积层 {len(convs)} 个，全连接层 {len(fcs)} 个，最大池化层 {len(pools)} 个")
assert (len(convs), len(fcs), len(pools)) == (13, 3, 5) and len(convs) + len(fcs) == 16   # 16 个带权重的层

x = torch.empty(1, 3, 224, 224, device="meta")
stage_shapes = []
for layer in vgg16[0]:                                     # vgg16[0] 是卷积部分
    x = layer(x)
    if isinstance(layer, nn.MaxPool2d):                    # 每段以一次池化结束
        stage_shapes.append(tuple(x.shape[1:]))
        print(f"第 {len(stage_shapes)} 段之后：{stage_shapes[-1]}")
for layer in vgg16[1:]:
    x = layer(x)
print(f"输出：{tuple(x.shape)}")
assert stage_shapes == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
assert x.shape == (1, 1000)
# --8<-- [end:shapes]


# --8<-- [start:count]
def count_formula(cfg: list, in_channels: int = 3, side: int = 224,
                  hidden: tuple = (4096, 4096), num_classes: int = 1000) -> int:
    """只用配置表逐层累加：卷积 c_out·c_in·k² + c_out，全连接 d_in·d_out + d_out。"""
    n, c = 0, in_channels
    for v in cfg:
        if v == "M":
            continue
        out, k = v if isinstance(v, tuple) else (v, 3)
        n += out * c * k * k + out
        c = out
    d = c * (side // 2 ** cfg.count("M")) ** 2
    for h in (*hidden, num_classes):
        n += d * h + h
        d = h
    return n


PAPER_MILLIONS = {"A": 133, "B": 133, "C": 134, "D": 138, "E": 144}   # 论文表 2（单位：百万）
print("配置 | 带权重的层 | 参数量（公式） | sum(p.numel()) | 论文表 2")
for name, cfg in CFGS.items():
    with torch.device("meta"):
        model = vgg(cfg)
    n_formula, n_torch = count_formula(cfg), sum(p.numel() for p in model.parameters())
    depth = sum(v != "M" for v in cfg) + 3
    print(f"  {name}  | {depth:10d} | {n_formula:14d} | {n_torch:14d} | {PAPER_MILLIONS[name]} M")
    assert n_formula == n_torch and round(n_formula / 1e6) == PAPER_MILLIONS[name]
assert count_formula(CFGS["D"]) == 138357544
fc_share = sum(p.numel() for m in fcs for p in m.parameters()) / 138357544
print(f"VGG-16 的全连接层占参数的 {fc_share:.3f}")
# --8<-- [end:count]


# --8<-- [start:heavy]
def macs_formula(cfg: list, in_channels: int = 3, side: int = 224) -> int:
    """乘加次数：卷积 c_out·s²·c_in·k²（s 为该层输出边长），全连接 d_in·d_out。"""
    n, c, s = 0, in_channels, side
    for v in cfg:
        if v == "M":
            s //= 2
            continue
        out, k = v if isinstance(v, tuple) else (v, 3)
        n += out * s * s * c * k * k
        c = out
    return n + (c * s * s) * 4096 + 4096 * 4096 + 4096 * 1000


def macs_counted(model: nn.Module, side: int) -> int:
    """把一个 meta 张量送过 model，按各层实际的输出形状数乘加：卷积每个输出元素 (c_in/groups)·k² 次，全连接 d_in·d_out 次。"""
    total = 0

    def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    model(torch.empty(1, 3, side, side, device="meta"))
    for h in handles:
        h.remove()
    return total


def alexnet_2012(num_classes: int = 1000) -> nn.Sequential:
    """与 3.4 相同的原论文 AlexNet（两块 GPU：conv2、conv4、conv5 的 groups=2），输入 227×227。"""
    lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, num_classes))


# AlexNet 的逐层清单 (c_in, c_out, k, groups, 输出边长)，全连接层记作 k = 1、边长 1
ALEXNET_SPEC = [(3, 96, 11, 1, 55), (96, 256, 5, 2, 27), (256, 384, 3, 1, 13), (384, 384, 3, 2, 13),
                (384, 256, 3, 2, 13), (9216, 4096, 1, 1, 1), (4096, 4096, 1, 1, 1), (4096, 1000, 1, 1, 1)]
with torch.device("meta"):
    alexnet = alexnet_2012()
alexnet_params = sum(p.numel() for p in alexnet.parameters())
alexnet_macs = macs_counted(alexnet, side=227)
assert alexnet_params == sum(co * (ci // g) * k * k + co for ci, co, k, g, _ in ALEXNET_SPEC)
assert alexnet_macs == sum(co * s * s * (ci // g) * k * k for ci, co, k, g, s in ALEXNET_SPEC)
vgg16_params, vgg16_macs = sum(p.numel() for p in vgg16.parameters()), macs_formula(CFGS["D"])
assert vgg16_params == count_formula(CFGS["D"]) and macs_counted(vgg16, side=224) == vgg16_macs
print(f"AlexNet（原论文版本）：参数 {alexnet_params}，乘加 {alexnet_macs}")
print(f"VGG-16：参数 {vgg16_params}（AlexNet 的 {vgg16_params / alexnet_params:.2f} 倍），"
      f"乘加 {vgg16_macs}（AlexNet 的 {vgg16_macs / alexnet_macs:.1f} 倍）")
assert vgg16_macs > 20 * alexnet_macs and vgg16_params > 2 * alexnet_params
per_stage = [c * s * s * c * 9 for c, s in [(64, 224), (128, 112), (256, 56), (512, 28), (512, 14)]]
print("各段中一个 c→c 的 3×3 卷积层的乘加次数：", per_stage)
assert len(set(per_stage[:4])) == 1 and per_stage[4] * 4 == per_stage[0]   # 前 4 段相同，第 5 段是四分之一
# --8<-- [end:heavy]

# --8<-- [start:pool]
for k in (2, 3):                                           # 2×2 与 3×3 的最大池化，步幅都是 2，不填充
    x = torch.empty(1, 512, 224, 224, device="meta")
    sides = []
    for _ in range(5):
        x = F.max_pool2d(x, kernel_size=k, stride=2)
        sides.append(x.shape[-1])
    print(f"{k}×{k} 池化、步幅 2：224 -> {sides}，展平后 {512 * sides[-1] ** 2} 维")
    assert sides == ([112, 56, 28, 14, 7] if k == 2 else [111, 55, 27, 13, 6])
assert 512 * 7 * 7 == fcs[0].in_features == 25088         # 只有 2×2 与 fc6 的 25088 个输入对得上
# --8<-- [end:pool]

# --8<-- [start:elided]
# 种子 000 的清单实际写出的层：第 1 段（两个 64 通道卷积 + 池化）与第 5 段（三个 512→512 卷积 + 池化）
with torch.device("meta"):
    listed = nn.Sequential(*make_features([64, 64, "M"]), *make_features([512, 512, 512, "M"], in_channels=512))
    full = vgg16[0]
count = lambda net, kind: sum(isinstance(m, kind) for m in net)
n_listed, n_full = (sum(p.numel() for p in net.parameters()) for net in (listed, full))
print(f"写出的卷积层 {count(listed, nn.Conv2d)} 个、池化层 {count(listed, nn.MaxPool2d)} 个；"
      f"完整的 VGG-16 有 {count(full, nn.Conv2d)} 个、{count(full, nn.MaxPool2d)} 个")
print(f"卷积部分的参数：写出的 {n_listed}，完整的 {n_full}，少了 {n_full - n_listed}")
assert count(full, nn.Conv2d) - count(listed, nn.Conv2d) == 8 and count(full, nn.MaxPool2d) - count(listed, nn.MaxPool2d) == 3
missing = CFGS["D"][3:13]                                  # 第 2～4 段：[128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
assert n_full - n_listed == count_formula(missing, in_channels=64, hidden=(), num_classes=0) == 7596544   # 只数卷积
try:
    listed(torch.empty(1, 3, 224, 224, device="meta"))    # 第 1 段输出 64 个通道，第 5 段的卷积要 512 个
    raise AssertionError("不应该走到这里")
except RuntimeError as err:
    print("照原样运行：", str(err).split(",")[0][:60])
# --8<-- [end:elided]


# --8<-- [start:why3x3]
def n_weights(*layers: nn.Module) -> int:
    return sum(p.numel() for m in layers for p in m.parameters())


C = 256
with torch.device("meta"):                                 # 不带偏置，只比较卷积核的参数
    conv = lambda k: nn.Conv2d(C, C, k, padding=k // 2, bias=False)
    two3, one5, three3, one7 = [conv(3), conv(3)], conv(5), [conv(3), conv(3), conv(3)], conv(7)
print(f"C = {C}：两个 3×3 {n_weights(*two3)} = 18C²，一个 5×5 {n_weights(one5)} = 25C²，"
      f"比值 {n_weights(*two3) / n_weights(one5):.3f}")
print(f"        三个 3×3 {n_weights(*three3)} = 27C²，一个 7×7 {n_weights(one7)} = 49C²，"
      f"比值 {n_weights(*three3) / n_weights(one7):.3f}")
assert n_weights(*two3) == 18 * C * C and n_weights(one5) == 25 * C * C
assert n_weights(*three3) == 27 * C * C and n_weights(one7) == 49 * C * C


def measured_rf(layers: list[nn.Module], size: int = 15) -> int:
    """输入、权重全为 1（ReLU 都处于激活状态），对中心输出求梯度，数输入上非零梯度的行数。"""
    net = nn.Sequential(*layers).to(device)
    for m in net:
        if isinstance(m, nn.Conv2d):
            nn.init.ones_(m.weight)
    x = torch.ones(1, 1, size, size, device=device, requires_grad=True)
    net(x)[0, 0, size // 2, size // 2].backward()
    return int((x.grad[0, 0].abs().sum(dim=1) > 0).sum())


for L in (1, 2, 3):
    stack = [m for _ in range(L) for m in (nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU())]
    single = [nn.Conv2d(1, 1, 2 * L + 1, padding=L, bias=False)]
    rf_stack, rf_single = measured_rf(stack), measured_rf(single)
    print(f"{L} 个 3×3：感受野 {rf_stack}×{rf_stack}（公式 1 + {L}·2 = {1 + 2 * L}），"
          f"一个 {2 * L + 1}×{2 * L + 1}：{rf_single}×{rf_single}，ReLU {L} 个对 1 个")
    assert rf_stack == rf_single == 1 + L * (3 - 1)
# --8<-- [end:why3x3]

# --8<-- [start:digits]
X_all, y_all = load_digits(return_X_y=True)                 # 1797 张 8×8 灰度图，像素 0..16
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0                                     # 恒为 0 的像素不缩放
X_tr, X_te = (torch.tensor((X - mu) / sigma, dtype=torch.float32, device=device).reshape(-1, 1, 8, 8)
              for X in (X_tr, X_te))                        # 用训练集的均值和标准差标准化
y_tr, y_te = (torch.tensor(y, device=device) for y in (y_tr, y_te))

SMALL = [16, 16, "M", 32, 32, "M"]                          # 两段，每段两个 3×3 卷积：8×8 -> 4×4 -> 2×2


def small_vgg(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = vgg(SMALL, num_classes=10, in_channels=1, side=8, hidden=(64,))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):                       # He 初始化（与 torchvision 的 VGG 相同）
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net.to(device)


net = small_vgg(0)
print(net)
n_small = sum(p.numel() for p in net.parameters())
print(f"参数量：{n_small}（公式 {count_formula(SMALL, in_channels=1, side=8, hidden=(64,), num_classes=10)}）")
assert n_small == count_formula(SMALL, in_channels=1, side=8, hidden=(64,), num_classes=10)
# --8<-- [end:digits]


# --8<-- [start:train]
def train(net: nn.Module, seed: int, epochs: int = 12) -> tuple[list[float], list[float]]:
    """Adam（学习率 3e-3），批量 128；返回每轮的平均训练损失和测试准确率。"""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    losses, accs = [], []
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(y_tr), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            accs.append((net(X_te).argmax(dim=1) == y_te).float().mean().item())
        losses.append(total / len(y_tr))
    return losses, accs


SEEDS = [0, 1, 2]
history = {seed: train(small_vgg(seed), seed) for seed in SEEDS}
for seed, (losses, accs) in history.items():
    print(f"种子 {seed}：最后一轮训练损失 {losses[-1]:.3f}，测试准确率 {accs[-1]:.3f}")
# 种子 0..9 上第 12 轮的测试准确率最低为 0.953（360 个测试样本中错 17 个；本书固定的 AVX2 计算路径与
# PyTorch 默认路径各试一遍，最低都是 0.953）；下限取 0.94，留约 5 个样本的余量
assert all(accs[-1] >= 0.94 for _, accs in history.values())
# --8<-- [end:train]

# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
epochs = range(1, 13)
for seed, (losses, accs) in history.items():
    ax1.plot(epochs, losses, marker="o", ms=3, label=f"种子 {seed}")
    ax2.plot(epochs, accs, marker="o", ms=3, label=f"种子 {seed}")
ax1.set(xlabel="轮", ylabel="训练损失", yscale="log", title="训练损失")
ax2.set(xlabel="轮", ylabel="测试准确率", ylim=(0.5, 1.0), title="测试准确率")
ax2.axhline(0.94, color="gray", lw=0.8, ls="--")
ax1.legend()
fig.suptitle("小 VGG（两段、每段两个 3×3 卷积）在 load_digits 上的训练曲线", y=1.03)
fig.savefig("vgg_digits.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
