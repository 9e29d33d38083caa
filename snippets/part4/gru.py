# --8<-- [start:setup]
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:cell]
def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    """PyTorch 形式的一步 GRU。x: (N, D)，h: (N, H)；W_ih: (3H, D)，W_hh: (3H, H)，行按 r、z、n 排列。"""
    i_r, i_z, i_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)    # 输入部分，各 (N, H)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)    # 隐状态部分：三个门一次矩阵乘法
    r = torch.sigmoid(i_r + h_r)                           # 重置门
    z = torch.sigmoid(i_z + h_z)                           # 更新门
    n = torch.tanh(i_n + r * h_n)                          # 候选隐状态：重置门乘在矩阵乘法之后
    return (1 - z) * n + z * h


def gru_cell_cho(x, h, W_ih, W_hh, b_ih, b_hh):
    """Cho 等（2014）的形式：重置门先乘在 h 上，再做矩阵乘法。参数的形状与排列同上。"""
    H = h.shape[1]
    i_r, i_z, i_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z = (h @ W_hh[: 2 * H].T + b_hh[: 2 * H]).chunk(2, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + (r * h) @ W_hh[2 * H :].T + b_hh[2 * H :])   # 必须等 r 算出后才能乘 W_hn
    return (1 - z) * n + z * h


def gru_forward(X, h, params, cell=gru_cell):
    """X: (T, N, D)，h: (N, H)。返回每步的隐状态 (T, N, H) 与最后的隐状态 (N, H)。"""
    outputs = []
    for x in X:
        h = cell(x, h, *params)
        outputs.append(h)
    return torch.stack(outputs), h
# --8<-- [end:cell]

# --8<-- [start:check]
T, N, D, H = 7, 3, 4, 5
gru = nn.GRU(D, H).to(device).double()                    # 默认 batch_first=False：输入 (T, N, D)
params = [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0]
for name, p in zip(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"], params):
    print(f"{name:13s} {tuple(p.shape)}")
X = torch.randn(T, N, D, dtype=torch.float64).to(device)   # 在 CPU 上生成：各设备同一组数
h0 = torch.randn(1, N, H, dtype=torch.float64).to(device)

with torch.no_grad():
    out_ref, hn_ref = gru(X, h0)
    out, hn = gru_forward(X, h0[0], params)
err = max((out - out_ref).abs().max().item(), (hn - hn_ref[0]).abs().max().item())
print(f"output {tuple(out.shape)}，h_n {tuple(hn_ref.shape)}，与 nn.GRU 的最大误差 {err:.1e}")
assert out.shape == out_ref.shape and err <= 1e-10
assert torch.equal(out[-1], hn)                           # 单层单向：output 的最后一步就是 h_n
# --8<-- [end:check]

# --8<-- [start:cho]
with torch.no_grad():
    out_cho, _ = gru_forward(X, h0[0], params, cell=gru_cell_cho)
    diff = (out_cho - out).abs().max().item()
    # 让重置门恒为 1（r 的输入偏置加 100，σ(100+…) 在 float64 中就是 1），两种形式应完全一致
    b_ih_open = params[2].clone()
    b_ih_open[:H] += 100.0
    open_params = [params[0], params[1], b_ih_open, params[3]]
    d_open = (gru_forward(X, h0[0], open_params, cell=gru_cell_cho)[0]
              - gru_forward(X, h0[0], open_params)[0]).abs().max().item()
print(f"同一组权重，两种候选隐状态的输出最大相差 {diff:.3f}")
print(f"重置门恒为 1 时相差 {d_open:.1e}")
assert diff > 0.01                                        # 两种形式确实不同
assert d_open <= 1e-12                                    # 差别只来自重置门的位置
# --8<-- [end:cho]

# --8<-- [start:convention]
def gru_cell_swapped(x, h, W_ih, W_hh, b_ih, b_hh):
    """Chung 等（2014）的写法：h_t = z ⊙ n + (1 − z) ⊙ h_{t−1}，z 表示「更新多少」。"""
    i_r, i_z, i_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return z * n + (1 - z) * h


flip = torch.ones(3 * H, 1, device=device, dtype=torch.float64)
flip[H : 2 * H] = -1.0                                    # 把 z 的那一块权重和偏置取负
flipped = [params[0] * flip, params[1] * flip, params[2] * flip[:, 0], params[3] * flip[:, 0]]
with torch.no_grad():
    out_swapped, _ = gru_forward(X, h0[0], flipped, cell=gru_cell_swapped)
err_swap = (out_swapped - out).abs().max().item()
print(f"z 一块取负后，另一种写法与 nn.GRU 的最大误差 {err_swap:.1e}")
assert err_swap <= 1e-10                                  # σ(−a) = 1 − σ(a)：两种写法只是参数化不同
# --8<-- [end:convention]

# --8<-- [start:params]
def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


D, H = 64, 128
with torch.device("meta"):                                # 只建形状，不分配内存
    n_rnn, n_gru, n_lstm = count(nn.RNN(D, H)), count(nn.GRU(D, H)), count(nn.LSTM(D, H))
formula = {"RNN": H * (D + H) + 2 * H, "GRU": 3 * H * (D + H) + 6 * H, "LSTM": 4 * H * (D + H) + 8 * H}
for name, n in [("RNN", n_rnn), ("GRU", n_gru), ("LSTM", n_lstm)]:
    print(f"{name:4s} D={D} H={H}：{n:6d} 个参数（公式 {formula[name]}），是 RNN 的 {n / n_rnn:.0f} 倍")
    assert n == formula[name]
assert n_gru == 3 * n_rnn and n_lstm == 4 * n_rnn
# --8<-- [end:params]

# --8<-- [start:train]
def adding_batch(T: int, N: int, gen: torch.Generator):
    """加法问题：每步输入 (数值, 标记)，两个标记位置（前半、后半各一个）上的数值之和是目标。"""
    values = torch.rand(T, N, generator=gen)
    marks = torch.zeros(T, N)
    rows = torch.arange(N)
    marks[torch.randint(0, T // 2, (N,), generator=gen), rows] = 1.0
    marks[torch.randint(T // 2, T, (N,), generator=gen), rows] = 1.0
    X = torch.stack([values, marks], dim=2)               # (T, N, 2)
    y = (values * marks).sum(0, keepdim=True).T           # (N, 1)
    return X.to(device), y.to(device)


def train_adding(seed: int, cell, T: int = 10, H: int = 16, steps: int = 200) -> float:
    torch.manual_seed(seed)
    ref = nn.GRU(2, H)                                    # 只借用它的初始化：U(−1/√H, 1/√H)
    params = [p.detach().clone().to(device).requires_grad_()
              for p in (ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0)]
    head = nn.Linear(H, 1).to(device)
    opt = torch.optim.Adam(params + list(head.parameters()), lr=0.01)
    gen = torch.Generator().manual_seed(100 + seed)       # 两种形式看到完全相同的训练数据
    for _ in range(steps):
        X, y = adding_batch(T, 128, gen)
        _, h = gru_forward(X, torch.zeros(128, H, device=device), params, cell=cell)
        loss = nn.functional.mse_loss(head(h), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    X, y = adding_batch(T, 2000, torch.Generator().manual_seed(999))   # 固定的测试集
    with torch.no_grad():
        _, h = gru_forward(X, torch.zeros(2000, H, device=device), params, cell=cell)
        return nn.functional.mse_loss(head(h), y).item()


print("种子 | PyTorch 形式 | Cho 等的形式   （测试 MSE；总预测 1 的 MSE 为 1/6 ≈ 0.167）")
results = {}
for seed in range(3):
    results[seed] = (train_adding(seed, gru_cell), train_adding(seed, gru_cell_cho))
    print(f"  {seed}  |    {results[seed][0]:.4f}    |    {results[seed][1]:.4f}")
# 3 个种子上两种形式的测试 MSE 最高为 0.0041（CPU），阈值 0.02 留出约 5 倍余量给 CUDA 上的数值差异
assert all(mse < 0.02 for pair in results.values() for mse in pair)
# 这么短的任务上两种形式分不出高下：每个种子上两者之比都在 0.5 到 2 之间（CPU 上最大相差约 10%）
assert all(0.5 < a / b < 2 for a, b in results.values())
# --8<-- [end:train]
