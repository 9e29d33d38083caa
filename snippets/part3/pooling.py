# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，两种设备上数据相同
# --8<-- [end:setup]

# --8<-- [start:pad-modes]
x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3).to(device)   # (N, C, H, W) = (1, 1, 3, 3)
padded = {}
for mode in ["constant", "reflect", "replicate", "circular"]:
    padded[mode] = F.pad(x, (1, 1, 1, 1), mode=mode)          # 左、右、上、下各填 1 行（列）
    print(f"mode={mode!r}，形状 {tuple(padded[mode].shape)}")
    for row in padded[mode][0, 0].int().tolist():
        print("   ", " ".join(f"{v:2d}" for v in row))
assert all(p.shape == (1, 1, 5, 5) for p in padded.values())
assert torch.equal(padded["constant"][..., 1:-1, 1:-1], x)    # 中间仍是原图
assert padded["constant"][..., 0, :].eq(0).all()              # 零填充：边上全是 0
assert torch.equal(padded["reflect"][..., 0, 1:-1], x[..., 1, :])     # 反射：以边为镜，不含边本身
assert torch.equal(padded["replicate"][..., 0, 1:-1], x[..., 0, :])   # 复制：重复最外一行
assert torch.equal(padded["circular"][..., 0, 1:-1], x[..., -1, :])   # 循环：对边接过来
# --8<-- [end:pad-modes]

# --8<-- [start:same]
def out_size(h: int, f: int, p: int, s: int = 1) -> int:
    """3.1 节的输出尺寸公式（膨胀 d = 1）。"""
    return (h + 2 * p - f) // s + 1


print(" f | p=(f-1)//2 | h=7 -> | h=8 -> | p=f//2 时 h=8 ->")
for f in [1, 2, 3, 4, 5, 7]:
    w = torch.randn(1, 1, f, f, generator=gen).to(device)
    sizes = []
    for h in [7, 8]:
        img = torch.randn(1, 1, h, h, generator=gen).to(device)
        sizes.append(F.conv2d(img, w, padding=(f - 1) // 2).shape[-1])
        assert sizes[-1] == out_size(h, f, (f - 1) // 2)
    big = F.conv2d(torch.randn(1, 1, 8, 8, generator=gen).to(device), w, padding=f // 2).shape[-1]
    print(f" {f} | {(f - 1) // 2:10d} | {sizes[0]:6d} | {sizes[1]:6d} | {big:15d}")
    if f % 2 == 1:
        assert sizes == [7, 8]                    # 奇数 f：p = (f-1)/2 恰好保持尺寸
    else:
        assert sizes == [6, 7] and big == 9       # 偶数 f：对称填充要么少 1，要么多 1

# 偶数核用 padding="same" 时，PyTorch 两侧不对称：左、上填 (f-1)//2，右、下多填 1
w4 = torch.randn(1, 1, 4, 4, generator=gen, dtype=torch.float64).to(device)
img = torch.randn(1, 1, 8, 8, generator=gen, dtype=torch.float64).to(device)
same4 = F.conv2d(img, w4, padding="same")
manual = F.conv2d(F.pad(img, (1, 2, 1, 2)), w4)             # 左 1、右 2、上 1、下 2
print(f"f=4，padding='same'：{tuple(img.shape[-2:])} -> {tuple(same4.shape[-2:])}，"
      f"与手动填充（左上 1、右下 2）之差 {(same4 - manual).abs().max().item():.1e}")
assert same4.shape == img.shape and torch.allclose(same4, manual, atol=1e-12)
# --8<-- [end:same]

# --8<-- [start:border]
# 用 float64：GPU 上 float32 卷积默认走 TF32，1/9 会被舍入到约 1e-4 的精度
ones = torch.ones(1, 1, 6, 6, dtype=torch.float64, device=device)   # 一张处处为 1 的「平坦」图
box = torch.full((1, 1, 3, 3), 1 / 9, dtype=torch.float64, device=device)   # 3×3 均值滤波
print("填充方式   | 角    | 边    | 中心")
outs = {}
for mode in ["zeros", "reflect", "replicate"]:
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode=mode, bias=False).to(device, torch.float64)
    with torch.no_grad():
        conv.weight.copy_(box)
        outs[mode] = conv(ones)[0, 0]
    o = outs[mode]
    print(f"{mode:10s} | {o[0, 0].item():.3f} | {o[0, 2].item():.3f} | {o[2, 2].item():.3f}")
    if mode != "zeros":                                       # padding_mode 等价于先 F.pad 再不填充地卷积
        assert torch.allclose(o, F.conv2d(F.pad(ones, (1, 1, 1, 1), mode=mode), box)[0, 0], atol=1e-12)
z = outs["zeros"]
assert abs(z[0, 0].item() - 4 / 9) < 1e-12 and abs(z[0, 2].item() - 6 / 9) < 1e-12   # 零填充把边缘「调暗」
assert (z[1:-1, 1:-1] - 1).abs().max() < 1e-12                                       # 内部不受影响
assert all((outs[m] - 1).abs().max() < 1e-12 for m in ["reflect", "replicate"])      # 平坦图仍是平坦的
# --8<-- [end:border]

# --8<-- [start:stride]
img = torch.randn(2, 3, 12, 12, generator=gen, dtype=torch.float64).to(device)
w = torch.randn(5, 3, 3, 3, generator=gen, dtype=torch.float64).to(device)
dense = F.conv2d(img, w, padding=1)                           # 步幅 1：(2, 5, 12, 12)
strided = F.conv2d(img, w, padding=1, stride=2)               # 步幅 2：(2, 5, 6, 6)
err = (strided - dense[..., ::2, ::2]).abs().max().item()
print(f"步幅 1：{tuple(dense.shape)}，步幅 2：{tuple(strided.shape)}")
print(f"步幅 2 的输出 == 步幅 1 的输出每隔一行一列取一个：最大误差 {err:.1e}")
print(f"输出位置数之比（≈ 乘加次数之比）：{dense[0, 0].numel()} / {strided[0, 0].numel()} "
      f"= {dense[0, 0].numel() / strided[0, 0].numel():.2f}")
assert strided.shape[-1] == out_size(12, 3, 1, 2) == 6 and err < 1e-10
# --8<-- [end:stride]


# --8<-- [start:pool-forward]
def windows(x: torch.Tensor, k: int, s: int, p: int, fill: float) -> torch.Tensor:
    """把每个 k×k 窗口摊成一列：(N, C, H, W) -> (N, C, k*k, Ho*Wo)。填充值为 fill。"""
    n, c, h, w = x.shape
    xp = F.pad(x, (p, p, p, p), value=fill)
    cols = F.unfold(xp.reshape(n * c, 1, h + 2 * p, w + 2 * p), kernel_size=k, stride=s)
    return cols.reshape(n, c, k * k, -1)


def max_pool2d(x: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    ho, wo = out_size(x.shape[-2], k, p, s), out_size(x.shape[-1], k, p, s)
    cols = windows(x, k, s, p, fill=float("-inf"))            # 填 -inf：填充处永远不会是最大值
    return cols.amax(dim=2).reshape(*x.shape[:2], ho, wo)


def avg_pool2d(x: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    ho, wo = out_size(x.shape[-2], k, p, s), out_size(x.shape[-1], k, p, s)
    cols = windows(x, k, s, p, fill=0.0)                      # 填 0，并且分母仍是 k*k
    return cols.mean(dim=2).reshape(*x.shape[:2], ho, wo)


x = torch.randn(2, 3, 9, 9, generator=gen, dtype=torch.float64).to(device)
print(" k  s  p | 输出形状     | max 相等 | avg 最大误差")
for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 0), (4, 2, 2)]:
    mine_max, mine_avg = max_pool2d(x, k, s, p), avg_pool2d(x, k, s, p)
    ref_max = F.max_pool2d(x, k, s, p)
    ref_avg = F.avg_pool2d(x, k, s, p)                        # 默认 count_include_pad=True
    err = (mine_avg - ref_avg).abs().max().item()
    print(f" {k}  {s}  {p} | {str(tuple(ref_max.shape)):12s} | {str(torch.equal(mine_max, ref_max)):8s} | {err:.1e}")
    assert torch.equal(mine_max, ref_max) and err < 1e-12
# --8<-- [end:pool-forward]


# --8<-- [start:pool-backward]
def max_pool2d_backward(x: torch.Tensor, g: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    """手写反向：每个窗口的上游梯度 g 只送给窗口中的最大元素，重叠处相加。"""
    n, c, h, w = x.shape
    cols = windows(x, k, s, p, fill=float("-inf"))            # (N, C, k*k, L)
    arg = cols.argmax(dim=2, keepdim=True)                    # 每个窗口最大值在窗口内的位置
    gcols = torch.zeros_like(cols).scatter_(2, arg, g.reshape(n, c, 1, -1))
    gpad = F.fold(gcols.reshape(n * c, k * k, -1), (h + 2 * p, w + 2 * p), kernel_size=k, stride=s)
    return gpad.reshape(n, c, h + 2 * p, w + 2 * p)[..., p:p + h, p:p + w]   # 去掉填充处


def avg_pool2d_backward(x: torch.Tensor, g: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    """手写反向：每个窗口的上游梯度平均分给窗口中的 k*k 个位置。"""
    n, c, h, w = x.shape
    gcols = (g.reshape(n, c, 1, -1) / (k * k)).expand(n, c, k * k, g[0, 0].numel())
    gpad = F.fold(gcols.reshape(n * c, k * k, -1), (h + 2 * p, w + 2 * p), kernel_size=k, stride=s)
    return gpad.reshape(n, c, h + 2 * p, w + 2 * p)[..., p:p + h, p:p + w]


print(" k  s  p | 窗口数 | max：与 autograd 之差 | 得到梯度的输入 / 全部 | avg：与 autograd 之差")
for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
    xr = x.clone().requires_grad_(True)
    out, idx = F.max_pool2d(xr, k, s, p, return_indices=True)   # idx：每个窗口最大值在 H*W 中的下标
    g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(device)   # 任意的上游梯度
    out.backward(g)
    n_win = out.numel()                                       # 窗口（输出）个数
    mine = max_pool2d_backward(x, g, k, s, p)
    err_max = (mine - xr.grad).abs().max().item()
    winners = torch.zeros_like(x).flatten(2).scatter_(2, idx.flatten(2), 1.0).reshape(x.shape).bool()
    assert err_max < 1e-12
    assert torch.equal(xr.grad != 0, winners)                # 梯度恰好落在各窗口的最大值处，别处全为 0

    xr = x.clone().requires_grad_(True)
    out = F.avg_pool2d(xr, k, s, p)
    out.backward(g)
    err_avg = (avg_pool2d_backward(x, g, k, s, p) - xr.grad).abs().max().item()
    assert err_avg < 1e-12
    print(f" {k}  {s}  {p} | {n_win:6d} | {err_max:20.1e} | {winners.sum().item():4d} / {x.numel()}"
          f"{'':10s} | {err_avg:.1e}")

# 不重叠的 2×2 平均池化：每个输入恰好拿到所在窗口梯度的 1/4
xr = x[..., :8, :8].clone().requires_grad_(True)
g = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64).to(device)
F.avg_pool2d(xr, 2).backward(g)
spread = g.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) / 4
print(f"2×2 平均池化：输入梯度 == 上游梯度 / 4 铺满各自的窗口：{torch.allclose(xr.grad, spread, atol=1e-15)}")
assert torch.allclose(xr.grad, spread, atol=1e-15)
# --8<-- [end:pool-backward]

# --8<-- [start:dot]
dot = torch.zeros(1, 1, 1, 8, device=device)                  # 一行 8 个像素，只有一个亮点
print("亮点位置 | 宽 2、步幅 2 的最大池化的输出")
pooled = {}
for col in [2, 3, 4]:
    d = dot.clone()
    d[..., col] = 1.0
    pooled[col] = F.max_pool2d(d, (1, 2))                     # 沿宽度方向、窗口 2、步幅 2
    print(f"{col:8d} | {pooled[col][0, 0, 0].int().tolist()}")
assert torch.equal(pooled[2], pooled[3])                      # 2 -> 3：仍在同一个窗口 [2, 3] 里，输出不变
assert not torch.equal(pooled[3], pooled[4])                  # 3 -> 4：跨过窗口边界，输出改变
# --8<-- [end:dot]

# --8<-- [start:shift]
images = torch.tensor(load_digits().images, dtype=torch.float32) / 16   # (1797, 8, 8)，像素缩放到 [0, 1]
canvas = F.pad(images[:, None], (6, 6, 6, 6)).to(device)      # 放进 20×20 的空白画布：平移 4 像素也不出界
w_rand = torch.randn(8, 1, 3, 3, generator=gen).to(device)    # 8 个随机的 3×3 卷积核，无偏置


def features(z: torch.Tensor) -> torch.Tensor:
    return F.relu(F.conv2d(z, w_rand, padding=1))             # (N, 8, 20, 20)


def rel_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """逐图计算 ||a - b|| / ||b||，再对所有图取平均。"""
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean().item()


def unchanged(a: torch.Tensor, b: torch.Tensor) -> float:
    """在至少一方非零的位置中，值不变的比例（相对容差 1e-5）。"""
    active = (a > 0) | (b > 0)
    same = torch.isclose(a, b, rtol=1e-5, atol=1e-6) & active
    return same.sum().item() / active.sum().item()


c0 = features(canvas)
p0 = F.max_pool2d(c0, 2)                                      # (N, 8, 10, 10)
rows = []
print("平移 d | 卷积：相对变化  不变占比 | 卷积+最大池化：相对变化  不变占比")
for d in range(5):
    c = features(torch.roll(canvas, d, dims=3))               # 整幅图右移 d 像素（画布边缘是空白）
    p = F.max_pool2d(c, 2)
    rows.append((rel_change(c, c0), unchanged(c, c0), rel_change(p, p0), unchanged(p, p0)))
    print(f"{d:6d} | {rows[-1][0]:16.3f} {rows[-1][1]:9.3f} | {rows[-1][2]:23.3f} {rows[-1][3]:9.3f}")
    assert torch.allclose(c, torch.roll(c0, d, dims=3), atol=1e-6)   # 卷积是等变的：输出跟着右移 d 格
    if d % 2 == 0:                                            # 偶数平移：池化输出恰好右移 d/2 格
        assert torch.allclose(p, torch.roll(p0, d // 2, dims=3), atol=1e-6)
rc, uc, rp, up = zip(*rows)
assert rc[0] == rp[0] == 0
assert all(rp[d] < rc[d] for d in range(1, 5))                # 每个平移下，池化后的相对变化都更小
assert all(rp[d] < rp[d + 1] and rc[d] < rc[d + 1] for d in range(4))   # 平移越大，变化越大
assert up[1] > 0.15 and uc[1] < 0.01                          # 平移 1：池化后约五分之一不变，卷积后几乎没有
assert all(up[d] < 0.01 for d in range(2, 5))                 # 平移 ≥ 2：池化后也几乎没有位置不变
# --8<-- [end:shift]

# --8<-- [start:figure]
i, ch = 0, int(c0[0].flatten(1).norm(dim=1).argmax())        # 第 0 张图（数字 0），响应最强的那个通道
vmax = c0[i, ch].max().item()                                 # 同一色标，便于逐行比较
fig, axes = plt.subplots(3, 4, figsize=(9, 7))
for r, d in enumerate([0, 1, 2]):
    shifted = torch.roll(canvas[i:i + 1], d, dims=3)
    c = features(shifted)[0, ch]
    p = F.max_pool2d(c[None], 2)[0]
    u = unchanged(p, p0[i, ch])
    panels = [(shifted[0, 0], f"输入，右移 {d} 像素", "gray_r", 1.0),
              (c, "卷积 + ReLU（20×20）", "viridis", vmax),
              (p, "最大池化后（10×10）", "viridis", vmax),
              ((p - p0[i, ch]).abs(), f"与 d=0 的池化输出之差\n（非零位置中 {u:.0%} 不变）", "viridis", vmax)]
    for ax, (img, title, cmap, top) in zip(axes[r], panels):
        ax.imshow(img.cpu(), cmap=cmap, vmin=0, vmax=top)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
fig.savefig("pooling_shift.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
