# --8<-- [start:imports]
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def box_iou(a, b):
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def nms(boxes, scores, thr):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if not removed[i]:
            keep.append(i)
            removed |= iou[i] > thr
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def pr_curve(dets, scores, gts, iou_thr=0.5):
    """按分数排序后的 (召回率, 精确率)，首项为 (0, 1)；匹配规则同正文（VOC）。"""
    dets, scores, gts = dets.cpu(), scores.cpu(), gts.cpu()
    order = torch.sort(scores, descending=True, stable=True).indices
    best, j = box_iou(dets[order], gts).max(dim=1)
    tp, used = torch.zeros(len(order), dtype=torch.float64), set()
    for k in range(len(order)):
        if best[k] >= iou_thr and j[k].item() not in used:
            tp[k] = 1
            used.add(j[k].item())
    ctp = tp.cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), ctp / len(gts)])
    precision = torch.cat([torch.ones(1, dtype=torch.float64), ctp / torch.arange(1, len(tp) + 1)])
    return recall, precision


def ap_all_point(recall, precision):
    p_interp = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * p_interp[1:]).sum().item()


def bx(*v):
    return torch.tensor(v, dtype=torch.float64, device=device).reshape(-1, 4)
# --8<-- [end:imports]

# --8<-- [start:ex1]
def ap_11_point(recall, precision):
    """VOC2007：在召回率 0, 0.1, …, 1 这 11 个点上取「召回率不小于 r 的最大精确率」，再平均。"""
    recall, precision = recall[1:], precision[1:]       # 去掉哨兵点 (0, 1)：它不是真实的工作点
    total = 0.0
    for r in torch.linspace(0, 1, 11, dtype=torch.float64).tolist():
        ok = recall >= r - 1e-12
        total += precision[ok].max().item() if ok.any() else 0.0
    return total / 11


gts1 = bx(0, 0, 10, 10, 20, 20, 30, 30)
dets1 = bx(0, 0, 10, 10, 50, 50, 60, 60, 21, 21, 30, 30)          # 正文例 1：TP、FP、TP
r1, p1 = pr_curve(dets1, torch.tensor([0.9, 0.8, 0.7]), gts1)
gts2 = bx(0, 0, 10, 10)
r2, p2 = pr_curve(bx(0, 0, 4, 10, 0, 0, 10, 9), torch.tensor([0.9, 0.8]), gts2)   # 正文例 2：FP、TP
for name, (r, p) in (("例 1", (r1, p1)), ("例 2", (r2, p2))):
    print(f"{name}：全点插值 AP = {ap_all_point(r, p):.4f}，11 点插值 AP = {ap_11_point(r, p):.4f}")
assert abs(ap_11_point(r1, p1) - (6 * 1 + 5 * 2 / 3) / 11) < 1e-12
assert abs(ap_all_point(r1, p1) - 5 / 6) < 1e-12
assert abs(ap_11_point(r2, p2) - 0.5) < 1e-12 and abs(ap_all_point(r2, p2) - 0.5) < 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 两个真实物体彼此 IoU 为 2/3；检测器把两个都框准了，另有一个偏了的重复框
gts = bx(0, 0, 10, 10, 2, 0, 12, 10)
dets = bx(0, 0, 10, 10, 0, 0, 10, 6, 2, 0, 12, 10)                # 分数 0.9、0.85、0.8
scores = torch.tensor([0.9, 0.85, 0.8], dtype=torch.float64, device=device)
print(f"两个真实框的 IoU = {box_iou(gts[:1], gts[1:]).item():.4f}；"
      f"重复框与第一个真实框的 IoU = {box_iou(dets[1:2], gts[:1]).item():.4f}")
aps = {}
for thr in (0.5, 0.7):
    keep = nms(dets, scores, thr)
    aps[thr] = ap_all_point(*pr_curve(dets[keep], scores[keep].cpu(), gts))
    print(f"NMS 阈值 {thr}：留下下标 {keep.tolist()}，AP@0.5 = {aps[thr]:.4f}")
assert abs(aps[0.5] - 0.5) < 1e-12           # 第二个真实物体的框被当成重复删掉，召回率只到 0.5
assert abs(aps[0.7] - 5 / 6) < 1e-12         # 两个物体都留下，但重复框也留下，成了 FP
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def encode(gt, anc):
    cxcywh = lambda b: torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                                    b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    g, a = cxcywh(gt), cxcywh(anc)
    return torch.stack([(g[:, 0] - a[:, 0]) / a[:, 2], (g[:, 1] - a[:, 1]) / a[:, 3],
                        torch.log(g[:, 2] / a[:, 2]), torch.log(g[:, 3] / a[:, 3])], 1)


g = torch.Generator().manual_seed(0)
xy = torch.rand(500, 2, 2, generator=g, dtype=torch.float64) * 100
wh = 2 + torch.rand(500, 2, 2, generator=g, dtype=torch.float64) * 50
anc = torch.cat([xy[:, 0], xy[:, 0] + wh[:, 0]], 1).to(device)
gt = torch.cat([xy[:, 1], xy[:, 1] + wh[:, 1]], 1).to(device)
t = encode(gt, anc)
shift = bx(17.0, -5.0, 17.0, -5.0)
err_scale = max((encode(s * gt, s * anc) - t).abs().max().item() for s in (0.25, 3.0, 10.0))
err_shift = (encode(gt + shift, anc + shift) - t).abs().max().item()
a1 = bx(0, 0, 10, 10)
tw_big, tw_small = encode(bx(0, 0, 20, 10), a1)[0, 2].item(), encode(bx(0, 0, 5, 10), a1)[0, 2].item()
print(f"整体缩放 0.25、3、10 倍后偏移量的最大变化 {err_scale:.1e}，整体平移后 {err_shift:.1e}")
print(f"宽度放大 2 倍：tw = {tw_big:.4f}；缩小 2 倍：tw = {tw_small:.4f}")
assert err_scale < 1e-10 and err_shift < 1e-10
assert abs(tw_big + tw_small) < 1e-12
# --8<-- [end:ex3]
