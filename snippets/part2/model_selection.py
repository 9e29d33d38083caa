# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, check_cv, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # torch 的随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
rng = np.random.default_rng(0)          # numpy 部分的随机数
f64 = torch.float64
# --8<-- [end:setup]


# --8<-- [start:select-setup]
d, eta = 20, 0.1                   # 特征维数；标签被翻转的概率
beta = np.zeros(d)
beta[:3] = [1.0, -0.8, 0.6]        # 只有前 3 个特征有用


def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(0, I)，y = sign(βᵀx)，再以概率 η 翻转。返回 X: (n, d)，y: (n,)，取值 ±1。"""
    X = rng.standard_normal((n, d))
    y = np.sign(X @ beta)
    return X, np.where(rng.random(n) < eta, -y, y)


def true_accuracy(W: np.ndarray) -> np.ndarray:
    """W: (d, M)，每列是一个分类器 sign(wᵀx)。返回 (M,)：它们在无穷多新数据上的准确率。"""
    cos = beta @ W / (np.linalg.norm(beta) * np.linalg.norm(W, axis=0))
    theta = np.arccos(np.clip(cos, -1.0, 1.0))          # w 与 β 的夹角
    return (1 - eta) - (1 - 2 * eta) * theta / np.pi


def accuracy(X: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (np.sign(X @ W) == y[:, None]).mean(axis=0)  # (M,)


def random_configs(X: np.ndarray, y: np.ndarray, M: int) -> np.ndarray:
    """随机搜索 M 组超参数（用哪些特征、岭回归系数 λ），各训练一个线性分类器，返回 W: (d, M)。"""
    W = np.zeros((d, M))
    for j in range(M):
        mask = rng.random(d) < 0.5                      # 每个特征以 1/2 的概率选用
        mask[0] |= not mask.any()                       # 至少选一个
        lam = 10.0 ** rng.uniform(-2, 3)                # λ 在 [1e-2, 1e3] 上对数均匀
        Xs = X[:, mask]
        W[mask, j] = np.linalg.solve(Xs.T @ Xs + lam * np.eye(mask.sum()), Xs.T @ y)
    return W


n_tr, n_va, n_te, M = 100, 100, 100, 50
X_tr, y_tr = sample(n_tr)
X_va, y_va = sample(n_va)
X_te, y_te = sample(n_te)
W = random_configs(X_tr, y_tr, M)
acc_va, acc_te, acc_new = accuracy(X_va, y_va, W), accuracy(X_te, y_te, W), true_accuracy(W)
j_te, j_va = acc_te.argmax(), acc_va.argmax()
print(f"按测试集选（编号 {j_te}）：测试准确率 {acc_te[j_te]:.3f}，新数据上 {acc_new[j_te]:.3f}")
print(f"按验证集选（编号 {j_va}）：验证准确率 {acc_va[j_va]:.3f}，测试准确率 {acc_te[j_va]:.3f}，"
      f"新数据上 {acc_new[j_va]:.3f}")
print(f"{M} 个配置在新数据上最好的是 {acc_new.max():.3f}；"
      f"{n_te} 个样本上准确率的标准误约为 {math.sqrt(acc_new[j_va] * (1 - acc_new[j_va]) / n_te):.3f}")

X_big, y_big = sample(200_000)                          # 用大量新样本检验准确率公式
measured = accuracy(X_big, y_big, W)
se_big = np.sqrt(acc_new * (1 - acc_new) / len(y_big))
print(f"公式与 {len(y_big)} 个新样本之差最大为 {np.abs(measured - acc_new).max():.4f}"
      f"（{np.abs(measured - acc_new).max() / se_big.max():.1f} 个标准误）")
assert np.all(np.abs(measured - acc_new) < 4 * se_big)  # 50 个配置的公式都在 4 个标准误之内
# --8<-- [end:select-setup]


# --8<-- [start:select-repeat]
R = 300
gap = {"按测试集选，报告测试准确率": [], "按验证集选，报告验证准确率": [], "按验证集选，报告测试准确率": []}
for _ in range(R):                                      # 每次重新抽取三份数据和 50 个配置
    X_tr, y_tr = sample(n_tr)
    X_va, y_va = sample(n_va)
    X_te, y_te = sample(n_te)
    W = random_configs(X_tr, y_tr, M)
    acc_va, acc_te, acc_new = accuracy(X_va, y_va, W), accuracy(X_te, y_te, W), true_accuracy(W)
    j_te, j_va = acc_te.argmax(), acc_va.argmax()
    gap["按测试集选，报告测试准确率"].append(acc_te[j_te] - acc_new[j_te])
    gap["按验证集选，报告验证准确率"].append(acc_va[j_va] - acc_new[j_va])
    gap["按验证集选，报告测试准确率"].append(acc_te[j_va] - acc_new[j_va])

print(f"报告的准确率 − 新数据上的准确率（{R} 次重复的均值 ± 标准误）：")
mean_se = {}
for name, g in gap.items():
    g = np.array(g)
    mean_se[name] = (g.mean(), g.std(ddof=1) / math.sqrt(R))
    print(f"  {name}：{mean_se[name][0]:+.4f} ± {mean_se[name][1]:.4f}")

for name in ("按测试集选，报告测试准确率", "按验证集选，报告验证准确率"):
    m, se = mean_se[name]
    assert m > 5 * se                                   # 用来挑选的分数偏高，超过 5 个标准误
m, se = mean_se["按验证集选，报告测试准确率"]
assert abs(m) < 3 * se                                  # 没参与挑选的测试集：偏差在 3 个标准误之内
# --8<-- [end:select-repeat]


# --8<-- [start:kfold]
def kfold_indices(n: int, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """把 0..n-1 打乱后依次切成 k 段（前 n % k 段各多 1 个）；第 i 段作验证，其余作训练。"""
    perm = np.arange(n)
    np.random.RandomState(seed).shuffle(perm)           # 与 scikit-learn 的 KFold 用同一种打乱
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    folds, start = [], 0
    for size in sizes:
        val = np.sort(perm[start:start + size])
        folds.append((np.setdiff1d(np.arange(n), val), val))  # 两组下标都按升序
        start += size
    return folds


def cross_val(estimator, X: np.ndarray, y: np.ndarray, folds) -> np.ndarray:
    scores = []
    for tr, va in folds:
        model = clone(estimator).fit(X[tr], y[tr])      # 每折都从一个未训练的副本开始
        scores.append(model.score(X[va], y[va]))        # 分类器的 score 是准确率
    return np.array(scores)


X_dig, y_dig = load_digits(return_X_y=True)
X_dev, X_test, y_dev, y_test = train_test_split(X_dig, y_dig, test_size=0.25, stratify=y_dig, random_state=0)
K = 5
folds = kfold_indices(len(X_dev), K, seed=0)
cv = KFold(n_splits=K, shuffle=True, random_state=0)
same = all(np.array_equal(a, c) and np.array_equal(b, e) for (a, b), (c, e) in zip(folds, cv.split(X_dev)))
print(f"开发集 {len(X_dev)} 个、测试集 {len(X_test)} 个；各折验证集大小 {[len(va) for _, va in folds]}")
print("自己的划分与 KFold 的下标完全相同：", same)

knn = KNeighborsClassifier(n_neighbors=3)
ours = cross_val(knn, X_dev, y_dev, folds)
theirs = cross_val_score(knn, X_dev, y_dev, cv=cv)
print("各折准确率：", np.round(ours, 4), "平均", round(ours.mean(), 4))
print("与 cross_val_score 逐个相等：", np.array_equal(ours, theirs))
print("分类器写 cv=5 时实际用的是：", type(check_cv(5, y_dev, classifier=True)).__name__)
assert same and np.array_equal(ours, theirs)
assert isinstance(check_cv(5, y_dev, classifier=True), StratifiedKFold)
# --8<-- [end:kfold]


# --8<-- [start:kfold-select]
ks = [1, 3, 5, 9, 15, 25]
cv_acc = {k: cross_val_score(KNeighborsClassifier(n_neighbors=k), X_dev, y_dev, cv=cv).mean() for k in ks}
best_k = max(ks, key=cv_acc.get)                        # 并列时取较小的 k
final = KNeighborsClassifier(n_neighbors=best_k).fit(X_dev, y_dev)  # 用整个开发集重新训练
test_acc = final.score(X_test, y_test)                  # 测试集只用这一次
print("5 折交叉验证准确率：", "，".join(f"k={k} {a:.4f}" for k, a in cv_acc.items()))
print(f"选中 k = {best_k}；在测试集上的准确率 {test_acc:.4f}"
      f"（标准误约为 {math.sqrt(test_acc * (1 - test_acc) / len(y_test)):.3f}）")
assert best_k == 1 and all(cv_acc[a] >= cv_acc[b] for a, b in zip(ks, ks[1:]))  # k 增大时交叉验证准确率不升
assert cv_acc[1] > cv_acc[25]
assert 0.97 <= test_acc < cv_acc[best_k]                # 测试准确率略低于选中配置的交叉验证分数……
assert cv_acc[best_k] - test_acc < math.sqrt(test_acc * (1 - test_acc) / len(y_test))  # ……差不到一个标准误
# --8<-- [end:kfold-select]


# --8<-- [start:bias-variance]
def f_true(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2.5 * x + 0.5)


sigma, n_bv, B, G = 0.3, 30, 2000, 500                  # 噪声标准差、每个训练集的样本数、训练集个数、测试点数
x_eval = (torch.rand(G, generator=gen, dtype=f64) * 2 - 1).to(device)          # (G,) 固定的测试输入
X_bv = (torch.rand(B, n_bv, generator=gen, dtype=f64) * 2 - 1).to(device)      # (B, n) B 个训练集
Y_bv = f_true(X_bv) + sigma * torch.randn(B, n_bv, generator=gen, dtype=f64).to(device)
eps = sigma * torch.randn(B, G, generator=gen, dtype=f64).to(device)           # 测试标签的噪声


def poly_fit_predict(X: torch.Tensor, Y: torch.Tensor, x_new: torch.Tensor, p: int) -> torch.Tensor:
    """对 B 个训练集各拟合一个 p 次多项式（最小二乘），返回它们在 x_new 上的预测 (B, G)。"""
    powers = torch.arange(p + 1, device=X.device)
    V = X.unsqueeze(-1) ** powers                               # (B, n, p+1)
    coef = torch.linalg.lstsq(V, Y.unsqueeze(-1)).solution      # (B, p+1, 1)
    return ((x_new.unsqueeze(-1) ** powers) @ coef).squeeze(-1)  # (G, p+1) @ (B, p+1, 1) -> (B, G)


f_eval = f_true(x_eval)
degrees = list(range(9))
table = {}
print("次数  偏差²    方差      噪声    三项之和  测试误差  差/标准误")
for p in degrees:
    pred = poly_fit_predict(X_bv, Y_bv, x_eval, p)              # (B, G)
    bias2 = ((pred.mean(0) - f_eval) ** 2).mean().item()
    var = pred.var(0, unbiased=False).mean().item()
    err_b = ((f_eval + eps - pred) ** 2).mean(1)                # (B,) 每个训练集的测试误差
    diff_b = err_b - ((f_eval - pred) ** 2).mean(1) - sigma ** 2  # (B,) 每个训练集上的蒙特卡洛误差
    err, total = err_b.mean().item(), bias2 + var + sigma ** 2
    z = (err - total) / (diff_b.std() / math.sqrt(B)).item()
    table[p] = (bias2, var, total, err, z)
    print(f"{p:>3}  {bias2:.4f}  {var:.4f}  {sigma ** 2:.4f}  {total:.4f}    {err:.4f}    {z:+.2f}")

errs = [table[p][3] for p in degrees]
best = int(np.argmin(errs))
print(f"测试误差最小的是 {best} 次多项式")
assert all(abs(table[p][4]) < 3 for p in degrees)                  # 每个次数都在 3 个标准误之内
assert all(errs[p + 1] < errs[p] for p in range(best))             # U 形：最低点之前单调下降……
assert all(errs[p + 1] > errs[p] for p in range(best, len(degrees) - 1))  # ……之后单调上升
assert table[0][0] > 0.5 and all(table[p][0] < 0.001 for p in range(4, 9))  # 偏差² 从 0.5 以上降到 0.001 以下
assert all(table[p + 1][1] > table[p][1] for p in range(3, 8))     # 3 次起方差单调增大
assert best == 3 and table[3][1] < table[2][1]                     # 最低点在 3 次；低次时方差并不单调
assert table[8][0] > table[6][0]                                   # 7、8 次时偏差² 的微小回升（蒙特卡洛误差）
# --8<-- [end:bias-variance]


# --8<-- [start:bv-figure]
grid = torch.linspace(-1, 1, 200, dtype=f64, device=device)
fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
for ax, p in zip(axes, (1, 3, 8)):
    curves = poly_fit_predict(X_bv[:20], Y_bv[:20], grid, p).cpu()   # 前 20 个训练集的拟合
    ax.plot(grid.cpu(), curves.T, color="C0", lw=0.8, alpha=0.5)
    ax.plot(grid.cpu(), f_true(grid).cpu(), color="k", lw=2, label="真实函数 f")
    ax.set_title(f"{p} 次多项式")
    ax.set_ylim(-2, 2)
    ax.set_xlabel("x")
axes[0].legend(fontsize=9, loc="lower right")
fig.suptitle("同一个真实函数、20 个训练集（每个 30 个样本）各拟合一次", y=1.02)
fig.savefig("model_selection_fits.svg", bbox_inches="tight")
plt.close(fig)

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(degrees, [table[p][0] for p in degrees], "o-", label="偏差²")
ax.plot(degrees, [table[p][1] for p in degrees], "s-", label="方差")
ax.axhline(sigma ** 2, color="0.5", ls=":", label="噪声 σ²")
ax.plot(degrees, [table[p][2] for p in degrees], "k-", lw=2, label="三项之和")
ax.plot(degrees, errs, "x", color="C3", ms=9, mew=2, label="测得的测试误差")
ax.set_yscale("log")
ax.set_xlabel("多项式次数")
ax.legend(fontsize=9)
ax.grid(alpha=0.3)
fig.savefig("model_selection_bias_variance.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:bv-figure]


# --8<-- [start:covariate-shift]
mu_tr, mu_te = np.array([0.0, 0.0]), np.array([1.0, 1.0])   # p_train(x) = N(μ_tr, I)，p_test(x) = N(μ_te, I)


def boundary(x1: np.ndarray) -> np.ndarray:
    return 0.5 * x1 ** 2 - 0.5                          # 真实的决策边界是一条抛物线


def draw(mu: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ N(μ, I)；p(y=1 | x) = σ(4 (x₂ − x₁²/2 + 1/2))，两种分布下相同。"""
    X = mu + rng.standard_normal((n, 2))
    p1 = 1 / (1 + np.exp(-4 * (X[:, 1] - boundary(X[:, 0]))))
    return X, (rng.random(n) < p1).astype(int)


def w_known(X: np.ndarray) -> np.ndarray:
    """p_test(x) / p_train(x)：两个同协方差的高斯之比，是 x 的线性函数的指数。"""
    return np.exp(X @ (mu_te - mu_tr) - (mu_te @ mu_te - mu_tr @ mu_tr) / 2)


X_s, y_s = draw(mu_tr, 500)                             # 有标签的训练数据
X_u, _ = draw(mu_te, 500)                               # 测试分布下没有标签的输入
X_src, y_src = draw(mu_tr, 100_000)                     # 两个大样本，用来量准确率
X_tgt, y_tgt = draw(mu_te, 100_000)

domain = LogisticRegression().fit(np.vstack([X_s, X_u]), np.r_[np.zeros(len(X_s)), np.ones(len(X_u))])


def w_domain(X: np.ndarray) -> np.ndarray:
    """域分类器估计的权重：(n_train / n_test) · P(测试 | x) / P(训练 | x)。"""
    p = domain.predict_proba(X)[:, 1]
    return len(X_s) / len(X_u) * p / (1 - p)


def ess(w: np.ndarray) -> float:
    return w.sum() ** 2 / (w ** 2).sum()                # 有效样本量 (Σw)² / Σw²


w_k, w_d = w_known(X_s), w_domain(X_s)
print(f"权重：估计与已知的相关系数 {np.corrcoef(w_k, w_d)[0, 1]:.3f}；"
      f"有效样本量 {ess(w_k):.0f}（已知）/ {ess(w_d):.0f}（估计），共 {len(X_s)} 个样本")

models = {"不加权": LogisticRegression().fit(X_s, y_s),
          "按已知权重加权": LogisticRegression().fit(X_s, y_s, sample_weight=w_k),
          "按估计权重加权": LogisticRegression().fit(X_s, y_s, sample_weight=w_d)}
X_o, y_o = draw(mu_te, 500)
models["参照：500 个有标签的测试分布样本"] = LogisticRegression().fit(X_o, y_o)
acc_cs = {}
for name, model in models.items():
    acc_cs[name] = (model.score(X_src, y_src), model.score(X_tgt, y_tgt))
    print(f"{name}：训练分布上 {acc_cs[name][0]:.4f}，测试分布上 {acc_cs[name][1]:.4f}")

plain = acc_cs["不加权"]
assert plain[0] - plain[1] > 0.03                        # 协变量偏移让准确率下降
for name in ("按已知权重加权", "按估计权重加权"):
    assert acc_cs[name][1] > plain[1] + 0.05            # 加权训练在测试分布上至少高 0.05
    assert abs(acc_cs[name][1] - acc_cs["参照：500 个有标签的测试分布样本"][1]) < 0.01  # 与参照相差不到 0.01
slopes = {name: -m.coef_[0, 0] / m.coef_[0, 1] for name, m in models.items()}  # 边界 x₂ = 斜率 · x₁ + 截距
assert abs(slopes["不加权"]) < 0.1 and slopes["按已知权重加权"] > 1  # 几乎水平 / 明显倾斜
# --8<-- [end:covariate-shift]


# --8<-- [start:risk-estimate]
clf = models["不加权"]
truth = plain[1]                                        # 不加权模型在测试分布上的准确率（10 万样本）
est = {"不加权": [], "已知权重": [], "估计权重": []}
for _ in range(200):                                    # 200 个来自训练分布的验证集，各 500 个样本
    X_v, y_v = draw(mu_tr, 500)
    correct = clf.predict(X_v) == y_v
    est["不加权"].append(correct.mean())
    for name, w in (("已知权重", w_known(X_v)), ("估计权重", w_domain(X_v))):
        est[name].append((w * correct).sum() / w.sum())  # 加权准确率 Σ wᵢcᵢ / Σ wᵢ
print(f"真实值（测试分布上的准确率）：{truth:.4f}")
for name, e in est.items():
    e = np.array(e)
    print(f"{name}的验证集估计：均值 {e.mean():.4f}（偏差 {e.mean() - truth:+.4f}），"
          f"单次估计的标准差 {e.std(ddof=1):.4f}")
    est[name] = e
se_truth = math.sqrt(truth * (1 - truth) / len(y_tgt))


def se_of(e: np.ndarray) -> float:
    """均值的标准误，加上「真实值」本身（10 万样本）的标准误。"""
    return math.sqrt(e.var(ddof=1) / len(e) + se_truth ** 2)


bias = {name: e.mean() - truth for name, e in est.items()}
assert bias["不加权"] > 10 * se_of(est["不加权"])                  # 不加权的估计偏高，超过 10 个标准误
assert abs(bias["已知权重"]) < 3 * se_of(est["已知权重"])          # 已知权重：偏差在 3 个标准误之内
assert abs(bias["估计权重"]) < abs(bias["不加权"]) / 2             # 估计权重：偏差不到不加权的一半
assert est["已知权重"].std() > 2 * est["不加权"].std()            # 代价：单次估计的标准差大了一倍以上
# --8<-- [end:risk-estimate]


# --8<-- [start:cs-figure]
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.scatter(*X_s[:200].T, s=8, c=np.where(y_s[:200] == 1, "C0", "C1"), marker="o", alpha=0.6)
ax.scatter(*X_o[:200].T, s=14, c=np.where(y_o[:200] == 1, "C0", "C1"), marker="x", alpha=0.6)
x1 = np.linspace(-3, 4, 100)
ax.plot(x1, boundary(x1), "k-", lw=2, label="真实边界")
for name, style, color in (("不加权", "--", "C2"), ("按已知权重加权", "-.", "C3")):
    (a, b), c = models[name].coef_[0], models[name].intercept_[0]
    ax.plot(x1, -(a * x1 + c) / b, style, color=color, lw=2, label=f"逻辑回归（{name}）")
ax.set_xlim(-3, 4)
ax.set_ylim(-3, 4)
ax.set_xlabel("x₁")
ax.set_ylabel("x₂")
ax.set_title("圆点：训练分布；叉：测试分布；蓝 y=1，橙 y=0")
ax.legend(fontsize=8, loc="upper left")
fig.savefig("model_selection_covariate_shift.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:cs-figure]


# --8<-- [start:label-shift]
means = np.array([[0.0, 0.0], [1.5, 0.0], [0.0, 3.0]])  # 三类的 p(x | y) = N(m_y, I)，训练与测试相同
p_y, q_y = np.full(3, 1 / 3), np.array([0.8, 0.1, 0.1])  # 训练与测试的类别比例


def draw_cls(prior: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.choice(3, size=n, p=prior)
    return means[y] + rng.standard_normal((n, 2)), y


X_a, y_a = draw_cls(p_y, 600)                           # 训练集
X_b, y_b = draw_cls(p_y, 3000)                          # 有标签的验证集（训练分布）
X_p, y_p = draw_cls(p_y, 100_000)                       # 训练分布下的大测试集
X_q, y_q = draw_cls(q_y, 100_000)                       # 标签偏移后的大测试集
clf3 = LogisticRegression().fit(X_a, y_a)


def recall(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """每一类的召回率 P(ŷ = k | y = k)，形状 (3,)。"""
    return np.array([(clf3.predict(X[y == k]) == k).mean() for k in range(3)])


r_p, r_q = recall(X_p, y_p), recall(X_q, y_q)
acc_p, acc_q = clf3.score(X_p, y_p), clf3.score(X_q, y_q)
print("各类的召回率（训练分布 / 偏移后）：", "，".join(f"{a:.4f} / {b:.4f}" for a, b in zip(r_p, r_q)))
print(f"准确率：训练分布 {acc_p:.4f}，偏移后 {acc_q:.4f}；Σ q(y)·召回率 = {q_y @ r_p:.4f}")

P_q = clf3.predict_proba(X_q)                           # (n, 3)：按训练分布校准的 p(y | x)
acc_fix = ((P_q * (q_y / p_y)).argmax(1) == y_q).mean()  # 乘以 q(y)/p(y) 再取最大

C = np.zeros((3, 3))                                    # 混淆矩阵 C[i, j] = P(ŷ = i, y = j)（验证集估计）
np.add.at(C, (clf3.predict(X_b), y_b), 1 / len(y_b))
X_u3, _ = draw_cls(q_y, 5000)                           # 测试分布下 5000 个没有标签的输入
mu_hat = np.bincount(clf3.predict(X_u3), minlength=3) / len(X_u3)  # P_test(ŷ = i)
w_hat = np.clip(np.linalg.solve(C, mu_hat), 0, None)    # 解 C w = mu_hat 得 w = q/p
q_hat = w_hat * p_y / (w_hat * p_y).sum()
acc_bbse = ((P_q * (q_hat / p_y)).argmax(1) == y_q).mean()
print("估计的测试类别比例 q̂：", np.round(q_hat, 3))
print(f"校正先验后的准确率：已知 q {acc_fix:.4f}，估计的 q̂ {acc_bbse:.4f}")

se_p = np.sqrt(r_p * (1 - r_p) / np.bincount(y_p))      # 每类召回率的标准误
se_q = np.sqrt(r_q * (1 - r_q) / np.bincount(y_q))
assert np.all(np.abs(r_p - r_q) < 3 * np.hypot(se_p, se_q))  # 召回率不变（3 个标准误之内）
assert abs(acc_q - q_y @ r_p) < 0.01                    # 偏移后的准确率 ≈ Σ q(y)·召回率
assert acc_p - acc_q > 0.02                             # 这次偏移让准确率下降
assert acc_fix > acc_q + 0.05 and acc_bbse > acc_q + 0.05  # 校正先验后至少高 0.05
assert abs(acc_bbse - acc_fix) < 0.01                   # 用 q̂ 与用真实 q 校正几乎相同
assert np.abs(q_hat - q_y).max() < 0.05                 # q̂ 与真实比例相差不到 0.05
# --8<-- [end:label-shift]
