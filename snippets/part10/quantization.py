# --8<-- [start:setup]
import copy

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:affine]
def affine_qparams(lo: float, hi: float, qmin: int, qmax: int) -> tuple[float, int]:
    """把实数区间 [lo, hi] 映射到整数 [qmin, qmax]：返回缩放因子 s 与零点 z。"""
    lo, hi = min(lo, 0.0), max(hi, 0.0)          # 区间必须含 0，0 才能被精确表示
    scale = (hi - lo) / (qmax - qmin)
    zero_point = qmin - round(lo / scale)        # 让 lo 落在 qmin 上
    return scale, zero_point


def quantize(x: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int) -> torch.Tensor:
    q = torch.round(x.double() / scale) + zero_point   # 舍入：四舍六入五成双
    return torch.clamp(q, qmin, qmax)                  # 截断到整数范围之内


def dequantize(q: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return (q.float() - zero_point) * scale


def symmetric_qparams(amax: float, qmax: int) -> tuple[float, int]:
    """对称量化：[-amax, amax] 映射到 [-qmax, qmax]，零点固定为 0。"""
    return amax / qmax, 0


gen = torch.Generator().manual_seed(0)
cases = [  # (名字, 区间, 缩放与零点, 整数类型, qmin, qmax)
    ("对称 int8 ", (-1.0, 1.0), symmetric_qparams(1.0, 127), torch.qint8, -127, 127),
    ("全正 uint8", (0.0, 6.0), affine_qparams(0.0, 6.0, 0, 255), torch.quint8, 0, 255),
    ("偏斜 uint8", (-0.3, 2.5), affine_qparams(-0.3, 2.5, 0, 255), torch.quint8, 0, 255),
    ("偏斜 int8 ", (-0.7, 0.2), affine_qparams(-0.7, 0.2, -128, 127), torch.qint8, -128, 127),
]
print(" 情形       | 区间         | 缩放 s   | 零点 z | 区间内最大误差 / s | 与 PyTorch 反量化之差")
for name, (lo, hi), (s, z), dtype, qmin, qmax in cases:
    x = (lo + (hi - lo) * torch.rand(2000, generator=gen)).to(device)   # 区间内的值
    q = quantize(x, s, z, qmin, qmax)
    x_hat = dequantize(q, s, z)
    ref = torch.quantize_per_tensor(x, s, z, dtype)                      # PyTorch 的实现
    assert torch.equal(q.long(), ref.int_repr().long())                  # 整数逐个相同
    diff = (x_hat - ref.dequantize()).abs().max().item()
    assert diff <= 1e-6                                                  # 反量化的值相同（float32 舍入以内）
    err = (x - x_hat).abs().max().item()
    assert err <= s / 2 * (1 + 1e-4)                                     # 区间内误差不超过 s/2
    print(f" {name} | [{lo:4.1f}, {hi:4.1f}] | {s:.6f} | {z:6d} | {err / s:.4f}             | {diff:.1e}")

outside = torch.tensor([-2.0, 1.5, 3.0], device=device)                  # 超出 [-1, 1] 的值
s, z = symmetric_qparams(1.0, 127)
clipped = dequantize(quantize(outside, s, z, -127, 127), s, z)
print("区间外的值", outside.tolist(), "->", [round(v, 4) for v in clipped.tolist()])
assert torch.allclose(clipped, torch.tensor([-1.0, 1.0, 1.0], device=device))   # 被截到区间两端
# --8<-- [end:affine]

# --8<-- [start:data]
# 容差 ±0.01：训练得到的准确率随计算路径在末位上变动，种子 0..4 之间相差 0.011
X_all, y_all = load_digits(return_X_y=True)                  # (1797, 64)，像素 0..16
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.25, stratify=y_all, random_state=0)
X_tr = torch.tensor(X_tr / 16, dtype=torch.float32, device=device)
X_te = torch.tensor(X_te / 16, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
y_te = torch.tensor(y_te, device=device)


def make_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10)).to(device)


def train(model: nn.Module, epochs: int, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)                 # 小批量的顺序由种子决定
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(X_tr), generator=g).to(device).split(64):
            loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module) -> float:
    return (model(X_te).argmax(1) == y_te).float().mean().item()


torch.manual_seed(0)
model = train(make_mlp(), epochs=20, seed=0)
acc_fp32 = accuracy(model)
n_params = sum(p.numel() for p in model.parameters())
n_formula = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
print(f"参数量 {n_params}，float32 测试准确率 {acc_fp32:.4f}")
assert n_params == n_formula
assert acc_fp32 >= 0.95      # 种子 0..4 上最低 0.9667，留约 1.7 个百分点的余量
# --8<-- [end:data]

# --8<-- [start:per-channel]
W = model[2].weight.detach()                                # 第 2 个全连接层，(256, 256)
s_tensor = W.abs().max().item() / 127                       # 整个张量共用一个缩放
s_rows = W.abs().amax(dim=1) / 127                          # 每个输出通道（每行）一个缩放，(256,)
W_tensor = dequantize(quantize(W, s_tensor, 0, -127, 127), s_tensor, 0)
q_rows = torch.clamp(torch.round(W.double() / s_rows[:, None].double()), -127, 127)
W_rows = (q_rows * s_rows[:, None].double()).float()
ref_rows = torch.quantize_per_channel(W, s_rows.double(), torch.zeros(256, dtype=torch.long, device=device),
                                      axis=0, dtype=torch.qint8)
assert torch.equal(q_rows.long(), ref_rows.int_repr().long())          # 逐通道 == torch.quantize_per_channel
assert torch.allclose(W_rows, ref_rows.dequantize(), rtol=1e-6, atol=0)
mse_tensor = (W - W_tensor).pow(2).mean().item()
mse_rows = (W - W_rows).pow(2).mean().item()
spread = (W.abs().amax(dim=1).max() / W.abs().amax(dim=1).min()).item()
print(f"各行最大绝对值之比（最大行 / 最小行）{spread:.2f}")
print(f"int8 逐张量 MSE {mse_tensor:.3e}，逐通道 MSE {mse_rows:.3e}，比值 {mse_tensor / mse_rows:.2f}")
assert mse_rows <= mse_tensor
# --8<-- [end:per-channel]

# --8<-- [start:int8-linear]
def quantize_sym_int8(t: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(t * (1.0 / scale)), -128, 127).to(torch.int8)   # 乘缩放的倒数再取整


class Int8Linear(nn.Module):
    """动态 int8 全连接层：权重逐行对称量化后存成 int8；激活在每次前向时逐样本量化。"""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach()
        self.w_scale = w.abs().amax(dim=1) / 127.5                     # (out,) float32
        self.qweight = quantize_sym_int8(w, self.w_scale[:, None])      # (out, in) int8
        self.bias = linear.bias.detach().clone()                       # 偏置保持 float32

    def int_accumulate(self, qx: torch.Tensor) -> torch.Tensor:
        # int8 × int8 的乘积累加，硬件上用 int32 累加器；|和| <= 128·128·256 < 2^53，float64 算得精确
        return qx.double() @ self.qweight.double().T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.5   # 每个样本一个缩放 (n, 1)
        qx = quantize_sym_int8(x, x_scale)                                      # (n, in) int8
        acc = self.int_accumulate(qx)                                           # (n, out) 整数
        return (acc * (x_scale.double() * self.w_scale.double())).float() + self.bias


def to_int8(model: nn.Sequential) -> nn.Sequential:
    return nn.Sequential(*[Int8Linear(m) if isinstance(m, nn.Linear) else m for m in model])


qmodel = to_int8(model)
layer = qmodel[0]
x = X_te[:32]
x_scale = x.abs().amax(dim=1, keepdim=True) / 127.5
qx = quantize_sym_int8(x, x_scale)
acc = layer.int_accumulate(qx)
acc_int64 = (qx.long()[:, None, :] * layer.qweight.long()[None, :, :]).sum(-1)   # 纯整数算一遍
assert torch.equal(acc, acc_int64.double())                   # float64 的累加就是精确的整数累加
# 同样的算术用浮点写：先把 int8 反量化成实数，再做普通的 float64 矩阵乘法
ref = (qx.double() * x_scale.double()) @ (layer.qweight.double() * layer.w_scale.double()[:, None]).T
ref = ref + layer.bias.double()
out = layer(x)
print(f"int8 层输出与浮点参照的最大差 {(out.double() - ref).abs().max().item():.1e}")
assert torch.allclose(out.double(), ref, rtol=1e-6, atol=1e-6)   # 只差最后一次转成 float32 的舍入
# --8<-- [end:int8-linear]

# --8<-- [start:int-mm]
# 随机器而变：CPU 上 torch._int_mm 交给 oneDNN 计算，结果对不对取决于它选用的指令集
a8 = torch.randint(-128, 128, (64, 256), dtype=torch.int8, generator=gen).to(device)
b8 = torch.randint(-128, 128, (256, 64), dtype=torch.int8, generator=gen).to(device)
exact = (a8.long()[:, None, :] * b8.long().T[None, :, :]).sum(-1)     # 精确的整数累加
fast = torch._int_mm(a8, b8)                                            # int8 × int8 -> int32
print(f"torch._int_mm 的结果类型 {fast.dtype}，与精确整数累加的最大差 {(fast.long() - exact).abs().max().item()}")
# --8<-- [end:int-mm]

# --8<-- [start:int8-size]
# 容差 ±0.01：准确率来自训练出的模型，随计算路径在末位上变动
def weight_bytes(model: nn.Sequential) -> int:
    total = 0
    for m in model:
        if isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
        elif isinstance(m, Int8Linear):
            total += m.qweight.numel() * m.qweight.element_size() + m.w_scale.numel() * m.w_scale.element_size()
    return total


n_weights = 64 * 256 + 256 * 256 + 256 * 10
n_rows = 256 + 256 + 10
bytes_fp32, bytes_int8 = weight_bytes(model), weight_bytes(qmodel)
assert bytes_fp32 == 4 * n_weights and bytes_int8 == 1 * n_weights + 4 * n_rows   # 按公式再数一遍
acc_int8 = accuracy(qmodel)
print(f"权重字节：float32 {bytes_fp32}，int8 {bytes_int8}（含每行一个 float32 缩放），"
      f"缩小 {bytes_fp32 / bytes_int8:.2f} 倍")
print(f"测试准确率：float32 {acc_fp32:.4f}，int8 {acc_int8:.4f}，下降 {acc_fp32 - acc_int8:.4f}")
assert 3.8 < bytes_fp32 / bytes_int8 < 4
assert acc_fp32 - acc_int8 <= 0.01   # 种子 0..4 上下降最多 0.0022（有两个种子反而升高）
# --8<-- [end:int8-size]

# --8<-- [start:torchao]
ao_model = copy.deepcopy(model)
quantize_(ao_model, Int8DynamicActivationInt8WeightConfig())     # 权重逐行对称 int8 + 激活逐样本动态 int8
for ours, theirs in zip(qmodel[::2], ao_model[::2]):
    assert torch.equal(ours.w_scale, theirs.weight.scale.flatten())      # 每行的缩放相同
    assert torch.equal(ours.qweight, theirs.weight.qdata)                 # int8 权重逐个相同
print("三个全连接层的 int8 权重与缩放都与 torchao 逐个相同")
# --8<-- [end:torchao]

# --8<-- [start:torchao-run]
# 随机器而变：torchao 在 CPU 上用 torch._int_mm 做整数乘加，结果取决于 oneDNN 选用的指令集（见 int-mm 一段）
with torch.no_grad():
    out_ours, out_ao = qmodel(X_te), ao_model(X_te)
print(f"logit 与本节 int8 的最大差 {(out_ours - out_ao).abs().max().item():.1e}，"
      f"torchao 的测试准确率 {accuracy(ao_model):.4f}")
# --8<-- [end:torchao-run]

# --8<-- [start:ste]
def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """逐行对称的伪量化：前向等于 dequant(quant(w))，反向把梯度原样传回（直通估计器）。"""
    qmax = 2 ** (bits - 1) - 1                                     # 例如 2 位：整数只取 -1、0、1
    scale = w.detach().abs().amax(dim=1, keepdim=True) / qmax
    w_q = torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    return w + (w_q - w).detach()                                  # 值是 w_q，对 w 的导数是 1


w = model[2].weight.detach()[:8].clone().requires_grad_(True)
g = torch.randn_like(w)
(fake_quant(w, 4) * g).sum().backward()
assert torch.equal(w.grad, g)                                      # 梯度原样穿过 round
w_torch = w.detach().clone().requires_grad_(True)
scale = (w_torch.detach().abs().amax(dim=1) / 7).float()
y_torch = torch.fake_quantize_per_channel_affine(w_torch, scale, torch.zeros(8, dtype=torch.int32, device=device),
                                                 0, -7, 7)
(y_torch * g).sum().backward()
print(f"与 torch.fake_quantize_per_channel_affine 前向最大差 "
      f"{(fake_quant(w, 4) - y_torch).abs().max().item():.1e}，梯度相同 {torch.equal(w.grad, w_torch.grad)}")
assert torch.allclose(fake_quant(w, 4), y_torch, atol=1e-6) and torch.equal(w.grad, w_torch.grad)
v = torch.tensor([0.5, 3.0], device=device, requires_grad=True)        # 缩放 0.1、整数 [-7, 7]：区间是 [-0.7, 0.7]
torch.fake_quantize_per_tensor_affine(v, 0.1, 0, -7, 7).sum().backward()
print(f"torch 的伪量化在区间内、区间外的梯度：{v.grad.tolist()}")
assert v.grad.tolist() == [1.0, 0.0]                                   # 区间外的 3.0 收不到梯度
# --8<-- [end:ste]

# --8<-- [start:qat]
# 容差 ±0.05：2 位取整会放大训练中末位的差异，2 位 PTQ 在种子 0..4 之间相差 0.14
class QATLinear(nn.Linear):
    bits = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, fake_quant(self.weight, self.bits), self.bias)


def with_fake_quant(model: nn.Sequential, bits: int) -> nn.Sequential:
    """复制一份模型，把每个 Linear 换成用 bits 位伪量化权重的 QATLinear。"""
    layers = []
    for m in model:
        if isinstance(m, nn.Linear):
            q = QATLinear(m.in_features, m.out_features).to(device)
            q.load_state_dict(m.state_dict())
            q.bits = bits
            m = q
        layers.append(copy.deepcopy(m))
    return nn.Sequential(*layers)


def ptq(model: nn.Sequential, bits: int) -> float:
    return accuracy(with_fake_quant(model, bits))                  # 训练后量化：直接取整，不再训练


def qat(model: nn.Sequential, bits: int, seed: int) -> float:
    return accuracy(train(with_fake_quant(model, bits), epochs=3, seed=100 + seed))   # 带伪量化再训练 3 轮


print(" 种子 | float32 | 2 位 PTQ | 2 位 QAT | 多训 3 轮再 PTQ")
for seed in [0, 1, 2]:
    torch.manual_seed(seed)
    m = model if seed == 0 else train(make_mlp(), epochs=20, seed=seed)
    more = train(copy.deepcopy(m), epochs=3, seed=100 + seed)      # 对照：同样多训练 3 轮，但不伪量化
    acc_ptq, acc_qat, acc_more = ptq(m, 2), qat(m, 2, seed), ptq(more, 2)
    print(f" {seed:4d} | {accuracy(m):.4f}  | {acc_ptq:.4f}   | {acc_qat:.4f}   | {acc_more:.4f}")
    # 种子 0..4 上 QAT 比 PTQ 高 0.062 到 0.198、比对照高 0.080 以上；留出计算路径的差异，阈值取 3 个百分点
    assert acc_qat >= acc_ptq + 0.03 and acc_qat >= acc_more + 0.03
    assert acc_more <= accuracy(m) - 0.05                              # 对照组同样掉点
# --8<-- [end:qat]

# --8<-- [start:figure]
# 容差 ±0.05：同上一段，准确率来自带 2 到 8 位取整的训练
bit_widths = [2, 3, 4, 6, 8]
ptq_acc, qat_acc, err_tensor, err_rows = [], [], [], []
for b in bit_widths:
    ptq_acc.append(ptq(model, b))
    qat_acc.append(qat(model, b, seed=0))
    qmax = 2 ** (b - 1) - 1
    st, sr = W.abs().max() / qmax, W.abs().amax(dim=1, keepdim=True) / qmax
    err_tensor.append((W - torch.clamp(torch.round(W / st), -qmax, qmax) * st).pow(2).mean().item())
    err_rows.append((W - torch.clamp(torch.round(W / sr), -qmax, qmax) * sr).pow(2).mean().item())
print("位数        ", bit_widths)
print("PTQ 准确率  ", [round(a, 4) for a in ptq_acc])
print("QAT 准确率  ", [round(a, 4) for a in qat_acc])
print("逐张量 MSE  ", [f"{e:.1e}" for e in err_tensor])
print("逐通道 MSE  ", [f"{e:.1e}" for e in err_rows])
assert all(r <= t for r, t in zip(err_rows, err_tensor))              # 每个位数上逐通道都不差于逐张量
assert all(a > b for a, b in zip(err_tensor, err_tensor[1:]))         # 位数越多误差越小
assert all(abs(a - acc_fp32) <= 0.02 for a in ptq_acc[1:] + qat_acc[1:])   # 3 位及以上：两者都在 float32 的 2 个百分点以内

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
ax1.semilogy(bit_widths, err_tensor, "o-", label="逐张量")
ax1.semilogy(bit_widths, err_rows, "s-", label="逐通道")
ax1.set(xlabel="位数", ylabel="权重的均方误差", title="第 2 层权重的量化误差")
ax1.legend()
ax2.plot(bit_widths, ptq_acc, "o-", label="训练后量化（PTQ）")
ax2.plot(bit_widths, qat_acc, "s-", label="量化感知训练（QAT）")
ax2.axhline(acc_fp32, color="gray", ls="--", label="float32")
ax2.set(xlabel="权重位数", ylabel="测试准确率", title="只量化权重（逐通道对称）")
ax2.legend()
fig.savefig("quantization_bits.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
