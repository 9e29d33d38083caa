# --8<-- [start:imports]
import math

import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


# 以下定义与正文相同
def q(v: float) -> int:
    return math.floor(v + 0.5)


def roi_pool(feat, boxes, output_size, spatial_scale):
    C, H, W = feat.shape
    PH, PW = output_size
    outs = []
    for x1, y1, x2, y2 in boxes.tolist():
        x1, y1, x2, y2 = (q(v * spatial_scale) for v in (x1, y1, x2, y2))
        bh = max(y2 - y1 + 1, 1) / PH
        bw = max(x2 - x1 + 1, 1) / PW
        i = torch.arange(PH, device=feat.device, dtype=torch.float64)
        j = torch.arange(PW, device=feat.device, dtype=torch.float64)
        hs, he = (torch.floor(i * bh) + y1).clamp(0, H), (torch.ceil((i + 1) * bh) + y1).clamp(0, H)
        ws, we = (torch.floor(j * bw) + x1).clamp(0, W), (torch.ceil((j + 1) * bw) + x1).clamp(0, W)
        hh = torch.arange(H, device=feat.device)
        ww = torch.arange(W, device=feat.device)
        mh = (hh >= hs[:, None]) & (hh < he[:, None])
        mw = (ww >= ws[:, None]) & (ww < we[:, None])
        m = mh[:, None, :, None] & mw[None, :, None, :]
        v = feat[:, None, None].masked_fill(~m, float("-inf")).amax(dim=(-2, -1))
        outs.append(v.masked_fill(~m.any(dim=(-2, -1)), 0.0))
    return torch.stack(outs)


def interp_weights(coords, size):
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
    PH, PW = output_size
    sr = sampling_ratio
    b = boxes * spatial_scale - 0.5
    x1, y1, x2, y2 = b.unbind(1)
    ty = torch.arange(PH * sr, device=boxes.device) // sr + (torch.arange(PH * sr, device=boxes.device) % sr + 0.5) / sr
    tx = torch.arange(PW * sr, device=boxes.device) // sr + (torch.arange(PW * sr, device=boxes.device) % sr + 0.5) / sr
    ys = y1[:, None] + ty[None] * ((y2 - y1) / PH)[:, None]
    xs = x1[:, None] + tx[None] * ((x2 - x1) / PW)[:, None]
    return ys, xs


def roi_align(feat, boxes, output_size, spatial_scale, sampling_ratio=2):
    C, H, W = feat.shape
    PH, PW = output_size
    sr = sampling_ratio
    ys, xs = sample_coords(boxes, output_size, spatial_scale, sr)
    s = torch.einsum("rah,chw,rbw->rcab", interp_weights(ys, H), feat, interp_weights(xs, W))
    return s.reshape(len(boxes), C, PH, sr, PW, sr).mean(dim=(3, 5))
# --8<-- [end:imports]


# --8<-- [start:ex1]
feat = torch.randn(4, 16, 16, dtype=torch.float64, device=device)
xy = torch.rand(8, 2, dtype=torch.float64, device=device) * 150 + 16
boxes = torch.cat([xy, xy + 32 + torch.rand(8, 2, dtype=torch.float64, device=device) * 60], dim=1)
exact = roi_align(feat, boxes, (7, 7), 1 / 16, sampling_ratio=64)     # 近似 bin 内双线性曲面的精确平均
errs = {}
for sr in (1, 2, 4, 8):
    errs[sr] = (roi_align(feat, boxes, (7, 7), 1 / 16, sampling_ratio=sr) - exact).abs().max().item()
    print(f"sampling_ratio={sr}: 与 64×64 个点的平均的最大差 {errs[sr]:.4f}")
assert errs[1] > errs[2] > errs[4] > errs[8]
# --8<-- [end:ex1]


# --8<-- [start:ex2]
feat = torch.randn(4, 16, 16, dtype=torch.float64, device=device, requires_grad=True)
box = torch.tensor([[37.0, 45.0, 171.0, 149.0]], dtype=torch.float64, device=device)
n_bins = 4 * 7 * 7
counts = {}
for name, fn in [("RoI Pooling", lambda f: roi_pool(f, box, (7, 7), 1 / 16)),
                 ("RoI Align", lambda f: roi_align(f, box, (7, 7), 1 / 16, 2))]:
    (g,) = torch.autograd.grad(fn(feat).sum(), feat)
    counts[name] = int((g != 0).sum())
    print(f"{name}: 梯度非零的特征图元素 {counts[name]} 个（共 {g.numel()} 个，输出 {n_bins} 个）")
assert counts["RoI Pooling"] <= n_bins < counts["RoI Align"]
# --8<-- [end:ex2]


# --8<-- [start:ex3]
g = torch.Generator().manual_seed(1)
x1 = torch.rand(2000, generator=g, dtype=torch.float64) * 400
for stride in (8, 16, 32):
    err = max(abs(q(v / stride) * stride - v) for v in x1.tolist())
    print(f"stride {stride}: 框边界取整的最大偏移 {err:.2f} 像素（stride/2 = {stride / 2:.0f}）")
    assert 0.95 * stride / 2 < err <= stride / 2
# --8<-- [end:ex3]
