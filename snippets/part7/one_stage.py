# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLASSES = ["矩形", "椭圆", "三角形"]
SIZE, STRIDE, NC = 64, 4, 3          # 64×64 的图，输出步幅 4，3 个类别
G = SIZE // STRIDE                   # 16×16 的预测网格
# --8<-- [end:setup]

# --8<-- [start:scene]
def make_scene(gen, size=SIZE, n_obj=4):
    """纹理背景上的 n_obj 个图形（与 7.1 相同的画法，图更小）。

    返回图像 (3, size, size)、框 (n, 4) 的 (x1, y1, x2, y2) 与类别 (n,)。被后画的图形遮住一半以上的
    物体从标注里去掉：它几乎看不见，谁也检测不出来。"""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)[0]
    img = 0.35 + 0.3 * low + 0.06 * torch.sin(xx / 2.5 + yy / 4.0)       # 低频噪声 + 条纹
    owner = torch.full((size, size), -1)                                  # 每个像素最后由谁画
    boxes, labels, areas = [], [], []
    for k in range(n_obj):
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(10, 28, (2,), generator=gen).tolist()
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
        owner[mask] = k
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
        labels.append(c)
        areas.append(mask.sum().item())
    keep = [k for k in range(n_obj) if (owner == k).sum().item() >= 0.5 * areas[k]]
    return (img.clamp(0, 1), torch.tensor([boxes[k] for k in keep], dtype=torch.float64),
            torch.tensor([labels[k] for k in keep], dtype=torch.long))


def make_set(n, seed):
    gen = torch.Generator().manual_seed(seed)        # 在 CPU 上生成，任何设备上都是同一批场景
    scenes = [make_scene(gen) for _ in range(n)]
    return torch.stack([s[0] for s in scenes]), [s[1] for s in scenes], [s[2] for s in scenes]


X_train, B_train, L_train = make_set(1024, 1000)
X_test, B_test, L_test = make_set(200, 99)           # 留出的测试场景，训练从不看到
n_tr, n_te = sum(len(b) for b in B_train), sum(len(b) for b in B_test)
print(f"训练场景 {len(X_train)} 幅（物体 {n_tr} 个），测试场景 {len(X_test)} 幅（物体 {n_te} 个），"
      f"图像形状 {tuple(X_train.shape[1:])}")
print("测试集各类物体数", torch.bincount(torch.cat(L_test), minlength=NC).tolist())
# --8<-- [end:scene]

# --8<-- [start:boxops]
# 以下三个函数原样取自 7.1：交并比、贪心 NMS（同分按下标）、全点插值的 AP
def box_area(b):
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a, b):
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def nms(boxes, scores, thr):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    removed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou[i] > thr
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def average_precision(dets, scores, gts, iou_thr=0.5):
    if len(gts) == 0:
        return float("nan")
    dets, scores, gts = dets.cpu(), scores.cpu(), gts.cpu()
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
    p_interp = precision.flip(0).cummax(0).values.flip(0)
    return ((recall[1:] - recall[:-1]) * p_interp[1:]).sum().item()
# --8<-- [end:boxops]

# --8<-- [start:assign]
centres = (torch.arange(G, dtype=torch.float64) + 0.5) * STRIDE
CY, CX = torch.meshgrid(centres, centres, indexing="ij")        # 每个格子中心在原图上的坐标 (G, G)


def assign(boxes, labels, radius=1.5):
    """给 G×G 个格子分配训练目标。

    正样本：格子中心落在框内，且离框中心在 x、y 方向都不超过 radius 个步幅；同一格子被几个框选中时
    归面积最小的框。返回类别目标 (NC, G, G) 的 0/1、回归目标 (4, G, G) = log(到四条边的距离 / 步幅)、
    正样本掩码 (G, G)。"""
    cls_t = torch.zeros(NC, G, G)
    reg_t = torch.zeros(4, G, G)
    pos = torch.zeros(G, G, dtype=torch.bool)
    owner_area = torch.full((G, G), float("inf"), dtype=torch.float64)
    for (x1, y1, x2, y2), c in zip(boxes.tolist(), labels.tolist()):
        ltrb = torch.stack([CX - x1, CY - y1, x2 - CX, y2 - CY])           # 到左、上、右、下边的距离
        near = ((CX - (x1 + x2) / 2).abs() <= radius * STRIDE) & ((CY - (y1 + y2) / 2).abs() <= radius * STRIDE)
        area = (x2 - x1) * (y2 - y1)
        m = (ltrb.min(0).values > 0) & near & (area < owner_area)
        owner_area[m] = area
        cls_t[:, m] = 0
        cls_t[c, m] = 1
        reg_t[:, m] = torch.log(ltrb[:, m] / STRIDE).float()
        pos |= m
    return cls_t, reg_t, pos


T_train = [assign(b, l) for b, l in zip(B_train, L_train)]
CLS_T = torch.stack([t[0] for t in T_train])
REG_T = torch.stack([t[1] for t in T_train])
POS = torch.stack([t[2] for t in T_train])
n_pos = int(POS.sum())
n_out = CLS_T.numel()                                  # 分类输出的个数 = 图数 × NC × G × G
print(f"每幅图 {NC}×{G}×{G} = {NC * G * G} 个分类输出；训练集平均每幅图 {n_pos / len(POS):.1f} 个正样本格子，"
      f"负样本与正样本之比 {(n_out - n_pos) / n_pos:.1f} : 1")
print(f"每个物体平均 {n_pos / n_tr:.2f} 个正样本格子")
assert CLS_T.sum() == n_pos                            # 正样本格子恰有一个类别为 1，其余格子全为 0
# --8<-- [end:assign]

# --8<-- [start:model]
def conv_bn(c_in, c_out, stride=1, dilation=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class OneStageDetector(nn.Module):
    """骨干网络把 64×64 的图变成 16×16 的特征图，两个 3×3 卷积的头在每个格子上输出
    NC 个类别 logit 与 4 个回归量。"""

    def __init__(self, ch=32, prior=0.01):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn(3, 16, stride=2), conv_bn(16, ch, stride=2),   # 64 → 32 → 16
                                      conv_bn(ch, ch), conv_bn(ch, ch, dilation=2), conv_bn(ch, ch, dilation=3))
        self.cls_head = nn.Conv2d(ch, NC, 3, padding=1)
        self.reg_head = nn.Conv2d(ch, 4, 3, padding=1)
        nn.init.constant_(self.cls_head.bias, -math.log((1 - prior) / prior))   # 起步时每个输出 p ≈ prior

    def forward(self, x):
        f = self.backbone(x)
        return self.cls_head(f), self.reg_head(f)        # (B, NC, G, G)，(B, 4, G, G)


model = OneStageDetector().to(device)
cls_out, reg_out = model(X_train[:2].to(device))
n_params = sum(p.numel() for p in model.parameters())
by_formula = (sum(9 * i * o + 2 * o for i, o in [(3, 16), (16, 32), (32, 32), (32, 32), (32, 32)])  # 卷积 + BN 的 γ、β
              + (9 * 32 * NC + NC) + (9 * 32 * 4 + 4))                                              # 两个头（带偏置）
print(f"输出形状 {tuple(cls_out.shape)}、{tuple(reg_out.shape)}；参数量 {n_params}（逐层公式 {by_formula}）")
assert n_params == by_formula and cls_out.shape == (2, NC, G, G) and reg_out.shape == (2, 4, G, G)
print(f"初始化后类别概率的均值 {torch.sigmoid(cls_out).mean().item():.3f}")
# --8<-- [end:model]

# --8<-- [start:focal]
def focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """逐元素的焦点损失 FL = −α_t (1 − p_t)^γ log p_t，p = σ(logit)。

    log p 与 log(1 − p) 用 logsigmoid 计算，logit 很大或很小时都不会出现 log 0。"""
    p = torch.sigmoid(logits)
    log_p, log_1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos = -alpha * (1 - p) ** gamma * log_p                 # y = 1 的项
    neg = -(1 - alpha) * p ** gamma * log_1mp               # y = 0 的项
    return targets * pos + (1 - targets) * neg


g = torch.Generator().manual_seed(1)
z = (torch.randn(2000, generator=g, dtype=torch.float64) * 4).to(device)        # logit，覆盖难易两端
y = (torch.rand(2000, generator=g, dtype=torch.float64) < 0.3).double().to(device)
p_t = torch.where(y == 1, torch.sigmoid(z), torch.sigmoid(-z))   # 1 − σ(z) = σ(−z)，免去 1 − p 的相消误差
a_t = torch.where(y == 1, 0.25, 0.75)
direct = -a_t * (1 - p_t) ** 2 * torch.log(p_t)                                # 公式逐字计算
via_bce = a_t * (1 - p_t) ** 2 * F.binary_cross_entropy_with_logits(z, y, reduction="none")
ours = focal_loss(z, y)
err_direct, err_bce = (ours - direct).abs().max().item(), (ours - via_bce).abs().max().item()
err_g0 = (focal_loss(z, y, alpha=0.5, gamma=0.0)
          - 0.5 * F.binary_cross_entropy_with_logits(z, y, reduction="none")).abs().max().item()
print(f"2000 个 float64 logit：与公式逐字计算的最大差 {err_direct:.1e}，与 α_t(1−p_t)^γ·BCE 的最大差 {err_bce:.1e}；"
      f"γ = 0、α = 0.5 时与 BCE/2 的最大差 {err_g0:.1e}")
assert err_direct < 1e-12 and err_bce < 1e-12 and err_g0 < 1e-12
for pt_ in (0.1, 0.5, 0.9, 0.99):                       # 一个负样本，p_t = 1 − p
    zz = torch.tensor([math.log((1 - pt_) / pt_)], dtype=torch.float64)
    yy = torch.zeros(1, dtype=torch.float64)
    ratio = (focal_loss(zz, yy) / F.binary_cross_entropy_with_logits(zz, yy)).item()
    print(f"  负样本 p_t = {pt_:<4}：焦点损失 / BCE = {ratio:.6f}（公式 0.75·(1−p_t)² = {0.75 * (1 - pt_) ** 2:.6f}）")
    assert abs(ratio - 0.75 * (1 - pt_) ** 2) < 1e-12
# --8<-- [end:focal]

# --8<-- [start:train]
def hflip(x, cls_t, reg_t, pos, flip):
    """水平翻转一部分样本：格子中心关于图像中线对称，回归目标的左、右距离互换。"""
    f4 = flip[:, None, None, None]
    return (torch.where(f4, x.flip(-1), x), torch.where(f4, cls_t.flip(-1), cls_t),
            torch.where(f4, reg_t.flip(-1)[:, [2, 1, 0, 3]], reg_t), torch.where(flip[:, None, None], pos.flip(-1), pos))


def train_detector(cls_loss, seed=0, steps=300, batch=32, lr=3e-3):
    torch.manual_seed(seed)
    net = OneStageDetector().to(device)
    opt = torch.optim.Adam(net.parameters(), lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(X_train), (batch,), generator=gen)
        flip = torch.rand(batch, generator=gen) < 0.5
        x, ct, rt, pos = (t.to(device) for t in hflip(X_train[idx], CLS_T[idx], REG_T[idx], POS[idx], flip))
        cl, rg = net(x)
        npos = max(pos.sum().item(), 1)
        l_cls = cls_loss(cl, ct).sum() / npos                                  # 按正样本个数归一化
        l_reg = (rg - rt).abs()[pos[:, None].expand_as(rg)].sum() / (4 * npos)  # 只在正样本上回归
        opt.zero_grad()
        (l_cls + l_reg).backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step:3d}  分类损失 {l_cls.item():.3f}  回归损失 {l_reg.item():.3f}")
    return net.eval()


print("焦点损失（α = 0.25，γ = 2）：")
det_focal = train_detector(focal_loss)
# --8<-- [end:train]

# --8<-- [start:decode]
GRID = torch.stack([CX, CY]).reshape(2, -1).float().to(device)     # (2, G·G) 格子中心


def detect(net, imgs, score_thr=0.05, topk=100, nms_thr=0.5, use_nms=True):
    """稠密输出 → 每幅图的 (框, 分数, 类别)：取分数最高的 topk 个 (格子, 类别)，解码，按类别 NMS。"""
    with torch.no_grad():
        cl, rg = net(imgs.to(device))
    out = []
    for b in range(len(imgs)):
        scores, idx = torch.sigmoid(cl[b]).reshape(-1).topk(topk)        # 展平顺序：(类别, 行, 列)
        keep = scores > score_thr
        scores, idx = scores[keep], idx[keep]
        labels, cell = idx // (G * G), idx % (G * G)
        d = rg[b].reshape(4, -1)[:, cell].exp() * STRIDE                 # 到四条边的距离（像素）
        cx, cy = GRID[0, cell], GRID[1, cell]
        boxes = torch.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], 1).clamp(0, SIZE)
        if use_nms:
            k = nms(boxes + labels[:, None] * (2 * SIZE), scores, nms_thr)   # 按类别：平移到互不重叠的区域
            boxes, scores, labels = boxes[k], scores[k], labels[k]
        out.append((boxes.double().cpu(), scores.cpu(), labels.cpu()))
    return out


def dataset_map(dets, gt_boxes, gt_labels):
    """整个测试集上的 mAP@0.5：第 i 幅图的框平移 i·1000，不同图的框就不会互相匹配。"""
    aps = []
    for c in range(NC):
        boxes = torch.cat([d[0][d[2] == c] + 1000 * i for i, d in enumerate(dets)])
        scores = torch.cat([d[1][d[2] == c] for d in dets])
        gts = torch.cat([b[l == c] + 1000 * i for i, (b, l) in enumerate(zip(gt_boxes, gt_labels))])
        aps.append(average_precision(boxes, scores, gts))
    return sum(aps) / NC, aps


dets = detect(det_focal, X_test)
map_focal, aps_focal = dataset_map(dets, B_test, L_test)
map_raw, _ = dataset_map(detect(det_focal, X_test, use_nms=False), B_test, L_test)
print(f"测试集 mAP@0.5 = {map_focal:.3f}，各类 AP {[round(a, 3) for a in aps_focal]}")
print(f"不做 NMS（同样取前 100 个）：mAP@0.5 = {map_raw:.3f}；平均每幅图 {sum(len(d[0]) for d in dets) / len(dets):.1f} 个框留下")
# 下界：设计时用种子 0–4 各训练一次（初始化、批次顺序与训练场景都随种子变），mAP@0.5 在 0.704 与 0.763
# 之间；取 0.65，比最小值低 0.054
assert map_focal >= 0.65
assert map_focal > map_raw + 0.1                           # NMS 去掉重复框，mAP 明显升高
# --8<-- [end:decode]

# --8<-- [start:flood]
T_test = [assign(b, l) for b, l in zip(B_test, L_test)]
CLS_TEST = torch.stack([t[0] for t in T_test]).to(device)


def flood(net):
    """测试集的稠密输出上：易负样本（y = 0 且 p < 0.1）占负样本的比例，以及它们在 BCE 与焦点损失总和中的份额。"""
    with torch.no_grad():
        cl, _ = net(X_test.to(device))
    neg = CLS_TEST == 0
    easy = neg & (torch.sigmoid(cl) < 0.1)
    bce = F.binary_cross_entropy_with_logits(cl, CLS_TEST, reduction="none")
    fl = focal_loss(cl, CLS_TEST)
    return (easy.sum() / neg.sum()).item(), (bce[easy].sum() / bce.sum()).item(), (fl[easy].sum() / fl.sum()).item()


print("BCE（α、γ 都不用）：")
det_bce = train_detector(lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none"))
map_bce, aps_bce = dataset_map(detect(det_bce, X_test), B_test, L_test)
print(f"测试集 mAP@0.5：焦点损失 {map_focal:.3f}，BCE {map_bce:.3f}")
for name, net in (("焦点损失训练的检测器", det_focal), ("BCE 训练的检测器", det_bce)):
    frac, share_bce, share_fl = flood(net)
    print(f"{name}：易负样本占负样本 {frac:.1%}；它们占 BCE 总和的 {share_bce:.1%}，占焦点损失总和的 {share_fl:.2%}")
    assert share_fl < share_bce / 10                  # 焦点损失把易负样本的份额压低一个数量级以上
# 设计时种子 0–4（初始化、批次顺序与训练场景都随种子变）：BCE 的 mAP@0.5 在 0.872 与 0.895 之间，
# 焦点损失在 0.704 与 0.763 之间，5 个种子上都是 BCE 更高；这里只训练并断言种子 0
assert map_bce >= 0.8                                      # BCE 的下界：最小值 0.872 减去 0.072 的余量
assert map_bce > map_focal
# --8<-- [end:flood]

# --8<-- [start:figure]
def draw(ax, boxes, colours, ls="-", lw=1.5):
    for (x1, y1, x2, y2), col in zip(boxes.tolist(), colours):
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=col, lw=lw, ls=ls))


cls_col = ["tab:red", "tab:blue", "lime"]
dets_bce = detect(det_bce, X_test[:4])
fig, axes = plt.subplots(2, 4, figsize=(12, 6.6))
for row, (name, ds) in enumerate((("焦点损失", dets), ("BCE", dets_bce))):
    for i in range(4):
        ax = axes[row, i]
        ax.imshow(X_test[i].permute(1, 2, 0).numpy(), extent=(0, SIZE, SIZE, 0))
        draw(ax, B_test[i], ["white"] * len(B_test[i]), ls="--", lw=2.5)        # 真实框：白色虚线
        bx, sc, lb = ds[i]
        shown = sc >= 0.4
        draw(ax, bx[shown], [cls_col[c] for c in lb[shown].tolist()])
        for (x1, y1, _, _), s, c in zip(bx[shown].tolist(), sc[shown].tolist(), lb[shown].tolist()):
            ax.text(x1, y1 - 0.8, f"{CLASSES[c]} {s:.2f}", color="black", fontsize=6,
                    bbox=dict(fc=cls_col[c], ec="none", pad=0.5, alpha=0.8))
        ax.set_xlim(0, SIZE)
        ax.set_ylim(SIZE, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}：测试场景 {i}（真实框 {len(B_test[i])} 个）", fontsize=9)
fig.savefig("one_stage_detections.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
