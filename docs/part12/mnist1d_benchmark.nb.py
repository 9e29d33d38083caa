# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   numbers:
#     sources:
#       "10%": 10 个类别的随机猜测水平 1/10
#       "5%": 双侧检验的显著性水平（约定）
#       "95%": 置信区间的置信水平（约定，与双侧 5% 的检验对应）
# ---

# %% [markdown]
# # 12.3 复现 MNIST-1D 基准表
#
# Greydanus 与 Kobak 的论文《Scaling down deep learning with MNIST-1D》（ICML 2024）用一张表说明，
# 一个长度只有 40 的一维数据集也能把经典模型拉开差距：逻辑回归 32%、MLP 68%、CNN 94%、GRU 91%；
# 把序列的 40 个位置打乱以后，CNN 降到 56%，GRU 降到 57%。本页在 2 核 CPU 上复现这张表：
# 按论文和作者代码搭出四个模型，每个配置用 3 个随机种子训练，把「均值 ± 标准差」和论文的数字并排放在一起，
# 再逐条解释两者的差距。读完本页，你可以把同样的流程用到任何一张「模型 × 数据」的结果表上。
#
# 本页是一个可以下载的 notebook，它有两种运行方式：
#
# - **快速模式**（默认）：构建网站和运行测试时用它，每个模型只训练几百步，几十秒跑完，只证明代码能跑、趋势正确；
# - **完整模式**：在仓库根目录运行 `make reproduce`（等价于在本页所在目录运行 `BOOK_REPRO=full python mnist1d_benchmark.nb.py`），
#   按论文的设置训练全部 30 次（5 个模型 × 2 种数据 × 3 个种子，其中一个模型是补充实验），
#   在本书的 CPU 上（单线程）用了约 <output>15</output> 分钟，结果连同出处写进 `results/mnist1d_benchmark.json`。
#
# 页面下半部分的表和曲线都从这个结果文件画出，文件本身由上面的命令生成、提交进仓库，从不手改。
# 阅读方法见 [12.1 如何精读一篇论文](reading.md)，这里用到的复现方法见 [12.2 复现方法论](methodology.md)。

# %% [markdown]
# ## 要复现的结论
#
# 论文的基准表（也见作者仓库的 README）报告的是测试集准确率，训练集 4000 个样本、测试集 1000 个样本。
# 我们把它原样抄进代码，后面的比较都以它为准：

# %%
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, make_dataset
from scipy import stats

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 论文表中的测试准确率（%）：(模型，数据) -> 数值
PAPER = {("logistic", "original"): 32, ("mlp", "original"): 68, ("cnn", "original"): 94, ("gru", "original"): 91,
         ("logistic", "shuffled"): 32, ("mlp", "shuffled"): 68, ("cnn", "shuffled"): 56, ("gru", "shuffled"): 57}
MODELS = ("logistic", "mlp", "cnn", "gru")
DATASETS = ("original", "shuffled")
EXTRA = ("mlp256",)  # 补充实验：隐藏层 256 维的 MLP（见「差距分析」）

# %% [markdown]
# ## 配置：一处写清所有超参数
#
# 论文正文只说了「用 Adam 训练」，具体的数字在作者的训练脚本 `train.py` 里：学习率 $10^{-2}$、批量 100、
# 不用权重衰减、训练 8000 步、每 250 步在测试集上评估一次。还有一个容易漏掉的细节：
# 作者按顺序取批，第 $t$ 步用的是第 $(100t \bmod 4000)$ 个样本起的 100 个样本，每一轮（epoch）的批次顺序都一样，
# 不重新打乱。我们照做，并把这些数字放进一个不可变的 `Config`，结果文件里原样记录它。
#
# 随机种子只影响模型的初始化：数据集由 `get_dataset_args()` 里固定的种子生成，取批的顺序也是固定的。
# 所以下面的标准差衡量的是「换一个初始化，结果会变多少」。

# %%
MODE = os.environ.get("BOOK_REPRO", "quick")  # quick：快速模式；full：完整复现
assert MODE in ("quick", "full"), f"BOOK_REPRO 只能是 quick 或 full，而不是 {MODE!r}"


@dataclass(frozen=True)
class Config:
    steps: int = 8000          # 训练步数（作者 train.py 的 total_steps）
    batch_size: int = 100
    lr: float = 1e-2           # Adam 的学习率
    weight_decay: float = 0.0
    eval_every: int = 250      # 每隔多少步在测试集上评估一次
    seeds: tuple = (0, 1, 2)   # 每个配置训练几次，各用一个种子


FULL = Config()
QUICK = Config(steps=200, eval_every=50, seeds=(0,))
config = FULL if MODE == "full" else QUICK
print(MODE, config)

# %% [markdown]
# ## 数据
#
# 数据由 `make_dataset(get_dataset_args())` 在本地生成（不要用会联网下载的 `get_dataset`）。
# 打乱版本只需把参数 `shuffle_seq` 设为 `True`：所有样本的 40 个位置按同一个随机排列重排，标签不变
# （[MNIST-1D 数据一览](../part1/mnist1d_tour.nb.py) 验证过这一点）。

# %%
def load(dataset: str) -> dict:
    args = get_dataset_args()
    args.shuffle_seq = dataset == "shuffled"
    raw = make_dataset(args)
    x, x_test = (torch.tensor(raw[k], dtype=torch.float32, device=device) for k in ("x", "x_test"))
    y, y_test = (torch.tensor(raw[k], dtype=torch.int64, device=device) for k in ("y", "y_test"))
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


data = {name: load(name) for name in DATASETS}
for name, d in data.items():
    print(f"{name:>8}: train {tuple(d['x'].shape)}, test {tuple(d['x_test'].shape)}")
assert torch.equal(data["original"]["y"], data["shuffled"]["y"])

# %% [markdown]
# ## 模型
#
# 四个模型都很小（几百到一万多个参数），结构取自作者公开的代码 `models.py`（读法见 12.1 的笔记）。设输入 $\mathbf{x} \in \mathbb{R}^{40}$：
#
# - **逻辑回归**：$\mathbf{z} = \mathbf{W}\mathbf{x} + \mathbf{b}$，$\mathbf{W} \in \mathbb{R}^{10 \times 40}$，共 410 个参数；
# - **MLP**：两个 100 维的 ReLU 隐藏层，$\mathbf{h}_1 = \mathrm{ReLU}(\mathbf{W}_1\mathbf{x} + \mathbf{b}_1)$，
#   $\mathbf{h}_2 = \mathbf{h}_1 + \mathrm{ReLU}(\mathbf{W}_2\mathbf{h}_1 + \mathbf{b}_2)$。
#   注意第二层有一条跳跃连接，这是作者代码里的写法，论文正文没有提；
# - **CNN**：三层一维卷积，每层 25 个通道、步幅 2、填充 1，卷积核长度依次为 5、3、3。
#   由输出长度公式 $L_{\text{out}} = \lfloor (L + 2p - k)/s \rfloor + 1$，长度依次是 $40 \to 19 \to 10 \to 5$，
#   展平后 $25 \times 5 = 125$ 维，再接一个线性层；
# - **GRU**：双向 GRU，每个方向隐状态 6 维，把 40 个时间步的输出（$40 \times 12 = 480$ 维）全部展平后接线性层。
#
# 下面的代码同时检查参数量与按公式算出的一致。

# %%
class MLP(nn.Module):
    def __init__(self, hidden: int = 100):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(40, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = h + F.relu(self.fc2(h))  # 作者代码中的跳跃连接
        return self.fc3(h)


class CNN(nn.Module):
    def __init__(self, channels: int = 25):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.fc = nn.Linear(channels * 5, 10)

    def forward(self, x):                      # x: (N, 40)
        h = x.unsqueeze(1)                     # (N, 1, 40)
        h = F.relu(self.conv1(h))              # (N, 25, 19)
        h = F.relu(self.conv2(h))              # (N, 25, 10)
        h = F.relu(self.conv3(h))              # (N, 25, 5)
        return self.fc(h.flatten(1))           # (N, 10)


class GRU(nn.Module):
    def __init__(self, hidden: int = 6):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(40 * 2 * hidden, 10)

    def forward(self, x):                      # x: (N, 40)
        out, _ = self.gru(x.unsqueeze(-1))     # (N, 40, 12)
        return self.fc(out.flatten(1))         # (N, 10)


def build(name: str) -> nn.Module:
    return {"logistic": lambda: nn.Linear(40, 10), "mlp": MLP, "cnn": CNN, "gru": GRU,
            "mlp256": lambda: MLP(hidden=256)}[name]()


n_params = {name: sum(p.numel() for p in build(name).parameters()) for name in MODELS}
print(n_params)
gru_per_direction = 3 * (6 * 1 + 6 * 6 + 2 * 6)  # 3 个门，每个门 W_i、W_h 和两个偏置
assert n_params == {"logistic": 40 * 10 + 10,
                    "mlp": (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10),
                    "cnn": (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10),
                    "gru": 2 * gru_per_direction + (480 * 10 + 10)}
assert sum(p.numel() for p in build("mlp256").parameters()) == (40 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
with torch.no_grad():
    assert all(build(m)(torch.zeros(7, 40)).shape == (7, 10) for m in MODELS)

# %% [markdown]
# ## 训练与评估
#
# 损失是交叉熵 $\ell = -\frac{1}{B}\sum_{i=1}^{B} \log \operatorname{softmax}(\mathbf{z}_i)_{y_i}$，$B = 100$。
# 每隔 `eval_every` 步记录一次：这段时间内训练损失的平均值，以及整个测试集上的准确率。
# 表中报告的是最后一步（第 8000 步）的测试准确率，而不是曲线上的最高点：
# 挑最高点等于用测试集选模型，会把数字抬高。

# %%
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(model_name: str, d: dict, seed: int, cfg: Config) -> dict:
    torch.manual_seed(seed)  # 只影响初始化
    model = build(model_name).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve = {"step": [0], "train_loss": [None], "test_acc": [accuracy(model, d["x_test"], d["y_test"])]}
    window = []
    for step in range(1, cfg.steps + 1):
        i = ((step - 1) * cfg.batch_size) % len(d["x"])  # 按顺序取批，与作者代码相同
        loss = F.cross_entropy(model(d["x"][i:i + cfg.batch_size]), d["y"][i:i + cfg.batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(loss.item())
        if step % cfg.eval_every == 0:
            curve["step"].append(step)
            curve["train_loss"].append(sum(window) / len(window))
            curve["test_acc"].append(accuracy(model, d["x_test"], d["y_test"]))
            window = []
    return {"test_acc": curve["test_acc"][-1], "curve": curve}

# %% [markdown]
# ## 运行
#
# 每个（模型，数据，种子）组合训练一次。快速模式只训练 200 步、一个种子，所以下面打印的数字远低于论文；
# 它断言的是即使在这么短的训练里也成立的趋势：准确率远高于 10% 的随机水平，CNN 在原始数据上明显好于打乱后的数据，
# 而逻辑回归几乎不受打乱影响（它本来就不认识「相邻」）。

# %%
# 容差 ±0.15：快速模式的训练结果。换到 ARM 或 GPU 上相当于换了种子：快速模式下 5 个种子的标准差最大 0.036（CNN），3×√2×0.036≈0.15
start = time.perf_counter()
runs = []
for dataset in DATASETS:
    for model_name in MODELS + EXTRA:
        for seed in config.seeds:
            run = {"model": model_name, "data": dataset, "seed": seed,
                   **train(model_name, data[dataset], seed, config)}
            runs.append(run)
            print(f"{dataset:>8} {model_name:>8} seed {seed}: test acc {run['test_acc']:.3f}")
wall_time = time.perf_counter() - start

acc = {(r["model"], r["data"]): r["test_acc"] for r in runs if r["seed"] == config.seeds[0]}
if MODE == "quick":  # 短训练的下限（2 核 CPU 上实测见上面的输出）
    assert acc["logistic", "original"] > 0.2 and acc["mlp", "original"] > 0.3
    assert acc["cnn", "original"] > 0.5 and acc["gru", "original"] > 0.4
    assert acc["cnn", "original"] > acc["cnn", "shuffled"] + 0.1
    assert abs(acc["logistic", "original"] - acc["logistic", "shuffled"]) < 0.03

# %% [markdown]
# ## 记录出处
#
# 完整模式把每次运行的结果和出处一起写进结果文件：运行的命令、配置、种子、各软件版本、CPU 型号与线程数、
# 日期和总耗时。线程数也要记：线程数改变求和的顺序，浮点和随之改变（见 [12.2](methodology.md)），
# 这样的差异在几千步训练中会被放大。本书运行 notebook 时固定了线程数和计算内核（见 [开发环境](../appendix/environment.md)），
# 所以下面的抽查能逐位重现结果文件中的一行。

# %%
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


RESULTS = Path("results") / "mnist1d_benchmark.json"
provenance = {
    "command": os.environ.get("BOOK_REPRO_COMMAND", "BOOK_REPRO=full python mnist1d_benchmark.nb.py"),
    "mode": MODE,
    "config": asdict(config),
    "seeds": list(config.seeds),
    "python": platform.python_version(),
    "torch": torch.__version__,
    "numpy": np.__version__,
    "mnist1d": version("mnist1d"),
    "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
    "cpu": cpu_name(),
    "cpu_count": os.cpu_count(),
    "torch_threads": torch.get_num_threads(),
    "platform": platform.platform(),
    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "wall_time_s": round(wall_time, 1),
}
if MODE == "full":
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"experiment": "mnist1d_benchmark", "provenance": provenance, "runs": runs},
                                  ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", RESULTS)

# %% [markdown]
# ## 结果：论文与本书并排
#
# 下面读入提交在仓库里的结果文件（若在别处运行本 notebook 而没有这个文件，请从本书仓库的
# `docs/part12/results/` 下载，放到 notebook 旁边的 `results/` 目录）。先看它的出处：

# %%
results = json.loads(RESULTS.read_text(encoding="utf-8"))
prov = results["provenance"]
for key in ("command", "date", "wall_time_s", "torch", "cpu", "torch_threads", "seeds"):
    print(f"{key:>13}: {prov[key]}")
print(f"{'wall time':>13}: {prov['wall_time_s'] / 60:.0f} min")
assert prov["mode"] == "full" and len(prov["seeds"]) >= 3
assert prov["config"] == json.loads(json.dumps(asdict(FULL))), "结果文件不是当前代码的完整设置跑出来的：请重跑"


def summarize(results: dict) -> dict:
    """(模型，数据) -> 各种子最后一步的测试准确率（%）。1000 个测试样本，准确率是 0.1% 的整数倍"""
    table = {}
    for r in results["runs"]:
        table.setdefault((r["model"], r["data"]), []).append(round(100 * r["test_acc"], 1))
    return {k: np.array(v) for k, v in table.items()}


ours = summarize(results)
assert set(ours) == {(m, d) for m in MODELS + EXTRA for d in DATASETS}
assert all(len(v) == len(prov["seeds"]) for v in ours.values())

# 抽查：按完整设置重跑结果文件中的一行。换一台机器（或 GPU）时允许有差异，但应小于换种子带来的差异
seed0 = prov["seeds"][0]
committed = next(r for r in results["runs"] if (r["model"], r["data"], r["seed"]) == ("logistic", "original", seed0))
spot = train("logistic", data["original"], seed0, Config(**prov["config"]))
print(f"spot check logistic seed {seed0}: rerun {spot['test_acc']:.3f}, file {committed['test_acc']:.3f}, "
      f"identical: {spot['curve'] == committed['curve']}")
assert abs(spot["test_acc"] - committed["test_acc"]) <= max(3 * ours["logistic", "original"].std(ddof=1) / 100, 0.01)
if device.type == "cpu" and os.environ.get("MKL_CBWR") and prov["torch_threads"] == torch.get_num_threads() == 1 \
        and prov["torch"] == torch.__version__:
    assert spot["curve"] == committed["curve"]  # 本书固定的数值设置下（见开发环境）：逐位相同

# %% [markdown]
# 下表把论文的数字和我们 3 个种子的结果并排。「本书」是最后一步（第 8000 步）的测试准确率，均值 ± 样本标准差（分母 $n-1$）；
# 测试集有 1000 个样本，准确率只能是 0.1% 的整数倍。「判定」用 [12.2](methodology.md) 的规则：
# 差 $d$ = 本书均值 − 论文数字，容差 $\tau = \max(t_{0.975,\,n-1}\, s\sqrt{1/n + 1/m},\ 0.5)$，$n = 3$ 是我们的种子数，
# $t_{0.975,\,n-1}$ 是自由度 $n - 1$ 的学生 t 分布的 97.5% 分位数（双侧 5% 检验的临界值，$n = 3$ 时为 4.30），
# 论文没说跑了几次，取 $m = 1$；0.5 是论文只给整数带来的舍入误差。$|d| \le \tau$ 判为「一致」，否则按符号判为「偏高」或「偏低」。
# 只有 3 个种子时临界值是 4.30 而不是 2，容差很宽：「一致」只说明差距不比种子波动大，不说明两者相同。
# 「最高点」是每个种子在 33 个评估点中最高的测试准确率（曲线最高点）的均值，只用来分析差距，不能当作结果报告。
# 带 * 的 MLP-256 是补充实验：隐藏层 256 维、其余与 MLP 相同，不在论文表中，原因见「差距分析」。

# %%
def show(markdown_text: str) -> None:
    """在 Jupyter 里显示成表格，在终端里打印 Markdown 源文本。"""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
        if get_ipython() is not None:
            return display(Markdown(markdown_text))
    except ImportError:
        pass
    print(markdown_text)


def verdict(values: np.ndarray, paper: float, m: int = 1, decimals: int = 0) -> tuple[str, float, float]:
    """12.2 的比较规则：返回（判定，差，容差）。"""
    d = values.mean() - paper
    t_crit = stats.t.ppf(0.975, len(values) - 1)  # 学生 t 分布的临界值，自由度 n - 1
    tol = max(t_crit * values.std(ddof=1) * np.sqrt(1 / len(values) + 1 / m), 0.5 * 10 ** -decimals)
    return ("一致" if abs(d) <= tol else "偏高" if d > 0 else "偏低"), d, tol


n_seeds = len(prov["seeds"])
print(f"n = {n_seeds} seeds: 0.975 quantile of t with {n_seeds - 1} degrees of freedom = {stats.t.ppf(0.975, n_seeds - 1):.2f}")


best = {}  # (模型，数据) -> 各种子曲线最高点（%）
for r in results["runs"]:
    best.setdefault((r["model"], r["data"]), []).append(round(100 * max(r["curve"]["test_acc"]), 1))
best = {k: np.array(v) for k, v in best.items()}
PAPER_ROW = {**PAPER, **{(m, d): PAPER["mlp", d] for m in EXTRA for d in DATASETS}}  # 补充行与论文的 MLP 比较
NAMES = {"logistic": "逻辑回归", "mlp": "MLP", "cnn": "CNN", "gru": "GRU", "mlp256": "MLP-256*"}
rows = ["| 数据 | 模型 | 论文 | 本书 | 差 / 容差 | 判定 | 最高点 |", "|---|---|---:|---:|---:|---|---:|"]
judged = {}
for dataset in DATASETS:
    for model_name in ("logistic", "mlp", "mlp256", "cnn", "gru"):
        key = (model_name, dataset)
        v, b = ours[key], best[key]
        judged[key], d, tol = verdict(v, PAPER_ROW[key])
        rows.append(f"| {'原始' if dataset == 'original' else '打乱'} | {NAMES[model_name]} | {PAPER_ROW[key]}% "
                    f"| {v.mean():.1f}% ± {v.std(ddof=1):.1f} | {d:+.1f} / {tol:.1f} | {judged[key]} "
                    f"| {b.mean():.1f}% ± {b.std(ddof=1):.1f} |")
show("\n".join(rows))
agree = [k for k in PAPER if judged[k] == "一致"]  # 只数论文表中的 8 个数字（不含补充实验）
print(f"{len(agree)} of the paper's {len(PAPER)} numbers agree; not agreeing: "
      f"{[(NAMES[m], d, judged[m, d]) for m, d in PAPER if judged[m, d] != '一致']}")

# %% [markdown]
# ## 训练曲线
#
# 实线是原始数据，虚线是打乱后的数据；线是 3 个种子的均值，阴影是 ± 1 个标准差。

# %%
steps = np.array(results["runs"][0]["curve"]["step"])
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.2))
for k, model_name in enumerate(MODELS):
    for dataset, style in zip(DATASETS, ("-", "--")):
        curves = [r["curve"] for r in results["runs"] if (r["model"], r["data"]) == (model_name, dataset)]
        accs = 100 * np.array([c["test_acc"] for c in curves])
        losses = np.array([c["train_loss"][1:] for c in curves], dtype=float)
        label = f"{model_name} ({dataset})"
        ax_acc.plot(steps, accs.mean(0), style, color=f"C{k}", label=label)
        ax_acc.fill_between(steps, accs.mean(0) - accs.std(0, ddof=1), accs.mean(0) + accs.std(0, ddof=1),
                            color=f"C{k}", alpha=0.15)
        ax_loss.plot(steps[1:], losses.mean(0), style, color=f"C{k}", label=label)
ax_acc.set(xlabel="step", ylabel="test accuracy (%)", ylim=(0, 100), title="test accuracy")
ax_loss.set(xlabel="step", ylabel="train loss (mean over 250 steps)", yscale="log", title="train loss")
ax_acc.legend(fontsize=8, ncol=2, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 差距分析
#
# 按 [12.2](methodology.md) 的排查清单逐行看。数据（清单第 1 项）与论文相同：`make_dataset(get_dataset_args())`
# 生成的就是论文的 4000 / 1000 个样本；指标（第 2 项）都是测试集准确率。剩下的差距来自第 3 项（报告哪一步）、
# 第 4 项（藏在代码里的超参数）和第 5、6 项（波动与舍入）。下面引用的数字都来自上表和紧跟着的代码输出，
# 代码断言了每一条说法。
#
# **逻辑回归：一致。** 31.5% 对 32%，差 −0.5，恰好在论文整数的舍入范围内。3 个种子的结果完全相同（标准差 0.0），
# 打乱后也完全相同：逻辑回归的损失是凸函数，不同的初始化被训练到同一个解；打乱输入位置只是重排了
# $\mathbf{W}$ 的列，对应的解也只是重排。曲线最高点 32.8% 出现在训练早期（前 2000 步），之后有轻微的过拟合。
#
# **CNN、GRU（原始数据）和 CNN（打乱）：一致，而且很接近。** 94.0% 对 94%、91.4% 对 91%、56.3% 对 56%，
# 差都不到 1 个百分点。
#
# **MLP：原始数据上偏低，打乱后判为一致，但两行其实是同一个实验。** 按作者 `models.py` 里 `MLPBase` 的默认值，
# 我们的 MLP 隐藏层是 100 维（与 12.1 的参数量 15210 对应）。原始数据上 66.0% ± 0.3，比论文低 2.0 个百分点，
# 超出容差 1.6，判为偏低；打乱后 65.2% ± 1.9，差 −2.8，但这一行的标准差大，容差放宽到 9.7，判为一致。
# 对 MLP 来说，打乱输入位置等于重排第一层权重 $\mathbf{W}_1$ 的列，而 PyTorch 的默认初始化对每个元素独立同分布，
# 所以原始数据和打乱数据上的训练是同一个随机实验，准确率的分布完全相同（下一节用检验确认两行的均值没有显著差别）。
# 同一个实验的两行，标准差一个 0.3、一个 1.9，相差 <output>6</output> 倍：$n = 3$ 时，标准差本身就估计得很粗，
# 容差随之忽宽忽窄，两行的判定也就不同。把两行的 <output>6</output> 次运行合在一起看更可靠：它们全部低于论文的 68%，最高 66.7%。
#
# 作者的 `get_model_args()` 里还有一个 `hidden_size = 256`。补充实验 MLP-256（带 * 的行）把隐藏层换成 256 维、
# 其余不变，原始数据上 69.1% ± 1.1，打乱后 67.7% ± 0.8，都判为一致；它的 <output>6</output> 次运行在 67.0% 到 70.2% 之间，
# 分布在 68% 的两侧。所以论文的 MLP 可能是用 `hidden_size = 256` 搭的——这正是清单第 4 项「藏在代码里的超参数」：
# 论文正文写的是「MLP」，决定结果的数字只在代码里。我们仍把 100 维的结果放在正文的行里，因为这是按作者模型代码的
# 默认值能直接得到的；判断依据和补充实验都写在这里，读者可以自己下结论。
#
# **GRU（打乱）：判为一致，但 3 个种子都低于论文，原因很可能是报告哪一步。** 53.0% ± 1.1 对 57%，差 −4.0，
# 在容差 5.4 以内；不过 3 个种子（54.2%、52.1%、52.7%）都低于 57%。右图中这条曲线的训练损失一直在下降，
# 测试准确率却在前 3000 步内达到最高、之后回落：GRU 在打乱的序列上过拟合了。3 个种子曲线最高点的均值是 56.2%，
# 离论文的 57% 更近；第 8000 步只剩 53.0%。作者的 `train.py` 每 250 步记录一次测试准确率，论文没有说表中用的是哪一步
# （12.1 笔记的「仍然未知」）。如果论文取的是曲线的最高点，或是更早停止的一次训练，差距就会缩小。
# 我们坚持报告最后一步：用测试集挑最高点等于拿测试集选模型，得到的数字偏高。
#
# **其他差别。** 作者的训练循环是 `range(total_steps + 1)`，比我们多更新 1 步；
# 我们在第 0 步（训练前）也评估了一次。两者对第 8000 步的准确率都没有可见的影响。

# %%
# 逐条断言上面的说法（数字都来自结果文件）
def curves_of(model_name: str, dataset: str) -> list:
    return [r["curve"] for r in results["runs"] if (r["model"], r["data"]) == (model_name, dataset)]


def best_step(curve: dict) -> int:
    return curve["step"][int(np.argmax(curve["test_acc"]))]


for key in [("mlp", "original"), ("mlp", "shuffled"), ("mlp256", "original"), ("mlp256", "shuffled"), ("gru", "shuffled")]:
    print(f"{NAMES[key[0]]:>8} {key[1]:>8}: " + ", ".join(f"{a:.1f}%" for a in ours[key]))
mlp_runs, mlp256_runs = (np.concatenate([ours[m, d] for d in DATASETS]) for m in ("mlp", "mlp256"))
std_ratio = ours["mlp", "shuffled"].std(ddof=1) / ours["mlp", "original"].std(ddof=1)
print(f"MLP: {len(mlp_runs)} runs, max {mlp_runs.max():.1f}%; std ratio shuffled / original {std_ratio:.0f}")
print(f"MLP-256: {len(mlp256_runs)} runs, from {mlp256_runs.min():.1f}% to {mlp256_runs.max():.1f}%")

assert judged["logistic", "original"] == judged["logistic", "shuffled"] == "一致"
assert ours["logistic", "original"].std() == 0 and np.array_equal(ours["logistic", "original"], ours["logistic", "shuffled"])
assert all(best_step(c) <= 2000 for c in curves_of("logistic", "original"))
close = [("cnn", "original"), ("gru", "original"), ("cnn", "shuffled")]
assert all(judged[k] == "一致" and abs(ours[k].mean() - PAPER[k]) < 1 for k in close)
assert judged["mlp", "original"] == "偏低" and judged["mlp", "shuffled"] == "一致"
assert round(std_ratio) == 6 and (mlp_runs < PAPER["mlp", "original"]).all()
assert judged["mlp256", "original"] == judged["mlp256", "shuffled"] == "一致"
assert mlp256_runs.min() < PAPER["mlp", "original"] < mlp256_runs.max()
gru_shuffled = curves_of("gru", "shuffled")
assert judged["gru", "shuffled"] == "一致" and (ours["gru", "shuffled"] < PAPER["gru", "shuffled"]).all()
assert abs(best["gru", "shuffled"].mean() - PAPER["gru", "shuffled"]) < abs(ours["gru", "shuffled"].mean() - PAPER["gru", "shuffled"])
assert all(best_step(c) <= 3000 for c in gru_shuffled)
assert all(c["train_loss"][-1] < c["train_loss"][c["step"].index(3000)] for c in gru_shuffled)
assert len(agree) == 7 and [k for k in PAPER if k not in agree] == [("mlp", "original")]
print("差距分析的每一条说法都与结果文件相符")

# %% [markdown]
# ## 打乱位置的作用
#
# 论文用打乱的数据集说明 CNN 和 GRU 的优势来自空间结构。这是一个消融实验（见 [12.2](methodology.md)）：
# 打乱只去掉了相邻位置之间的关系，样本和标签都不变。下面算出每个模型打乱后测试准确率的变化（打乱 − 原始，百分点），
# 并用 12.2 介绍的 Welch t 检验判断 MLP 的变化是不是种子波动。
#
# GRU 跌落最多（38.4 个百分点），CNN 其次（37.7），两者相差不到 1 个百分点。逻辑回归的结果逐位不变。
# MLP 的均值变了 −0.8 个百分点，但 Welch t 检验的 p 值是 0.54：这点变化完全可以由种子波动解释。
# 这正是上一节的结论——对 MLP 来说两者本来就是同一个随机实验。

# %%
drop = {m: ours[m, "shuffled"].mean() - ours[m, "original"].mean() for m in MODELS}  # 论文表中的 4 个模型
for m in sorted(MODELS, key=drop.get):
    print(f"{NAMES[m]:>6}: {drop[m]:+.1f} points")
mlp_test = stats.ttest_ind(ours["mlp", "shuffled"], ours["mlp", "original"], equal_var=False)
print(f"MLP shuffled vs original: Welch t = {mlp_test.statistic:.2f}, df = {mlp_test.df:.2f}, p = {mlp_test.pvalue:.2f}")
print(f"GRU drops {drop['cnn'] - drop['gru']:.1f} points more than CNN")
assert sorted(MODELS, key=drop.get)[:2] == ["gru", "cnn"]        # GRU 跌落最多，CNN 其次
assert 0 < drop["cnn"] - drop["gru"] < 1                          # 两者相差不到 1 个百分点
assert np.array_equal(ours["logistic", "original"], ours["logistic", "shuffled"])  # 逻辑回归逐位不变
assert mlp_test.pvalue > 0.05                                     # MLP 的变化是种子波动

# %% [markdown]
# ## 小结
#
# - 复现一张表，先把论文里的数字、作者代码里的超参数和数据生成方式写进代码，再谈比较；
# - 论文表的 8 个数字中，<output>7</output> 个判为一致；原始数据上的 MLP 偏低 2.0 个百分点，
#   而 256 维隐藏层的补充实验与论文一致，论文的 MLP 可能用了代码里的 `hidden_size = 256`；
#   打乱数据上的 GRU 虽判为一致，3 个种子却都低于论文，它的曲线最高点离论文更近，差别可能在于报告哪一步；
# - 每个配置至少 3 个种子，报告均值 ± 标准差；$n = 3$ 时比较要用 t 临界值（4.30），容差很宽，
#   标准差本身也估计得很粗（同一个实验的 MLP 两行：0.3 与 1.9）；
# - 空间结构是 CNN 和 GRU 的优势来源：打乱位置后 GRU 跌落 38.4 个百分点、CNN 跌落 37.7；
#   逻辑回归的结果逐位不变，MLP 的 −0.8 是种子波动（Welch t 检验 p = 0.54）；
# - 结果文件记录命令、版本、CPU、线程数、日期和耗时，页面从文件生成，任何人都能重跑并对照。
#
# ## 练习
#
# 1. 把 `Config` 的 `seeds` 改成 5 个种子重跑完整模式，标准差的估计变了多少？哪些行的结论会改变？
# 2. 把 `train` 里的按顺序取批改成每轮随机打乱（`torch.randperm`），MLP 和 GRU 的准确率有什么变化？
#    这说明复现时「照抄作者代码的细节」有多重要？
# 3. 去掉 `MLP` 中的跳跃连接，在原始数据上重新训练，它离论文的 68% 更近还是更远？

# %% [markdown]
# ### 参考答案
#
# 三道题都要按完整设置训练（每次 8000 步）才能给出最终的回答，构建网站时跑不起。下面每题先讲推理，
# 再用结果文件和几次快速模式的训练（200 步，共几秒钟）给出能在这里检查的证据，并说明完整的回答需要跑什么。
# 代码格总用快速设置 `QUICK` 训练，不改动上面的实验和结果文件。

# %% [markdown]
# **1.** 先看不训练也能回答的部分。种子从 3 个增加到 5 个，t 临界值从 4.30 降到 2.78，容差公式中的
# $t_{0.975,\,n-1}\sqrt{1/n + 1}$ 从 4.97 降到 3.04：即使标准差不变，容差也缩小约四成。
# 标准差本身的估计也更可靠：按 $\chi^2$ 分布，3 个种子时真实标准差 $\sigma$ 的 95% 区间是样本标准差 $s$ 的 0.52 到 6.28 倍，
# 5 个种子时是 0.60 到 2.87 倍。MLP 两行（同一个实验）的标准差 0.3 与 1.9 那样的悬殊，多跑两个种子后通常会缩小。
# 哪些行的结论会改变，要等真正跑完才知道；假设均值和标准差都不变、只是 $n = 5$，
# 只有打乱数据上的 GRU 会改变：差 −4.0 超出新的容差 3.3，从「一致」变为「偏低」，这正是差距分析中「3 个种子都低于论文」的那一行。
# 快速模式下的 MLP 说明了 3 个种子的标准差有多不可靠：种子 0–2 的测试准确率的标准差只有 0.001，加上种子 3、4 后变成 0.016。
# 完整模式跑 5 个种子，按结果文件记录的耗时估计，约需 <output>24</output> 分钟。

# %%
# 容差 ±0.15：快速模式的训练结果，理由同「运行」一节（这里 5 个种子的标准差 0.016，3×√2×0.016≈0.07）
crit = {n: stats.t.ppf(0.975, n - 1) for n in (3, 5)}
for n in (3, 5):
    low, high = np.sqrt((n - 1) / stats.chi2.ppf([0.975, 0.025], n - 1))  # σ / s 的 95% 区间
    print(f"n = {n}: t_0.975 = {crit[n]:.2f}, t * sqrt(1/n + 1) = {crit[n] * np.sqrt(1 / n + 1):.2f}, "
          f"sigma / s in [{low:.2f}, {high:.2f}]")
changed = []
for key in PAPER_ROW:  # 假设均值和标准差都不变，只把 n 换成 5
    v = ours[key]
    d = v.mean() - PAPER_ROW[key]
    tol5 = max(crit[5] * v.std(ddof=1) * np.sqrt(1 / 5 + 1), 0.5)
    new = "一致" if abs(d) <= tol5 else ("偏高" if d > 0 else "偏低")
    if new != judged[key]:
        changed.append(key)
        print(f"{NAMES[key[0]]} ({key[1]}): diff {d:+.1f}, tolerance {verdict(v, PAPER_ROW[key])[2]:.1f} -> {tol5:.1f}, "
              f"{judged[key]} -> {new}")
assert changed == [("gru", "shuffled")]

quick_mlp = np.array([train("mlp", data["original"], s, QUICK)["test_acc"] for s in range(5)])
print("quick mode, MLP, seeds 0-4:", " ".join(f"{a:.3f}" for a in quick_mlp))
print(f"std of seeds 0-2: {quick_mlp[:3].std(ddof=1):.3f}, of seeds 0-4: {quick_mlp.std(ddof=1):.3f}")
print(f"full mode with 5 seeds: about {prov['wall_time_s'] * 5 / 3 / 60:.0f} min")
if device.type == "cpu" and os.environ.get("MKL_CBWR"):  # 本书固定的数值设置下的这一次：3 个种子的标准差远小于 5 个种子的
    assert quick_mlp.std(ddof=1) > 5 * quick_mlp[:3].std(ddof=1)

# %% [markdown]
# **2.** 先想清楚改动意味着什么。按顺序取批时，种子只改变初始化；每轮随机打乱后，取批的顺序也由种子决定，
# 标准差里就多了一项「数据顺序」的波动（[12.2](methodology.md) 引用的 Bouthillier 等人的分析），
# 和论文的数字比较时，比较的也不再是同一个实验。平均准确率会不会变，事先说不准：
# 打乱让每轮的梯度噪声不同，可能稍好也可能稍差，这只能靠多个种子的实验回答。
# 下面在快速模式下比较 MLP 的两种取批方式（同样的 3 个种子，初始化相同）：测试准确率按顺序取批时为 0.562 ± 0.001，
# 每轮打乱时为 0.575 ± 0.025，Welch t 检验 $p = 0.46$，看不出差别。GRU 一次快速训练就要几秒，这里不跑。
# 完整的回答需要按完整设置、MLP 和 GRU 各 3 个种子、两种取批方式都训练 8000 步，并对每一行做 Welch t 检验。
# 这道题的教训在于：取批方式是论文里没写、只在代码里的细节；不照抄它，结果的差别就混进了一个额外的变化，
# 也无法再逐位重现作者的训练曲线。先照抄，再把它作为一个单独的消融去检验，才能分清它的作用。

# %%
# 容差 ±0.15：快速模式的训练结果，理由同「运行」一节（每轮打乱时 3 个种子的标准差 0.025，3×√2×0.025≈0.11）
class MLPNoSkip(MLP):
    """与 MLP 相同的层（同一个种子给出同样的初始权重），去掉跳跃连接：h = ReLU(W2 h1 + b2)。"""

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def train_variant(make_model, d: dict, seed: int, cfg: Config, reshuffle: bool = False) -> float:
    """与 train 相同的训练；reshuffle=True 时每轮开始用种子 seed 的生成器打乱训练集。返回最后一步的测试准确率。"""
    torch.manual_seed(seed)  # 初始化与 train 相同
    model = make_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order_gen = torch.Generator().manual_seed(seed)  # 只用来打乱，不影响初始化
    for step in range(1, cfg.steps + 1):
        i = ((step - 1) * cfg.batch_size) % len(d["x"])
        if i == 0:
            order = (torch.randperm(len(d["x"]), generator=order_gen) if reshuffle else torch.arange(len(d["x"]))).to(device)
        idx = order[i:i + cfg.batch_size]
        loss = F.cross_entropy(model(d["x"][idx]), d["y"][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(model, d["x_test"], d["y_test"])


sequential = quick_mlp[:3]  # 上一题：按顺序取批，种子 0–2
assert train_variant(MLP, data["original"], 0, QUICK) == sequential[0]  # 与 train 是同一个训练
reshuffled = np.array([train_variant(MLP, data["original"], s, QUICK, reshuffle=True) for s in range(3)])
batching = stats.ttest_ind(reshuffled, sequential, equal_var=False)
print(f"quick mode, MLP: sequential {sequential.mean():.3f} ± {sequential.std(ddof=1):.3f}, "
      f"reshuffled {reshuffled.mean():.3f} ± {reshuffled.std(ddof=1):.3f}; Welch p = {batching.pvalue:.2f}")
assert batching.pvalue > 0.05

# %% [markdown]
# **3.** 已有的证据都指向「更远」。[12.2](methodology.md) 用动量 SGD 训练 300 步，去掉跳跃连接后低 4 个多百分点；
# 下面用本页的设置（Adam）在快速模式下训练 200 步，3 个种子的测试准确率去掉后是 0.538 ± 0.003，保留时是 0.562 ± 0.001，
# 低 0.024，Welch t 检验 $p = 0.0033$。我们的 MLP（66.0%）本来就比论文的 68% 低，再低就离得更远。
# 但这两个都是短训练，训练初期的差距不一定能外推到 8000 步。
# 完整的回答需要按完整设置训练去掉跳跃连接的 MLP 3 个种子，与结果文件中的 MLP 一行比较（Welch t 检验）。
# 如果完整设置下也是更远，就多了一条证据说明论文的 MLP 带着跳跃连接；这与差距分析中对 `hidden_size` 的判断是两个独立的细节。

# %%
# 容差 ±0.15：快速模式的训练结果，理由同「运行」一节
no_skip = np.array([train_variant(MLPNoSkip, data["original"], s, QUICK) for s in range(3)])
skip_test = stats.ttest_ind(sequential, no_skip, equal_var=False)
print(f"quick mode, MLP without skip: {' '.join(f'{a:.3f}' for a in no_skip)} -> {no_skip.mean():.3f} ± "
      f"{no_skip.std(ddof=1):.3f}; with skip {sequential.mean():.3f} ± {sequential.std(ddof=1):.3f}; "
      f"difference {sequential.mean() - no_skip.mean():+.3f}, Welch p = {skip_test.pvalue:.4f}")
assert no_skip.mean() < sequential.mean()
if device.type == "cpu" and os.environ.get("MKL_CBWR"):  # 本书固定的数值设置下的这一次：差别显著
    assert skip_test.pvalue < 0.05

# %% [markdown]
# ## 参考文献
#
# - S. Greydanus, D. Kobak. Scaling down deep learning with MNIST-1D. ICML, 2024.
# - C. Zhang, S. Bengio, M. Hardt, B. Recht, O. Vinyals. Understanding deep learning requires rethinking
#   generalization. ICLR, 2017.（打乱像素位置的做法）
# - K. Cho et al. Learning phrase representations using RNN encoder-decoder for statistical machine translation.
#   EMNLP, 2014.（GRU）
