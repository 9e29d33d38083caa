# --8<-- [start:setup]
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 工作进程的文件开头：它们自己导入需要的模块
WORKER_HEADER = "import os\nimport sys\n\nimport torch\nimport torch.distributed as dist\nfrom torch import nn\n"


def write_worker(path: Path, functions: list, main) -> None:
    """把几个函数的源码（inspect 取自本文件）写成一个可以由 torchrun 启动的脚本。"""
    parts = [WORKER_HEADER] + [inspect.getsource(f) for f in functions + [main]]
    parts.append(f'if __name__ == "__main__":\n    {main.__name__}(sys.argv[1])\n')
    path.write_text("\n\n".join(parts), encoding="utf-8")


def torchrun(nproc: int, script: Path, out: Path, timeout: float = 240) -> list[str]:
    """运行 torchrun --standalone --nproc_per_node=nproc script out，返回命令（不含路径）。
    进程组只在本机回环地址上通信；超时就结束 torchrun 和它启动的全部进程。"""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", str(script), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               GLOO_SOCKET_IFNAME="lo0" if sys.platform == "darwin" else "lo")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # 新的进程组：出错时能一次收拾干净
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()             # torchrun 收到 SIGTERM，先结束它启动的各个进程再退出
        try:
            proc.communicate(timeout=30)
        finally:                     # 兜底：强行结束 torchrun 所在的整个进程组
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun 失败（返回码 {proc.returncode}）：\n{err[-3000:]}")
    return ["torchrun", "--standalone", f"--nproc_per_node={nproc}", script.name, out.name]
# --8<-- [end:setup]


# --8<-- [start:collectives]
def collectives_demo(rank: int, n: int) -> dict:
    """五种集合通信各调用一次。进程 r 的输入是 x_r = [10r, 10r+1, ..., 10r+5]。"""
    x = torch.arange(6, dtype=torch.float64) + 10 * rank
    out = {"input": x.clone()}

    t = x.clone()
    dist.broadcast(t, src=0)                      # 0 号进程的 x 复制给所有进程
    out["broadcast"] = t

    t = x.clone()
    dist.reduce(t, dst=0, op=dist.ReduceOp.SUM)   # 只有 0 号进程得到总和
    out["reduce"] = t if rank == 0 else None

    gathered = [torch.empty_like(x) for _ in range(n)]
    dist.all_gather(gathered, x)                  # 每个进程得到所有进程的 x
    out["all_gather"] = torch.stack(gathered)

    piece = torch.empty(6 // n, dtype=torch.float64)
    dist.reduce_scatter(piece, list(x.tensor_split(n)))  # 总和切成 n 块，第 r 块给进程 r
    out["reduce_scatter"] = piece

    t = x.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)      # 每个进程都得到总和
    out["all_reduce"] = t

    # all-reduce = reduce-scatter 之后再 all-gather
    pieces = [torch.empty_like(piece) for _ in range(n)]
    dist.all_gather(pieces, piece)
    out["rs_then_ag"] = torch.cat(pieces)
    return out
# --8<-- [end:collectives]


# --8<-- [start:ring]
def ring_all_reduce(x: torch.Tensor, trace: list | None = None) -> tuple[torch.Tensor, int]:
    """环形全归约：只用点对点的 isend/irecv。返回各进程 x 之和，以及本进程发出的元素个数。"""
    rank, n = dist.get_rank(), dist.get_world_size()
    right, left = (rank + 1) % n, (rank - 1) % n
    buf = x.clone()
    chunks = buf.tensor_split(n)                  # n 块视图，改它们就是改 buf
    sent = 0

    def exchange(send_i: int, recv_i: int) -> torch.Tensor:
        nonlocal sent
        incoming = torch.empty_like(chunks[recv_i])
        ops = [dist.P2POp(dist.isend, chunks[send_i], right),   # 发给右邻居
               dist.P2POp(dist.irecv, incoming, left)]          # 同时从左邻居收
        for req in dist.batch_isend_irecv(ops):
            req.wait()
        sent += chunks[send_i].numel()
        return incoming

    # 第一阶段 reduce-scatter：n-1 步后，进程 r 持有第 (r+1) mod n 块的总和
    for s in range(n - 1):
        chunks[(rank - s - 1) % n].add_(exchange((rank - s) % n, (rank - s - 1) % n))
        if trace is not None:
            trace.append(buf.clone())
    # 第二阶段 all-gather：把算完的块沿环传一圈，n-1 步后每个进程都有全部总和
    for s in range(n - 1):
        chunks[(rank - s) % n].copy_(exchange((rank + 1 - s) % n, (rank - s) % n))
        if trace is not None:
            trace.append(buf.clone())
    return buf, sent


def ring_demo(rank: int, n: int) -> dict:
    gen = torch.Generator().manual_seed(100 + rank)          # 每个进程的数据不同
    out = {}
    for name, x in [("整数值", torch.randint(-1000, 1000, (1200,), generator=gen).double()),
                    ("随机浮点", torch.randn(1200, generator=gen, dtype=torch.float64))]:
        mine, sent = ring_all_reduce(x)
        ref = x.clone()
        dist.all_reduce(ref)                                   # PyTorch 内置的全归约
        out[name] = {"M": x.numel(), "sent": sent, "exact": torch.equal(mine, ref),
                     "max_err": (mine - ref).abs().max().item()}
    trace = [torch.full((n,), 2.0 ** rank)]                   # 进程 r 的每个元素是 2^r
    ring_all_reduce(torch.full((n,), 2.0 ** rank), trace)     # 和的二进制位说明哪些进程已经加进来
    out["trace"] = torch.stack(trace)                         # (2(n-1)+1, n)
    return out
# --8<-- [end:ring]


# --8<-- [start:problem]
def make_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """每个进程用同一个种子造出同样的模型和数据：10 维输入、3 类，96 个样本。"""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    X = torch.randn(96, 10, dtype=torch.float64)
    y = (X @ torch.randn(10, 3, dtype=torch.float64)).argmax(1)   # 一个随机线性「教师」给的标签
    return model, X, y


def train_single(steps: int, lr: float) -> tuple[torch.Tensor, list]:
    """单进程基线：在整批 96 个样本上做 steps 步梯度下降，返回最终参数（拉平）和每步损失。"""
    model, X, y = make_problem()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return nn.utils.parameters_to_vector(model.parameters()).detach(), losses
# --8<-- [end:problem]


# --8<-- [start:ps]
def parameter_server_demo(rank: int, n: int, steps: int = 30, lr: float = 0.5) -> dict:
    """同步参数服务器：进程 0 是服务器，进程 1..n-1 是工作进程，各管 96/(n-1) 个样本。"""
    model, X, y = make_problem()
    w = nn.utils.parameters_to_vector(model.parameters()).detach()   # 全部参数拉成一个向量
    workers = list(range(1, n))
    sent = received = 0
    if rank == 0:                                     # ---- 服务器 ----
        for _ in range(steps):
            for k in workers:                         # pull：工作进程取走最新的参数
                dist.send(w, dst=k)
                sent += w.numel()
            g = torch.zeros_like(w)
            for k in workers:                         # push：收齐所有梯度（同步）
                buf = torch.empty_like(w)
                dist.recv(buf, src=k)
                received += buf.numel()
                g += buf
            w -= lr * g / len(workers)                # 平均梯度做一步 SGD
        return {"w": w, "sent": sent, "received": received, "P": w.numel()}
    shard = torch.arange(96).tensor_split(len(workers))[rank - 1]   # 本工作进程的样本
    for _ in range(steps):                            # ---- 工作进程 ----
        dist.recv(w, src=0)
        received += w.numel()
        nn.utils.vector_to_parameters(w, model.parameters())
        model.zero_grad()
        nn.functional.cross_entropy(model(X[shard]), y[shard]).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        dist.send(g, dst=0)
        sent += g.numel()
    return {"sent": sent, "received": received}
# --8<-- [end:ps]


# --8<-- [start:launch]
def main_collectives(out_path: str) -> None:
    """torchrun 启动的每个进程执行它；0 号进程把所有进程的结果存进 out_path。"""
    dist.init_process_group("gloo")                   # 地址、端口、rank、进程数都由 torchrun 的环境变量给出
    rank, n = dist.get_rank(), dist.get_world_size()
    result = {"rank": rank, "collectives": collectives_demo(rank, n),
              "ring": ring_demo(rank, n), "ps": parameter_server_demo(rank, n)}
    everyone = [None] * n if rank == 0 else None
    dist.gather_object(result, everyone, dst=0)
    if rank == 0:
        torch.save(everyone, out_path)
    dist.destroy_process_group()


with tempfile.TemporaryDirectory() as tmp:
    script = Path(tmp) / "collectives_worker.py"
    write_worker(script, [collectives_demo, ring_all_reduce, ring_demo, make_problem,
                          parameter_server_demo], main_collectives)
    cmd = torchrun(3, script, Path(tmp) / "result.pt")
    results = torch.load(Path(tmp) / "result.pt", weights_only=False)
print(" ".join(cmd))
print("进程数:", len(results), " 各进程的 rank:", [r["rank"] for r in results])
# --8<-- [end:launch]

# --8<-- [start:check_collectives]
N = len(results)
xs = torch.stack([torch.arange(6, dtype=torch.float64) + 10 * r for r in range(N)])   # (N, 6) 各进程的输入
total = xs.sum(0)
for r, res in enumerate(results):
    c = res["collectives"]
    assert torch.equal(c["input"], xs[r])
    assert torch.equal(c["broadcast"], xs[0])                       # broadcast：都等于 0 号的输入
    assert torch.equal(c["all_gather"], xs)                         # all-gather：都得到整张表
    assert torch.equal(c["reduce_scatter"], total.tensor_split(N)[r])   # reduce-scatter：总和的第 r 块
    assert torch.equal(c["all_reduce"], total)                      # all-reduce：都得到总和
    assert torch.equal(c["rs_then_ag"], total)                      # = reduce-scatter + all-gather
assert torch.equal(results[0]["collectives"]["reduce"], total)     # reduce：0 号得到总和
def fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:g}" for v in t.reshape(-1).tolist()) + "]"


for r in (0, N - 1):
    c = results[r]["collectives"]
    print(f"进程 {r}：输入 {fmt(c['input'])}")
    print(f"  broadcast      {fmt(c['broadcast'])}")
    print(f"  reduce         {fmt(c['reduce']) if c['reduce'] is not None else '（不在 dst 上，内容无定义）'}")
    print(f"  all_gather     {tuple(c['all_gather'].shape)} 的表，第 {r} 行 {fmt(c['all_gather'][r])}")
    print(f"  reduce_scatter {fmt(c['reduce_scatter'])}")
    print(f"  all_reduce     {fmt(c['all_reduce'])}")
print("五种集合通信的结果在", N, "个进程上都与定义相符")
# --8<-- [end:check_collectives]

# --8<-- [start:check_ring]
# 容差 ±1e-12：这些最大误差是 float64 的舍入，量级随平台的求和顺序而变
for name in ("整数值", "随机浮点"):
    sents = [res["ring"][name]["sent"] for res in results]
    M = results[0]["ring"][name]["M"]
    expected = 2 * (N - 1) * M // N                                  # 2(N-1)/N · M
    err = max(res["ring"][name]["max_err"] for res in results)
    print(f"{name}：M = {M}，各进程发出 {sents} 个元素，公式 2(N-1)/N·M = {expected}，"
          f"与 dist.all_reduce 逐位相等: {all(res['ring'][name]['exact'] for res in results)}，"
          f"最大误差 {err:.1e}")
    assert sents == [expected] * N
assert all(res["ring"]["整数值"]["exact"] for res in results)         # 整数值的浮点数：加法顺序无关，逐位相等
assert max(res["ring"]["随机浮点"]["max_err"] for res in results) < 1e-12   # 一般浮点数：只差舍入
naive_root = 2 * (N - 1) * M                                          # 对照：全部发给 0 号求和、再发回去
print(f"对照：0 号进程先收齐再广播，它要收发 {naive_root} 个元素；环形每个进程收发 {2 * expected}")

traces = torch.stack([res["ring"]["trace"] for res in results])      # (N 进程, 步, N 块)
count = torch.zeros(traces.shape, dtype=torch.long)
for bit in range(N):
    count += (traces.long() >> bit) & 1                                # 二进制位数 = 已经加进来的进程数
for r in range(N):
    assert count[r, N - 1, (r + 1) % N] == N                           # reduce-scatter 后进程 r 持有第 r+1 块的总和
assert (count[:, -1] == N).all()                                       # all-gather 后每块都是 N 个进程之和
steps = count.shape[1]
fig, axes = plt.subplots(1, steps, figsize=(2.0 * steps, 2.4))
for s, ax in enumerate(axes):
    ax.imshow(count[:, s], cmap="Blues", vmin=0, vmax=N)
    for r in range(N):
        for c in range(N):
            bits = int(traces[r, s, c].item())
            label = "+".join(str(b) for b in range(N) if bits >> b & 1)
            ax.text(c, r, label, ha="center", va="center", fontsize=7,
                    color="white" if count[r, s, c] > N / 2 else "black")
    phase = "初始" if s == 0 else ("reduce-scatter" if s < N else "all-gather")
    ax.set_title(f"第 {s} 步\n{phase}", fontsize=9)
    ax.set_xticks(range(N), [f"块{c}" for c in range(N)], fontsize=7)
    ax.set_yticks(range(N), [f"进程{r}" for r in range(N)] if s == 0 else [], fontsize=7)
fig.suptitle("环形全归约：每格写出这一块已经加进了哪些进程的数据", fontsize=10)
fig.savefig("distributed_ring.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:check_ring]

# --8<-- [start:check_ps]
# 容差 ±1e-12：这些最大误差是 float64 的舍入，量级随平台的求和顺序而变
ps = results[0]["ps"]
P = ps["P"]
assert P == (10 * 16 + 16) + (16 * 3 + 3) == sum(p.numel() for p in make_problem()[0].parameters())
w_single, losses = train_single(steps=30, lr=0.5)
diff = (ps["w"] - w_single).abs().max().item()
print(f"参数量 P = {P}，训练 30 步：单进程损失 {losses[0]:.4f} → {losses[-1]:.4f}")
print(f"参数服务器训练出的参数与单进程基线的最大差 {diff:.1e}")
workers = N - 1
print(f"服务器收发 {ps['sent']} + {ps['received']} 个元素（每步 2·{workers}·P），"
      f"每个工作进程收发 {results[1]['ps']['sent']} + {results[1]['ps']['received']}（每步 2P）")
assert torch.allclose(ps["w"], w_single, rtol=0, atol=1e-12)
assert losses[-1] < 0.5 * losses[0]
assert ps["sent"] == ps["received"] == 30 * workers * P
assert all(res["ps"]["sent"] == res["ps"]["received"] == 30 * P for res in results[1:])
# --8<-- [end:check_ps]


# --8<-- [start:ddp]
def main_ddp(out_path: str) -> None:
    """一个普通的 DDP 训练脚本：每个进程用 96/n 个样本，DDP 在反向传播时对梯度做全归约求平均。"""
    dist.init_process_group("gloo")
    rank, n = dist.get_rank(), dist.get_world_size()
    model, X, y = make_problem()
    ddp = nn.parallel.DistributedDataParallel(model)        # 构造时把 0 号的参数广播给所有进程
    shard = torch.arange(96).tensor_split(n)[rank]
    env = {k: os.environ[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}

    # 第一步的梯度：本地损失取均值，DDP 再对 n 个进程求平均
    nn.functional.cross_entropy(ddp(X[shard]), y[shard]).backward()
    grad_mean = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()
    # 错误的约定：本地损失用求和，DDP 仍然除以 n
    model.zero_grad()
    nn.functional.cross_entropy(ddp(X[shard]), y[shard], reduction="sum").backward()
    grad_sum = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()

    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)        # 再训练 30 步
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(ddp(X[shard]), y[shard]).backward()
        opt.step()
    w = nn.utils.parameters_to_vector(model.parameters()).detach()
    everyone = [None] * n if rank == 0 else None
    dist.gather_object({"env": env, "grad_mean": grad_mean, "grad_sum": grad_sum, "w": w}, everyone, dst=0)
    if rank == 0:
        torch.save(everyone, out_path)
    dist.destroy_process_group()


with tempfile.TemporaryDirectory() as tmp:
    script = Path(tmp) / "train_ddp.py"
    write_worker(script, [make_problem], main_ddp)
    cmd = torchrun(2, script, Path(tmp) / "ddp.pt")
    ddp_results = torch.load(Path(tmp) / "ddp.pt", weights_only=False)
print(" ".join(cmd))
for res in ddp_results:
    print("torchrun 设置的环境变量:", res["env"])
# --8<-- [end:ddp]

# --8<-- [start:check_ddp]
# 容差 ±1e-12：这些最大误差是 float64 的舍入，量级随平台的求和顺序而变
model, X, y = make_problem()                                  # 单进程：整批 96 个样本，在 device 上
model, X, y = model.to(device), X.to(device), y.to(device)
nn.functional.cross_entropy(model(X), y).backward()
g_single = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).cpu()
model.zero_grad()
nn.functional.cross_entropy(model(X), y, reduction="sum").backward()
g_single_sum = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).cpu()
n_ddp = len(ddp_results)
gap = max((r["grad_mean"] - g_single).abs().max().item() for r in ddp_results)
gap_sum = max((r["grad_sum"] * n_ddp - g_single_sum).abs().max().item() for r in ddp_results)
gap_w = max((r["w"] - w_single).abs().max().item() for r in ddp_results)
ratio = (ddp_results[0]["grad_sum"] / g_single_sum).median().item()
print(f"DDP（{n_ddp} 个进程，各 {96 // n_ddp} 个样本）与单进程（96 个样本）梯度的最大差 {gap:.1e}")
print(f"本地损失求和时，DDP 梯度 / 单进程求和损失的梯度 = {ratio:.4f}，乘以 {n_ddp} 后最大差 {gap_sum:.1e}")
print(f"训练 30 步后 DDP 参数与单进程基线的最大差 {gap_w:.1e}")
assert gap < 1e-12 and gap_sum < 1e-10 and gap_w < 1e-12
assert abs(ratio - 1 / n_ddp) < 1e-12
assert all(torch.equal(r["w"], ddp_results[0]["w"]) for r in ddp_results)   # 各进程的副本始终一致
# --8<-- [end:check_ddp]


# --8<-- [start:nccl]
def main_nccl(out_path: str) -> None:
    """NCCL 后端：每个进程一块 GPU，同样的环形算法与 dist.all_reduce 比较。"""
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))   # 每个进程先选定自己的 GPU
    dist.init_process_group("nccl")
    rank, n = dist.get_rank(), dist.get_world_size()
    gen = torch.Generator().manual_seed(100 + rank)
    x = torch.randint(-1000, 1000, (1200,), generator=gen).double().cuda()
    mine, sent = ring_all_reduce(x)
    ref = x.clone()
    dist.all_reduce(ref)
    ok = [None] * n if rank == 0 else None
    dist.gather_object((torch.equal(mine, ref), sent), ok, dst=0)
    if rank == 0:
        torch.save(ok, out_path)
    dist.destroy_process_group()


gpus = torch.cuda.device_count()
if gpus >= 2:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "nccl_worker.py"
        write_worker(script, [ring_all_reduce], main_nccl)
        n_gpu = min(gpus, 4)
        cmd = torchrun(n_gpu, script, Path(tmp) / "nccl.pt")
        nccl = torch.load(Path(tmp) / "nccl.pt", weights_only=False)
    print(" ".join(cmd))
    print(f"NCCL，{n_gpu} 块 GPU：环形全归约与 dist.all_reduce 逐位相等: {all(e for e, _ in nccl)}，"
          f"各进程发出 {[s for _, s in nccl]} 个元素")
    assert all(e for e, _ in nccl) and all(s == 2 * (n_gpu - 1) * 1200 // n_gpu for _, s in nccl)
else:
    print(f"本机可见的 GPU 有 {gpus} 块，不足 2 块：NCCL 部分没有运行")
# --8<-- [end:nccl]
