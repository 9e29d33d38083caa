# --8<-- [start:setup]
import itertools

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from sklearn.datasets import load_sample_image
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数据在 CPU 上生成再搬到 device：CPU 与 GPU 上的数据相同
f64 = torch.float64                     # 与 PyTorch 对照的计算都用 float64
# --8<-- [end:setup]

# --8<-- [start:params]
C_in, H, W = 3, 224, 224      # 一张 224×224 的 RGB 图像
C_out, f = 64, 3              # 输出 64 个通道（同样 224×224），卷积核 3×3
with torch.device("meta"):    # meta 设备：只有形状、不分配内存，近 5000 亿个参数也能「建」出来数一数
    fc = nn.Linear(C_in * H * W, C_out * H * W)
    local_w = torch.empty(C_out * H * W, C_in * f * f)      # 局部连接：每个输出位置一组自己的 3×3×3 权重
    local_b = torch.empty(C_out * H * W)
    conv = nn.Conv2d(C_in, C_out, kernel_size=f, padding=1)
n_fc = sum(p.numel() for p in fc.parameters())
n_local = local_w.numel() + local_b.numel()
n_conv = sum(p.numel() for p in conv.parameters())
assert n_fc == (C_in * H * W) * (C_out * H * W) + C_out * H * W        # 每个输出连每个输入
assert n_local == (C_out * H * W) * (C_in * f * f) + C_out * H * W     # 只连 3×3 的窗口
assert n_conv == C_out * C_in * f * f + C_out                          # 所有位置共用一组卷积核
print(f"{n_fc:>13} 个参数：全连接层（float32 约 {n_fc * 4 / 1e12:.2f} TB）")
print(f"{n_local:>13} 个参数：局部连接、不共享")
print(f"{n_conv:>13} 个参数：卷积层")
print(f"全连接 / 卷积 = {n_fc / n_conv:.3e}")
# --8<-- [end:params]

# --8<-- [start:matrix]
# 卷积是线性映射，所以它就是一个（特殊的）全连接层：把 36 个单位图像（只有一个像素为 1）依次送进去，
# 得到的 36 个输出按列排起来，就是这个映射的 36×36 权重矩阵
side = 6
k = torch.randn(1, 1, 3, 3, generator=gen, dtype=f64).to(device)     # 1 个通道、3×3 卷积核
def conv_flat(v: torch.Tensor) -> torch.Tensor:
    return F.conv2d(v.view(1, 1, side, side), k, padding=1).view(-1)  # 6×6 -> 6×6，展平成 36 维
M = torch.stack([conv_flat(e) for e in torch.eye(side * side, dtype=f64, device=device)], dim=1)
x_small = torch.randn(side * side, generator=gen, dtype=f64).to(device)
nonzero = M != 0
per_row = nonzero.sum(dim=1)
print(f"矩阵形状 {tuple(M.shape)}，非零元素 {int(nonzero.sum())} / {M.numel()}")
print(f"每行非零元素个数：最少 {int(per_row.min())}（角上的像素），最多 {int(per_row.max())}")
print(f"不同的非零值有 {len(torch.unique(M[nonzero]))} 个，正是卷积核的 9 个数")
assert (M @ x_small - conv_flat(x_small)).abs().max() <= 1e-12            # 矩阵乘法 == 卷积
assert int(per_row.max()) == 9 and int(per_row.min()) == 4              # 局部：每个输出只连 3×3 窗口
assert torch.equal(torch.unique(M[nonzero]), torch.unique(k))           # 共享：矩阵里只有这 9 个数
# --8<-- [end:matrix]

# --8<-- [start:matrix-figure]
which = torch.full(M.shape, float("nan"))      # 每个非零元素是卷积核的第几个数（0…8），零元素留白
for idx, value in enumerate(k.flatten().tolist()):
    which[(M == value).cpu()] = idx
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [3, 1]})
axes[0].imshow(which.numpy(), cmap="tab10", vmin=0, vmax=9, interpolation="none")
axes[0].set_title("卷积层的 36×36 权重矩阵（同色 = 同一个权重）")
axes[0].set_xlabel("输入像素编号（6×6 按行展平）")
axes[0].set_ylabel("输出像素编号")
axes[1].imshow(torch.arange(9.0).view(3, 3).numpy(), cmap="tab10", vmin=0, vmax=9)
for idx in range(9):
    axes[1].text(idx % 3, idx // 3, f"{k.flatten()[idx].item():.2f}", ha="center", va="center", color="white")
axes[1].set_title("3×3 卷积核")
axes[1].axis("off")
fig.tight_layout()
fig.savefig("conv_matrix.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:matrix-figure]

# --8<-- [start:equivariance]
x_img = torch.randn(1, 1, 16, 16, generator=gen, dtype=f64).to(device)
conv_circ = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False).to(device, f64)
conv_zero = nn.Conv2d(1, 1, 3, padding=1, bias=False).to(device, f64)    # 默认：四周补 0
with torch.no_grad():
    conv_zero.weight.copy_(conv_circ.weight)                                # 两层用同一个卷积核
fc_img = nn.Linear(256, 256, bias=False).to(device, f64)


def shift(t: torch.Tensor) -> torch.Tensor:
    return torch.roll(t, shifts=(2, 3), dims=(-2, -1))   # 向下 2 行、向右 3 列（移出去的从另一边回来）


def fc_layer(t: torch.Tensor) -> torch.Tensor:
    return fc_img(t.reshape(1, 256)).view(1, 1, 16, 16)


with torch.no_grad():
    err_circ = (conv_circ(shift(x_img)) - shift(conv_circ(x_img))).abs().max().item()
    gap_zero = (conv_zero(shift(x_img)) - shift(conv_zero(x_img))).abs()
    inner = gap_zero[..., 3:-1, 4:-1]      # 离边界足够远：窗口在平移前后都碰不到填充的 0
    err_fc = (fc_layer(shift(x_img)) - shift(fc_layer(x_img))).abs().max().item()
print(f"循环填充的卷积：先平移再卷积 vs 先卷积再平移，最大差 <= 1e-12：{err_circ <= 1e-12}")
print(f"补 0 的卷积：内部最大差 <= 1e-12：{inner.max().item() <= 1e-12}，边界上最大差 {gap_zero.max().item():.2f}")
print(f"全连接层：最大差 {err_fc:.2f}")
assert err_circ <= 1e-12 and inner.max().item() <= 1e-12
assert gap_zero.max().item() > 0.1 and err_fc > 0.1
# --8<-- [end:equivariance]

# --8<-- [start:shapes]
N, C_in, H, W = 2, 6, 10, 12
C_out, f, G = 8, 3, 2                                     # G：分组数
layer = nn.Conv2d(C_in, C_out, kernel_size=f, stride=2, padding=1, groups=G).to(device)
x = torch.randn(N, C_in, H, W, generator=gen).to(device)
y = layer(x)
print(f"输入 {tuple(x.shape)}  卷积核 {tuple(layer.weight.shape)}  偏置 {tuple(layer.bias.shape)}"
      f"  输出 {tuple(y.shape)}")
n_params = sum(p.numel() for p in layer.parameters())
formula = C_out * (C_in // G) * f * f + C_out
print(f"参数量：公式 C_out·(C_in/G)·f·f + C_out = {formula}，numel 求和 = {n_params}")
assert layer.weight.shape == (C_out, C_in // G, f, f) and layer.bias.shape == (C_out,)
assert y.shape == (N, C_out, 5, 6) and n_params == formula
# --8<-- [end:shapes]


# --8<-- [start:output-size]
def out_size(h: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """输入边长 h、卷积核边长 f、填充 p、步幅 s、空洞率 d 时的输出边长。"""
    return (h + 2 * p - d * (f - 1) - 1) // s + 1


checked = rejected = 0
for h, f, p, s, d in itertools.product(range(1, 13), range(1, 6), range(4), range(1, 4), range(1, 4)):
    x = torch.zeros(1, 1, h, h, device=device)
    w = torch.zeros(1, 1, f, f, device=device)
    if h + 2 * p >= d * (f - 1) + 1:                   # 填充后的输入装得下一个（膨胀后的）窗口
        assert F.conv2d(x, w, stride=s, padding=p, dilation=d).shape[-1] == out_size(h, f, p, s, d)
        checked += 1
    else:                                              # 装不下：公式给出 <= 0，PyTorch 报错
        assert out_size(h, f, p, s, d) <= 0
        try:
            F.conv2d(x, w, stride=s, padding=p, dilation=d)
            raise AssertionError("应当报错")
        except RuntimeError:
            rejected += 1
print(f"公式与 F.conv2d 一致的组合：{checked} 个；窗口装不下、PyTorch 报错的组合：{rejected} 个")
for h, f, p, s, d in [(32, 5, 0, 1, 1), (32, 3, 1, 1, 1), (32, 3, 1, 2, 1), (224, 7, 3, 2, 1), (64, 3, 2, 1, 2)]:
    print(f"h={h:<3} f={f} p={p} s={s} d={d}  ->  {out_size(h, f, p, s, d)}")
# --8<-- [end:output-size]


# --8<-- [start:loops]
def conv2d_loops(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """按定义逐个输出像素计算：Y[n,o,i,j] = b[o] + Σ_{c,u,v} W[o,c,u,v]·X̃[n, 组内第 c 个通道, s·i+d·u, s·j+d·v]。"""
    N, C_in, H, W = x.shape
    C_out, C_in_g, f_h, f_w = w.shape                  # C_in_g = C_in / groups
    xp = F.pad(x, (padding, padding, padding, padding))  # 四周补 padding 圈 0：X̃
    H_out = out_size(H, f_h, padding, stride, dilation)
    W_out = out_size(W, f_w, padding, stride, dilation)
    y = torch.empty(N, C_out, H_out, W_out, dtype=x.dtype, device=x.device)
    for n in range(N):
        for o in range(C_out):
            g = o // (C_out // groups)                 # 第 o 个输出通道属于第 g 组，只读这一组的输入通道
            chans = slice(g * C_in_g, (g + 1) * C_in_g)
            for i in range(H_out):
                for j in range(W_out):
                    r0, c0 = stride * i, stride * j    # 窗口左上角
                    window = xp[n, chans,
                                r0:r0 + dilation * (f_h - 1) + 1:dilation,   # 每隔 d 行取一行
                                c0:c0 + dilation * (f_w - 1) + 1:dilation]   # 每隔 d 列取一列
                    y[n, o, i, j] = (window * w[o]).sum() + b[o]             # (C_in_g, f_h, f_w) 逐元素乘再求和
    return y
# --8<-- [end:loops]


# --8<-- [start:unfold]
def conv2d_unfold(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """im2col：把每个窗口拉成一列，卷积就成了一次（分组的）矩阵乘法。"""
    N, C_in, H, W = x.shape
    C_out, C_in_g, f_h, f_w = w.shape
    H_out = out_size(H, f_h, padding, stride, dilation)
    W_out = out_size(W, f_w, padding, stride, dilation)
    cols = F.unfold(x, (f_h, f_w), dilation=dilation, padding=padding, stride=stride)  # (N, C_in·f_h·f_w, L)
    K = C_in_g * f_h * f_w                                   # 一组里一个窗口的元素个数
    cols = cols.view(N, groups, K, H_out * W_out)            # 通道是 cols 第 1 维的最外层，按组切开
    w_mat = w.view(groups, C_out // groups, K)               # 每组一个 (C_out/G, K) 的权重矩阵
    y = w_mat @ cols                                         # (G, C_out/G, K) @ (N, G, K, L) -> (N, G, C_out/G, L)
    return y.reshape(N, C_out, H_out, W_out) + b.view(1, C_out, 1, 1)


configs = [  # (C_in, C_out, 卷积核, 步幅, 填充, 空洞率, 分组)
    (3, 4, (3, 3), 1, 0, 1, 1),
    (3, 4, (3, 3), 2, 1, 1, 1),
    (3, 4, (3, 3), 1, 2, 2, 1),
    (4, 6, (3, 3), 2, 1, 2, 2),
    (4, 8, (3, 3), 1, 1, 1, 4),     # 分组数 = 输入通道数：每个通道各卷各的（深度卷积，见 3.9）
    (2, 3, (2, 3), 3, 2, 1, 1),     # 长方形卷积核
]
worst_loops = worst_unfold = 0.0
for C_in, C_out, (f_h, f_w), s, p, d, g in configs:
    x = torch.randn(2, C_in, 7, 9, generator=gen, dtype=f64).to(device)
    w = torch.randn(C_out, C_in // g, f_h, f_w, generator=gen, dtype=f64).to(device)
    b = torch.randn(C_out, generator=gen, dtype=f64).to(device)
    ref = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    e_loops = (conv2d_loops(x, w, b, s, p, d, g) - ref).abs().max().item()
    e_unfold = (conv2d_unfold(x, w, b, s, p, d, g) - ref).abs().max().item()
    worst_loops, worst_unfold = max(worst_loops, e_loops), max(worst_unfold, e_unfold)
    print(f"C_in={C_in} C_out={C_out} f={f_h}×{f_w} s={s} p={p} d={d} G={g}  输出 {tuple(ref.shape)}  "
          f"循环、unfold 与 F.conv2d 之差 <= 1e-10：{e_loops <= 1e-10}、{e_unfold <= 1e-10}")
assert worst_loops <= 1e-10 and worst_unfold <= 1e-10
cols = F.unfold(torch.zeros(2, 4, 7, 9), (3, 3), dilation=2, padding=1, stride=2)
print(f"第 4 组设置的列矩阵 cols：{tuple(cols.shape)} = (N, C_in·3·3, H'·W')")
# --8<-- [end:unfold]

# --8<-- [start:xcorr]
x1 = torch.tensor([0.0, 1, 3, 6, 10, 15], dtype=f64)   # 一维信号
k1 = torch.tensor([1.0, 0, -1], dtype=f64)             # 不对称的核
torch_out = F.conv1d(x1.view(1, 1, -1), k1.view(1, 1, -1)).view(-1)
numpy_out = np.convolve(x1.numpy(), k1.numpy(), mode="valid")   # 数学上的卷积：核先翻转
print(f"F.conv1d（互相关）：{torch_out.tolist()}")
print(f"np.convolve（卷积）：{numpy_out.tolist()}")
assert np.array_equal(torch_out.numpy(), -numpy_out)   # 这个核翻转后恰好变号，结果也变号

img2 = torch.randn(9, 11, generator=gen, dtype=f64)
ker2 = torch.randn(3, 4, generator=gen, dtype=f64)     # 随机、不对称
ours = F.conv2d(img2.view(1, 1, 9, 11).to(device), ker2.view(1, 1, 3, 4).to(device)).view(7, 8).cpu()
ours_flipped = F.conv2d(img2.view(1, 1, 9, 11).to(device),
                        ker2.flip(0, 1).view(1, 1, 3, 4).to(device)).view(7, 8).cpu()
corr = torch.from_numpy(signal.correlate2d(img2.numpy(), ker2.numpy(), mode="valid"))
true_conv = torch.from_numpy(signal.convolve2d(img2.numpy(), ker2.numpy(), mode="valid"))
e_corr = (ours - corr).abs().max().item()
e_flip = (ours_flipped - true_conv).abs().max().item()
e_diff = (ours - true_conv).abs().max().item()
print(f"F.conv2d 与 scipy 的互相关之差 <= 1e-10：{e_corr <= 1e-10}")
print(f"F.conv2d(翻转的核) 与 scipy 的卷积之差 <= 1e-10：{e_flip <= 1e-10}")
print(f"F.conv2d(原核) 与 scipy 的卷积之差：{e_diff:.2f}")
assert e_corr <= 1e-10 and e_flip <= 1e-10 and e_diff > 0.1
# --8<-- [end:xcorr]

# --8<-- [start:edges]
rgb = torch.tensor(load_sample_image("china.jpg"), dtype=f64, device=device) / 255   # (427, 640, 3)，取值 [0, 1]
gray = rgb @ torch.tensor([0.299, 0.587, 0.114], dtype=f64, device=device)    # 亮度（ITU-R BT.601 的权重）
photo = gray.view(1, 1, *gray.shape)
sobel_x = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=f64, device=device)  # 右边亮为正
sobel_y = sobel_x.T                                                                     # 下边亮为正
kernels = torch.stack([sobel_x, sobel_y]).unsqueeze(1)                                  # (2, 1, 3, 3)：两个输出通道


def sobel(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), kernels)  # 边缘复制填充：图像边框不算边缘
    return out[0, 0], out[0, 1]


gx, gy = sobel(photo)
mag = torch.sqrt(gx ** 2 + gy ** 2)                    # 梯度幅值
print(f"照片 {tuple(gray.shape)}，响应 gx、gy {tuple(gx.shape)}，幅值最大 {mag.max().item():.2f}")

# 一张竖直台阶图：左半 0、右半 1
step = torch.zeros(1, 1, 6, 8, dtype=f64, device=device)
step[..., 4:] = 1.0
sx, sy = F.conv2d(step, kernels)[0]                    # 不填充，输出 4×6
print("台阶图的 Sobel-x 响应（每行相同）：", sx[0].tolist())
expected = torch.tensor([[0.0, 0, 4, 4, 0, 0]] * 4, dtype=f64, device=device)
assert (sx - expected).abs().max().item() <= 1e-12     # 只在边缘处非零
assert sy.abs().max().item() <= 1e-12                  # 竖直边缘没有上下方向的变化

# Sobel 核可分离：sobel_x = [1, 2, 1]ᵀ（竖直方向平滑）乘 [-1, 0, 1]（水平方向差分）
smooth = torch.tensor([1.0, 2, 1], dtype=f64, device=device)
diff = torch.tensor([-1.0, 0, 1], dtype=f64, device=device)
assert torch.equal(torch.outer(smooth, diff), sobel_x)
padded = F.pad(photo, (1, 1, 1, 1), mode="replicate")
two_pass = F.conv2d(F.conv2d(padded, smooth.view(1, 1, 3, 1)), diff.view(1, 1, 1, 3))[0, 0]
e_sep = (two_pass - gx).abs().max().item()
print(f"先做 3×1 再做 1×3（每像素 6 次乘法）与 3×3（9 次）之差 <= 1e-10：{e_sep <= 1e-10}")
assert e_sep <= 1e-10

# 把照片逆时针转 90°，幅值图也恰好转 90°：幅值不依赖边缘的朝向
gx_r, gy_r = sobel(torch.rot90(photo, 1, dims=(-2, -1)))
e_rot = (torch.sqrt(gx_r ** 2 + gy_r ** 2) - torch.rot90(mag, 1, dims=(0, 1))).abs().max().item()
print(f"旋转 90° 后的幅值与幅值图旋转 90° 之差 <= 1e-10：{e_rot <= 1e-10}")
assert e_rot <= 1e-10
# --8<-- [end:edges]

# --8<-- [start:edges-figure]
crop = (slice(130, 300), slice(80, 300))      # 图里只画塔身的一块（170×220），看得清柱子和屋檐
panels = [(gray, "灰度图", "gray"), (gx, "Sobel-x：左右方向的变化", "RdBu_r"),
          (gy, "Sobel-y：上下方向的变化", "RdBu_r"), (mag, "梯度幅值 √(gx² + gy²)", "gray_r")]
fig, axes = plt.subplots(2, 2, figsize=(8, 6.6))
for ax, (img, title, cmap) in zip(axes.flat, panels):
    img = img[crop].cpu().numpy()
    lim = np.abs(img).max()
    kw = dict(vmin=-lim, vmax=lim) if cmap == "RdBu_r" else {}    # 有正负的响应：0 为白色
    ax.imshow(img, cmap=cmap, interpolation="none", **kw)   # "none"：SVG 里按原分辨率嵌入
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
fig.savefig("conv_edges.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:edges-figure]


# --8<-- [start:receptive-field]
def receptive_field(layers: list[tuple[int, int, int]]) -> int:
    """layers 的每一项是 (卷积核边长 f, 步幅 s, 空洞率 d)。"""
    r, jump = 1, 1             # jump：前面各层步幅之积，即本层相邻两个输入像素在原图上相隔多远
    for f, s, d in layers:
        r += (f - 1) * d * jump
        jump *= s
    return r


def measured_field(layers: list[tuple[int, int, int]], size: int = 64) -> tuple[int, int, torch.Tensor]:
    """从中间的一个输出像素反向传播，数输入上梯度非零的范围（边长）与像素个数。"""
    net = nn.Sequential(*[nn.Conv2d(1, 1, f, stride=s, dilation=d, bias=False)
                          for f, s, d in layers]).to(device, f64)
    for m in net:
        nn.init.ones_(m.weight)   # 全 1 权重：各条路径的贡献都是正数，不会正负抵消而碰巧为 0
    x = torch.ones(1, 1, size, size, dtype=f64, device=device, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    g = x.grad[0, 0]
    rows = g.ne(0).any(dim=1).nonzero().view(-1)
    cols = g.ne(0).any(dim=0).nonzero().view(-1)
    assert rows.min() > 0 and rows.max() < size - 1 and cols.min() > 0 and cols.max() < size - 1  # 完整落在图内
    assert rows.max() - rows.min() == cols.max() - cols.min()
    sub = g[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return int(rows.max() - rows.min() + 1), int(g.ne(0).sum()), sub


stacks = {
    "3 层 3×3": [(3, 1, 1)] * 3,
    "3 层 3×3，步幅都是 2": [(3, 2, 1)] * 3,
    "7×7 步幅 2，3×3 步幅 2，两层 3×3": [(7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)],
    "3 层 3×3，空洞率 1、2、4": [(3, 1, 1), (3, 1, 2), (3, 1, 4)],
    "2 层 3×3，空洞率 2、2": [(3, 1, 2), (3, 1, 2)],
}
fields = {}
for name, layers in stacks.items():
    r = receptive_field(layers)
    extent, count, sub = measured_field(layers)
    fields[name] = sub
    print(f"公式 {r:>2}，梯度测得 {extent:>2}，梯度非零的像素 {count:>3} / {extent * extent:>3}：{name}")
    assert extent == r
assert [int(fields[n].ne(0).sum()) for n in stacks] == [49, 225, 729, 225, 25]   # 最后一个有「洞」
# --8<-- [end:receptive-field]

# --8<-- [start:rf-figure]
show = ["3 层 3×3", "3 层 3×3，空洞率 1、2、4", "2 层 3×3，空洞率 2、2"]
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
for ax, name in zip(axes, show):
    sub = fields[name].cpu().numpy()
    ax.imshow(np.where(sub > 0, sub, np.nan), cmap="viridis")    # 梯度为 0 的像素留白
    ax.set_title(f"{name}\n感受野 {sub.shape[0]}×{sub.shape[1]}")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("一个输出像素对输入的梯度（全 1 权重）：颜色越亮，通向该像素的路径越多", y=1.03)
fig.savefig("conv_receptive_field.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:rf-figure]
