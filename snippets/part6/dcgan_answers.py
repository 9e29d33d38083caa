# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 全 1 的输入、全 1 的卷积核：输出的每个像素等于「有几次盖印落在这里」
ones_in = torch.ones(1, 1, 4, 4, dtype=torch.float64, device=device)


def coverage(k, s, p, op=0):
    w = torch.ones(1, 1, k, k, dtype=torch.float64, device=device)
    return F.conv_transpose2d(ones_in, w, stride=s, padding=p, output_padding=op)[0, 0]


k3 = coverage(3, 2, 1, 1)                                        # 4×4 -> 8×8，k = 3 不能被 s = 2 整除
k4 = coverage(4, 2, 1)                                           # 4×4 -> 8×8，k = 4 能被 s = 2 整除
up = F.conv2d(F.interpolate(ones_in, scale_factor=2, mode="nearest"),   # 先最近邻放大，再做普通卷积
              torch.ones(1, 1, 3, 3, dtype=torch.float64, device=device), padding=1)[0, 0]
for name, m in [("k=3, s=2 转置卷积", k3), ("k=4, s=2 转置卷积", k4), ("放大 + 3×3 卷积", up)]:
    print(name)
    print("\n".join("  " + " ".join(f"{v:2.0f}" for v in row) for row in m.tolist()))
inner = (slice(1, -1), slice(1, -1))                             # 去掉最外一圈（边界本来就覆盖得少）
print(f"内部的最小值/最大值：k=3 {k3[inner].min().item():.0f}/{k3[inner].max().item():.0f}，"
      f"k=4 {k4[inner].min().item():.0f}/{k4[inner].max().item():.0f}，"
      f"放大 + 卷积 {up[inner].min().item():.0f}/{up[inner].max().item():.0f}")
assert k3[inner].max() == 4 * k3[inner].min()                    # 棋盘格：相邻像素被盖 1、2、4 次
assert k4[inner].min() == k4[inner].max() == 4                   # 均匀
assert up[inner].min() == up[inner].max() == 9                   # 均匀
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 正文的数据、G、D、分类器与训练函数（原样复制；generator(bn=False) 把 G 的 BN 换成恒等映射）
X, y = load_digits(return_X_y=True)                             # 像素为 0..16 的整数
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
# 缩放到 [−1, 1]，与生成器的 tanh 输出同一范围
X_tr = torch.tensor(X_tr / 8 - 1, dtype=torch.float32, device=device).view(-1, 1, 8, 8)
X_te = torch.tensor(X_te / 8 - 1, dtype=torch.float32, device=device).view(-1, 1, 8, 8)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)
print(f"训练集 {tuple(X_tr.shape)}，测试集 {tuple(X_te.shape)}，像素范围 [{X_tr.min().item():.0f}, {X_tr.max().item():.0f}]")
NZ, C = 16, 16                                                  # 噪声维数；通道数的基数（很小，为了几秒内训完）


def generator(bn: bool = True) -> nn.Sequential:
    norm = nn.BatchNorm2d if bn else (lambda c: nn.Identity())
    return nn.Sequential(                                       # 输入 z：(N, NZ, 1, 1)
        nn.ConvTranspose2d(NZ, 2 * C, 2, 1, 0, bias=not bn), norm(2 * C), nn.ReLU(),   # -> (N, 32, 2, 2)
        nn.ConvTranspose2d(2 * C, C, 4, 2, 1, bias=not bn), norm(C), nn.ReLU(),        # -> (N, 16, 4, 4)
        nn.ConvTranspose2d(C, 1, 4, 2, 1), nn.Tanh())                                   # -> (N, 1, 8, 8)


def discriminator() -> nn.Sequential:
    return nn.Sequential(                                       # 输入：(N, 1, 8, 8)
        nn.Conv2d(1, C, 4, 2, 1), nn.LeakyReLU(0.2),                                    # -> (N, 16, 4, 4)
        nn.Conv2d(C, 2 * C, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * C), nn.LeakyReLU(0.2),  # -> (N, 32, 2, 2)
        nn.Conv2d(2 * C, 1, 2, 1, 0), nn.Flatten())                                     # -> (N, 1)：一个 logit


# 评判样本用的数字分类器：只在真实训练数字上训练，与 GAN 无关
def train_classifier(seed=1, epochs=15):
    torch.manual_seed(seed)
    clf = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 8 -> 4
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 4 -> 2
                        nn.Flatten(), nn.Linear(32 * 2 * 2, 10)).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=0.003)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(X_tr), generator=gen).split(64):
            idx = idx.to(device)
            loss = F.cross_entropy(clf(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval()


@torch.no_grad()
def judge(clf, x):
    """分类器对一组图的判断：预测类别的直方图、它的熵（奈特，最大 log 10）、平均置信度（最大 softmax）、
    以及 Inception 分数的思路 exp(E_x KL(p(y|x) || p(y)))（1 到 10）。"""
    p = clf(x).softmax(1)
    hist = torch.bincount(p.argmax(1), minlength=10).float() / len(x)
    nz = hist[hist > 0]
    entropy = 0.0 - (nz * nz.log()).sum().item()      # 0.0 − …：避免打印 −0.000
    conf = p.max(1).values.mean().item()
    score = (p * (p.clamp_min(1e-12).log() - p.mean(0).log())).sum(1).mean().exp().item()
    return {"hist": hist, "entropy": entropy, "conf": conf, "score": score}


clf = train_classifier()
acc = (clf(X_te).argmax(1) == y_te).float().mean().item()
real = judge(clf, X_te)
def dcgan_init(m):                                              # Radford 等（2016）：权重取 N(0, 0.02²)
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@torch.no_grad()
def sample(G, n=1000):
    G.eval()                                                    # 采样时 BN 用运行统计量
    x = G(torch.randn(n, NZ, 1, 1, device=device))
    G.train()
    return x


def train_dcgan(seed=0, steps=800, batch=64, lr=0.0005, bn=True):
    torch.manual_seed(seed)
    G, D = generator(bn).to(device), discriminator().to(device)
    G.apply(dcgan_init)
    D.apply(dcgan_init)
    untrained = judge(clf, sample(G))                           # 同一个 G 在训练前的样本
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    ones = torch.ones(batch, 1, device=device)
    zeros = torch.zeros(batch, 1, device=device)
    gen = torch.Generator().manual_seed(seed)
    log = []
    for step in range(steps):
        real_x = X_tr[torch.randint(len(X_tr), (batch,), generator=gen).to(device)]
        fake = G(torch.randn(batch, NZ, 1, 1, device=device))
        # 判别器：真图判 1，假图判 0（fake.detach()：这一步不更新 G）
        loss_d = (F.binary_cross_entropy_with_logits(D(real_x), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # 生成器：非饱和损失，让 D 把假图判成 1
        loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        log.append((loss_d.item(), loss_g.item()))
    return G, untrained, log


G_nobn, untrained, log = train_dcgan(bn=False)
r = judge(clf, sample(G_nobn))
print(f"分类器测试准确率 {acc:.3f}")
print(f"G 去掉 BN：最后 100 步的平均损失 D {sum(l[0] for l in log[-100:]) / 100:.3f}，G {sum(l[1] for l in log[-100:]) / 100:.3f}")
print(f"熵 {r['entropy']:.3f}，平均置信度 {r['conf']:.3f}，分数 {r['score']:.2f}")
print("1000 个样本的预测类别计数：", (r["hist"] * 1000).round().int().tolist())
assert r["entropy"] < 2.1 and r["conf"] < 0.8                   # 低于正文带 BN 的 G 在每个种子上都达到的下限
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def convt_out_size(h_in, k, s, p, output_padding=0):
    return (h_in - 1) * s - 2 * p + k + output_padding


def conv_params(c_in, c_out, k, bias):
    return c_in * c_out * k * k + (c_out if bias else 0)


nz, c = 100, 64
plan = [(nz, 2 * c, 7, 1, 0), (2 * c, c, 4, 2, 1), (c, 1, 4, 2, 1)]     # (c_in, c_out, k, s, p)
size, layers, formula = 1, [], []
for i, (c_in, c_out, k, s, p) in enumerate(plan):
    last = i == len(plan) - 1
    size = convt_out_size(size, k, s, p)
    print(f"ConvTranspose2d({c_in}, {c_out}, k={k}, s={s}, p={p}) -> {size}×{size}，k/s = {k / s:g}")
    assert k % s == 0                                             # 核大小能被步幅整除：没有棋盘格式的不均匀覆盖
    layers.append(nn.ConvTranspose2d(c_in, c_out, k, s, p, bias=last))
    formula.append(conv_params(c_in, c_out, k, last))
    if not last:
        layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        formula.append(2 * c_out)
layers.append(nn.Tanh())
G28 = nn.Sequential(*layers).to(device)
counted = [sum(p.numel() for p in m.parameters()) for m in G28 if sum(p.numel() for p in m.parameters()) > 0]
out = G28(torch.randn(2, nz, 1, 1, device=device))
print(f"输出形状 {tuple(out.shape)}；逐层公式 {formula}，合计 {sum(formula)}；numel 合计 {sum(counted)}")
assert size == 28 and out.shape == (2, 1, 28, 28) and counted == formula
print(f"第一层占 {formula[0] / sum(formula):.1%}")
assert formula[0] / sum(formula) > 0.8
# --8<-- [end:ex3]
