# --8<-- [start:imports]
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def small_mlp(norm: type | None = None) -> nn.Module:
    torch.manual_seed(1)
    layers = [nn.Linear(64, 32)] + ([norm(32)] if norm else []) + [nn.ReLU(), nn.Linear(32, 10)]
    return nn.Sequential(*layers).to(device, torch.float64)


X = torch.randn(64, 64, device=device, dtype=torch.float64)
y = torch.randint(0, 10, (64,), device=device)
# --8<-- [end:imports]


# --8<-- [start:ex1]
net = small_mlp()
net.zero_grad()
nn.functional.cross_entropy(net(X), y).backward()
g_full = flat_grad(net)

sizes = [40, 24]                                   # 两个大小不同的微批量
parts = list(zip(X.split(sizes), y.split(sizes)))
for rule in ["除以 k", "乘以 b_i / B"]:
    net.zero_grad()
    for Xm, ym in parts:
        loss = nn.functional.cross_entropy(net(Xm), ym)          # 微批量内部的平均
        w = 1 / len(parts) if rule == "除以 k" else len(ym) / len(y)
        (loss * w).backward()
    err = (flat_grad(net) - g_full).abs().max().item()
    print(f"{rule:<10s} 与整批梯度的最大差 {err:.1e}")
    if rule == "除以 k":
        assert err > 1e-4                           # 小的微批量被放大了权重
    else:
        assert err < 1e-12
# --8<-- [end:ex1]


# --8<-- [start:ex2]
for norm in [nn.BatchNorm1d, nn.LayerNorm]:
    net = small_mlp(norm)
    net.zero_grad()
    nn.functional.cross_entropy(net(X), y).backward()
    g_full = flat_grad(net)
    net.zero_grad()
    for Xm, ym in zip(X.chunk(4), y.chunk(4)):
        (nn.functional.cross_entropy(net(Xm), ym) / 4).backward()
    rel = ((flat_grad(net) - g_full).norm() / g_full.norm()).item()
    print(f"{norm.__name__:<12s} 累积 4 个微批量与整批梯度的相对差 {rel:.1e}")
    assert (rel > 0.01) if norm is nn.BatchNorm1d else (rel < 1e-12)
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def saved_bytes(net: nn.Module, x: torch.Tensor, s: int) -> int:
    skip = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in skip:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        checkpoint_sequential(net, s, x, use_reentrant=False).square().mean()
    return sum(storages.values())


n, d = 64, 8
torch.manual_seed(2)
deep = nn.Sequential(*[nn.Sequential(nn.Linear(d, d), nn.Tanh()) for _ in range(n)]).to(device)
x = torch.randn(4, d, device=device)
segs = [1, 2, 4, 8, 16, 32, 64]
counts = {s: saved_bytes(deep, x, s) // (4 * 4 * d) for s in segs}   # 以「一个激活」为单位
print("段数 s:      " + " ".join(f"{s:>4d}" for s in segs))
print("保存的激活数: " + " ".join(f"{counts[s]:>4d}" for s in segs))
best = min(counts, key=counts.get)
print(f"最少的是 s = {best}，√n = {math.isqrt(n)}；多出的前向 n - n/s = {n - n // best} 个块")
assert all(counts[s] == s + n // s for s in segs) and best == math.isqrt(n)
# --8<-- [end:ex3]


# --8<-- [start:ex4]
psi, N, limit = 1.5e9, 8, 16e9                   # 1.5e9 个参数，8 张 16 GB 的卡
per_process = {
    "DDP": 16 * psi,
    "ZeRO-1": 4 * psi + 12 * psi / N,
    "ZeRO-2": 2 * psi + 14 * psi / N,
    "ZeRO-3": 16 * psi / N,
}
for name, b in per_process.items():
    print(f"{name:<7s} 每卡 {b / 1e9:5.2f} GB  {'放得下' if b < limit else '放不下'}")
assert [b < limit for b in per_process.values()] == [False, True, True, True]
# --8<-- [end:ex4]
