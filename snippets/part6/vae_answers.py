# --8<-- [start:imports]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
X_tr = torch.tensor(X_tr >= 8, dtype=torch.float32, device=device)
X_te = torch.tensor(X_te >= 8, dtype=torch.float32, device=device)


def kl_to_standard_normal(mu, logvar):
    return 0.5 * (logvar.exp() + mu ** 2 - 1 - logvar).sum(-1)


class VAE(nn.Module):
    def __init__(self, d_in=64, d_hidden=128, d_latent=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, 2 * d_latent))
        self.dec = nn.Sequential(nn.Linear(d_latent, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_in))

    def encode(self, x):
        return self.enc(x).chunk(2, dim=-1)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self.dec(z), mu, logvar


def neg_elbo(model, x):
    logits, mu, logvar = model(x)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    return rec, kl_to_standard_normal(mu, logvar)


def train(model, x_tr, epochs=120, batch=128, lr=0.003, seed=0, beta=1.0):
    """与正文相同；beta 是 KL 项的权重（正文为 1）。"""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        for idx in torch.randperm(len(x_tr), generator=gen).split(batch):
            rec, kl = neg_elbo(model, x_tr[idx.to(x_tr.device)])
            loss = (rec + beta * kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def evaluate(model, x, samples=20):
    rec = torch.stack([neg_elbo(model, x)[0] for _ in range(samples)]).mean(0)
    kl = kl_to_standard_normal(*model.encode(x))
    return (rec + kl).mean().item(), rec.mean().item(), kl.mean().item()
# --8<-- [end:imports]


# --8<-- [start:ex1]
mu0, sigma0, n = 2.0, 1.0, 20_000
z = mu0 + sigma0 * torch.randn(n, dtype=torch.float64, device=device)
score = (z - mu0) / sigma0 ** 2                                  # ∇_μ log q(z; μ)
estimators = {
    "重参数化": 2 * z,
    "得分函数": z ** 2 * score,
    "得分函数 − 基线": (z ** 2 - (mu0 ** 2 + sigma0 ** 2)) * score,   # 基线 b = E[f(z)] = μ² + σ²
}
print("估计器            均值      标准误    单样本方差")
var = {}
for name, g in estimators.items():
    var[name] = g.var().item()
    se = math.sqrt(var[name] / n)
    print(f"{name:12s}  {g.mean().item():8.4f}  {se:8.4f}  {var[name]:10.3f}")
    assert abs(g.mean().item() - 2 * mu0) <= 4 * se              # 减去基线仍然无偏
print(f"基线把方差降到 {var['得分函数 − 基线'] / var['得分函数']:.2f} 倍，"
      f"仍是重参数化的 {var['得分函数 − 基线'] / var['重参数化']:.1f} 倍")
assert var["得分函数 − 基线"] < 0.6 * var["得分函数"]                # 精确值 42 对 87
assert var["得分函数 − 基线"] > 5 * var["重参数化"]                  # 精确值 42 对 4
# --8<-- [end:ex1]

# --8<-- [start:ex2]
torch.manual_seed(0)
vae8 = train(VAE(d_latent=8).to(device), X_tr)
torch.manual_seed(0)
vae2 = train(VAE(d_latent=2).to(device), X_tr)
res = {}
for d, m in [(8, vae8), (2, vae2)]:
    res[d] = evaluate(m, X_te)
    print(f"潜变量 {d} 维：测试 −ELBO = {res[d][0]:.2f} = 重构 {res[d][1]:.2f} + KL {res[d][2]:.2f}")
assert res[2][0] > res[8][0] and res[2][1] > res[8][1]          # 2 维：总的界和重构都更差

with torch.no_grad():
    mu2 = vae2.encode(X_te)[0].cpu()
    mu2_tr = vae2.encode(X_tr)[0].cpu()
    g = torch.linspace(-2.5, 2.5, 12)
    grid = torch.stack(torch.meshgrid(g, -g, indexing="xy"), -1).reshape(-1, 2).to(device)
    probs = torch.sigmoid(vae2.dec(grid)).cpu()                  # 按网格逐点解码
nearest = torch.cdist(mu2, mu2_tr).topk(5, largest=False).indices        # 每个测试编码在训练编码中的 5 个近邻
knn_acc = (torch.as_tensor(y_tr)[nearest].mode(1).values == torch.as_tensor(y_te)).float().mean().item()
print(f"2 维编码上的 5-近邻分类：测试准确率 {knn_acc:.3f}（瞎猜 0.1）")
assert knn_acc > 0.5                                             # 同一数字的编码聚在一起：近邻多半同类
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.6))
sc = ax0.scatter(mu2[:, 0], mu2[:, 1], c=y_te, cmap="tab10", s=10)
ax0.legend(*sc.legend_elements(), fontsize=7, loc="upper right", ncol=2)
ax0.set_xlabel("μ₁")
ax0.set_ylabel("μ₂")
ax0.set_title("测试集的编码均值 μ（颜色为数字）")
tiles = F.pad(probs.reshape(-1, 8, 8), (1, 1, 1, 1))               # 每格四周留 1 像素空白
canvas = tiles.reshape(12, 12, 10, 10).permute(0, 2, 1, 3).reshape(120, 120)
ax1.imshow(canvas, cmap="gray_r", extent=(-2.5, 2.5, -2.5, 2.5))
ax1.set_title("在 [−2.5, 2.5]² 的网格上解码")
fig.savefig("vae_latent2d.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:ex2]

# --8<-- [start:ex3]
torch.manual_seed(0)
vae_b0 = train(VAE(d_latent=8).to(device), X_tr, beta=0.0)      # 去掉 KL 项
with torch.no_grad():
    mu_b0, logvar_b0 = vae_b0.encode(X_te)
    mu_b1, logvar_b1 = vae8.encode(X_te)
b0, b1 = evaluate(vae_b0, X_te), res[8]
print("          测试 −ELBO   重构     KL     编码 μ 各维的标准差（平均）  σ 的中位数")
for name, r, m, lv in [("β = 1", b1, mu_b1, logvar_b1), ("β = 0", b0, mu_b0, logvar_b0)]:
    print(f"{name}   {r[0]:9.2f}  {r[1]:6.2f}  {r[2]:7.2f}  {m.std(0).mean().item():12.2f}"
          f"             {(0.5 * lv).exp().median().item():.4f}")
assert b0[1] < b1[1]                                             # 没有 KL 项：重构更好
assert b0[2] > 10 * b1[2] and b0[0] > b1[0]                      # 但 KL 与 −ELBO 都大得多
assert (0.5 * logvar_b0).exp().median() < 0.1 < (0.5 * logvar_b1).exp().median()
# --8<-- [end:ex3]
