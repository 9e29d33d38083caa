# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def receptive_field(layers):
    """layers: [(核边长 f, 步幅 s, 空洞率 d), ...]；返回感受野边长 r（见 3.1 的递推公式）。"""
    r, j = 1, 1
    for f, s, d in layers:
        r += (f - 1) * d * j
        j *= s
    return r


def measured_field(layers, size):
    """全 1 权重、无偏置、无填充的单通道卷积堆叠；从中间的输出像素反向传播。
    返回（梯度非零的行跨度, 列跨度, 梯度非零的像素个数, 梯度图）。"""
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, device=device, requires_grad=True)
    y = x
    for f, s, d in layers:
        w = torch.ones(1, 1, f, f, dtype=torch.float64, device=device)
        y = F.conv2d(y, w, stride=s, dilation=d)
    h, w_ = y.shape[-2:]
    y[0, 0, h // 2, w_ // 2].backward()
    g = x.grad[0, 0] != 0
    rows, cols = g.any(1).nonzero(), g.any(0).nonzero()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1), int(g.sum()), x.grad[0, 0].cpu()
# --8<-- [end:setup]


# --8<-- [start:output_stride]
def backbone_layers(output_stride):
    """5 个阶段，每段两层 3×3 卷积，第一层步幅 2：输出步幅 32。
    要输出步幅 16（或 8），就把最后一段（两段）第一层的步幅改成 1，
    并把其后各层的空洞率乘 2（每去掉一个步幅 2，后面的层都再乘 2）。"""
    layers, rate = [], 1
    for stage in range(5):
        keep = 2 ** (stage + 1) <= output_stride          # 这一段还降采样吗
        layers.append((3, 2 if keep else 1, rate))
        if not keep:
            rate *= 2
        layers.append((3, 1, rate))
    return layers


def feature_size(layers, h):
    """带「同尺寸」填充 p = d(f-1)/2 时的输出边长（3.1 的公式）。"""
    for f, s, d in layers:
        h = (h + 2 * (d * (f - 1) // 2) - d * (f - 1) - 1) // s + 1
    return h


C = 8
print("输出步幅  感受野(公式/梯度)  非零像素  512 输入的特征图  参数量  各层 步幅/空洞率")
fields, sizes = {}, {}
for os_ in (32, 16, 8):
    layers = backbone_layers(os_)
    r = receptive_field(layers)
    rh, rw, n, _ = measured_field(layers, 2 * r + 1)
    # 真实地搭一遍（C 个通道、同尺寸填充），量特征图边长、数参数
    net = nn.Sequential(*[nn.Conv2d(1 if i == 0 else C, C, f, stride=s, dilation=d, padding=d * (f - 1) // 2)
                          for i, (f, s, d) in enumerate(layers)]).to(device)
    out = net(torch.zeros(1, 1, 512, 512, device=device))
    params = sum(p.numel() for p in net.parameters())
    params_formula = (1 * C * 9 + C) + (len(layers) - 1) * (C * C * 9 + C)   # 每层 C_out·C_in·f² + C_out
    assert rh == rw == r and n == r * r                       # 公式 == 梯度；感受野里没有洞
    assert out.shape[-1] == feature_size(layers, 512) == 512 // os_
    assert params == params_formula
    fields[os_], sizes[os_] = r, out.shape[-1]
    print(f"{os_:>6}   {r:>7} / {rh:<7} {n:>8}   {out.shape[-1]:>7}×{out.shape[-1]:<7} {params:>8}  "
          + " ".join(f"{s}/{d}" for _, s, d in layers))
assert fields[32] == fields[16] == fields[8]                  # 同样的感受野……
assert sizes[8] == 2 * sizes[16] == 4 * sizes[32]             # ……特征图却大 2 倍、4 倍
# --8<-- [end:output_stride]


# --8<-- [start:multigrid]
# 输出步幅 16 时第 5 段（ResNet 的 block4）里三层 3×3 卷积的空洞率：
# 不用 multi-grid 都是 2；multi-grid (1, 2, 4) 乘上这一段的基础空洞率 2，得 (2, 4, 8)
prefix = backbone_layers(16)[:8]                              # 前 4 段，输出步幅 16
print("block4 的空洞率  感受野(公式/梯度)  没有洞")
for rates in ((2, 2, 2), (2, 4, 8)):
    layers = prefix + [(3, 1, r) for r in rates]
    r = receptive_field(layers)
    rh, rw, n, _ = measured_field(layers, r + 32)
    assert rh == rw == r and n == r * r                       # 前面的层把洞填满了
    print(f"{str(rates):<16} {r:>6} / {rh:<6}   {n == r * r}")
    fields[rates] = r
assert fields[(2, 4, 8)] > fields[(2, 2, 2)]
# --8<-- [end:multigrid]


# --8<-- [start:gridding]
print("空洞率       跨度  被读到的输入位置/跨度内的位置")
reach = {}
for rates in ((6,), (2, 2), (2, 2, 2), (1, 2, 3), (1, 2, 5)):
    layers = [(3, 1, r) for r in rates]
    r = receptive_field(layers)
    rh, rw, n, grad = measured_field(layers, r + 4)
    # 独立的数法：一维上能到达的偏移是各层 {-d, 0, d} 的和集，二维是它的笛卡尔积
    offsets = {0}
    for d in rates:
        offsets = {o + t for o in offsets for t in (-d, 0, d)}
    assert rh == rw == r and n == len(offsets) ** 2
    reach[rates] = (n, r * r, grad)
    print(f"{str(rates):<12} {r:>4}   {n:>4} / {r * r}")
assert reach[(6,)][0] == 9 and reach[(2, 2, 2)][0] == 49      # 单一的空洞率：棋盘状的洞
assert reach[(2, 2, 2)][1] == reach[(1, 2, 3)][1]             # (2,2,2) 与 (1,2,3) 跨度相同，
assert reach[(1, 2, 3)][0] == reach[(1, 2, 3)][1]             # 后者没有洞
assert reach[(1, 2, 5)][0] == reach[(1, 2, 5)][1]

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, rates in zip(axes, ((6,), (2, 2, 2), (1, 2, 3))):
    ax.imshow(reach[rates][2].numpy(), cmap="Blues")
    ax.set_title(f"空洞率 {rates}：{reach[rates][0]}/{reach[rates][1]}")
    ax.set_xticks([]), ax.set_yticks([])
fig.savefig("deeplab_gridding.svg", bbox_inches="tight")
print("saved deeplab_gridding.svg")
# --8<-- [end:gridding]


# --8<-- [start:aspp]
def conv_bn_relu(c_in, c_out, k=1, rate=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=rate * (k - 1) // 2, dilation=rate, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ASPP(nn.Module):
    """DeepLab v3 的 ASPP：1×1 卷积、三个 3×3 空洞卷积、图像级池化，拼接后 1×1 投影。"""

    def __init__(self, c_in, c_out, rates=(6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(c_in, c_out)] +
                                      [conv_bn_relu(c_in, c_out, 3, r) for r in rates])
        self.pool = conv_bn_relu(c_in, c_out)                 # 作用在全局平均池化后的 1×1 特征上
        self.project = conv_bn_relu(c_out * (len(rates) + 2), c_out)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        g = self.pool(F.adaptive_avg_pool2d(x, 1))            # (N, c_out, 1, 1)
        outs.append(F.interpolate(g, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))


def aspp_params(c_in, c_out, n_rates=3):
    conv = c_in * c_out * (1 + 9 * n_rates + 1) + (n_rates + 2) * c_out * c_out   # 卷积都不带偏置
    bn = 2 * c_out * (n_rates + 3)                                                # 每个 BN 有 γ、β
    return conv + bn


# 论文的尺寸：ResNet-101 / Xception 的 2048 通道，输出 256 通道；在 meta 设备上只数参数
with torch.device("meta"):
    big = ASPP(2048, 256)
n_big = sum(p.numel() for p in big.parameters())
assert n_big == aspp_params(2048, 256)
print("ASPP(2048 → 256) 参数量:", n_big, "= 公式", aspp_params(2048, 256))

# 小尺寸真实前向：513×513 的输入在输出步幅 16 时特征图为 33×33
aspp = ASPP(64, 32).to(device).eval()
x = torch.randn(2, 64, 33, 33, device=device)
y = aspp(x)
shapes = [tuple(b(x).shape) for b in aspp.branches]
assert all(s == (2, 32, 33, 33) for s in shapes) and tuple(y.shape) == (2, 32, 33, 33)
assert sum(p.numel() for p in aspp.parameters()) == aspp_params(64, 32)
print("小 ASPP(64 → 32) 各分支:", shapes, "拼接:", (2, 32 * 5, 33, 33), "输出:", tuple(y.shape))
# --8<-- [end:aspp]


# --8<-- [start:bilinear]
def interp_matrix(n_in, n_out, align_corners):
    """一维双线性插值的 (n_out, n_in) 权重矩阵。
    align_corners=True：两端像素的中心对齐，源坐标 = i·(n_in-1)/(n_out-1)；
    align_corners=False：像素当作面积为 1 的格子，源坐标 = (i+0.5)·n_in/n_out - 0.5，小于 0 的按 0。"""
    i = torch.arange(n_out, dtype=torch.float64)
    if align_corners:
        src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else torch.zeros(1, dtype=torch.float64)
    else:
        src = ((i + 0.5) * n_in / n_out - 0.5).clamp(min=0)
    x0 = src.floor().long().clamp(max=n_in - 1)
    x1 = (x0 + 1).clamp(max=n_in - 1)
    lam = src - x0
    W = torch.zeros(n_out, n_in, dtype=torch.float64)
    W[torch.arange(n_out), x0] += 1 - lam
    W[torch.arange(n_out), x1] += lam
    return W


def bilinear(x, size, align_corners):
    """x: (N, C, H, W)；可分离：先沿行、再沿列做一维插值，out = W_y · X · W_xᵀ。"""
    Wy = interp_matrix(x.shape[-2], size[0], align_corners).to(x.device)
    Wx = interp_matrix(x.shape[-1], size[1], align_corners).to(x.device)
    return Wy @ x @ Wx.T


errs = []
for (h, w), size in (((9, 9), (36, 36)), ((33, 33), (132, 132)), ((7, 5), (29, 13)), ((6, 8), (3, 5))):
    x = torch.randn(2, 3, h, w, dtype=torch.float64, device=device)
    for ac in (False, True):
        ref = F.interpolate(x, size=size, mode="bilinear", align_corners=ac)
        errs.append((bilinear(x, size, ac) - ref).abs().max().item())
print(f"从零实现的双线性插值与 F.interpolate 的最大差（4 组尺寸 × 两种 align_corners）: {max(errs):.1e}")
assert max(errs) < 1e-10
x = torch.randn(1, 1, 9, 9, dtype=torch.float64, device=device)
gap = (bilinear(x, (36, 36), True) - bilinear(x, (36, 36), False)).abs().max().item()
print(f"同一输入 ×4 上采样，align_corners=True 与 False 的最大差: {gap:.3f}")
assert gap > 0.01                                             # 两种约定确实不同，训练与推理要一致
# --8<-- [end:bilinear]


# --8<-- [start:decoder]
class TinyDeepLabV3Plus(nn.Module):
    """通道缩小的 DeepLab v3+：骨干（输出步幅 16，另引出输出步幅 4 的低层特征）→ ASPP → 解码器。"""

    def __init__(self, n_classes=5, c=(16, 32, 64), c_aspp=32, c_low=8, c_dec=32):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(3, c[0], 3), nn.MaxPool2d(2),            # /2
                                  nn.Conv2d(c[0], c[0], 3, stride=2, padding=1))        # /4：低层特征
        self.deep = nn.Sequential(nn.ReLU(), nn.Conv2d(c[0], c[1], 3, stride=2, padding=1),  # /8
                                  conv_bn_relu(c[1], c[2], 3), nn.Conv2d(c[2], c[2], 3, stride=2, padding=1),  # /16
                                  conv_bn_relu(c[2], c[2], 3, rate=2))                  # 之后不再降采样，用空洞率
        self.aspp = ASPP(c[2], c_aspp)
        self.reduce = conv_bn_relu(c[0], c_low)                                         # 1×1 压缩低层特征
        self.refine = nn.Sequential(conv_bn_relu(c_aspp + c_low, c_dec, 3), conv_bn_relu(c_dec, c_dec, 3))
        self.classify = nn.Conv2d(c_dec, n_classes, 1)

    def forward(self, img, trace=None):
        low = self.stem(img)
        high = self.aspp(self.deep(low))
        up = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)   # ×4
        cat = torch.cat([up, self.reduce(low)], dim=1)
        logits4 = self.classify(self.refine(cat))
        logits = F.interpolate(logits4, size=img.shape[-2:], mode="bilinear", align_corners=False)  # ×4
        if trace is not None:
            trace.update(low=low, high=high, up=up, cat=cat, logits4=logits4, logits=logits)
        return logits


model = TinyDeepLabV3Plus().to(device).eval()
img = torch.randn(2, 3, 128, 128, device=device)
t = {}
with torch.no_grad():
    model(img, trace=t)
for k, v in t.items():
    print(f"{k:<8} {tuple(v.shape)}")
assert t["low"].shape[-1] == 128 // 4 and t["high"].shape[-1] == 128 // 16
assert t["up"].shape[-2:] == t["low"].shape[-2:] and t["cat"].shape[1] == 32 + 8
assert tuple(t["logits"].shape) == (2, 5, 128, 128)          # 输出与输入同样大，不是 1/8
with torch.no_grad():                                         # 最后一步就是双线性插值，没有可学习的参数
    assert (t["logits"] - bilinear(t["logits4"].double(), (128, 128), False)).abs().max() < 1e-4


def decoder_params(c_aspp, c_low_in, c_low, c_dec, n_classes):
    reduce = c_low_in * c_low + 2 * c_low
    refine = 9 * (c_aspp + c_low) * c_dec + 2 * c_dec + 9 * c_dec * c_dec + 2 * c_dec
    return reduce + refine + c_dec * n_classes + n_classes      # 分类层带偏置；两次上采样 0 个参数


n_dec = sum(p.numel() for m in (model.reduce, model.refine, model.classify) for p in m.parameters())
assert n_dec == decoder_params(32, 16, 8, 32, 5)
with torch.device("meta"):                                    # 论文尺寸：低层 256 → 48，两层 256 通道，21 类
    paper = nn.ModuleList([conv_bn_relu(256, 48), conv_bn_relu(304, 256, 3),
                           conv_bn_relu(256, 256, 3), nn.Conv2d(256, 21, 1)])
n_paper = sum(p.numel() for p in paper.parameters())
assert n_paper == decoder_params(256, 256, 48, 256, 21)
print("小模型解码器参数量:", n_dec, "；论文尺寸的解码器参数量:", n_paper)
# --8<-- [end:decoder]
