# --8<-- [start:setup]
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:formats]
# 名称: (dtype, 指数位数 e, 尾数位数 m, 同样宽度的整数类型)；每种格式还有 1 个符号位
FORMATS = {
    "float16": (torch.float16, 5, 10, torch.int16),
    "bfloat16": (torch.bfloat16, 8, 7, torch.int16),
    "float32": (torch.float32, 8, 23, torch.int32),
}


def limits_from_layout(e: int, m: int) -> dict:
    """只用位宽算出格式的范围与精度（IEEE 754 的规则）。"""
    bias = 2 ** (e - 1) - 1                      # 指数偏置
    return {
        "bias": bias,
        "max": (2 - 2.0 ** -m) * 2.0 ** bias,    # 指数字段取 2^e - 2（全 1 留给 inf/nan），尾数全 1
        "min_normal": 2.0 ** (1 - bias),         # 指数字段取 1，尾数全 0
        "min_subnormal": 2.0 ** (1 - bias - m),  # 指数字段取 0，尾数只有最低位是 1
        "eps": 2.0 ** -m,                        # 1 与下一个可表示数之差
    }


print(f"{'格式':<9}{'总位数':>5}{'指数':>5}{'尾数':>5}{'偏置':>6}"
      f"{'最大值':>12}{'最小正规数':>12}{'最小次正规数':>13}{'eps':>12}")
for name, (dtype, e, m, itype) in FORMATS.items():
    lim = limits_from_layout(e, m)
    fi = torch.finfo(dtype)
    smallest = torch.tensor([1], dtype=itype).view(dtype).item()  # 位模式 0…01 就是最小次正规数
    assert fi.bits == 1 + e + m
    assert lim["max"] == fi.max and lim["min_normal"] == fi.smallest_normal and lim["eps"] == fi.eps
    assert lim["min_subnormal"] == smallest
    print(f"{name:<10}{fi.bits:>6}{e:>6}{m:>6}{lim['bias']:>7}"
          f"{lim['max']:>14.4e}{lim['min_normal']:>14.4e}{lim['min_subnormal']:>14.4e}{lim['eps']:>14.4e}")
# --8<-- [end:formats]

# --8<-- [start:bits]
def decode(x: torch.Tensor, e: int, m: int, itype: torch.dtype) -> tuple[str, float]:
    """把一个数的位模式拆成符号、指数、尾数三段，再按公式算回它的值。"""
    bits = x.view(itype).item() & ((1 << (1 + e + m)) - 1)  # 当作无符号整数
    s, E, f = bits >> (e + m), (bits >> m) & ((1 << e) - 1), bits & ((1 << m) - 1)
    bias = 2 ** (e - 1) - 1
    if E == 0:                       # 次正规数：没有隐含的 1，指数固定为 1 - bias
        value = f / 2 ** m * 2.0 ** (1 - bias)
    elif E == 2 ** e - 1:            # 指数全 1：无穷或 NaN
        value = float("inf") if f == 0 else float("nan")
    else:                            # 正规数：1.f × 2^(E - bias)
        value = (1 + f / 2 ** m) * 2.0 ** (E - bias)
    return f"{s} {E:0{e}b} {f:0{m}b}", (-1) ** s * value


for name in ["float16", "bfloat16"]:
    dtype, e, m, itype = FORMATS[name]
    print(name)
    for v in [1.0, -2.5, 0.1, 65504.0, 1e-7]:
        x = torch.tensor([v]).to(dtype)             # 按「就近舍入」存进 16 位
        pattern, value = decode(x, e, m, itype)
        assert value == x.item()                     # 手工解码 == PyTorch 存下的值
        print(f"  {v:>9g} -> 位模式 {pattern:<19} 解码 {value:.10g}")
# --8<-- [end:bits]

# --8<-- [start:rounding]
probe = [2e-8, 1e-7, 1e-5, 257.0, 2049.0, 7e4, 1e-40, 1e39]
print(f"{'原值':>8}" + "".join(f"{name:>12}" for name in FORMATS))
stored = {}
for v in probe:
    row = {name: torch.tensor([v], dtype=torch.float64).to(dt).item() for name, (dt, *_) in FORMATS.items()}
    stored[v] = row
    print(f"{v:>10g}" + "".join(f"{row[name]:>12.6g}" for name in FORMATS))
assert stored[2e-8]["float16"] == 0 and stored[2e-8]["bfloat16"] != 0     # 比 fp16 最小次正规数的一半还小
assert stored[7e4]["float16"] == float("inf") and stored[7e4]["bfloat16"] < float("inf")
assert stored[1e39]["bfloat16"] == float("inf") == stored[1e39]["float32"]  # bf16 与 fp32 的范围相同
assert stored[1e-40]["bfloat16"] != 0 and stored[1e-40]["float16"] == 0
assert stored[2049.0]["float16"] == 2048 and stored[257.0]["bfloat16"] == 256  # 整数也会被舍入
# --8<-- [end:rounding]

# --8<-- [start:figure]
x = torch.logspace(-45, 39, 4000, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(7.5, 3.6))
for name, (dtype, e, m, itype) in FORMATS.items():
    q = x.to(dtype)
    q = q[(q > 0) & torch.isfinite(q)].unique()
    nxt = (q.view(itype) + 1).view(dtype)                 # 位模式加 1 = 下一个可表示数
    keep = torch.isfinite(nxt)
    gap = (nxt[keep].double() - q[keep].double()) / q[keep].double()  # 相邻可表示数的相对间距
    ax.loglog(q[keep].double().numpy(), gap.numpy(), lw=1, label=f"{name}（eps = $2^{{-{m}}}$）")
ax.set_xlabel("数值的大小 |x|")
ax.set_ylabel("相对间距（相邻可表示数之差 / x）")
ax.set_title("三种格式能表示的范围与精度：平台处是正规数，左侧上翘处是次正规数")
ax.legend(loc="upper right")
ax.grid(True, which="major", alpha=0.3)
fig.savefig("mixed_precision_formats.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:autocast]
cpu = torch.device("cpu")
net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 10), nn.Softmax(dim=1))
loss_fn = nn.CrossEntropyLoss()
seen = []                                                     # (模块名, 输入 dtype, 输出 dtype)


def record(module, inputs, output):
    seen.append((type(module).__name__, inputs[0].dtype, output.dtype))


for mod in [*net, loss_fn]:
    mod.register_forward_hook(record)

xb, yb = torch.randn(16, 64), torch.randint(0, 10, (16,))
with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
    logits = net[:4](xb)                                      # 前四层：Linear、ReLU、LayerNorm、Linear
    probs = net[4](logits)                                    # Softmax
    loss = loss_fn(logits, yb)
    logp = torch.log_softmax(logits, dim=1)                   # 函数式调用，没有钩子，直接看 dtype
for name, dt_in, dt_out in seen:
    print(f"{name:<17} 输入 {str(dt_in):<15} 输出 {dt_out}")
print(f"{'log_softmax':<17} 输入 {str(logits.dtype):<15} 输出 {logp.dtype}")
loss.backward()
print("参数的 dtype：", {str(p.dtype) for p in net.parameters()}, "梯度的 dtype：", {str(p.grad.dtype) for p in net.parameters()})

dtypes = [(name, dt_out) for name, _, dt_out in seen]
assert dtypes == [("Linear", torch.bfloat16),          # 在 CPU 的 bf16 表上：输入先被转成 bf16
                  ("ReLU", torch.bfloat16),            # 不在任何表上：跟随输入
                  ("LayerNorm", torch.bfloat16),       # 同上（CUDA 上它在 fp32 表上）
                  ("Linear", torch.bfloat16),
                  ("Softmax", torch.bfloat16),         # 同上（CUDA 上它在 fp32 表上）
                  ("CrossEntropyLoss", torch.float32)]  # 在 CPU 的 fp32 表上：输入先被转回 fp32
assert seen[0][1] == torch.float32 and logp.dtype == torch.bfloat16   # 第一层的输入还是 fp32
assert all(p.dtype == p.grad.dtype == torch.float32 for p in net.parameters())  # 主权重与梯度仍是 fp32

if device.type == "cuda":                                     # CUDA 的表不同：softmax 在 fp32 表上
    net_cuda = copy.deepcopy(net).to(device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        h = net_cuda[:4](xb.to(device))
        assert h.dtype == torch.bfloat16 and torch.softmax(h, dim=1).dtype == torch.float32
# --8<-- [end:autocast]

# --8<-- [start:memory]
def saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> dict:
    """前向时为反向保存下来的张量，按 dtype 统计字节数（同一块存储只算一次，不算模型参数本身）。"""
    param_ptrs = {p.data_ptr() for p in model.parameters()}
    seen_ptrs, total = set(), {}

    def pack(t):
        if t.data_ptr() not in param_ptrs and t.data_ptr() not in seen_ptrs:
            seen_ptrs.add(t.data_ptr())
            total[str(t.dtype)] = total.get(str(t.dtype), 0) + t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
            F.cross_entropy(model(x), y)
    return total


n, d_in, hid, k = 256, 64, 64, 10
mlp = nn.Sequential(nn.Linear(d_in, hid), nn.ReLU(), nn.Linear(hid, k))    # 固定在 CPU：按 CPU 的 autocast 表数字节
xm, ym = torch.randn(n, d_in), torch.randint(0, k, (n,))
b32, b16 = saved_bytes(mlp, xm, ym, amp=False), saved_bytes(mlp, xm, ym, amp=True)
print("fp32 保存的字节：", b32)
print("bf16 autocast 保存的字节：", b16)
# fp32：x、ReLU 的输出、log_softmax 的输出各 4 字节/元素，标签 8 字节/元素，nll_loss 的一个标量权重和 4 字节
assert b32 == {"torch.float32": 4 * (n * d_in + n * hid + n * k) + 4, "torch.int64": 8 * n}
# bf16：x 与 ReLU 的输出变成 2 字节，外加第二层权重的 bf16 副本（第一层的输入不需要梯度，
# 它的权重不必保存）；损失里的 log_softmax 仍是 fp32
assert b16 == {"torch.bfloat16": 2 * (n * d_in + n * hid + hid * k),
               "torch.float32": 4 * n * k + 4, "torch.int64": 8 * n}
act32, act16 = 4 * (n * d_in + n * hid), 2 * (n * d_in + n * hid)
print(f"其中两层的输入：fp32 {act32} 字节，bf16 {act16} 字节；合计 {sum(b32.values())} -> {sum(b16.values())} 字节")
assert sum(b16.values()) < 0.6 * sum(b32.values())
# --8<-- [end:memory]

# --8<-- [start:train]
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
X_tr, X_te = (torch.tensor(a, dtype=torch.float32, device=device) for a in (X_tr, X_te))
y_tr, y_te = (torch.tensor(a, device=device) for a in (y_tr, y_te))


def train(seed: int, amp: bool, steps: int = 100) -> tuple[nn.Module, float]:
    """64→64→10 的 MLP，Adam，每步随机取 256 个样本；amp=True 时前向在 bf16 autocast 里。"""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(seed)               # 两种精度抽到相同的小批量
    for _ in range(steps):
        idx = torch.randint(0, len(y_tr), (256,), generator=gen).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
        acc = (model(X_te).argmax(1) == y_te).float().mean().item()
    return model, acc


seeds = range(5)
acc32, acc16 = [], []
for s in seeds:
    model32, a32 = train(s, amp=False)
    _, a16 = train(s, amp=True)
    acc32.append(a32)
    acc16.append(a16)
    if s == 0:
        trained = model32                                   # 下一段用它演示梯度下溢
    print(f"种子 {s}：fp32 {a32:.4f}，bf16 autocast {a16:.4f}，差 {a16 - a32:+.4f}")
gap = max(abs(a - b) for a, b in zip(acc32, acc16))
print(f"测试集 {len(y_te)} 张；最大差 {gap:.4f}（{round(gap * len(y_te))} 张图）")
# 设计时种子 0–7：两种精度的准确率都在 0.9600–0.9756，逐种子之差最多 1 张图（0.0022）；
# 下限 0.95、容差 0.01（4.5 张图）都留出余量，GPU 上 bf16 的舍入不同也不会越界
assert min(acc32 + acc16) >= 0.95
assert gap <= 0.01
# --8<-- [end:train]

# --8<-- [start:underflow]
# 训练好的 fp32 模型在整个训练集上的损失梯度。损失是平均值，dL/dlogit = (p - onehot) / N，很多元素极小
logits = trained(X_tr).detach().requires_grad_(True)
F.cross_entropy(logits, y_tr).backward()
g32 = logits.grad                                           # fp32 参照，形状 (N, 10)
h = trained[1](trained[0](X_tr)).detach()                   # 最后一层的输入，形状 (N, 64)
dW32 = g32.T @ h                                            # 最后一层权重的梯度 (10, 64)
S = 2.0 ** 16                                               # GradScaler 的默认初始缩放因子
g16 = g32.half()                                            # 不缩放：直接存成 fp16
g16s = (g32 * S).half()                                     # 先放大 S 倍再存成 fp16
nonzero = (g32 != 0).sum().item()
result = {}
for label, g, scale in [("不缩放", g16, 1.0), ("缩放 S = 2^16", g16s, S)]:
    back = g.float() / scale                                # 存成 fp16 再还原
    lost = ((g32 != 0) & (back == 0)).sum().item()          # fp32 里非零、fp16 里变成 0 的个数
    rel = (back - g32).abs() / g32.abs()
    bad = (rel[g32 != 0] > 0.01).sum().item()               # 相对误差超过 1% 的个数（含变成 0 的）
    dW = back.T @ h                                         # 用还原的梯度算最后一层的权重梯度
    err = ((dW - dW32).norm() / dW32.norm()).item()
    result[scale] = (lost, bad, err)
    print(f"{label}：{nonzero} 个非零梯度中，变成 0 的 {lost} 个，误差超过 1% 的 {bad} 个；"
          f"权重梯度的相对误差 {err:.2e}")
(lost_plain, bad_plain, err_plain), (lost_scaled, bad_scaled, err_scaled) = result[1.0], result[S]
print(f"|dL/dlogit| 的最大值 {g32.abs().max().item():.3e}，乘以 S 后 {g32.abs().max().item() * S:.1f}，仍远小于 65504")
assert lost_plain > 0.4 * nonzero                            # 不缩放：约一半的非零梯度下溢成 0（CPU 上 50.5%）
assert lost_scaled * 10 < lost_plain and bad_scaled * 5 < bad_plain  # 变成 0 的不到十分之一，误差大的不到五分之一
assert err_scaled < err_plain
assert g32.abs().max().item() * S < torch.finfo(torch.float16).max     # 放大后也没有上溢

# 同样的事发生在真正的 fp16 autocast 反向里：看 logit 的梯度（fp16）有多少个 0
for scale in [1.0, S]:
    with torch.autocast(device_type=device.type, dtype=torch.float16):
        out16 = trained(X_tr)
    out16.retain_grad()
    (F.cross_entropy(out16, y_tr) * scale).backward()
    zeros = (out16.grad == 0).sum().item()
    print(f"fp16 autocast，损失乘以 {scale:g}：logit 梯度的 dtype {out16.grad.dtype}，其中 0 有 {zeros} 个")
    if scale == 1.0:
        zeros_plain = zeros
    else:
        zeros_scaled = zeros
trained.zero_grad()
assert zeros_scaled * 10 < zeros_plain                       # 缩放后的 0 不到不缩放时的十分之一
# --8<-- [end:underflow]

# --8<-- [start:scaler]
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16, growth_factor=2.0,
                              backoff_factor=0.5, growth_interval=2)   # 连续 2 步正常就加倍（默认 2000）
scales, updated = [], []
for step in range(5):
    idx = torch.arange(step * 256, (step + 1) * 256, device=device)
    with torch.autocast(device_type=device.type, dtype=torch.float16):
        loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
    opt.zero_grad()
    scaler.scale(loss).backward()                    # 对 loss × scale 求导
    if step == 2:
        model[0].weight.grad[0, 0] = float("inf")    # 人为制造一次溢出
    before = model[0].weight.detach().clone()
    used = scaler.get_scale()
    scaler.step(opt)                                 # 先除以 scale；发现 inf/nan 就跳过这一步
    scaler.update()                                  # 调整 scale
    changed = not torch.equal(before, model[0].weight)
    scales.append(scaler.get_scale())
    updated.append(changed)
    print(f"第 {step} 步：所用 scale {used:>8g}，参数{'已更新' if changed else '未更新（跳过）'}，"
          f"下一步的 scale {scaler.get_scale():g}")
assert updated == [True, True, False, True, True]
assert scales == [2.0 ** 16, 2.0 ** 17, 2.0 ** 16, 2.0 ** 16, 2.0 ** 17]
# --8<-- [end:scaler]

# --8<-- [start:speed]
# 随机器而变：墙钟时间取决于 CPU/GPU 是否有 bf16 的硬件指令
def step_time(amp: bool, reps: int = 5) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for _ in range(reps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(X_tr), y_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[2:]))                    # 去掉前两次（预热）


t32, t16 = step_time(False), step_time(True)
print(f"每步时间：fp32 {t32 * 1e3:.2f} ms，bf16 autocast {t16 * 1e3:.2f} ms，bf16/fp32 = {t16 / t32:.2f}")
# --8<-- [end:speed]
