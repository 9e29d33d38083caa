# --8<-- [start:imports]
# 与正文相同的数据、评判分类器、条件 GAN 与 CycleGAN 的训练函数（复制自 cyclegan.py）
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

X, y = load_digits(return_X_y=True)                             # 1797 张 8×8 图，像素 0..16
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
X_tr = torch.tensor(X_tr / 16, dtype=torch.float32, device=device)   # 缩放到 [0, 1]
X_te = torch.tensor(X_te / 16, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)
print(f"训练集 {tuple(X_tr.shape)}，测试集 {tuple(X_te.shape)}")


def mlp(*dims, act=nn.ReLU):
    """全连接网络：dims = (输入, 隐藏..., 输出)，最后一层之后不加激活。"""
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(device)


def leaky():
    return nn.LeakyReLU(0.2)


def train_classifier(inputs, labels, steps=100):
    """评判用的数字分类器：64→64→10，全批量 Adam。它与任何 GAN 都无关。"""
    torch.manual_seed(0)
    clf = mlp(64, 64, 10)
    opt = torch.optim.Adam(clf.parameters(), 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(clf(inputs), labels).backward()
        opt.step()
    return clf.requires_grad_(False)


def accuracy(clf, inputs, labels):
    return (clf(inputs).argmax(1) == labels).float().mean().item()


Z_DIM, N_CLASS = 16, 10


def train_cgan(seed, steps=1000, batch=128, label_to_d=True):
    """非饱和损失的条件 GAN。label_to_d=False 时判别器看不到标签（练习 1 用）。"""
    torch.manual_seed(seed)
    G = mlp(Z_DIM + N_CLASS, 128, 64)
    D = mlp(64 + N_CLASS, 128, 1, act=leaky)
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.5, 0.999))
    bce = F.binary_cross_entropy_with_logits
    n = X_tr.shape[0]
    for _ in range(steps):
        idx = torch.randint(0, n, (batch,), device=device)
        x_real, y_real = X_tr[idx], F.one_hot(y_tr[idx], N_CLASS).float()
        z = torch.randn(batch, Z_DIM, device=device)
        y_fake = F.one_hot(torch.randint(0, N_CLASS, (batch,), device=device), N_CLASS).float()
        x_fake = torch.sigmoid(G(torch.cat([z, y_fake], 1)))
        c_real = y_real if label_to_d else torch.zeros_like(y_real)
        c_fake = y_fake if label_to_d else torch.zeros_like(y_fake)
        # 判别器：真图配真标签判为 1，生成图配它被要求的标签判为 0
        s_real = D(torch.cat([x_real, c_real], 1))
        s_fake = D(torch.cat([x_fake.detach(), c_fake], 1))
        loss_d = bce(s_real, torch.ones_like(s_real)) + bce(s_fake, torch.zeros_like(s_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # 生成器：非饱和损失 −log D(G(z, y), y)
        s_fake = D(torch.cat([x_fake, c_fake], 1))
        loss_g = bce(s_fake, torch.ones_like(s_fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return G


def sample_per_class(G, per_class=100):
    """每个类别要 per_class 张图：返回图 (10·per_class, 64) 与被要求的类别。"""
    asked = torch.arange(N_CLASS, device=device).repeat_interleave(per_class)
    z = torch.randn(len(asked), Z_DIM, device=device)
    with torch.no_grad():
        x = torch.sigmoid(G(torch.cat([z, F.one_hot(asked, N_CLASS).float()], 1)))
    return x, asked


def lsgan_d_loss(d_real, d_fake):
    """LSGAN 判别器损失（a = 0、b = 1）：½E[(D(y) − 1)²] + ½E[D(G(x))²]。"""
    return 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake ** 2).mean()


def lsgan_g_loss(d_fake):
    """LSGAN 生成器损失（c = 1）：½E[(D(G(x)) − 1)²]。"""
    return 0.5 * ((d_fake - 1) ** 2).mean()


def cycle_loss(x, x_cyc, y, y_cyc):
    """‖F(G(x)) − x‖₁ + ‖G(F(y)) − y‖₁，各自对像素和样本取平均。"""
    return (x_cyc - x).abs().mean() + (y_cyc - y).abs().mean()


def identity_loss(x, f_x, y, g_y):
    """‖G(y) − y‖₁ + ‖F(x) − x‖₁：把目标域的图交给生成器，它应当原样返回。"""
    return (g_y - y).abs().mean() + (f_x - x).abs().mean()


class ConvGen(nn.Module):
    """8×8 单通道图 → 8×8 图的 logit：两层 3×3 卷积，只看局部邻域。"""

    def __init__(self, channels=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, x):                            # x: (n, 64)
        return self.net(x.view(-1, 1, 8, 8)).view(-1, 64)


def invert(x):
    return 1 - x                                     # 域 Y：黑白反转的数字


def train_cyclegan(seed, transform, make_gen, steps, lam_cyc=10.0, lam_id=0.0, batch=64):
    """返回 G: X→Y、F: Y→X（都输出 [0, 1] 的像素）。两个域取自训练集不相交的两半：没有成对的图。"""
    torch.manual_seed(seed)
    n = X_tr.shape[0]
    perm = torch.randperm(n, device=device)
    dom_x = X_tr[perm[: n // 2]]                     # 域 X：一半训练图的原样
    dom_y = transform(X_tr[perm[n // 2:]])           # 域 Y：另一半训练图变换后的样子
    G_net, F_net = make_gen().to(device), make_gen().to(device)
    D_x, D_y = mlp(64, 64, 1, act=leaky), mlp(64, 64, 1, act=leaky)
    opt_g = torch.optim.Adam(list(G_net.parameters()) + list(F_net.parameters()), 2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(D_x.parameters()) + list(D_y.parameters()), 2e-3, betas=(0.5, 0.999))
    G = lambda v: torch.sigmoid(G_net(v))
    Fm = lambda v: torch.sigmoid(F_net(v))
    for _ in range(steps):
        x = dom_x[torch.randint(0, dom_x.shape[0], (batch,), device=device)]
        y = dom_y[torch.randint(0, dom_y.shape[0], (batch,), device=device)]
        fake_y, fake_x = G(x), Fm(y)
        loss = lsgan_g_loss(D_y(fake_y)) + lsgan_g_loss(D_x(fake_x))
        loss = loss + lam_cyc * cycle_loss(x, Fm(fake_y), y, G(fake_x))
        if lam_id:
            loss = loss + lam_id * identity_loss(x, Fm(x), y, G(y))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        loss_d = (lsgan_d_loss(D_y(y), D_y(fake_y.detach()))
                  + lsgan_d_loss(D_x(x), D_x(fake_x.detach())))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
    return G, Fm


def evaluate(G, Fm, clf_y, transform):
    """测试集上：循环重构误差、G(x) 被 Y 域分类器判为 x 的类别的比例、最优类别置换下的比例。"""
    with torch.no_grad():
        g_x = G(X_te)
        rec = (Fm(g_x) - X_te).abs().mean().item()
        pred = clf_y(g_x).argmax(1)
    keep = (pred == y_te).float().mean().item()
    conf = torch.zeros(N_CLASS, N_CLASS)             # conf[真实类别, 判出的类别]
    conf.index_put_((y_te.cpu(), pred.cpu()), torch.ones(len(y_te)), accumulate=True)
    rows, cols = linear_sum_assignment(-conf.numpy())
    matched = conf[rows, cols].sum().item() / len(y_te)
    return rec, keep, matched


clf = train_classifier(X_tr, y_tr)
clf_inv = train_classifier(invert(X_tr), y_tr)
# --8<-- [end:imports]

# --8<-- [start:ex1]
x_gen, asked = sample_per_class(train_cgan(seed=0, label_to_d=False))   # 标签只给生成器
pred = clf(x_gen).argmax(1)
rate = (pred == asked).float().mean().item()
print(f"判别器看不到标签：判为被要求类别的比例 {rate:.3f}（瞎猜 0.1）")
print(f"各类样本数 {torch.bincount(pred, minlength=N_CLASS).tolist()}")
# 离线（种子 0..2）：0.092、0.085、0.101，与瞎猜无异；界 0.2 留出余量（正文的下限是 0.8）
assert rate < 0.2
# --8<-- [end:ex1]

# --8<-- [start:ex2]
G, Fm = train_cyclegan(0, invert, ConvGen, steps=500, lam_cyc=0.0)   # 只有对抗损失
rec, keep, _ = evaluate(G, Fm, clf_inv, invert)
print(f"λ_cyc = 0：循环重构误差 {rec:.3f}，类别保持率 {keep:.3f}")
# 离线（种子 0..2）：λ_cyc = 0 时重构 0.078..0.092、保持率 0.936..0.942；λ_cyc = 10 时重构 0.048..0.052
assert rec > 0.07                                   # 高于正文有循环损失时的上限 0.07
assert keep > 0.85                                  # 类别仍然保持：卷积生成器只会做局部的改动
# --8<-- [end:ex2]

# --8<-- [start:ex3]
y_dom = invert(X_te)                                # Y 域的测试图
ideal = invert                                      # 理想的 G 与 F：都是 v ↦ 1 − v
cyc_ideal = cycle_loss(X_te, ideal(ideal(X_te)), y_dom, ideal(ideal(y_dom))).item()
id_ideal = identity_loss(X_te, ideal(X_te), y_dom, ideal(y_dom)).item()
id_copy = identity_loss(X_te, X_te, y_dom, y_dom).item()       # G、F 都原样照抄
print(f"理想翻译 G = F = 1 − v：循环损失 {cyc_ideal:.3f}，恒等损失 {id_ideal:.3f}")
print(f"照抄 G = F = v：恒等损失 {id_copy:.3f}，但 G(x) 仍是白底黑字，骗不过 D_Y")
assert cyc_ideal < 1e-6 and id_copy == 0 and id_ideal > 0.5
# --8<-- [end:ex3]
