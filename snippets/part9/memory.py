# --8<-- [start:setup]
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SavedBytes:
    """在 with 块里数出 autograd 为反向传播保存了多少字节。
    同一块存储（storage）只算一次；模型参数本来就常驻内存，不算作激活。"""

    def __init__(self, params=()):
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in self.skip:
            self.storages[s.data_ptr()] = s.nbytes()
        return t                                   # 不改变保存的内容，只记账

    def __enter__(self):
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
# --8<-- [end:setup]


# --8<-- [start:accounting]
B, dims = 128, [64, 256, 256, 10]
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                      nn.Linear(256, 10)).to(device)
X = torch.randn(B, 64, device=device)
y = torch.randint(0, 10, (B,), device=device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)

psi = sum(p.numel() for p in model.parameters())
psi_formula = sum((i + 1) * o for i, o in zip(dims[:-1], dims[1:]))   # 每层 (输入+1)×输出
assert psi == psi_formula

with SavedBytes(model.parameters()) as saved:        # 前向 + 损失：数保存的激活
    loss = nn.functional.cross_entropy(model(X), y)
loss.backward()
opt.step()

param_b = nbytes(model.parameters())
grad_b = nbytes(p.grad for p in model.parameters())
adam_mv = nbytes(s[k] for s in opt.state.values() for k in ("exp_avg", "exp_avg_sq"))
adam_step = nbytes(s["step"] for s in opt.state.values())   # 每个参数张量一个标量步数
# 激活：第 1 层的输入 X，两个 ReLU 的输出（也是下一层 Linear 的输入，同一块存储），
# log_softmax 的输出，int64 的标签，以及 nll_loss 的一个 float32 标量（总权重）
act_formula = 4 * B * (64 + 256 + 256 + 10) + 8 * B + 4

rows = [("参数", param_b, 4 * psi), ("梯度", grad_b, 4 * psi),
        ("Adam 的 m 与 v", adam_mv, 8 * psi), ("Adam 的步数", adam_step, 4 * 6),
        (f"激活（批量 {B}）", saved.total, act_formula)]
print(f"参数量 Ψ = {psi}")
for name, counted, formula in rows:
    print(f"{name:<14s}{counted:>9d} 字节   公式 {formula:>9d}")
    assert counted == formula
total = sum(r[1] for r in rows)
print(f"合计 {total} 字节；其中参数、梯度与优化器状态 {param_b + grad_b + adam_mv} = 16Ψ")
assert param_b + grad_b + adam_mv == 16 * psi
assert saved.total < param_b                       # 批量 128：激活比参数还小
act_10x = 4 * 10 * B * (64 + 256 + 256 + 10) + 8 * 10 * B + 4
assert act_10x > 16 * psi                          # 批量乘以 10：激活超过前三份之和
# --8<-- [end:accounting]


# --8<-- [start:accumulation]
def mlp(norm: type | None = None, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(1)
    layers = [nn.Linear(64, 32)] + ([norm(32)] if norm else []) + [nn.ReLU(), nn.Linear(32, 10)]
    return nn.Sequential(*layers).to(device, dtype)


def grads_full(model, X, y) -> torch.Tensor:
    model.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def grads_accumulated(model, X, y, k: int, divide: bool = True) -> torch.Tensor:
    """把批量切成 k 个微批量，逐个反向传播，梯度在 .grad 里累加；每个微批量的损失除以 k。"""
    model.zero_grad()
    for Xm, ym in zip(X.chunk(k), y.chunk(k)):
        loss = nn.functional.cross_entropy(model(Xm), ym)
        (loss / k if divide else loss).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


Xa = torch.randn(64, 64, device=device, dtype=torch.float64)
ya = torch.randint(0, 10, (64,), device=device)
k = 4
for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 1e-5)]:
    net = mlp(dtype=dtype)
    g_full = grads_full(net, Xa.to(dtype), ya)
    g_acc = grads_accumulated(net, Xa.to(dtype), ya, k)
    err = (g_acc - g_full).abs().max().item()
    print(f"{str(dtype):<14s} 累积 {k} 个微批量 vs 整批：最大差 {err:.1e}，"
          f"逐位相同：{torch.equal(g_acc, g_full)}")
    assert err < tol

net = mlp()
g_full = grads_full(net, Xa, ya)
g_nodiv = grads_accumulated(net, Xa, ya, k, divide=False)
print(f"忘了除以 k：梯度是整批的 {(g_nodiv.norm() / g_full.norm()).item():.4f} 倍")
assert torch.allclose(g_nodiv, k * g_full, rtol=1e-12, atol=1e-14)

bn = mlp(nn.BatchNorm1d)
g_full = grads_full(bn, Xa, ya)
g_acc = grads_accumulated(bn, Xa, ya, k)
rel = ((g_acc - g_full).norm() / g_full.norm()).item()
print(f"带批归一化：累积与整批梯度的相对差 {rel:.3f}")
assert rel > 0.01            # 每个微批量用自己的均值和方差归一化，算的是另一个函数
# --8<-- [end:accumulation]


# --8<-- [start:checkpoint]
class Block(nn.Module):
    """一层 Linear + tanh；calls 数这个块的前向被调用了几次。"""

    def __init__(self, d: int):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.calls = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.tanh(self.lin(h))


n_blocks, d, Bc = 16, 64, 64
torch.manual_seed(2)
deep = nn.Sequential(*[Block(d) for _ in range(n_blocks)]).to(device)
xc = torch.randn(Bc, d, device=device)

results = {}
for s in [1, 2, 4, 8, 16]:
    deep.zero_grad()
    for blk in deep:
        blk.calls = 0
    with SavedBytes(deep.parameters()) as saved:
        out = checkpoint_sequential(deep, s, xc, use_reentrant=False)  # 分成 s 段，前 s-1 段做检查点
        loss = out.square().mean()
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in deep.parameters()])
    calls = sum(blk.calls for blk in deep)
    results[s] = (saved.total, calls, grads)

unit = 4 * Bc * d                              # 一个 (Bc, d) 的 float32 激活
g_ref = results[1][2]
print(" 段数 s   保存的激活（字节）  = (s + n/s) 个激活   块的前向次数 = 2n - n/s   梯度最大差")
for s, (sb, calls, grads) in results.items():
    err = (grads - g_ref).abs().max().item()
    print(f"{s:>5d} {sb:>18d} {s + n_blocks // s:>14d} {calls:>18d} {err:>18.1e}")
    assert sb == unit * (s + n_blocks // s)    # 前 s-1 段只留输入，最后一段留全部
    assert calls == 2 * n_blocks - n_blocks // s
    assert err <= 1e-6
    if device.type == "cpu":
        assert torch.equal(grads, g_ref)       # CPU 上重算与原来的前向逐位相同
best = min(results, key=lambda s: results[s][0])
print(f"保存最少的段数 s = {best} = √{n_blocks}")
assert best == math.isqrt(n_blocks)
# --8<-- [end:checkpoint]


# --8<-- [start:cuda-peak]
# 随机器而变：分配器的峰值取决于 GPU、CUDA 版本和缓存分配器的分块方式
if device.type == "cuda":
    for s in [1, 4]:
        big = torch.randn(4096, d, device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        checkpoint_sequential(deep, s, big, use_reentrant=False).square().mean().backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        print(f"s = {s}：前向加反向的分配器峰值比开始时多 {peak / 2**20:.2f} MiB")
else:
    print("没有 GPU：这里不读分配器峰值，上面用钩子数出的字节已经说明了问题")
# --8<-- [end:cuda-peak]


# --8<-- [start:zero]
def zero_per_process(psi: float, n: int, stage: int, bp: int = 2, bg: int = 2, k: int = 12):
    """ZeRO 论文的记账（每个参数）：参数 bp 字节、梯度 bg 字节、优化器状态 k 字节。
    stage 0 = 数据并行（DDP）；1 切分优化器状态；2 再切梯度；3 再切参数。返回 (参数, 梯度, 状态)。"""
    return (bp * psi / (n if stage >= 3 else 1),
            bg * psi / (n if stage >= 2 else 1),
            k * psi / (n if stage >= 1 else 1))


# 混合精度 Adam：fp16 参数 2Ψ + fp16 梯度 2Ψ + fp32 的主权重、m、v 共 12Ψ
names = ["DDP", "ZeRO-1", "ZeRO-2", "ZeRO-3"]
gb = [sum(zero_per_process(7.5e9, 64, st)) / 1e9 for st in range(4)]
print("Ψ = 7.5e9，N = 64 的每卡字节（GB）：" + "，".join(f"{a} {g:.1f}" for a, g in zip(names, gb)))
assert [round(g, 1) for g in gb] == [120.0, 31.4, 16.6, 1.9]   # ZeRO 论文图 1 的四个数


def shard_and_count(model: nn.Module, n: int, stage: int, rank: int = 0) -> int:
    """真的把拉平的参数补零、切成 n 份，在本进程持有的张量上跑一步 Adam，数字节（fp32 记账）。"""
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    per = math.ceil(flat.numel() / n)
    shards = nn.functional.pad(flat, (0, per * n - flat.numel())).chunk(n)
    owned = nn.Parameter(shards[rank].clone() if stage >= 1 else flat.clone())
    owned.grad = torch.ones_like(owned)
    opt = torch.optim.Adam([owned])
    opt.step()
    state = nbytes(opt.state[owned][key] for key in ("exp_avg", "exp_avg_sq"))
    params = nbytes([owned]) if stage >= 3 else nbytes(model.parameters())
    grads = per * 4 if stage >= 2 else psi * 4   # 梯度分片与参数分片一样大
    return params + grads + state


print(f"本页的 MLP（Ψ = {psi}，fp32 Adam）每个进程的字节：")
print("   N " + "".join(f"{a:>10s}" for a in names))
for n in [1, 2, 4, 8]:
    counted = [shard_and_count(model, n, st) for st in range(4)]
    pn = math.ceil(psi / n)                      # 补零后每个分片的元素数
    formula = [16 * psi, 8 * psi + 8 * pn, 4 * psi + 12 * pn, 16 * pn]
    print(f"{n:>4d} " + "".join(f"{c:>10d}" for c in counted))
    assert counted == formula
# --8<-- [end:zero]


# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
parts, colors = ["参数 (fp16)", "梯度 (fp16)", "优化器状态 (fp32)"], ["#4c72b0", "#dd8452", "#55a868"]
Ns, width = [1, 2, 4, 8], 0.2
for j, st in enumerate(range(4)):
    bottom = [0.0] * len(Ns)
    for i, part in enumerate(parts):
        h = [zero_per_process(7.5e9, n, st)[i] / 1e9 for n in Ns]
        xs = [a + (j - 1.5) * width for a in range(len(Ns))]
        ax1.bar(xs, h, width, bottom=bottom, color=colors[i], edgecolor="white",
                label=part if j == 0 else None)
        bottom = [b + v for b, v in zip(bottom, h)]
    for a in range(len(Ns)):
        ax1.text(a + (j - 1.5) * width, bottom[a] + 2, str(j) if j else "D", ha="center", fontsize=8)
ax1.set_xticks(range(len(Ns)), [f"N = {n}" for n in Ns])
ax1.set_ylabel("每个进程的显存 (GB)")
ax1.set_title("Ψ = 7.5e9 的混合精度 Adam：D = DDP，1/2/3 = ZeRO 阶段")
ax1.legend(fontsize=8, loc="upper right")
ss = list(results)
ax2.plot(ss, [results[s][0] / 1024 for s in ss], "o", label="钩子数出的字节")
fine = [1 + i / 10 for i in range(151)]
ax2.plot(fine, [unit * (s + n_blocks / s) / 1024 for s in fine], "-", label="公式 (s + n/s) × 一个激活")
ax2.set_xscale("log", base=2)
ax2.set_xlabel("检查点的段数 s（n = 16 个块）")
ax2.set_ylabel("为反向保存的激活 (KiB)")
ax2.set_title("段数取 √n 时保存的最少")
ax2.legend(fontsize=8)
fig.savefig("memory_zero_checkpoint.svg", bbox_inches="tight")
# --8<-- [end:figure]


# --8<-- [start:fsdp-worker]
WORKER = r'''
import json
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel


def local(t):                                  # FSDP 的参数是 DTensor：取本进程持有的那一片
    return t.to_local() if hasattr(t, "to_local") else t


def main(folder):
    dist.init_process_group("gloo")            # CPU 上的后端；torchrun 给出地址与编号
    rank, n = dist.get_rank(), dist.get_world_size()
    prob = torch.load(f"{folder}/problem.pt", weights_only=True)
    X, y = prob["X"].chunk(n)[rank], prob["y"].chunk(n)[rank]   # 每个进程拿全局批量的 1/n
    report = {}
    for name in ["FSDP", "DDP"]:
        model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).double()
        model.load_state_dict(prob["init"])
        if name == "FSDP":
            for layer in model:
                if isinstance(layer, nn.Linear):
                    fully_shard(layer)         # 每层一组：前向前 all-gather，反向后 reduce-scatter
            fully_shard(model)
        else:
            model = DistributedDataParallel(model)
        opt = torch.optim.Adam(model.parameters(), lr=prob["lr"])
        for _ in range(prob["steps"]):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        params = list(model.parameters())
        mine = {"params": sum(local(p).nbytes for p in params),
                "grads": sum(local(p.grad).nbytes for p in params),
                "adam": sum(local(s[key]).nbytes for s in opt.state.values()
                            for key in ("exp_avg", "exp_avg_sq"))}
        everyone = [None] * n
        dist.all_gather_object(everyone, mine)  # 收集每个进程的字节数
        full = [p.full_tensor() if hasattr(p, "full_tensor") else p.detach() for p in params]
        report[name] = {"bytes": everyone, "weights": [w.clone() for w in full]}
    if rank == 0:
        torch.save(report, f"{folder}/result.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
'''
# --8<-- [end:fsdp-worker]


# --8<-- [start:fsdp-run]
def torchrun(nproc: int, script: Path, folder: str, timeout: float = 120) -> None:
    """torchrun --standalone：在本机回环地址上起 nproc 个工作进程。超时或失败时杀掉整个进程组。"""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(script), folder]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",  # 工作进程只用 CPU
               GLOO_SOCKET_IFNAME="lo0" if sys.platform == "darwin" else "lo")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun 失败（返回码 {proc.returncode}）：\n{err[-3000:]}")


torch.manual_seed(3)
small = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).double()
Xg = torch.randn(64, 16, dtype=torch.float64)
yg = torch.randint(0, 4, (64,))
steps, lr = 5, 0.05
init = {k: v.clone() for k, v in small.state_dict().items()}

with tempfile.TemporaryDirectory() as folder:
    torch.save({"init": init, "X": Xg, "y": yg, "steps": steps, "lr": lr}, f"{folder}/problem.pt")
    script = Path(folder) / "fsdp_worker.py"
    script.write_text(WORKER, encoding="utf-8")
    torchrun(2, script, folder)
    report = torch.load(f"{folder}/result.pt", weights_only=True)

# 单进程基线：同样的初始权重，在整个全局批量上训练同样的步数
opt = torch.optim.Adam(small.parameters(), lr=lr)
for _ in range(steps):
    loss = nn.functional.cross_entropy(small(Xg), yg)
    opt.zero_grad()
    loss.backward()
    opt.step()
ref = [p.detach() for p in small.parameters()]
psi_small = sum(p.numel() for p in ref)
print(f"小模型 Ψ = {psi_small}（float64，{8 * psi_small} 字节），2 个进程，{steps} 步 Adam")
for name, rep in report.items():
    err = max((w - r).abs().max().item() for w, r in zip(rep["weights"], ref))
    print(f"{name}：与单进程的权重最大差 {err:.1e}")
    assert err < 1e-10
    for rank, b in enumerate(rep["bytes"]):
        print(f"  进程 {rank}：参数 {b['params']} 字节，梯度 {b['grads']}，Adam 状态 {b['adam']}")
        share = 2 if name == "FSDP" else 1     # FSDP 每个进程只持有 1/2
        assert b["params"] == b["grads"] == 8 * psi_small // share
        assert b["adam"] == 2 * 8 * psi_small // share
# --8<-- [end:fsdp-run]
