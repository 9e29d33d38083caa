# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


# 以下定义与正文相同
class EqualizedLinear(nn.Module):
    """均衡学习率的全连接层：参数按 N(0, 1) 存放，前向时乘 c = gain / sqrt(fan_in)（后文「均衡学习率」一段细讲）。"""

    def __init__(self, d_in, d_out, gain=math.sqrt(2), bias_init=0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in))
        self.bias = nn.Parameter(torch.full((d_out,), float(bias_init)))
        self.c = gain / math.sqrt(d_in)

    def forward(self, x):
        return F.linear(x, self.weight * self.c, self.bias)


def pixel_norm(z, eps=1e-8):
    """把每个 z 缩放到各分量平方的均值为 1（StyleGAN 在映射网络的入口这样做）。"""
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z → w：8 个全连接层，每层后接 LeakyReLU(0.2)。"""

    def __init__(self, d_z=32, d_w=32, n_layers=8):
        super().__init__()
        layers = []
        for i in range(n_layers):
            layers += [EqualizedLinear(d_z if i == 0 else d_w, d_w), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(pixel_norm(z))


def adain(x, y_s, y_b, eps=1e-5):
    """AdaIN(x, y) = y_s · (x − μ(x)) / σ(x) + y_b，μ、σ 在每个样本、每个通道的 H×W 上求（有偏方差）。
    x: (N, C, H, W)；y_s, y_b: (N, C)。"""
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return y_s[:, :, None, None] * (x - mu) / torch.sqrt(var + eps) + y_b[:, :, None, None]


def modulated_conv2d(x, weight, s, demodulate=True, eps=1e-8):
    """StyleGAN2 的调制卷积，分组卷积实现。x: (N, I, H, W)；weight: (O, I, k, k)；s: (N, I)。"""
    n, i, h, w_ = x.shape
    o, _, k, _ = weight.shape
    wm = weight[None] * s[:, None, :, None, None]                     # 调制：w'_ijk = s_i · w_ijk，(N, O, I, k, k)
    if demodulate:                                                    # 解调：除以 sqrt(Σ_{i,k} w'² + ε)
        wm = wm * torch.rsqrt(wm.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)
    out = F.conv2d(x.reshape(1, n * i, h, w_), wm.reshape(n * o, i, k, k), padding=k // 2, groups=n)
    return out.reshape(n, o, out.shape[-2], out.shape[-1])


class EqualizedConv2d(nn.Module):
    def __init__(self, c_in, c_out, k=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.c = math.sqrt(2 / (c_in * k * k))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.c, padding=self.weight.shape[-1] // 2)


class StyleLayer(nn.Module):
    """StyleGAN v1 的一层：[卷积] → 加噪声 → 偏置 → LeakyReLU → AdaIN(风格 A(w))。"""

    def __init__(self, channels, d_w, conv=True):
        super().__init__()
        self.conv = EqualizedConv2d(channels, channels) if conv else None
        self.noise_strength = nn.Parameter(torch.zeros(channels))   # 论文把噪声的缩放初始化为 0
        self.bias = nn.Parameter(torch.zeros(channels))
        self.affine = EqualizedLinear(d_w, 2 * channels, gain=1.0)
        with torch.no_grad():
            self.affine.bias[:channels] = 1.0                        # y_s 的偏置为 1，y_b 的偏置为 0

    def forward(self, x, w):
        if self.conv is not None:
            x = self.conv(x)
        noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
        x = x + self.noise_strength[None, :, None, None] * noise + self.bias[None, :, None, None]
        x = F.leaky_relu(x, 0.2)
        y_s, y_b = self.affine(w).chunk(2, dim=1)
        return adain(x, y_s, y_b)


class TinyStyleGenerator(nn.Module):
    """常量 4×4 输入，分辨率 4、8、16、32 各两层，共 8 个风格；最后 1×1 卷积成灰度图。"""

    def __init__(self, channels=32, d_w=32):
        super().__init__()
        self.const = nn.Parameter(torch.randn(1, channels, 4, 4))
        self.layers = nn.ModuleList([StyleLayer(channels, d_w, conv=i > 0) for i in range(8)])
        self.to_gray = nn.Conv2d(channels, 1, 1)

    def forward(self, ws):                       # ws: (N, 8, d_w)，每层一个 w
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.layers):
            if i in (2, 4, 6):                   # 每两层之后把分辨率加倍
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = layer(x, ws[:, i])
        return self.to_gray(x)


# --8<-- [end:imports]

# --8<-- [start:ex1]
# 输入不再是各元素独立：16 个输入通道是同一张 N(0, 1) 图（彼此完全相关）
n, c_in, c_out = 10000, 16, 16
weight = torch.randn(c_out, c_in, 3, 3, device=device)
s = torch.rand(n, c_in, device=device) + 0.5                     # 正的风格
tol = 5 / math.sqrt(2 * n)
with torch.no_grad():
    x_iid = torch.randn(n, c_in, 3, 3, device=device)
    x_same = torch.randn(n, 1, 3, 3, device=device).expand(-1, c_in, -1, -1)
    std_iid = modulated_conv2d(x_iid, weight, s)[:, :, 1, 1].pow(2).mean(0).sqrt()
    std_same = modulated_conv2d(x_same, weight, s)[:, :, 1, 1].pow(2).mean(0).sqrt()
print(f"各元素独立：输出通道标准差 {std_iid.min().item():.3f} ~ {std_iid.max().item():.3f}")
# 输入通道相同时 y_j = Σ_k (Σ_i w''_ijk) x_k，方差为 Σ_k (Σ_i w''_ijk)²，不再是 Σ_{i,k} w''_ijk² = 1
wm = weight[None] * s[:, None, :, None, None]
wd = wm * torch.rsqrt(wm.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
pred = wd.sum(dim=2).pow(2).sum(dim=(2, 3)).mean(0).sqrt()  # (c_out,)
print(f"通道完全相关：输出通道标准差 {std_same.min().item():.3f} ~ {std_same.max().item():.3f}"
      f"（按上式预测 {pred.min().item():.3f} ~ {pred.max().item():.3f}）")
assert (std_iid - 1).abs().max().item() < tol
assert ((std_same / pred) - 1).abs().max().item() < tol         # 与预测一致
assert (std_same - 1).abs().max().item() > 5 * tol              # 远在容差之外：标准差不再是 1
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 同一份权重、同一批数据，各走一步 SGD，比较「实际权重」的更新量
lr = 0.1
print("fan_in    c²          均衡/普通 的实际更新之比")
for fan_in in (16, 256, 4096):
    w0 = torch.randn(32, fan_in, dtype=torch.float64, device=device)
    xb = torch.randn(64, fan_in, dtype=torch.float64, device=device)
    target = torch.randn(64, 32, dtype=torch.float64, device=device)
    c = math.sqrt(2 / fan_in)
    steps = []
    for p, scale in ((nn.Parameter(c * w0.clone()), 1.0), (nn.Parameter(w0.clone()), c)):
        before = (scale * p).detach().clone()
        opt = torch.optim.SGD([p], lr=lr)
        F.mse_loss(F.linear(xb, scale * p), target).backward()
        opt.step()
        steps.append((scale * p).detach() - before)
    ratio = (steps[1].norm() / steps[0].norm()).item()
    rel_err = ((steps[1] - c * c * steps[0]).norm() / steps[1].norm()).item()   # 方向也相同
    print(f"{fan_in:6d}  {c * c:.6f}    {ratio:.6f}（与 c² 倍普通更新的相对差 {rel_err:.1e}）")
    assert rel_err < 1e-8
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 截断技巧：w' = w̄ + ψ (w − w̄)，w̄ 是大量 w 的平均
mapping = MappingNetwork().to(device)
gen = TinyStyleGenerator().to(device)
with torch.no_grad():
    w_bar = mapping(torch.randn(10000, 32, device=device)).mean(0)
    w = mapping(torch.randn(64, 32, device=device))
    spreads = []
    for psi in (1.0, 0.7, 0.4, 0.0):
        wt = w_bar + psi * (w - w_bar)
        img = gen(wt[:, None].expand(-1, 8, -1))
        spreads.append(img.std(dim=0).mean().item())              # 64 张图逐像素的标准差，再对像素平均
        print(f"ψ = {psi:.1f}：样本间逐像素标准差的平均 {spreads[-1]:.4f}")
assert spreads[0] > spreads[1] > spreads[2] > spreads[3] and spreads[3] < 1e-5
# --8<-- [end:ex3]
