# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLASSES = ["矩形", "椭圆", "三角形"]
SIZE = 48
# --8<-- [end:setup]


# --8<-- [start:scene]
def shape_mask(c, x0, y0, w, h, size=SIZE):
    """像素中心 (j+0.5, i+0.5) 落在图形内的像素；c = 0 矩形、1 椭圆、2 顶点朝上的等腰三角形。"""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    cx, cy = x0 + w / 2, y0 + h / 2
    if c == 0:
        return (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
    if c == 1:
        return ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
    return (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)


def render(gen, objs, size=SIZE):
    """按顺序画图形，后画的盖住先画的。返回图像 (3, size, size) 与实例图 inst (size, size)：
    inst[i, j] = k + 1 表示像素属于第 k 个物体（可见的部分），0 是背景。"""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)[0]
    img = 0.35 + 0.3 * low + 0.06 * torch.sin(xx / 2.5 + yy / 4.0)     # 纹理背景
    inst = torch.zeros(size, size, dtype=torch.long)
    for k, obj in enumerate(objs):
        m = shape_mask(*obj, size)
        img[:, m] = torch.rand(3, 1, generator=gen)
        inst[m] = k + 1
    return img.clamp(0, 1), inst


def make_scene(gen, n_obj=4, size=SIZE, min_visible=0.4):
    """随机放 n_obj 个图形；新图形若让任何物体（包括它自己）可见的像素少于 min_visible，就重抽。"""
    objs, inst = [], torch.zeros(size, size, dtype=torch.long)
    while len(objs) < n_obj:
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(8, 24, (2,), generator=gen).tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        new = inst.clone()
        new[shape_mask(c, x0, y0, w, h, size)] = len(objs) + 1
        full = torch.stack([shape_mask(*o, size).sum() for o in objs + [(c, x0, y0, w, h)]])
        visible = torch.bincount(new.flatten(), minlength=len(objs) + 2)[1:]
        if (visible >= min_visible * full).all():
            objs.append((c, x0, y0, w, h))
            inst = new
    img, inst = render(gen, objs, size)
    return img, inst, torch.tensor([o[0] for o in objs])


def instances(inst, labels):
    """实例图 → 每个物体一个掩码 (n, H, W) 与可见部分的外接框 (n, 4)，框为 (x1, y1, x2, y2)。"""
    masks = torch.stack([inst == k + 1 for k in range(len(labels))])
    boxes = []
    for m in masks:
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
    return masks, torch.tensor(boxes, dtype=torch.float32)
# --8<-- [end:scene]


# --8<-- [start:definition]
# 一个手工摆放的场景：两个相接的矩形（同一类），两个椭圆，一个三角形盖住右边椭圆的一部分
objs = [(0, 4, 6, 14, 12), (0, 18, 10, 10, 14), (1, 3, 28, 16, 14), (1, 24, 28, 20, 16), (2, 33, 16, 12, 20)]
scene_img, scene_inst = render(torch.Generator().manual_seed(7), objs)
scene_img, scene_inst = scene_img.to(device), scene_inst.to(device)
scene_labels = torch.tensor([o[0] for o in objs], device=device)


def semantic_from_instances(inst, labels):
    """语义分割：每个像素一个类别（0 = 背景，c + 1 = 第 c 类），不区分同类的不同物体。"""
    lut = torch.cat([torch.zeros(1, dtype=torch.long, device=inst.device), labels + 1])
    return lut[inst]


def panoptic_from_instances(inst, labels):
    """全景分割：每个像素一个 (类别, 实例编号)；背景是 stuff，没有实例，编号为 0。"""
    return semantic_from_instances(inst, labels), inst.clone()


sem = semantic_from_instances(scene_inst, scene_labels)
masks, boxes = instances(scene_inst, scene_labels)
pan_cls, pan_id = panoptic_from_instances(scene_inst, scene_labels)
print("语义分割：各类像素数（背景、矩形、椭圆、三角形）", torch.bincount(sem.flatten(), minlength=4).tolist())
print(f"实例分割：{len(masks)} 个实例，类别 {[CLASSES[c] for c in scene_labels.tolist()]}，"
      f"面积 {masks.sum(dim=(1, 2)).tolist()}")
print(f"全景分割：{len(torch.unique(pan_cls * 100 + pan_id))} 个区段（1 个背景 stuff + {len(masks)} 个 thing）")

# 实例数 = 可见物体数；掩码互不重叠，并起来正好是前景
assert len(masks) == len(objs) and (masks.sum(dim=(1, 2)) > 0).all()
assert masks.sum(dim=0).max() == 1 and torch.equal(masks.any(dim=0), sem > 0)
# 右边的椭圆被三角形遮住一部分：它的掩码只含可见的像素
assert masks[3].sum() < shape_mask(*objs[3]).sum()
# 全景 = 语义 + 实例编号：类别图与语义图相同；背景像素编号为 0；每个实例编号只对应一个类别
assert torch.equal(pan_cls, sem) and torch.equal(pan_id == 0, sem == 0)
assert all(len(torch.unique(pan_cls[pan_id == k])) == 1 for k in range(1, len(objs) + 1))

# 把两个相接的矩形当作一个物体：语义图一模一样，实例分割的输出却少了一个实例
merged_inst = torch.where(scene_inst == 2, 1, scene_inst)
merged_inst = torch.where(merged_inst > 2, merged_inst - 1, merged_inst)
merged_labels = scene_labels[[0, 2, 3, 4]]
sem_merged = semantic_from_instances(merged_inst, merged_labels)
print(f"两个矩形合并后：语义图相同 {torch.equal(sem, sem_merged)}，"
      f"实例数 {len(objs)} → {len(torch.unique(merged_inst)) - 1}")
assert torch.equal(sem, sem_merged) and len(torch.unique(merged_inst)) - 1 == len(objs) - 1
# --8<-- [end:definition]


# --8<-- [start:metrics]
def mask_iou(a, b):
    """a: (P, H, W)，b: (G, H, W) 的 0/1 掩码；返回 (P, G) 的交并比。"""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union


def average_precision(iou, scores, iou_thr=0.5):
    """单个类别的 AP（全点插值，与 7.1 的规则相同），只是 IoU 换成掩码的 IoU。
    iou: (D, G) 预测与真实物体的 IoU，scores: (D,)。"""
    D, G = iou.shape
    if G == 0:
        return float("nan")
    order = torch.sort(scores.cpu(), descending=True, stable=True).indices
    tp = torch.zeros(D, dtype=torch.float64)
    if D > 0:
        best, j = iou.cpu()[order].max(dim=1)
        used = set()
        for k in range(D):
            if best[k] >= iou_thr and j[k].item() not in used:
                tp[k] = 1
                used.add(j[k].item())
    ctp = tp.cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), ctp / G])
    precision = torch.cat([torch.ones(1, dtype=torch.float64), ctp / torch.arange(1, D + 1)])
    p_interp = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * p_interp[1:]).sum().item()


def mask_map(pred_masks, scores, pred_labels, gt_masks, gt_labels, n_classes=3, iou_thr=0.5):
    """掩码 mAP：每个类别的预测只与同类的真实物体比较，再对出现过的类别取平均。"""
    aps = []
    for c in range(n_classes):
        p, g = pred_labels == c, gt_labels == c
        if g.any():
            aps.append(average_precision(mask_iou(pred_masks[p], gt_masks[g]), scores[p], iou_thr))
    return sum(aps) / len(aps)


def grid(rows):
    """用字符画一个小掩码：'#' 是 1。"""
    return torch.tensor([[ch == "#" for ch in r] for r in rows], device=device)


A = grid(["##..", "##..", "....", "...."])
B = grid(["###.", "###.", "....", "...."])
C = grid(["....", "....", "..##", "..##"])
hand = mask_iou(torch.stack([A, B, C]), torch.stack([A, B, C]))
print("手算例的 IoU 矩阵：", [[round(v, 4) for v in row] for row in hand.tolist()])
assert torch.allclose(hand, torch.tensor([[1, 4 / 6, 0], [4 / 6, 1, 0], [0, 0, 1]],
                                         dtype=torch.float64, device=device))
g = torch.Generator().manual_seed(0)
ra, rb = torch.rand(6, 9, 9, generator=g) > 0.5, torch.rand(5, 9, 9, generator=g) > 0.5
brute = torch.tensor([[(p & q).sum().item() / (p | q).sum().item() for q in rb] for p in ra],
                     dtype=torch.float64)
assert torch.allclose(mask_iou(ra.to(device), rb.to(device)).cpu(), brute, rtol=0, atol=1e-12)

gts = torch.stack([A, C])
one = torch.ones(1, device=device)
ap_perfect = average_precision(mask_iou(gts, gts), torch.tensor([0.9, 0.8]))
ap_missed = average_precision(mask_iou(A[None], gts), one)                 # 2 个物体只找到 1 个
ap_merged = average_precision(mask_iou((A | C)[None], gts), one)           # 把两个物体并成一个掩码
ap_fp_first = average_precision(mask_iou(torch.stack([B, C, A]), gts),     # B 与 A 的 IoU 4/6 也算命中
                                 torch.tensor([0.9, 0.8, 0.7]))
print(f"AP@0.5：全对 {ap_perfect:.2f}，漏掉一个 {ap_missed:.2f}，两个并成一个 {ap_merged:.2f}，"
      f"B 先匹配 A、A 成了重复 {ap_fp_first:.2f}")
print(f"同一例 AP@0.75：B、C、A 三个预测 "
      f"{average_precision(mask_iou(torch.stack([B, C, A]), gts), torch.tensor([0.9, 0.8, 0.7]), 0.75):.4f}")
# 并起来的掩码与 A、C 的 IoU 都是 4/8 = 0.5，只能匹配其中一个：与漏掉一个一样
assert ap_perfect == 1.0 and ap_missed == 0.5 and ap_merged == 0.5 and ap_fp_first == 1.0
# 阈值 0.75 时 B 不再命中：B 为 FP，C 为 TP（精确率 1/2），A 为 TP（精确率 2/3），插值后两段都取 2/3
assert abs(average_precision(mask_iou(torch.stack([B, C, A]), gts), torch.tensor([0.9, 0.8, 0.7]), 0.75)
           - 2 / 3) < 1e-12
# --8<-- [end:metrics]


# --8<-- [start:erratum]
def connected_components(sem):
    """同类、8 邻接相连的像素归为一个区域：每个像素从唯一编号出发，反复取 3×3 邻域内同类像素的最大编号。"""
    comp = torch.zeros_like(sem)
    for c in sem.unique().tolist():
        if c == 0:
            continue
        m = sem == c
        lab = torch.where(m, torch.arange(1, sem.numel() + 1, device=sem.device).reshape(sem.shape), 0)
        while True:
            new = F.max_pool2d(lab[None, None].double(), 3, stride=1, padding=1)[0, 0].long() * m
            if torch.equal(new, lab):
                break
            lab = new
        comp = torch.where(m, lab, comp)
    ids = comp.unique()
    ids = ids[ids > 0]
    return torch.stack([comp == i for i in ids]), torch.stack([sem[comp == i][0] - 1 for i in ids])


def report(name, pred_masks, pred_labels):
    fg = pred_masks.any(dim=0)
    fg_iou = ((fg & (sem > 0)).sum() / (fg | (sem > 0)).sum()).item()
    sem_pred = torch.zeros_like(sem)
    for m, c in zip(pred_masks, pred_labels):
        sem_pred[m] = c + 1
    miou = torch.stack([((sem_pred == c) & (sem == c)).sum() / ((sem_pred == c) | (sem == c)).sum()
                        for c in range(4)]).mean().item()
    scores = torch.ones(len(pred_masks), device=device)
    ap50 = mask_map(pred_masks, scores, pred_labels, masks, scene_labels, iou_thr=0.5)
    ap75 = mask_map(pred_masks, scores, pred_labels, masks, scene_labels, iou_thr=0.75)
    print(f"{name:<10} 前景 IoU {fg_iou:.3f}  语义 mIoU {miou:.3f}  实例数 {len(pred_masks)}/{len(masks)}"
          f"  掩码 mAP@0.5 {ap50:.3f}  @0.75 {ap75:.3f}")
    return fg_iou, miou, len(pred_masks), ap50, ap75


# 三种预测都从「完全正确的语义图」得到，前景与背景分得一个像素都不差
per_class = torch.stack([sem == c + 1 for c in range(3)]), torch.arange(3, device=device)
cc = connected_components(sem)
results = {"每类一块": report("每类一块", *per_class),
           "连通区域": report("连通区域", *cc),
           "真实实例": report("真实实例", masks, scene_labels)}
# 三种预测的前景 IoU 与语义 mIoU 都是 1；只有真实实例的实例数与 mAP 是满的
assert all(r[0] == 1.0 and r[1] == 1.0 for r in results.values())
assert results["真实实例"][2:] == (5, 1.0, 1.0)
assert all(r[2] < 5 and r[3] < 1.0 and r[4] < 1.0 for k, r in results.items() if k != "真实实例")
# --8<-- [end:erratum]


# --8<-- [start:roi_align]
def interp_weights(coords, size):
    """一维双线性插值的权重矩阵（与 7.3 相同）。coords: (R, K)；返回 (R, K, size)。"""
    valid = (coords >= -1) & (coords <= size)
    c = coords.clamp(0, size - 1)
    lo = c.floor().long()
    hi = (lo + 1).clamp(max=size - 1)
    frac = c - lo
    w = torch.zeros(*coords.shape, size, dtype=coords.dtype, device=coords.device)
    w.scatter_add_(2, lo[..., None], (1 - frac)[..., None])
    w.scatter_add_(2, hi[..., None], frac[..., None])
    return w * valid[..., None]


def roi_align(feat, boxes, bidx, out, spatial_scale, sr=2):
    """批量的 RoI Align：feat (N, C, H, W)，boxes (R, 4) 原图坐标，bidx (R,) 每个框属于哪张图。
    与 7.3 相同的采样点，值 = Wy · F · Wxᵀ，再对每个 bin 的 sr×sr 个点取平均；返回 (R, C, out, out)。"""
    N, C, H, W = feat.shape
    b = boxes * spatial_scale - 0.5
    x1, y1, x2, y2 = b.unbind(1)
    t = torch.arange(out * sr, device=feat.device)
    t = t // sr + (t % sr + 0.5) / sr                          # bin 内均匀的采样点（以 bin 为单位）
    ys = y1[:, None] + t[None] * ((y2 - y1) / out)[:, None]    # (R, out·sr)
    xs = x1[:, None] + t[None] * ((x2 - x1) / out)[:, None]
    s = interp_weights(ys, H)[:, None] @ feat[bidx] @ interp_weights(xs, W)[:, None].transpose(-1, -2)
    return s.reshape(len(boxes), C, out, sr, out, sr).mean(dim=(3, 5))


# 与 F.grid_sample 对照（align_corners=False 时下标 k 对应归一化坐标 (2k+1)/W − 1）
g = torch.Generator().manual_seed(1)
f64 = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64).to(device)
bx = torch.tensor([[4.0, 6.0, 30.0, 20.0], [10.5, 3.2, 41.0, 44.7]], dtype=torch.float64, device=device)
bi = torch.tensor([0, 1], device=device)
mine = roi_align(f64, bx, bi, 7, 1 / 4)
t = torch.arange(14, device=device, dtype=torch.float64)
t = t // 2 + (t % 2 + 0.5) / 2
pts_y = (bx[:, 1:2] / 4 - 0.5) + t[None] * ((bx[:, 3:4] - bx[:, 1:2]) / 4 / 7)
pts_x = (bx[:, 0:1] / 4 - 0.5) + t[None] * ((bx[:, 2:3] - bx[:, 0:1]) / 4 / 7)
grid_ = torch.stack([((2 * pts_x + 1) / 12 - 1)[:, None, :].expand(-1, 14, -1),
                     ((2 * pts_y + 1) / 12 - 1)[:, :, None].expand(-1, -1, 14)], dim=-1)
ref = F.grid_sample(f64, grid_, align_corners=False).reshape(2, 3, 7, 2, 7, 2).mean(dim=(3, 5))
print(f"批量 RoI Align 与 F.grid_sample 的最大差：{(mine - ref).abs().max().item():.1e}")
assert (mine - ref).abs().max().item() < 1e-10
# --8<-- [end:roi_align]


# --8<-- [start:model]
def conv_bn(cin, cout, dilation=1):
    return [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU()]


class MaskHeadNet(nn.Module):
    """骨干（步幅 2 的特征图）+ RoI Align + Mask R-CNN 式的掩码头：每类一个 28×28 的掩码 logit。"""

    def __init__(self, ch=16, n_cls=3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, ch, 3, stride=2, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
                                      *conv_bn(ch, ch), *conv_bn(ch, ch), *conv_bn(ch, ch))
        self.head = nn.Sequential(*conv_bn(ch + 3, ch), *conv_bn(ch, ch, 2), *conv_bn(ch, ch, 4),
                                  nn.ConvTranspose2d(ch, ch, 2, stride=2), nn.ReLU(),
                                  nn.Conv2d(ch, n_cls, 1))

    def forward(self, img, boxes, bidx, labels):
        feat = self.backbone(img)                                     # (N, ch, 24, 24)
        r = torch.cat([roi_align(feat, boxes, bidx, 14, 1 / 2),       # 框内的特征 (R, ch, 14, 14)
                       roi_align(img, boxes, bidx, 14, 1.0)], dim=1)  # 加上框内的像素 (R, 3, 14, 14)
        logits = self.head(r)                                         # (R, 3, 28, 28)
        return logits[torch.arange(len(boxes), device=img.device), labels]   # 只取该物体类别的那一张


def count_params(ch=16, n_cls=3):
    conv = lambda cin, cout, k: k * k * cin * cout + cout
    bn = lambda c: 2 * c
    backbone = conv(3, ch, 3) + bn(ch) + 3 * (conv(ch, ch, 3) + bn(ch))
    head = conv(ch + 3, ch, 3) + 2 * conv(ch, ch, 3) + 3 * bn(ch) + (ch * ch * 4 + ch) + conv(ch, n_cls, 1)
    return backbone + head


model = MaskHeadNet().to(device)
n_params = sum(p.numel() for p in model.parameters())
print(f"参数量 {n_params}（逐层公式 {count_params()}）")
assert n_params == count_params()
# --8<-- [end:model]


# --8<-- [start:train]
# 容差 ±0.05：损失随计算路径变化，训练轨迹不同
def batch_of(scenes):
    """把若干场景拼成一批：图像 (N, 3, H, W)，以及所有物体的框、所属图像、类别、掩码。"""
    imgs = torch.stack([s[0] for s in scenes])
    parts = [instances(inst, lab) + (torch.full((len(lab),), i), lab) for i, (_, inst, lab) in enumerate(scenes)]
    ms, bs, bi, lb = (torch.cat(x) for x in zip(*parts))
    return imgs.to(device), bs.to(device), bi.to(device), lb.to(device), ms.to(device)


def mask_targets(masks, boxes, size=28):
    """训练目标：真实掩码在框内 RoI Align 到 28×28，再以 0.5 为阈值（Mask R-CNN 的做法）。"""
    t = roi_align(masks[:, None].float(), boxes, torch.arange(len(boxes), device=boxes.device), size, 1.0)
    return (t[:, 0] >= 0.5).float()


def paste(prob, boxes, size=SIZE):
    """把框内 M×M 的概率双线性地贴回整幅图：对每个像素中心求它在框内的归一化坐标。"""
    R = len(prob)
    c = torch.arange(size, device=prob.device) + 0.5
    x1, y1, x2, y2 = boxes.unbind(1)
    gx = (c[None] - x1[:, None]) / (x2 - x1)[:, None] * 2 - 1
    gy = (c[None] - y1[:, None]) / (y2 - y1)[:, None] * 2 - 1
    g = torch.stack([gx[:, None, :].expand(R, size, size), gy[:, :, None].expand(R, size, size)], dim=-1)
    return F.grid_sample(prob[:, None], g, align_corners=False)[:, 0]        # 框外为 0


SEED = 0                                           # 设计时用 0…4 测过下限；页面只训练种子 0
torch.manual_seed(SEED)
gen = torch.Generator().manual_seed(100 + SEED)
train_set = [make_scene(gen) for _ in range(512)]
test_set = [make_scene(torch.Generator().manual_seed(10_000 + i)) for i in range(64)]
model = MaskHeadNet().to(device)
opt = torch.optim.Adam(model.parameters(), lr=5e-3)
for step in range(250):
    imgs, bxs, bidx, labs, ms = batch_of([train_set[i] for i in torch.randint(512, (16,)).tolist()])
    wh = (bxs[:, 2:] - bxs[:, :2]).repeat(1, 2)
    bxs = bxs + 0.1 * wh * torch.randn(bxs.shape, device=device)      # 抖动的框，模拟检测器给出的候选框
    loss = F.binary_cross_entropy_with_logits(model(imgs, bxs, bidx, labs), mask_targets(ms, bxs))
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0 or step == 249:
        print(f"step {step:3d}  掩码的二元交叉熵 {loss.item():.4f}")
# --8<-- [end:train]


# --8<-- [start:evaluate]
# 容差 ±0.05：训练得到的 IoU 随计算路径变化（种子 0…4 之间相差约 0.03）
# 评估的假设：给定真实的框与类别（相当于一个完美的检测器），只考掩码头；指标是每个物体的掩码 IoU
model.eval()
with torch.no_grad():
    imgs, bxs, bidx, labs, ms = batch_of(test_set)
    prob = paste(torch.sigmoid(model(imgs, bxs, bidx, labs)), bxs)
    pred = prob >= 0.5
    iou = ((pred & ms).flatten(1).sum(1) / (pred | ms).flatten(1).sum(1)).double()
    box_mask = paste(torch.ones(len(bxs), 28, 28, device=device), bxs) >= 0.5      # 基线：整个框当作掩码
    iou_box = ((box_mask & ms).flatten(1).sum(1) / (box_mask | ms).flatten(1).sum(1)).double()
print(f"测试集 {len(test_set)} 个场景、{len(iou)} 个物体（给定真实框）")
print(f"平均掩码 IoU：掩码头 {iou.mean().item():.4f}，把框当掩码 {iou_box.mean().item():.4f}")
for c in range(3):
    k = labs == c
    print(f"  {CLASSES[c]:<3} {int(k.sum()):3d} 个：掩码头 {iou[k].mean().item():.4f}，框 {iou_box[k].mean().item():.4f}")
print(f"IoU ≥ 0.5 的物体占 {(iou >= 0.5).double().mean().item():.3f}，≥ 0.75 的占 {(iou >= 0.75).double().mean().item():.3f}")
# 下限：种子 0…4 在测试的数值设置下平均掩码 IoU 为 0.8390…0.8818（不固定 oneDNN 的
# 计算路径时为 0.8528…0.8796）；下限 0.80 比最小值低约 0.04，留给 CUDA 等其他计算路径上训练轨迹的差别
assert iou.mean().item() >= 0.80
assert iou.mean().item() > iou_box.mean().item() + 0.1
# 椭圆与三角形的框比图形大得多：掩码头在这两类上都比基线高 0.05 以上（种子 0…4 最少高 0.099）
assert all(iou[labs == c].mean() > iou_box[labs == c].mean() + 0.05 for c in (1, 2))
assert iou_box[labs == 0].mean() < 1          # 有的矩形被遮住一部分，可见部分不再是矩形
# --8<-- [end:evaluate]


# --8<-- [start:figure]
def colour_instances(inst, labels, shade=True):
    """每个实例一种颜色：色相按类别（红、蓝、绿），同类的不同实例深浅不同；背景为灰色。"""
    base = torch.tensor([[0.85, 0.2, 0.2], [0.2, 0.4, 0.9], [0.2, 0.75, 0.3]])
    out = torch.full((*inst.shape, 3), 0.85)
    for k, c in enumerate(labels.tolist()):
        seen = int((labels[:k] == c).sum()) if shade else 0
        out[inst.cpu() == k + 1] = base[c] * (1 - 0.45 * seen)
    return out


sem_rgb = colour_instances(sem.cpu(), torch.arange(3), shade=False)
inst_rgb = torch.full((SIZE, SIZE, 3), 0.85)
palette = plt.get_cmap("tab10")
for k in range(len(objs)):
    inst_rgb[scene_inst.cpu() == k + 1] = torch.tensor(palette(k)[:3], dtype=torch.float32)
panels = [(scene_img.permute(1, 2, 0).cpu(), "图像"), (sem_rgb, "语义分割：每个像素一个类别"),
          (inst_rgb, "实例分割：每个物体一个掩码"), (colour_instances(pan_id, scene_labels),
                                             "全景分割：类别 + 实例编号")]
fig, axes = plt.subplots(1, 4, figsize=(11, 3.2))
for ax, (im, title) in zip(axes, panels):
    ax.imshow(im.numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.savefig("instance_definition.svg", bbox_inches="tight")
plt.close(fig)

# 测试场景上的预测：每个像素给概率最高（且 ≥ 0.5）的那个物体
fig, axes = plt.subplots(2, 4, figsize=(9, 4.8))
start = 0
for i in range(8):
    n = len(test_set[i][2])
    if i < 4:
        p = prob[start:start + n]
        pred_inst = torch.where(p.max(dim=0).values >= 0.5, p.argmax(dim=0) + 1, 0).cpu()
        row_gt, row_pr = axes[0, i], axes[1, i]
        row_gt.imshow(test_set[i][0].permute(1, 2, 0).numpy(), interpolation="nearest")
        row_gt.contour(test_set[i][1].numpy(), levels=[k + 0.5 for k in range(n)], colors="k",
                       linewidths=0.6)
        row_pr.imshow(colour_instances(pred_inst, test_set[i][2]).numpy(), interpolation="nearest")
        row_gt.set_title(f"测试场景 {i}：图像与真实轮廓", fontsize=8)
        row_pr.set_title(f"预测（IoU {iou[start:start + n].mean().item():.2f}）", fontsize=8)
    start += n
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.savefig("instance_predictions.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
