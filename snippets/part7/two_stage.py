# --8<-- [start:setup]
import math
from fractions import Fraction

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
STRIDE = 16                      # 特征图相对原图的步幅
SCALE = 1 / STRIDE               # spatial_scale：原图坐标 × SCALE = 特征图坐标
# --8<-- [end:setup]


# --8<-- [start:roi_pool]
def q(v: float) -> int:
    """Fast R-CNN 的量化：四舍五入到最近的整数格（0.5 向上）。"""
    return math.floor(v + 0.5)


def roi_pool(feat, boxes, output_size, spatial_scale):
    """RoI Pooling。feat: (C, H, W)；boxes: (R, 4) 原图坐标 (x1, y1, x2, y2)；返回 (R, C, PH, PW)。
    第一次量化：框的边界取整到格；第二次量化：每个 bin 的边界向外取整（floor/ceil）；bin 内取最大值。"""
    C, H, W = feat.shape
    PH, PW = output_size
    outs = []
    for x1, y1, x2, y2 in boxes.tolist():
        x1, y1, x2, y2 = (q(v * spatial_scale) for v in (x1, y1, x2, y2))
        bh = max(y2 - y1 + 1, 1) / PH                     # 框占 y2-y1+1 个格（含两端）
        bw = max(x2 - x1 + 1, 1) / PW
        i = torch.arange(PH, device=feat.device, dtype=torch.float64)
        j = torch.arange(PW, device=feat.device, dtype=torch.float64)
        hs, he = (torch.floor(i * bh) + y1).clamp(0, H), (torch.ceil((i + 1) * bh) + y1).clamp(0, H)
        ws, we = (torch.floor(j * bw) + x1).clamp(0, W), (torch.ceil((j + 1) * bw) + x1).clamp(0, W)
        hh = torch.arange(H, device=feat.device)
        ww = torch.arange(W, device=feat.device)
        mh = (hh >= hs[:, None]) & (hh < he[:, None])      # (PH, H)：第 i 行 bin 覆盖哪些行
        mw = (ww >= ws[:, None]) & (ww < we[:, None])      # (PW, W)
        m = mh[:, None, :, None] & mw[None, :, None, :]    # (PH, PW, H, W)
        v = feat[:, None, None].masked_fill(~m, float("-inf")).amax(dim=(-2, -1))
        outs.append(v.masked_fill(~m.any(dim=(-2, -1)), 0.0))   # 空 bin 输出 0
    return torch.stack(outs)


def roi_pool_loops(feat, boxes, output_size, spatial_scale):
    """按定义逐格检查：分数精确计算 bin 边界，逐个 (bin, 格) 判断是否属于该 bin。"""
    C, H, W = feat.shape
    PH, PW = output_size
    f = feat.tolist()
    s = Fraction(spatial_scale)
    out = torch.zeros(len(boxes), C, PH, PW, dtype=feat.dtype)
    for r, box in enumerate(boxes.tolist()):
        x1, y1, x2, y2 = (math.floor(Fraction(v) * s + Fraction(1, 2)) for v in box)
        bh, bw = Fraction(max(y2 - y1 + 1, 1), PH), Fraction(max(x2 - x1 + 1, 1), PW)
        for i in range(PH):
            for j in range(PW):
                cells = [(h, w) for h in range(H) for w in range(W)
                         if math.floor(i * bh) <= h - y1 < math.ceil((i + 1) * bh)
                         and math.floor(j * bw) <= w - x1 < math.ceil((j + 1) * bw)]
                for c in range(C):
                    out[r, c, i, j] = max((f[c][h][w] for h, w in cells), default=0.0)
    return out


feat = torch.randn(4, 16, 16, dtype=torch.float64, device=device)      # 一张 256×256 图的 stride-16 特征图
xy = torch.rand(8, 2, dtype=torch.float64) * 200
wh = 16 + torch.rand(8, 2, dtype=torch.float64) * 150
boxes = torch.cat([xy, (xy + wh).clamp(max=256)], dim=1).to(device)   # 8 个随机框（原图坐标，可以碰到边界）
p = roi_pool(feat, boxes, (7, 7), SCALE)
p_ref = roi_pool_loops(feat.cpu(), boxes.cpu(), (7, 7), SCALE)
print("RoI Pooling 输出形状:", tuple(p.shape))
print("与逐格定义的最大差:", (p.cpu() - p_ref).abs().max().item())
assert torch.equal(p.cpu(), p_ref)          # 取最大值不做算术，结果应逐位相同
# --8<-- [end:roi_pool]


# --8<-- [start:roi_align]
def interp_weights(coords, size):
    """一维双线性插值的权重矩阵。coords: (R, K) 采样坐标（格的下标单位）；返回 (R, K, size)。
    越界规则：坐标 < -1 或 > size 的点取 0；[-1, 0) 内按 0 处理，≥ size-1 按 size-1 处理。"""
    valid = (coords >= -1) & (coords <= size)
    c = coords.clamp(0, size - 1)
    lo = c.floor().long()
    hi = (lo + 1).clamp(max=size - 1)
    frac = c - lo
    w = torch.zeros(*coords.shape, size, dtype=coords.dtype, device=coords.device)
    w.scatter_add_(2, lo[..., None], (1 - frac)[..., None])
    w.scatter_add_(2, hi[..., None], frac[..., None])
    return w * valid[..., None]


def sample_coords(boxes, output_size, spatial_scale, sampling_ratio):
    """每个 bin 内 sampling_ratio × sampling_ratio 个均匀分布的采样点的坐标，不做任何取整。
    减 0.5：连续坐标里第 k 个格的中心在 k + 0.5，而插值按下标 k 取值。"""
    PH, PW = output_size
    sr = sampling_ratio
    b = boxes * spatial_scale - 0.5
    x1, y1, x2, y2 = b.unbind(1)
    ty = torch.arange(PH * sr, device=boxes.device) // sr + (torch.arange(PH * sr, device=boxes.device) % sr + 0.5) / sr
    tx = torch.arange(PW * sr, device=boxes.device) // sr + (torch.arange(PW * sr, device=boxes.device) % sr + 0.5) / sr
    ys = y1[:, None] + ty[None] * ((y2 - y1) / PH)[:, None]      # (R, PH·sr)
    xs = x1[:, None] + tx[None] * ((x2 - x1) / PW)[:, None]      # (R, PW·sr)
    return ys, xs


def roi_align(feat, boxes, output_size, spatial_scale, sampling_ratio=2):
    """RoI Align。双线性插值在规则网格上可分离：值 = Wy · F · Wxᵀ；再对每个 bin 的 sr×sr 个点取平均。"""
    C, H, W = feat.shape
    PH, PW = output_size
    sr = sampling_ratio
    ys, xs = sample_coords(boxes, output_size, spatial_scale, sr)
    s = torch.einsum("rah,chw,rbw->rcab", interp_weights(ys, H), feat, interp_weights(xs, W))
    return s.reshape(len(boxes), C, PH, sr, PW, sr).mean(dim=(3, 5))


def bilinear(fm, y, x):
    """参考实现：单点的双线性插值，直接用四个邻居的加权和（fm 是 H 行 W 列的嵌套列表）。"""
    H, W = len(fm), len(fm[0])
    if y < -1 or y > H or x < -1 or x > W:
        return 0.0
    y, x = min(max(y, 0.0), H - 1), min(max(x, 0.0), W - 1)
    y0, x0 = math.floor(y), math.floor(x)
    y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * fm[y0][x0] + (1 - dy) * dx * fm[y0][x1]
            + dy * (1 - dx) * fm[y1][x0] + dy * dx * fm[y1][x1])


def roi_align_loops(feat, boxes, output_size, spatial_scale, sampling_ratio):
    C = feat.shape[0]
    PH, PW = output_size
    sr = sampling_ratio
    f = feat.tolist()
    out = torch.zeros(len(boxes), C, PH, PW, dtype=torch.float64)
    for r, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        x1, y1, x2, y2 = (v * spatial_scale - 0.5 for v in (x1, y1, x2, y2))
        bh, bw = (y2 - y1) / PH, (x2 - x1) / PW
        for c in range(C):
            for i in range(PH):
                for j in range(PW):
                    pts = [bilinear(f[c], y1 + (i + (a + 0.5) / sr) * bh, x1 + (j + (b + 0.5) / sr) * bw)
                           for a in range(sr) for b in range(sr)]
                    out[r, c, i, j] = sum(pts) / len(pts)
    return out


a = roi_align(feat, boxes, (7, 7), SCALE, sampling_ratio=2)
a_ref = roi_align_loops(feat.cpu(), boxes.cpu(), (7, 7), SCALE, 2)
err_ref = (a.cpu() - a_ref).abs().max().item()
print("RoI Align 输出形状:", tuple(a.shape))
print(f"与逐点双线性插值参考实现的最大差: {err_ref:.1e}")
assert err_ref < 1e-10

# 内部的框（采样点都落在 [0, 15] 内）再与 F.grid_sample 比较：它按 align_corners=False 把 [-1, 1] 映射到整张图
inner = ((boxes >= 8) & (boxes <= 248)).all(dim=1)
ys, xs = sample_coords(boxes[inner], (7, 7), SCALE, 2)
gx = (2 * xs[:, None, :].expand(-1, ys.shape[1], -1) + 1) / 16 - 1      # 下标 k ↔ 归一化坐标 (2k+1)/16 − 1
gy = (2 * ys[:, :, None].expand(-1, -1, xs.shape[1]) + 1) / 16 - 1
grid = torch.stack([gx, gy], dim=-1)                                     # (R', 14, 14, 2)
g = F.grid_sample(feat[None].expand(int(inner.sum()), -1, -1, -1), grid, mode="bilinear", align_corners=False)
g = g.reshape(len(g), 4, 7, 2, 7, 2).mean(dim=(3, 5))
err_gs = (a[inner] - g).abs().max().item()
print(f"内部的 {int(inner.sum())} 个框，与 F.grid_sample 的最大差: {err_gs:.1e}")
assert inner.sum() >= 2 and err_gs < 1e-10
# --8<-- [end:roi_align]


# --8<-- [start:shift]
# 平滑的特征图：f(h, w) = sin(2πw/9) + 0.5·cos(2πh/13)，32×32
hh, ww = torch.meshgrid(torch.arange(32.0, dtype=torch.float64, device=device),
                        torch.arange(32.0, dtype=torch.float64, device=device), indexing="ij")
smooth = (torch.sin(2 * math.pi * ww / 9) + 0.5 * torch.cos(2 * math.pi * hh / 13))[None]
box0 = torch.tensor([5.3, 6.2, 12.6, 13.1], dtype=torch.float64, device=device) * STRIDE   # 原图坐标
shifts = torch.arange(0, 21, dtype=torch.float64, device=device) * 0.1                     # 向右平移 0 … 2 个格
shifted = box0 + torch.stack([shifts, 0 * shifts, shifts, 0 * shifts], dim=1) * STRIDE
P = roi_pool(smooth, shifted, (2, 2), SCALE).flatten(1)                # (21, 4)：每个平移量的 4 个输出
A = roi_align(smooth, shifted, (2, 2), SCALE, sampling_ratio=2).flatten(1)
dP = (P[1:] - P[:-1]).abs()                                          # 每平移 0.1 格（1.6 个原图像素）的变化
dA = (A[1:] - A[:-1]).abs()
print("平移(格) 平移(像素)  Pooling bin(0,0)  Align bin(0,0)")
for k in range(0, 21, 2):
    print(f"{shifts[k].item():7.1f} {16 * shifts[k].item():9.1f} {P[k, 0].item():16.4f} {A[k, 0].item():15.4f}")
steps_same = int((dP.amax(dim=1) == 0).sum())
lip = (smooth[0, :, 1:] - smooth[0, :, :-1]).abs().max().item()       # 相邻格沿 x 的最大差
print(f"Pooling：20 次平移中输出完全不变的 {steps_same} 次，最大一跳 {dP.max().item():.4f}")
print(f"Align：输出完全不变的 {int((dA.amax(dim=1) == 0).sum())} 次，每 0.1 格最大变化 {dA.max().item():.4f}"
      f"（上界 0.1 × {lip:.4f} = {0.1 * lip:.4f}）")
assert steps_same >= 10                         # 一半以上的平移 Pooling 完全看不见
assert (dA.amax(dim=1) > 0).all()                # Align 每一次平移都有反应
assert dA.max().item() <= 0.1 * lip + 1e-12      # 且变化被 0.1 × 相邻格最大差限住（Lipschitz 连续）
assert dP.max().item() > 3 * dA.max().item()     # Pooling 的一跳远大于 Align 的一步

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
for k, ax in enumerate(axes):
    ax.step(shifts.cpu(), P[:, k].cpu(), where="post", label="RoI Pooling")
    ax.plot(shifts.cpu(), A[:, k].cpu(), "o-", ms=3, label="RoI Align")
    ax.set_title(f"bin (0, {k})")
    ax.set_xlabel("框向右平移（特征图格，1 格 = 16 像素）")
axes[0].set_ylabel("输出值")
axes[0].legend()
fig.savefig("two_stage_shift.svg", bbox_inches="tight")
# --8<-- [end:shift]


# --8<-- [start:misalign]
# 随机框（原图像素坐标），stride 16、7×7 个 bin：量化后的 bin 边界与真实 bin 边界在原图上差多少像素
g = torch.Generator().manual_seed(1)
x1 = torch.rand(2000, generator=g, dtype=torch.float64) * 400
x2 = x1 + 48 + torch.rand(2000, generator=g, dtype=torch.float64) * 300
err_roi, err_bin = 0.0, 0.0
for a_, b_ in zip(x1.tolist(), x2.tolist()):
    s_, e_ = q(a_ * SCALE), q(b_ * SCALE)
    err_roi = max(err_roi, abs(s_ * STRIDE - a_))                      # 第一次量化：框的左边界
    bw = max(e_ - s_ + 1, 1) / 7
    for j in range(7):
        true_lo, true_hi = a_ + j * (b_ - a_) / 7, a_ + (j + 1) * (b_ - a_) / 7
        lo, hi = (math.floor(j * bw) + s_) * STRIDE, (math.ceil((j + 1) * bw) + s_) * STRIDE   # 格 k 覆盖 [16k, 16k+16)
        err_bin = max(err_bin, abs(lo - true_lo), abs(hi - true_hi))
print(f"框边界取整造成的最大偏移: {err_roi:.2f} 像素（上界 stride/2 = {STRIDE / 2:.0f}）")
print(f"bin 边界的最大偏移: {err_bin:.2f} 像素")
assert 7.9 < err_roi <= STRIDE / 2
assert err_bin > err_roi
# --8<-- [end:misalign]


# --8<-- [start:bins_figure]
# 一个框在特征图上的 2×2 个 bin：Pooling 取整后的格（色块）与 Align 的采样点（圆点）
box = torch.tensor([[1.3, 1.6, 5.9, 5.2]], dtype=torch.float64) * STRIDE
fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
x1f, y1f, x2f, y2f = (box[0] * SCALE).tolist()
xq1, yq1, xq2, yq2 = (q(v) for v in (x1f, y1f, x2f, y2f))
bh, bw = (yq2 - yq1 + 1) / 2, (xq2 - xq1 + 1) / 2
colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
ys, xs = sample_coords(box, (2, 2), SCALE, 2)
for ax, title in zip(axes, ["RoI Pooling：两次取整后的格", "RoI Align：每个 bin 2×2 个采样点"]):
    for k in range(9):
        ax.axhline(k, color="0.85", lw=0.8)
        ax.axvline(k, color="0.85", lw=0.8)
    ax.add_patch(plt.Rectangle((x1f, y1f), x2f - x1f, y2f - y1f, fill=False, lw=2, color="k"))
    ax.set_xlim(0, 8)
    ax.set_ylim(8, 0)
    ax.set_aspect("equal")
    ax.set_title(title)
for i in range(2):
    for j in range(2):
        c = colors[2 * i + j]
        h0, h1 = math.floor(i * bh) + yq1, math.ceil((i + 1) * bh) + yq1
        w0, w1 = math.floor(j * bw) + xq1, math.ceil((j + 1) * bw) + xq1
        axes[0].add_patch(plt.Rectangle((w0, h0), w1 - w0, h1 - h0, alpha=0.25, color=c))
        ax = axes[1]
        ax.add_patch(plt.Rectangle((x1f + j * (x2f - x1f) / 2, y1f + i * (y2f - y1f) / 2),
                                   (x2f - x1f) / 2, (y2f - y1f) / 2, fill=False, ls="--", color=c))
        yy = ys[0, 2 * i:2 * i + 2] + 0.5        # 采样坐标 + 0.5 = 连续坐标（格 k 的中心在 k + 0.5）
        xx = xs[0, 2 * j:2 * j + 2] + 0.5
        Y, X = torch.meshgrid(yy, xx, indexing="ij")
        ax.plot(X.flatten(), Y.flatten(), "o", color=c)
fig.savefig("two_stage_bins.svg", bbox_inches="tight")
print("Pooling 取整后的框（格，含两端）:", (xq1, yq1, xq2, yq2), " 原框（格）:", tuple(round(v, 3) for v in (x1f, y1f, x2f, y2f)))
# --8<-- [end:bins_figure]


# --8<-- [start:anchors]
def box_iou(a, b):
    """(N, 4) 与 (M, 4) 两两的 IoU（见 7.1）。"""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(dim=1)
    return inter / (area(a)[:, None] + area(b)[None] - inter)


# 256×256 的图，stride 16 → 16×16 个位置，每个位置 3 个尺度 × 3 个宽高比 = 9 个锚框
size, n_pos = 256, 16
centers = (torch.arange(n_pos, device=device, dtype=torch.float64) + 0.5) * STRIDE
cy, cx = torch.meshgrid(centers, centers, indexing="ij")
shapes = torch.tensor([(s * math.sqrt(r), s / math.sqrt(r)) for s in (32, 64, 128) for r in (0.5, 1, 2)],
                      dtype=torch.float64, device=device)             # (9, 2)：(w, h)，面积 s²，h/w = r
ctr = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)
anchors = torch.cat([ctr - shapes / 2, ctr + shapes / 2], dim=-1).reshape(-1, 4)   # (2304, 4)

# 一个生成的场景：6 个物体的真实框，边长 30 到 140 像素
gen = torch.Generator().manual_seed(0)
wh = 30 + torch.rand(6, 2, generator=gen, dtype=torch.float64) * 110
tl = torch.rand(6, 2, generator=gen, dtype=torch.float64) * (size - wh)
gt = torch.cat([tl, tl + wh], dim=1).to(device)

inside = ((anchors[:, :2] >= 0) & (anchors[:, 2:] <= size)).all(dim=1)   # 训练时忽略越出图像的锚框
iou = box_iou(anchors, gt)                                           # (2304, 5)
iou[~inside] = -1
best = iou.max(dim=1).values
labels = torch.full((len(anchors),), -1, device=device)              # -1：忽略（不参与损失）
labels[inside & (best < 0.3)] = 0                                    # 负样本
labels[best >= 0.7] = 1                                              # 正样本，规则 (ii)
top = iou.max(dim=0).values                                          # 每个真实框的最高 IoU
by_rule_i = (iou == top[None]) & (top[None] > 0)                     # 规则 (i)：与某个真实框 IoU 最高的锚框
labels[by_rule_i.any(dim=1)] = 1
n_p, n_n, n_i = (int((labels == v).sum()) for v in (1, 0, -1))
print(f"锚框 {len(anchors)} 个，越界忽略 {int((~inside).sum())} 个")
print(f"正样本 {n_p}，负样本 {n_n}，忽略 {n_i}")
print("每个真实框的最高 IoU:", [round(v, 3) for v in top.tolist()])
print("每个真实框的正样本数:", ((labels == 1)[:, None] & ((iou >= 0.7) | by_rule_i)).sum(dim=0).tolist())
print("没有任何锚框达到 0.7、只靠规则 (i) 得到正样本的真实框:", int((top < 0.7).sum()))
assert n_p + n_n + n_i == len(anchors) == 16 * 16 * 9
assert ((labels == 1)[:, None] & ((iou >= 0.7) | by_rule_i)).sum(dim=0).min() >= 1   # 每个真实框至少一个正样本
assert n_n > 10 * n_p                                                # 负样本远多于正样本
assert 1 <= int((top < 0.7).sum()) < len(gt)                         # 两条规则在这个场景里都用上了
# --8<-- [end:anchors]
