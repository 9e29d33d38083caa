# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import DataLoader, Dataset, get_worker_info

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
widths = [64, 128, 64, 32, 10]
layers = []
for d_in, d_out in zip(widths[:-1], widths[1:]):
    layers += [nn.Linear(d_in, d_out), nn.ReLU()]
net = nn.Sequential(*layers[:-1]).to(device)                 # 最后一层后面不加 ReLU
L = len(widths) - 1                                          # 4 个全连接层
opt = torch.optim.SGD(net.parameters(), lr=0.1, foreach=False)
xb = torch.rand(256, 64, device=device, requires_grad=True)  # 输入也要梯度
yb = torch.randint(0, 10, (256,), device=device)


def step() -> None:
    loss = F.cross_entropy(net(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()


step()                                                       # 预热
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step()
calls = {e.key: e.count for e in prof.key_averages()}
# add_ 多 1 次：zero_grad 只清参数的梯度，xb.grad 还留着上一步的值，这一步的梯度累加上去
predicted = {"aten::addmm": L, "aten::mm": 2 * L, "aten::add_": 2 * L + 1, "aten::sum": L}
for name, n in predicted.items():
    print(f"{name:<12} 预测 {n}，实测 {calls[name]}")
    assert calls[name] == n
# --8<-- [end:ex1]


# --8<-- [start:ex2]
class WhoLoads(Dataset):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int):
        info = get_worker_info()
        return i, -1 if info is None else info.id


def batches(workers: int) -> list:
    g = torch.Generator().manual_seed(0)
    extra = {"timeout": 10} if workers > 0 else {}
    loader = DataLoader(WhoLoads(), batch_size=4, shuffle=True, generator=g, num_workers=workers, **extra)
    return [(idx.tolist(), wid.unique().tolist()) for idx, wid in loader]


b0, b3 = batches(0), batches(3)
who = [w[0] for _, w in b3]
per_worker = {k: sum(len(idx) for idx, w in b3 if w == [k]) for k in range(3)}
print("每批由哪个工作进程产出：", who)
print("每个工作进程取的样本数：", per_worker)
assert [idx for idx, _ in b0] == [idx for idx, _ in b3]     # 顺序与 0 个 worker 时相同
assert who == [k % 3 for k in range(8)]
assert per_worker == {0: 12, 1: 12, 2: 8}
# --8<-- [end:ex2]

# --8<-- [start:ex3]
B, t, C = 4, 5, 6                                            # 批量大小、每个样本的准备时间（ms）、每步计算（ms）
D = B * t                                                    # 准备一批要 20 ms
W = math.ceil(D / C)                                         # 最少几个 worker 才让 D / W <= C
for w in [0, 1, 2, 3, W]:
    step_ms = D + C if w == 0 else max(C, D / w)
    print(f"num_workers={w}：稳态每步约 {step_ms:.1f} ms")
assert W == 4 and D / (W - 1) > C >= D / W
# --8<-- [end:ex3]
