# --8<-- [start:setup]
import itertools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist1d.data import get_dataset_args, make_dataset

torch.manual_seed(0)
np.random.seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:conv-formula]
def conv1d_out_len(L: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """一维卷积的输出长度：floor((L + 2p - d(k-1) - 1) / s) + 1。"""
    return (L + 2 * p - d * (k - 1) - 1) // s + 1


def torch_out_len(conv: nn.Conv1d, L: int):
    """让 nn.Conv1d 实际算一次；输入太短时 PyTorch 报错，返回 None。"""
    try:
        return conv(torch.zeros(1, 1, L, device=device)).shape[-1]
    except RuntimeError:
        return None


n_cases = n_valid = n_naive_ok = 0
for k, s, p, d in itertools.product(range(1, 6), range(1, 4), range(0, 3), range(1, 4)):
    conv = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d).to(device)
    for L in range(1, 31):
        ours, real = conv1d_out_len(L, k, s, p, d), torch_out_len(conv, L)
        assert real == (ours if ours >= 1 else None), (L, k, s, p, d)  # 公式 <= 0 时 PyTorch 报错
        n_cases += 1
        if ours >= 1:
            n_valid += 1
            n_naive_ok += (L - k + 1) == real       # 只对 s=1、p=0、d=1 成立的「简化公式」
print(f"(L, k, s, p, d) 组合：{n_cases} 个，其中 {n_valid} 个输出长度 >= 1")
print(f"通用公式与 nn.Conv1d 一致：{n_valid} / {n_valid}；输出长度 <= 0 的 {n_cases - n_valid} 个组合 PyTorch 均报错")
print(f"简化公式 L - k + 1 只对了 {n_naive_ok} / {n_valid}（{n_naive_ok / n_valid:.1%}）")
assert n_naive_ok < n_valid
# --8<-- [end:conv-formula]

# --8<-- [start:cnn-lengths]
layers = [(5, 2, 1), (3, 2, 1), (3, 2, 1)]   # 三层卷积的 (k, s, p)，d = 1
lengths = [40]
for k, s, p in layers:
    lengths.append(conv1d_out_len(lengths[-1], k, s, p))
flat = 25 * lengths[-1]                        # 25 个通道 × 最后的长度
print(f"长度：{' -> '.join(map(str, lengths))}；展平后 {flat} 维")

convs = nn.Sequential(nn.Conv1d(1, 25, 5, 2, 1), nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(),
                      nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU()).to(device)
shapes, h = [], torch.zeros(7, 1, 40, device=device)   # 一批 7 个样本
for layer in convs:
    h = layer(h)
    if isinstance(layer, nn.Conv1d):
        shapes.append(tuple(h.shape))
print(f"nn.Conv1d 的输出形状：{shapes}")
assert lengths == [40, 19, 10, 5] and flat == 125
assert [sh[-1] for sh in shapes] == lengths[1:] and h.flatten(1).shape == (7, 125)
# --8<-- [end:cnn-lengths]


# --8<-- [start:models]
class MLP(nn.Module):
    def __init__(self, hidden: int = 100, skip: bool = True):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(40, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 10)
        self.skip = skip

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h2 = F.relu(self.fc2(h))
        return self.fc3(h + h2 if self.skip else h2)   # 跳跃连接：只在作者代码里


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv1d(1, 25, 5, 2, 1), nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU(),
                                   nn.Conv1d(25, 25, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(125, 10)

    def forward(self, x):                              # x: (N, 40)
        return self.fc(self.convs(x.unsqueeze(1)).flatten(1))


class GRU(nn.Module):
    def __init__(self, hidden: int = 6):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(40 * 2 * hidden, 10)

    def forward(self, x):                              # x: (N, 40)
        out, _ = self.gru(x.unsqueeze(-1))             # (N, 40, 12)：40 个时间步的输出全部保留
        return self.fc(out.flatten(1))                 # (N, 480) -> (N, 10)


models = {"logistic": nn.Linear(40, 10), "mlp": MLP(), "cnn": CNN(), "gru": GRU()}
models = {name: m.to(device) for name, m in models.items()}
# --8<-- [end:models]


# --8<-- [start:params]
def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out                        # 权重 + 偏置


def conv1d(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k + c_out


def gru_direction(n_in: int, h: int, biases: int = 2) -> int:
    return 3 * (h * n_in + h * h + biases * h)        # 3 组门，每组 W_i、W_h 和偏置


by_hand = {"logistic": linear(40, 10),
           "mlp": linear(40, 100) + linear(100, 100) + linear(100, 10),
           "cnn": conv1d(1, 25, 5) + 2 * conv1d(25, 25, 3) + linear(125, 10),
           "gru": 2 * gru_direction(1, 6) + linear(480, 10)}
by_torch = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
for name in models:
    print(f"{name:>8}: 手算 {by_hand[name]:>5}，PyTorch {by_torch[name]:>5}")
assert by_hand == by_torch == {"logistic": 410, "mlp": 15210, "cnn": 5210, "gru": 5134}

# 按教科书 GRU 公式（每组门一个偏置）手算会少 2 × 3 × 6 = 36 个：PyTorch 每组门有 b_ih、b_hh 两个偏置
textbook_gru = 2 * gru_direction(1, 6, biases=1) + linear(480, 10)
print(f"GRU 按每组门一个偏置手算：{textbook_gru}，比 PyTorch 少 {by_torch['gru'] - textbook_gru}")
assert by_torch["gru"] - textbook_gru == 36

# 跳跃连接不增加参数：只数参数量发现不了论文与代码的这处差别
no_skip = MLP(skip=False).to(device)
no_skip.load_state_dict(models["mlp"].state_dict())
x = torch.randn(7, 40, device=device)
with torch.no_grad():
    gap = (models["mlp"](x) - no_skip(x)).abs().max().item()
print(f"MLP 去掉跳跃连接：参数量 {sum(p.numel() for p in no_skip.parameters())}，同一组权重的输出最大差 {gap:.3f}")
assert sum(p.numel() for p in no_skip.parameters()) == 15210 and gap > 1e-3
with torch.no_grad():
    assert all(m(x).shape == (7, 10) for m in models.values())
# --8<-- [end:params]

# --8<-- [start:data]
args = get_dataset_args()
print(f"num_samples={args.num_samples}, train_split={args.train_split}, "
      f"final_seq_length={args.final_seq_length}, seed={args.seed}")
raw = make_dataset(args)                             # 本地生成，不联网；不要用会下载的 get_dataset
x_train, y_train = torch.tensor(raw["x"], dtype=torch.float32), torch.tensor(raw["y"])
x_test, y_test = torch.tensor(raw["x_test"], dtype=torch.float32), torch.tensor(raw["y_test"])
print(f"训练集 {tuple(x_train.shape)}，测试集 {tuple(x_test.shape)}")
total = torch.bincount(torch.cat([y_train, y_test]), minlength=10)
train_counts, test_counts = torch.bincount(y_train, minlength=10), torch.bincount(y_test, minlength=10)
print(f"全部 5000 个样本每类：{total.tolist()}")
print(f"训练集每类 {train_counts.min().item()}–{train_counts.max().item()} 个，"
      f"测试集每类 {test_counts.min().item()}–{test_counts.max().item()} 个")
chance = 1 / 10
majority = test_counts.max().item() / len(y_test)    # 永远猜测试集中最多的那一类
print(f"随机猜测：{chance:.1%}；只猜最多的一类：{majority:.1%}；论文中最弱的逻辑回归：32%")
assert x_train.shape == (4000, 40) and x_test.shape == (1000, 40)
assert total.tolist() == [500] * 10                  # 生成时类别严格平衡
assert train_counts.min() < train_counts.max()       # 划分不分层：训练集并不是每类 400 个
assert majority < 0.11 < 0.32
# --8<-- [end:data]

# --8<-- [start:budget]
steps, batch, eval_every = 8000, 100, 250           # 作者 train.py 的设置
batches_per_epoch = len(x_train) // batch
epochs = steps * batch / len(x_train)
starts = sorted({(t * batch) % len(x_train) for t in range(steps)})   # 按顺序取批时每批的起点
print(f"每轮 {batches_per_epoch} 批，{steps} 步 = {epochs:.0f} 轮；每 {eval_every} 步评估一次，共 {steps // eval_every} 次")
print(f"按顺序取批只用到 {len(starts)} 种批次：{starts[:3]} …… {starts[-1]}")
assert batches_per_epoch == 40 and epochs == 200 and steps // eval_every == 32 and len(starts) == 40
# --8<-- [end:budget]
