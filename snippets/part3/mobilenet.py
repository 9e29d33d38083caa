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


# --8<-- [start:dsconv]
def depthwise_conv(x: torch.Tensor, K: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """逐深度卷积：x (B, M, H, W)，K (M, k, k)。第 m 个 k×k 卷积核只作用在第 m 个通道上。"""
    B, M, H, W = x.shape
    k = K.shape[-1]
    xp = F.pad(x, (padding, padding, padding, padding))
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    out = x.new_zeros(B, M, Ho, Wo)
    for u in range(k):                    # 对卷积核的每个位置 (u, v) 累加一次
        for v in range(k):
            patch = xp[:, :, u:u + stride * (Ho - 1) + 1:stride, v:v + stride * (Wo - 1) + 1:stride]
            out += K[:, u, v].view(1, M, 1, 1) * patch      # 每个通道乘自己的权重，通道之间不相加
    return out


def pointwise_conv(x: torch.Tensor, Wp: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """逐点卷积：Wp (N, M)。在每个像素上把 M 个通道线性组合成 N 个，就是 1×1 卷积。"""
    return torch.einsum("nm,bmhw->bnhw", Wp, x) + b.view(1, -1, 1, 1)


M, N, k = 8, 16, 3
x = torch.randn(2, M, 9, 9, dtype=torch.float64, device=device)
for stride in (1, 2):
    dw = nn.Conv2d(M, M, k, stride, padding=1, groups=M, bias=False).to(device, torch.float64)
    pw = nn.Conv2d(M, N, 1).to(device, torch.float64)
    ours = pointwise_conv(depthwise_conv(x, dw.weight[:, 0], stride, padding=1), pw.weight[:, :, 0, 0], pw.bias)
    ref = pw(dw(x))                                         # 内置：groups=M 的卷积，再接 1×1 卷积
    err = (ours - ref).abs().max().item()
    print(f"stride={stride}：x {tuple(x.shape)} -> {tuple(ours.shape)}，"
          f"depthwise 权重 {tuple(dw.weight.shape)}，pointwise 权重 {tuple(pw.weight.shape)}，最大误差 {err:.1e}")
    assert ours.shape == ref.shape and err < 1e-10
# --8<-- [end:dsconv]


# --8<-- [start:count]
def count_macs(model: nn.Module, in_shape: tuple) -> list:
    """用前向钩子数一个样本的乘加次数，返回 [(层名, 层, 乘加数)]，按执行顺序。
    卷积：输出元素个数 × 每个输出元素读入的数（C_in/groups · k_h · k_w）；全连接：输入维度 × 输出维度。
    模型与输入都在 meta 设备上：只有形状，没有数值，不占内存，也几乎不花时间。"""
    rows = []

    def hook(name):
        def record(layer, inputs, out):
            if isinstance(layer, nn.Conv2d):
                per_output = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
                rows.append((name, layer, out[0].numel() * per_output))
            else:
                rows.append((name, layer, layer.in_features * layer.out_features))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.empty(1, *in_shape, device="meta"))
    for h in handles:
        h.remove()
    return rows


def total(rows: list) -> int:
    return sum(macs for _, _, macs in rows)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def standard(M: int, N: int, k: int, s: int = 1) -> nn.Module:
    return nn.Conv2d(M, N, k, s, k // 2, bias=False)


def separable(M: int, N: int, k: int, s: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(M, M, k, s, k // 2, groups=M, bias=False),   # depthwise
                         nn.Conv2d(M, N, 1, bias=False))                        # pointwise


for M, N, k, D, s in [(32, 64, 3, 112, 1), (512, 512, 3, 14, 1), (64, 128, 5, 28, 1),
                      (128, 256, 7, 14, 1), (256, 512, 3, 28, 2)]:
    with torch.device("meta"):
        std, sep = standard(M, N, k, s), separable(M, N, k, s)
    c_std, c_sep = total(count_macs(std, (M, D, D))), total(count_macs(sep, (M, D, D)))
    G = (D + 2 * (k // 2) - k) // s + 1                     # 输出边长
    assert c_std == k * k * M * N * G * G                   # 钩子数出的 == 公式 D_K²·M·N·D²
    assert c_sep == k * k * M * G * G + M * N * G * G       # == D_K²·M·D² + M·N·D²
    ratio = Fraction(c_sep, c_std)
    assert ratio == Fraction(1, N) + Fraction(1, k * k)     # 精确的有理数相等
    assert Fraction(n_params(sep), n_params(std)) == ratio  # 参数量之比也一样（不带偏置时）
    print(f"M={M:3d} N={N:3d} k={k} D_F={D:3d} s={s}：标准 {c_std:>9}，可分离 {c_sep:>8}，"
          f"比值 {ratio} = 1/{N} + 1/{k * k} ≈ {float(ratio):.4f}")
# --8<-- [end:count]

# --8<-- [start:multipliers]
# 论文表 3：一层 14×14×512 -> 14×14×512 的 3×3 卷积，依次换成可分离卷积、α = 0.75、ρ = 10/14
paper = [(462, 2.36), (52.3, 0.27), (29.6, 0.15), (15.1, 0.15)]   # 百万次乘加、百万个参数
cases = [("标准卷积", standard, 512, 14), ("深度可分离卷积", separable, 512, 14),
         ("α = 0.75", separable, 384, 14), ("α = 0.75，ρ = 10/14", separable, 384, 10)]
cost = []
for (name, build, C, D), (p_macs, p_params) in zip(cases, paper):
    with torch.device("meta"):
        layer = build(C, C, 3)
    macs, params = total(count_macs(layer, (C, D, D))), n_params(layer)
    cost.append(macs)
    print(f"{name}：乘加 {macs / 1e6:.1f}M（论文 {p_macs}M），参数 {params / 1e6:.2f}M（论文 {p_params}M）")
    assert round(macs / 1e6, 1 if p_macs < 100 else 0) == p_macs and round(params / 1e6, 2) == p_params

alpha, rho = Fraction(3, 4), Fraction(10, 14)
r_alpha, r_rho = Fraction(cost[2], cost[1]), Fraction(cost[3], cost[2])
print(f"α = 3/4：乘加变为 {float(r_alpha):.4f} 倍，α² = {float(alpha ** 2):.4f}；"
      f"ρ = 10/14：乘加变为 {r_rho} 倍 = ρ² = {rho ** 2}")
assert r_alpha == Fraction(9 * 384 + 384 * 384, 9 * 512 + 512 * 512)   # (k²αM + α²MN) / (k²M + MN)
assert alpha ** 2 < r_alpha < alpha ** 2 * Fraction(101, 100)         # 比 α² 稍大（depthwise 部分只按 α 缩小）
assert r_rho == rho ** 2                                                # 分辨率：恰好 ρ²
# --8<-- [end:multipliers]


# --8<-- [start:v1]
def conv_bn_relu(cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act=nn.ReLU) -> list:
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act()]


def ds_block(cin: int, cout: int, s: int) -> list:
    """深度可分离卷积层：3×3 depthwise（带步幅）+ BN + ReLU，再 1×1 pointwise + BN + ReLU。"""
    return conv_bn_relu(cin, cin, 3, s, groups=cin) + conv_bn_relu(cin, cout, 1)


# 论文表 1：第一层之后的 13 个深度可分离卷积层，(输出通道, depthwise 的步幅)
V1_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def mobilenet_v1(alpha: float = 1.0, separable: bool = True, num_classes: int = 1000) -> nn.Sequential:
    """separable=False 得到论文表 4 的「Conv MobileNet」：每个可分离层换成一个标准 3×3 卷积。"""
    c = lambda n: int(n * alpha)                            # 宽度乘子作用在每一层的通道数上
    layers, cin = conv_bn_relu(3, c(32), 3, 2), c(32)       # 第一层是标准卷积
    for cout, s in V1_CFG:
        layers += ds_block(cin, c(cout), s) if separable else conv_bn_relu(cin, c(cout), 3, s)
        cin = c(cout)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def v1_params_formula(alpha: float = 1.0) -> int:
    """只用表 1 逐层相加：卷积核 + BN 的 γ、β，最后是全连接的权重和偏置。"""
    c = lambda n: int(n * alpha)
    p, cin = 3 * 3 * 3 * c(32) + 2 * c(32), c(32)
    for cout, _ in V1_CFG:
        p += 3 * 3 * cin + 2 * cin                          # depthwise
        p += cin * c(cout) + 2 * c(cout)                    # pointwise
        cin = c(cout)
    return p + cin * 1000 + 1000


with torch.device("meta"):
    v1 = mobilenet_v1()
convs = [m for m in v1.modules() if isinstance(m, nn.Conv2d)]
n_dw = sum(m.groups > 1 for m in convs)
n_pw = sum(m.kernel_size == (1, 1) for m in convs)
n_fc = sum(isinstance(m, nn.Linear) for m in v1.modules())
n_gap = sum(isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) for m in v1.modules())
feat = v1[:-3](torch.empty(1, 3, 224, 224, device="meta"))  # 全局平均池化之前的特征图
print(f"卷积层 {len(convs)} 个（标准 {len(convs) - n_dw - n_pw}，depthwise {n_dw}，pointwise {n_pw}），"
      f"全连接 {n_fc} 个，合计 {len(convs) + n_fc} 层；全局平均池化 {n_gap} 个")
print(f"最后的特征图 {tuple(feat.shape[1:])}，参数量 {n_params(v1)}（按表 1 逐层公式 {v1_params_formula()}）")
assert (len(convs), n_dw, n_pw, n_fc, len(convs) + n_fc, n_gap) == (27, 13, 13, 1, 28, 1)
assert tuple(feat.shape[1:]) == (1024, 7, 7)
# 一条直筒：nn.Sequential 里只有这几种层，数据从头流到尾，没有分支，也没有捷径
assert all(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)) for m in v1)
assert n_params(v1) == v1_params_formula() == 4_231_976
assert (7 + 2 - 3) // 2 + 1 == 4   # 表 1 最后一个 depthwise 若真用 s2，7×7 会变成 4×4，与下一行的输入 7×7 矛盾
# --8<-- [end:v1]

# --8<-- [start:v1-cost]
rows = count_macs(v1, (3, 224, 224))
kind = lambda m: ("全连接" if isinstance(m, nn.Linear) else "depthwise 3×3" if m.groups > 1
                  else "pointwise 1×1" if m.kernel_size == (1, 1) else "标准 3×3")
share = {}
for _, m, macs in rows:
    share[kind(m)] = share.get(kind(m), 0) + macs
weights = {}                                                # 论文表 2 的参数一列只数权重（不含 BN 与偏置）
for _, m, _ in rows:
    weights[kind(m)] = weights.get(kind(m), 0) + m.weight.numel()
v1_macs, v1_weights = total(rows), sum(weights.values())
print(f"MobileNetV1：乘加 {v1_macs}（{v1_macs / 1e6:.1f}M，论文 569M）")
paper_t2 = {"pointwise 1×1": (94.86, 74.59), "depthwise 3×3": (3.06, 1.06), "标准 3×3": (1.19, 0.02), "全连接": (0.18, 24.33)}
for name, (pm, pp) in paper_t2.items():
    print(f"  {name}：乘加 {100 * share[name] / v1_macs:.2f}%（论文表 2：{pm}%），"
          f"权重 {100 * weights[name] / v1_weights:.2f}%（论文：{pp}%）")
print(f"  论文表 2 乘加一列四项之和：{94.86 + 3.06 + 1.19 + 0.18:.2f}%；把 1.19 换成 1.91：{94.86 + 3.06 + 1.91 + 0.18:.2f}%")
assert [round(100 * weights[n] / v1_weights, 2) for n in paper_t2] == [pp for _, pp in paper_t2.values()]
assert round(v1_macs / 1e6) == 569
assert [round(100 * share[n] / v1_macs, 2) for n in ("pointwise 1×1", "depthwise 3×3", "全连接")] == [94.86, 3.06, 0.18]
assert round(100 * share["标准 3×3"] / v1_macs, 2) == 1.91   # 论文写 1.19：表 2 四项之和只有 99.29%
assert round(94.86 + 3.06 + 1.19 + 0.18, 2) == 99.29

with torch.device("meta"):
    conv_v1 = mobilenet_v1(separable=False)
conv_macs = total(count_macs(conv_v1, (3, 224, 224)))
print(f"Conv MobileNet（全用标准卷积）：乘加 {conv_macs / 1e6:.1f}M（论文 4866M），"
      f"参数 {n_params(conv_v1) / 1e6:.2f}M（论文 29.3M）；可分离版本省下 {conv_macs / v1_macs:.2f} 倍乘加")
assert abs(conv_macs / 1e6 - 4866) < 2 and round(n_params(conv_v1) / 1e6, 1) == 29.3
# --8<-- [end:v1-cost]

# --8<-- [start:v1-multipliers]
conv_only = lambda rows: sum(macs for _, m, macs in rows if isinstance(m, nn.Conv2d))
print("α      乘加       参数     乘加/α=1  α²      参数/α=1")
for a, (p_macs, p_params) in zip([1.0, 0.75, 0.5, 0.25], [(569, 4.2), (325, 2.6), (149, 1.3), (41, 0.5)]):
    with torch.device("meta"):
        net = mobilenet_v1(a)
    macs, params = total(count_macs(net, (3, 224, 224))), n_params(net)
    assert params == v1_params_formula(a)
    assert round(macs / 1e6) == p_macs and round(params / 1e6, 1) == p_params    # 论文表 6
    r_m, r_p = macs / v1_macs, params / n_params(v1)
    print(f"{a:<5}{macs / 1e6:7.1f}M  {params / 1e6:6.2f}M   {r_m:.4f}   {a * a:.4f}  {r_p:.4f}")
    assert a * a <= r_m <= a and a * a <= r_p <= a   # 介于 α² 与 α 之间
print("分辨率  乘加       卷积部分之比  ρ²")
conv_224 = conv_only(rows)
for r, p_macs in [(224, 569), (192, 418), (160, 290), (128, 186)]:
    rows_r = count_macs(v1, (3, r, r))
    ratio = Fraction(conv_only(rows_r), conv_224)
    print(f"{r:<7}{total(rows_r) / 1e6:7.1f}M   {float(ratio):.4f}        {float(Fraction(r, 224) ** 2):.4f}")
    assert ratio == Fraction(r, 224) ** 2             # 卷积层的乘加恰好按 ρ² 缩小
    assert abs(total(rows_r) / 1e6 - p_macs) < 1      # 论文表 7（全连接层的 1.0M 不随分辨率变）
# --8<-- [end:v1-multipliers]


# --8<-- [start:v2-block]
class InvertedResidual(nn.Module):
    """MobileNetV2 的倒残差块：1×1 扩张（t 倍）-> 3×3 depthwise -> 1×1 投影（线性，没有激活）。"""

    def __init__(self, cin: int, cout: int, s: int, t: int):
        super().__init__()
        hidden = cin * t
        self.expand = (nn.Sequential(*conv_bn_relu(cin, hidden, 1, act=nn.ReLU6))
                       if t != 1 else nn.Identity())        # t = 1 时没有扩张层（与 torchvision 相同）
        self.depthwise = nn.Sequential(*conv_bn_relu(hidden, hidden, 3, s, groups=hidden, act=nn.ReLU6))
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))  # 线性瓶颈
        self.use_residual = s == 1 and cin == cout          # 只有形状不变时才加捷径

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


torch.manual_seed(0)
xb = torch.randn(4, 24, 8, 8, device=device)
block = InvertedResidual(24, 24, s=1, t=6).to(device).eval()
h1 = block.expand(xb)
h2 = block.depthwise(h1)
branch = block.project(h2)
print(f"输入 {tuple(xb.shape)} -> 扩张 {tuple(h1.shape)} -> depthwise {tuple(h2.shape)} -> 投影 {tuple(branch.shape)}")
print(f"投影输出中负数的比例 {(branch < 0).float().mean().item():.2f}（线性瓶颈：不经过 ReLU）；"
      f"扩张后的最小值 {h1.min().item():.1f}、最大值 {h1.max().item():.2f}（ReLU6 截断在 [0, 6]）")
assert h1.shape[1] == 6 * 24 and (branch < 0).any() and h1.min() >= 0 and h1.max() <= 6
assert torch.allclose(block(xb), xb + branch, atol=1e-6) and block.use_residual
down = InvertedResidual(24, 32, s=2, t=6).to(device).eval()
print(f"步幅 2、24 -> 32 通道：{tuple(down(xb).shape)}，use_residual = {down.use_residual}")
assert down(xb).shape == (4, 32, 4, 4) and not down.use_residual
assert torch.equal(nn.ReLU6()(10 * xb), torch.clamp(10 * xb, 0, 6))   # ReLU6(x) = min(max(x, 0), 6)
# --8<-- [end:v2-block]

# --8<-- [start:v2-net]
V2_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(num_classes: int = 1000) -> nn.Sequential:
    """按论文表 2 的 (t, c, n, s) 逐行搭建：每行 n 个块，只有第一个块用步幅 s。"""
    layers, cin = [nn.Sequential(*conv_bn_relu(3, 32, 3, 2, act=nn.ReLU6))], 32
    for t, c, n, s in V2_CFG:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(nn.Sequential(*conv_bn_relu(cin, 1280, 1, act=nn.ReLU6)))
    return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(1280, num_classes))


def v2_formula() -> tuple:
    """只用表 2 逐层相加参数量与乘加数（BN 每个通道 2 个参数，不计乘加）。"""
    p, macs, cin, H = 27 * 32 + 2 * 32, 112 * 112 * 27 * 32, 32, 112
    for t, c, n, s in V2_CFG:
        for i in range(n):
            hid, Ho = cin * t, H // (s if i == 0 else 1)
            if t != 1:
                p, macs = p + cin * hid + 2 * hid, macs + H * H * cin * hid      # 扩张 1×1
            p, macs = p + 9 * hid + 2 * hid, macs + Ho * Ho * 9 * hid            # depthwise 3×3
            p, macs = p + hid * c + 2 * c, macs + Ho * Ho * hid * c              # 投影 1×1
            cin, H = c, Ho
    p, macs = p + cin * 1280 + 2 * 1280, macs + H * H * cin * 1280               # 最后的 1×1 卷积
    return p + 1280 * 1000 + 1000, macs + 1280 * 1000                             # 全连接


with torch.device("meta"):
    v2 = mobilenet_v2()
blocks = v2[0]
h, shapes = torch.empty(1, 3, 224, 224, device="meta"), []
ends = [0] + [sum(n for _, _, n, _ in V2_CFG[:j + 1]) for j in range(len(V2_CFG))] + [len(blocks) - 1]
for i, layer in enumerate(blocks):
    h = layer(h)
    if i in ends:                                           # 第一层、表 2 每一行的最后一个块、最后的 1×1 卷积
        shapes.append(tuple(h.shape[1:]))
logits = v2[1:](h)
print("各阶段输出：", " -> ".join(f"{c}×{s}²" for c, s, _ in shapes), f"-> {tuple(logits.shape[1:])}")
# 表 2 的「输入」一列：每一行的输入就是上一行的输出
assert shapes == [(32, 112, 112), (16, 112, 112), (24, 56, 56), (32, 28, 28), (64, 14, 14), (96, 14, 14),
                  (160, 7, 7), (320, 7, 7), (1280, 7, 7)] and tuple(logits.shape) == (1, 1000)
n_blocks = sum(isinstance(m, InvertedResidual) for m in blocks)
n_res = sum(isinstance(m, InvertedResidual) and m.use_residual for m in blocks)
v2_rows = count_macs(v2, (3, 224, 224))
f_params, f_macs = v2_formula()
print(f"倒残差块 {n_blocks} 个，其中 {n_res} 个带捷径")
print(f"参数量 {n_params(v2)}（表 2 逐层公式 {f_params}；torchvision 的 mobilenet_v2 为 3504872）")
print(f"乘加 {total(v2_rows)}（公式 {f_macs}，约 {total(v2_rows) / 1e6:.0f}M；论文 300M），"
      f"是 MobileNetV1 的 {total(v2_rows) / v1_macs:.2f} 倍")
assert (n_blocks, n_res) == (17, 10)
assert n_params(v2) == f_params == 3_504_872
assert total(v2_rows) == f_macs and round(total(v2_rows) / 1e6) == 301 and total(v2_rows) < 0.55 * v1_macs
# --8<-- [end:v2-net]

# --8<-- [start:digits-data]
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
to_img = lambda a: torch.tensor(a, dtype=torch.float32).view(-1, 1, 8, 8).div(16).to(device)  # 像素 0..16 -> 0..1
X_tr, X_te = to_img(X_tr), to_img(X_te)
y_tr, y_te = torch.tensor(y_tr, device=device), torch.tensor(y_te, device=device)
print(f"训练 {tuple(X_tr.shape)}，测试 {tuple(X_te.shape)}")
# --8<-- [end:digits-data]


# --8<-- [start:digits-models]
def small_net(separable: bool) -> nn.Sequential:
    """8×8 输入：第一层标准卷积 1->16，再三层 16->32、32->64（步幅 2，8×8 -> 4×4）、64->64，全局平均池化，全连接。
    separable=True 时后三层换成深度可分离卷积，其余完全相同。"""
    layers, cin = conv_bn_relu(1, 16, 3), 16
    for cout, s in [(32, 1), (64, 2), (64, 1)]:
        layers += ds_block(cin, cout, s) if separable else conv_bn_relu(cin, cout, 3, s)
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10))


def small_formula(separable: bool) -> tuple:
    """按层手算参数量与乘加数：(卷积核 + BN 的 2 个参数/通道)，乘加 = 每层 k²·(C_in/groups)·C_out·H·W。"""
    p, macs, cin, H = 9 * 16 + 2 * 16, 9 * 16 * 8 * 8, 16, 8
    for cout, s in [(32, 1), (64, 2), (64, 1)]:
        H //= s
        if separable:
            p += 9 * cin + 2 * cin + cin * cout + 2 * cout
            macs += (9 * cin + cin * cout) * H * H
        else:
            p += 9 * cin * cout + 2 * cout
            macs += 9 * cin * cout * H * H
        cin = cout
    return p + 64 * 10 + 10, macs + 64 * 10


stats = {}
for name, sep in [("普通 CNN", False), ("MobileNet 式", True)]:
    with torch.device("meta"):
        net = small_net(sep)
    stats[name] = (n_params(net), total(count_macs(net, (1, 8, 8))))
    assert stats[name] == small_formula(sep)                 # 钩子与 meta == 手算
    print(f"{name:<12}参数量 {stats[name][0]:>6}，每张图的乘加 {stats[name][1]:>9}")
p_ratio = stats["MobileNet 式"][0] / stats["普通 CNN"][0]
m_ratio = stats["MobileNet 式"][1] / stats["普通 CNN"][1]
print(f"MobileNet 式 / 普通：参数量 {p_ratio:.3f}，乘加 {m_ratio:.3f}")
assert p_ratio < 1 / 6 and m_ratio < 1 / 6
# --8<-- [end:digits-models]


# --8<-- [start:digits-train]
def train(separable: bool, seed: int, epochs: int = 10, batch: int = 256) -> float:
    """Adam（学习率 0.01），批量 256，训练 10 轮；返回测试准确率。"""
    torch.manual_seed(seed)
    model = small_net(separable).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X_tr), generator=gen).to(device)
        for i in range(0, len(X_tr), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(X_te).argmax(1) == y_te).float().mean().item()


# 容差 ±0.03：种子 0–9 上准确率的标准差约 0.005、两者之差的标准差约 0.008，取 3√2 倍
acc = {name: train(sep, seed=0) for name, sep in [("普通 CNN", False), ("MobileNet 式", True)]}
for name in acc:
    print(f"{name:<12}参数量 {stats[name][0]:>6}  乘加 {stats[name][1]:>9}  测试准确率 {acc[name]:.3f}")
gap = acc["普通 CNN"] - acc["MobileNet 式"]
print(f"准确率之差 {gap:+.3f}")
# 种子 0–9 各训练一次：普通 CNN 0.983–0.997，MobileNet 式 0.972–0.986，两者之差 -0.003–0.022
# （9 个种子普通 CNN 更高，种子 9 反过来）。下限比观察到的最小值低约 0.012（约 4 张测试图），
# 差的上限比观察到的最大值高约 0.02
assert acc["普通 CNN"] >= 0.97 and acc["MobileNet 式"] >= 0.96
assert abs(gap) <= 0.04
# --8<-- [end:digits-train]

# --8<-- [start:figure]
fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.6]})
Ns = [8, 16, 32, 64, 128, 256, 512, 1024]
for k, marker in [(3, "o"), (5, "s"), (7, "^")]:
    counted = []
    for N in Ns:
        with torch.device("meta"):
            std, sep = standard(32, N, k), separable(32, N, k)
        counted.append(total(count_macs(sep, (32, 14, 14))) / total(count_macs(std, (32, 14, 14))))
    grid = torch.logspace(3, 10, 200, base=2)
    line, = axes[0].plot(grid, 1 / grid + 1 / k ** 2, "-", linewidth=1)
    axes[0].plot(Ns, counted, marker, color=line.get_color(), label=f"k = {k}（点：钩子计数；线：1/N + 1/k²）")
    axes[0].axhline(1 / k ** 2, color=line.get_color(), linestyle=":", linewidth=0.8)
axes[0].set(xscale="log", yscale="log", ylim=(0.006, 0.3), xlabel="输出通道数 N",
            ylabel="可分离 / 标准 的乘加之比", title="深度可分离卷积的相对代价（M = 32，虚线为 1/k²）")
axes[0].legend(fontsize=8, loc="lower left")

parts = {"扩张 1×1": [], "depthwise 3×3": [], "投影 1×1": [], "首层 3×3 与末层 1×1": []}
labels = []
for i, layer in enumerate(blocks):
    per = {key: 0 for key in parts}
    for name, m, macs in v2_rows:
        if name.startswith(f"0.{i}."):
            key = ("扩张 1×1" if ".expand." in name else "depthwise 3×3" if ".depthwise." in name
                   else "投影 1×1" if ".project." in name else "首层 3×3 与末层 1×1")
            per[key] += macs
    for key in parts:
        parts[key].append(per[key] / 1e6)
    labels.append("首层" if i == 0 else "末层" if i == len(blocks) - 1 else str(i))
bottom = [0.0] * len(labels)
for key, vals in parts.items():
    axes[1].bar(range(len(labels)), vals, bottom=bottom, label=key)
    bottom = [b + v for b, v in zip(bottom, vals)]
axes[1].set_xticks(range(len(labels)), labels, fontsize=8)
axes[1].set(xlabel="MobileNetV2 的层（数字为倒残差块序号）", ylabel="乘加（百万次）", ylim=(0, 1.1 * max(bottom)),
            title=f"MobileNetV2 各块的乘加（合计 {total(v2_rows) / 1e6:.0f}M，另有全连接 1.28M）")
axes[1].legend(fontsize=8, loc="upper center")
fig.tight_layout()
fig.savefig("mobilenet_cost.svg", bbox_inches="tight")
plt.close(fig)
pw_share = (sum(parts["扩张 1×1"]) + sum(parts["投影 1×1"])) * 1e6 / total(v2_rows)
print(f"MobileNetV2 中 1×1 卷积（扩张 + 投影）占乘加的 {100 * pw_share:.1f}%，"
      f"depthwise 占 {100 * sum(parts['depthwise 3×3']) * 1e6 / total(v2_rows):.1f}%")
assert pw_share > 0.8
# --8<-- [end:figure]
