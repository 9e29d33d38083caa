# --8<-- [start:imports]
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
K = 4          # 背景、矩形、椭圆、三角形
SIZE = 48


def make_scene(gen, size=SIZE, n_obj=4):
    """与正文相同的场景：纹理背景上至多 n_obj 个可以相互遮挡的图形，返回图像与语义掩码。"""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    low = F.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=gen), size=(size, size),
                        mode="bilinear", align_corners=False)[0]
    img = 0.35 + 0.3 * low + 0.06 * torch.sin(xx / 2.5 + yy / 4.0)
    seg = torch.zeros(size, size, dtype=torch.long)
    inst = torch.zeros(size, size, dtype=torch.long)          # 0：背景；i：第 i 个图形露出的像素
    for i in range(1, n_obj + 1):
        c = int(torch.randint(3, (1,), generator=gen))
        w, h = torch.randint(12, 29, (2,), generator=gen).tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        cx, cy = x0 + w / 2, y0 + h / 2
        if c == 0:
            mask = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
        elif c == 1:
            mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
        else:
            mask = (yy > y0) & (yy < y0 + h) & ((xx - cx).abs() <= (yy - y0) / h * w / 2)
        visible = torch.bincount(inst.flatten(), minlength=n_obj + 1)[1:]   # 各图形现在露出的像素数
        covered = torch.bincount(inst[mask], minlength=n_obj + 1)[1:]      # 这次放置会盖住的像素数
        if (3 * covered > visible).any():            # 会盖住某个图形可见部分的三分之一以上：放弃
            continue
        img[:, mask] = torch.rand(3, 1, generator=gen)
        seg[mask] = c + 1
        inst[mask] = i
    return img.clamp(0, 1), seg


def make_set(n, seed):
    gen = torch.Generator().manual_seed(seed)
    imgs, segs = zip(*(make_scene(gen) for _ in range(n)))
    return torch.stack(imgs).to(device), torch.stack(segs).to(device)


def confusion_matrix(pred, target, k=K):
    return torch.bincount(target.flatten() * k + pred.flatten(), minlength=k * k).reshape(k, k)


def iou_per_class(cm):
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm):
    return iou_per_class(cm).nanmean().item()


def conv_bn_relu(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())
# --8<-- [end:imports]

# --8<-- [start:ex1]
X_test, Y_test = make_set(200, seed=2)                    # 与正文相同的 200 幅测试场景
pred = torch.zeros_like(Y_test)                           # 每个像素都猜「背景」
pixel_acc = (pred == Y_test).double().mean().item()
iou = iou_per_class(confusion_matrix(pred, Y_test))
print(f"全猜背景：像素准确率 {pixel_acc:.3f}，逐类 IoU {[round(v, 3) for v in iou.tolist()]}，"
      f"mIoU {mean_iou(confusion_matrix(pred, Y_test)):.3f}")
assert abs(iou[0].item() - pixel_acc) < 1e-12 and (iou[1:] == 0).all()
assert abs(mean_iou(confusion_matrix(pred, Y_test)) - pixel_acc / 4) < 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 两幅 1×10 的「图」：图 A 有 1 个像素的类 1 被漏掉；图 B 预测全对，且没有类 1
t_a = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]], device=device)
p_a = torch.zeros_like(t_a)
t_b = torch.tensor([[0, 0, 0, 0, 0, 2, 2, 2, 2, 2]], device=device)
p_b = t_b.clone()
cm_a, cm_b = confusion_matrix(p_a, t_a, k=3), confusion_matrix(p_b, t_b, k=3)
per_image = [mean_iou(cm_a), mean_iou(cm_b)]
dataset = mean_iou(cm_a + cm_b)                            # 先累加混淆矩阵，再算 IoU
print("图 A 逐类 IoU", [round(v, 3) for v in iou_per_class(cm_a).tolist()], "mIoU", round(per_image[0], 4))
print("图 B 逐类 IoU", [round(v, 3) for v in iou_per_class(cm_b).tolist()], "mIoU", round(per_image[1], 4))
print(f"逐图 mIoU 的平均 {sum(per_image) / 2:.4f}，累加混淆矩阵后的 mIoU {dataset:.4f}")
absent_as_one = (iou_per_class(cm_b).nan_to_num(1.0)).mean().item()
absent_as_zero = (iou_per_class(cm_b).nan_to_num(0.0)).mean().item()
print(f"图 B 若把缺席的类 1 记作 1：{absent_as_one:.4f}；记作 0：{absent_as_zero:.4f}")
assert abs(per_image[0] - 0.9 / 2) < 1e-12 and per_image[1] == 1.0
assert abs(dataset - (14 / 15 + 0 + 1) / 3) < 1e-12
assert sum(per_image) / 2 != dataset
# --8<-- [end:ex2]

# --8<-- [start:ex3]
class UNet(nn.Module):
    """与正文相同的 U-Net。"""

    def __init__(self, c=(8, 16, 32, 48)):
        super().__init__()
        self.enc0 = conv_bn_relu(3, c[0])
        self.enc1 = conv_bn_relu(c[0], c[1], 2)
        self.enc2 = conv_bn_relu(c[1], c[2], 2)
        self.enc3 = nn.Sequential(conv_bn_relu(c[2], c[3], 2), conv_bn_relu(c[3], c[3]))
        self.up3 = nn.ConvTranspose2d(c[3], c[2], 2, stride=2)
        self.dec2 = conv_bn_relu(2 * c[2], c[2])
        self.up2 = nn.ConvTranspose2d(c[2], c[1], 2, stride=2)
        self.dec1 = conv_bn_relu(2 * c[1], c[1])
        self.up1 = nn.ConvTranspose2d(c[1], c[0], 2, stride=2)
        self.dec0 = conv_bn_relu(2 * c[0], c[0])
        self.head = nn.Conv2d(c[0], K, 1)

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up3(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up2(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up1(d1), e0], dim=1))
        return self.head(d0)


def padded_forward(model, x, multiple=8):
    """把高、宽在右下方补到 multiple 的倍数，前向后再裁回原尺寸。"""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    out = model(F.pad(x, [0, pw, 0, ph], mode="reflect"))
    return out[..., :h, :w]


unet = UNet().to(device).eval()
x50 = torch.rand(1, 3, 50, 50, device=device)
sizes = [50]
for _ in range(3):
    sizes.append((sizes[-1] + 2 * 1 - 3) // 2 + 1)          # 步幅 2、k=3、p=1 的卷积
print("编码器各级的边长：", sizes, "；转置卷积 (k=2, s=2) 把 7 放大成", (7 - 1) * 2 + 2)
with torch.no_grad():
    try:
        unet(x50)
        message = "正常"
    except RuntimeError:
        message = "拼接时尺寸不一致，报错"
    out = padded_forward(unet, x50)
print(f"50×50 直接输入：{message}；补到 56×56 再裁回：输出 {tuple(out.shape)}")
assert sizes == [50, 25, 13, 7] and message != "正常" and out.shape == (1, K, 50, 50)
# --8<-- [end:ex3]

# --8<-- [start:ex4]
class FCN(nn.Module):
    """正文的 FCN；skip=False 时去掉步幅 4 的得分，直接从步幅 8 放大 8 倍（相当于 FCN-32s 的做法）。"""

    def __init__(self, skip=True, c=(16, 32, 48)):
        super().__init__()
        self.skip = skip
        self.stage1 = conv_bn_relu(3, c[0], 2)
        self.stage2 = conv_bn_relu(c[0], c[1], 2)
        self.stage3 = nn.Sequential(conv_bn_relu(c[1], c[2], 2), conv_bn_relu(c[2], c[2]))
        self.score3 = nn.Conv2d(c[2], K, 1)
        if skip:
            self.score2 = nn.Conv2d(c[1], K, 1)
            self.up2 = nn.ConvTranspose2d(K, K, 4, stride=2, padding=1)
            self.up4 = nn.ConvTranspose2d(K, K, 8, stride=4, padding=2)
        else:
            self.up8 = nn.ConvTranspose2d(K, K, 16, stride=8, padding=4)          # 6 → 48

    def forward(self, x):
        f2 = self.stage2(self.stage1(x))
        s3 = self.score3(self.stage3(f2))
        if self.skip:
            return self.up4(self.up2(s3) + self.score2(f2))
        return self.up8(s3)


X_train, Y_train = make_set(1000, seed=1)
freq = torch.bincount(Y_train.flatten(), minlength=K).double() / Y_train.numel()


def train(make_model, steps=400, batch=16, lr=1e-2, seed=0):
    torch.manual_seed(seed)
    model = make_model().to(device)
    torch.manual_seed(seed)
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


miou = {}
for skip in [True, False]:
    model = train(lambda: FCN(skip=skip), seed=0)
    with torch.no_grad():
        pred = torch.cat([model(xb).argmax(1) for xb in X_test.split(100)])
    miou[skip] = mean_iou(confusion_matrix(pred, Y_test))
    print(f"{'有' if skip else '无'}跳跃连接的 FCN：mIoU {miou[skip]:.3f}")
assert miou[True] < miou[False] + 0.05     # 种子 0：相加的得分跳跃连接在这里没有带来可见的好处
# --8<-- [end:ex4]
