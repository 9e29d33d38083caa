# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:elbo]
# 一维线性高斯模型：z ~ N(0, 1)，x | z ~ N(a z + b, s²)。p(x) 与后验 p(z | x) 都有闭式解，
# 可以逐项核对 log p(x) = ELBO + KL(q(z|x) || p(z|x))。全部用 float64。
a, b, s, x = 2.0, 0.5, 0.7, 1.8


def log_normal(v, mean, var):
    return -0.5 * (math.log(2 * math.pi * var) + (v - mean) ** 2 / var)


def kl_normal(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2))，一维。"""
    return 0.5 * (math.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


log_px = log_normal(x, b, a * a + s * s)                   # 边缘分布 p(x) = N(b, a² + s²)
post_var = 1 / (1 + a * a / (s * s))                       # 后验 p(z | x) = N(post_mean, post_var)
post_mean = post_var * a * (x - b) / (s * s)


def elbo(m, v):
    """q(z|x) = N(m, v) 时的 ELBO = E_q[log p(x|z)] - KL(q || p(z))，两项都是闭式。"""
    expected_loglik = -0.5 * math.log(2 * math.pi * s * s) - ((x - a * m - b) ** 2 + a * a * v) / (2 * s * s)
    return expected_loglik - kl_normal(m, v, 0.0, 1.0)


print(f"log p(x) = {log_px:.6f}；后验 p(z|x) = N({post_mean:.4f}, {post_var:.4f})")
print("q 的均值  q 的方差   ELBO        KL(q||后验)")
for m, v in [(0.0, 1.0), (0.3, 0.5), (post_mean, 0.02), (post_mean, post_var)]:
    e, gap = elbo(m, v), kl_normal(m, v, post_mean, post_var)
    print(f"{m:8.4f}  {v:8.4f}  {e:10.6f}  {gap:10.6f}")
    assert abs(e + gap - log_px) < 1e-12 and e <= log_px + 1e-12   # 恒等式成立，ELBO 是下界
assert abs(elbo(post_mean, post_var) - log_px) < 1e-12          # q 等于后验时取等号
print("每一行都有 |ELBO + KL − log p(x)| < 1e-12")
# --8<-- [end:elbo]

# --8<-- [start:kl]
def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I))，对最后一维求和。"""
    return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)


d = 4
mu = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64, device=device)
logvar = torch.tensor([0.0, -1.0, 0.7, -2.0], dtype=torch.float64, device=device)
closed = kl_to_standard_normal(mu, logvar).item()

q = torch.distributions.Normal(mu, (0.5 * logvar).exp())        # 对角高斯：d 个独立的一维正态
p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
builtin = torch.distributions.kl_divergence(q, p).sum().item()

n_mc = 100_000
z = q.sample((n_mc,))                                           # (n_mc, d)
terms = (q.log_prob(z) - p.log_prob(z)).sum(-1)                 # 每个样本的 log q(z) − log p(z)
mc, se = terms.mean().item(), (terms.std() / math.sqrt(n_mc)).item()
print(f"闭式 KL = {closed:.4f}，torch.distributions = {builtin:.4f}")
print(f"蒙特卡洛（{n_mc} 个样本）= {mc:.4f}，标准误 {se:.4f}，差 = {abs(closed - mc) / se:.2f} 个标准误")
assert abs(closed - builtin) < 1e-10
assert abs(closed - mc) <= 4 * se
# --8<-- [end:kl]

# --8<-- [start:grad]
# 估计 d/dμ E_{z~N(μ, σ²)}[z²]。E[z²] = μ² + σ²，所以精确值是 2μ。
mu0, sigma0, n = 2.0, 1.0, 20_000
exact = 2 * mu0
mu_t = torch.tensor(mu0, dtype=torch.float64, device=device, requires_grad=True)
eps = torch.randn(n, dtype=torch.float64, device=device)


def f(v):
    return v ** 2


# 重参数化：z = μ + σ ε，对每个样本求 ∂f(μ + σ ε)/∂μ = f'(z)
z = mu_t + sigma0 * eps
g_reparam = torch.autograd.grad(f(z).sum(), mu_t)[0]            # 各样本梯度之和
per_reparam = 2 * z.detach()                                    # 逐样本：f'(z) = 2z
assert abs(g_reparam.item() - per_reparam.sum().item()) < 1e-8 * n

# 得分函数（REINFORCE）：∇_μ E[f] = E[f(z) ∇_μ log q(z; μ)]，∇_μ log q = (z − μ)/σ²
z_s = (mu0 + sigma0 * torch.randn(n, dtype=torch.float64, device=device))
log_q = torch.distributions.Normal(mu_t, sigma0).log_prob(z_s)  # z_s 不依赖 μ：不对采样求导
g_score = torch.autograd.grad((f(z_s) * log_q).sum(), mu_t)[0]  # 替代损失 f(z)·log q 的梯度
per_score = f(z_s) * (z_s - mu0) / sigma0 ** 2
assert abs(g_score.item() - per_score.sum().item()) < 1e-8 * n

print(f"精确梯度 2μ = {exact:.4f}（μ = {mu0}，σ = {sigma0}，每种方法 {n} 个样本）")
print("估计器      均值      标准误    单样本方差")
stats = {}
for name, g in [("重参数化", per_reparam), ("得分函数", per_score)]:
    mean, var = g.mean().item(), g.var().item()
    se = math.sqrt(var / n)
    stats[name] = var
    print(f"{name}  {mean:8.4f}  {se:8.4f}  {var:10.3f}")
    assert abs(mean - exact) <= 4 * se                          # 两者都无偏：与精确值相差不到 4 个标准误
ratio = stats["得分函数"] / stats["重参数化"]
print(f"方差之比（得分函数 / 重参数化）= {ratio:.1f}")
assert ratio > 10                                               # 精确值：得分函数 87，重参数化 4σ² = 4，比值 21.75（见正文）
# --8<-- [end:grad]

# --8<-- [start:data]
X, y = load_digits(return_X_y=True)                             # 像素为 0..16 的整数
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
# 二值化：像素 ≥ 8 记为 1。伯努利似然给出的 ELBO 是离散 log p(x) 的真正下界（单位：奈特）
X_tr = torch.tensor(X_tr >= 8, dtype=torch.float32, device=device)
X_te = torch.tensor(X_te >= 8, dtype=torch.float32, device=device)
print(f"训练集 {tuple(X_tr.shape)}，测试集 {tuple(X_te.shape)}，值为 1 的像素占 {X_tr.mean().item():.3f}")

# 对照：各像素独立的伯努利模型（拉普拉斯平滑的像素频率），它的 −log p(x) 可以精确算出
p_pix = (X_tr.sum(0) + 1) / (X_tr.shape[0] + 2)
nll_indep = -(X_te * p_pix.log() + (1 - X_te) * (1 - p_pix).log()).sum(1).mean().item()
print(f"独立像素模型的测试 −log p(x)：{nll_indep:.2f} 奈特/图")
# --8<-- [end:data]


# --8<-- [start:model]
class VAE(nn.Module):
    def __init__(self, d_in: int = 64, d_hidden: int = 128, d_latent: int = 8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, 2 * d_latent))
        self.dec = nn.Sequential(nn.Linear(d_latent, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_in))

    def encode(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=-1)                 # 各 (n, d_latent)
        return mu, logvar

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)      # 重参数化：z = μ + σ ⊙ ε
        return self.dec(z), mu, logvar                            # 解码器输出 64 个 logit


def neg_elbo(model, x):
    """每张图的 −ELBO（奈特）= 重构项 −E_q[log p(x|z)]（单样本估计）+ KL(q(z|x) || N(0, I))。"""
    logits, mu, logvar = model(x)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = kl_to_standard_normal(mu, logvar)
    return rec, kl


def linear_params(d_in: int, d_out: int) -> int:
    return d_out * (d_in + 1)


model = VAE().to(device)
formula = {"enc.0": linear_params(64, 128), "enc.2": linear_params(128, 2 * 8),
           "dec.0": linear_params(8, 128), "dec.2": linear_params(128, 64)}
print("层     公式   numel")
for name, count in formula.items():
    layer = model.get_submodule(name)
    numel = sum(p.numel() for p in layer.parameters())
    print(f"{name}  {count:5d}  {numel:5d}")
    assert numel == count
total = sum(p.numel() for p in model.parameters())
print(f"合计   {sum(formula.values()):5d}  {total:5d}")
assert total == sum(formula.values())
# --8<-- [end:model]


# --8<-- [start:train]
def train(model, x_tr, epochs=120, batch=128, lr=0.003, seed=0):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        for idx in torch.randperm(len(x_tr), generator=gen).split(batch):
            rec, kl = neg_elbo(model, x_tr[idx.to(x_tr.device)])
            loss = (rec + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def evaluate(model, x, samples=20):
    """测试集上每张图的平均 −ELBO、重构项、KL 项（重构项对 samples 个 z 取平均）。"""
    rec = torch.stack([neg_elbo(model, x)[0] for _ in range(samples)]).mean(0)
    kl = kl_to_standard_normal(*model.encode(x))
    return (rec + kl).mean().item(), rec.mean().item(), kl.mean().item()


train(model, X_tr)
model.eval()
nelbo, rec, kl = evaluate(model, X_te)
print(f"测试集 −ELBO = {nelbo:.2f} 奈特/图 = 重构 {rec:.2f} + KL {kl:.2f}")
# 上限 19.5：种子 0..9 的离线运行（初始化、打乱顺序与 ε 都换种子）测试 −ELBO 在 18.23 与 18.48 之间，
# 平均 18.35，最差 18.48（种子 0）；留约 1 奈特（种子间极差的 4 倍）给 GPU 上不同的舍入与随机数
assert nelbo < 19.5
assert nelbo < nll_indep                                         # 比独立像素模型的精确 NLL 好
# --8<-- [end:train]

# --8<-- [start:iwae]
@torch.no_grad()
def log_px_iw(model, x, k=200):
    """重要性采样估计 log p(x) ≈ log (1/k) Σ p(x|z_i) p(z_i) / q(z_i|x)，z_i ~ q(z|x)。"""
    mu, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(k, *mu.shape, device=x.device)   # (k, n, d)
    logits = model.dec(z)
    log_lik = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    normal = torch.distributions.Normal
    log_prior = normal(0.0, 1.0).log_prob(z).sum(-1)
    log_q = normal(mu, std).log_prob(z).sum(-1)
    return (torch.logsumexp(log_lik + log_prior - log_q, dim=0) - math.log(k)).mean().item()


torch.manual_seed(1)
nll_iw = -log_px_iw(model, X_te)
print(f"重要性采样（k = 200）估计的测试 −log p(x) = {nll_iw:.2f} 奈特/图，比 −ELBO 低 {nelbo - nll_iw:.2f}")
assert nll_iw < nelbo                                            # ELBO 是下界：−ELBO 高于 −log p(x) 的估计
# --8<-- [end:iwae]

# --8<-- [start:samples]
with torch.no_grad():
    torch.manual_seed(2)
    z = torch.randn(64, 8, device=device)                        # 从先验 N(0, I) 采样
    probs = torch.sigmoid(model.dec(z)).cpu()                     # 每个像素为 1 的概率

fig, axes = plt.subplots(8, 8, figsize=(5, 5))
for ax, img in zip(axes.flat, probs):
    ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
fig.savefig("vae_samples.svg", bbox_inches="tight")
plt.close(fig)
print(f"64 个先验样本，像素概率的均值 {probs.mean().item():.3f}（训练集中为 1 的像素占 {X_tr.mean().item():.3f}）")
assert abs(probs.mean().item() - X_tr.mean().item()) < 0.02      # 先验样本的平均「墨量」与训练集相当
# --8<-- [end:samples]

# --8<-- [start:interp]
y_te_t = torch.tensor(y_te)
i0, i1 = (y_te_t == 0).nonzero()[0].item(), (y_te_t == 6).nonzero()[0].item()   # 第一个 0 和第一个 6
with torch.no_grad():
    mu_pair, _ = model.encode(X_te[[i0, i1]])
    t = torch.linspace(0, 1, 9, device=device)[:, None]
    latent = torch.sigmoid(model.dec((1 - t) * mu_pair[0] + t * mu_pair[1])).cpu()
    pixel = ((1 - t) * X_te[i0] + t * X_te[i1]).cpu()             # 对照：直接在像素空间线性混合

fig, axes = plt.subplots(2, 9, figsize=(9, 2.3))
for j in range(9):
    for row, imgs in enumerate([latent, pixel]):
        axes[row, j].imshow(imgs[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[row, j].axis("off")
    axes[0, j].set_title(f"t={t[j].item():.3g}", fontsize=8)
fig.savefig("vae_interpolation.svg", bbox_inches="tight")
plt.close(fig)
print(f"测试图 {i0}（数字 0）与 {i1}（数字 6）之间的 9 步插值")
# --8<-- [end:interp]
