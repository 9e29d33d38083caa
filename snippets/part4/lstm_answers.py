# --8<-- [start:imports]
import math

import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def adding_batch(n: int, T: int, gen: torch.Generator):
    """与正文相同的加法问题数据：(n, T, 2) 的输入与 (n,) 的目标。"""
    values = torch.rand(n, T, generator=gen)
    marks = torch.zeros(n, T)
    first = torch.randint(0, T // 2, (n,), generator=gen)
    second = torch.randint(T // 2, T, (n,), generator=gen)
    marks[torch.arange(n), first] = 1.0
    marks[torch.arange(n), second] = 1.0
    return torch.stack([values, marks], dim=-1).to(device), (values * marks).sum(dim=1).to(device)
# --8<-- [end:imports]

# --8<-- [start:ex1]
def lstm_params(D: int, H: int) -> int:
    return 4 * H * (D + H) + 8 * H        # 4 个门各有 W_ih (H, D)、W_hh (H, H)，以及 b_ih、b_hh 各 H 个


for D, H in [(2, 64), (4, 5), (100, 256)]:
    n_torch = sum(p.numel() for p in nn.LSTM(D, H).parameters())
    with torch.device("meta"):            # 第二种构造：不分配内存，只数形状
        n_meta = sum(p.numel() for p in nn.LSTM(D, H, bias=False).parameters()) + 2 * 4 * H
    print(f"D = {D:3d}，H = {H:3d}：公式 {lstm_params(D, H)}，PyTorch {n_torch}")
    assert lstm_params(D, H) == n_torch == n_meta

# 正文的加法模型：LSTM(2, 64) 加一个 Linear(64, 1)
n_model = sum(p.numel() for m in [nn.LSTM(2, 64), nn.Linear(64, 1)] for p in m.parameters())
print(f"加法问题模型的参数量 {n_model}")
assert n_model == lstm_params(2, 64) + 64 + 1

# 两个偏置只以和的形式出现：把 b_hh 挪进 b_ih，输出不变
lstm = nn.LSTM(4, 5, dtype=torch.float64).to(device)
x = torch.randn(7, 3, 4, dtype=torch.float64, device=device)
out_before, _ = lstm(x)
with torch.no_grad():
    lstm.bias_ih_l0 += lstm.bias_hh_l0
    lstm.bias_hh_l0.zero_()
out_after, _ = lstm(x)
err = (out_after - out_before).abs().max().item()
print(f"把 b_hh 并入 b_ih 后输出的最大变化 {err:.1e}")
assert err <= 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def lstm_cell_c(x, W_ih, W_hh, b, coupled: bool):
    """返回每一步记忆元的最大绝对值；coupled=True 时 i = 1 − f（CIFG），输入门的那组权重不用。"""
    n, H = x.shape[1], W_hh.shape[1]
    h = torch.zeros(n, H, device=x.device)
    c = torch.zeros(n, H, device=x.device)
    c_max = []
    for x_t in x:
        z_i, z_f, z_g, z_o = (x_t @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=1)
        f = torch.sigmoid(z_f)
        i = 1 - f if coupled else torch.sigmoid(z_i)
        c = f * c + i * torch.tanh(z_g)
        h = torch.sigmoid(z_o) * torch.tanh(c)
        c_max.append(c.abs().max().item())
    return c_max


T, D, H = 200, 4, 8
W_ih = torch.randn(4 * H, D, device=device)
W_hh = torch.randn(4 * H, H, device=device) / math.sqrt(H)
b = torch.zeros(4 * H, device=device)
b[: 2 * H] = 5.0                            # 输入门与遗忘门都几乎全开（σ(5) ≈ 0.993）
b[2 * H : 3 * H] = 5.0                      # 候选值 g 几乎恒为 +1
x = torch.randn(T, 16, D, device=device)
c_std = lstm_cell_c(x, W_ih, W_hh, b, coupled=False)
c_cifg = lstm_cell_c(x, W_ih, W_hh, b, coupled=True)
for t in [1, 10, 100, 200]:
    print(f"t = {t:3d}：标准 LSTM max|c_t| = {c_std[t - 1]:7.2f}，耦合门 max|c_t| = {c_cifg[t - 1]:.4f}")
assert max(c_cifg) <= 1.0                  # 凸组合：c_0 = 0 时 |c_t| ≤ 1
assert c_std[-1] > 50 * c_std[0]           # 标准 LSTM 的记忆元随步数累加
n_cifg = 3 * H * (D + H) + 6 * H
print(f"D = {D}，H = {H}：标准 LSTM 参数量 {4 * H * (D + H) + 8 * H}，耦合门 {n_cifg}")
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def measure(cell: type, T: int, forget_bias=None):
    """初始化时：‖∂h_T/∂x_1‖ / ‖∂h_T/∂x_T‖（与正文相同），以及直接路径 ∏_{k=2}^{T} f_k 的平均值（仅 LSTM）。"""
    torch.manual_seed(0)
    net = cell(2, 64, batch_first=True).to(device)
    if forget_bias is not None:
        with torch.no_grad():
            net.bias_ih_l0[64:128].fill_(forget_bias)
            net.bias_hh_l0[64:128].zero_()
    x, _ = adding_batch(256, T, torch.Generator().manual_seed(2))
    x.requires_grad_(True)
    out, _ = net(x)
    out[:, -1].sum().backward()
    g = x.grad.norm(dim=2).mean(dim=0)
    prod_f = float("nan")
    if cell is nn.LSTM:                      # 用 h_{t-1}（即 out 的前一步）重算每一步的遗忘门
        with torch.no_grad():
            h_prev = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
            z = x @ net.weight_ih_l0.T + h_prev @ net.weight_hh_l0.T + net.bias_ih_l0 + net.bias_hh_l0
            f = torch.sigmoid(z[..., 64:128])                     # (256, T, 64)
            prod_f = f[:, 1:].prod(dim=1).mean().item()           # ∂c_T/∂c_1 沿直接路径
    return (g[0] / g[-1]).item(), prod_f


rows = [("RNN", nn.RNN, None), ("LSTM 默认初始化", nn.LSTM, None),
        ("LSTM 遗忘门偏置 1", nn.LSTM, 1.0), ("LSTM 遗忘门偏置 2", nn.LSTM, 2.0),
        ("LSTM 遗忘门偏置 3", nn.LSTM, 3.0)]
res = {}
for name, cell, fb in rows:
    res[name] = {T: measure(cell, T, fb) for T in (50, 100)}
    line = f"{name:12s} 梯度比 T=50：{res[name][50][0]:.1e}，T=100：{res[name][100][0]:.1e}"
    if cell is nn.LSTM:
        line += f"；∏f T=50：{res[name][50][1]:.1e}，T=100：{res[name][100][1]:.1e}"
    if fb is not None:
        line += f"；σ(b_f)^(T−1)：{torch.sigmoid(torch.tensor(fb)).item() ** 49:.1e} / " \
                f"{torch.sigmoid(torch.tensor(fb)).item() ** 99:.1e}"
    print(line)
lstm_names = [name for name, cell, fb in rows if cell is nn.LSTM]
for name in lstm_names:
    assert res[name][100][1] < res[name][50][1]          # 直接路径：每多一步多乘一个 f < 1
for a, b_ in zip(lstm_names, lstm_names[1:]):
    assert res[a][100][1] < res[b_][100][1]              # 偏置越大，直接路径保留得越多
for name, cell, fb in rows[2:]:
    for T in (50, 100):
        guess = torch.sigmoid(torch.tensor(fb)).item() ** (T - 1)
        assert guess / 10 < res[name][T][1] < guess * 10     # 与 σ(b_f)^(T−1) 同一数量级
for name in ["RNN", "LSTM 默认初始化"]:
    assert res[name][100][0] < 1e-15                     # T = 100 时第 1 步几乎收不到梯度
for name in lstm_names[1:]:
    assert res[name][100][0] > 1e-10                     # 加了遗忘门偏置的 LSTM 仍能收到
# --8<-- [end:ex3]

# --8<-- [start:ex4]
# 只记住第二个数 v_b、把第一个数猜成 E[v_a] = 0.5：误差 = v_a − 0.5，均方误差 = Var(v_a) = 1/12
x, y = adding_batch(200_000, 50, torch.Generator().manual_seed(1))
values, marks = x[:, :, 0], x[:, :, 1]
second = 25 + marks[:, 25:].argmax(dim=1)
y_hat = values[torch.arange(len(y)), second] + 0.5
mse_half = ((y_hat - y) ** 2).mean().item()
print(f"只记住第二个数：公式 1/12 = {1 / 12:.4f}，蒙特卡洛 {mse_half:.4f}")
assert abs(mse_half - 1 / 12) < 2e-3
# --8<-- [end:ex4]
