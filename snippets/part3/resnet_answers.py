# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


# 以下定义与正文相同（conv_bn、两种块、ResNet、逐层公式、乘加计数、初始化时的梯度），复制过来使本文件能单独运行
def conv_bn(c_in, c_out, k, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in, c, stride=1):
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c_in, c, 3, stride), nn.ReLU(), conv_bn(c, c, 3))
        self.shortcut = conv_bn(c_in, c, 1, stride) if stride != 1 or c_in != c else nn.Identity()

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, c, stride=1):
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c_in, c, 1), nn.ReLU(), conv_bn(c, c, 3, stride), nn.ReLU(),
                                    conv_bn(c, 4 * c, 1))
        self.shortcut = conv_bn(c_in, 4 * c, 1, stride) if stride != 1 or c_in != 4 * c else nn.Identity()

    def forward(self, x):
        return F.relu(self.branch(x) + self.shortcut(x))


class PlainBlock(BasicBlock):
    def forward(self, x):
        return F.relu(self.branch(x))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, widths=(64, 128, 256, 512)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        stages, c_in = [], 64
        for i, (c, n) in enumerate(zip(widths, layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(c_in, c, stride=2 if i > 0 and j == 0 else 1))
                c_in = c * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def resnet_params_formula(bottleneck, layers, num_classes=1000):
    conv = lambda k, a, b: k * k * a * b
    bn = lambda c: 2 * c
    e = 4 if bottleneck else 1
    total, c_in = conv(7, 3, 64) + bn(64), 64
    for c, n in zip((64, 128, 256, 512), layers):
        for _ in range(n):
            if bottleneck:
                total += conv(1, c_in, c) + bn(c) + conv(3, c, c) + bn(c) + conv(1, c, 4 * c) + bn(4 * c)
            else:
                total += conv(3, c_in, c) + bn(c) + conv(3, c, c) + bn(c)
            if c_in != e * c:
                total += conv(1, c_in, e * c) + bn(e * c)
            c_in = e * c
    return total + c_in * num_classes + num_classes


def count_macs(model):
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs.append(out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            macs.append(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in handles:
        h.remove()
    return sum(macs)


def zero_last_gamma(model):
    for m in model.modules():
        if isinstance(m, (BasicBlock, Bottleneck)):
            nn.init.zeros_(m.branch[-1][1].weight)
    return model


def stack(block, n_blocks, zero_gamma, c=16):
    torch.manual_seed(0)
    net = nn.Sequential(conv_bn(1, c, 3), nn.ReLU(), *[block(c, c) for _ in range(n_blocks)],
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))
    if zero_gamma:
        zero_last_gamma(net)
    return net.to(device, torch.float64)


def grad_norms(net, n_blocks, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64).to(device)
    labels = torch.randint(0, 10, (16,), generator=g).to(device)
    inputs = []
    h = net[1](net[0](images))
    for block in net[2:2 + n_blocks]:
        h.retain_grad()
        inputs.append(h)
        h = block(h)
    F.cross_entropy(net[2 + n_blocks:](h), labels).backward()
    return [t.grad.norm().item() for t in inputs]
# --8<-- [end:imports]

# --8<-- [start:ex1]
configs = {"ResNet-18": (BasicBlock, [2, 2, 2, 2]), "ResNet-34": (BasicBlock, [3, 4, 6, 3]),
           "ResNet-50": (Bottleneck, [3, 4, 6, 3]), "ResNet-101": (Bottleneck, [3, 4, 23, 3]),
           "ResNet-152": (Bottleneck, [3, 8, 36, 3])}
torchvision = {"ResNet-18": 11_689_512, "ResNet-34": 21_797_672, "ResNet-50": 25_557_032,
               "ResNet-101": 44_549_160, "ResNet-152": 60_192_808}   # torchvision.models 文档中的参数量
params, macs, parts = {}, {}, {}
for name, (block, layers) in configs.items():
    with torch.device("meta"):
        model = ResNet(block, layers)
    params[name], macs[name] = n_params(model), count_macs(model)
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    parts[name] = {"茎": n_params(model.stem), "各块的分支": sum(n_params(b.branch) for b in blocks),
                   "投影捷径": sum(n_params(b.shortcut) for b in blocks), "全连接层": n_params(model.head)}
    assert sum(parts[name].values()) == params[name]
    per_block = 3 if block is Bottleneck else 2
    depth = 1 + per_block * sum(layers) + 1                      # 茎 + 块里的卷积 + 全连接层
    print(f"{name:<10} 层数 {depth:>3}  参数量 {params[name]:>9}  乘加 {macs[name] / 1e9:5.2f} G")
    assert params[name] == resnet_params_formula(block is Bottleneck, layers) == torchvision[name]
    assert name == f"ResNet-{depth}"
print(f"ResNet-50 比 ResNet-34：层数多 {50 - 34}，参数量多 {params['ResNet-50'] / params['ResNet-34'] - 1:.1%}，"
      f"乘加多 {macs['ResNet-50'] / macs['ResNet-34'] - 1:.1%}")
for part in parts["ResNet-34"]:
    print(f"  {part}：ResNet-34 {parts['ResNet-34'][part]}，ResNet-50 {parts['ResNet-50'][part]}")
assert params["ResNet-50"] < 1.2 * params["ResNet-34"]
assert parts["ResNet-50"]["各块的分支"] < parts["ResNet-34"]["各块的分支"]   # 16 个瓶颈块的分支比 16 个基本块还省
assert all(parts["ResNet-50"][p] > parts["ResNet-34"][p] for p in ("投影捷径", "全连接层"))
# --8<-- [end:ex1]

# --8<-- [start:ex2]
class BottleneckV1(Bottleneck):
    """论文原文的瓶颈块：步幅放在第一个 1×1 卷积上，3×3 卷积步幅为 1。其余与 Bottleneck 完全相同。"""

    def __init__(self, c_in, c, stride=1):
        super().__init__(c_in, c, stride)
        self.branch[0][0].stride, self.branch[2][0].stride = (stride, stride), (1, 1)


paper = {"ResNet-50": 3.8, "ResNet-101": 7.6, "ResNet-152": 11.3}   # He 等（2016）表 1 的 FLOPs（×10⁹）
for name, (_, layers) in configs.items():
    if name not in paper:
        continue
    with torch.device("meta"):
        v1 = ResNet(BottleneckV1, layers)
    m1, m15 = count_macs(v1) / 1e9, macs[name] / 1e9          # 步幅在 3×3 上的乘加数已在练习 1 中算出
    print(f"{name:<10} 参数量 {n_params(v1)}（与练习 1 相同）；乘加：步幅在 1×1 上 {m1:.2f} G，"
          f"在 3×3 上 {m15:.2f} G，多 {m15 - m1:.2f} G（论文表 1：{paper[name]}）")
    assert n_params(v1) == params[name]                         # 步幅不影响参数量
    assert abs(m1 - paper[name]) < 0.1 < m15 - paper[name]       # 论文的数对应原文的放法
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 容差 ±8000000：普通网络的比值是逐块放大的乘积，末位的舍入差别也被放大（理由同正文「初始化时的梯度」一段）
def forward_ms(net, n_blocks, seed=0):
    """同一批输入前向一遍：各块输入的均方值（梯度实验里的 images 与之相同）。"""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64).to(device)
    ms = []
    with torch.no_grad():
        h = net[1](net[0](images))
        for block in net[2:2 + n_blocks]:
            ms.append(h.pow(2).mean().item())
            h = block(h)
    return ms


print("块数 | 普通网络：第 1 块 / 最后一块的梯度范数 | 每块平均放大 | 残差网络的比值 | 残差网络：最后一块 / 第 1 块输入的均方值")
plain_ratio, res_ratio, res_ms = {}, {}, {}
for n in (5, 10, 17, 25, 50):
    g_plain = grad_norms(stack(PlainBlock, n, False), n, seed=0)
    g_res = grad_norms(stack(BasicBlock, n, False), n, seed=0)
    ms = forward_ms(stack(BasicBlock, n, False), n)
    plain_ratio[n], res_ratio[n], res_ms[n] = g_plain[0] / g_plain[-1], g_res[0] / g_res[-1], ms[-1] / ms[0]
    amp = plain_ratio[n] ** (1 / (n - 1))                          # 普通网络平均每块放大的倍数
    print(f"{n:>4} | {plain_ratio[n]:.2e} | {amp:.3f} | {res_ratio[n]:.1f} | {res_ms[n]:.1f}")
per_block = [plain_ratio[n] ** (1 / (n - 1)) for n in plain_ratio]
assert 1.3 < min(per_block) and max(per_block) < 1.5            # 普通网络：每块放大约 1.4 倍，比值随块数指数增长
assert all(0.5 * n < res_ratio[n] < 2 * n for n in res_ratio)    # 残差网络：比值大致与块数成正比
assert all(n < res_ms[n] < 2 * n for n in res_ms)                # 残差网络：信号的均方值随深度线性增长
assert all(plain_ratio[n] > res_ratio[n] for n in (10, 17, 25, 50))
assert plain_ratio[50] > 1e4 * res_ratio[50]
# --8<-- [end:ex3]

# --8<-- [start:ex4]
class PreActBlock(nn.Module):
    """预激活的基本块（He 等，ECCV 2016）：BN-ReLU-卷积-BN-ReLU-卷积，相加之后不再做 ReLU。"""

    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False))

    def forward(self, x):
        return x + self.branch(x)


x = torch.randn(8, 64, 14, 14, device=device)                # 有正有负
post = zero_last_gamma(BasicBlock(64, 64)).to(device)
pre = PreActBlock(64).to(device)
nn.init.zeros_(pre.branch[3].weight)                         # 第二个 BN 的 γ = 0：分支输出恰为 0
pre_stack = nn.Sequential(*[PreActBlock(64) for _ in range(10)]).to(device)
for b in pre_stack:
    nn.init.zeros_(b.branch[3].weight)
for name, out in (("后激活 BasicBlock", post(x)), ("预激活 PreActBlock", pre(x)), ("10 个 PreActBlock", pre_stack(x))):
    print(f"{name:<16} 输出与输入逐位相同 {torch.equal(out, x)}，输出的最小值 {out.min().item():.3f}")
assert torch.equal(post(x), F.relu(x)) and not torch.equal(post(x), x)   # 后激活：得到 ReLU(x)，负的部分被截掉
assert torch.equal(pre(x), x) and torch.equal(pre_stack(x), x)          # 预激活：真正的恒等映射
# --8<-- [end:ex4]
