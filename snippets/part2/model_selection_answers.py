# --8<-- [start:imports]
import math

import numpy as np
import torch
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
rng = np.random.default_rng(1)
d, eta = 20, 0.1
beta = np.zeros(d)
beta[:3] = [1.0, -0.8, 0.6]


def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((n, d))
    y = np.sign(X @ beta)
    return X, np.where(rng.random(n) < eta, -y, y)


def true_accuracy(W: np.ndarray) -> np.ndarray:
    cos = beta @ W / (np.linalg.norm(beta) * np.linalg.norm(W, axis=0))
    return (1 - eta) - (1 - 2 * eta) * np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi


def random_configs(X: np.ndarray, y: np.ndarray, M: int) -> np.ndarray:
    W = np.zeros((d, M))
    for j in range(M):
        mask = rng.random(d) < 0.5
        mask[0] |= not mask.any()
        lam = 10.0 ** rng.uniform(-2, 3)
        Xs = X[:, mask]
        W[mask, j] = np.linalg.solve(Xs.T @ Xs + lam * np.eye(mask.sum()), Xs.T @ y)
    return W


R, Ms, sizes = 300, (1, 10, 50), (100, 1000)
gaps = {(M, n): [] for M in Ms for n in sizes}
for _ in range(R):
    X_tr, y_tr = sample(100)
    X_te, y_te = sample(1000)
    W = random_configs(X_tr, y_tr, 50)
    acc_new = true_accuracy(W)
    for n in sizes:                                     # 测试集取前 100 个或全部 1000 个
        acc_te = (np.sign(X_te[:n] @ W) == y_te[:n, None]).mean(axis=0)
        for M in Ms:                                    # 只在前 M 个配置中挑
            j = acc_te[:M].argmax()
            gaps[(M, n)].append(acc_te[j] - acc_new[j])

print("按测试集选出的配置：报告的测试准确率 − 新数据上的准确率（均值 ± 标准误）")
res = {}
for n in sizes:
    for M in Ms:
        g = np.array(gaps[(M, n)])
        res[(M, n)] = (g.mean(), g.std(ddof=1) / math.sqrt(R))
        print(f"  测试集 {n:>4} 个，{M:>2} 个配置：{res[(M, n)][0]:+.4f} ± {res[(M, n)][1]:.4f}")
for n in sizes:
    assert abs(res[(1, n)][0]) < 3 * res[(1, n)][1]     # 只试 1 个配置：没有偏差（3 个标准误之内）
assert res[(1, 100)][0] < res[(10, 100)][0] < res[(50, 100)][0]  # 100 个测试样本：配置越多，偏差越大
assert all(res[(M, 1000)][0] < 0.005 for M in Ms)      # 1000 个测试样本：偏差都小于 0.005，
assert res[(50, 1000)][0] < res[(50, 100)][0] / math.sqrt(10)  # 比按 1/√n 缩小还要小
# --8<-- [end:ex1]


# --8<-- [start:ex2]
rng = np.random.default_rng(2)
n, d_noise, k_keep, R2 = 50, 2000, 20, 10
wrong, right = [], []
for _ in range(R2):
    X = rng.standard_normal((n, d_noise))               # 特征是纯噪声
    y = rng.permutation(np.repeat([0, 1], n // 2))      # 标签与特征无关：任何方法的真实准确率都是 0.5
    cv = KFold(n_splits=5, shuffle=True, random_state=0)
    keep = SelectKBest(f_classif, k=k_keep).fit(X, y).get_support()  # 错误：用全部数据挑特征
    wrong.append(cross_val_score(LogisticRegression(), X[:, keep], y, cv=cv).mean())
    pipe = make_pipeline(SelectKBest(f_classif, k=k_keep), LogisticRegression())  # 正确：每折内部挑
    right.append(cross_val_score(pipe, X, y, cv=cv).mean())
wrong, right = np.array(wrong), np.array(right)


def se(a: np.ndarray) -> float:
    return a.std(ddof=1) / math.sqrt(len(a))


print(f"先挑特征再交叉验证：{wrong.mean():.3f} ± {se(wrong):.3f}")
print(f"每折内部挑特征：    {right.mean():.3f} ± {se(right):.3f}")
assert wrong.mean() > 0.8                               # 错误的做法：远高于 0.5
assert abs(right.mean() - 0.5) < 3 * se(right)          # 正确的做法：与 0.5 相差不到 3 个标准误
# --8<-- [end:ex2]


# --8<-- [start:ex3]
gen = torch.Generator().manual_seed(3)
f64 = torch.float64
sigma, B, G = 0.3, 2000, 500


def f_true(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2.5 * x + 0.5)


x_eval = (torch.rand(G, generator=gen, dtype=f64) * 2 - 1).to(device)


def bias_variance(n: int, p: int) -> tuple[float, float]:
    X = (torch.rand(B, n, generator=gen, dtype=f64) * 2 - 1).to(device)
    Y = f_true(X) + sigma * torch.randn(B, n, generator=gen, dtype=f64).to(device)
    powers = torch.arange(p + 1, device=device)
    coef = torch.linalg.lstsq(X.unsqueeze(-1) ** powers, Y.unsqueeze(-1)).solution
    pred = ((x_eval.unsqueeze(-1) ** powers) @ coef).squeeze(-1)   # (B, G)
    return ((pred.mean(0) - f_true(x_eval)) ** 2).mean().item(), pred.var(0, unbiased=False).mean().item()


degrees = range(9)
bv = {n: [bias_variance(n, p) for p in degrees] for n in (30, 120)}
print("次数  偏差²(n=30)  方差(n=30)  偏差²(n=120)  方差(n=120)")
for p in degrees:
    (b30, v30), (b120, v120) = bv[30][p], bv[120][p]
    print(f"{p:>3}   {b30:.4f}      {v30:.4f}     {b120:.4f}       {v120:.4f}")
best = {n: int(np.argmin([b + v for b, v in bv[n]])) for n in bv}
print(f"期望测试误差最小的次数：n=30 时 {best[30]}，n=120 时 {best[120]}")
assert all(bv[120][p][1] < bv[30][p][1] / 3 for p in degrees)       # 方差至少降到三分之一
assert all(abs(bv[120][p][0] - bv[30][p][0]) < 0.01 for p in range(3))  # 低次模型的偏差²几乎不变
assert best[120] > best[30]                                          # 数据多了，最好的次数变高
assert bv[120][7][0] < 5e-5 and bv[120][8][0] < 5e-5                 # n=120 时 7、8 次的偏差²回到 0.0000
# --8<-- [end:ex3]


# --8<-- [start:ex4]
rng = np.random.default_rng(4)
mu_tr, mu_te = np.array([0.0, 0.0]), np.array([1.0, 1.0])


def draw(mu: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    X = mu + rng.standard_normal((n, 2))
    p1 = 1 / (1 + np.exp(-4 * (X[:, 1] - 0.5 * X[:, 0] ** 2 + 0.5)))
    return X, (rng.random(n) < p1).astype(int)


def quad(X: np.ndarray) -> np.ndarray:
    return np.c_[X, X[:, 0] ** 2]                       # 特征 (x₁, x₂, x₁²)：逻辑回归恰好能表示 p(y | x)


def w_known(X: np.ndarray) -> np.ndarray:
    return np.exp(X @ (mu_te - mu_tr) - (mu_te @ mu_te - mu_tr @ mu_tr) / 2)


X_tgt, y_tgt = draw(mu_te, 100_000)
acc = {"线性，不加权": [], "线性，加权": [], "二次，不加权": [], "二次，加权": []}
for _ in range(20):
    X_s, y_s = draw(mu_tr, 500)
    w = w_known(X_s)
    for name, feat in (("线性", lambda X: X), ("二次", quad)):
        for how, sw in (("不加权", None), ("加权", w)):
            model = LogisticRegression().fit(feat(X_s), y_s, sample_weight=sw)
            acc[f"{name}，{how}"].append(model.score(feat(X_tgt), y_tgt))
acc = {k: np.array(v) for k, v in acc.items()}
for k, v in acc.items():
    print(f"{k}：测试分布上的准确率 {v.mean():.4f} ± {v.std(ddof=1) / math.sqrt(len(v)):.4f}")
gain = {m: acc[f"{m}，加权"] - acc[f"{m}，不加权"] for m in ("线性", "二次")}
for m, g in gain.items():
    print(f"{m}模型：加权带来的提高 {g.mean():+.4f} ± {g.std(ddof=1) / math.sqrt(len(g)):.4f}")
assert gain["线性"].mean() > 0.05                      # 设定错误的线性模型：加权大有帮助
assert gain["二次"].mean() < 0                          # 设定正确的二次模型：加权反而略差
assert acc["二次，加权"].std() > acc["二次，不加权"].std()    # 加权后各次之间的波动更大
assert acc["二次，不加权"].mean() > acc["线性，加权"].mean()  # 换对模型比加权更有效
# --8<-- [end:ex4]
