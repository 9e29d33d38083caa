# --8<-- [start:setup]
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = dict(device=device, dtype=torch.float64)


def randn(*shape: int) -> torch.Tensor:
    """在 CPU 上生成再搬到 device：CPU 与 CUDA 上用的是同一组数。"""
    return torch.randn(*shape, dtype=torch.float64).to(device)
# --8<-- [end:setup]

# --8<-- [start:stack]
def single_layer(big: nn.Module, layer: int, reverse: bool) -> nn.Module:
    """从多层双向的 big 中取出第 layer 层、一个方向的权重，放进一个单层单向的同类模块。"""
    suffix = f"l{layer}" + ("_reverse" if reverse else "")
    d_in = big.input_size if layer == 0 else big.hidden_size * (2 if big.bidirectional else 1)
    kwargs = {"nonlinearity": big.nonlinearity} if isinstance(big, nn.RNN) else {}
    small = type(big)(d_in, big.hidden_size, **kwargs).to(**f64)
    with torch.no_grad():
        for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]:
            getattr(small, f"{name}_l0").copy_(getattr(big, f"{name}_{suffix}"))
    return small


def my_stacked_birnn(big: nn.Module, X: torch.Tensor):
    """X: (T, N, D)。逐层、逐方向用单层单向模块计算，返回 output 与按 2·l + d 排好的最终状态。"""
    is_lstm = isinstance(big, nn.LSTM)
    finals = []                                          # 每个元素：一层一个方向的最终状态
    inp = X
    for layer in range(big.num_layers):
        fwd_out, fwd_state = single_layer(big, layer, reverse=False)(inp)
        bwd_out, bwd_state = single_layer(big, layer, reverse=True)(inp.flip(0))  # 把序列倒过来读
        bwd_out = bwd_out.flip(0)                        # 再翻回来，让第 t 行对应时间步 t
        inp = torch.cat([fwd_out, bwd_out], dim=2)       # (T, N, 2H)：下一层的输入
        finals += [fwd_state, bwd_state]                 # 下标 2·layer + 0（前向）、2·layer + 1（反向）
    if is_lstm:
        h_n = torch.cat([h for h, _ in finals]); c_n = torch.cat([c for _, c in finals])
        return inp, (h_n, c_n)
    return inp, torch.cat(finals)


T, N, D, H = 6, 3, 4, 5
X = randn(T, N, D)
for cls in [nn.RNN, nn.LSTM, nn.GRU]:
    big = cls(D, H, num_layers=2, bidirectional=True).to(**f64)
    with torch.no_grad():
        out_ref, state_ref = big(X)
        out, state = my_stacked_birnn(big, X)
    if cls is nn.LSTM:
        err_state = max((state[0] - state_ref[0]).abs().max().item(), (state[1] - state_ref[1]).abs().max().item())
        h_shape = tuple(state_ref[0].shape)
    else:
        err_state = (state - state_ref).abs().max().item()
        h_shape = tuple(state_ref.shape)
    err_out = (out - out_ref).abs().max().item()
    print(f"{cls.__name__:4s} output {tuple(out_ref.shape)}，h_n {h_shape}，"
          f"output 误差 {err_out:.1e}，最终状态误差 {err_state:.1e}")
    assert out.shape == out_ref.shape == (T, N, 2 * H) and h_shape == (2 * 2, N, H)
    assert err_out <= 1e-10 and err_state <= 1e-10
# --8<-- [end:stack]

# --8<-- [start:layout]
gru = big                                                # 上面循环的最后一个：2 层双向 GRU
with torch.no_grad():
    output, h_n = gru(X)
fwd, bwd = output[..., :H], output[..., H:]              # 每个时间步：前 H 维是前向，后 H 维是反向
top_fwd, top_bwd = h_n[2 * 1 + 0], h_n[2 * 1 + 1]        # 最上层（l = 1）的两个方向
same = lambda a, b: bool((a - b).abs().max() <= 1e-12)
print("前向 h_n == output[-1, :, :H]：", same(top_fwd, fwd[-1]))
print("反向 h_n == output[0, :, H:]： ", same(top_bwd, bwd[0]))
print(f"反向 h_n 与 output[-1, :, H:] 最大相差 {(top_bwd - bwd[-1]).abs().max().item():.3f}")
assert same(top_fwd, fwd[-1]) and same(top_bwd, bwd[0])
assert (top_bwd - bwd[-1]).abs().max() > 0.01            # output[-1] 的反向一半只读过最后一个词
h_view = h_n.view(2, 2, N, H)                            # (num_layers, num_directions, N, H)
assert torch.equal(h_view[1, 1], h_n[3])
# --8<-- [end:layout]

# --8<-- [start:pack]
gru = nn.GRU(D, H, bidirectional=True).to(**f64)
lengths = torch.tensor([4, 6, 2])                        # 故意不按长度排序
X_pad = torch.zeros(6, 3, D, **f64)                      # (T_max, N, D)，超出长度的位置填 0
seqs = [randn(n, D) for n in lengths.tolist()]
for i, s in enumerate(seqs):
    X_pad[: len(s), i] = s

with torch.no_grad():
    packed = pack_padded_sequence(X_pad, lengths, enforce_sorted=False)  # lengths 要放在 CPU 上
    out_packed, h_packed = gru(packed)
    out_pad, out_len = pad_packed_sequence(out_packed)   # 还原成 (T_max, N, 2H)，超出长度处为 0
    _, h_naive = gru(X_pad)                              # 不打包：把填充的 0 也当作输入
    h_alone = torch.stack([gru(s[:, None])[1][:, 0] for s in seqs], dim=1)  # 每条序列单独跑
    out_alone = [gru(s[:, None])[0][:, 0] for s in seqs]

err_packed = (h_packed - h_alone).abs().max().item()
err_out = max((out_pad[:n, i] - o).abs().max().item() for i, (n, o) in enumerate(zip(lengths, out_alone)))
print(f"pad_packed_sequence 还原的长度 {out_len.tolist()}，形状 {tuple(out_pad.shape)}")
print(f"打包：最终状态与逐条单独运行的最大误差 {err_packed:.1e}，output 的最大误差 {err_out:.1e}")
for i, n in enumerate(lengths.tolist()):
    diff = (h_naive[:, i] - h_alone[:, i]).abs().amax(dim=1)
    print(f"不打包：长度 {n} 的序列，最终状态与单独运行相差 前向 {diff[0]:.3f}，反向 {diff[1]:.3f}")
assert err_packed <= 1e-10 and err_out <= 1e-10
assert out_len.tolist() == lengths.tolist() and (out_pad[2:, 2] == 0).all()
naive_gap = (h_naive - h_alone).abs().amax(dim=2)       # (方向, 序列)
assert (naive_gap[:, 1] <= 1e-10).all()                  # 最长的序列没有填充：前向与反向都一致
assert (naive_gap[:, [0, 2]] > 0.01).all()               # 较短的序列：两个方向的最终状态都是错的
# --8<-- [end:pack]

# --8<-- [start:future]
gru = nn.GRU(D, H, bidirectional=True).to(**f64)
x = randn(T, 1, D).requires_grad_()
output, _ = gru(x)
t = 2
g_fwd, = torch.autograd.grad(output[t, 0, :H].sum(), x, retain_graph=True)
g_bwd, = torch.autograd.grad(output[t, 0, H:].sum(), x)
norm = lambda g: [round(v, 3) for v in g[:, 0].norm(dim=1).tolist()]   # 对每个时间步的输入求范数
print(f"output[{t}] 前向一半对 x_0 … x_{T - 1} 的梯度范数：{norm(g_fwd)}")
print(f"output[{t}] 反向一半对 x_0 … x_{T - 1} 的梯度范数：{norm(g_bwd)}")
assert (g_fwd[t + 1 :] == 0).all() and (g_fwd[: t + 1].norm(dim=2) > 0).all()
assert (g_bwd[:t] == 0).all() and g_bwd[t + 1].norm() > 1e-3   # 反向一半看到了 x_{t+1}
# --8<-- [end:future]
