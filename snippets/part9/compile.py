# --8<-- [start:setup]
import os
import shutil
import tempfile
import time

# 用一个全新的缓存目录：第一次调用真的要生成并编译内核，而不是从上次运行的缓存里取
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")

import torch
import torch._dynamo
import torch._inductor.config
import torch._inductor.metrics
from torch import nn

torch._inductor.config.compile_threads = 1   # 内核很少，就在本进程里编译，不开编译进程池
torch._inductor.config.cpp.vec_isa_ok = True  # 直接用 CPU 报告的向量指令集，省去逐个试编译的探测

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# CPU 上 Inductor 生成 C++ 再用系统的 C++ 编译器编译；GPU 上生成 Triton 内核
assert device.type == "cuda" or shutil.which("g++") is not None
print("设备：", device.type)
# --8<-- [end:setup]

# --8<-- [start:capture]
def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU 的 tanh 近似，故意写成 9 个逐元素运算。"""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


graphs = []  # 自定义后端收到的每一张 FX 图


def recording_backend(gm: torch.fx.GraphModule, example_inputs):
    """最简单的后端：记下 Dynamo 交来的图，原样执行它（不做任何优化）。"""
    graphs.append(gm)
    return gm.forward


x = torch.randn(1024, 1024, device=device)
torch._dynamo.reset()
y = torch.compile(gelu_tanh, backend=recording_backend)(x)
ops = [n for n in graphs[0].graph.nodes if n.op == "call_function"]
print("图的个数：", len(graphs))
print("图里的运算：", [n.target.__name__ for n in ops])
assert len(graphs) == 1 and len(ops) == 9
assert torch.equal(y, gelu_tanh(x))            # 原样执行这张图，结果逐位相同

# 逐个运算执行时，每个运算都把输入从内存读一遍、把结果写回内存
reads = sum(sum(isinstance(a, torch.fx.Node) for a in n.args) for n in ops)
writes = len(ops)
eager_bytes = (reads + writes) * x.numel() * x.element_size()
fused_bytes = 2 * x.numel() * x.element_size()  # 融合成一个内核：读 x 一次，写结果一次
print(f"逐个执行：读 {reads} 次、写 {writes} 次，共 {eager_bytes} 字节")
print(f"融合成一个内核：{fused_bytes} 字节，是逐个执行的 1/{eager_bytes // fused_bytes}")
assert (reads, writes) == (13, 9) and eager_bytes == 11 * fused_bytes
# --8<-- [end:capture]

# --8<-- [start:aot]
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).to(device)
X = torch.randn(256, 64, device=device)
aten_graphs = {}


def keep(name: str):
    def compiler(gm: torch.fx.GraphModule, example_inputs):
        aten_graphs[name] = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"
                             and n.target.__name__.split(".")[0] not in ("t", "view", "detach")]
        return make_boxed_func(gm.forward)
    return compiler


torch._dynamo.reset()
out = torch.compile(model, backend=aot_autograd(fw_compiler=keep("前向图"), bw_compiler=keep("反向图")))(X)
out.sum().backward()
for name, ops in aten_graphs.items():
    print(f"{name}：{ops}")
assert aten_graphs["前向图"] == ["addmm.default", "tanh.default", "addmm.default"]
backward_ops = aten_graphs["反向图"]
assert backward_ops.count("mm.default") == 3 and backward_ops.count("sum.dim_IntList") == 2
assert "tanh_backward.default" in backward_ops
# --8<-- [end:aot]

# --8<-- [start:inductor]
# 容差 ±0.000001：误差在 1e-7 量级，其他平台上的向量指令与数学库不同
torch._dynamo.reset()
torch._inductor.metrics.reset()
gelu_compiled = torch.compile(gelu_tanh)          # 默认后端 Inductor
if device.type == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
y_compiled = gelu_compiled(x)                      # 第一次调用：捕获、降级、生成并编译内核
if device.type == "cuda":
    torch.cuda.synchronize()
first_call = time.perf_counter() - t0
kernels = torch._inductor.metrics.generated_kernel_count
err = (y_compiled - gelu_tanh(x)).abs().max().item()
print("Inductor 生成的内核个数：", kernels)
print(f"与逐个执行的最大绝对误差：{err:.1e}，不超过 1e-5：{err <= 1e-5}")
assert kernels == 1
assert err <= 1e-5     # float32：只差几个单位舍入（约 6e-8），见正文
# --8<-- [end:inductor]

# --8<-- [start:model]
# 容差 ±0.000001：误差在 1e-7 量级，其他平台上的向量指令与数学库不同
torch.manual_seed(1)
labels = torch.randint(0, 10, (256,), device=device)


def forward_backward(net: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    out = net(X)
    nn.functional.cross_entropy(out, labels).backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


torch._dynamo.reset()
torch._inductor.metrics.reset()
model_compiled = torch.compile(model)              # 与 model 共用同一组参数
out_c, grads_c = forward_backward(model_compiled)
out_e, grads_e = forward_backward(model)
err_out = (out_c - out_e).abs().max().item()
err_grad = max((gc - ge).abs().max().item() for gc, ge in zip(grads_c, grads_e))
print(f"输出的最大绝对误差：{err_out:.1e}")
print(f"梯度的最大绝对误差：{err_grad:.1e}")
assert err_out <= 1e-5 and err_grad <= 1e-5
# --8<-- [end:model]

# --8<-- [start:graph-break]
def branchy(x: torch.Tensor) -> torch.Tensor:
    y = torch.sin(x)
    if y.sum() > 0:          # Python 的 if 要一个 True/False：得先算出张量的值
        return y * 2
    return y - 1


def branchless(x: torch.Tensor) -> torch.Tensor:
    y = torch.sin(x)
    return torch.where(y.sum() > 0, y * 2, y - 1)   # 两支都算，按条件逐元素挑选


small = torch.randn(8, 4, device=device)
for fn in (branchy, branchless):
    torch._dynamo.reset()
    report = torch._dynamo.explain(fn)(small)
    reasons = [r.reason.splitlines()[0] for r in report.break_reasons]
    print(f"{fn.__name__}：{report.graph_count} 张图，{report.graph_break_count} 次图中断，原因 {reasons}")
    if fn is branchy:
        assert report.graph_count == 2 and report.graph_break_count == 1
        assert "generic_jump" in reasons[0]           # 条件跳转的条件是一个张量
    else:
        assert report.graph_count == 1 and report.graph_break_count == 0
for s, positive in ((small.abs(), True), (-small.abs(), False)):   # 两个分支各走一遍
    assert bool(torch.sin(s).sum() > 0) == positive
    assert torch.equal(branchy(s), branchless(s))
# --8<-- [end:graph-break]

# --8<-- [start:recompile]
def count_compiles(shapes: list[int], dynamic=None, mark: bool = False,
                   dtype=torch.float32) -> list[str]:
    """依次用这些行数调用编译后的函数；每编译一次，记下这张图是固定形状还是带符号维。"""
    torch._dynamo.reset()
    seen = []

    def backend(gm, example_inputs):
        symbolic = any(isinstance(a, torch.SymInt) for a in example_inputs)  # 行数作为符号传进图
        seen.append("符号" if symbolic else "固定")
        return gm.forward

    fn = torch.compile(lambda t: torch.relu(t) * 2, backend=backend, dynamic=dynamic)
    for i, n in enumerate(shapes):
        t = torch.randn(n, 4, device=device, dtype=dtype if i == len(shapes) - 1 else torch.float32)
        if mark and i == 0:
            torch._dynamo.mark_dynamic(t, 0)          # 事先声明第 0 维会变
        fn(t)
    return seen


rows = [8, 8, 12, 20, 20]
cases = {"默认（自动动态）": {}, "dynamic=False": {"dynamic": False}, "mark_dynamic": {"mark": True}}
seen = {}
for name, kwargs in cases.items():
    seen[name] = count_compiles(rows, **kwargs)
    print(f"{name}：编译 {len(seen[name])} 次，各次的行数 {seen[name]}")
assert seen == {"默认（自动动态）": ["固定", "符号"], "dynamic=False": ["固定"] * 3, "mark_dynamic": ["符号"]}

n_dtype = len(count_compiles([8, 8], dtype=torch.float64))   # 行数不变，第二次换成 float64
print("第二次换成 float64：编译", n_dtype, "次")
assert n_dtype == 2
failures = [r for reasons in torch._dynamo.utils.guard_failures.values() for r in reasons]
print("守卫失败的原因：", failures)
assert len(failures) == 1 and "dtype mismatch" in failures[0]
print("每个函数最多缓存的编译版本数：", torch._dynamo.config.recompile_limit)
assert torch._dynamo.config.recompile_limit == 8
# --8<-- [end:recompile]

# --8<-- [start:timing]
# 随机器而变：编译与执行的耗时取决于 CPU、C++ 编译器、GPU 与当时的负载
def per_call(fn, x: torch.Tensor, reps: int = 20) -> float:
    fn(x)                                           # 预热
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


t_eager, t_compiled = per_call(gelu_tanh, x), per_call(gelu_compiled, x)
print(f"第一次调用（含编译）：{first_call:.2f} s")
print(f"之后每次：编译版 {t_compiled * 1e3:.3f} ms，逐个执行 {t_eager * 1e3:.3f} ms")
print(f"第一次 / 之后每次 = {first_call / t_compiled:.0f}，逐个执行 / 编译版 = {t_eager / t_compiled:.1f}")
shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)   # 删掉本次运行的缓存目录
# --8<-- [end:timing]
