# --8<-- [start:setup]
import hashlib
import os
import platform
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, get_worker_info

# 只对 CUDA 有用：确定性模式下 cuBLAS 需要它，必须在第一次 CUDA 计算之前设置
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:generators]
def draw_all() -> tuple:
    """从三个库的全局生成器各取一个数。"""
    return random.random(), float(np.random.rand()), torch.rand(()).item()


torch.manual_seed(0)
first = draw_all()
torch.manual_seed(0)
second = draw_all()
print("只设 torch.manual_seed(0)：")
for name, a, b in zip(["random", "numpy", "torch"], first, second):
    print(f"  {name:<7} 两次取到的数{'相同' if a == b else '不同'}")
assert first[2] == second[2]                              # torch 的数重复了
assert first[0] != second[0] and first[1] != second[1]    # random 与 NumPy 没有被设定


def seed_everything(seed: int) -> None:
    """设定 Python、NumPy、PyTorch（CPU 与所有 CUDA 设备）的全局生成器。"""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)            # 同时调用 torch.cuda.manual_seed_all(seed)


seed_everything(0)
first = draw_all()
seed_everything(0)
second = draw_all()
print("seed_everything(0)：", "三个数都相同" if first == second else "仍有不同")
assert first == second
print("torch.initial_seed() =", torch.initial_seed())
if torch.cuda.is_available():                             # 每块 GPU 各有一个生成器
    print("CUDA 生成器个数 =", len(torch.cuda.default_generators))
    assert torch.cuda.initial_seed() == 0
# --8<-- [end:generators]


# --8<-- [start:train]
digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target)
idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=digits.target)
train_ds = TensorDataset(X[idx_train], y[idx_train])
X_test, y_test = X[idx_test].to(device), y[idx_test].to(device)


def train(seed: int, epochs: int = 5, extra_init: bool = False) -> nn.Module:
    """初始化、打乱顺序、丢弃掩码三种随机性都由 seed 决定。"""
    seed_everything(seed)
    loader = DataLoader(train_ds, batch_size=128, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))  # 打乱顺序用自己的生成器
    if extra_init:
        nn.Linear(64, 64)        # 先多构造一层（比如试一个新结构）：消耗了全局生成器
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def accuracy(model: nn.Module) -> float:
    with torch.no_grad():
        return (model(X_test).argmax(1) == y_test).float().mean().item()


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


run_a, run_b, run_c = train(0), train(0), train(1)
print(f"种子 0 第一次：准确率 {accuracy(run_a):.4f}")
print(f"种子 0 第二次：准确率 {accuracy(run_b):.4f}，参数逐位相同：{same_weights(run_a, run_b)}")
print(f"种子 1        ：准确率 {accuracy(run_c):.4f}，与种子 0 逐位相同：{same_weights(run_a, run_c)}")
assert same_weights(run_a, run_b) and accuracy(run_a) == accuracy(run_b)
assert not same_weights(run_a, run_c)
# 设计时种子 0–9 在 CPU 上准确率最低 0.9244、最高 0.9622；下限 0.90 留出 2 个多百分点给其他设备
assert min(accuracy(run_a), accuracy(run_c)) >= 0.90
# --8<-- [end:train]


# --8<-- [start:streams]
def epoch_order(extra_draw: bool, generator: torch.Generator | None) -> list[int]:
    """一轮的数据顺序：先构造模型（用全局生成器），再打乱 10 个样本。"""
    torch.manual_seed(0)
    nn.Linear(4, 4)                              # 初始化消耗全局生成器
    if extra_draw:
        torch.rand(3)                            # 一次与数据顺序无关的随机调用（如多了一个丢弃层）
    return torch.randperm(10, generator=generator).tolist()


shared = [epoch_order(extra, None) for extra in (False, True)]
own = [epoch_order(extra, torch.Generator().manual_seed(0)) for extra in (False, True)]
print("全局生成器：    ", shared[0], "\n  多一次随机调用后", shared[1])
print("专用生成器：    ", own[0], "\n  多一次随机调用后", own[1])
assert shared[0] != shared[1]                    # 顺序被无关的调用改变了
assert own[0] == own[1]                          # 专用生成器不受影响

# DataLoader 的 generator= 同理：模型多了一层，数据顺序不变，初始权重变了
run_d = train(0, extra_init=True)
first_batch = [next(iter(DataLoader(train_ds, batch_size=128, shuffle=True,
                                   generator=torch.Generator().manual_seed(0))))[1] for _ in range(2)]
print("两个 generator=torch.Generator().manual_seed(0) 的加载器，第一批相同：", torch.equal(*first_batch))
print("多构造一层后，参数与原来逐位相同：", same_weights(run_a, run_d))
assert torch.equal(*first_batch)
assert not same_weights(run_a, run_d)
# --8<-- [end:streams]


# --8<-- [start:workers]
class Augmented(Dataset):
    """每次取样本都做一次「随机增强」：记录各个生成器给出的数。"""

    def __init__(self, n: int = 6):
        self.n = n
        self.rng = np.random.default_rng(0)      # 数据集自己持有的 NumPy 生成器（常见写法）

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        info = get_worker_info()                 # 主进程里为 None
        return {"i": i, "worker": info.id, "seed": info.seed, "torch_seed": torch.initial_seed(),
                "torch": torch.rand(()).item(), "random": random.random(),
                "np_global": float(np.random.rand()), "np_own": float(self.rng.random())}


def load(ds: Dataset, seed: int, epochs: int = 1, **kw) -> list[list[dict]]:
    """batch_size=None：逐个样本，样本 i 交给工作进程 i % 2。"""
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork",
                        generator=torch.Generator().manual_seed(seed), **kw)
    return [list(loader) for _ in range(epochs)]


ep1, ep2 = load(Augmented(), seed=0, epochs=2)
print(" i  进程  torch 种子            torch    random   np 全局  np 自带")
for r in ep1:
    print(f"{r['i']:>2}  {r['worker']:>4}  {r['torch_seed']:<20}  {r['torch']:.4f}  {r['random']:.4f}"
          f"   {r['np_global']:.4f}   {r['np_own']:.4f}")
w0, w1 = ep1[0], ep1[1]                          # 样本 0 在进程 0，样本 1 在进程 1
assert w0["worker"] == 0 and w1["worker"] == 1
assert w1["torch_seed"] == w0["torch_seed"] + 1 == w1["seed"]   # 进程 k 的 torch 种子 = base_seed + k
for key in ("torch", "random", "np_global"):     # 这三个生成器 PyTorch 已为每个进程分别设定
    assert len({r[key] for r in ep1}) == len(ep1)
own0 = [r["np_own"] for r in ep1 if r["worker"] == 0]
own1 = [r["np_own"] for r in ep1 if r["worker"] == 1]
own_next = [r["np_own"] for r in ep2 if r["worker"] == 0]
print("数据集自带的生成器：进程 0", [f"{v:.4f}" for v in own0], " 进程 1", [f"{v:.4f}" for v in own1])
print("                    第二轮进程 0", [f"{v:.4f}" for v in own_next])
assert own0 == own1 == own_next                  # 两个进程、两轮都是同一串「随机」数
assert ep2[0]["torch_seed"] != ep1[0]["torch_seed"]             # 而 base_seed 每轮都换


def reseed_worker(worker_id: int) -> None:
    """在工作进程里按它的 torch 种子（base_seed + worker_id）重建数据集的 NumPy 生成器。"""
    info = get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed())


fixed1, fixed2 = load(Augmented(), seed=0, epochs=2, worker_init_fn=reseed_worker)
again, _ = load(Augmented(), seed=0, epochs=2, worker_init_fn=reseed_worker)
values = [r["np_own"] for r in fixed1 + fixed2]
print("加 worker_init_fn 后：两轮 12 个数互不相同", len(set(values)) == len(values),
      "；同一个 generator 种子重跑，逐个相同", again == fixed1)
assert len(set(values)) == len(values)
assert again == fixed1                           # generator= 让 base_seed 与各进程的增强都可重复
# --8<-- [end:workers]


# --8<-- [start:deterministic]
torch.use_deterministic_algorithms(True)
print("确定性模式：", torch.are_deterministic_algorithms_enabled())
try:                                             # 下标重复时「谁最后写入」由线程调度决定
    torch.zeros(4, device=device).put_(torch.tensor([0, 0], device=device),
                                       torch.tensor([1.0, 2.0], device=device))
    raised = False
except RuntimeError as e:
    raised = True
    print("put_ 报错：", str(e).split(",")[0])
assert raised
print("torch.empty 被填成 NaN：", torch.isnan(torch.empty(3, device=device)).all().item())
assert torch.isnan(torch.empty(3, device=device)).all()
run_det, run_det2 = train(0), train(0)
print("确定性模式下训练两次，逐位相同：", same_weights(run_det, run_det2),
      "；与关闭时的 run_a 逐位相同：", same_weights(run_a, run_det))
assert same_weights(run_det, run_det2)
if device.type == "cpu":
    assert same_weights(run_a, run_det)          # 这些 CPU 算子本来就是确定的，开关不改变结果

if device.type == "cuda":
    try:
        torch.histc(torch.rand(100, device=device))
        raise AssertionError("histc 在 CUDA 上应当报错")
    except RuntimeError as e:
        print("CUDA histc 报错：", str(e).split(",")[0])
    src = torch.rand(100000, device=device)
    index = torch.randint(0, 10, (100000,), device=device)
    sums = [torch.zeros(10, device=device).index_add_(0, index, src) for _ in range(2)]
    assert torch.equal(sums[0], sums[1])         # index_add_ 换成确定性的实现
torch.use_deterministic_algorithms(False)
# --8<-- [end:deterministic]


# --8<-- [start:threads]
# 随机器而变：求和怎样分给线程由 CPU、PyTorch 版本和数学库决定
x = torch.randn(1_000_000, generator=torch.Generator().manual_seed(1))
A = torch.randn(256, 256, generator=torch.Generator().manual_seed(1))
exact = x.double().sum().item()
old = torch.get_num_threads()
results = {}
for k in (1, 2, 4):
    torch.set_num_threads(k)
    results[k] = (x.sum(), x.sum(), A @ A, A @ A)
torch.set_num_threads(old)
u = 2.0 ** -24                                                  # float32 的单位舍入
for k, (s1, s2, m1, m2) in results.items():
    sum_gap = abs(s1.item() - results[1][0].item())
    mm_gap = (m1 - results[1][2]).abs().max().item()
    print(f"{k} 个线程：sum 与 float64 之差 {s1.item() - exact:+.2e}，与 1 个线程相差 {sum_gap:.2e}；"
          f"矩阵乘法与 1 个线程最大相差 {mm_gap:.2e}")
    assert torch.equal(s1, s2) and torch.equal(m1, m2)          # 同一个线程数重复计算：逐位相同
    assert sum_gap <= 2 * len(x) * u * x.abs().sum().item()     # 任何求和顺序都满足的误差界
    assert mm_gap <= 2 * 256 * u * (A.abs() @ A.abs()).max().item()
if device.type == "cuda":                                       # CPU 与 GPU 的内核不同
    gap = ((A.to(device) @ A.to(device)).cpu() - results[1][2]).abs().max().item()
    print(f"CPU 与 GPU 的矩阵乘法最大相差 {gap:.2e}")
    # 同一个界；float32 矩阵乘法默认不用 TF32，打开 TF32 时误差会大到超出这个界
    assert gap <= 2 * 256 * u * (A.abs() @ A.abs()).max().item()
# --8<-- [end:threads]


# --8<-- [start:record]
def data_order_digest(generator_seed: int, n: int) -> str:
    """一轮数据顺序的指纹：别人重跑时比较它，就知道数据顺序是否相同。"""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(generator_seed))
    return hashlib.sha256(order.numpy().tobytes()).hexdigest()[:16]


record = {
    "seeds": {"global": 0, "loader_generator": 0},
    "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    "hardware": {"cpu": platform.processor() or platform.machine(), "device": str(device),
                 "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
    "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
    "flags": {"deterministic": torch.are_deterministic_algorithms_enabled(),
              "cudnn_benchmark": torch.backends.cudnn.benchmark,
              "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
              "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED")},
    "data_order_sha256": data_order_digest(0, len(train_ds)),
}
for key, value in record.items():
    print(f"{key:<18}", sorted(value) if isinstance(value, dict) else value)
assert record["data_order_sha256"] == data_order_digest(0, len(train_ds))
assert record["data_order_sha256"] != data_order_digest(1, len(train_ds))
# --8<-- [end:record]
