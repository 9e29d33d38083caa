# --8<-- [start:imports]
import copy
import math

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

digits = load_digits()
X_all = torch.tensor(digits.data, dtype=torch.float32) / 16
y_all = torch.tensor(digits.target)
idx_tr, idx_te = train_test_split(np.arange(len(y_all)), test_size=360,
                                  stratify=digits.target, random_state=0)
X_tr, y_tr = X_all[idx_tr].to(device), y_all[idx_tr].to(device)
X_te, y_te = X_all[idx_te].to(device), y_all[idx_te].to(device)


def make_mlp(n_classes: int, hidden: int = 128) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes)).to(device)


def train(model, X, y, epochs, lr, seed, batch_size=64):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen).to(device)
        for i in range(0, len(y), batch_size):
            b = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(X[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model, X, y):
    model.eval()
    return (model(X).argmax(1) == y).float().mean().item()


def factorize(layer: nn.Linear, r: int) -> nn.Sequential:
    U_, S_, Vh_ = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
    root = S_[:r].sqrt()
    first, second = nn.Linear(layer.in_features, r, bias=False), nn.Linear(r, layer.out_features)
    with torch.no_grad():
        first.weight.copy_(root[:, None] * Vh_[:r])
        second.weight.copy_(U_[:, :r] * root)
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second).to(device)


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.A = nn.Parameter(torch.randn(r, base.in_features, device=device) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=device))
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T


# 与正文相同的两个网络：10 类的 net（低秩分解用）与只见过 0–4 的 pre（LoRA 用）
net = train(make_mlp(10), X_tr, y_tr, epochs=15, lr=2e-3, seed=0)
acc_full = accuracy(net, X_te, y_te)
torch.manual_seed(0)
pre = train(make_mlp(5), X_tr[y_tr < 5], y_tr[y_tr < 5], epochs=10, lr=2e-3, seed=0, batch_size=128)
Xt_tr, yt_tr = X_tr[y_tr >= 5], y_tr[y_tr >= 5] - 5
Xt_te, yt_te = X_te[y_te >= 5], y_te[y_te >= 5] - 5


def finetune(seed: int, mode: str, r: int = 4, alpha: float = 8.0) -> tuple[float, int]:
    """正文的 finetune，多了 'scratch'（从随机初始化训练同样的网络）与秩 r、alpha 两个参数。返回准确率与可训练参数量。"""
    torch.manual_seed(seed)
    if mode == "scratch":
        m = make_mlp(5)
    else:
        m = copy.deepcopy(pre)
        if mode == "lora":
            m[0], m[2] = LoRALinear(m[0], r, alpha), LoRALinear(m[2], r, alpha)
        m[4] = nn.Linear(128, 5).to(device)
    lr = 1e-2 if mode == "lora" else 1e-3
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    for _ in range(100):
        loss = nn.functional.cross_entropy(m(Xt_tr), yt_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(m, Xt_te, yt_te), sum(p.numel() for p in m.parameters() if p.requires_grad)
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 容差 ±0.15：低秩时准确率对训练出的权重很敏感
d_in, d_out = net[0].in_features, net[0].out_features             # 第一层：(out, in) = (128, 64)
dense = d_in * d_out + d_out
r_even = d_in * d_out / (d_in + d_out)
print(f"第一层参数量 {dense}；r(in+out) + out < in·out + out 当且仅当 r < {r_even:.2f}")
assert max(r for r in range(1, 65) if r * (d_in + d_out) < d_in * d_out) == 42
print(" r | 参数量 | 测试准确率")
acc_first = {}
for r in [4, 8, 16, 32, 42]:
    small = copy.deepcopy(net)
    small[0] = factorize(net[0], r)
    count = r * (d_in + d_out) + d_out
    assert sum(p.numel() for p in small[0].parameters()) == count
    acc_first[r] = accuracy(small, X_te, y_te)
    print(f"{r:3d} | {count:6d} | {acc_first[r]:.3f}")
print(f"原网络 {acc_full:.3f}")
assert acc_first[4] < acc_full - 0.05 and acc_first[32] >= acc_full - 0.02
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 容差 ±0.05：单个种子的准确率随训练的舍入而变
print(" r | 可训练参数 | 公式 | 测试准确率（种子 0）")
acc_rank = {}
for r in [1, 2, 4, 8, 16]:
    acc_rank[r], n_train = finetune(0, "lora", r=r)
    formula = r * (64 + 128) + r * (128 + 128) + (128 * 5 + 5)
    assert n_train == formula
    print(f"{r:3d} | {n_train:6d} | {formula:6d} | {acc_rank[r]:.3f}")
# 设计时种子 0–4：秩 1 在 0.911 与 0.956 之间，秩 2 到 16 在 0.95 与 0.978 之间、每个种子内相差不超过 0.028。
# 下限与界各留约 0.01–0.03 的余量；秩 1 也远高于只训练输出层（正文种子 0 为 0.844）
high = [acc_rank[r] for r in [2, 4, 8, 16]]
assert acc_rank[1] >= 0.88 and min(high) >= 0.94 and max(high) - min(high) <= 0.04
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 容差 ±0.05：单个种子的准确率随训练的舍入而变
print("seed | 从零训练 | LoRA r=4 | 全量微调")
res = {"scratch": [], "lora": [], "full": []}
for seed in [0, 1, 2]:
    for mode in res:
        res[mode].append(finetune(seed, mode)[0])
    print(f"{seed:4d} | {res['scratch'][-1]:.3f} | {res['lora'][-1]:.3f} | {res['full'][-1]:.3f}")
print("平均 | " + " | ".join(f"{np.mean(v):.3f}" for v in res.values()))
# 设计时的 5 个种子：从零训练每次都高于全量微调 0.006–0.027。断言只用种子 0–2 的平均值与 2 个点的余量
assert np.mean(res["scratch"]) >= max(np.mean(res["full"]), np.mean(res["lora"]))   # 种子 0–2 平均：从零训练不低于两种微调
assert all(s >= max(lo, f) - 0.02 for s, lo, f in zip(res["scratch"], res["lora"], res["full"]))
# --8<-- [end:ex3]

# --8<-- [start:ex4]
# 容差 ±0.5：梯度的大小取决于预训练出的权重
def first_grads(init: str) -> tuple[float, float]:
    """套一个 LoRA 旁路，按 init 设定 A、B，算一次梯度，返回 A 与 B 梯度的最大绝对值。"""
    torch.manual_seed(0)
    m = copy.deepcopy(pre)
    m[2] = layer = LoRALinear(m[2], r=4, alpha=8.0)
    with torch.no_grad():
        if init == "A=0, B=0":
            layer.A.zero_()
        elif init == "A=0, B 随机":
            layer.A.zero_()
            layer.B.normal_()
    loss = nn.functional.cross_entropy(m(Xt_tr), yt_tr)
    loss.backward()
    return layer.A.grad.abs().max().item(), layer.B.grad.abs().max().item()


for init in ["A 随机, B=0", "A=0, B=0", "A=0, B 随机"]:
    gA, gB = first_grads(init)
    print(f"{init}：|∂L/∂A| 最大 {gA:.2e}，|∂L/∂B| 最大 {gB:.2e}")
    if init == "A=0, B=0":
        assert gA == 0 and gB == 0                                # 两个梯度都恰好为 0：永远不动
    else:
        assert max(gA, gB) > 1e-4                                 # 至少一个因子有梯度，旁路可以长出来
# --8<-- [end:ex4]
