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
#       "80%": He 等（2016）第 4.2 节：热身到训练误差低于 80% 再换回 0.1
# ---

# %% [markdown]
# # 12.4 复现 ResNet 的「退化」现象
#
# He 等人在 ResNet 论文（CVPR 2016）开头用一张图提出问题：在 CIFAR-10 上，56 层的普通卷积网络（plain network）
# 不但测试误差比 20 层的高，**训练误差也更高**（论文图 1）。这不是过拟合——过拟合的训练误差应当更低——
# 而是更深的网络更难优化，论文称之为退化（degradation）。加上残差连接（residual connection）之后，
# 更深的网络训练误差反而更低（CIFAR-10 上见论文图 6；图 4 是 ImageNet 上的同一组对比）。
#
# 本页把这个实验缩小到一个 CPU 核上几分钟能跑完的规模：数据换成 MNIST-1D 的 4000 个训练样本，
# 网络换成一维卷积，通道数减半，但保留论文的网络结构、优化器和学习率方案。我们要回答的问题与论文相同：
# 把普通网络加深时，训练误差会不会上升？同样深度的残差网络呢？论文的图画的是训练误差（分错的比例，%），
# 我们同时记录训练误差和训练损失（交叉熵）。
#
# 与 [12.3](mnist1d_benchmark.nb.py) 一样，本页默认以快速模式运行（构建网站和测试时用，几秒钟）；
# 在仓库根目录运行 `make reproduce` 进入完整模式，结果写进 `results/resnet_degradation.json`，
# 下面的表和图都从这个文件画出。

# %% [markdown]
# ## 网络结构
#
# 论文第 4.2 节为 CIFAR-10 设计了一族网络：先是一个 $3 \times 3$ 卷积，然后是三段（stage），
# 每段 $n$ 个块、每块两层 $3 \times 3$ 卷积，三段的通道数依次为 16、32、64，后两段的第一层用步幅 2 把特征图边长减半，
# 最后是全局平均池化和一个全连接层。带权重的层共有 $6n + 2$ 层，$n = 3, 5, 9$ 分别给出 20、32、56 层。
# 每个卷积之后接批归一化（batch normalization）。
#
# 普通网络的一个块计算 $\mathbf{y} = \mathrm{ReLU}(\mathcal{F}(\mathbf{x}))$，残差网络计算
# $\mathbf{y} = \mathrm{ReLU}(\mathcal{F}(\mathbf{x}) + \mathbf{x})$，其中
# $\mathcal{F}(\mathbf{x}) = \mathrm{BN}(\mathbf{W}_2 * \mathrm{ReLU}(\mathrm{BN}(\mathbf{W}_1 * \mathbf{x})))$，$*$ 表示卷积。
# 通道数翻倍、长度减半的地方，捷径（shortcut）用论文的选项 A：隔一个位置取一个，多出来的通道补零。
# 选项 A 没有参数，所以同样深度的普通网络和残差网络参数量完全相同，两者只差那一个加法。
#
# 我们的缩小版：输入是长度 40 的一维序列，三段的通道数为 8、16、32，序列长度依次为 40、20、10；
# 深度取 $n = 1, 3, 5, 9$，即 8、20、32、56 层。

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

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, residual: bool):
        super().__init__()
        self.residual, self.extra = residual, c_out - c_in
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)

    def forward(self, x):                                   # x: (N, c_in, L)
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))                         # (N, c_out, L / stride)
        if self.residual:
            shortcut = x
            if self.extra:                                  # 选项 A：隔位取样，通道补零
                shortcut = F.pad(x[:, :, ::2], (0, 0, 0, self.extra))
            h = h + shortcut
        return F.relu(h)


class Net(nn.Module):
    def __init__(self, depth: int, residual: bool, widths=(8, 16, 32)):
        super().__init__()
        n, rest = divmod(depth - 2, 6)
        assert rest == 0 and n >= 1, f"深度必须是 6n + 2，而不是 {depth}"
        self.stem = nn.Sequential(nn.Conv1d(1, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm1d(widths[0]), nn.ReLU())
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                blocks.append(Block(c_in, c_out, 2 if stage > 0 and i == 0 else 1, residual))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, 10)

    def forward(self, x):                                   # x: (N, 40)
        h = self.blocks(self.stem(x.unsqueeze(1)))          # (N, 32, 10)
        return self.fc(h.mean(-1))                          # 全局平均池化后分类：(N, 10)


def weighted_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv1d, nn.Linear)) for m in model.modules())


for depth in (8, 20, 32, 56):
    plain, res = Net(depth, residual=False), Net(depth, residual=True)
    n_plain, n_res = (sum(p.numel() for p in m.parameters()) for m in (plain, res))
    print(f"depth {depth:>2}: {weighted_layers(plain)} weighted layers, {n_plain} parameters (plain = residual)")
    assert weighted_layers(plain) == weighted_layers(res) == depth and n_plain == n_res
    with torch.no_grad():
        assert res(torch.zeros(4, 40)).shape == (4, 10)

# %% [markdown]
# ## 训练设置
#
# 与论文第 4.2 节相同：SGD，动量 0.9，权重衰减 $10^{-4}$，批量 128，学习率从 0.1 开始，
# 在训练进行到一半和四分之三时各除以 10。论文在 CIFAR-10 上训练 64000 步；
# 我们的数据小得多，训练 24 轮（每轮 32 步，共 768 步），学习率在第 12 轮和第 18 轮之后下降。
# 训练误差（training error）是一轮中所有批次上分错的样本所占的比例，训练损失是这些批次上交叉熵的平均值；
# 两者都在训练模式下、对优化器看到的同一批数据统计，不另外评估。论文图 1、图 6 的纵轴是训练误差，
# 论文没有说明它是怎样统计的，这里的做法是最便宜的一种。
#
# 快速模式只比较 8 层和 20 层、训练 4 轮，断言即使这么短也能看到的现象：20 层普通网络的训练损失高于 8 层的，
# 而 20 层残差网络的训练损失低于 20 层普通网络。

# %%
MODE = os.environ.get("BOOK_REPRO", "quick")  # quick：快速模式；full：完整复现
assert MODE in ("quick", "full"), f"BOOK_REPRO 只能是 quick 或 full，而不是 {MODE!r}"


@dataclass(frozen=True)
class Config:
    depths: tuple = (8, 20, 32, 56)
    epochs: int = 24
    milestones: tuple = (12, 18)   # 这些轮之后学习率除以 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seeds: tuple = (0, 1, 2)


FULL = Config()
QUICK = Config(depths=(8, 20), epochs=4, milestones=(2, 3), seeds=(0,))
config = FULL if MODE == "full" else QUICK
print(MODE, config)

raw = make_dataset(get_dataset_args())
x, x_test = (torch.tensor(raw[k], dtype=torch.float32, device=device) for k in ("x", "x_test"))
y, y_test = (torch.tensor(raw[k], dtype=torch.int64, device=device) for k in ("y", "y_test"))


def train(depth: int, residual: bool, seed: int, cfg: Config, make_model=None) -> dict:
    """训练一个网络：默认是 Net(depth, residual)；make_model 给出另一种构造（练习的参考答案用它）。"""
    torch.manual_seed(seed)
    model = (make_model() if make_model else Net(depth, residual)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), gamma=0.1)
    order = torch.Generator().manual_seed(seed)         # 每轮打乱顺序，在 CPU 上生成以便各设备一致
    train_loss, train_err = [], []
    for epoch in range(cfg.epochs):
        model.train()
        perm, total, wrong = torch.randperm(len(x), generator=order).to(device), 0.0, 0
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            wrong += (logits.argmax(1) != y[idx]).sum().item()  # 训练误差：这一批中分错的样本数
        train_loss.append(total / len(x))
        train_err.append(wrong / len(x))
        schedule.step()
    model.eval()
    with torch.no_grad():
        test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {"train_loss": train_loss[-1], "train_err": train_err[-1], "test_acc": test_acc,
            "curve": {"epoch": list(range(1, cfg.epochs + 1)), "train_loss": train_loss, "train_err": train_err}}

# %% [markdown]
# ## 运行

# %%
# 容差 ±0.8：快速模式的训练结果。换到 ARM 或 GPU 上相当于换了种子：快速模式下 5 个种子的训练损失标准差最大 0.18，3×√2×0.18≈0.8
start = time.perf_counter()
runs = []
for depth in config.depths:
    for residual in (False, True):
        for seed in config.seeds:
            run = {"depth": depth, "residual": residual, "seed": seed, **train(depth, residual, seed, config)}
            runs.append(run)
            print(f"{'residual' if residual else 'plain':>8}-{depth:<2} seed {seed}: train loss {run['train_loss']:.3f}, "
                  f"train error {run['train_err']:.3f}, test acc {run['test_acc']:.3f}")
wall_time = time.perf_counter() - start

if MODE == "quick":
    loss = {(r["depth"], r["residual"]): r["train_loss"] for r in runs}
    assert loss[20, False] > loss[8, False]      # 普通网络：加深后训练损失上升
    assert loss[20, True] < loss[20, False]      # 同样深度的残差网络训练得更好

# %% [markdown]
# ## 记录出处
#
# 与 12.3 相同，完整模式把结果连同出处写进结果文件。

# %%
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


RESULTS = Path("results") / "resnet_degradation.json"
provenance = {
    "command": os.environ.get("BOOK_REPRO_COMMAND", "BOOK_REPRO=full python resnet_degradation.nb.py"),
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
    RESULTS.write_text(json.dumps({"experiment": "resnet_degradation", "provenance": provenance, "runs": runs},
                                  ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote", RESULTS)

# %% [markdown]
# ## 结果
#
# 读入提交在仓库里的结果文件（在别处运行时，从本书仓库的 `docs/part12/results/` 下载它）：

# %%
# 容差 ±0.03：抽查重跑的训练损失。换平台相当于换了种子：plain-8 的 3 个种子在 0.018 到 0.020 之间，取宽松的 0.03
results = json.loads(RESULTS.read_text(encoding="utf-8"))
prov = results["provenance"]
for key in ("command", "date", "wall_time_s", "torch", "cpu", "torch_threads", "seeds"):
    print(f"{key:>13}: {prov[key]}")
assert prov["mode"] == "full" and len(prov["seeds"]) >= 3
assert prov["config"] == json.loads(json.dumps(asdict(FULL))), "结果文件不是当前代码的完整设置跑出来的：请重跑"

depths = sorted({r["depth"] for r in results["runs"]})


def per_seed(key: str, d: int, res: bool, scale: float = 1.0) -> np.ndarray:
    """深度 d、普通（res=False）或残差网络的某个结果，按种子排列。"""
    return scale * np.array([r[key] for r in results["runs"] if (r["depth"], r["residual"]) == (d, res)])


error = {(d, res): per_seed("train_err", d, res, 100) for d in depths for res in (False, True)}  # 训练误差（%）
final = {(d, res): per_seed("train_loss", d, res) for d in depths for res in (False, True)}      # 训练损失
test = {(d, res): per_seed("test_acc", d, res, 100) for d in depths for res in (False, True)}    # 测试准确率（%）
assert all(len(v) == len(prov["seeds"]) for v in final.values())

# 抽查：按完整设置重跑结果文件中的一行。换一台机器（或 GPU）时允许有差异，但应小于换种子带来的差异
seed0 = prov["seeds"][0]
committed = next(r for r in results["runs"] if (r["depth"], r["residual"], r["seed"]) == (8, False, seed0))
spot = train(8, False, seed0, Config(**{**prov["config"], "depths": (8,)}))
print(f"spot check plain-8 seed {seed0}: rerun {spot['train_loss']:.4f}, "
      f"file {committed['train_loss']:.4f}, identical: {spot['curve'] == committed['curve']}")
assert abs(spot["train_loss"] - committed["train_loss"]) <= max(3 * final[8, False].std(ddof=1), 0.005)
if device.type == "cpu" and os.environ.get("MKL_CBWR") and prov["torch_threads"] == torch.get_num_threads() == 1 \
        and prov["torch"] == torch.__version__:
    assert spot["curve"] == committed["curve"]  # 本书固定的数值设置下（见开发环境）：逐位相同


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


rows = ["| 层数 | 训练误差（普通） | 训练误差（残差） | 训练损失（普通） | 训练损失（残差） "
        "| 测试准确率（普通） | 测试准确率（残差） |", "|---:|---:|---:|---:|---:|---:|---:|"]
for d in depths:
    cells = [f"{error[d, res].mean():.2f}% ± {error[d, res].std(ddof=1):.2f}" for res in (False, True)]
    cells += [f"{final[d, res].mean():.3f} ± {final[d, res].std(ddof=1):.3f}" for res in (False, True)]
    cells += [f"{test[d, res].mean():.1f}% ± {test[d, res].std(ddof=1):.1f}" for res in (False, True)]
    rows.append(f"| {d} | " + " | ".join(cells) + " |")
show("\n".join(rows))

# %% [markdown]
# 左图是最后一轮的训练误差随深度的变化（误差线为 ± 1 个标准差，纵轴是对数刻度），对应论文的核心结论；
# 右图是训练过程中每一轮的训练误差，实线是普通网络，虚线是残差网络，颜色表示深度，对应论文的图 1 和图 6
# （论文用线性纵轴；这里的误差从百分之零点几到百分之几十，用对数纵轴才看得清）。

# %%
fig, (ax_depth, ax_curve) = plt.subplots(1, 2, figsize=(12, 4.2))
for res, marker, label in ((False, "o-", "plain"), (True, "s--", "residual")):
    mean = [error[d, res].mean() for d in depths]
    err = [error[d, res].std(ddof=1) for d in depths]
    ax_depth.errorbar(depths, mean, yerr=err, fmt=marker, capsize=4, label=label)
ax_depth.set(xlabel="depth (weighted layers)", ylabel="final train error (%)", yscale="log",
             xticks=depths, title="train error vs depth")
ax_depth.legend()
epochs = np.arange(1, prov["config"]["epochs"] + 1)
for k, d in enumerate(depths):
    for res, style in ((False, "-"), (True, "--")):
        curves = 100 * np.array([r["curve"]["train_err"] for r in results["runs"]
                                 if (r["depth"], r["residual"]) == (d, res)])
        ax_curve.plot(epochs, curves.mean(0), style, color=f"C{k}",
                      label=f"{'residual' if res else 'plain'}-{d}")
ax_curve.set(xlabel="epoch", ylabel="train error (%, epoch mean)", yscale="log", title="training curves")
ax_curve.legend(fontsize=8, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 结果分析
#
# **普通网络退化了。** 普通网络最后一轮的训练误差随深度单调上升：8 层 0.33%、20 层 10.14%、32 层 21.94%、
# 56 层 68.69%，训练损失也一样（0.019、0.254、0.548、1.762）。56 层的普通网络几乎没有学会
# （测试准确率 30.5%，与 12.3 的逻辑回归相当）。注意这是**训练**误差：
# 更深的网络参数更多、表达能力更强（它可以让多出来的层学成恒等映射，从而至少和浅的一样好），
# 却连训练集都拟合得更差，所以问题出在优化，而不是过拟合。这与论文图 1 和图 6（左）的结论相同。
# 20 层普通网络的 3 个种子差别很大（训练误差 12.85%、3.55%、14.03%）：同样的网络，有的初始化能训练好，有的不能。
#
# **残差网络在 32 层以内没有退化。** 残差网络 8、20、32 层的训练误差是 0.35%、0.22%、0.41%，都不到 0.5%；
# 训练损失是 0.021、0.012、0.018。加深并没有让它变差，20 层在两项上都最低。论文图 6（中）里更深的残差网络
# 训练误差更低，一直到 110 层；我们的缩小版在 8–32 层内只做到了「不变差」。
#
# **20 层和 32 层上，残差网络比同样深度的普通网络好得多；8 层时两者相当。** 20 层和 32 层的残差网络，
# 训练损失比普通网络低一个数量级以上（0.012 对 0.254，0.018 对 0.548），训练误差 0.22% 对 10.14%、0.41% 对 21.94%。
# 8 层时两者的训练误差都约为 0.3%（0.33% 与 0.35%），训练损失 0.019 与 0.021：这么浅的网络本来就不难优化，
# 残差连接没有用武之地。两者参数完全相同，只差那一个加法。56 层的情况见下一段。
#
# **56 层的残差网络：3 个种子中 2 个训练得很好，1 个没有。** 3 个种子的训练误差是 34.95%、0.50%、0.55%，
# 训练损失 0.837、0.017、0.021。两个训练好的种子与浅的残差网络相当；没训练好的那一个把均值拉到 12.00% ± 19.88
# （训练损失 0.291），比 20 层普通网络的训练损失（0.254）还高，但仍远低于 56 层普通网络（68.69%，1.762）。
# 这是我们缩小规模的代价，不是论文结论的反例：论文在 CIFAR-10 上训练 64000 步，我们只有 768 步；
# 论文训练 110 层网络时先用 0.01 的学习率「热身」到训练误差低于 80%，再换回 0.1，因为 0.1 一开始太大，难以开始收敛。
# 我们对所有深度使用同样的设置，没有热身；练习 2 请你验证热身能否让 56 层残差网络的 3 个种子都训练好。

# %%
# 逐条断言上面的说法（数字都来自结果文件）
for d, res in ((20, False), (56, True)):
    print(f"{'residual' if res else 'plain'}-{d} per seed: train error "
          + ", ".join(f"{e:.2f}%" for e in error[d, res]) + "; train loss " + ", ".join(f"{x:.3f}" for x in final[d, res]))
plain_err, plain_loss = [error[d, False].mean() for d in depths], [final[d, False].mean() for d in depths]
res_err, res_loss = {d: error[d, True].mean() for d in depths}, {d: final[d, True].mean() for d in depths}
assert depths == [8, 20, 32, 56]
assert plain_err == sorted(plain_err) and plain_loss == sorted(plain_loss)      # 普通网络：越深越差（两项都是）
assert plain_err[-1] > 50 and test[56, False].mean() < 40                         # 56 层几乎没学会，与逻辑回归相当
assert error[20, False].max() > 3 * error[20, False].min()                       # 20 层普通网络：种子间差别很大
assert max(res_err[d] for d in (8, 20, 32)) < 0.5 and max(res_loss[d] for d in (8, 20, 32)) < 0.03  # 8–32 层不退化
assert min((8, 20, 32), key=res_err.get) == min((8, 20, 32), key=res_loss.get) == 20                # 20 层两项都最低
for d in (20, 32):                                                                # 20、32 层：低一个数量级以上
    assert res_loss[d] * 10 < final[d, False].mean() and res_err[d] * 10 < error[d, False].mean()
assert abs(error[8, True].mean() - error[8, False].mean()) < 0.1                  # 8 层：两者相当
assert max(final[8, True].mean(), final[8, False].mean()) < 1.2 * min(final[8, True].mean(), final[8, False].mean())
good = error[56, True] < 1
assert good.sum() == 2 and error[56, True][~good][0] > 10                        # 56 层残差：2 个种子好，1 个没训练好
assert max(error[56, True][good]) < 1 and max(final[56, True][good]) < 0.03      # 好的两个与浅的残差网络相当
assert final[20, False].mean() < res_loss[56] < final[56, False].mean() / 5 and res_err[56] < plain_err[-1] / 5
print("结果分析的每一条说法都与结果文件相符")

# %% [markdown]
# ## 小结
#
# - 退化是优化问题：更深的普通网络训练误差更高（本页 8 → 56 层：0.33% → 68.69%），这不能用过拟合解释；
# - 残差连接 $\mathbf{y} = \mathrm{ReLU}(\mathcal{F}(\mathbf{x}) + \mathbf{x})$ 不增加参数（选项 A），却让 8–32 层的网络
#   训练误差都不到 0.5%，20 层和 32 层的训练损失比同样深度的普通网络低一个数量级以上；8 层时两者相当；
# - 缩小规模复现时，要分清哪些结论保留了下来（退化、残差的作用），哪些受限于规模（56 层残差网络在 768 步内
#   3 个种子中有 1 个没训练好），并把后者写明，而不是调参直到「看起来一样」；
# - 复现用的网络结构、优化器和学习率方案都照抄论文，只缩小数据、通道数和步数，并在页面上说明每一处缩小；
#   论文的图画的是训练误差，比较时要记录同一个量。
#
# ## 练习
#
# 1. 把 `Config` 的 `epochs` 改成 48（`milestones` 改成 `(24, 36)`），重跑完整模式。普通网络的退化会消失吗？
#    56 层残差网络呢？
# 2. 仿照论文训练 110 层网络的做法，在第 1 轮把学习率设为 0.01、之后恢复 0.1（可以用
#    `torch.optim.lr_scheduler.LambdaLR`），看 56 层残差网络的 3 个种子是否都能训练好。
# 3. 去掉所有 `BatchNorm1d`，在 8 层和 20 层上比较普通网络与残差网络。批归一化在退化现象中起什么作用？
# 4. 把捷径换成论文的选项 B（通道数变化处用 $1 \times 1$ 卷积加批归一化做投影），参数会多多少？结果有变化吗？

# %% [markdown]
# ### 参考答案
#
# 练习 1、2 要按完整设置重新训练（几分钟到十几分钟），构建网站时跑不起：下面给出推理，用结果文件中的训练曲线作证据，
# 并说明完整的回答需要跑什么。练习 3、4 在快速模式下各训练几秒钟。代码格总用快速设置 `QUICK` 训练，
# 不改动上面的实验和结果文件。

# %% [markdown]
# **1.** 这要重跑完整模式，按结果文件记录的耗时估计，48 轮约需 <output>15</output> 分钟。先从现有的曲线推测。
# 普通网络的训练误差在全部 24 轮中的每一轮都按深度排列（8 层 < 20 层 < 32 层 < 56 层），而且学习率为 0.1 的最后 3 轮
# （第 10–12 轮）里，56 层普通网络只降了 1.52 个百分点，仍在 72.48%。把这一段加长一倍，它很可能仍远高于浅的网络：
# 预计退化不会消失，只是差距缩小。56 层残差网络没训练好的那个种子（种子 0）在同样的 3 轮里从 56.25% 降到 45.20%，
# 下降得很快，只是学习率在第 12 轮之后就降了。加长训练，它很可能也能训练好。这两条都只是推测，
# 要由完整模式的结果来检验：普通网络在 48 轮后是否仍按深度排列，56 层残差网络的 3 个种子是否都低于 1%。

# %%
def curves(d: int, res: bool) -> np.ndarray:
    """深度 d 的普通（res=False）或残差网络，各种子每一轮的训练误差（%）：每行一个种子，每列一轮。"""
    return 100 * np.array([r["curve"]["train_err"] for r in results["runs"] if (r["depth"], r["residual"]) == (d, res)])


plain_by_epoch = np.array([curves(d, False).mean(0) for d in depths])  # 每行一个深度，每列一轮
ordered = all(list(plain_by_epoch[:, e]) == sorted(plain_by_epoch[:, e]) for e in range(plain_by_epoch.shape[1]))
print(f"plain nets ordered by depth in every one of {plain_by_epoch.shape[1]} epochs: {ordered}")
last_lr01 = prov["config"]["milestones"][0]  # 第 12 轮是学习率为 0.1 的最后一轮
for name, curve in (("plain-56 (mean of 3 seeds)", curves(56, False).mean(0)), ("residual-56 seed 0", curves(56, True)[0])):
    print(f"{name}: epoch {last_lr01 - 3} {curve[last_lr01 - 4]:.2f}% -> epoch {last_lr01} {curve[last_lr01 - 1]:.2f}% "
          f"({curve[last_lr01 - 1] - curve[last_lr01 - 4]:+.2f})")
print(f"full mode with 48 epochs: about {2 * prov['wall_time_s'] / 60:.0f} min")
plain56, res56_0 = curves(56, False).mean(0), curves(56, True)[0]
assert ordered and plain56[last_lr01 - 1] > 70 and 0 < plain56[last_lr01 - 4] - plain56[last_lr01 - 1] < 2
assert res56_0[last_lr01 - 4] - res56_0[last_lr01 - 1] > 5 * (plain56[last_lr01 - 4] - plain56[last_lr01 - 1])

# %% [markdown]
# **2.** `LambdaLR` 把初始学习率乘以一个随轮数变化的因子。第 1 轮取 0.1（学习率 0.01），之后取
# $0.1^{\text{已经过的里程碑个数}}$，就在原来的阶梯式调度前加上了热身。下面用一个只有一个参数的优化器检查 24 轮的学习率：
# 第 1 轮 0.01，第 2–12 轮 0.1，第 13–18 轮 0.01，第 19–24 轮 0.001。把 `train` 里的 `MultiStepLR` 换成它，
# 就能按完整设置训练 56 层残差网络的 3 个种子（耗时约为完整模式的四分之一）。热身能不能救回种子 0，事先说不准：
# 论文热身是因为 110 层网络在学习率 0.1 下「难以开始收敛」，而种子 0 第 1 轮的训练误差是 81.9%，
# 之后一直在缓慢下降，看起来不是没能开始收敛，而是收敛得太慢（见练习 1 的曲线）。所以热身未必有用；
# 要由完整的训练回答，并且要同时看其余两个种子有没有变差。

# %%
def warmup_then_steps(epoch: int, milestones=(12, 18)) -> float:
    """学习率的倍数：第 1 轮（epoch = 0）热身用 0.1，之后每过一个里程碑乘以 0.1。"""
    return 0.1 if epoch == 0 else 0.1 ** sum(epoch >= m for m in milestones)


dummy = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
warmup = torch.optim.lr_scheduler.LambdaLR(dummy, lambda e: warmup_then_steps(e, FULL.milestones))
lrs = []
for epoch in range(FULL.epochs):
    lrs.append(dummy.param_groups[0]["lr"])  # 这一轮训练用的学习率
    dummy.step()
    warmup.step()
print("learning rate per epoch:", " ".join(f"{lr:g}" for lr in lrs))
assert np.allclose(lrs, [0.01] + [0.1] * 11 + [0.01] * 6 + [0.001] * 6)
print(f"residual-56 seed 0, train error in epoch 1: {curves(56, True)[0][0]:.1f}%")

# %% [markdown]
# **3.** 在快速模式下（4 轮）去掉全部批归一化，普通网络 8 层和 20 层都学不动：最后一轮的训练损失停在 2.303，
# 等于 $\ln 10$，即对 10 类一律给出相同的概率。原因在初始化：PyTorch 卷积层的默认初始化让权重的方差只有 $1/(3 \cdot \text{fan\_in})$，
# 每经过一层「卷积 + ReLU」，信号的均方值大约缩小为原来的六分之一。下面的输出显示，初始化时送进全连接层的特征，
# 8 层普通网络的标准差只有 2.9e-03（有批归一化时为 0.21），20 层更是小到 1.9e-08：输出几乎与输入无关，梯度也就传不回去。
# 批归一化把每一层的输出重新缩放到单位方差，正是它让普通网络先能训练起来；论文因此认为退化不是信号消失造成的，
# 而是在信号正常时仍然存在的优化困难。残差网络的恒等捷径让输入绕过这些缩小信号的分支：没有批归一化时，
# 8 层残差网络的训练损失降到 1.695，20 层的降到 2.219，都好于同深度的普通网络，但远不如有批归一化时（0.491 与 0.718）。
# 去掉批归一化后，退化现象的对比本身就失去了意义：两种网络在 20 层都几乎没学会。
# 论文用的是 He 初始化（方差 $2/\text{fan\_in}$）；要单独研究批归一化，还应同时换成它，这里只改了一处。

# %%
# 容差 ±0.8：快速模式的训练结果，理由同「运行」一节
def strip_bn(model: nn.Module) -> nn.Module:
    """把所有 BatchNorm1d 换成恒等映射，其余不变。"""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm1d):
                setattr(module, name, nn.Identity())
    return model


def quick_result(depth: int, residual: bool) -> dict:
    """主实验快速模式（种子 0）的结果；完整模式下按快速设置重新训练。"""
    if MODE == "quick":
        return next(r for r in runs if (r["depth"], r["residual"], r["seed"]) == (depth, residual, 0))
    return train(depth, residual, 0, QUICK)


def feature_std(model: nn.Module) -> float:
    """初始化时，一批训练样本送进全连接层之前的特征的标准差。"""
    model.to(device).train()
    with torch.no_grad():
        return model.blocks(model.stem(x[:128].unsqueeze(1))).mean(-1).std().item()


without_bn = {}
for depth in (8, 20):
    for res in (False, True):
        torch.manual_seed(0)
        std_bn, std_no = feature_std(Net(depth, res)), feature_std(strip_bn(Net(depth, res)))
        without_bn[depth, res] = train(depth, res, 0, QUICK, make_model=lambda: strip_bn(Net(depth, res)))
        print(f"{'residual' if res else 'plain':>8}-{depth:<2}: feature std at init {std_bn:.2f} (BN) / {std_no:.1e} (no BN); "
              f"train loss {quick_result(depth, res)['train_loss']:.3f} (BN) / {without_bn[depth, res]['train_loss']:.3f} (no BN)")
assert all(abs(without_bn[d, False]["train_loss"] - np.log(10)) < 0.01 for d in (8, 20))   # 普通网络：停在 ln 10
assert without_bn[8, True]["train_loss"] < without_bn[8, False]["train_loss"] - 0.3     # 8 层残差网络学到了一些
if device.type == "cpu" and os.environ.get("MKL_CBWR") and torch.__version__.split("+")[0] == "2.13.0":  # 本书锁定的版本与数值设置下的这一次：20 层残差网络也略好于普通网络
    assert without_bn[20, True]["train_loss"] < without_bn[20, False]["train_loss"]
assert all(without_bn[k]["train_loss"] > quick_result(*k)["train_loss"] + 0.5 for k in without_bn)  # 都远不如有 BN

# %% [markdown]
# **4.** 选项 B 只在通道数变化的地方（第 2、3 段的第一个块，共 2 处）把捷径换成步幅 2 的 $1 \times 1$ 卷积加批归一化：
# 第一处 $8 \times 16 = 128$ 个权重加批归一化的 $2 \times 16 = 32$ 个参数，第二处 $16 \times 32 = 512$ 加 $2 \times 32 = 64$，
# 共多 736 个参数，与深度无关（下面对 4 种深度都断言）。在快速模式下训练 20 层残差网络，选项 B 的训练损失是 0.769，
# 选项 A 是 0.718，一个种子、4 轮的差别说明不了什么。论文在 ImageNet 上比较过选项 A、B、C（表 3）：B 比 A 略好，
# 作者认为是因为选项 A 补零的那部分通道没有做残差学习；三者差别很小，说明投影捷径对解决退化问题并非必需。
# 论文在 CIFAR-10 上用选项 A，是为了让残差网络与普通网络的参数量完全相同，本页也是如此。
# 要在这里得出结论，需要按完整设置训练 3 个种子，并用 [12.2](methodology.md) 的 Welch t 检验比较。

# %%
# 容差 ±0.8：快速模式的训练结果，理由同「运行」一节
class ProjectionBlock(Block):
    """选项 B：通道数变化处，捷径是步幅 2 的 1×1 卷积加批归一化。"""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, stride, residual=True)
        self.project = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + self.project(x))


def option_b(depth: int) -> Net:
    net = Net(depth, residual=True)
    for i, block in enumerate(net.blocks):
        if block.extra:  # 只换通道数变化的块
            net.blocks[i] = ProjectionBlock(block.conv1.in_channels, block.conv1.out_channels, 2)
    return net


for depth in FULL.depths:
    extra = sum(p.numel() for p in option_b(depth).parameters()) - sum(p.numel() for p in Net(depth, True).parameters())
    assert extra == (8 * 16 + 2 * 16) + (16 * 32 + 2 * 32) == 736
    with torch.no_grad():
        assert option_b(depth)(torch.zeros(4, 40)).shape == (4, 10)
print("option B adds 736 parameters at every depth", FULL.depths)
b20, a20 = train(20, True, 0, QUICK, make_model=lambda: option_b(20)), quick_result(20, True)
print(f"residual-20, quick mode: train loss {a20['train_loss']:.3f} (option A) / {b20['train_loss']:.3f} (option B)")

# %% [markdown]
# ## 参考文献
#
# - K. He, X. Zhang, S. Ren, J. Sun. Deep residual learning for image recognition. CVPR, 2016.（CIFAR-10：图 1、图 6，第 4.2 节；ImageNet：图 4）
# - S. Ioffe, C. Szegedy. Batch normalization: accelerating deep network training by reducing internal covariate
#   shift. ICML, 2015.
# - S. Greydanus, D. Kobak. Scaling down deep learning with MNIST-1D. ICML, 2024.（本页的数据）
