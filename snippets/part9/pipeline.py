# --8<-- [start:setup]
import json
import os
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, Dataset, get_worker_info

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)   # (1797, 64)，像素缩放到 [0, 1]
y = torch.tensor(digits.target)                              # (1797,)
# --8<-- [end:setup]

# --8<-- [start:profile]
widths = [64, 128, 64, 10]
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
L = sum(isinstance(m, nn.Linear) for m in model)            # 全连接层数
# foreach=False：逐个参数张量更新，便于计数（CUDA 上默认把它们合并成一次 _foreach_add_）
opt = torch.optim.SGD(model.parameters(), lr=0.1, foreach=False)
xb, yb = X[:256].to(device), y[:256].to(device)


def train_step(xb: torch.Tensor, yb: torch.Tensor) -> None:
    with record_function("forward"):
        loss = F.cross_entropy(model(xb), yb)
    with record_function("backward"):
        opt.zero_grad()
        loss.backward()
    with record_function("update"):
        opt.step()


train_step(xb, yb)                                           # 预热：第一次调用有一次性的开销
steps = 2
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
        train_step(xb, yb)
    if device.type == "cuda":
        torch.cuda.synchronize()

assert "torch._inductor" in sys.modules                     # 第一次进入 profile 时顺带导入的
events = prof.key_averages()                                 # 按名字汇总：每个名字一行
calls = {e.key: e.count for e in events}
expected = {                                                 # 每步的调用次数，由网络结构数出来
    "aten::addmm": L,                  # 前向：每个 Linear 一次 x @ W^T + b
    "aten::mm": 2 * L - 1,             # 反向：每层算 dW，除第一层外还算 dx（输入 X 不要梯度）
    "aten::sum": L,                    # 反向：偏置的梯度是对批维求和
    "aten::relu": L - 1,               # 前向：两个 ReLU
    "aten::threshold_backward": L - 1, # 反向：ReLU 的梯度
    "aten::add_": 2 * L,               # 更新：每个参数张量（3 个 W、3 个 b）一次 p -= lr * grad
    "forward": 1, "backward": 1, "update": 1,  # 自己用 record_function 标出的区间
}
print(f"profile 了 {steps} 步；其中几个算子和自己标出的区间：")
print(f"{'名字':<26}{'调用次数':<4}{'每步':>5}")
for name in sorted(expected):
    print(f"{name:<28}{calls[name]:>8}{calls[name] // steps:>7}")
    assert calls[name] == steps * expected[name], name
assert sum(e.key.startswith("aten::") for e in events) > len(expected)  # 还有很多小算子：t、view、fill_……
# --8<-- [end:profile]

# --8<-- [start:profile-times]
# 随机器而变：每个算子的耗时取决于 CPU、线程数和机器当时的负载
total = sum(e.self_cpu_time_total for e in events)          # 所有行的自身时间之和（微秒）
print(f"自身 CPU 时间合计 {total:.0f} µs")
for name in sorted(expected):
    e = next(e for e in events if e.key == name)
    print(f"{name:<28}自身 {e.self_cpu_time_total:.0f} µs，占 {100 * e.self_cpu_time_total / total:.1f}%，"
          f"含子调用 {e.cpu_time_total:.0f} µs")
# --8<-- [end:profile-times]

# --8<-- [start:trace]
with profile(activities=[ProfilerActivity.CPU]) as demo:    # 对照：区间名用中文会怎样
    with record_function("前向"):
        torch.ones(3) + 1

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "trace.json")
    prof.export_chrome_trace(path)                           # 可以拖进 ui.perfetto.dev 看时间线
    with open(path, encoding="utf-8") as f:
        trace = json.load(f)["traceEvents"]
    demo.export_chrome_trace(path)
    with open(path, encoding="utf-8") as f:
        demo_trace = json.load(f)["traceEvents"]
marks = [ev["name"] for ev in trace if ev.get("cat") == "user_annotation"]
print("时间线里的标注区间：", marks[:5], "……")
ours = [m for m in marks if m in ("forward", "backward", "update")]
assert ours == ["forward", "backward", "update"] * steps
demo_marks = [ev["name"] for ev in demo_trace if ev.get("cat") == "user_annotation"]
demo_keys = [e.key for e in demo.key_averages()]
print(f"中文区间名：key_averages 里有「前向」：{'前向' in demo_keys}；导出的 trace 里是 {demo_marks}")
assert "前向" in demo_keys and demo_marks == ["unknown"]                             # PyTorch 2.13 导出时丢掉非 ASCII 的名字
# --8<-- [end:trace]


# --8<-- [start:dataset]
class SlowDigits(Dataset):
    """每取一个样本先睡 delay 秒，模拟读盘、解码、数据增强；顺便记下是谁取的。"""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, delay: float):
        self.X, self.y, self.delay = X, y, delay

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int):
        time.sleep(self.delay)
        info = get_worker_info()                             # 在主进程里是 None
        worker = -1 if info is None else info.id
        seed = -1 if info is None else info.seed
        return self.X[i], self.y[i], i, worker, seed


def make_loader(ds: Dataset, workers: int, **kw) -> DataLoader:
    g = torch.Generator().manual_seed(0)                     # 洗牌顺序只由这个生成器决定
    extra = {"timeout": 10} if workers > 0 else {}           # 有 worker 时：10 秒拿不到一批就报错，不会卡死
    return DataLoader(ds, batch_size=4, shuffle=True, generator=g, num_workers=workers, **extra, **kw)
# --8<-- [end:dataset]


# --8<-- [start:workers]
ds = SlowDigits(X[:32], y[:32], delay=0.0)                   # 先不睡：只看谁取了哪些样本
print("工作进程的启动方式：", torch.multiprocessing.get_start_method())
runs = {}
for workers in [0, 2]:
    batches = [(idx.tolist(), wid.unique().tolist(), s.unique().tolist())
               for _, _, idx, wid, s in make_loader(ds, workers)]
    runs[workers] = batches
    print(f"num_workers={workers}：{len(batches)} 批，前 3 批的下标 {[b[0] for b in batches[:3]]}")
    print(f"  每批由谁取：{[b[1][0] for b in batches]}（-1 表示主进程）")

order0 = [b[0] for b in runs[0]]
order2 = [b[0] for b in runs[2]]
assert order0 == order2                                      # 顺序相同：洗牌在主进程的采样器里做
assert sorted(sum(order0, [])) == list(range(32))            # 一轮里每个样本恰好一次
assert all(b[1] == [-1] for b in runs[0])                    # 0 个 worker：全在主进程里取
assert [b[1] for b in runs[2]] == [[k % 2] for k in range(8)]  # 2 个 worker：轮流，每批只来自一个 worker
seeds = {b[1][0]: b[2][0] for b in runs[2]}
assert len(seeds) == 2 and seeds[1] - seeds[0] == 1          # worker k 的种子是 base_seed + k
in_main = {w: sum(len(b[0]) for b in runs[w] if b[1] == [-1]) for w in runs}
print(f"主进程里执行 __getitem__ 的次数：0 个工作进程时 {in_main[0]}，2 个工作进程时 {in_main[2]}")
print(f"两个工作进程的种子之差：{seeds[1] - seeds[0]}")
assert in_main == {0: 32, 2: 0}
# --8<-- [end:workers]

# --8<-- [start:pin]
pin = torch.cuda.is_available()                              # 锁页内存只对「CPU → GPU」的拷贝有用
xb, yb, *_ = next(iter(make_loader(ds, 0, pin_memory=pin)))
print(f"CUDA 可用：{pin}；批张量在锁页内存里：{xb.is_pinned()}")
assert xb.is_pinned() == pin
xb = xb.to(device, non_blocking=pin)                         # 锁页内存上的拷贝可以不阻塞 CPU
assert xb.device.type == device.type
# --8<-- [end:pin]

# --8<-- [start:timing]
# 随机器而变：等待与计算的毫秒数取决于 CPU、进程调度和机器当时的负载
slow = SlowDigits(X[:32], y[:32], delay=0.005)               # 每个样本 5 ms，一批 4 个 = 20 ms


def timeline(loader: DataLoader, epochs: int = 2) -> list:
    """每一步记下（开始等数据，拿到数据，算完）三个时刻，单位 ms，从每轮开始算起。"""
    result = []
    for _ in range(epochs):
        t0 = t = time.perf_counter()
        steps = []
        for xb, yb, *_ in loader:
            t_data = time.perf_counter()
            train_step(xb.to(device), yb.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_done = time.perf_counter()
            steps.append([(v - t0) * 1e3 for v in (t, t_data, t_done)])
            t = t_done
        result.append(steps)
    return result


measured = {}
for workers in [0, 2]:
    # persistent_workers：第 2 轮复用第 1 轮的 worker 进程，不再重新启动
    loader = make_loader(slow, workers, persistent_workers=workers > 0)
    measured[workers] = timeline(loader)
    del loader                                               # 关掉 worker 进程
for workers, (first, second) in measured.items():
    wait = sum(b - a for a, b, _ in second)
    comp = sum(c - b for _, b, c in second)
    print(f"num_workers={workers}：第 1 轮 {first[-1][2]:.0f} ms，其中第一批等了 {first[0][1]:.0f} ms；"
          f"第 2 轮 {second[-1][2]:.0f} ms = 等数据 {wait:.0f} ms + 计算 {comp:.0f} ms")
# --8<-- [end:timing]

# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(8, 2.6))
for row, workers in enumerate([0, 2]):
    second = measured[workers][1]
    ax.broken_barh([(a, b - a) for a, b, _ in second], (row - 0.35, 0.7), color="tab:orange",
                   label="等数据" if row == 0 else None)
    ax.broken_barh([(b, c - b) for _, b, c in second], (row - 0.35, 0.7), color="tab:blue",
                   label="计算（一步训练）" if row == 0 else None)
ax.set_yticks([0, 1], ["num_workers=0", "num_workers=2"])
ax.set_xlabel("第 2 轮开始后的时间（ms）")
ax.set_title("每步在等数据还是在计算（作者机器上的一次测量，随机器而变）")
ax.legend(loc="upper right", fontsize=8)
fig.savefig("pipeline_timeline.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
