# --8<-- [start:imports]
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
Xtr = torch.tensor(X_tr, dtype=torch.float32, device=device)
Xte = torch.tensor(X_te, dtype=torch.float32, device=device)


def autoencoder(k: int, h: int = 128) -> tuple[nn.Sequential, nn.Sequential]:
    encoder = nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, k))
    decoder = nn.Sequential(nn.Linear(k, h), nn.ReLU(), nn.Linear(h, 64), nn.Sigmoid())
    return encoder, decoder


def train(k: int, seed: int, noise: float = 0.0, epochs: int = 100, batch: int = 128):
    """与正文的 train 相同。"""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder, decoder = autoencoder(k)
    encoder, decoder = encoder.to(device), decoder.to(device)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(Xtr) + batch - 1) // batch))
    for _ in range(epochs):
        perm = torch.randperm(len(Xtr), generator=gen).to(device)
        for i in range(0, len(perm), batch):
            x = Xtr[perm[i:i + batch]]
            x_in = x + noise * torch.randn(x.shape, generator=gen).to(device) if noise else x
            loss = F.mse_loss(decoder(encoder(x_in)), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return encoder.eval(), decoder.eval()
# --8<-- [end:imports]

# --8<-- [start:ex1]
results = {}
print(" k | 自编码器 | PCA")
for k in [4, 16, 32]:
    encoder, decoder = train(k=k, seed=0)
    with torch.no_grad():
        ae = F.mse_loss(decoder(encoder(Xte)), Xte).item()
    pca = PCA(n_components=k).fit(X_tr)
    pc = float(((pca.inverse_transform(pca.transform(X_te)) - X_te) ** 2).mean())
    results[k] = (ae, pc)
    print(f"{k:2d} | {ae:8.4f} | {pc:.4f}")
assert results[4][0] < results[4][1] and results[16][0] < results[16][1]   # 小瓶颈：自编码器更低
assert results[32][1] < results[32][0]                                    # k=32：PCA 更低
# --8<-- [end:ex1]

# --8<-- [start:ex2]
X64 = torch.tensor(X_tr, dtype=torch.float64, device=device)
Xc = X64 - X64.mean(dim=0)
k = 8
torch.manual_seed(0)
W_enc = torch.randn(k, 64, dtype=torch.float64, device=device)
for _ in range(300):                                          # 与正文相同的交替最小二乘
    W_dec = torch.linalg.lstsq(Xc @ W_enc.T, Xc).solution.T
    W_enc = torch.linalg.pinv(W_dec)


def loss(W_d: torch.Tensor, W_e: torch.Tensor) -> float:
    return ((Xc @ W_e.T @ W_d.T - Xc) ** 2).mean().item()


C = torch.randn(k, k, dtype=torch.float64, device=device)    # 任意一个可逆矩阵
print(f"原来的损失 {loss(W_dec, W_enc):.8f}，换成 (W_dec C, C^-1 W_enc) 后 "
      f"{loss(W_dec @ C, torch.linalg.solve(C, W_enc)):.8f}")
assert abs(loss(W_dec @ C, torch.linalg.solve(C, W_enc)) - loss(W_dec, W_enc)) < 1e-12

Q, _ = torch.linalg.qr(W_dec)                                 # 解码器列空间的一组正交归一基 (64, 8)
Z = Xc @ Q                                                    # 数据在这组基下的坐标 (n, 8)
evals, R = torch.linalg.eigh(Z.T @ Z / (len(Xc) - 1))         # 8×8 的协方差矩阵再做一次特征分解
evals, R = evals.flip(0), R.flip(1)                           # 从大到小
recovered = Q @ R                                             # (64, 8)：恢复出的主成分
pca = PCA(n_components=k).fit(X_tr)
V = torch.tensor(pca.components_.T, dtype=torch.float64, device=device)
cos = (recovered * V).sum(dim=0).abs()                        # 逐列比较，符号不定
print(f"恢复的方向与 PCA 主成分的 |cos|：最小 {cos.min().item():.10f}")
print(f"恢复的方差与 PCA 的 explained_variance_ 最大相对差小于 1e-10："
      f"{bool(((evals.cpu().numpy() - pca.explained_variance_) / pca.explained_variance_).max() < 1e-10)}")
assert (1 - cos).max().item() < 1e-10
assert np.allclose(evals.cpu().numpy(), pca.explained_variance_, rtol=1e-10, atol=0)
# --8<-- [end:ex2]

# --8<-- [start:ex3]
sigma = 0.3
n = len(Xc)
S = Xc.T @ Xc / n                                             # 64×64 协方差矩阵
I = torch.eye(64, dtype=torch.float64, device=device)
W_star = S @ torch.linalg.inv(S + sigma ** 2 * I)             # 线性去噪器的闭式解 S (S + σ²I)^-1


def expected_loss(W: torch.Tensor) -> torch.Tensor:
    """对高斯噪声取期望后的损失：||Xc - Xc W^T||² / n + σ² ||W||_F²（对所有像素取平均前）。"""
    return ((Xc - Xc @ W.T) ** 2).sum() / n + sigma ** 2 * (W ** 2).sum()


W = W_star.clone().requires_grad_()
expected_loss(W).backward()
print(f"闭式解处期望损失的梯度，最大绝对值小于 1e-10：{bool(W.grad.abs().max() < 1e-10)}")
assert W.grad.abs().max().item() < 1e-10

lam = torch.linalg.eigvalsh(S).flip(0)
shrink = lam / (lam + sigma ** 2)                             # W* 在第 i 个主成分方向上的放大倍数
print(f"第 1、8、30 个主成分方向上的系数：{shrink[0].item():.3f}、{shrink[7].item():.3f}、{shrink[29].item():.3f}")

mu = X64.mean(dim=0)
Xte64 = torch.tensor(X_te, dtype=torch.float64, device=device)
gen = torch.Generator().manual_seed(1234)                     # 与正文相同的测试噪声
Xn = Xte64 + sigma * torch.randn(Xte64.shape, generator=gen).to(device=device, dtype=torch.float64)
ident = ((Xn - Xte64) ** 2).mean().item()                     # 恒等映射：输出带噪输入本身
ridge = (((Xn - mu) @ W_star.T + mu - Xte64) ** 2).mean().item()
print(f"带噪测试输入的 MSE：恒等映射 {ident:.4f}，线性去噪器 W* {ridge:.4f}")
assert ridge < 0.5 * ident and shrink[0] > 0.8 > 0.2 > shrink[29]
# --8<-- [end:ex3]
