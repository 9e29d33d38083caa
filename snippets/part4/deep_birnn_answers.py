# --8<-- [start:imports]
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = dict(device=device, dtype=torch.float64)
T, N, D, H = 6, 3, 4, 5
# --8<-- [end:imports]

# --8<-- [start:ex1]
gru = nn.GRU(D, H, num_layers=2, bidirectional=True, batch_first=True).to(**f64)
X = torch.randn(N, T, D, dtype=torch.float64).to(device)     # batch_first：(N, T, D)
with torch.no_grad():
    output, h_n = gru(X)
print(f"batch_first=True：output {tuple(output.shape)}，h_n {tuple(h_n.shape)}")
assert output.shape == (N, T, 2 * H) and h_n.shape == (2 * 2, N, H)   # h_n 不受 batch_first 影响

feature = torch.cat([h_n[-2], h_n[-1]], dim=1)            # 最上层前向与反向的最终状态，(N, 2H)
same = torch.cat([output[:, -1, :H], output[:, 0, H:]], dim=1)
wrong = output[:, -1]                                     # 常见错误：反向一半只读了最后一个词
print(f"正确的句子表示与 output[:, -1] 最大相差 {(feature - wrong).abs().max().item():.3f}")
assert (feature - same).abs().max() <= 1e-12 and (feature - wrong).abs().max() > 0.01
# --8<-- [end:ex1]

# --8<-- [start:ex2]
gru = nn.GRU(D, H).to(**f64)                              # 单层单向
lengths = torch.tensor([4, 6, 2])
X_pad = torch.randn(6, 3, D, dtype=torch.float64).to(device)
for i, n in enumerate(lengths.tolist()):
    X_pad[n:, i] = 0.0                                    # 填充
with torch.no_grad():
    out_packed, h_n = gru(pack_padded_sequence(X_pad, lengths, enforce_sorted=False))
    out_pad, _ = pad_packed_sequence(out_packed)
last = out_pad[lengths - 1, torch.arange(3)]              # 每条序列自己的最后一步
print("out_pad[-1] 中每条序列是否全为 0：", [bool((out_pad[-1, i] == 0).all()) for i in range(3)])
print(f"按长度取出的最后一步与 h_n 的最大误差 {(last - h_n[0]).abs().max().item():.1e}")
assert (last - h_n[0]).abs().max() <= 1e-12
assert (out_pad[-1, [0, 2]] == 0).all()                   # 较短的序列在 out_pad[-1] 处只是填充的 0
# --8<-- [end:ex2]

# --8<-- [start:ex3]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    one = nn.GRU(D, H, num_layers=1, dropout=0.5).to(**f64)
print("num_layers=1 且 dropout=0.5 时的警告：", len(caught) > 0)
two = nn.GRU(D, H, num_layers=2, dropout=0.5).to(**f64)
x = torch.randn(T, N, D, dtype=torch.float64).to(device)
with torch.no_grad():
    one.train(); o_train = one(x)[0]
    one.eval(); o_eval = one(x)[0]
    two.train(); a, b = two(x)[0], two(x)[0]
    two.eval(); c, d = two(x)[0], two(x)[0]
print(f"1 层：训练模式与评估模式最大相差 {(o_train - o_eval).abs().max().item():.1e}")
print(f"2 层：训练模式下两次前向最大相差 {(a - b).abs().max().item():.3f}，评估模式下 {(c - d).abs().max().item():.1e}")
assert len(caught) > 0 and (o_train - o_eval).abs().max() <= 1e-12   # 最后一层之后不加丢弃法
assert (a - b).abs().max() > 0.01 and (c - d).abs().max() <= 1e-12   # 两层之间的丢弃法只在训练模式下生效
# --8<-- [end:ex3]
