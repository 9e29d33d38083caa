# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.colors import ListedColormap

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLASSES = ["背景", "矩形", "椭圆", "三角形"]
K = len(CLASSES)
SIZE = 48
# --8<-- [end:setup]

# --8<-- [start:scene]
def make_scene(gen, size=SIZE, n_obj=4):
    """纹理背景上至多 n_obj 个可以相互遮挡的图形；返回图像 (3, size, size) 与语义掩码 (size, size)。

    掩码的值是类别：0 背景，1 矩形，2 椭圆，3 三角形。像素 (i, j) 用中心 (j+0.5, i+0.5) 判断
    是否在图形内。后画的图形盖住先画的；实例图 inst 记录每个像素当前露出的是第几个图形，
    一次放置若会盖住某个已有图形当前可见像素的三分之一以上，就放弃，所以每个图形大部分可见。
    """
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)[0]
    img = 0.35 + 0.3 * low + 0.06 * torch.sin(xx / 2.5 + yy / 4.0)       # 低频噪声 + 条纹
    seg = torch.zeros(size, size, dtype=torch.long)
    inst = torch.zeros(size, size, dtype=torch.long)          # 0：背景；i：第 i 个图形露出的像素
    for i in range(1, n_obj + 1):
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(12, 29, (2,), generator=gen).tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        cx, cy = x0 + w / 2, y0 + h / 2
        if c == 0:                                   # 矩形
            mask = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
        elif c == 1:                                 # 椭圆
            mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
        else:                                        # 顶点朝上的等腰三角形
            mask = (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)
        visible = torch.bincount(inst.flatten(), minlength=n_obj + 1)[1:]   # 各图形现在露出的像素数
        covered = torch.bincount(inst[mask], minlength=n_obj + 1)[1:]      # 这次放置会盖住的像素数
        if (3 * covered > visible).any():            # 会盖住某个图形可见部分的三分之一以上：放弃
            continue
        img[:, mask] = torch.rand(3, 1, generator=gen)   # 颜色随机，类别只能从形状看出
        seg[mask] = c + 1
        inst[mask] = i
    return img.clamp(0, 1), seg


def make_set(n, seed):
    gen = torch.Generator().manual_seed(seed)          # 在 CPU 上生成，任何设备上都是同一批
    imgs, segs = zip(*(make_scene(gen) for _ in range(n)))
    return torch.stack(imgs).to(device), torch.stack(segs).to(device)


X_train, Y_train = make_set(1000, seed=1)
X_test, Y_test = make_set(200, seed=2)
freq = torch.bincount(Y_train.flatten(), minlength=K).double() / Y_train.numel()
print("训练集", tuple(X_train.shape), "测试集", tuple(X_test.shape))
print("训练集各类像素占比：", {c: round(f, 3) for c, f in zip(CLASSES, freq.tolist())})
assert set(Y_test.unique().tolist()) == set(range(K))
# --8<-- [end:scene]

# --8<-- [start:tconv]
def conv_transpose2d_scratch(y, w, stride=1, padding=0, output_padding=0):
    """转置卷积 = 插零 + 补边 + 用翻转的核做普通卷积。

    y: (N, C_in, h, w)；w: (C_in, C_out, k, k)，与 F.conv_transpose2d 的权重形状相同。
    """
    n, c, h, wd = y.shape
    k = w.shape[-1]
    z = y.new_zeros(n, c, (h - 1) * stride + 1, (wd - 1) * stride + 1)
    z[:, :, ::stride, ::stride] = y                          # 相邻像素之间插 stride-1 个 0
    e = k - 1 - padding                                       # 每边补 k-1-p 个 0（为负时即裁掉）
    z = F.pad(z, [e, e + output_padding, e, e + output_padding])
    w_flip = w.transpose(0, 1).flip(-1, -2)                   # 交换输入输出通道，核旋转 180°
    return F.conv2d(z, w_flip)


g = torch.Generator().manual_seed(0)
settings = [(3, 1, 1), (3, 2, 1), (4, 2, 1), (2, 2, 0), (5, 3, 2), (3, 2, 0)]    # (k, s, p)
err_ref = err_grad = 0.0
for k, s, p in settings:
    x = torch.randn(2, 3, 11, 11, generator=g, dtype=torch.float64).to(device).requires_grad_()
    w = torch.randn(5, 3, k, k, generator=g, dtype=torch.float64).to(device)     # 卷积：3 → 5 通道
    out = F.conv2d(x, w, stride=s, padding=p)
    v = torch.randn(out.shape, generator=g, dtype=torch.float64).to(device)
    op = 11 - ((out.shape[-1] - 1) * s - 2 * p + k)          # 卷积把几种尺寸映成同一个，选回 11
    mine = conv_transpose2d_scratch(v, w, s, p, op)
    ref = F.conv_transpose2d(v, w, stride=s, padding=p, output_padding=op)
    (grad,) = torch.autograd.grad((out * v).sum(), x)       # <conv(x), v> 对 x 的梯度
    assert mine.shape == ref.shape == x.shape
    err_ref = max(err_ref, (mine - ref).abs().max().item())
    err_grad = max(err_grad, (mine - grad).abs().max().item())
    print(f"k={k} s={s} p={p}：{tuple(v.shape[-2:])} → {tuple(mine.shape[-2:])}，output_padding={op}")
print(f"{len(settings)} 组设置：与 F.conv_transpose2d 最大差 {err_ref:.1e}，与卷积对输入的梯度最大差 {err_grad:.1e}")
assert err_ref < 1e-10 and err_grad < 1e-10
# --8<-- [end:tconv]

# --8<-- [start:fc2conv]
g = torch.Generator().manual_seed(1)
backbone = nn.Sequential(                                     # 步幅 8 的小骨干：48 → 6
    nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
    nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU()).double().to(device)
fc = nn.Linear(16 * 6 * 6, K).double().to(device)             # 分类头：只接受 6×6 的特征图
as_conv = nn.Conv2d(16, K, 6).double().to(device)             # 同一组权重，改成 6×6 的卷积
with torch.no_grad():
    as_conv.weight.copy_(fc.weight.view(K, 16, 6, 6))
    as_conv.bias.copy_(fc.bias)
    x48 = torch.rand(2, 3, 48, 48, generator=g, dtype=torch.float64).to(device)
    x96 = torch.rand(2, 3, 96, 96, generator=g, dtype=torch.float64).to(device)
    d_fc = (fc(backbone(x48).flatten(1)) - as_conv(backbone(x48)).flatten(1)).abs().max().item()
    score_map = as_conv(backbone(x96))
    try:
        fc(backbone(x96).flatten(1))
        fc_on_96 = "可以运行"
    except RuntimeError:
        fc_on_96 = "形状不匹配，报错"
print(f"48×48 输入：全连接头与卷积头的最大差 {d_fc:.1e}")
print(f"96×96 输入：全连接头{fc_on_96}；卷积头输出 {tuple(score_map.shape)} 的得分图")
assert d_fc < 1e-12 and score_map.shape == (2, K, 7, 7)
# --8<-- [end:fc2conv]

# --8<-- [start:miou]
def confusion_matrix(pred, target, k=K):
    """cm[i, j] = 真实类别为 i、预测为 j 的像素数。"""
    return torch.bincount(target.flatten() * k + pred.flatten(), minlength=k * k).reshape(k, k)


def iou_per_class(cm):
    """IoU_c = TP / (TP + FP + FN)；预测与真值里都没有的类别，分母为 0，记为 nan。"""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp                      # 预测为 c 的 + 真实为 c 的 - 交集
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm):
    """mIoU：只对出现过（预测或真值里有）的类别取平均。"""
    return iou_per_class(cm).nanmean().item()


def iou_by_counting(pred, target, k=K):
    """参照：逐类直接数交集与并集的像素。"""
    out = []
    for c in range(k):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        out.append(inter / union if union > 0 else float("nan"))
    return torch.tensor(out, dtype=torch.float64)


t = torch.tensor([[0, 0, 1, 1],
                  [0, 0, 1, 1]], device=device)
p = torch.tensor([[0, 1, 1, 1],
                  [0, 0, 0, 1]], device=device)
case1 = iou_per_class(confusion_matrix(p, t))               # 类 0：交 3、并 5；类 1：交 3、并 5
case2 = iou_per_class(confusion_matrix(t, t))               # 预测全对
p3 = torch.tensor([[0, 0, 2, 2],
                   [0, 0, 2, 2]], device=device)
case3 = iou_per_class(confusion_matrix(p3, t))              # 类 1 全被预测成类 2
print("例 1 逐类 IoU", [round(v, 4) for v in case1.tolist()], "mIoU", round(mean_iou(confusion_matrix(p, t)), 4))
print("例 2 逐类 IoU", case2.tolist(), "mIoU", mean_iou(confusion_matrix(t, t)))
print("例 3 逐类 IoU", case3.tolist(), "mIoU", round(mean_iou(confusion_matrix(p3, t)), 4))
assert torch.allclose(case1[:2], torch.tensor([0.6, 0.6], dtype=torch.float64, device=device))
assert case1[2:].isnan().all()                              # 类 2、3 两边都没有：不参与平均
assert mean_iou(confusion_matrix(p, t)) == 0.6 and mean_iou(confusion_matrix(t, t)) == 1.0
assert case3.tolist()[:3] == [1.0, 0.0, 0.0]                # 类 1 漏掉、类 2 误报：两个 0 都算进平均
assert abs(mean_iou(confusion_matrix(p3, t)) - 1 / 3) < 1e-15

g = torch.Generator().manual_seed(2)
max_diff = 0.0
for trial in range(20):
    pr = torch.randint(0, K - 1, (3, 16, 16), generator=g).to(device)   # 类 3 两边都不出现
    tg = torch.randint(0, K - 1, (3, 16, 16), generator=g).to(device)
    a, b = iou_per_class(confusion_matrix(pr, tg)).cpu(), iou_by_counting(pr, tg)
    assert torch.equal(a.isnan(), b.isnan())
    max_diff = max(max_diff, (a - b).nan_to_num().abs().max().item())
print(f"20 组随机预测：混淆矩阵与逐类数像素的 IoU 最大差 {max_diff:.1e}")
assert max_diff < 1e-15
# --8<-- [end:miou]

# --8<-- [start:models]
def conv_bn_relu(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class FCN(nn.Module):
    """分类式的骨干（步幅 8），1×1 卷积打分，转置卷积上采样；步幅 4 的得分从跳跃连接加进来。"""

    def __init__(self, c=(16, 32, 48)):
        super().__init__()
        self.stage1 = conv_bn_relu(3, c[0], 2)                                  # 48 → 24
        self.stage2 = conv_bn_relu(c[0], c[1], 2)                               # 24 → 12
        self.stage3 = nn.Sequential(conv_bn_relu(c[1], c[2], 2), conv_bn_relu(c[2], c[2]))  # 12 → 6
        self.score3 = nn.Conv2d(c[2], K, 1)                                     # 步幅 8 的得分
        self.score2 = nn.Conv2d(c[1], K, 1)                                     # 步幅 4 的得分
        self.up2 = nn.ConvTranspose2d(K, K, 4, stride=2, padding=1)             # 6 → 12
        self.up4 = nn.ConvTranspose2d(K, K, 8, stride=4, padding=2)             # 12 → 48

    def forward(self, x):
        f2 = self.stage2(self.stage1(x))
        f3 = self.stage3(f2)
        return self.up4(self.up2(self.score3(f3)) + self.score2(f2))           # 得分相加


class UNet(nn.Module):
    """编码器逐级减半，解码器逐级加倍；每级把编码器同尺寸的特征图拼接进来再卷积。"""

    def __init__(self, c=(8, 16, 32, 48)):
        super().__init__()
        self.enc0 = conv_bn_relu(3, c[0])                                       # 48
        self.enc1 = conv_bn_relu(c[0], c[1], 2)                                 # 24
        self.enc2 = conv_bn_relu(c[1], c[2], 2)                                 # 12
        self.enc3 = nn.Sequential(conv_bn_relu(c[2], c[3], 2), conv_bn_relu(c[3], c[3]))   # 6
        self.up3 = nn.ConvTranspose2d(c[3], c[2], 2, stride=2)                  # 6 → 12
        self.dec2 = conv_bn_relu(2 * c[2], c[2])
        self.up2 = nn.ConvTranspose2d(c[2], c[1], 2, stride=2)                  # 12 → 24
        self.dec1 = conv_bn_relu(2 * c[1], c[1])
        self.up1 = nn.ConvTranspose2d(c[1], c[0], 2, stride=2)                  # 24 → 48
        self.dec0 = conv_bn_relu(2 * c[0], c[0])
        self.head = nn.Conv2d(c[0], K, 1)

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up3(e3), e2], dim=1))                    # 通道维拼接
        d1 = self.dec1(torch.cat([self.up2(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up1(d1), e0], dim=1))
        return self.head(d0)


def n_cbr(i, o):          # 3×3 卷积（无偏置）+ BN 的 γ、β
    return 9 * i * o + 2 * o


def n_conv(i, o, k):      # 带偏置的 k×k 卷积或转置卷积
    return k * k * i * o + o


n_fcn = (n_cbr(3, 16) + n_cbr(16, 32) + n_cbr(32, 48) + n_cbr(48, 48)
         + n_conv(48, K, 1) + n_conv(32, K, 1) + n_conv(K, K, 4) + n_conv(K, K, 8))
n_unet = (n_cbr(3, 8) + n_cbr(8, 16) + n_cbr(16, 32) + n_cbr(32, 48) + n_cbr(48, 48)
          + n_conv(48, 32, 2) + n_cbr(64, 32) + n_conv(32, 16, 2) + n_cbr(32, 16)
          + n_conv(16, 8, 2) + n_cbr(16, 8) + n_conv(8, K, 1))
for name, model, formula in [("FCN", FCN(), n_fcn), ("U-Net", UNet(), n_unet)]:
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        shape = tuple(model(torch.zeros(1, 3, SIZE, SIZE)).shape)
    print(f"{name:<5} 参数量 {n_params}（逐层公式 {formula}），输入 (1, 3, 48, 48) → 输出 {shape}")
    assert n_params == formula and shape == (1, K, SIZE, SIZE)
# --8<-- [end:models]

# --8<-- [start:train]
def train(make_model, steps=400, batch=16, lr=1e-2, seed=0):
    """带类别权重的交叉熵，Adam + one-cycle 学习率；种子决定初始化和小批量的顺序。"""
    torch.manual_seed(seed)
    model = make_model().to(device)
    torch.manual_seed(seed)
    # 背景约占七成像素：权重按频率的 -1/2 次方，前景类别的像素在损失里分量更重
    weight = (freq ** -0.5 / (freq ** -0.5).mean()).float().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(X_train), (batch,), generator=gen).to(device)
        loss = F.cross_entropy(model(X_train[idx]), Y_train[idx], weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict(model, x):
    return torch.cat([model(xb).argmax(1) for xb in x.split(100)])


def boundary(seg):
    """与 4 邻域中某个像素类别不同的像素（物体边缘两侧各一圈）。"""
    b = torch.zeros_like(seg, dtype=torch.bool)
    b[:, 1:] |= seg[:, 1:] != seg[:, :-1]
    b[:, :-1] |= seg[:, 1:] != seg[:, :-1]
    b[:, :, 1:] |= seg[:, :, 1:] != seg[:, :, :-1]
    b[:, :, :-1] |= seg[:, :, 1:] != seg[:, :, :-1]
    return b


fcn, unet = train(FCN, seed=0), train(UNet, seed=0)
edge = boundary(Y_test)
results = {}
for name, model in [("FCN", fcn), ("U-Net", unet)]:
    pred = predict(model, X_test)
    cm = confusion_matrix(pred, Y_test)
    iou = iou_per_class(cm)
    acc_edge = (pred == Y_test)[edge].double().mean().item()
    acc_inner = (pred == Y_test)[~edge].double().mean().item()
    results[name] = dict(pred=pred, miou=mean_iou(cm), edge=acc_edge, inner=acc_inner)
    print(f"{name:<5} mIoU {mean_iou(cm):.3f}  逐类 IoU", [round(v, 3) for v in iou.tolist()],
          f" 边缘像素准确率 {acc_edge:.3f}  内部 {acc_inner:.3f}")
print(f"边缘像素占测试集像素的 {edge.double().mean().item():.3f}")
# 下限来自设计时的 5 个种子（0–4，本页只跑种子 0）：FCN 的 mIoU 在 [0.563, 0.671]，
# U-Net 在 [0.771, 0.817]；下限各比 5 个种子的最小值低 0.05 以上（留给 CUDA 与其他 CPU 的差异）。
assert results["FCN"]["miou"] >= 0.50
assert results["U-Net"]["miou"] >= 0.72
# 本页的种子 0 上：U-Net 的 mIoU 与边缘像素准确率都高于 FCN，且边缘上的差距大于内部像素上的差距
assert results["U-Net"]["miou"] > results["FCN"]["miou"]
assert results["U-Net"]["edge"] > results["FCN"]["edge"]
assert (results["U-Net"]["edge"] - results["FCN"]["edge"]
        > results["U-Net"]["inner"] - results["FCN"]["inner"])
# --8<-- [end:train]

# --8<-- [start:figure]
cmap = ListedColormap(["#d9d9d9", "#1f77b4", "#ff7f0e", "#2ca02c"])
show = range(4)
fig, axes = plt.subplots(4, len(show), figsize=(1.9 * len(show), 7.8))
rows = [("图像", None), ("真值", Y_test), ("FCN", results["FCN"]["pred"]), ("U-Net", results["U-Net"]["pred"])]
for r, (title, masks) in enumerate(rows):
    for col, i in enumerate(show):
        ax = axes[r, col]
        if masks is None:
            ax.imshow(X_test[i].permute(1, 2, 0).cpu())
        else:
            ax.imshow(masks[i].cpu(), cmap=cmap, vmin=0, vmax=K - 1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(title)
axes[0, 0].set_title("灰：背景  蓝：矩形  橙：椭圆  绿：三角形", loc="left", fontsize=8)
fig.savefig("semantic_predictions.svg", bbox_inches="tight")
# --8<-- [end:figure]
