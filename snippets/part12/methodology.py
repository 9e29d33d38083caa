# --8<-- [start:setup]
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import FrozenInstanceError, asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, make_dataset
from scipy import stats

# 只对 CUDA 有用：让 cuBLAS 的矩阵乘法可以确定地运行；必须在第一次 CUDA 计算之前设置
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:data]
raw = make_dataset(get_dataset_args())  # 在本地按固定参数生成，不下载
x_train, x_test = (torch.tensor(raw[k], dtype=torch.float32).to(device) for k in ("x", "x_test"))
y_train, y_test = (torch.tensor(raw[k], dtype=torch.int64).to(device) for k in ("y", "y_test"))
print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}, classes {len(y_train.unique())}")
# --8<-- [end:data]


# --8<-- [start:seed]
def set_seed(seed: int) -> None:
    """固定 Python、NumPy 和 PyTorch（CPU 与所有 GPU）的随机数生成器。"""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # 也设置所有 CUDA 设备的种子


class MLP(nn.Module):
    """12.3 的 MLP：40 → 100 → 100 → 10；skip=True 时第二层带跳跃连接，p_drop > 0 时加丢弃层。"""

    def __init__(self, hidden: int = 100, skip: bool = True, p_drop: float = 0.0):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(40, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)
        self.skip, self.drop = skip, nn.Dropout(p_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 40)
        h1 = F.relu(self.fc1(x))                          # (N, 100)
        h2 = F.relu(self.fc2(self.drop(h1)))              # (N, 100)
        h = h1 + h2 if self.skip else h2                  # 跳跃连接：h = h1 + ReLU(W2 h1 + b2)
        return self.fc3(self.drop(h))                     # (N, 10)


def same_params(a: nn.Module, b: nn.Module) -> bool:
    """逐个张量、逐位比较两个模型的参数。"""
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


set_seed(0)
m_a = MLP()
set_seed(0)
m_b = MLP()
set_seed(1)
m_c = MLP()
print("seed 0 vs seed 0 identical:", same_params(m_a, m_b))
print("seed 0 vs seed 1 identical:", same_params(m_a, m_c))
assert same_params(m_a, m_b) and not same_params(m_a, m_c)
# --8<-- [end:seed]


# --8<-- [start:train]
@dataclass(frozen=True)
class Config:
    hidden: int = 100
    skip: bool = True          # 第二层是否带跳跃连接
    p_drop: float = 0.0        # 丢弃率；0 表示不用丢弃法
    shuffle: bool = False      # False：与 12.3 相同，按固定顺序取批
    steps: int = 300
    batch_size: int = 100
    optimizer: str = "sgd"     # "sgd"（动量 SGD）或 "adam"（12.3 的设置）
    lr: float = 0.05           # 学习率
    momentum: float = 0.9      # 只用于 SGD
    seeds: tuple = (0, 1, 2, 3, 4)


def train(cfg: Config, seed: int, on: torch.device = device) -> tuple[nn.Module, float]:
    """按 cfg 在设备 on 上训练一次，返回模型和最后一步的测试准确率。"""
    set_seed(seed)
    xs, ys, xt, yt = (t.to(on) for t in (x_train, y_train, x_test, y_test))
    model = MLP(cfg.hidden, cfg.skip, cfg.p_drop).to(on)          # 种子决定初始化
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    n = len(xs)
    model.train()
    for step in range(cfg.steps):
        i = (step * cfg.batch_size) % n
        if i == 0:  # 每轮开始时确定取样顺序：打乱时由种子决定
            order = torch.randperm(n) if cfg.shuffle else torch.arange(n)
        idx = order[i:i + cfg.batch_size].to(on)
        loss = F.cross_entropy(model(xs[idx]), ys[idx])  # 丢弃掩码也由种子决定
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return model, acc


demo = Config(p_drop=0.1, shuffle=True, steps=50)  # 三种随机性都用上
(m0, acc0), (m0_again, acc0_again), (m1, acc1) = train(demo, 0), train(demo, 0), train(demo, 1)
print("after training, seed 0 twice identical:", same_params(m0, m0_again), acc0 == acc0_again)
print("after training, seed 0 vs seed 1 identical:", same_params(m0, m1))
assert same_params(m0, m0_again) and acc0 == acc0_again  # 同一进程、同一设备：逐位相同
assert not same_params(m0, m1)
# --8<-- [end:train]


# --8<-- [start:float]
a, b, c = np.float32(1e8), np.float32(-1e8), np.float32(1.0)
print("(a + b) + c =", (a + b) + c, "  a + (b + c) =", a + (b + c))
assert (a + b) + c == 1.0 and a + (b + c) == 0.0  # float32 在 1e8 附近的间距是 8，-1e8 + 1 被舍入回 -1e8

x = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)


def chunked_sum(v: np.ndarray, k: int) -> np.float32:
    """模拟 k 个线程：每块从左到右累加，再把 k 个部分和相加。"""
    partial = [np.cumsum(chunk)[-1] for chunk in np.array_split(v, k)]  # cumsum：严格按顺序的 float32 加法
    return np.cumsum(np.array(partial, dtype=np.float32))[-1]


exact = math.fsum(x.astype(np.float64))  # 同一批 float32 数的精确和
sums = {k: chunked_sum(x, k) for k in (1, 2, 4, 8)}
sums["reversed"] = chunked_sum(x[::-1].copy(), 1)
for k, s in sums.items():
    print(f"order {k!s:>8}: {s:.4f}  (error {s - exact:+.4f})")
print(f"exact (fsum): {exact:.4f}")
assert len({float(s) for s in sums.values()}) > 1  # 同样的数，换个顺序相加，结果不同
# --8<-- [end:float]


# --8<-- [start:threads]
# 容差 ±7.2：训练结果（准确率，百分点）。在 ARM 上换了数学库，相当于换了种子：这个设置下准确率的种子间标准差约 1.1，3×√2×1.1≈4.7，不超过 7.2
threads_before = torch.get_num_threads()
x_cpu = torch.from_numpy(x)  # 上面那 100 万个 float32 数
torch_sums = {}
for k in (1, 2, 4):
    torch.set_num_threads(k)  # 同一个进程里改变 CPU 线程数
    torch_sums[k] = x_cpu.sum().item()
    print(f"torch.sum, {k} thread(s): {torch_sums[k]:.5f}")
assert torch_sums[1] != torch_sums[2]  # 分给 2 个线程：部分和的划分变了，结果也变了

adam = replace(Config(), optimizer="adam", lr=1e-2, steps=1000)  # 12.3 的设置（Adam，学习率 1e-2），只训练 1000 步
by_threads = {}
for k in (1, 2):
    torch.set_num_threads(k)
    by_threads[k] = train(adam, 0, on=torch.device("cpu"))  # 线程数只影响 CPU：这里固定在 CPU 上训练
torch.set_num_threads(threads_before)
same = same_params(by_threads[1][0], by_threads[2][0])
print(f"MLP, Adam, 1000 steps, seed 0: test acc {100 * by_threads[1][1]:.1f}% (1 thread), "
      f"{100 * by_threads[2][1]:.1f}% (2 threads), identical: {same}")
if os.environ.get("MKL_CBWR") and torch.__version__.split("+")[0] == "2.13.0":  # 本书锁定的版本与数值设置下（见开发环境）
    assert same  # 这个 MLP 的结果不随线程数变化
# --8<-- [end:threads]


# --8<-- [start:deterministic]
torch.use_deterministic_algorithms(True)  # 之后若用到没有确定性实现的算子，直接报错
torch.backends.cudnn.benchmark = False    # 不让 cuDNN 按速度挑选（可能不同的）卷积算法
(m_d1, acc_d1), (m_d2, acc_d2) = train(demo, 0), train(demo, 0)
print("deterministic mode on:", torch.are_deterministic_algorithms_enabled(),
      "| identical:", same_params(m_d1, m_d2))
assert same_params(m_d1, m_d2)
torch.use_deterministic_algorithms(False)
# --8<-- [end:deterministic]


# --8<-- [start:config]
cfg = Config()
try:
    cfg.steps = 8000  # 不可变：运行中途改超参数会直接报错
except FrozenInstanceError as err:
    print("FrozenInstanceError:", err)
long_cfg = replace(cfg, steps=8000)  # 要改就生成一个新配置
print("changed fields:", {k: v for k, v in asdict(long_cfg).items() if asdict(cfg)[k] != v})

text = json.dumps(asdict(cfg))
loaded = json.loads(text)
print("seeds after JSON:", loaded["seeds"], type(loaded["seeds"]).__name__)
restored = Config(**{**loaded, "seeds": tuple(loaded["seeds"])})  # JSON 没有元组：读回时换回来
assert restored == cfg and Config(**loaded) != cfg
# --8<-- [end:config]


# --8<-- [start:seeds]
# 容差 ±2.1：训练结果。换到 ARM 或 GPU 上，舍入不同，相当于换了种子：种子间标准差约 0.5，两次独立结果之差的 3 倍标准差为 3×√2×0.5≈2.1
start = time.perf_counter()
runs = [{"seed": s, "test_acc": train(cfg, s)[1]} for s in cfg.seeds]  # 种子只改变初始化
wall_time = time.perf_counter() - start

accs = 100 * np.array([r["test_acc"] for r in runs])  # 百分数
mean, std = accs.mean(), accs.std(ddof=1)              # 样本标准差：分母 n - 1
se = std / math.sqrt(len(accs))                         # 均值的标准误
print("per seed:", " ".join(f"{a:.1f}" for a in accs))
print(f"mean ± std: {mean:.1f} ± {std:.1f}   standard error: {se:.1f}")
print(f"range (max - min): {accs.max() - accs.min():.1f}")
assert mean > 55 and 0 < std < 3                # 实测 58.0 ± 0.5
assert accs.max() - accs.min() > 0.5            # 只跑一个种子，可能拿到最好的，也可能拿到最差的
# --8<-- [end:seeds]


# --8<-- [start:provenance]
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


provenance = {
    "command": " ".join([Path(sys.executable).name, *sys.argv]),
    "config": asdict(cfg),
    "seeds": list(cfg.seeds),
    "python": platform.python_version(),
    "torch": torch.__version__,
    "numpy": np.__version__,
    "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    "cpu": cpu_name(),
    "torch_threads": torch.get_num_threads(),
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "wall_time_s": round(wall_time, 1),
}
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "results.json"
    path.write_text(json.dumps({"provenance": provenance, "runs": runs}, indent=1), encoding="utf-8")
    record = json.loads(path.read_text(encoding="utf-8"))
print("provenance keys:", ", ".join(record["provenance"]))
assert record["runs"] == runs and record["provenance"]["seeds"] == list(cfg.seeds)
# --8<-- [end:provenance]


# --8<-- [start:welch]
def t_cdf(t: float, df: float) -> float:
    """学生 t 分布（自由度 df，可以不是整数）的分布函数：对密度从 0 到 |t| 做辛普森积分。"""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def pdf(u: float) -> float:  # t 分布的密度
        return c * (1 + u * u / df) ** (-(df + 1) / 2)

    n, h = 2000, abs(t) / 2000  # n 个小区间（n 为偶数）
    area = h / 3 * (pdf(0) + pdf(abs(t)) + 4 * sum(pdf((2 * i - 1) * h) for i in range(1, n // 2 + 1))
                    + 2 * sum(pdf(2 * i * h) for i in range(1, n // 2)))
    return 0.5 + math.copysign(area, t)


def t_quantile(p: float, df: float) -> float:
    """t_cdf 的反函数（二分法，p > 0.5）：双侧 5% 检验的临界值是 t_quantile(0.975, df)。"""
    lo, hi = 0.0, 100.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def welch(a, b) -> dict:
    """Welch 的 t 检验：两组均值之差、它的标准误、t 统计量、Welch–Satterthwaite 自由度、双侧 p 值。"""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)    # 两个均值各自的方差估计 s^2 / n
    diff, se = a.mean() - b.mean(), math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    return {"diff": diff, "se": se, "t": t, "df": df, "p": 2 * (1 - t_cdf(abs(t), df))}


for df in (2, 4, 10, 30):  # 双侧 5% 的临界值：自由度越小，越大于 2
    print(f"0.975 quantile of t, df = {df:>2}: {t_quantile(0.975, df):.3f}")
    assert abs(t_quantile(0.975, df) - stats.t.ppf(0.975, df)) < 1e-6  # 与 scipy 一致
print(f"0.975 quantile of the standard normal: {stats.norm.ppf(0.975):.3f}")


def results_file(name: str) -> Path:
    """12.3 提交在本书仓库里的结果文件；在别处运行时，把它从网站的 part12/results/ 下载到当前目录。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / "results" / name, here.parent.parent / "docs" / "part12" / "results" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站的 part12/results/ 下载")


bench = json.loads(results_file("mnist1d_benchmark.json").read_text(encoding="utf-8"))
mlp = {d: 100 * np.array([r["test_acc"] for r in bench["runs"] if (r["model"], r["data"]) == ("mlp", d)])
       for d in ("original", "shuffled")}  # 12.3 的 MLP，各种子最后一步的测试准确率（%）
for d, v in mlp.items():
    print(f"12.3 MLP, {d:>8}: {' '.join(f'{a:.1f}' for a in v)}  ->  {v.mean():.2f} ± {v.std(ddof=1):.2f}")
w = welch(mlp["shuffled"], mlp["original"])
ref = stats.ttest_ind(mlp["shuffled"], mlp["original"], equal_var=False)  # 读者会用的现成函数
print(f"difference {w['diff']:+.2f}, SE {w['se']:.2f}, t = {w['t']:.2f}, df = {w['df']:.2f}, p = {w['p']:.3f}")
print(f"scipy.stats.ttest_ind(equal_var=False): t = {ref.statistic:.2f}, df = {ref.df:.2f}, p = {ref.pvalue:.3f}")
assert abs(w["t"] - ref.statistic) < 1e-9 and abs(w["df"] - ref.df) < 1e-9 and abs(w["p"] - ref.pvalue) < 1e-6
print(f"|t| > 2: {abs(w['t']) > 2};  |t| > t_0.975(df) = {t_quantile(0.975, w['df']):.2f}: "
      f"{abs(w['t']) > t_quantile(0.975, w['df'])}")
assert abs(w["t"]) < t_quantile(0.975, w["df"]) and w["p"] > 0.05  # 打乱对 MLP 没有作用：检验也没有发现作用

# 每组 3 个种子、两组来自同一个分布（没有作用）时，两条规则各有多少次误报「有作用」
null_a, null_b = np.random.default_rng(0).standard_normal((2, 100_000, 3))
null = stats.ttest_ind(null_a, null_b, axis=1, equal_var=False)
rate_2se, rate_welch = (np.abs(null.statistic) > 2).mean(), (null.pvalue < 0.05).mean()
print(f"100000 null experiments, 3 seeds per arm: |t| > 2 in {rate_2se:.1%}, Welch p < 0.05 in {rate_welch:.1%}")
assert rate_2se > 0.1 and rate_welch < 0.05  # 「2 倍标准误」的误报率是名义 5% 的两倍多
# --8<-- [end:welch]


# --8<-- [start:ablation]
# 容差 ±7.2：训练结果。去掉跳跃连接的变体种子间标准差 1.6（不超过 1.7），3×√2×1.7≈7.2（理由同上一段）
set_seed(0)
with_skip = MLP(skip=True)
set_seed(0)
without_skip = MLP(skip=False)
print("same initial weights with and without skip:", same_params(with_skip, without_skip))
assert same_params(with_skip, without_skip)  # 同一个种子：两个变体从同一组权重出发

no_skip = replace(cfg, skip=False)  # 只改一处：去掉跳跃连接
ablation = {True: accs,              # 有跳跃连接：上面 5 个种子的结果
            False: 100 * np.array([train(no_skip, s)[1] for s in cfg.seeds])}
n_params = {skip: sum(p.numel() for p in MLP(skip=skip).parameters()) for skip in (True, False)}
print("| 变体 | 参数量 | 各种子（%） | 均值 ± 标准差（%） |")
print("|---|---:|---|---:|")
for skip, name in ((True, "h = h1 + ReLU(W2 h1 + b2)"), (False, "h = ReLU(W2 h1 + b2)")):
    v = ablation[skip]
    print(f"| {name} | {n_params[skip]} | {' '.join(f'{a:.1f}' for a in v)} | {v.mean():.1f} ± {v.std(ddof=1):.1f} |")
effect = welch(ablation[True], ablation[False])  # 上一段的 Welch t 检验
print(f"effect of the skip connection: {effect['diff']:+.1f} ± {effect['se']:.1f} (standard error), "
      f"t = {effect['t']:.1f}, df = {effect['df']:.1f}, p = {effect['p']:.4f}")
assert n_params[True] == n_params[False]  # 跳跃连接没有参数：两者只差一个加法
assert effect["p"] < 0.01 and effect["diff"] > 2.0  # 差距远大于种子带来的波动
# --8<-- [end:ablation]


# --8<-- [start:gap]
# 容差 ±2.1：由上面 5 个种子的训练结果算出（理由同上）
def compare(ours: list[float], paper: float, paper_decimals: int = 0, paper_runs: int = 1) -> tuple[str, float, float]:
    """把我们各种子的结果（%）与论文的数字比较，返回（结论, 差, 容差）。

    容差取「t 临界值（自由度 n - 1）乘差值的标准误」与「论文的舍入误差」中较大者；论文没说跑了几次时按 1 次算。
    """
    v = np.asarray(ours, dtype=float)
    assert len(v) >= 2, "至少要两个种子才能估计波动"
    s = v.std(ddof=1)
    se_diff = s * math.sqrt(1 / len(v) + 1 / paper_runs)  # 我们的均值与论文数字之差的标准误
    tol = max(t_quantile(0.975, len(v) - 1) * se_diff, 0.5 * 10 ** -paper_decimals)
    diff = v.mean() - paper
    verdict = "一致" if abs(diff) <= tol else ("偏高" if diff > 0 else "偏低")
    return verdict, diff, tol


assert compare([68.2, 67.6, 68.4], 68)[0] == "一致"
assert compare([70.6, 70.4, 70.5], 68)[0] == "偏高"
assert compare([61.0, 60.0, 62.0], 68)[0] == "偏低"
assert compare([66.0, 72.0, 63.0], 68)[0] == "一致"            # 波动大：差 1 个点说明不了什么
assert compare([68.9, 68.8, 68.9], 68.0, paper_decimals=1)[0] == "偏高"  # 论文给到小数点后一位时容差更小

verdict, diff, tol = compare(list(accs), 68)  # 上面 5 个种子 vs 论文表中 MLP 的 68%
print(f"MLP, {cfg.steps} steps vs paper 68%: {verdict} (diff {diff:+.1f}, tolerance {tol:.1f})")
assert verdict == "偏低"  # 论文训练 8000 步，这里只有 300 步：超参数不同，差距在意料之中
# --8<-- [end:gap]
