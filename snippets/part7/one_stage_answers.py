# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SIZE, NC = 64, 3


def make_scene(gen, size=SIZE, n_obj=4):
    """与正文相同的场景生成器，这里只需要框与类别。"""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    torch.rand(1, 3, size // 8, size // 8, generator=gen)           # 背景的随机数：不用，只为与正文得到同样的场景
    owner = torch.full((size, size), -1)
    boxes, labels, areas = [], [], []
    for k in range(n_obj):
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(10, 28, (2,), generator=gen).tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        cx, cy = x0 + w / 2, y0 + h / 2
        if c == 0:
            mask = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
        elif c == 1:
            mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
        else:
            mask = (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)
        torch.rand(3, 1, generator=gen)                                   # 颜色（不用）
        owner[mask] = k
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
        labels.append(c)
        areas.append(mask.sum().item())
    keep = [k for k in range(n_obj) if (owner == k).sum().item() >= 0.5 * areas[k]]
    return (torch.tensor([boxes[k] for k in keep], dtype=torch.float64),
            torch.tensor([labels[k] for k in keep], dtype=torch.long))


gen = torch.Generator().manual_seed(1000)                 # 与正文的训练集是同一批场景
scenes = [make_scene(gen) for _ in range(1024)]
# --8<-- [end:imports]

# --8<-- [start:ex1]
def focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(logits)
    pos = -alpha * (1 - p) ** gamma * F.logsigmoid(logits)
    neg = -(1 - alpha) * p ** gamma * F.logsigmoid(-logits)
    return targets * pos + (1 - targets) * neg


alpha, gamma = 0.25, 2.0
for p in (0.001, 0.01, 0.1, 0.5, 0.9):                     # 一个负样本（y = 0）的预测概率
    z = torch.tensor([math.log(p / (1 - p))], dtype=torch.float64, device=device, requires_grad=True)
    y = torch.zeros(1, dtype=torch.float64, device=device)
    g_fl, = torch.autograd.grad(focal_loss(z, y).sum(), z)
    g_bce, = torch.autograd.grad(F.binary_cross_entropy_with_logits(z, y), z)
    ratio = (1 - alpha) * (p ** gamma - gamma * p ** (gamma - 1) * (1 - p) * math.log(1 - p))   # 推导出的比值
    print(f"p = {p:<5}：BCE 梯度 {g_bce.item():.6f}，焦点损失梯度 {g_fl.item():.3e}，"
          f"比值 {g_fl.item() / g_bce.item():.3e}（公式 {ratio:.3e}，近似 (1−α)(1+γ)p^γ = {(1 - alpha) * (1 + gamma) * p ** gamma:.3e}）")
    assert abs(g_bce.item() - p) < 1e-12                                   # BCE 对 logit 的梯度就是 p − y
    assert abs(g_fl.item() / g_bce.item() - ratio) < 1e-12 * max(ratio, 1)
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def centre_cell_collisions(stride):
    """YOLO v1 式的分配：框中心所在的格子负责这个物体。返回与别的物体共用中心格子的物体所占比例。"""
    shared = total = 0
    for boxes, _ in scenes:
        cells = [(int((y1 + y2) / 2 // stride), int((x1 + x2) / 2 // stride)) for x1, y1, x2, y2 in boxes.tolist()]
        shared += sum(cells.count(c) > 1 for c in cells)
        total += len(cells)
    return shared / total


rates = {s: centre_cell_collisions(s) for s in (4, 8, 16, 32)}
for s, r in rates.items():
    print(f"步幅 {s:2d}（{SIZE // s}×{SIZE // s} 的网格）：与别的物体共用中心格子的物体占 {r:.2%}")
rs = list(rates.values())
assert all(a < b for a, b in zip(rs, rs[1:]))                   # 网格越粗，冲突越多


def positives_per_object(radius, stride=4):
    """正文的规则（框内、离中心 radius 个步幅以内、同一格子归面积最小的框）：每个物体分到几个正样本格子。"""
    g = SIZE // stride
    c = (torch.arange(g, dtype=torch.float64) + 0.5) * stride
    cy, cx = torch.meshgrid(c, c, indexing="ij")
    counts = []
    for boxes, _ in scenes:
        owner = torch.full((g, g), -1)
        owner_area = torch.full((g, g), float("inf"), dtype=torch.float64)
        for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            inside = (torch.stack([cx - x1, cy - y1, x2 - cx, y2 - cy]).min(0).values > 0)
            near = ((cx - (x1 + x2) / 2).abs() <= radius * stride) & ((cy - (y1 + y2) / 2).abs() <= radius * stride)
            area = (x2 - x1) * (y2 - y1)
            m = inside & near & (area < owner_area)
            owner_area[m] = area
            owner[m] = k
        counts += [(owner == k).sum().item() for k in range(len(boxes))]
    return torch.tensor(counts)


lost = {}
for radius in (0.5, 1.5):
    cnt = positives_per_object(radius)
    lost[radius] = int((cnt == 0).sum())
    print(f"radius = {radius}：每个物体平均 {cnt.float().mean().item():.2f} 个正样本格子，"
          f"没有分到任何格子的物体 {lost[radius]} 个（共 {len(cnt)} 个）")
assert lost[1.5] < lost[0.5] and lost[1.5] / len(cnt) < 0.002    # 正文的规则下只有极少数物体落空
# --8<-- [end:ex2]

# --8<-- [start:ex3]
n_out = 1024 * NC * (SIZE // 4) ** 2
n_pos = sum(positives_per_object(1.5).tolist())                 # 正文的规则下的正样本格子总数
n_neg = n_out - n_pos
for prior in (0.5, 0.01):                                       # 偏置 0 与 −log((1−π)/π)，π = 0.01
    bce_pos, bce_neg = -math.log(prior), -math.log(1 - prior)    # 所有输出都是 p = prior 时每个样本的损失
    fl_pos, fl_neg = 0.25 * (1 - prior) ** 2 * bce_pos, 0.75 * prior ** 2 * bce_neg
    share_bce = n_neg * bce_neg / (n_neg * bce_neg + n_pos * bce_pos)
    share_fl = n_neg * fl_neg / (n_neg * fl_neg + n_pos * fl_pos)
    print(f"起步时 p = {prior}：负样本占 BCE 总和的 {share_bce:.1%}，占焦点损失总和的 {share_fl:.3%}")
    if prior == 0.5:
        assert share_bce > 0.9 and share_fl > 0.9               # p_t 全是 0.5：调制因子对谁都一样，救不了
    else:
        assert share_bce < 0.1 and share_fl < 0.01
# --8<-- [end:ex3]
