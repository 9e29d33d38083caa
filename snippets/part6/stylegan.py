# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:mapping]
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


d_z = d_w = 32
mapping = MappingNetwork(d_z, d_w).to(device)
n_params = sum(p.numel() for p in mapping.parameters())
n_formula = d_w * (d_z + 1) + 7 * d_w * (d_w + 1)          # 逐层 d_out × (d_in + 1)
z = torch.randn(1000, d_z, device=device)
w = mapping(z)
print(f"映射网络：{tuple(z.shape)} → {tuple(w.shape)}，参数量 {n_params}（逐层公式 {n_formula}）")
assert n_params == n_formula == 8448
assert torch.allclose(pixel_norm(z).pow(2).mean(1), torch.ones(1000, device=device), atol=1e-5)
# --8<-- [end:mapping]

# --8<-- [start:adain]
def adain(x, y_s, y_b, eps=1e-5):
    """AdaIN(x, y) = y_s · (x − μ(x)) / σ(x) + y_b，μ、σ 在每个样本、每个通道的 H×W 上求（有偏方差）。
    x: (N, C, H, W)；y_s, y_b: (N, C)。"""
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return y_s[:, :, None, None] * (x - mu) / torch.sqrt(var + eps) + y_b[:, :, None, None]


x = torch.randn(4, 8, 16, 16, dtype=torch.float64, device=device) * 3 + 1
y_s = torch.rand(4, 8, dtype=torch.float64, device=device) * 2 + 0.5
y_b = torch.randn(4, 8, dtype=torch.float64, device=device)
builtin = F.instance_norm(x, eps=1e-5) * y_s[:, :, None, None] + y_b[:, :, None, None]
err_builtin = (adain(x, y_s, y_b) - builtin).abs().max().item()
out = adain(x, y_s, y_b, eps=0.0)                          # eps = 0 时统计量恰好等于风格
err_mean = (out.mean(dim=(2, 3)) - y_b).abs().max().item()
err_std = (out.std(dim=(2, 3), unbiased=False) - y_s).abs().max().item()
# 输入的每个通道先做任意的正缩放和平移（上一层的「风格」），AdaIN 的输出不变
a = torch.rand(4, 8, 1, 1, dtype=torch.float64, device=device) * 5 + 0.1
b = torch.randn(4, 8, 1, 1, dtype=torch.float64, device=device) * 5
err_invariant = (adain(a * x + b, y_s, y_b, eps=0.0) - out).abs().max().item()
print(f"AdaIN 与 F.instance_norm + 仿射的最大误差 {err_builtin:.1e}")
print(f"输出各通道：均值与 y_b 最大差 {err_mean:.1e}，标准差与 y_s 最大差 {err_std:.1e}")
print(f"输入各通道先做正缩放与平移后，输出的最大变化 {err_invariant:.1e}")
assert err_builtin < 1e-10 and err_mean < 1e-10 and err_std < 1e-10 and err_invariant < 1e-10
# --8<-- [end:adain]

# --8<-- [start:modconv]
def modulated_conv2d(x, weight, s, demodulate=True, eps=1e-8):
    """StyleGAN2 的调制卷积，分组卷积实现。x: (N, I, H, W)；weight: (O, I, k, k)；s: (N, I)。"""
    n, i, h, w_ = x.shape
    o, _, k, _ = weight.shape
    wm = weight[None] * s[:, None, :, None, None]                     # 调制：w'_ijk = s_i · w_ijk，(N, O, I, k, k)
    if demodulate:                                                    # 解调：除以 sqrt(Σ_{i,k} w'² + ε)
        wm = wm * torch.rsqrt(wm.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)
    out = F.conv2d(x.reshape(1, n * i, h, w_), wm.reshape(n * o, i, k, k), padding=k // 2, groups=n)
    return out.reshape(n, o, out.shape[-2], out.shape[-1])


def modulated_conv2d_loop(x, weight, s, demodulate=True, eps=1e-8):
    """对照：每个样本单独算出自己的权重，用普通卷积。"""
    outs = []
    for xn, sn in zip(x, s):
        wn = weight * sn[None, :, None, None]
        if demodulate:
            wn = wn / torch.sqrt(wn.pow(2).sum(dim=(1, 2, 3), keepdim=True) + eps)
        outs.append(F.conv2d(xn[None], wn, padding=weight.shape[-1] // 2))
    return torch.cat(outs)


x = torch.randn(5, 6, 8, 8, dtype=torch.float64, device=device)
weight = torch.randn(7, 6, 3, 3, dtype=torch.float64, device=device)
s = torch.rand(5, 6, dtype=torch.float64, device=device) * 2 + 0.1
for demod in (True, False):
    err = (modulated_conv2d(x, weight, s, demod) - modulated_conv2d_loop(x, weight, s, demod)).abs().max().item()
    print(f"demodulate={demod}：分组卷积与逐样本普通卷积的最大误差 {err:.1e}")
    assert err < 1e-10
# 等价写法：先把输入第 i 个通道乘 s_i，用共享的权重卷积，再把第 j 个输出通道乘解调系数 d_j
d = torch.rsqrt((weight[None] * s[:, None, :, None, None]).pow(2).sum(dim=(2, 3, 4)) + 1e-8)   # (N, O)
alt = F.conv2d(x * s[:, :, None, None], weight, padding=1) * d[:, :, None, None]
err_alt = (modulated_conv2d(x, weight, s) - alt).abs().max().item()
print(f"「缩放输入 → 普通卷积 → 缩放输出」与之最大误差 {err_alt:.1e}")
assert err_alt < 1e-10
# --8<-- [end:modconv]

# --8<-- [start:demod]
# 输入各元素独立、方差为 1。取 3×3 输入经 3×3 卷积（填充 1）后正中的像素：它的感受野正好是整张输入，
# 不受零填充影响；每个样本只取这一个值，n 个值彼此独立。
n, c_in, c_out = 10000, 16, 16
weight = torch.randn(c_out, c_in, 3, 3, device=device)
affine = EqualizedLinear(d_w, c_in, gain=1.0, bias_init=1.0).to(device)   # 风格 s = A(w)，偏置初始化为 1
with torch.no_grad():
    s = affine(mapping(torch.randn(n, d_z, device=device)))               # 每个样本自己的风格
    x = torch.randn(n, c_in, 3, 3, device=device)
    y = modulated_conv2d(x, weight, s)[:, :, 1, 1]                         # (n, c_out)
std = y.pow(2).mean(0).sqrt()                                             # 已知均值为 0，用二阶矩开方
tol = 5 / math.sqrt(2 * n)       # 独立的 N(0, 1) 样本，sqrt(均方) 的标准误约 1/sqrt(2n)；取 5 个标准误
print(f"风格各分量的范围 [{s.min().item():.2f}, {s.max().item():.2f}]")
print(f"解调后 {c_out} 个输出通道的标准差：最小 {std.min().item():.4f}，最大 {std.max().item():.4f}"
      f"（容差 ±{tol:.4f}）")
assert (std - 1).abs().max().item() < tol

print("风格统一放大 α 倍    不解调：实测/预测的标准差    解调：标准差")
norms = weight.pow(2).sum(dim=(1, 2, 3)).sqrt()                           # 每个输出通道的 ‖w_j‖
for alpha in (0.5, 1.0, 3.0):
    s_const = torch.full((n, c_in), alpha, device=device)
    with torch.no_grad():
        y_mod = modulated_conv2d(x, weight, s_const, demodulate=False)[:, :, 1, 1]
        y_dem = modulated_conv2d(x, weight, s_const)[:, :, 1, 1]
    std_mod, std_dem = y_mod.pow(2).mean(0).sqrt(), y_dem.pow(2).mean(0).sqrt()
    pred = alpha * norms                                                  # 不解调时的理论标准差 α‖w_j‖
    print(f"{alpha:8.1f}         {std_mod.mean().item():8.3f} / {pred.mean().item():8.3f}"
          f"         {std_dem.mean().item():.4f}")
    assert ((std_mod / pred) - 1).abs().max().item() < tol               # 不解调：随风格成比例变化
    assert (std_dem - 1).abs().max().item() < tol                        # 解调：与风格无关
# --8<-- [end:demod]

# --8<-- [start:eqlr]
# 同一份 N(0, 1) 随机数：普通层把 c·W0 存为参数（He 初始化），均衡层存 W0、前向时乘 c。
lr, steps = 1e-4, 10
print("fan_in    c        前向最大差    相对更新：普通    均衡")
ratios = {}
for fan_in in (16, 256, 4096):
    torch.manual_seed(fan_in)
    w0 = torch.randn(32, fan_in, dtype=torch.float64, device=device)
    xb = torch.randn(64, fan_in, dtype=torch.float64, device=device)
    target = torch.randn(64, 32, dtype=torch.float64, device=device)
    c = math.sqrt(2 / fan_in)
    p_conv = nn.Parameter(c * w0.clone())                  # 普通：参数就是实际权重
    p_eq = nn.Parameter(w0.clone())                        # 均衡：实际权重 = c · 参数
    forward_gap = (F.linear(xb, p_conv) - F.linear(xb, c * p_eq)).abs().max().item()
    rel = []
    for p, scale in ((p_conv, 1.0), (p_eq, c)):
        before = (scale * p).detach().clone()
        opt = torch.optim.Adam([p], lr=lr)
        for _ in range(steps):
            loss = F.mse_loss(F.linear(xb, scale * p), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rel.append(((scale * p).detach() - before).norm().item() / before.norm().item())
    ratios[fan_in] = rel
    print(f"{fan_in:6d}  {c:.4f}    {forward_gap:.1e}         {rel[0]:.5f}      {rel[1]:.5f}")
    assert forward_gap < 1e-12
conv_growth = ratios[4096][0] / ratios[16][0]
eq_spread = max(r[1] for r in ratios.values()) / min(r[1] for r in ratios.values())
print(f"普通层：fan_in 从 16 到 4096，相对更新放大 {conv_growth:.2f} 倍（sqrt(4096/16) = 16）")
print(f"均衡层：三个 fan_in 的相对更新最大/最小 = {eq_spread:.3f}")
assert abs(conv_growth / 16 - 1) < 0.1 and eq_spread < 1.1
# --8<-- [end:eqlr]

# --8<-- [start:generator]
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


gen = TinyStyleGenerator().to(device)
n_gen = sum(p.numel() for p in gen.parameters())
ch = 32
n_gen_formula = (ch * 16 + 7 * ch * ch * 9 + 8 * (2 * ch + 2 * ch * (d_w + 1))
                 + (ch + 1))                     # 常量 + 7 个卷积 + 8 层的噪声、偏置、仿射 + 1×1 卷积
print(f"生成器参数量 {n_gen}（逐层公式 {n_gen_formula}），映射网络 {n_params}")
assert n_gen == n_gen_formula
# --8<-- [end:generator]

# --8<-- [start:mixing]
def low_pass(img):
    """4×4 块平均：32×32 → 8×8，只留低频；先减去所有图的平均图（各图共有的结构）。"""
    return F.avg_pool2d(img - mean_img, 4).flatten(1)


def corr(u, v):
    u, v = u - u.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    return (u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1))


n_pairs = 64
with torch.no_grad():
    w1 = mapping(torch.randn(n_pairs, d_z, device=device))
    w2 = mapping(torch.randn(n_pairs, d_z, device=device))

    def mix(k):                                  # 前 k 层（粗）用 w1，其余（细）用 w2
        return gen(torch.stack([w1] * k + [w2] * (8 - k), dim=1))

    img_a, img_b = mix(8), mix(0)
    mean_img = torch.cat([img_a, img_b]).mean(0, keepdim=True)
    print("粗层取自 w1 的层数 k    低频与 A 的相关    低频与 B 的相关    整图均值与 B 的最大差")
    rows, imgs_k = {}, {}
    for k in (2, 4, 6):
        img = imgs_k[k] = mix(k)
        ca, cb = corr(low_pass(img), low_pass(img_a)).mean().item(), corr(low_pass(img), low_pass(img_b)).mean().item()
        gap = (img.mean(dim=(1, 2, 3)) - img_b.mean(dim=(1, 2, 3))).abs().max().item()
        rows[k] = (ca, cb)
        print(f"{k:12d}              {ca:.3f}              {cb:.3f}              {gap:.1e}")
        assert gap < 1e-4                        # 整图亮度只由最后一层的风格决定
    spread = (img_a.mean(dim=(1, 2, 3)) - img_b.mean(dim=(1, 2, 3))).abs().mean().item()
    print(f"对照：A 与 B 的整图均值平均相差 {spread:.3f}")
assert rows[2][0] < rows[4][0] < rows[6][0] and rows[2][1] > rows[4][1] > rows[6][1]
assert rows[6][0] > rows[6][1] and rows[2][0] < rows[2][1] and spread > 0.1

fig, axes = plt.subplots(4, 5, figsize=(7.5, 6))
columns = [img_a, imgs_k[6], imgs_k[4], imgs_k[2], img_b]
titles = ["A: w1 everywhere", "k = 6", "k = 4", "k = 2", "B: w2 everywhere"]
for r in range(4):
    for col, (imgs, title) in enumerate(zip(columns, titles)):
        axes[r, col].imshow(imgs[r, 0].cpu(), cmap="gray")
        axes[r, col].axis("off")
        if r == 0:
            axes[r, col].set_title(title, fontsize=9)
fig.savefig("stylegan_mixing.svg", bbox_inches="tight")
# --8<-- [end:mixing]
