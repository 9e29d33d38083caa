# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   numbers:
#     code: ["0.2", "0.05"]
#     sources:
#       "100%": 准确率的上限（论文图 1 的纵轴到 1）
#       "40%": 本页的训练比例（代码中 train_fraction = 0.4）
#       "90%": 本页断言用的比例（代码中的 0.9 * max）
#       "0.973": 本书写作时的一次试验（模 97、一半算式、批量 512，第 1500 步的测试准确率），结果未存档
#       "0.3": Nanda 等（2023）作者代码中的训练比例 frac_train = 0.3
# ---

# %% [markdown]
# # 12.5 复现 grokking
#
# 2022 年，Power 等人（OpenAI）报告了一个奇怪的训练现象：在很小的「算法数据集」上，例如两个数的模 97 运算，
# 把全部算式的一部分拿来训练，Transformer 很快就把训练集全部做对了，测试准确率却一直停在随机猜测附近；
# 继续训练很久以后，测试准确率突然升到接近 100%。他们称之为 grokking（常译作「顿悟」，本书保留英文）。
# 它与 [2.10 正则化](../part2/regularization.md) 讲的常识相反：按常识，训练集拟合完、测试误差不再下降时就该停了，
# 可这里真正的泛化（generalization）发生在过拟合（overfitting）之后很久。
#
# 本页在 2 核 CPU 上复现这个现象：一个单层 Transformer 学模 59 的加法，用 40% 的算式训练。我们要回答两个问题：
#
# 1. 训练准确率达到 99% 的步数，与测试准确率达到 95% 的步数，相差有多大？
# 2. 去掉权重衰减（weight decay），在同样的步数内测试准确率还会跳上去吗？
#
# 与 [12.3](mnist1d_benchmark.nb.py)、[12.4](resnet_degradation.nb.py) 一样，本页默认以快速模式运行（构建网站和测试时用，
# 只训练 300 步）；在仓库根目录运行 `make reproduce CASES=grokking`（等价于在本页所在目录运行
# `BOOK_REPRO=full python grokking.nb.py`）进入完整模式，按下面的设置训练 6 次（2 种权重衰减 × 3 个种子），
# 结果连同出处写进 `results/grokking.json`，下面的表和图都从这个文件画出。

# %% [markdown]
# ## 要复现的现象
#
# **任务。** 取一个质数 $p$，数据集是全部 $p^2$ 个算式 $a + b \equiv c \pmod p$（$a, b \in \{0, \dots, p-1\}$）。
# 模型看到三个词元（token）$a$、$b$、$=$，在 $=$ 的位置预测 $c$，是一个 $p$ 类分类问题。随机取一部分算式训练，
# 其余的作为测试集。测试集里的算式模型从没见过，要做对，只能学会「加法」本身，背不下来。
#
# **论文的图。** Power 等人的图 1（左）是模 97 的除法、一半算式训练：横轴是对数刻度的优化步数，训练准确率在
# 约 $10^3$ 步时接近 100%，验证准确率在随机水平附近一直停到约 $10^5$ 步，才升到接近 100%，晚了约 100 倍。
# 同一张图的中间一幅说明，训练集所占的比例越小，泛化所需的步数增长得越快；论文还比较了多种优化与正则化的改动，
# 发现权重衰减缩短这段延迟最有效。他们用的是两层、宽 128、4 个头的只有解码器的 Transformer，AdamW，
# 学习率 $10^{-3}$，权重衰减 1，批量 512。
#
# **为什么会延迟。** Nanda 等人（ICLR 2023）把一个 grokking 了模 113 加法的单层 Transformer 拆开来看，
# 找到了它最后用的算法：嵌入把数字 $a$ 表示成少数几个频率 $k$ 上的 $\cos(2\pi k a / p)$、$\sin(2\pi k a / p)$，
# 注意力和 MLP 用三角恒等式算出 $\cos(2\pi k (a + b - c) / p)$，它在 $c \equiv a + b$ 时最大。
# 训练集上有两种解：一张「查表」式的记忆（memorization），和这个对所有算式都成立的算法。记忆先被找到，
# 它收敛快；但要把更多的算式分别记住，需要更大的权重。权重衰减在每一步把所有权重按比例缩小一点，
# 于是训练损失已经接近 0 之后，它仍在持续地把模型推向范数更小的解，也就是那个算法。
# Nanda 等人把训练分成三段：记忆（前约 1400 步），电路形成（算法在内部逐渐成形，测试准确率还看不出来），
# 清理（权重衰减把记忆的部分去掉，测试准确率这时才跳上去，约 9400 到 13000 步）。所以测试准确率的「突然」跳跃，
# 下面是一段连续的变化。没有权重衰减时，训练损失一接近 0，梯度几乎为 0，就没有什么再推着模型离开记忆的解。
#
# **本页的设置与理由。** 模型照 Nanda 等人（作者代码 `progress-measures-paper`）：单层，没有层归一化，
# 注意力 4 个头，MLP 用 ReLU，全批量训练（每一步用全部训练算式），AdamW，学习率 $10^{-3}$，$\beta = (0.9, 0.98)$。
# 为了放进 CPU 的预算，我们缩小了三处：模数从 113 降到 59，宽度从 128 降到 64（MLP 从 512 降到 256），
# 训练 7000 步。本书写作时在这台机器上先做过一次试验：模 97、一半算式训练、批量 512，训练准确率 1.000 时
# 测试准确率已经是 0.973，两者几乎同时上升，看不到延迟。这与论文的结论一致：训练比例越大，延迟越短。
# 所以本页把训练比例降到 0.4，并改用全批量（去掉小批量的噪声，与 Nanda 等人相同）。降到 Nanda 等人的 0.3 时，
# 设计本页时的短试验（在 GPU 上，实现略有不同）约一万步内测试准确率都没有升到 95%，CPU 上跑不起。权重衰减取 2，是论文和 Nanda 等人的 1 的两倍：
# AdamW 每一步把权重乘以 $1 - \eta\lambda$（$\eta$ 是学习率，$\lambda$ 是权重衰减系数），$\lambda$ 加倍，
# 推向小范数解的速度也加倍。我们预期延迟随之缩短（论文发现权重衰减对延迟的影响最大），6 次训练才有望在半小时内跑完；
# 取 1 时延迟有多长，本页没有测。对照组用同样的 3 个种子、同样的步数，只把权重衰减设为 0。

# %% [markdown]
# ## 代码
#
# 数据：全部 $59^2 = 3481$ 个算式，随机取 40% 训练（1392 个），其余 2089 个测试。划分只取决于固定的种子 0，
# 所以 6 次训练用的是同一份训练集，种子只改变模型的初始化。

# %%
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)


MODE = os.environ.get("BOOK_REPRO", "quick")  # quick：快速模式；full：完整复现
assert MODE in ("quick", "full"), f"BOOK_REPRO 只能是 quick 或 full，而不是 {MODE!r}"


@dataclass(frozen=True)
class Config:
    p: int = 59                  # 模数（一个质数）
    train_fraction: float = 0.4  # 用来训练的算式占全部 p² 个算式的比例
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    lr: float = 1e-3
    betas: tuple = (0.9, 0.98)
    weight_decays: tuple = (2.0, 0.0)  # 第一个是实验组，第二个是对照组
    steps: int = 7000
    seeds: tuple = (0, 1, 2)


def make_data(p: int, train_fraction: float):
    """全部 p² 个算式 a + b = ?，输入是 3 个词元 [a, b, =]（= 的编号是 p），标签是 (a + b) mod p。"""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    tokens = torch.stack([a, b, torch.full_like(a, p)], dim=1)          # (p², 3)
    labels = (a + b) % p                                                 # (p²,)
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(0))  # 划分固定，与模型的种子无关
    n_train = int(train_fraction * p * p)
    train_idx, test_idx = order[:n_train], order[n_train:]
    return [t.to(device) for t in (tokens[train_idx], labels[train_idx], tokens[test_idx], labels[test_idx])]


x_train, y_train, x_test, y_test = make_data(Config.p, Config.train_fraction)
print(f"{len(x_train)} training and {len(x_test)} test examples; first training example {x_train[0].tolist()} -> {y_train[0].item()}")
assert len(x_train) + len(x_test) == Config.p ** 2 and torch.equal((x_train[:, 0] + x_train[:, 1]) % Config.p, y_train)

# %% [markdown]
# 模型：词元嵌入加位置嵌入得到残差流，一层多头注意力（见 [5.2 缩放点积与多头注意力](../part5/multihead.md)），
# 一个 MLP，最后由反嵌入（unembedding）给出 $p$ 个 logit。只有 $=$ 位置的输出用来预测，所以只对这个位置算查询、
# MLP 和 logit；$=$ 是最后一个词元，它本来就能看到全部三个位置，不需要因果掩码。

# %%
class OneLayerTransformer(nn.Module):
    """Nanda 等（2023）的单层 Transformer：词元嵌入 + 位置嵌入，一层多头注意力，一个 ReLU 的 MLP，没有层归一化。"""

    def __init__(self, cfg: Config):
        super().__init__()
        d, self.h = cfg.d_model, cfg.n_heads
        self.embed = nn.Parameter(torch.randn(cfg.p + 1, d) / d ** 0.5)  # p 个数字加一个 =
        self.pos = nn.Parameter(torch.randn(3, d) / d ** 0.5)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(d, cfg.d_mlp), nn.ReLU(), nn.Linear(cfg.d_mlp, d))
        self.unembed = nn.Linear(d, cfg.p, bias=False)

    def forward(self, tokens):                                    # tokens: (N, 3)
        x = self.embed[tokens] + self.pos                         # 残差流：(N, 3, d)
        n, _, d = x.shape
        heads = lambda t: t.view(n, -1, self.h, d // self.h).transpose(1, 2)  # (N, h, 位置数 L, d/h)
        q = heads(self.q(x[:, -1:]))                              # 只有最后一个位置（=）的输出用来预测
        k, v = heads(self.k(x)), heads(self.v(x))
        z = F.scaled_dot_product_attention(q, k, v)               # (N, h, 1, d/h)；= 是最后一个词元，因果掩码不起作用
        r = x[:, -1] + self.o(z.transpose(1, 2).reshape(n, d))    # (N, d)
        r = r + self.mlp(r)
        return self.unembed(r)                                    # (N, p)：对 p 个答案的 logits


def n_params_formula(cfg: Config) -> int:
    """按层数参数：嵌入 (p+1)d，位置 3d，Q、K、V、O 各 d²，MLP d·d_mlp + d_mlp + d_mlp·d + d，反嵌入 d·p。"""
    d, m, p = cfg.d_model, cfg.d_mlp, cfg.p
    return (p + 1) * d + 3 * d + 4 * d * d + (d * m + m + m * d + d) + d * p


model = OneLayerTransformer(Config())
n_params = sum(t.numel() for t in model.parameters())
print(f"{n_params} parameters; logits for 2 examples: {tuple(model(x_train[:2].cpu()).shape)}")
assert n_params == n_params_formula(Config())

# %% [markdown]
# 训练：全批量 AdamW。前 1000 步每 10 步评估一次，之后每 50 步一次（曲线要画在对数横轴上，前期需要密一些），
# 记下训练集和测试集上的准确率与损失，以及全部参数拼成一个向量后的 L2 范数。训练结束时，再把嵌入矩阵
# 沿「数字」方向做离散傅里叶变换，记下各个频率的能量占比（后面「嵌入的傅里叶结构」一节用）。

# %%
def eval_steps(steps: int) -> list:
    """在哪些步评估：前 1000 步每 10 步一次（对数横轴上看得清前期），之后每 50 步一次。"""
    return [s for s in range(10, steps + 1, 10) if s <= 1000 or s % 50 == 0]


def train(seed: int, weight_decay: float, cfg: Config) -> dict:
    """全批量训练：每一步都用全部训练算式。返回评估步上的准确率、损失与参数的 L2 范数。"""
    x_train, y_train, x_test, y_test = make_data(cfg.p, cfg.train_fraction)
    torch.manual_seed(seed)
    model = OneLayerTransformer(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=weight_decay)
    curve = {k: [] for k in ("step", "train_acc", "test_acc", "train_loss", "test_loss", "weight_norm")}
    checkpoints = set(eval_steps(cfg.steps))
    for step in range(1, cfg.steps + 1):
        loss = F.cross_entropy(model(x_train), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            with torch.no_grad():
                for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
                    logits = model(x)
                    curve[f"{split}_acc"].append(round((logits.argmax(1) == y).float().mean().item(), 5))
                    curve[f"{split}_loss"].append(round(F.cross_entropy(logits, y).item(), 6))
                curve["weight_norm"].append(round(torch.cat([p.flatten() for p in model.parameters()]).norm().item(), 4))
            curve["step"].append(step)
    return {"seed": seed, "weight_decay": weight_decay, "curve": curve,
            "embed_spectrum": spectrum(model.embed[:cfg.p].detach())}


def spectrum(embed: torch.Tensor) -> list:
    """嵌入矩阵（p × d）沿数字方向做离散傅里叶变换，每个频率 k = 1 … (p−1)/2 的能量占比（k 与 p−k 合并）。"""
    p = embed.shape[0]
    power = torch.fft.fft(embed.double().cpu(), dim=0).abs().pow(2).sum(1)  # (p,)
    folded = power[1:(p + 1) // 2] + power.flip(0)[:(p - 1) // 2]  # 第 k 个加第 p − k 个
    return [round(v, 5) for v in (folded / folded.sum()).tolist()]


# %% [markdown]
# ## 运行
#
# 快速模式只训练实验组的第一个种子 300 步，断言此时已经能看到的前半段：训练准确率超过 0.95，测试准确率还不到 0.2。

# %%
FULL = Config()
QUICK = replace(FULL, steps=300, seeds=(0,), weight_decays=(FULL.weight_decays[0],))
config = FULL if MODE == "full" else QUICK
print(MODE, config)

start = time.perf_counter()
runs = []
for weight_decay in config.weight_decays:
    for seed in config.seeds:
        run = train(seed, weight_decay, config)
        runs.append(run)
        c = run["curve"]
        print(f"weight decay {weight_decay:g}, seed {seed}: step {c['step'][-1]}, train acc {c['train_acc'][-1]:.3f}, "
              f"test acc {c['test_acc'][-1]:.3f}", flush=True)
wall_time = time.perf_counter() - start

if MODE == "quick":
    assert runs[0]["curve"]["train_acc"][-1] > 0.95 and runs[0]["curve"]["test_acc"][-1] < 0.2  # 先记住，还没泛化


# %% [markdown]
# ## 记录出处
#
# 与 [12.3](mnist1d_benchmark.nb.py) 相同，完整模式把结果连同出处（命令、版本、CPU、日期、耗时）写进结果文件。

# %%
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


RESULTS = Path("results") / "grokking.json"
provenance = {
    "command": os.environ.get("BOOK_REPRO_COMMAND", "BOOK_REPRO=full python grokking.nb.py"),
    "mode": MODE,
    "config": asdict(config),
    "seeds": list(config.seeds),
    "python": platform.python_version(),
    "torch": torch.__version__,
    "numpy": np.__version__,
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
    RESULTS.write_text(json.dumps({"experiment": "grokking", "provenance": provenance, "runs": runs},
                                  ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print("wrote", RESULTS)

# %% [markdown]
# ## 结果
#
# 读入提交在仓库里的结果文件（在别处运行时，从本书仓库的 `docs/part12/results/` 下载它）：

# %%
results = json.loads(RESULTS.read_text(encoding="utf-8"))
prov = results["provenance"]
for key in ("command", "date", "wall_time_s", "torch", "cpu", "torch_threads", "seeds"):
    print(f"{key:>13}: {prov[key]}")
assert prov["mode"] == "full" and len(prov["seeds"]) >= 3
assert prov["config"] == json.loads(json.dumps(asdict(FULL))), "结果文件不是当前代码的完整设置跑出来的：请重跑"
WD = FULL.weight_decays[0]


def at_step(curve: dict, key: str, step: int) -> float:
    """曲线 key 在第 step 步（一个评估步）的值。"""
    return curve[key][curve["step"].index(step)]


def first_step(curve: dict, key: str, level: float):
    """曲线 key 第一次达到 level 的评估步；始终没有达到时为 None。"""
    return next((s for s, v in zip(curve["step"], curve[key]) if v >= level), None)


table = {}
for run in results["runs"]:
    c = run["curve"]
    table[run["weight_decay"], run["seed"]] = (first_step(c, "train_acc", 0.99), first_step(c, "test_acc", 0.95),
                                              c["train_acc"][-1], c["test_acc"][-1])
    print(f"weight decay {run['weight_decay']:g}, seed {run['seed']}: train acc >= 0.99 at step "
          f"{table[run['weight_decay'], run['seed']][0]}, test acc >= 0.95 at step {table[run['weight_decay'], run['seed']][1]}; "
          f"final train acc {c['train_acc'][-1]:.3f}, test acc {c['test_acc'][-1]:.3f}")

# %% [markdown]
# ## 抽查
#
# 结果文件是否真由上面的代码算出？重跑其中一次训练（权重衰减、第一个种子）的前 300 步，与文件里同一段曲线比较。
# 快速模式跑的正是这 300 步，直接拿来用；完整模式下重跑一遍。本书固定的数值设置下（单线程、AVX2 计算路径、
# 同一版 PyTorch，见「开发环境」一页），两者应当逐位相同；换了平台或 GPU，每一步的舍入不同，只要求准确率相差不超过 0.05。

# %%
SPOT = QUICK.steps
seed0 = prov["seeds"][0]
spot = runs[0] if MODE == "quick" else train(seed0, WD, replace(FULL, steps=SPOT))
committed = next(r for r in results["runs"] if (r["weight_decay"], r["seed"]) == (WD, seed0))["curve"]
n = len(spot["curve"]["step"])
assert committed["step"][:n] == spot["curve"]["step"] and spot["curve"]["step"][-1] == SPOT
gap = max(abs(a - b) for key in ("train_acc", "test_acc") for a, b in zip(spot["curve"][key], committed[key][:n]))
same = all(spot["curve"][key] == committed[key][:n] for key in spot["curve"])
print(f"spot check, weight decay {WD:g}, seed {seed0}, steps 1-{SPOT}: rerun train acc {spot['curve']['train_acc'][-1]:.3f}, "
      f"test acc {spot['curve']['test_acc'][-1]:.3f}; file {committed['train_acc'][n - 1]:.3f}, "
      f"{committed['test_acc'][n - 1]:.3f}; identical: {same}")
assert gap <= 0.05
if device.type == "cpu" and os.environ.get("MKL_CBWR") and prov["torch_threads"] == torch.get_num_threads() == 1 \
        and prov["torch"] == torch.__version__:
    assert same  # 本书固定的数值设置下（见开发环境）：逐位相同

# %% [markdown]
# ## 训练曲线
#
# 下图左边是实验组（权重衰减 2），中间是对照组（权重衰减 0），颜色表示种子，虚线是训练准确率，实线是测试准确率；
# 横轴与论文图 1（左）一样是对数刻度的步数。右边是全部参数的 L2 范数，实线是实验组，点线是对照组。
# 论文的图只有一次训练、一条训练曲线和一条验证曲线，训练曲线在约 $10^3$ 步接近 1，验证曲线到约 $10^5$ 步才升起来；
# 我们的图把同一件事画成 3 个种子，时间尺度小两个数量级（模型更小，权重衰减更大，全批量训练）。

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, wd in zip(axes[:2], FULL.weight_decays):
    for k, run in enumerate(r for r in results["runs"] if r["weight_decay"] == wd):
        c = run["curve"]
        ax.plot(c["step"], c["train_acc"], "--", color=f"C{k}", label=f"train, seed {run['seed']}")
        ax.plot(c["step"], c["test_acc"], "-", color=f"C{k}", label=f"test, seed {run['seed']}")
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title=f"weight decay {wd:g}")
    ax.legend(fontsize=8, loc="center left")
for run in results["runs"]:
    c = run["curve"]
    axes[2].plot(c["step"], c["weight_norm"], "-" if run["weight_decay"] else ":",
                 color=f"C{prov['seeds'].index(run['seed'])}", label=f"wd {run['weight_decay']:g}, seed {run['seed']}")
axes[2].set(xscale="log", xlabel="step", ylabel="L2 norm of all parameters", title="weight norm")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 结果分析
#
# **两组都先记住了训练集。** 6 次训练的训练准确率都在第 340 步以内达到 99%（最早的第 220 步，最晚的第 340 步），
# 此时测试准确率都还不到 0.2：模型把 1392 个训练算式背了下来，对没见过的算式几乎只能乱猜（随机猜对的概率是 1/59）。
#
# **有权重衰减：测试准确率在很久以后跳上去，2 个种子在预算内完成。** 种子 0 的测试准确率在第 2350 步达到 95%，
# 是它记住训练集（第 340 步）之后的 6.9 倍；种子 2 直到第 7000 步、也就是预算的最后一步才达到（0.961），是记忆步的
# 23.3 倍。种子 1 在 7000 步内没有达到：最后一步的测试准确率是 0.404，但仍在上升（第 6000 步是 0.306），
# 测试损失从第 1700 步的最高点 25.39 降到了 8.92。按 Nanda 等人的说法，它还在「电路形成」阶段，
# 清理还没有发生。预算内跳不跳、什么时候跳，种子之间差别很大；本页只有 3 个种子，不去估计它的分布。
#
# **没有权重衰减：测试准确率一直没有升起来。** 同样的 3 个种子，7000 步内测试准确率的最高值分别是 0.033、0.151、0.036，
# 最后一步的测试损失是 107.44、87.79、91.20，都不低于各自最高点的 90%；参数范数一直在增大，最后一步就是最大值。
# 同一个种子（同样的初始化、同样的训练集），有权重衰减的那一次最后一步的测试准确率都更高。
# 这并不证明没有权重衰减就永远不会泛化，我们只训练了 7000 步；能说的是，在这个预算内它没有发生，
# 而且测试损失越来越大，看不出正在靠近。

# %%
TRAIN_LEVEL, TEST_LEVEL = 0.99, 0.95
mem = {k: v[0] for k, v in table.items()}
grok = {k: v[1] for k, v in table.items()}
final_test = {k: v[3] for k, v in table.items()}
curves = {(r["weight_decay"], r["seed"]): r["curve"] for r in results["runs"]}
seeds, steps = prov["seeds"], FULL.steps
for seed in seeds:
    c = curves[WD, seed]
    print(f"weight decay {WD:g}, seed {seed}: memorised at step {mem[WD, seed]}, test acc >= 0.95 at step {grok[WD, seed]}"
          + (f" = {grok[WD, seed] / mem[WD, seed]:.1f} x the memorisation step" if grok[WD, seed] else
             f"; test acc {at_step(c, 'test_acc', steps - 1000):.3f} at step {steps - 1000}, {c['test_acc'][-1]:.3f} "
             f"at step {steps}; test loss {max(c['test_loss']):.2f} at step {c['step'][int(np.argmax(c['test_loss']))]} "
             f"-> {c['test_loss'][-1]:.2f}"))
for seed in seeds:
    c = curves[0.0, seed]
    print(f"weight decay 0, seed {seed}: max test acc {max(c['test_acc']):.3f}, final test loss {c['test_loss'][-1]:.2f} "
          f"(max {max(c['test_loss']):.2f}), weight norm {c['weight_norm'][0]:.1f} -> {c['weight_norm'][-1]:.1f}")
print(f"memorisation steps from {min(mem.values())} to {max(mem.values())}")

# 两组都先记住：每次训练都在第 340 步以内达到 99%，此时测试准确率都低于 0.2
assert all(mem[k] is not None and mem[k] <= 340 and at_step(curves[k], "test_acc", mem[k]) < 0.2 for k in mem)
# 有权重衰减：种子 0 和 2 在预算内跳上去，都在记忆步的 6 倍之后；种子 1 没有，但测试准确率仍在上升、测试损失已降了一半以上
assert [s for s in seeds if grok[WD, s] is not None] == [0, 2]
assert all(grok[WD, s] >= 6 * mem[WD, s] for s in (0, 2))
c1 = curves[WD, 1]
assert 0.3 < c1["test_acc"][-1] < TEST_LEVEL and c1["test_acc"][-1] > at_step(c1, "test_acc", steps - 1000)
assert c1["test_loss"][-1] < 0.5 * max(c1["test_loss"])
# 没有权重衰减：3 个种子的测试准确率始终低于 0.2，最后的测试损失接近最高点（≥ 90%），参数范数一直在增大
for seed in seeds:
    c = curves[0.0, seed]
    assert max(c["test_acc"]) < 0.2 and c["test_loss"][-1] >= 0.9 * max(c["test_loss"])
    assert c["weight_norm"][-1] == max(c["weight_norm"])
    assert final_test[WD, seed] > final_test[0.0, seed]  # 同一个种子：有权重衰减的更高
print("结果分析的每一条说法都与结果文件相符")

# %% [markdown]
# ## 嵌入的傅里叶结构
#
# Nanda 等人发现，grokking 之后的嵌入矩阵 $\mathbf{W}_E$（$p$ 行，每个数字一行）在傅里叶基下是稀疏的：
# 沿「数字」方向做离散傅里叶变换，$\hat{\mathbf{w}}_k = \sum_{a=0}^{p-1} \mathbf{W}_E[a] \, e^{-2\pi i k a / p}$，
# 能量 $\lVert \hat{\mathbf{w}}_k \rVert^2$ 集中在少数几个频率 $k$ 上（他们的主模型是 5 个），
# 也就是说每个数字只用几组 $\cos(2\pi k a / p)$、$\sin(2\pi k a / p)$ 表示。记忆的解没有理由有这种结构。
# 下面对每次训练最后的嵌入，计算能量最大的 5 个频率占总能量的比例（随机矩阵约为 $5/29$，即 29 个频率中的 5 个），
# 并画出种子 0 两组的频谱。

# %%
TOP = 5
freqs = np.arange(1, (FULL.p + 1) // 2)
share = {}
for run in results["runs"]:
    s = np.array(run["embed_spectrum"])
    top = np.argsort(s)[::-1][:TOP]
    share[run["weight_decay"], run["seed"]] = s[top].sum()
    print(f"weight decay {run['weight_decay']:g}, seed {run['seed']}: top {TOP} frequencies "
          f"{sorted(freqs[top].tolist())} hold {s[top].sum():.1%} of the embedding's energy")

print(f"a random embedding: top {TOP} of {len(freqs)} frequencies hold about {TOP / len(freqs):.0%}")

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=True)
for ax, wd in zip(axes, FULL.weight_decays):
    run = next(r for r in results["runs"] if (r["weight_decay"], r["seed"]) == (wd, seed0))
    ax.bar(freqs, run["embed_spectrum"], color="C0" if wd else "C7")
    ax.set(xlabel="frequency k", title=f"embedding spectrum, weight decay {wd:g}, seed {seed0}")
axes[0].set_ylabel("share of energy")
fig.tight_layout()
plt.show()
assert min(share[WD, s] for s in seeds) > max(share[0.0, s] for s in seeds)  # 每个有权重衰减的种子都更集中
assert all(share[WD, s] > 0.75 for s in (0, 2)) and all(share[0.0, s] < 0.35 for s in seeds)

# %% [markdown]
# 两个在预算内 grokking 的种子，5 个频率占了嵌入能量的 91.6% 和 78.2%；还没有跳上去的种子 1 是 56.9%，
# 处在两者之间，与它「电路正在形成」的状态相符；没有权重衰减的 3 个种子只有 28.0% 到 31.8%，
# 比随机矩阵的约 17% 高不了多少（训练本身也会让嵌入带上一点结构）。上图左边（种子 0，有权重衰减）是几根孤立的高柱，
# 右边（种子 0，没有权重衰减）高低参差，没有明显的主频率。这与 Nanda 等人的结论一致：grokking 之后，
# 模型用的是少数几个频率上的三角函数，而不是一张表。
# %% [markdown]
# ## 小结
#
# - grokking 是「先记住，很久以后才泛化」：本页 6 次训练都在 340 步以内把训练集做到 99%，有权重衰减的种子 0
#   到第 2350 步、种子 2 到第 7000 步测试准确率才达到 95%，分别是记忆步的 6.9 倍和 23.3 倍；种子 1 在 7000 步内没有达到；
# - 权重衰减是关键：去掉它，同样的种子在 7000 步内测试准确率都没超过 0.2，测试损失和参数范数一直在增大；
# - 延迟取决于训练比例和正则化：一半算式训练时几乎没有延迟（练习 3），比例太小时 CPU 上等不到；
#   复现时要先从论文和作者代码里找到能出现现象的区间，并在页面上写明为什么这样选；
# - 测试准确率的跳跃之下是连续的变化：测试损失、参数范数和嵌入的傅里叶频谱都早早开始变化，
#   grokking 之后嵌入集中在少数几个频率上（Nanda 等人的算法）。
#
# ## 练习
#
# 1. 用结果文件里的参数范数曲线说明权重衰减在 grokking 中做了什么：比较两组在「训练准确率达到 99%」那一步和
#    最后一步的范数。
# 2. Nanda 等人说测试准确率的跳跃之下是一段连续的进展。从结果文件里找出实验组每个种子测试损失最高的那一步，
#    它比测试准确率达到 95% 的那一步早多少？对照组的测试损失又是怎样变化的？
# 3. 把 `Config` 的 `train_fraction` 改成 0.5（其余按快速模式），训练 300 步，与本页快速模式的结果比较。
#    这能否解释「本页的设置与理由」中那次没有延迟的试验？
# 4. 为什么「嵌入的傅里叶结构」只看频率 $k = 1, \dots, (p-1)/2$，并把 $k$ 与 $p - k$ 的能量加在一起？
#    $k = 0$ 又对应什么？

# %% [markdown]
# ### 参考答案
#
# 练习 1、2 只读结果文件；练习 3 按快速设置训练 300 步；练习 4 用一个随机矩阵检验。

# %% [markdown]
# **1.** 实验组 3 个种子的范数在记住训练集时约为 36.5 到 38.0，之后一路下降，最后是 26.2、34.5、29.1：
# 训练损失已经接近 0，梯度很小，权重衰减成了主导，它把权重按比例往小里拉，只有对拟合训练集必不可少的部分
# 才被梯度保住。对照组正相反，从记住时的 39.3 到 42.3 一直涨到 52.4 到 53.3：交叉熵在训练集全对之后
# 仍然可以靠放大 logit 继续下降，而没有任何东西阻止权重变大。范数下降得最多的种子 0 正是最早 grokking 的那个，
# 没有 grokking 的种子 1 下降得最少。这支持「权重衰减把模型从大范数的记忆解推向小范数的算法解」的解释，
# 但 3 个种子只是佐证，不是证明。

# %%
norms = {}
for run in results["runs"]:
    c, key = run["curve"], (run["weight_decay"], run["seed"])
    memorised = table[key][0]
    norms[key] = (at_step(c, "weight_norm", memorised), c["weight_norm"][-1], max(c["weight_norm"]))
    print(f"weight decay {run['weight_decay']:g}, seed {run['seed']}: weight norm {norms[key][0]:.1f} at step {memorised} "
          f"(train acc >= 0.99), {norms[key][1]:.1f} at step {c['step'][-1]}")
assert all(norms[WD, s][1] < norms[WD, s][0] for s in seeds) and all(norms[0.0, s][1] > norms[0.0, s][0] for s in seeds)
drop = {s: norms[WD, s][0] - norms[WD, s][1] for s in seeds}
assert max(drop, key=drop.get) == min((s for s in seeds if grok[WD, s]), key=lambda s: grok[WD, s])  # 最早 grokking 的下降最多
assert min(drop, key=drop.get) == 1  # 没有 grokking 的种子 1 下降得最少

# %% [markdown]
# **2.** 实验组的测试损失都在 grokking 之前很久就达到最高点然后下降：种子 0 在第 360 步（此后约 2000 步才达到 95%），
# 种子 2 在第 1600 步（此后 5400 步才达到），种子 1 在第 1700 步，到预算结束时仍没有达到 95%，测试损失却已降到 8.92。
# 测试损失是对所有测试算式的正确答案给出的概率取对数再平均，模型给正确答案的概率慢慢变大，它就下降，
# 哪怕正确答案还没成为得分最高的那个；准确率只在正确答案排到第一时才变化，所以看起来是突然跳上去的。
# 这就是 Nanda 等人所说的「进度度量」的意思：有一些量在准确率跳跃之前很久就连续地变化。对照组的测试损失一直在涨，
# 最高点都在第 6300 步以后，也就是预算的末尾，看不出有任何隐藏的进展。

# %%
for run in results["runs"]:
    c = run["curve"]
    peak = c["step"][int(np.argmax(c["test_loss"]))]
    print(f"weight decay {run['weight_decay']:g}, seed {run['seed']}: test loss peaks at step {peak} "
          f"({max(c['test_loss']):.2f}), final {c['test_loss'][-1]:.2f}; test acc >= 0.95 at step "
          f"{table[run['weight_decay'], run['seed']][1]}")
peak = {k: c["step"][int(np.argmax(c["test_loss"]))] for k, c in curves.items()}
assert all(grok[WD, s] - peak[WD, s] >= 1900 for s in (0, 2))            # 最高点比 95% 早约 2000 步以上
assert curves[WD, 1]["test_loss"][-1] < max(curves[WD, 1]["test_loss"]) / 2  # 种子 1：没有跳上去，测试损失却已大降
assert all(peak[0.0, s] >= 6300 for s in seeds)                           # 对照组：最高点都在预算末尾

# %% [markdown]
# **3.** 可以。训练比例从 0.4 改成 0.5 之后，第 300 步的训练准确率 1.000，测试准确率已经是 0.717，而本页的设置下是
# 0.971 与 0.094：训练集大一些，能同时拟合这么多算式的记忆解就变得更「贵」，算法解几乎与记忆同时被找到，
# 两条曲线一起上升。那次试验用的正是一半的算式（模 97），所以看不到延迟。这与论文图 1 中间那幅的趋势一致：
# 训练比例越大，泛化需要的步数越少。

# %%
half = train(seed0, WD, replace(QUICK, train_fraction=0.5))["curve"]
quick = runs[0]["curve"] if MODE == "quick" else train(seed0, WD, QUICK)["curve"]
for name, c in (("train_fraction 0.4 (this page)", quick), ("train_fraction 0.5", half)):
    print(f"{name}: step {c['step'][-1]}, train acc {c['train_acc'][-1]:.3f}, test acc {c['test_acc'][-1]:.3f}")
assert half["test_acc"][-1] > quick["test_acc"][-1] + 0.4  # 训练集多出全部算式的十分之一，测试准确率几乎与训练准确率同时上升

# %% [markdown]
# **4.** 嵌入矩阵是实数矩阵，它的离散傅里叶变换满足 $\hat{\mathbf{w}}_{p-k} = \overline{\hat{\mathbf{w}}_k}$（共轭），
# 所以第 $k$ 与第 $p-k$ 个频率的能量相同，它们合起来对应同一对 $\cos(2\pi k a/p)$、$\sin(2\pi k a/p)$。
# $p = 59$ 是奇数，非零频率两两配对，正好是 $k = 1, \dots, 29$。$k = 0$ 时 $e^{0} = 1$，$\hat{\mathbf{w}}_0$ 是所有行之和，
# 即嵌入的平均值乘以 $p$，它对所有数字都一样，不能帮助区分数字，所以不计入。下面用一个随机矩阵检验这两点。

# %%
W = torch.randn(FULL.p, FULL.d_model, dtype=torch.float64)
power = torch.fft.fft(W, dim=0).abs().pow(2).sum(1)
assert torch.allclose(power[1:], power[1:].flip(0))  # 实数矩阵：第 k 与第 p − k 个频率的能量相同
assert torch.allclose(power[0], W.sum(0).pow(2).sum())  # k = 0：各行之和，即嵌入的平均值（乘以 p）
assert np.isclose(sum(spectrum(W)), 1) and len(spectrum(W)) == (FULL.p - 1) // 2
print(f"energy at k and p - k equal for all {FULL.p - 1} nonzero frequencies; k = 0 is the sum of the rows")

# %% [markdown]
# ## 参考文献
#
# - A. Power, Y. Burda, H. Edwards, I. Babuschkin, V. Misra. Grokking: generalization beyond overfitting on small
#   algorithmic datasets. arXiv:2201.02177, 2022.（图 1；作者代码 openai/grok）
# - N. Nanda, L. Chan, T. Lieberum, J. Smith, J. Steinhardt. Progress measures for grokking via mechanistic
#   interpretability. ICLR, 2023.（作者代码 mechanistic-interpretability-grokking/progress-measures-paper）
# - I. Loshchilov, F. Hutter. Decoupled weight decay regularization. ICLR, 2019.（AdamW）
