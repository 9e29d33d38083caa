# --8<-- [start:imports]
import copy

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn.utils import prune

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 与正文相同的数据、模型与训练
X_all, y_all = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.2, stratify=y_all, random_state=0)
mu, sigma = X_tr.mean(axis=0), X_tr.std(axis=0)
sigma[sigma == 0] = 1.0
X_tr = torch.tensor((X_tr - mu) / sigma, dtype=torch.float32, device=device)
X_te = torch.tensor((X_te - mu) / sigma, dtype=torch.float32, device=device)
y_tr, y_te = torch.tensor(y_tr, device=device), torch.tensor(y_te, device=device)


def make_mlp(seed: int, hidden: int = 128) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10)).to(device)


def train(model: nn.Module, epochs: int, seed: int, lr: float = 1e-3) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y_tr), generator=gen).to(device)
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            loss = nn.functional.cross_entropy(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model: nn.Module) -> float:
    return (model(X_te).argmax(dim=1) == y_te).float().mean().item()


SEEDS = [0, 1, 2]
dense = {seed: train(make_mlp(seed), epochs=20, seed=seed) for seed in SEEDS}
# --8<-- [end:imports]

# --8<-- [start:ex1]
acc = {}
for seed in SEEDS:
    for s in [0.8, 0.9]:
        g = copy.deepcopy(dense[seed])
        prune.global_unstructured([(g[i], "weight") for i in (0, 2, 4)], pruning_method=prune.L1Unstructured,
                                  amount=s)
        u = copy.deepcopy(dense[seed])
        for i in (0, 2, 4):
            prune.l1_unstructured(u[i], name="weight", amount=s)              # 每层各剪 s
        acc["全局", seed, s], acc["逐层", seed, s] = accuracy(g), accuracy(u)
        zeros = [(u[i].weight == 0).float().mean().item() for i in (0, 2, 4)]
        assert all(abs(z - s) < 1e-3 for z in zeros)                       # 逐层：每层都正好是 s
for s in [0.8, 0.9]:
    for how in ["全局", "逐层"]:
        print(f"稀疏度 {s:.0%}，{how}：", [round(acc[how, seed, s], 3) for seed in SEEDS])
assert all(acc["全局", seed, 0.8] > acc["逐层", seed, 0.8] + 0.05 for seed in SEEDS)
assert acc["逐层", 1, 0.9] > acc["全局", 1, 0.9]                          # 90%：种子 1 上逐层的反而更高
assert all(max(acc["全局", seed, 0.9], acc["逐层", seed, 0.9]) < 0.7 for seed in SEEDS)
# --8<-- [end:ex1]

# --8<-- [start:ex2]
W = torch.randn(128, 128, generator=torch.Generator().manual_seed(0)).to(device)
dense_bytes = W.numel() * 4
print("稀疏度 | CSR(int64) / 稠密 | CSR(int32) / 稠密")
ratios = {}
for s in [0.5, 0.6, 0.7, 0.8, 0.9]:
    Ws = W.flatten().clone()
    Ws[torch.argsort(Ws.abs())[:round(s * Ws.numel())]] = 0                 # 幅值最小的 s 置零
    Ws = Ws.view_as(W)
    c64 = Ws.to_sparse_csr()
    c32 = torch.sparse_csr_tensor(c64.crow_indices().int(), c64.col_indices().int(), c64.values(), c64.shape,
                                  check_invariants=True)
    b64, b32 = (sum(t.numel() * t.element_size() for t in [c.values(), c.col_indices(), c.crow_indices()])
                for c in (c64, c32))
    nnz = c64.values().numel()
    assert b64 == 12 * nnz + 8 * 129 and b32 == 8 * nnz + 4 * 129          # 公式
    assert torch.equal(c32.to_dense(), Ws)
    ratios[s] = (b64 / dense_bytes, b32 / dense_bytes)
    print(f"{s:6.0%} | {ratios[s][0]:.3f} | {ratios[s][1]:.3f}")
assert ratios[0.6][0] > 1 > ratios[0.7][0]                                 # int64：2/3 附近才打平
assert ratios[0.5][1] > 1 > ratios[0.6][1]                                 # int32：1/2 附近才打平
# --8<-- [end:ex2]

# --8<-- [start:ex3]
model = copy.deepcopy(dense[0])
prune.ln_structured(model[0], name="weight", amount=0.5, n=2, dim=0)      # 只剪权重，偏置原样保留
cut = model[0].weight_mask[:, 0] == 0                                     # 被剪掉的 64 个神经元
keep = (~cut).nonzero().squeeze(1)
const = torch.relu(model[0].bias.detach()[cut])                            # 它们的输出恒为 ReLU(b_j)
print(f"被剪掉的神经元中偏置为正（输出不为零）的有 {(const > 0).sum().item()} 个")


def small_net(fold: bool) -> nn.Sequential:
    """删掉被剪的 64 个神经元：第 1 层只留 keep 这些行，第 2 层只留对应的列。"""
    W2, b2 = dense[0][2].weight.detach(), dense[0][2].bias.detach()
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 128), nn.ReLU(),
                        copy.deepcopy(dense[0][4])).to(device)
    with torch.no_grad():
        net[0].weight.copy_(model[0].weight[keep])
        net[0].bias.copy_(model[0].bias[keep])
        net[2].weight.copy_(W2[:, keep])
        net[2].bias.copy_(b2 + W2[:, cut] @ const if fold else b2)         # 折叠：常数输出并进下一层偏置
    return net


with torch.no_grad():
    ref = model(X_te)
    gap_drop = (small_net(fold=False)(X_te) - ref).abs().max().item()
    gap_fold = (small_net(fold=True)(X_te) - ref).abs().max().item()
acc_mask, acc_drop, acc_fold = accuracy(model), accuracy(small_net(False)), accuracy(small_net(True))
print(f"直接删掉：与带掩码模型的 logit 最大差 {gap_drop:.2f}；折叠偏置后：{gap_fold:.1e}")
print(f"准确率：带掩码 {acc_mask:.3f}，直接删掉 {acc_drop:.3f}，折叠后 {acc_fold:.3f}")
assert gap_drop > 0.1 and gap_fold < 1e-5 and acc_fold == acc_mask
# --8<-- [end:ex3]
