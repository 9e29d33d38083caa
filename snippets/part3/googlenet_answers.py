# --8<-- [start:imports]
from collections import OrderedDict

import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_relu(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, padding=k // 2), nn.ReLU())


class Inception(nn.Module):
    """与正文相同：reduce=False 时没有 1×1 降维，池化分支也没有 1×1 投影。"""

    def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool_proj, reduce=True):
        super().__init__()
        self.b1 = conv_relu(c_in, c1, 1)
        if reduce:
            self.b2 = nn.Sequential(conv_relu(c_in, c3r, 1), conv_relu(c3r, c3, 3))
            self.b3 = nn.Sequential(conv_relu(c_in, c5r, 1), conv_relu(c5r, c5, 5))
            self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(c_in, pool_proj, 1))
        else:
            self.b2, self.b3 = conv_relu(c_in, c3, 3), conv_relu(c_in, c5, 5)
            self.b4 = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """与正文相同：用前向钩子累加卷积层、全连接层的乘加次数。"""
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


TABLE1 = {  # Szegedy 等（2015）表 1：#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, 输出深度, 高和宽
    "3a": (64, 96, 128, 16, 32, 32, 256, 28), "3b": (128, 128, 192, 32, 96, 64, 480, 28),
    "4a": (192, 96, 208, 16, 48, 64, 512, 14), "4b": (160, 112, 224, 24, 64, 64, 512, 14),
    "4c": (128, 128, 256, 24, 64, 64, 512, 14), "4d": (112, 144, 288, 32, 64, 64, 528, 14),
    "4e": (256, 160, 320, 32, 128, 128, 832, 14), "5a": (256, 160, 320, 32, 128, 128, 832, 7),
    "5b": (384, 192, 384, 48, 128, 128, 1024, 7),
}


def googlenet(reduce: bool = True, head: str = "gap") -> nn.Sequential:
    """与正文的 googlenet 相同（省去 LRN，它没有参数、不改变形状）；reduce=False 换成朴素模块，
    head="flatten" 把 GAP 换成 VGG 式的展平 + 全连接（按 224×224 输入时的 7×7 特征图设定）。"""
    layers = OrderedDict(conv1=conv_relu(3, 64, 7, stride=2), pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
                         conv2_reduce=conv_relu(64, 64, 1), conv2=conv_relu(64, 192, 3),
                         pool2=nn.MaxPool2d(3, 2, ceil_mode=True))
    c_in = 192
    for name, (c1, c3r, c3, c5r, c5, pp, _, _) in TABLE1.items():
        if name in ("4a", "5a"):
            layers[f"pool{int(name[0]) - 1}"] = nn.MaxPool2d(3, 2, ceil_mode=True)
        layers[f"inception{name}"] = Inception(c_in, c1, c3r, c3, c5r, c5, pp, reduce=reduce)
        c_in = c1 + c3 + c5 + (pp if reduce else c_in)            # 朴素模块的池化分支原样输出 c_in 个通道
    if head == "gap":
        layers.update(avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(c_in, 1000))
    else:
        layers.update(flatten=nn.Flatten(), fc=nn.Linear(c_in * 7 * 7, 1000))
    return nn.Sequential(layers)
# --8<-- [end:imports]

# --8<-- [start:ex1]
c_in, c5r, c5, hw = 528, 32, 128, 14                              # inception (4e) 的 5×5 分支
with torch.device("meta"):
    with_red = nn.Sequential(nn.Conv2d(c_in, c5r, 1), nn.Conv2d(c5r, c5, 5, padding=2))
    without = nn.Conv2d(c_in, c5, 5, padding=2)
x = torch.empty(1, c_in, hw, hw, device="meta")
m_red, m_naive = count_macs(with_red, x), count_macs(without, x)
print(f"(4e) 的 5×5 分支，有 1×1 降维：乘加 {m_red}，参数量 {n_params(with_red)}")
print(f"(4e) 的 5×5 分支，没有降维：乘加 {m_naive}，参数量 {n_params(without)}")
print(f"乘加之比 {m_naive / m_red:.1f}")
assert m_red == (c_in * c5r + c5r * c5 * 25) * hw * hw            # 逐层公式
assert m_naive == c_in * c5 * 25 * hw * hw
assert m_naive / m_red > 14
# --8<-- [end:ex1]

# --8<-- [start:ex2]
with torch.device("meta"):
    net_gap, net_flat = googlenet(head="gap"), googlenet(head="flatten")
print(f"分类头的参数量：GAP + Linear {n_params(net_gap.fc)}，展平 + Linear {n_params(net_flat.fc)}")
print(f"整个网络：GAP 版 {n_params(net_gap)}，展平版 {n_params(net_flat)}")
print(f"展平版的分类头是整个 GAP 版网络的 {n_params(net_flat.fc) / n_params(net_gap):.1f} 倍")
assert n_params(net_flat.fc) > 7 * n_params(net_gap)
assert n_params(net_flat.fc) == 1024 * 7 * 7 * 1000 + 1000 and n_params(net_gap.fc) == 1024 * 1000 + 1000
for size in (224, 320):
    x = torch.empty(1, 3, size, size, device="meta")
    feat = net_gap[:-3](x)                                        # 去掉 avgpool、flatten、fc：5b 的输出
    print(f"输入 {size}×{size}：5b 输出 {tuple(feat.shape[1:])}，GAP 版输出 {tuple(net_gap(x).shape)}", end="")
    try:
        out = tuple(net_flat(x).shape)
    except RuntimeError:
        out = "形状不匹配，报错"
    print(f"，展平版输出 {out}")
    assert net_gap(x).shape == (1, 1000)
    assert (out == (1, 1000)) == (size == 224)                    # 展平版只接受 224×224
# --8<-- [end:ex2]

# --8<-- [start:ex3]
C = 64
full3 = nn.Conv2d(C, C, 3, padding=1, bias=False).to(device)
two2 = nn.Sequential(nn.Conv2d(C, C, 2, padding=1, bias=False), nn.ReLU(),   # 高宽 +1
                     nn.Conv2d(C, C, 2, bias=False)).to(device)                 # 高宽 -1，回到原尺寸
asym = nn.Sequential(nn.Conv2d(C, C, (1, 3), padding=(0, 1), bias=False), nn.ReLU(),
                     nn.Conv2d(C, C, (3, 1), padding=(1, 0), bias=False)).to(device)
x = torch.rand(1, C, 9, 9, device=device, requires_grad=True)
for name, m in [("3×3", full3), ("两个 2×2", two2), ("1×3 + 3×1", asym)]:
    with torch.no_grad():                                         # 权重取正，ReLU 不截断梯度
        for p in m.parameters():
            p.abs_()
    x.grad = None
    y = m(x)
    y[0, :, 4, 4].sum().backward()
    nz = x.grad[0].abs().sum(0) > 0
    rf = (int(nz.any(1).sum()), int(nz.any(0).sum()))
    print(f"{name}：参数量 {n_params(m):>5d}，相对 3×3 节省 {1 - n_params(m) / n_params(full3):.1%}，"
          f"感受野 {rf[0]}×{rf[1]}，输出 {tuple(y.shape)}")
    assert rf == (3, 3) and y.shape == x.shape
assert n_params(two2) * 9 == n_params(full3) * 8 and n_params(asym) * 3 == n_params(full3) * 2
# --8<-- [end:ex3]

# --8<-- [start:ex4]
x = torch.empty(1, 3, 224, 224, device="meta")
with torch.device("meta"):
    naive, reduced = googlenet(reduce=False), googlenet(reduce=True)
for label, net in [("朴素模块", naive), ("有降维", reduced)]:
    depths, h = [], x
    for name, layer in net.named_children():
        h = layer(h)
        if name.startswith("inception"):
            depths.append(h.shape[1])
    macs = count_macs(net, x)
    print(f"{label}：9 个模块的输出深度 {depths}")
    print(f"  全网参数量 {n_params(net)}，乘加 {macs / 1e9:.1f} G")
    if label == "朴素模块":
        naive_depths, naive_macs = depths, macs
    else:
        red_macs = macs
assert naive_depths == sorted(naive_depths) and naive_depths[-1] > 4 * 1024   # 深度逐模块单调变大
print(f"乘加之比 {naive_macs / red_macs:.1f}，参数量之比 {n_params(naive) / n_params(reduced):.1f}")
assert naive_macs > 7 * red_macs and n_params(naive) > 10 * n_params(reduced)
# --8<-- [end:ex4]
