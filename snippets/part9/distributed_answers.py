# --8<-- [start:imports]
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def simulate_ring(xs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """在一个进程里按正文 ring_all_reduce 的下标规则重放环形全归约：xs[r] 是进程 r 的数据。
    每一步所有进程同时发送，所以先取出要发的块，再统一更新。返回各进程的结果与发出的元素个数。"""
    n = len(xs)
    bufs = [x.clone() for x in xs]
    chunks = [b.tensor_split(n) for b in bufs]
    sent = [0] * n
    for phase in ("reduce-scatter", "all-gather"):
        for s in range(n - 1):
            idx = [(r - s) % n if phase == "reduce-scatter" else (r + 1 - s) % n for r in range(n)]
            msgs = [chunks[r][idx[r]].clone() for r in range(n)]           # 进程 r 发给 r+1 的块
            for r in range(n):
                sent[r] += msgs[r].numel()
                left = (r - 1) % n
                if phase == "reduce-scatter":
                    chunks[r][idx[left]].add_(msgs[left])
                else:
                    chunks[r][idx[left]].copy_(msgs[left])
    return bufs, sent
# --8<-- [end:imports]

# --8<-- [start:ex1]
N, M = 4, 10
xs = [torch.randint(-9, 10, (M,), device=device).double() for _ in range(N)]
bufs, sent = simulate_ring(xs)
total = torch.stack(xs).sum(0)
sizes = [c.numel() for c in total.tensor_split(N)]
print("块的大小:", sizes)
print("各进程发出的元素个数:", sent, " 合计", sum(sent), " 平均", sum(sent) / N)
print("2(N-1)/N·M =", 2 * (N - 1) * M / N, " 2(N-1)·ceil(M/N) =", 2 * (N - 1) * -(-M // N))
assert all(torch.equal(b, total) for b in bufs)
assert sent == [2 * M - sizes[(r + 1) % N] - sizes[(r + 2) % N] for r in range(N)]   # 只有两块不由自己发出
assert sum(sent) == 2 * (N - 1) * M                                                    # 总量不变
assert max(sent) <= 2 * (N - 1) * -(-M // N)
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def sharded_ps_traffic(n: int, m: int) -> list[int]:
    """n 个节点，每个节点既是工作进程，又是 m/n 个参数的服务器。数出每个节点一步发出的元素个数。"""
    shard = [len(s) for s in torch.arange(m).tensor_split(n)]
    sent = [0] * n
    for worker in range(n):
        for server in range(n):
            if worker != server:                 # 发给自己的不走网络
                sent[worker] += shard[server]    # push：梯度的这一片发给它的服务器
                sent[server] += shard[server]    # pull：服务器把这一片新参数发回给工作进程
    return sent


m = 1200
for n in (2, 4, 8):
    ps_sent = sharded_ps_traffic(n, m)
    ring = 2 * (n - 1) * m // n
    print(f"n = {n}：分片参数服务器每个节点发出 {ps_sent}，环形全归约每个进程发出 {ring}，"
          f"单个服务器（n 个工作进程）发出 {n * m}")
    assert ps_sent == [ring] * n and n * m > ring
# --8<-- [end:ex2]

# --8<-- [start:ex3]
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3)).double().to(device)
X = torch.randn(96, 10, dtype=torch.float64, device=device)
y = torch.randint(0, 3, (96,), device=device)
shards = [torch.arange(0, 64, device=device), torch.arange(64, 96, device=device)]   # 两个进程：64 个与 32 个样本
B, world = len(y), len(shards)


def grad_of(loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def ce(idx: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return nn.functional.cross_entropy(model(X[idx]), y[idx], reduction=reduction)


g_single = grad_of(ce(torch.arange(B, device=device)))
# DDP 的梯度 = 各进程本地梯度的平均（正文已验证 DDP 就是这样做的）
g_mean = sum(grad_of(ce(s)) for s in shards) / world
g_fixed = sum(grad_of(ce(s, "sum") * world / B) for s in shards) / world
gap_mean = (g_mean - g_single).abs().max().item()
gap_fixed = (g_fixed - g_single).abs().max().item()
print(f"本地损失取均值：与单进程梯度的最大差 {gap_mean:.1e}")
print(f"本地损失 = 求和 × {world}/{B}：与单进程梯度的最大差 {gap_fixed:.1e}")
assert gap_mean > 1e-3 and gap_fixed < 1e-12
# --8<-- [end:ex3]
