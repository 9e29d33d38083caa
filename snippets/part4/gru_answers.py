# --8<-- [start:imports]
import torch
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    """与正文相同：PyTorch 形式的一步 GRU，行按 r、z、n 排列。"""
    i_r, i_z, i_n = (x @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def gru_forward(X, h, params):
    outputs = []
    for x in X:
        h = gru_cell(x, h, *params)
        outputs.append(h)
    return torch.stack(outputs), h


T, N, D, H = 6, 3, 4, 5
gru = nn.GRU(D, H).to(device).double()
params = [p.detach() for p in (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)]
X = torch.randn(T, N, D, dtype=torch.float64).to(device)   # 在 CPU 上生成：各设备同一组数
h0 = torch.randn(N, H, dtype=torch.float64).to(device)
out, _ = gru_forward(X, h0, params)
# --8<-- [end:imports]

# --8<-- [start:ex1]
W_ih, W_hh, b_ih, b_hh = (p.clone() for p in params)
b_ih[:H] += 100.0            # r ≈ 1：重置门全开
b_ih[H : 2 * H] -= 100.0     # z ≈ 0：完全采用候选隐状态
out_gru, _ = gru_forward(X, h0, [W_ih, W_hh, b_ih, b_hh])

rnn = nn.RNN(D, H, nonlinearity="tanh").to(device).double()
with torch.no_grad():        # 只拷贝 n 那一块（第 2H 到 3H 行）
    rnn.weight_ih_l0.copy_(W_ih[2 * H :])
    rnn.weight_hh_l0.copy_(W_hh[2 * H :])
    rnn.bias_ih_l0.copy_(b_ih[2 * H :])
    rnn.bias_hh_l0.copy_(b_hh[2 * H :])
    out_rnn, _ = rnn(X, h0[None])
err = (out_gru - out_rnn).abs().max().item()
print(f"r ≡ 1、z ≡ 0 的 GRU 与 nn.RNN 的最大误差 {err:.1e}")
assert err <= 1e-10
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def moved(src: slice, dst: slice):
    """把 b_hh 的 src 块加到 b_ih 的 dst 块上，再把 b_hh 的 src 块清零。"""
    b_ih, b_hh = params[2].clone(), params[3].clone()
    b_ih[dst] += b_hh[src]
    b_hh[src] = 0.0
    return gru_forward(X, h0, [params[0], params[1], b_ih, b_hh])[0]


r_block, n_block = slice(0, H), slice(2 * H, 3 * H)
d_r = (moved(r_block, r_block) - out).abs().max().item()
d_n = (moved(n_block, n_block) - out).abs().max().item()
print(f"b_hr 并入 b_ir：输出最大变化 {d_r:.1e}")
print(f"b_hn 并入 b_in：输出最大变化 {d_n:.3f}")
assert d_r <= 1e-12 and d_n > 0.01
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def gru_params(D: int, H: int, num_layers: int = 1, bidirectional: bool = False) -> int:
    dirs = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        d_in = D if layer == 0 else dirs * H   # 第 2 层起，输入是下一层各方向输出的拼接
        total += dirs * (3 * H * (d_in + H) + 6 * H)
    return total


for cfg in [dict(num_layers=1), dict(num_layers=2), dict(num_layers=2, bidirectional=True)]:
    with torch.device("meta"):
        n = sum(p.numel() for p in nn.GRU(64, 128, **cfg).parameters())
    print(f"nn.GRU(64, 128, {', '.join(f'{k}={v}' for k, v in cfg.items())})：{n}")
    assert n == gru_params(64, 128, **cfg)
# --8<-- [end:ex3]
