# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def make_features(cfg: list, in_channels: int = 3, pool: type[nn.Module] = nn.MaxPool2d) -> nn.Sequential:
    """与正文相同；多了一个参数 pool：用哪种 2×2、步幅 2 的池化。"""
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(pool(kernel_size=2, stride=2))
        else:
            out, k = v if isinstance(v, tuple) else (v, 3)
            layers += [nn.Conv2d(c, out, kernel_size=k, padding=k // 2), nn.ReLU()]
            c = out
    return nn.Sequential(*layers)


def vgg(cfg: list, num_classes: int = 1000, in_channels: int = 3, side: int = 224,
        hidden: tuple = (4096, 4096), dropout: float = 0.5) -> nn.Sequential:
    features = make_features(cfg, in_channels)
    c_last = [m for m in features if isinstance(m, nn.Conv2d)][-1].out_channels
    d = c_last * (side // 2 ** cfg.count("M")) ** 2
    layers: list[nn.Module] = [features, nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, num_classes))
# --8<-- [end:imports]

# --8<-- [start:ex1]
with torch.device("meta"):
    original = vgg(VGG16_CFG)
    gap = nn.Sequential(                                     # fc6 之前先做全局平均池化：512×7×7 -> 512
        make_features(VGG16_CFG), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(512, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 1000))
n_orig, n_gap = (sum(p.numel() for p in m.parameters()) for m in (original, gap))
fc6_old, fc6_new = 25088 * 4096 + 4096, 512 * 4096 + 4096  # 按公式
print(f"fc6：{fc6_old} -> {fc6_new}；整个网络：{n_orig} -> {n_gap}（剩下 {n_gap / n_orig:.3f}）")
assert n_orig - n_gap == fc6_old - fc6_new and n_orig == 138357544
print("输出形状：", tuple(gap(torch.empty(1, 3, 224, 224, device="meta")).shape),
      tuple(gap(torch.empty(1, 3, 320, 320, device="meta")).shape))
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def rf_formula(cfg: list) -> list[int]:
    """逐层递推：r ← r + (k - 1)·j，j ← j·s；j 是该层相邻输出在输入上相隔的像素数。"""
    r, j, out = 1, 1, []
    for v in cfg:
        k, s = (2, 2) if v == "M" else (3, 1)
        r, j = r + (k - 1) * j, j * s
        out.append(r)
    return out


rf = rf_formula(VGG16_CFG)
print("每段最后一个卷积层的感受野：", [rf[i - 1] for i, v in enumerate(VGG16_CFG) if v == "M"])
print(f"conv5_3：{rf[-2]}，pool5：{rf[-1]}")

# 用梯度测量：单通道、权重全为 1；池化改为 2×2 平均池化（几何与最大池化相同，但梯度流向窗口内每个像素）
net = make_features([1 if v != "M" else v for v in VGG16_CFG], in_channels=1, pool=nn.AvgPool2d)[:-1].to(device)
for m in net:
    if isinstance(m, nn.Conv2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
x = torch.ones(1, 1, 320, 320, device=device, requires_grad=True)
y = net(x)                                                 # conv5_3 之后（去掉了 pool5）：(1, 1, 20, 20)
y[0, 0, 10, 10].backward()
rows = int((x.grad[0, 0].abs().sum(dim=1) > 0).sum())
print(f"梯度测得 conv5_3 的感受野：{rows}×{rows}")
assert rows == rf[-2] == 196 and rf[-1] == 212
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X_all, y_all = load_digits(return_X_y=True)                 # 与正文相同的数据、初始化和训练设置
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0
X_tr, X_te = (torch.tensor((X - mu) / sigma, dtype=torch.float32, device=device).reshape(-1, 1, 8, 8)
              for X in (X_tr, X_te))
y_tr, y_te = (torch.tensor(y, device=device) for y in (y_tr, y_te))


def small_net(cfg: list, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = vgg(cfg, num_classes=10, in_channels=1, side=8, hidden=(64,))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net.to(device)


def train(net: nn.Module, seed: int, epochs: int = 12) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(y_tr), generator=gen).to(device)
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return (net(X_te).argmax(dim=1) == y_te).float().mean().item()


SMALL = [16, 16, "M", 32, 32, "M"]                          # 正文的小 VGG：每段两个 3×3
FIVE = [(16, 5), "M", (32, 5), "M"]                         # 每段一个 5×5：感受野与两个 3×3 相同
n_three, n_five = (sum(p.numel() for p in small_net(cfg, 0).parameters()) for cfg in (SMALL, FIVE))
print(f"一个 5×5 的版本：{n_five} 个参数（两个 3×3 的正文版本是 {n_three} 个）")
acc3 = {seed: train(small_net(SMALL, seed), seed) for seed in (0, 1, 2)}   # 重跑正文 train 一节
acc5 = {seed: train(small_net(FIVE, seed), seed) for seed in (0, 1, 2)}
print("测试准确率（两个 3×3，正文）：", {seed: round(a, 3) for seed, a in acc3.items()})
print("测试准确率（一个 5×5）：      ", {seed: round(a, 3) for seed, a in acc5.items()})
mean3, mean5 = sum(acc3.values()) / 3, sum(acc5.values()) / 3
print(f"平均：一个 5×5 {mean5:.3f}，两个 3×3（正文）{mean3:.3f}")
assert abs(mean5 - mean3) < 0.02                            # 差距在 0.02（约 7 个测试样本）以内
assert n_five == (16 * 1 * 25 + 16) + (32 * 16 * 25 + 32) + (128 * 64 + 64) + (64 * 10 + 10) < n_three
assert n_three == (16 * 9 + 16) + (16 * 16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 32 * 9 + 32) + (128 * 64 + 64) + (64 * 10 + 10)
# --8<-- [end:ex3]
