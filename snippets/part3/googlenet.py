# --8<-- [start:setup]
import copy
from collections import OrderedDict

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.backends.cudnn.allow_tf32 = False   # CUDA 上的卷积默认可用 TF32（10 位尾数）；关掉，float32 的比较才有意义
gen = torch.Generator().manual_seed(0)    # 数据在 CPU 上生成再搬到 device


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
# --8<-- [end:setup]

# --8<-- [start:pointwise]
N, C_in, C_out, H, W = 2, 16, 8, 5, 7
conv1x1 = nn.Conv2d(C_in, C_out, kernel_size=1).to(device)     # weight: (C_out, C_in, 1, 1)
linear = nn.Linear(C_in, C_out).to(device)                      # weight: (C_out, C_in)
with torch.no_grad():
    linear.weight.copy_(conv1x1.weight.view(C_out, C_in))       # 同一组权重
    linear.bias.copy_(conv1x1.bias)


def per_pixel_linear(x: torch.Tensor) -> torch.Tensor:
    """把每个像素的 C_in 维通道向量送进同一个 Linear：(N, C, H, W) -> (N, H, W, C) -> Linear -> 换回。"""
    return linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


tol = {torch.float64: 1e-10, torch.float32: 1e-5}               # float64 / float32 的容差
for dtype in (torch.float64, torch.float32):
    conv1x1.to(dtype), linear.to(dtype)
    x = torch.randn(N, C_in, H, W, generator=gen, dtype=dtype).to(device)
    y_conv = conv1x1(x)                                          # (N, C_out, H, W)
    y_lin = per_pixel_linear(x)
    Wm, b = conv1x1.weight.view(C_out, C_in), conv1x1.bias       # 公式：y[n,:,i,j] = W x[n,:,i,j] + b
    y_formula = torch.einsum("oc,nchw->nohw", Wm, x) + b.view(1, -1, 1, 1)
    err = max((y_conv - y_lin).abs().max().item(), (y_conv - y_formula).abs().max().item())
    print(f"{str(dtype):14s} 输入 {tuple(x.shape)} -> 输出 {tuple(y_conv.shape)}，"
          f"1×1 卷积与逐像素 Linear、公式的最大误差 <= {tol[dtype]:.0e}：{err <= tol[dtype]}")
    assert err <= tol[dtype]
print(f"参数量：1×1 卷积 {n_params(conv1x1)}，Linear {n_params(linear)}，公式 C_in·C_out + C_out = {C_in * C_out + C_out}")
assert n_params(conv1x1) == n_params(linear) == C_in * C_out + C_out
# --8<-- [end:pointwise]

# --8<-- [start:mlpconv]
def nin_block(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """NiN 的 mlpconv 层：一个 k×k 卷积，再接两个 1×1 卷积，每层后面都有 ReLU。"""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 1), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 1), nn.ReLU())


c_in, c_out, k = 3, 6, 3
block = nin_block(c_in, c_out, k, padding=1).double().to(device)
x = torch.randn(2, c_in, 6, 6, generator=gen, dtype=torch.float64).to(device)

# 同一组权重写成一个三层 MLP：输入是每个 k×k 小块展平后的 c_in·k·k 维向量
mlp = nn.Sequential(nn.Linear(c_in * k * k, c_out), nn.ReLU(),
                    nn.Linear(c_out, c_out), nn.ReLU(),
                    nn.Linear(c_out, c_out), nn.ReLU()).double().to(device)
with torch.no_grad():
    for lin, conv in zip(mlp[::2], block[::2]):
        lin.weight.copy_(conv.weight.flatten(1))                 # (c_out, c_in, kh, kw) -> (c_out, c_in·kh·kw)
        lin.bias.copy_(conv.bias)
patches = F.unfold(x, kernel_size=k, padding=1)                  # (N, c_in·k·k, L)：L = 6·6 个位置的小块
y_mlp = mlp(patches.transpose(1, 2)).transpose(1, 2).reshape(2, c_out, 6, 6)
err = (block(x) - y_mlp).abs().max().item()
print(f"每个位置的小块 {c_in}×{k}×{k} = {c_in * k * k} 维，送进 {c_in * k * k}→{c_out}→{c_out}→{c_out} 的 MLP")
print(f"mlpconv 与逐位置 MLP 的最大误差 <= 1e-10（float64）：{err <= 1e-10}")
assert err <= 1e-10
# --8<-- [end:mlpconv]

# --8<-- [start:gap]
feat = torch.randn(2, 1024, 7, 7, generator=gen).to(device)    # 最后一层特征图：(N, C, H, W)
gap = nn.AdaptiveAvgPool2d(1)                                   # 全局平均池化：每个通道取整张图的平均
assert torch.allclose(gap(feat).flatten(1), feat.mean(dim=(2, 3)), atol=1e-6)

# GAP + Linear 与「先 1×1 卷积、再 GAP」是同一个函数（两者都是线性的，次序可交换）
fc = nn.Linear(1024, 10).to(device)
conv_cls = nn.Conv2d(1024, 10, 1).to(device)
with torch.no_grad():
    conv_cls.weight.copy_(fc.weight.view(10, 1024, 1, 1))
    conv_cls.bias.copy_(fc.bias)
err = (fc(gap(feat).flatten(1)) - gap(conv_cls(feat)).flatten(1)).abs().max().item()
print(f"GAP 后接 Linear 与 1×1 卷积后接 GAP 的最大误差 <= 1e-5：{err <= 1e-5}")
assert err <= 1e-5


def fc_head(sizes: list[int]) -> nn.Sequential:
    """AlexNet/VGG 式的分类头：展平特征图，再接几个全连接层（ReLU、丢弃法都没有参数，这里省去）。"""
    layers: list[nn.Module] = [nn.Flatten()]
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


def fc_formula(sizes: list[int]) -> int:
    return sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))


heads = {  # 名字：(展平前的特征图 C×H×W, 全连接各层宽度)
    "AlexNet  256×6×6 → 4096 → 4096 → 1000": [256 * 6 * 6, 4096, 4096, 1000],
    "VGG-16   512×7×7 → 4096 → 4096 → 1000": [512 * 7 * 7, 4096, 4096, 1000],
    "GoogLeNet 1024×7×7 → GAP → 1000": [1024, 1000],
}
head_params = {}
for name, sizes in heads.items():
    with torch.device("meta"):                                  # 只建结构、不分配内存
        head = fc_head(sizes)
    head_params[name] = n_params(head)
    assert head_params[name] == fc_formula(sizes)               # 逐层公式 d_in·d_out + d_out
    print(f"{name:40s} 参数量 {head_params[name]:>11d}")
alex, vgg, goo = head_params.values()
print(f"VGG-16 的分类头是 GoogLeNet 分类头的 {vgg / goo:.1f} 倍")
assert vgg > alex > 50 * goo

# VGG-16 的 13 个 3×3 卷积（通道数与 VGG 一页相同），看分类头占全网参数的多少
vgg_convs = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
vgg_body = sum(c_in * c_out * 9 + c_out for c_in, c_out in zip(vgg_convs[:-1], vgg_convs[1:]))
print(f"VGG-16：卷积部分 {vgg_body}，全网 {vgg_body + vgg}，分类头占 {vgg / (vgg_body + vgg):.1%}")
assert vgg_body + vgg == 138_357_544                              # VGG-16 的参数量
# --8<-- [end:gap]

# --8<-- [start:inception]
def conv_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """论文里的一层：带偏置的卷积 + ReLU；padding = k // 2，步幅为 1 时不改变高和宽。"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2), nn.ReLU())


class Inception(nn.Module):
    """GoogLeNet 的 Inception 模块（Szegedy 等，2015，图 2b）：四个分支，在通道维上拼接。
    reduce=False 时是图 2a 的「朴素」版本：没有 1×1 降维，池化分支也没有 1×1 投影。"""

    def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool_proj, reduce=True, conv=conv_relu, k5=5):
        super().__init__()
        self.b1 = conv(c_in, c1, 1)                                           # 1×1
        if reduce:
            self.b2 = nn.Sequential(conv(c_in, c3r, 1), conv(c3r, c3, 3))     # 1×1 降维 → 3×3
            self.b3 = nn.Sequential(conv(c_in, c5r, 1), conv(c5r, c5, k5))    # 1×1 降维 → 5×5
            self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),     # 3×3 最大池化 → 1×1 投影
                                    conv(c_in, pool_proj, 1))
        else:
            self.b2, self.b3 = conv(c_in, c3, 3), conv(c_in, c5, k5)
            self.b4 = nn.MaxPool2d(3, stride=1, padding=1)                    # 池化分支原样输出 c_in 个通道

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)   # (N, ΣC, H, W)


# inception (3a)：输入 28×28×192，各列取自论文表 1
block = Inception(192, 64, 96, 128, 16, 32, 32).to(device)
x = torch.randn(2, 192, 28, 28, generator=gen).to(device)
y = block(x)
parts = [block.b1(x), block.b2(x), block.b3(x), block.b4(x)]
print(f"inception (3a)：输入 {tuple(x.shape)} -> 输出 {tuple(y.shape)}")
print("四个分支的输出通道：", [p.shape[1] for p in parts], "-> 拼接后", y.shape[1])
start = 0
for p in parts:                                                   # 输出按分支顺序排在通道维上
    assert torch.allclose(y[:, start:start + p.shape[1]], p, atol=1e-6)
    start += p.shape[1]
assert y.shape == (2, 64 + 128 + 32 + 32, 28, 28)
# --8<-- [end:inception]

# --8<-- [start:cost]
def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """用前向钩子累加每个卷积层、全连接层的乘加次数（一张图）：输出元素个数 × 每个输出要乘加的输入个数。"""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(x)
    for h in handles:
        h.remove()
    return total


def inception_weights(c_in, c1, c3r, c3, c5r, c5, pp, reduce=True) -> int:
    """逐层公式：一个 k×k 卷积有 c_in·c_out·k² 个权重（不含偏置）。"""
    if reduce:
        return c_in * c1 + c_in * c3r + 9 * c3r * c3 + c_in * c5r + 25 * c5r * c5 + c_in * pp
    return c_in * c1 + 9 * c_in * c3 + 25 * c_in * c5


cfg_3a, hw = (192, 64, 96, 128, 16, 32, 32), 28
x = torch.empty(1, 192, hw, hw, device="meta")
for reduce in (False, True):
    with torch.device("meta"):
        m = Inception(*cfg_3a, reduce=reduce)
    macs, params, out = count_macs(m, x), n_params(m), m(x)
    w = inception_weights(*cfg_3a, reduce=reduce)
    n_bias = sum(mod.out_channels for mod in m.modules() if isinstance(mod, nn.Conv2d))
    assert params == w + n_bias                                   # 参数量 = 权重 + 偏置
    assert macs == w * hw * hw                                    # 步幅 1：每个权重在 28×28 个位置各乘加一次
    label = "有 1×1 降维（图 2b）" if reduce else "朴素版本（图 2a）"
    print(f"{label}：参数量 {params:>7d}，乘加 {macs / 1e6:6.1f} M，输出通道 {out.shape[1]}")
    if reduce:
        macs_3a = macs
assert macs_3a == 128_049_152      # 论文表 1 中 inception (3a) 的 ops 为 128M
# --8<-- [end:cost]

# --8<-- [start:table1]
# GoogLeNet 的 9 个 Inception 模块，数值取自 Szegedy 等（2015）表 1：
# 名字: (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, 输出深度, 输出的高和宽)
TABLE1 = {
    "3a": (64, 96, 128, 16, 32, 32, 256, 28),
    "3b": (128, 128, 192, 32, 96, 64, 480, 28),
    "4a": (192, 96, 208, 16, 48, 64, 512, 14),
    "4b": (160, 112, 224, 24, 64, 64, 512, 14),
    "4c": (128, 128, 256, 24, 64, 64, 512, 14),
    "4d": (112, 144, 288, 32, 64, 64, 528, 14),
    "4e": (256, 160, 320, 32, 128, 128, 832, 14),
    "5a": (256, 160, 320, 32, 128, 128, 832, 7),
    "5b": (384, 192, 384, 48, 128, 128, 1024, 7),
}


def googlenet(num_classes: int = 1000, conv=conv_relu, k5: int = 5) -> nn.Sequential:
    """按论文表 1 与图 3 搭建 GoogLeNet（不含两个辅助分类器）。"""
    layers = OrderedDict(
        conv1=conv(3, 64, 7, stride=2),                           # 7×7，步幅 2
        pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),          # 3×3，步幅 2
        lrn1=nn.LocalResponseNorm(5),
        conv2_reduce=conv(64, 64, 1),
        conv2=conv(64, 192, 3),
        lrn2=nn.LocalResponseNorm(5),
        pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
    )
    c_in = 192
    for name, (c1, c3r, c3, c5r, c5, pp, _, _) in TABLE1.items():
        if name in ("4a", "5a"):                                  # 每组模块之前用步幅 2 的池化把高和宽减半
            layers[f"pool{int(name[0]) - 1}"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        layers[f"inception{name}"] = Inception(c_in, c1, c3r, c3, c5r, c5, pp, conv=conv, k5=k5)
        c_in = c1 + c3 + c5 + pp                                  # 下一个模块的输入 = 四个分支拼接
    layers.update(avgpool=nn.AdaptiveAvgPool2d(1),                # 7×7 的全局平均池化
                  flatten=nn.Flatten(), dropout=nn.Dropout(0.4), fc=nn.Linear(c_in, num_classes))
    return nn.Sequential(layers)


with torch.device("meta"):
    net = googlenet()
x = torch.empty(1, 3, 224, 224, device="meta")
for name, layer in net.named_children():
    x = layer(x)
    print(f"{name:13s} -> {tuple(x.shape[1:])}")
    if name.startswith("inception"):
        c1, c3r, c3, c5r, c5, pp, depth, size = TABLE1[name.removeprefix("inception")]
        assert c1 + c3 + c5 + pp == depth                         # 表 1 自洽：输出深度 = 四个分支之和
        assert tuple(x.shape[1:]) == (depth, size, size)          # 搭出的网络与表 1 一致
n_modules = sum(isinstance(m, Inception) for m in net.modules())
print(f"Inception 模块共 {n_modules} 个")
assert x.shape == (1, 1000) and n_modules == 9
# --8<-- [end:table1]

# --8<-- [start:count]
def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out                           # 权重 + 偏置


def googlenet_formula(num_classes: int = 1000) -> int:
    """只用表 1 的数字逐层相加：主干 3 个卷积 + 9 个模块 + 最后的全连接层。"""
    total = conv_params(3, 64, 7) + conv_params(64, 64, 1) + conv_params(64, 192, 3)
    c_in = 192
    for c1, c3r, c3, c5r, c5, pp, depth, _ in TABLE1.values():
        total += (conv_params(c_in, c1, 1) + conv_params(c_in, c3r, 1) + conv_params(c3r, c3, 3)
                  + conv_params(c_in, c5r, 1) + conv_params(c5r, c5, 5) + conv_params(c_in, pp, 1))
        c_in = depth                                              # 用表中的输出深度，而不是代码算出的
    return total + c_in * num_classes + num_classes


def depth(m: nn.Module, count_pool: bool = False) -> int:
    """最长路径上有参数的层数（count_pool=True 时把池化层也算上）。"""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return 1
    if isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
        return int(count_pool)
    if isinstance(m, Inception):                                  # 并联：取最深的分支
        return max(depth(b, count_pool) for b in (m.b1, m.b2, m.b3, m.b4))
    return sum(depth(c, count_pool) for c in m.children())        # 串联：逐层相加


total = n_params(net)
print(f"GoogLeNet（论文版，无 BN，不含辅助分类器）参数量：{total}")
print(f"逐层公式：{googlenet_formula()}")
print(f"深度：有参数的层 {depth(net)} 层，连池化层 {depth(net, count_pool=True)} 层")
assert total == googlenet_formula()
assert 17 * total < vgg                                           # 整个 GoogLeNet 不到 VGG-16 分类头的 1/17
assert depth(net) == 22 and depth(net, count_pool=True) == 27   # 论文第 5 节的说法
macs = count_macs(net, torch.empty(1, 3, 224, 224, device="meta"))
print(f"一张 224×224 图像的乘加次数：{macs / 1e9:.2f} G")
assert abs(macs / 1.5e9 - 1) < 0.1                                # 论文：推理时约 15 亿次乘加
# --8<-- [end:count]

# --8<-- [start:torchvision]
def conv_bn_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    """torchvision 的 BasicConv2d：无偏置的卷积 + 批归一化 + ReLU。"""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False),
                         nn.BatchNorm2d(c_out, eps=0.001), nn.ReLU())


with torch.device("meta"):
    net_bn5 = googlenet(conv=conv_bn_relu, k5=5)               # BN 变体，5×5 分支照论文
    net_tv = googlenet(conv=conv_bn_relu, k5=3)                # 再照 torchvision 把「5×5」写成 3×3
convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
n_bias = sum(m.out_channels for m in convs)                       # 论文版所有卷积的偏置
n_bn = 2 * n_bias                                                 # 每个通道一个 γ、一个 β
print(f"BN 变体（5×5）：{n_params(net_bn5)} = 论文版 {total} - 偏置 {n_bias} + BN 的 γ、β {n_bn}")
print(f"BN 变体（5×5 分支实为 3×3，同 torchvision）：{n_params(net_tv)}")
assert n_params(net_bn5) == total - n_bias + n_bn
five = sum(m.in_channels * m.out_channels for m in convs if m.kernel_size == (5, 5))
assert n_params(net_tv) == n_params(net_bn5) - (25 - 9) * five   # 每个 5×5 权重换成 3×3 少 16/25
assert n_params(net_tv) == 6_624_904                              # torchvision googlenet(aux_logits=False) 的参数量
# --8<-- [end:torchvision]

# --8<-- [start:figure]
names9, rows = list(TABLE1), []
c_in, hw = 192, 28
for name, (c1, c3r, c3, c5r, c5, pp, depth_out, size) in TABLE1.items():
    w_red = inception_weights(c_in, c1, c3r, c3, c5r, c5, pp)
    w_naive = inception_weights(c_in, c1, c3r, c3, c5r, c5, pp, reduce=False)
    rows.append((w_naive * size * size / 1e6, w_red * size * size / 1e6))   # 乘加（百万次）
    c_in = depth_out
    print(f"inception {name}：乘加 朴素 {rows[-1][0]:6.1f} M，有降维 {rows[-1][1]:6.1f} M，"
          f"降为 {rows[-1][1] / rows[-1][0]:.2f}")
ratios = [red / naive for naive, red in rows]
assert all(r < 1 for r in ratios)                                 # 每个模块都因降维而变便宜
assert max(ratios[2:]) < min(ratios[:2])                          # (4a)–(5b) 的比例都低于 (3a)、(3b)
fig, ax = plt.subplots(figsize=(8, 3.5))
pos = torch.arange(9).numpy()
ax.bar(pos - 0.2, [r[0] for r in rows], width=0.4, label="朴素版本：没有 1×1 降维")
ax.bar(pos + 0.2, [r[1] for r in rows], width=0.4, label="GoogLeNet：有 1×1 降维")
ax.set_xticks(pos, [f"({n})" for n in names9])
ax.set(xlabel="Inception 模块", ylabel="乘加次数（百万）", title="每个 Inception 模块的乘加次数（一张 224×224 图像）")
ax.legend()
fig.savefig("googlenet_macs.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:factorize]
def receptive_field(model: nn.Module, c: int, size: int = 15) -> tuple[int, int]:
    """中心输出像素对输入的梯度在多大的区域内非零。权重取绝对值、输入取正，ReLU 就不会截断梯度。"""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    x = torch.rand(1, c, size, size, generator=gen, dtype=torch.float64).to(device).add(0.1).requires_grad_()
    y = m(x)
    y[0, :, size // 2, size // 2].sum().backward()
    nz = x.grad[0].abs().sum(0) > 0
    return int(nz.any(1).sum()), int(nz.any(0).sum())             # 非零的行数、列数


C = 64
stacks = [  # (名字, 原来的大卷积, 分解后的两层, 参数量之比)
    ("5×5 -> 两个 3×3", nn.Conv2d(C, C, 5, padding=2, bias=False),
     nn.Sequential(nn.Conv2d(C, C, 3, padding=1, bias=False), nn.ReLU(),
                   nn.Conv2d(C, C, 3, padding=1, bias=False)), 18 / 25),
]
for n in (3, 5, 7):
    stacks.append((f"{n}×{n} -> 1×{n} + {n}×1", nn.Conv2d(C, C, n, padding=n // 2, bias=False),
                   nn.Sequential(nn.Conv2d(C, C, (1, n), padding=(0, n // 2), bias=False), nn.ReLU(),
                                 nn.Conv2d(C, C, (n, 1), padding=(n // 2, 0), bias=False)), 2 / n))
x = torch.randn(1, C, 17, 17, generator=gen).to(device)
for name, full, fact, ratio in stacks:
    full, fact = full.to(device), fact.to(device)
    p_full, p_fact = n_params(full), n_params(fact)
    rf_full, rf_fact = receptive_field(full, C), receptive_field(fact, C)
    print(f"{name}：参数量 {p_full:>6d} -> {p_fact:>6d}，节省 {1 - p_fact / p_full:.1%}，"
          f"感受野 {rf_full[0]}×{rf_full[1]} -> {rf_fact[0]}×{rf_fact[1]}，"
          f"输出形状 {tuple(full(x).shape)} -> {tuple(fact(x).shape)}")
    assert p_fact == round(ratio * p_full)                        # 5×5：18/25；n×n：2/n
    assert rf_fact == rf_full == full.kernel_size                 # 感受野不变
    assert fact(x).shape == full(x).shape == x.shape              # 输出形状不变
# --8<-- [end:factorize]

# --8<-- [start:compose]
# 去掉中间的 ReLU 后，单通道的两层卷积就是一个卷积：核是两个小核的（真）卷积
a, b = (torch.randn(1, 1, 3, 3, generator=gen, dtype=torch.float64).to(device) for _ in range(2))
K5 = F.conv2d(F.pad(a, (2, 2, 2, 2)), b.flip(-2, -1))             # 3×3 与 3×3 合成 5×5
row = torch.randn(1, 1, 1, 7, generator=gen, dtype=torch.float64).to(device)
col = torch.randn(1, 1, 7, 1, generator=gen, dtype=torch.float64).to(device)
K7 = col * row                                                    # 1×7 与 7×1 合成 7×7：外积
img = torch.randn(1, 1, 20, 20, generator=gen, dtype=torch.float64).to(device)
err5 = (F.conv2d(F.conv2d(img, a), b) - F.conv2d(img, K5)).abs().max().item()
err7 = (F.conv2d(F.conv2d(img, row), col) - F.conv2d(img, K7)).abs().max().item()
rank7 = torch.linalg.matrix_rank(K7[0, 0]).item()
rank_rand = torch.linalg.matrix_rank(torch.randn(7, 7, generator=gen, dtype=torch.float64)).item()
print(f"K5 形状 {tuple(K5.shape[-2:])}，两次 3×3 与一次 K5 的最大误差 <= 1e-10：{err5 <= 1e-10}")
print(f"K7 形状 {tuple(K7.shape[-2:])}，1×7 再 7×1 与一次 K7 的最大误差 <= 1e-10：{err7 <= 1e-10}")
print(f"K7 的秩 {rank7}，随机 7×7 核的秩 {rank_rand}")
assert K5.shape[-2:] == (5, 5) and K7.shape[-2:] == (7, 7)
assert err5 <= 1e-10 and err7 <= 1e-10 and rank7 == 1 and rank_rand == 7
# --8<-- [end:compose]

# --8<-- [start:v3]
class InceptionV3Last(nn.Module):
    """Inception-v3 最后一组模块（Szegedy 等，2016，图 7）；各分支宽度取自 torchvision 的 inception_v3。"""

    def __init__(self, c_in: int):
        super().__init__()
        same = dict(padding="same")
        self.b1 = nn.Conv2d(c_in, 320, 1)
        self.b2 = nn.Conv2d(c_in, 384, 1)
        self.b2a, self.b2b = nn.Conv2d(384, 384, (1, 3), **same), nn.Conv2d(384, 384, (3, 1), **same)
        self.b3 = nn.Sequential(nn.Conv2d(c_in, 448, 1), nn.Conv2d(448, 384, 3, **same))
        self.b3a, self.b3b = nn.Conv2d(384, 384, (1, 3), **same), nn.Conv2d(384, 384, (3, 1), **same)
        self.b4 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(c_in, 192, 1))

    def forward(self, x):
        y2, y3 = self.b2(x), self.b3(x)                            # 1×3 与 3×1 并联，输出各 384 通道
        return torch.cat([self.b1(x), self.b2a(y2), self.b2b(y2), self.b3a(y3), self.b3b(y3), self.b4(x)], 1)


with torch.device("meta"):
    last = nn.Sequential(InceptionV3Last(1280), InceptionV3Last(2048))
x = torch.empty(1, 1280, 8, 8, device="meta")
for i, blk in enumerate(last, start=1):
    x = blk(x)
    print(f"Inception-v3 末尾第 {i} 个模块：输出 {tuple(x.shape[1:])}，通道 320 + 2×384 + 2×384 + 192")
assert x.shape == (1, 320 + 2 * 384 + 2 * 384 + 192, 8, 8) == (1, 2048, 8, 8)
final_googlenet = TABLE1["5b"][6]
print(f"GoogLeNet 最后一个模块输出 {final_googlenet} 个通道，Inception-v3 输出 {x.shape[1]} 个")
assert final_googlenet == 1024 and x.shape[1] == 2 * final_googlenet
# --8<-- [end:v3]
