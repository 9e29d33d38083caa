# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLASSES = ["矩形", "椭圆", "三角形"]
# --8<-- [end:setup]

# --8<-- [start:scene]
def make_scene(gen, size=96, n_obj=6):
    """纹理背景上的若干图形；返回图像 (3, size, size)、框 (n, 4) 的 (x1, y1, x2, y2) 与类别 (n,)。

    像素 (i, j) 覆盖 [j, j+1] × [i, i+1]，用像素中心 (j+0.5, i+0.5) 判断是否在图形内；
    框是图形被画到的像素的外接矩形，因而是精确的（后画的图形可以遮住先画的）。
    """
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)[0]
    img = 0.35 + 0.3 * low + 0.06 * torch.sin(xx / 2.5 + yy / 4.0)       # 低频噪声 + 条纹
    boxes, labels = [], []
    for _ in range(n_obj):
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(14, 40, (2,), generator=gen).tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        cx, cy = x0 + w / 2, y0 + h / 2
        if c == 0:                                   # 矩形
            mask = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
        elif c == 1:                                 # 椭圆
            mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
        else:                                        # 顶点朝上的等腰三角形
            mask = (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)
        img[:, mask] = torch.rand(3, 1, generator=gen)
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
        labels.append(c)
        if c == 0:
            assert boxes[-1] == [x0, y0, x0 + w, y0 + h]   # 矩形的框就是它自己
    return img.clamp(0, 1), torch.tensor(boxes, dtype=torch.float64), torch.tensor(labels)


gen = torch.Generator().manual_seed(3)       # 场景在 CPU 上生成，任何设备上都是同一幅
img, gt_boxes, gt_labels = make_scene(gen)
gt_boxes, gt_labels = gt_boxes.to(device), gt_labels.to(device)
for b, c in zip(gt_boxes.tolist(), gt_labels.tolist()):
    print(f"{CLASSES[c]:<3}  (x1, y1, x2, y2) = ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f})")
# --8<-- [end:scene]

# --8<-- [start:boxes]
def xyxy_to_cxcywh(b):
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def cxcywh_to_xyxy(b):
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def random_boxes(n, size=100.0, gen=None):
    """n 个随机框 (x1, y1, x2, y2)，宽高在 [2, size/2) 内，float64。"""
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * size
    wh = 2 + torch.rand(n, 2, generator=gen, dtype=torch.float64) * (size / 2 - 2)
    return torch.cat([xy, xy + wh], dim=1).to(device)


g = torch.Generator().manual_seed(0)
b = random_boxes(1000, gen=g)
err_a = (cxcywh_to_xyxy(xyxy_to_cxcywh(b)) - b).abs().max().item()
c = xyxy_to_cxcywh(b)
err_b = (xyxy_to_cxcywh(cxcywh_to_xyxy(c)) - c).abs().max().item()
print(f"1000 个随机框：xyxy → cxcywh → xyxy 最大误差 {err_a:.1e}，cxcywh → xyxy → cxcywh 最大误差 {err_b:.1e}")
print("场景第 1 个框的 (cx, cy, w, h) =", [round(v, 1) for v in xyxy_to_cxcywh(gt_boxes[0]).tolist()])
assert err_a < 1e-12 and err_b < 1e-12
# --8<-- [end:boxes]

# --8<-- [start:iou]
def box_area(b):
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a, b):
    """a: (N, 4)，b: (M, 4)，都是 (x1, y1, x2, y2)；返回 (N, M) 的交并比。"""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])        # 交集左上角 (N, M, 2)
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])        # 交集右下角 (N, M, 2)
    inter = (rb - lt).clamp(min=0).prod(dim=-1)               # 不相交时宽或高为 0
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union


def iou_by_pixels(a, b, size=32):
    """暴力参照：把整数框画成 size×size 的 0/1 图，数交集与并集的像素。"""
    def raster(box):
        m = torch.zeros(size, size, dtype=torch.bool)
        x1, y1, x2, y2 = (int(v) for v in box)
        m[y1:y2, x1:x2] = True
        return m
    out = torch.zeros(len(a), len(b), dtype=torch.float64)
    for i, p in enumerate(a.tolist()):
        for j, q in enumerate(b.tolist()):
            mp, mq = raster(p), raster(q)
            out[i, j] = (mp & mq).sum().item() / (mp | mq).sum().item()
    return out


g = torch.Generator().manual_seed(1)
corners = torch.randint(0, 33, (60, 2, 2), generator=g).sort(dim=1).values   # 每个坐标轴上排好序
corners[:, 1] += (corners[:, 1] == corners[:, 0]).long()                      # 宽高至少 1 个像素
int_boxes = torch.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
int_boxes = int_boxes.clamp(max=32).double()
A, B = int_boxes[:30], int_boxes[30:]
iou_vec = box_iou(A.to(device), B.to(device)).cpu()
iou_ref = iou_by_pixels(A, B)
print(f"30×30 对整数框：向量化 IoU 与数像素的最大差 {(iou_vec - iou_ref).abs().max().item():.1e}，"
      f"其中不相交的 {(iou_ref == 0).sum().item()} 对，IoU 最大 {iou_ref.max().item():.3f}")
assert torch.allclose(iou_vec, iou_ref, rtol=0, atol=1e-12)
assert (iou_ref == 0).any() and (iou_ref > 0.5).any()        # 两种情形都被覆盖到
# --8<-- [end:iou]

# --8<-- [start:anchors]
def make_anchors(feat_h, feat_w, stride, scales, ratios):
    """特征图每个位置放 len(scales)·len(ratios) 个锚框；ratio = h / w，面积 = scale²。

    返回 (feat_h·feat_w·A, 4)，顺序为 (行, 列, 尺度, 宽高比)。"""
    s = torch.tensor(scales, dtype=torch.float64, device=device)[:, None]
    r = torch.tensor(ratios, dtype=torch.float64, device=device)[None, :]
    ws = (s / r.sqrt()).reshape(-1)                           # w = s / √r
    hs = (s * r.sqrt()).reshape(-1)                           # h = s · √r，于是 w·h = s²，h/w = r
    base = torch.stack([-ws / 2, -hs / 2, ws / 2, hs / 2], dim=1)          # (A, 4)，以原点为中心
    cy = (torch.arange(feat_h, dtype=torch.float64, device=device) + 0.5) * stride
    cx = (torch.arange(feat_w, dtype=torch.float64, device=device) + 0.5) * stride
    cyy, cxx = torch.meshgrid(cy, cx, indexing="ij")
    shifts = torch.stack([cxx, cyy, cxx, cyy], dim=-1).reshape(-1, 1, 4)   # (H·W, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)


stride, scales, ratios = 16, (16, 32, 64), (0.5, 1.0, 2.0)
fh = fw = 96 // stride
anchors = make_anchors(fh, fw, stride, scales, ratios)
A_per = len(scales) * len(ratios)
print(f"特征图 {fh}×{fw}，步幅 {stride}，每个位置 {A_per} 个锚框，共 {anchors.shape[0]} 个，形状 {tuple(anchors.shape)}")
wh = xyxy_to_cxcywh(anchors)[:, 2:].reshape(fh, fw, len(scales), len(ratios), 2)
assert anchors.shape == (fh * fw * A_per, 4)
assert torch.allclose(wh[..., 0] * wh[..., 1],
                      torch.tensor(scales, dtype=torch.float64, device=device)[:, None] ** 2)
assert torch.allclose(wh[..., 1] / wh[..., 0], torch.tensor(ratios, dtype=torch.float64, device=device))
centres = xyxy_to_cxcywh(anchors)[:, :2].reshape(fh, fw, A_per, 2)
assert torch.allclose(centres, centres[:, :, :1].expand_as(centres))               # 同一位置的锚框共用一个中心
print("位置 (0, 0) 的锚框 (w, h)：", [(round(w, 1), round(h, 1)) for w, h in wh[0, 0].reshape(-1, 2).tolist()])

best_iou, best_idx = box_iou(gt_boxes, anchors).max(dim=1)   # 每个真实框最匹配的锚框
print("每个真实框与锚框的最大 IoU：", [round(v, 3) for v in best_iou.tolist()])
assert (best_iou > 0.3).all()
# --8<-- [end:anchors]

# --8<-- [start:encode]
def encode(gt, anc):
    """Faster R-CNN 的偏移量：tx = (x − xa)/wa, ty = (y − ya)/ha, tw = log(w/wa), th = log(h/ha)。"""
    g, a = xyxy_to_cxcywh(gt), xyxy_to_cxcywh(anc)
    return torch.stack([(g[:, 0] - a[:, 0]) / a[:, 2], (g[:, 1] - a[:, 1]) / a[:, 3],
                        torch.log(g[:, 2] / a[:, 2]), torch.log(g[:, 3] / a[:, 3])], dim=1)


def decode(t, anc):
    a = xyxy_to_cxcywh(anc)
    return cxcywh_to_xyxy(torch.stack([a[:, 0] + t[:, 0] * a[:, 2], a[:, 1] + t[:, 1] * a[:, 3],
                                       a[:, 2] * t[:, 2].exp(), a[:, 3] * t[:, 3].exp()], dim=1))


g = torch.Generator().manual_seed(2)
anc_r, gt_r = random_boxes(1000, gen=g), random_boxes(1000, gen=g)
t = encode(gt_r, anc_r)
err_box = (decode(t, anc_r) - gt_r).abs().max().item()
err_t = (encode(decode(t, anc_r), anc_r) - t).abs().max().item()
err_zero = (decode(torch.zeros_like(t), anc_r) - anc_r).abs().max().item()
print(f"1000 对随机框：decode(encode(g)) 最大误差 {err_box:.1e}，encode(decode(t)) 最大误差 {err_t:.1e}，"
      f"零偏移解码回锚框的误差 {err_zero:.1e}")
assert err_box < 1e-10 and err_t < 1e-10 and err_zero < 1e-12
t_scene = encode(gt_boxes, anchors[best_idx])
for k in range(2):
    print(f"真实框 {k} 相对最匹配锚框的 (tx, ty, tw, th) =", [round(v, 3) for v in t_scene[k].tolist()])
# --8<-- [end:encode]

# --8<-- [start:nms]
def nms(boxes, scores, thr):
    """贪心 NMS：按分数从高到低，留下当前最高者，删去与它 IoU > thr 的框。返回留下的下标。

    分数相同时按原下标从小到大（stable 排序），与暴力参照的约定一致。"""
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > thr                # 第 i 行：与当前留下的框重叠过多的都删掉
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def nms_brute(boxes, scores, thr):
    """暴力参照：纯 Python 列表，每轮从剩下的框里挑分数最高（同分取下标最小）的一个。"""
    def iou(p, q):
        iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        inter = iw * ih
        return inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter)
    bs, ss = boxes.tolist(), scores.tolist()
    left, keep = list(range(len(bs))), []
    while left:
        best = max(left, key=lambda k: (ss[k], -k))
        keep.append(best)
        left = [k for k in left if k != best and iou(bs[k], bs[best]) <= thr]
    return keep


g = torch.Generator().manual_seed(4)
n_cases = 0
for trial in range(6):
    bxs = random_boxes(150, size=60.0, gen=g)                   # 小画布上 150 个框，重叠很多
    scs = torch.rand(150, generator=g, dtype=torch.float64).to(device)
    if trial % 2 == 1:
        scs = (scs * 10).floor() / 10                           # 只有 10 种分数：大量同分
    for thr in (0.3, 0.5, 0.7):
        kept = nms(bxs, scs, thr).tolist()
        assert kept == nms_brute(bxs, scs, thr)
        n_cases += 1
print(f"{n_cases} 组（6 组随机框 × 3 个阈值，其中一半分数大量相同）：NMS 与暴力参照留下的下标完全相同")
# --8<-- [end:nms]

# --8<-- [start:ap]
def average_precision(dets, scores, gts, iou_thr=0.5):
    """单个类别的 AP，全点插值（VOC2010 起的规则）。

    dets: (D, 4)，scores: (D,)，gts: (G, 4)。按分数从高到低逐个判定：与它 IoU 最大的真实框
    若 IoU ≥ iou_thr 且尚未被匹配，记 TP 并占用该真实框；否则记 FP（VOC 开发包的规则）。"""
    if len(gts) == 0:
        return float("nan")
    dets, scores, gts = dets.cpu(), scores.cpu(), gts.cpu()     # 逐个判定是顺序的小计算，放在 CPU 上
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = torch.zeros(len(order), dtype=torch.float64)
    if len(order) > 0:
        best, j = box_iou(dets[order], gts).max(dim=1)
        used = set()
        for k in range(len(order)):
            if best[k] >= iou_thr and j[k].item() not in used:
                tp[k] = 1
                used.add(j[k].item())
    ctp = tp.cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), ctp / len(gts)])
    precision = torch.cat([torch.ones(1, dtype=torch.float64), ctp / torch.arange(1, len(tp) + 1)])
    # 插值：p_interp(r) = 右侧（召回率不小于 r）的最大精确率，从右往左取累计最大值
    p_interp = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * p_interp[1:]).sum().item()


def mean_ap(dets, scores, det_labels, gts, gt_labels, n_classes, iou_thr=0.5):
    dets, scores, det_labels, gts, gt_labels = (x.cpu() for x in (dets, scores, det_labels, gts, gt_labels))
    aps = [average_precision(dets[det_labels == c], scores[det_labels == c],
                             gts[gt_labels == c], iou_thr) for c in range(n_classes)]
    aps = [a for a in aps if not math.isnan(a)]                # 没有真实框的类别不计入
    return sum(aps) / len(aps), aps


def bx(*v):
    return torch.tensor(v, dtype=torch.float64, device=device).reshape(-1, 4)


# 手算例 1：2 个真实框；3 个检测按分数为 TP、FP、TP
gts1 = bx(0, 0, 10, 10, 20, 20, 30, 30)
dets1 = bx(0, 0, 10, 10, 50, 50, 60, 60, 21, 21, 30, 30)           # 第 3 个与第 2 个真实框 IoU = 0.81
ap1 = average_precision(dets1, torch.tensor([0.9, 0.8, 0.7]), gts1)
# 手算例 2：1 个真实框；分数最高的检测 IoU 只有 0.4，第二个才命中
gts2 = bx(0, 0, 10, 10)
dets2 = bx(0, 0, 4, 10, 0, 0, 10, 9)                                 # IoU 0.4 与 0.9
ap2 = average_precision(dets2, torch.tensor([0.9, 0.8]), gts2)
# 手算例 3：重复检测——两个检测都与同一个真实框 IoU ≥ 0.5，第二个只能是 FP
dets3 = bx(0, 0, 10, 10, 0, 0, 10, 8)
ap3 = average_precision(dets3, torch.tensor([0.9, 0.8]), gts2)
# 手算例 4：2 个真实框只检出 1 个，召回率到不了 1
ap4 = average_precision(bx(0, 0, 10, 10), torch.tensor([0.9]), gts1)
m, _ = mean_ap(torch.cat([dets1, dets2]), torch.tensor([0.9, 0.8, 0.7, 0.9, 0.8]),
               torch.tensor([0, 0, 0, 1, 1]), torch.cat([gts1, gts2]), torch.tensor([0, 0, 1]), 2)
print(f"例 1 AP = {ap1:.4f}，例 2 AP = {ap2:.4f}，例 3 AP = {ap3:.4f}，例 4 AP = {ap4:.4f}；"
      f"例 1、2 作为两个类别的 mAP = {m:.4f}")
assert abs(ap1 - (0.5 * 1 + 0.5 * 2 / 3)) < 1e-12
assert abs(ap2 - 0.5) < 1e-12 and abs(ap3 - 1.0) < 1e-12 and abs(ap4 - 0.5) < 1e-12
assert abs(m - (ap1 + ap2) / 2) < 1e-12
# --8<-- [end:ap]

# --8<-- [start:noisy]
# 模拟一个没做 NMS 的检测器：每个真实框附近 8 个抖动的框（分数随抖动变小），再加 10 个随机误检
g = torch.Generator().manual_seed(5)
rows, scs, labs = [], [], []
for box, c in zip(gt_boxes.cpu(), gt_labels.cpu()):
    wh_g = (box[2:] - box[:2]).repeat(2)
    jitter = torch.randn(8, 4, generator=g, dtype=torch.float64) * 0.12 * wh_g
    cand = box + jitter
    cand = torch.cat([cand[:, :2].minimum(cand[:, 2:] - 1), cand[:, 2:]], 1)   # 保证 x1 < x2、y1 < y2
    rows.append(cand)
    scs.append(0.5 + 0.5 * box_iou(cand, box[None])[:, 0] * torch.rand(8, generator=g, dtype=torch.float64))
    labs.append(torch.full((8,), int(c)))
fp = random_boxes(10, size=80.0, gen=g).cpu()
rows.append(fp)
scs.append(0.3 + 0.5 * torch.rand(10, generator=g, dtype=torch.float64))
labs.append(torch.randint(3, (10,), generator=g))
det_boxes, det_scores, det_labels = torch.cat(rows).to(device), torch.cat(scs).to(device), torch.cat(labs).to(device)


def batched_nms(boxes, scores, labels, thr):
    """按类别分别做 NMS：把每类的框平移到互不重叠的区域，一次调用即可。"""
    offset = labels.double()[:, None] * (boxes.max() + 1)
    return nms(boxes + offset, scores, thr)


keep = batched_nms(det_boxes, det_scores, det_labels, 0.5)
gl_cpu = gt_labels.cpu()
m_before, aps_before = mean_ap(det_boxes.cpu(), det_scores.cpu(), det_labels.cpu(), gt_boxes.cpu(), gl_cpu, 3)
m_after, aps_after = mean_ap(det_boxes[keep].cpu(), det_scores[keep].cpu(), det_labels[keep].cpu(),
                             gt_boxes.cpu(), gl_cpu, 3)
print(f"检测框：NMS 前 {len(det_boxes)} 个，NMS（IoU 阈值 0.5，按类别）后 {len(keep)} 个")
print(f"各类 AP@0.5 NMS 前 {[round(a, 3) for a in aps_before]}，NMS 后 {[round(a, 3) for a in aps_after]}")
print(f"mAP@0.5：NMS 前 {m_before:.3f}，NMS 后 {m_after:.3f}")
assert all(a >= b for a, b in zip(aps_after, aps_before)) and m_after > m_before
n_gt = torch.bincount(gl_cpu, minlength=3).tolist()
print("各类真实框个数", n_gt)
assert n_gt == [1, 4, 1]                                      # 矩形、三角形各 1 个，椭圆 4 个
assert aps_before[0] == aps_before[2] == 1.0 and aps_after[1] > aps_before[1]   # 提升只来自椭圆类
# --8<-- [end:noisy]

# --8<-- [start:figure]
def draw(ax, boxes, colours, styles="-", lw=1.5):
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        ls = styles if isinstance(styles, str) else styles[k]
        col = colours if isinstance(colours, str) else colours[k]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=col, lw=lw, ls=ls))


cls_col = ["tab:red", "tab:blue", "lime"]
fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
for ax in axes:
    ax.imshow(img.permute(1, 2, 0).numpy(), extent=(0, 96, 96, 0))
    ax.set_xlim(-20, 116)
    ax.set_ylim(116, -20)
    ax.set_xticks([])
    ax.set_yticks([])
draw(axes[0], gt_boxes.cpu(), [cls_col[c] for c in gt_labels.tolist()], lw=2)
draw(axes[0], anchors[best_idx].cpu(), "white", "--", lw=1.2)
axes[0].set_title("真实框（实线，颜色=类别）与最匹配的锚框（虚线）", fontsize=9)
pos = (2 * fw + 2) * A_per                                   # 位置 (2, 2) 的 9 个锚框
draw(axes[1], anchors[pos:pos + A_per].cpu(), ["yellow", "orange", "magenta"] * 3, lw=1.2)
axes[1].set_title("位置 (2, 2) 上 3 种尺度 × 3 种宽高比的锚框", fontsize=9)
fig.savefig("detection_scene.svg", bbox_inches="tight")
plt.close(fig)

fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
for ax, idx, title in ((axes[0], torch.arange(len(det_boxes), device=device), f"NMS 前：{len(det_boxes)} 个框"),
                       (axes[1], keep, f"NMS 后：{len(keep)} 个框")):
    ax.imshow(img.permute(1, 2, 0).numpy(), extent=(0, 96, 96, 0))
    draw(ax, det_boxes[idx].cpu(), [cls_col[c] for c in det_labels[idx].tolist()], lw=1)
    ax.set_xlim(-5, 101)
    ax.set_ylim(101, -5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
fig.savefig("detection_nms.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
