# --8<-- [start:imports]
import itertools
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def conv1d_out_len(L: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """一维卷积的输出长度：floor((L + 2p - d(k-1) - 1) / s) + 1。"""
    return (L + 2 * p - d * (k - 1) - 1) // s + 1


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
# --8<-- [end:imports]


# --8<-- [start:ex1]
def torch_out_len(conv: nn.Conv1d, L: int):
    try:
        return conv(torch.zeros(1, 1, L, device=device)).shape[-1]
    except RuntimeError:
        return None


n_cases = n_valid = n_naive_ok = 0
kinds = Counter()  # 简化公式碰巧对的组合属于哪一类
for k, s, p, d in itertools.product(range(1, 6), range(1, 4), range(0, 3), range(1, 5)):
    conv = nn.Conv1d(1, 1, k, stride=s, padding=p, dilation=d).to(device)
    for L in range(1, 61):
        ours, real = conv1d_out_len(L, k, s, p, d), torch_out_len(conv, L)
        assert real == (ours if ours >= 1 else None), (L, k, s, p, d)
        n_cases += 1
        if ours >= 1:
            n_valid += 1
            if L - k + 1 == real:
                n_naive_ok += 1
                if s == 1:
                    kinds["s = 1 且 2p = (d-1)(k-1)"] += 2 * p == (d - 1) * (k - 1)
                else:
                    kinds[f"s > 1，输出长度 {real}"] += 1
print(f"组合：{n_cases} 个，输出长度 >= 1 的 {n_valid} 个，PyTorch 报错的 {n_cases - n_valid} 个")
print(f"简化公式 L - k + 1 对了 {n_naive_ok} / {n_valid}（{n_naive_ok / n_valid:.1%}），其中：")
for kind, count in kinds.items():
    print(f"  {kind}：{count}")
assert n_cases == 10800 and n_naive_ok == sum(kinds.values())
assert max(int(kind.split()[-1]) for kind in kinds if kind.startswith("s > 1")) <= 5   # 步幅 > 1 时只是短输出的巧合
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def gru_direction(n_in: int, h: int) -> int:
    return 3 * (h * n_in + h * h + 2 * h)        # 3 组门，每组 W_i、W_h 和两个偏置


class GRU(nn.Module):
    def __init__(self, hidden: int = 6, bidirectional: bool = True):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(40 * (2 if bidirectional else 1) * hidden, 10)

    def forward(self, x):                          # x: (N, 40)
        out, _ = self.gru(x.unsqueeze(-1))
        return self.fc(out.flatten(1))


variants = {"双向，H = 6（原模型）": (6, True), "单向，H = 6": (6, False), "双向，H = 12": (12, True)}
for name, (h, bidir) in variants.items():
    directions = 2 if bidir else 1
    by_hand = directions * gru_direction(1, h) + (40 * directions * h * 10 + 10)
    model = GRU(h, bidir).to(device)
    with torch.no_grad():
        assert model(torch.zeros(7, 40, device=device)).shape == (7, 10)
    print(f"{name}：手算 {by_hand}，PyTorch {n_params(model)}")
    assert by_hand == n_params(model)
assert n_params(GRU(6, False)) == 2572 and n_params(GRU(12, True)) == 10690
# --8<-- [end:ex2]

# --8<-- [start:ex3]
layers = [(5, 2, 1), (3, 2, 1), (3, 2, 1)]       # 三层卷积的 (k, s, p)，现在 d = 2
lengths = [40]
for k, s, p in layers:
    lengths.append(conv1d_out_len(lengths[-1], k, s, p, d=2))
print(f"dilation=2：长度 {' -> '.join(map(str, lengths))}；展平后 {25 * lengths[-1]} 维")

convs = nn.Sequential(nn.Conv1d(1, 25, 5, 2, 1, dilation=2), nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1, dilation=2),
                      nn.ReLU(), nn.Conv1d(25, 25, 3, 2, 1, dilation=2), nn.ReLU()).to(device)
h = convs(torch.zeros(7, 1, 40, device=device))
print(f"nn.Conv1d 的输出形状：{tuple(h.shape)}")
try:
    nn.Linear(125, 10).to(device)(h.flatten(1))
    old_fc_works = True
except RuntimeError as err:
    old_fc_works = False
    print(f"nn.Linear(125, 10)：RuntimeError：{str(err).split('(')[0].strip()}")
print(f"改成 nn.Linear({h.flatten(1).shape[1]}, 10) 后输出形状：{tuple(nn.Linear(75, 10).to(device)(h.flatten(1)).shape)}")
assert lengths == [40, 17, 8, 3] and h.shape == (7, 25, 3) and not old_fc_works
# --8<-- [end:ex3]


# --8<-- [start:ex4]
class BasicBlock(nn.Module):
    """He 等（2016）第 4.2 节 CIFAR-10 网络的一个块：两层 3×3 卷积，选项 A 的捷径。"""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.extra = c_out - c_in

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, self.extra)) if self.extra else x  # 隔位取样，通道补零
        return F.relu(h + shortcut)


def cifar_resnet(n: int) -> nn.Sequential:
    layers, c_in = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for stage, c_out in enumerate((16, 32, 64)):
        for i in range(n):
            layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
            c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


# 形状：三段的特征图边长应为 32、16、8（论文第 4.2 节）
net = cifar_resnet(3).to(device)
sizes, h = [], torch.zeros(2, 3, 32, 32, device=device)
for layer in net:
    h = layer(h)
    if isinstance(layer, BasicBlock):
        sizes.append(tuple(h.shape[1:]))
stages = list(dict.fromkeys(sizes))              # 去重，保持顺序：每段一种形状
print(f"ResNet-20 三段的输出 (C, H, W)：{stages}，最后输出 {tuple(h.shape)}")
assert stages == [(16, 32, 32), (32, 16, 16), (64, 8, 8)] and h.shape == (2, 10)

# 参数量：论文表 6 的 #params（单位百万，按论文的位数比较）
paper = {3: "0.27", 5: "0.46", 7: "0.66", 9: "0.85", 18: "1.7"}
for n, written in paper.items():
    model = cifar_resnet(n)
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    ours = f"{n_params(model) / 1e6:.{len(written.split('.')[1])}f}"
    print(f"ResNet-{6 * n + 2}：{layers} 层，{n_params(model)} 个参数 = {ours}M，论文 {written}M")
    assert layers == 6 * n + 2 and ours == written
# --8<-- [end:ex4]
