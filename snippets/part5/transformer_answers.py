# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex2]
class SortNet(nn.Module):                    # 与正文相同，只多一个开关 use_pos
    def __init__(self, use_pos, n=6, vocab=10, d=32, h=4, layers=2):
        super().__init__()
        self.use_pos = use_pos
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(0.02 * torch.randn(n, d))
        block = nn.TransformerEncoderLayer(d, h, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab)

    def forward(self, x):
        e = self.tok(x) + (self.pos if self.use_pos else 0)
        return self.out(self.norm(self.enc(e)))


def train_sort(use_pos, seed=0, steps=300, batch=256, lr=3e-3):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SortNet(use_pos).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(steps):
        xb = torch.randint(0, 10, (batch, 6), generator=gen).to(device)
        loss = F.cross_entropy(net(xb).reshape(-1, 10), xb.sort(dim=-1).values.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net


net = train_sort(use_pos=False)
test = torch.randint(0, 10, (2000, 6), generator=torch.Generator().manual_seed(1234)).to(device)
with torch.no_grad():
    pred = net(test).argmax(dim=-1)
    acc = (pred == test.sort(dim=-1).values).float().mean().item()
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0)).to(device)
    shift = (net(test[:, perm]) - net(test)[:, perm]).abs().max().item()
print(f"去掉位置向量：逐位置准确率 {acc:.4f}")
print(f"打乱输入顺序后输出只是跟着换位：最大差 {shift:.1e}")
print("输入", test[0].tolist(), "-> 输出", pred[0].tolist())
assert shift < 1e-4                   # 置换等变：f(Px) = P f(x)
assert acc < 0.5                      # 远达不到有位置向量时的 ≥ 0.99
# 同一个数字在哪个位置，输出都一样
same = [len({p for t, p in zip(row, prow) if t == v}) <= 1
        for row, prow in zip(test.tolist(), pred.tolist()) for v in set(row)]
assert all(same)
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def count_macs(fn, *args):
    with FlopCounterMode(display=False) as fc:
        fn(*args)
    return fc.get_total_flops() // 2


D, H, D_FF = 512, 8, 2048
layer = nn.TransformerEncoderLayer(D, H, D_FF, batch_first=True, device="meta")


def scores_part(x):
    Q = K = V = x.view(1, -1, H, D // H).transpose(1, 2)
    return torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(D // H), dim=-1) @ V


def linear_part(x):
    qkv = x @ layer.self_attn.in_proj_weight.T
    return layer.linear2(torch.relu(layer.linear1(layer.self_attn.out_proj(qkv[..., :D]))))


n_star = 2 * D + D_FF                 # 2 n² d = 4 n d² + 2 n d d_ff  =>  n = 2d + d_ff
for n in (n_star // 2, n_star, 2 * n_star):
    x = torch.empty(1, n, D, device="meta")
    a, l = count_macs(scores_part, x), count_macs(linear_part, x)
    print(f"n={n}：注意力矩阵部分 / 线性部分 = {a / l:.2f}")
    assert (a > l) == (n > n_star) and (a == l) == (n == n_star)
# --8<-- [end:ex3]


# --8<-- [start:ex4]
torch.manual_seed(0)
dec = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True).to(device, torch.float64).eval()
n = 5
mem = torch.randn(1, 7, 16, dtype=torch.float64, device=device)
y = torch.randn(1, n, 16, dtype=torch.float64, device=device)
y2 = y.clone()
y2[:, 3:] = torch.randn(1, n - 3, 16, dtype=torch.float64, device=device)   # 只改第 3 个位置以后的输入
causal = nn.Transformer.generate_square_subsequent_mask(n, device=device, dtype=torch.float64)
with torch.no_grad():
    d_mask = (dec(y, mem, tgt_mask=causal) - dec(y2, mem, tgt_mask=causal))[:, :3].abs().max().item()
    d_nomask = (dec(y, mem) - dec(y2, mem))[:, :3].abs().max().item()
print(f"前 3 个位置的输出变化：有因果掩码 {d_mask:.1e}，没有掩码 {d_nomask:.1e}")
assert d_mask <= 1e-12 and d_nomask > 1e-3

# 生成时每一步要用上一步的输出，只能逐个词元地做：n 个词元 = n 次顺序的解码器调用。
# 有 KV 缓存时，第 t 步的新词元要和 t 个键做点积：每层每步约 2 t d 次乘加，总数 d n (n + 1)。
d = 512
for n in (64, 128, 256):
    total = sum(2 * t * d for t in range(1, n + 1))
    assert total == d * n * (n + 1)
    print(f"生成 {n} 个词元：{n} 次顺序调用，注意力矩阵部分共 {total} 次乘加")
# --8<-- [end:ex4]
