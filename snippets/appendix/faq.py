# --8<-- [start:setup]
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
X_all, y_all = load_digits(return_X_y=True)          # (1797, 64)，像素为 0..16 的整数


def split(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """分层划分为训练 60%、验证 20%、测试 20%；标准化只用训练集的均值和标准差。"""
    X_tr, X_rest, y_tr, y_rest = train_test_split(
        X_all, y_all, test_size=0.4, stratify=y_all, random_state=seed)
    X_va, X_te, y_va, y_te = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    return {"train": (scaler.transform(X_tr), y_tr), "val": (scaler.transform(X_va), y_va),
            "test": (scaler.transform(X_te), y_te)}


def to_device(data: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {k: (torch.tensor(X, dtype=torch.float32, device=device), torch.tensor(y, device=device))
            for k, (X, y) in data.items()}


data = split(seed=0)
tdata = to_device(data)
print("训练集、验证集、测试集的样本数：" + "、".join(str(len(y)) for X, y in data.values()))
# --8<-- [end:setup]


# --8<-- [start:mlp]
def train_mlp(train: tuple[torch.Tensor, torch.Tensor], lr: float, weight_decay: float = 0.0,
              seed: int = 0, epochs: int = 20, batch_size: int = 64) -> nn.Module:
    """64-128-10 的 MLP，Adam 小批量训练；seed 决定初始权重和打乱顺序。"""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    X, y = train
    shuffle = torch.Generator().manual_seed(seed)
    steps_per_epoch = max(1, len(y) // batch_size)          # 不足两批时每轮只走一步（全批量）
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=shuffle).to(device)
        for idx in perm.chunk(steps_per_epoch):
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, split_data: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    X, y = split_data
    return (model(X).argmax(dim=1) == y).float().mean().item()
# --8<-- [end:mlp]


# --8<-- [start:lr-sweep]
# 容差 ±0.04：训练结果。换到 ARM 或 GPU 上相当于换了种子：种子间标准差最大约 0.008，3×√2×0.008≈0.034
seeds = [0, 1, 2]
lrs = [1e-4, 1e-3, 1e-2, 1e-1]
sweep = {}                                             # 学习率 -> 3 个种子的验证准确率
for lr in lrs:
    sweep[lr] = np.array([accuracy(train_mlp(tdata["train"], lr, seed=s), tdata["val"]) for s in seeds])
    print(f"lr={lr:.0e}：验证准确率 {sweep[lr].mean():.3f} ± {sweep[lr].std(ddof=1):.3f}（3 个种子）")
means = {lr: v.mean() for lr, v in sweep.items()}
best_lr = max(means, key=means.get)
lr_range = max(means.values()) - min(means.values())
max_std = max(v.std(ddof=1) for v in sweep.values())
print(f"最好的学习率 {best_lr:.0e}；各学习率平均值的极差 {lr_range:.3f}，种子间标准差最大 {max_std:.3f}")
assert best_lr == 1e-2
assert lr_range > 5 * max_std                          # 学习率的影响远大于种子的波动
# --8<-- [end:lr-sweep]

# --8<-- [start:search]
# 容差 ±0.02：训练结果（理由同上；选中配置的 3 个种子的标准差约 0.003）
# 同一个搜索范围（对数尺度）：lr ∈ [1e-4, 1e-1]，weight_decay ∈ [1e-5, 1e-1]；两者都只训练 9 次
grid = [(lr, wd) for lr in np.logspace(-4, -1, 3) for wd in np.logspace(-5, -1, 3)]
rng = np.random.default_rng(0)
random_trials = [(10 ** rng.uniform(-4, -1), 10 ** rng.uniform(-5, -1)) for _ in range(9)]


def search(trials: list[tuple[float, float]]) -> tuple[tuple[float, float], float]:
    """每组超参数训练一次，按验证准确率挑出最好的一组。"""
    scores = [accuracy(train_mlp(tdata["train"], lr, wd), tdata["val"]) for lr, wd in trials]
    best = int(np.argmax(scores))
    return trials[best], scores[best]


results = {}
for name, trials in (("网格搜索", grid), ("随机搜索", random_trials)):
    (lr, wd), val_best = search(trials)
    n_lr = len({round(float(t[0]), 12) for t in trials})
    # 只对选出的那一组看一次测试集：3 个种子重新训练，报告均值 ± 标准差
    test = np.array([accuracy(train_mlp(tdata["train"], lr, wd, seed=s), tdata["test"]) for s in seeds])
    results[name] = (n_lr, val_best, test)
    print(f"{name}：试了 {n_lr} 个不同的学习率，选中 lr={lr:.1e}、weight_decay={wd:.1e}，"
          f"验证准确率 {val_best:.3f}，测试准确率 {test.mean():.3f} ± {test.std(ddof=1):.3f}")
(n_grid, val_grid, test_grid), (n_rand, val_rand, test_rand) = results.values()
gap_samples = round(abs(val_rand - val_grid) * len(data["val"][1]))
test_gap = abs(test_rand.mean() - test_grid.mean())
print(f"两者选中配置的验证准确率相差 {gap_samples} 个验证样本，测试准确率均值相差 {test_gap:.3f}")
assert n_grid == 3 and n_rand == 9
assert test_gap < 0.01                                 # 在这个问题上两种搜索打平：相差不到 1 个百分点
# --8<-- [end:search]


# --8<-- [start:overfit]
# 容差 ±0.09：训练结果（理由同上；100 个样本时种子间标准差约 0.02，3×√2×0.02≈0.085）
def subset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """从训练集中分层抽取 n 个样本（n 等于训练集大小时取全部）。"""
    X, y = tdata["train"]
    if n >= len(y):
        return X, y
    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=data["train"][1], random_state=seed)
    idx = torch.tensor(idx, device=device)
    return X[idx], y[idx]


sizes = [100, 200, 400, len(data["train"][1])]
overfit_seeds = range(5)                       # 种子同时决定抽到哪些样本和初始权重
train_acc, val_acc = {}, {}                    # (n, weight_decay) -> 5 个种子的准确率
print("    n  weight_decay  训练准确率  验证准确率（5 个种子）  差距")
for n in sizes:
    for wd in (0.0, 1e-2):
        tr, va = [], []
        for s in overfit_seeds:
            part = subset(n, s)
            model = train_mlp(part, best_lr, wd, seed=s, epochs=300 // max(1, n // 64))   # 都约 300 步
            tr.append(accuracy(model, part))
            va.append(accuracy(model, tdata["val"]))
        train_acc[n, wd], val_acc[n, wd] = np.array(tr), np.array(va)
        print(f"{n:5d}  {wd:>12g}  {np.mean(tr):10.3f}  {np.mean(va):8.3f} ± {np.std(va, ddof=1):.3f}    "
              f"{np.mean(tr) - np.mean(va):.3f}")
gaps = [train_acc[n, 0.0].mean() - val_acc[n, 0.0].mean() for n in sizes]
helped = val_acc[100, 1e-2] - val_acc[100, 0.0]          # 同一种子（同一批样本、同一初始化）上的配对差
print(f"100 个样本时权重衰减带来的验证准确率变化：{helped.mean():+.3f}，"
      f"5 个种子中提高的有 {int((helped > 0).sum())} 个")
assert all(train_acc[n, 0.0].mean() == 1.0 for n in sizes)          # 不加正则化时训练集全部分对
assert all(a > b for a, b in zip(gaps, gaps[1:]))                     # 样本越多，差距越小
assert helped.mean() > 0                                              # 样本少时权重衰减提高验证准确率
assert val_acc[400, 0.0].mean() > val_acc[100, 1e-2].mean() + 0.02     # 但多 300 个样本比权重衰减有效得多
assert val_acc[sizes[-1], 1e-2].mean() < val_acc[sizes[-1], 0.0].mean()  # 数据充足时，同样的权重衰减反而有害
# --8<-- [end:overfit]

# --8<-- [start:baselines]
# 容差 ±0.04：MLP 的训练结果（理由同上；5 个划分上 MLP 的标准差约 0.008）
classical = {
    "逻辑回归": lambda seed: LogisticRegression(max_iter=1000),
    "SVM（RBF 核）": lambda seed: SVC(),
    "随机森林": lambda seed: RandomForestClassifier(random_state=seed),
}
scores = {name: [] for name in [*classical, "MLP"]}
for seed in range(5):                                  # 5 种不同的分层划分
    d = split(seed)
    (X_tr, y_tr), (X_te, y_te) = d["train"], d["test"]
    for name, make in classical.items():               # scikit-learn 的默认超参数，在 CPU 上
        scores[name].append(make(seed).fit(X_tr, y_tr).score(X_te, y_te))
    td = to_device(d)
    scores["MLP"].append(accuracy(train_mlp(td["train"], best_lr, seed=seed), td["test"]))
scores = {k: np.array(v) for k, v in scores.items()}
for name, s in scores.items():
    print(f"{name}：测试准确率 {s.mean():.3f} ± {s.std(ddof=1):.3f}（5 个划分：{' '.join(f'{v:.3f}' for v in s)}）")
for other in ("SVM（RBF 核）", "随机森林"):
    diff = scores["MLP"] - scores[other]                          # 同一划分上的配对差
    half_width = 2.776 * diff.std(ddof=1) / np.sqrt(len(diff))    # t 分布（自由度 4）的 95% 置信区间半宽
    print(f"MLP − {other}：{diff.mean():+.3f} ± {diff.std(ddof=1):.3f}，95% 置信区间 "
          f"[{diff.mean() - half_width:+.3f}, {diff.mean() + half_width:+.3f}]；MLP 更高的划分 {int((diff > 0).sum())} 个")
    assert abs(diff.mean()) < half_width                          # 差别分不出来：区间包含 0
assert min(scores, key=lambda k: scores[k].mean()) == "逻辑回归"   # 线性模型最低
# --8<-- [end:baselines]
