# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def grid(rows):
    """用字符画一张小标签图：'.' 是背景 0，数字 k 是第 k 个物体。"""
    return torch.tensor([[0 if ch == "." else int(ch) for ch in r] for r in rows], device=device)


def mask_iou(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    inter = a @ b.T
    return inter / (a.sum(1)[:, None] + b.sum(1)[None, :] - inter)


# 以下两个函数与正文相同
def shape_mask(c, x0, y0, w, h, size=48):
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    cx, cy = x0 + w / 2, y0 + h / 2
    if c == 0:
        return (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
    if c == 1:
        return ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
    return (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)


def connected_components(sem):
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
# --8<-- [end:imports]


# --8<-- [start:ex1]
def panoptic_quality(pred_inst, gt_inst):
    """一个类别的 PQ（Kirillov 等，2019）：IoU > 0.5 的预测与真实区段配对（这个阈值保证配对唯一），
    PQ = Σ_TP IoU / (TP + FP/2 + FN/2) = SQ · RQ。pred_inst、gt_inst 是实例图，0 为背景。"""
    P = torch.stack([pred_inst == k for k in pred_inst.unique().tolist() if k > 0])
    G = torch.stack([gt_inst == k for k in gt_inst.unique().tolist() if k > 0])
    iou = mask_iou(P, G)
    matched = iou > 0.5
    assert (matched.sum(0) <= 1).all() and (matched.sum(1) <= 1).all()    # 唯一配对
    tp = int(matched.sum())
    fp, fn = len(P) - tp, len(G) - tp
    sq = iou[matched].sum().item() / tp if tp else 0.0
    rq = tp / (tp + fp / 2 + fn / 2)
    return sq * rq, sq, rq


gt = grid(["11112222", "11112222", "11112222", "11112222"])          # 两个相接的同类正方形
preds = {"两个并成一个": grid(["11111111"] * 4),
         "完全正确": gt.clone(),
         "B 少一列": grid(["1111222.", "1111222.", "1111222.", "1111222."])}
res = {}
for name, p in preds.items():
    res[name] = panoptic_quality(p, gt)
    print(f"{name:<8} PQ {res[name][0]:.4f} = SQ {res[name][1]:.4f} × RQ {res[name][2]:.4f}")
assert res["两个并成一个"][0] == 0.0 and res["完全正确"][0] == 1.0
assert abs(res["B 少一列"][0] - (1 + 0.75) / 2) < 1e-12
# --8<-- [end:ex1]


# --8<-- [start:ex2]
# 类别 1 的一个长条（物体 1）被后画的类别 2 的竖条（物体 2）从中间切断
inst = grid(["..222...", "11222111", "11222111", "..222..."])
labels = torch.tensor([1, 2], device=device)                          # 物体 k 的类别
sem = torch.cat([torch.zeros(1, dtype=torch.long, device=device), labels])[inst]
cc_masks, cc_labels = connected_components(sem)
print(f"真实实例 {len(labels)} 个，按连通区域得到 {len(cc_masks)} 个，类别 {cc_labels.tolist()}")
gt_masks = torch.stack([inst == 1, inst == 2])
best = mask_iou(cc_masks, gt_masks).max(dim=1).values
print("每个连通区域与真实实例的最大 IoU：", [round(v, 3) for v in best.tolist()])
assert len(cc_masks) == 3 and (cc_labels == 0).sum() == 2        # 被切断的物体成了两个区域
assert sorted(round(v, 6) for v in best.tolist()) == [0.4, 0.6, 1.0]  # 两半各占物体的 4/10 与 6/10
# --8<-- [end:ex2]


# --8<-- [start:ex3]
rows = []
for c, name, ideal in ((1, "椭圆", math.pi / 4), (2, "三角形", 0.5)):
    for side in (8, 16, 24, 160):
        m = shape_mask(c, 4, 4, side, side, size=side + 8)
        ys, xs = torch.nonzero(m, as_tuple=True)
        box_area = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        ratio = m.sum().item() / box_area.item()          # 框当掩码：交集 = 掩码，并集 = 框
        rows.append((name, side, ratio, ideal))
        print(f"{name:<3} 边长 {side:3d}：框当掩码的 IoU {ratio:.4f}（连续图形 {ideal:.4f}）")
assert all(abs(r - ideal) < 0.02 for _, side, r, ideal in rows if side == 160)
assert all(abs(r - ideal) < 0.1 for _, side, r, ideal in rows)
# --8<-- [end:ex3]
