# --8<-- [start:imports]
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fake_quant_rows(w: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int, zero_point=0) -> torch.Tensor:
    """dequant(quant(w))：scale 可以是标量或每行一个 (out, 1)。"""
    q = torch.clamp(torch.round(w / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale
# --8<-- [end:imports]

# --8<-- [start:ex1]
a = torch.relu(torch.randn(100000, device=device))           # ReLU 之后的激活：全为非负
amax = a.max()
s_sym = amax / 127                                            # 对称 int8：[-amax, amax]，零点 0
s_asym = amax / 255                                           # 非对称 uint8：[0, amax]，零点 0
err_sym = (a - fake_quant_rows(a, s_sym, -127, 127)).abs().max().item()
err_asym = (a - fake_quant_rows(a, s_asym, 0, 255)).abs().max().item()
used = torch.unique(torch.round(a / s_sym)).numel()
print(f"对称 int8：缩放 {s_sym.item():.5f}，最大误差 {err_sym:.5f}，实际用到 {used} 个整数")
print(f"非对称 uint8：缩放 {s_asym.item():.5f}，最大误差 {err_asym:.5f}，误差之比 {err_sym / err_asym:.2f}")
assert used <= 128                                            # 负的一半整数一个也没用上
assert 1.9 < err_sym / err_asym < 2.1                          # 缩放之比 255/127，误差约差一倍
# --8<-- [end:ex1]

# --8<-- [start:ex2]
layer = nn.Linear(256, 256).to(device)
W = layer.weight.detach().clone()


def row_mse(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """逐张量、逐通道 int8 量化后每一行的均方误差，各 (256,)。"""
    s_t = W.abs().max() / 127
    s_r = W.abs().amax(dim=1, keepdim=True) / 127
    return ((W - fake_quant_rows(W, s_t, -127, 127)).pow(2).mean(dim=1),
            (W - fake_quant_rows(W, s_r, -127, 127)).pow(2).mean(dim=1))


t0, r0 = row_mse(W)
W_out = W.clone()
W_out[0, 0] = 20 * W.abs().max()                              # 第 0 行放进一个离群值
t1, r1 = row_mse(W_out)
print(f"加离群值前：逐张量 MSE {t0.mean().item():.2e}，逐通道 MSE {r0.mean().item():.2e}")
print(f"加离群值后：逐张量 MSE {t1.mean().item():.2e}，逐通道 MSE {r1.mean().item():.2e}")
print(f"逐张量：整体放大 {t1.mean().item() / t0.mean().item():.0f} 倍，其余 255 行最少放大 "
      f"{(t1[1:] / t0[1:]).min().item():.0f} 倍")
print(f"逐通道：整体放大 {r1.mean().item() / r0.mean().item():.2f} 倍，其余 255 行不变 "
      f"{torch.equal(r1[1:], r0[1:])}")
assert (t1[1:] / t0[1:]).min() > 10 and torch.equal(r1[1:], r0[1:])
# --8<-- [end:ex2]

# --8<-- [start:ex3]
w = torch.randn(4, 8, device=device, requires_grad=True)
scale = w.detach().abs().amax(dim=1, keepdim=True) / 7
w_q = torch.clamp(torch.round(w / scale), -7, 7) * scale      # 不加直通估计器
(w_q * torch.randn_like(w)).sum().backward()
print(f"不用直通估计器时 w.grad 的最大绝对值：{w.grad.abs().max().item()}")
assert torch.count_nonzero(w.grad) == 0                        # round 的导数处处为 0，权重收不到任何梯度
# --8<-- [end:ex3]

# --8<-- [start:ex4]
def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """把取值在 [-8, 7] 的整数两两装进一个 uint8：低 4 位放偶数列，高 4 位放奇数列。"""
    u = (q & 0xF).to(torch.uint8)                              # 补码的低 4 位
    return u[:, 0::2] | (u[:, 1::2] << 4)


def unpack_int4(p: torch.Tensor) -> torch.Tensor:
    lo, hi = (p & 0xF).to(torch.int16), (p >> 4).to(torch.int16)
    lo, hi = lo - 16 * (lo >= 8), hi - 16 * (hi >= 8)          # 还原符号
    return torch.stack([lo, hi], dim=-1).flatten(1)


shapes = [(256, 64), (256, 256), (10, 256)]                   # 正文 MLP 三层权重的形状
bytes_fp32 = bytes_int4 = 0
for out_f, in_f in shapes:
    q = torch.randint(-8, 8, (out_f, in_f), device=device)
    packed = pack_int4(q)
    assert torch.equal(unpack_int4(packed).long(), q)         # 装包再拆包，一个不差
    scales = torch.ones(out_f, device=device)                 # 每行一个 float32 缩放
    bytes_int4 += packed.numel() * packed.element_size() + scales.numel() * scales.element_size()
    bytes_fp32 += out_f * in_f * 4
print(f"权重字节：float32 {bytes_fp32}，int4 {bytes_int4}，缩小 {bytes_fp32 / bytes_int4:.2f} 倍")
assert bytes_int4 == (64 * 256 + 256 * 256 + 256 * 10) // 2 + 4 * (256 + 256 + 10)
# --8<-- [end:ex4]
