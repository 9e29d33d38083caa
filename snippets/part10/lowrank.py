# --8<-- [start:setup]
import copy
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

digits = load_digits()
X_all = torch.tensor(digits.data, dtype=torch.float32) / 16      # 像素 0..16 缩放到 [0, 1]
y_all = torch.tensor(digits.target)
idx_tr, idx_te = train_test_split(np.arange(len(y_all)), test_size=360,
                                  stratify=digits.target, random_state=0)
X_tr, y_tr = X_all[idx_tr].to(device), y_all[idx_tr].to(device)  # (1437, 64)
X_te, y_te = X_all[idx_te].to(device), y_all[idx_te].to(device)  # (360, 64)


def make_mlp(n_classes: int, hidden: int = 128) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes)).to(device)


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
          seed: int, batch_size: int = 64) -> nn.Module:
    """小批量 Adam；只更新 requires_grad 为真的参数。"""
    gen = torch.Generator().manual_seed(seed)                    # 打乱顺序在 CPU 上生成
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
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(X).argmax(1) == y).float().mean().item()
# --8<-- [end:setup]

# --8<-- [start:pretrain]
# 容差 ±0.01：训练结果的末几位随平台而变；种子 0–4 的准确率在 0.958 与 0.967 之间
net = make_mlp(10)                                                 # 64 → 128 → 128 → 10
W0 = net[2].weight.detach().clone()                               # 中间层的初始权重，画图时对照
train(net, X_tr, y_tr, epochs=15, lr=2e-3, seed=0)
acc_full = accuracy(net, X_te, y_te)
print(f"训练集 {len(y_tr)}，测试集 {len(y_te)}，测试准确率 {acc_full:.3f}")
# 种子 0–4（初始化与打乱顺序同一种子）：测试准确率 0.958–0.967；下限 0.93 留出约 3 个点
assert acc_full >= 0.93
# --8<-- [end:pretrain]

# --8<-- [start:svd]
# 容差 ±0.5：奇异值与误差来自训练出的权重；换种子时最大奇异值在 4.335 与 4.755 之间
W = net[2].weight.detach().double()                               # (out, in) = (128, 128)，float64
U, S, Vh = torch.linalg.svd(W, full_matrices=False)               # W = U diag(S) Vh
print("前 8 个奇异值:", [round(s, 3) for s in S[:8].tolist()])
print(f"最小的奇异值: {S[-1].item():.1e}")


def best_rank_r(r: int) -> torch.Tensor:
    return (U[:, :r] * S[:r]) @ Vh[:r]                            # 前 r 项之和


gen = torch.Generator().manual_seed(0)
print(" r | ‖W−W_r‖_F | √Σ_{i>r} σ_i² | ‖W−W_r‖_2 | σ_{r+1} | 随机 r 维子空间的误差")
for r in [2, 8, 32, 64]:
    E = W - best_rank_r(r)
    fro, tail = torch.linalg.matrix_norm(E).item(), S[r:].square().sum().sqrt().item()
    spec, s_next = torch.linalg.matrix_norm(E, ord=2).item(), S[r].item()
    # 对照：把 W 投影到一个随机的 r 维子空间上，同样是秩 r
    Q, _ = torch.linalg.qr(torch.randn(W.shape[1], r, generator=gen, dtype=torch.float64).to(device))
    rand = torch.linalg.matrix_norm(W - W @ Q @ Q.T).item()
    print(f"{r:3d} | {fro:8.4f} | {tail:8.4f} | {spec:8.4f} | {s_next:7.4f} | {rand:8.4f}")
    assert abs(fro - tail) <= 1e-10 * S[0].item()                 # Eckart–Young：Frobenius 误差 = 尾部奇异值
    assert abs(spec - s_next) <= 1e-10 * S[0].item()              # 谱范数误差 = σ_{r+1}
    assert rand > fro                                             # 随机的秩 r 近似更差


def energy(M: torch.Tensor, r: int) -> float:
    """前 r 个奇异值占 ‖M‖_F² 的比例。"""
    s2 = torch.linalg.svdvals(M).square()
    return (s2[:r].sum() / s2.sum()).item()


dW = W - W0.double()                                              # 训练带来的改变量
print(f"前 8 个奇异值占 ‖·‖_F² 的比例：W {energy(W, 8):.3f}，"
      f"初始化 W0 {energy(W0.double(), 8):.3f}，改变量 W−W0 {energy(dW, 8):.3f}")
# 种子 0–2：改变量 0.918–0.926，初始化 0.206–0.213
assert energy(dW, 8) >= 0.85 and energy(W0.double(), 8) <= 0.3
# --8<-- [end:svd]

# --8<-- [start:factorize]
# 容差 ±0.15：低秩时准确率对权重很敏感；种子 0–4 中秩 4 的准确率在 0.694 与 0.833 之间
def factorize(layer: nn.Linear, r: int) -> nn.Sequential:
    """把 y = W x + b 换成 y = P (Q x) + b：Q 为 (r, in)，P 为 (out, r)，P Q 是 W 的最佳秩 r 近似。"""
    U_, S_, Vh_ = torch.linalg.svd(layer.weight.detach().double(), full_matrices=False)
    root = S_[:r].sqrt()                                          # 奇异值平分给两个因子
    first = nn.Linear(layer.in_features, r, bias=False)
    second = nn.Linear(r, layer.out_features)
    with torch.no_grad():
        first.weight.copy_(root[:, None] * Vh_[:r])               # (r, in)
        second.weight.copy_(U_[:, :r] * root)                     # (out, r)
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second).to(device)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


d_in, d_out = net[2].in_features, net[2].out_features
dense = d_in * d_out + d_out                                      # 原层：权重 + 偏置
print(f"原层参数量 {dense}，测试准确率 {acc_full:.3f}")
print(" r | 相对误差 ‖W−W_r‖_F/‖W‖_F | 参数量 | 测试准确率")
ranks, accs = [1, 2, 4, 8, 16, 32, 64, 128], []
for r in ranks:
    small = copy.deepcopy(net)
    small[2] = factorize(net[2], r)
    P, Qm = small[2][1].weight.double(), small[2][0].weight.double()
    assert torch.allclose(P @ Qm, best_rank_r(r).float().double(), atol=1e-5)   # float32 存储
    count = r * (d_in + d_out) + d_out                            # 公式：r(in + out) + 偏置
    assert n_params(small[2]) == count
    rel = (torch.linalg.matrix_norm(W - best_rank_r(r)) / torch.linalg.matrix_norm(W)).item()
    accs.append(accuracy(small, X_te, y_te))
    print(f"{r:3d} | {rel:6.3f} | {count:6d} | {accs[-1]:.3f}")
r_even = d_in * d_out / (d_in + d_out)                            # r(in+out) = in·out 的解
print(f"不亏本的秩：r < {r_even:g}（r = {r_even:g} 时参数量 {int(r_even) * (d_in + d_out) + d_out}，与原层相同）")
assert int(r_even) * (d_in + d_out) + d_out == dense
assert all((r * (d_in + d_out) + d_out < dense) == (r < r_even) for r in ranks)
assert accs[-1] == acc_full                                       # 满秩分解不改变预测
# 种子 0–4 训练的网络：秩 8、16 与原网络之差都在 ±0.005 以内，秩 1 只有 0.200–0.208
assert min(accs[ranks.index(8)], accs[ranks.index(16)]) >= acc_full - 0.02   # 秩 8、16：准确率几乎不变
assert accs[ranks.index(1)] <= acc_full - 0.3                     # 秩 1：大幅下降
# --8<-- [end:factorize]

# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
ax1.semilogy(np.arange(1, 129), S.cpu().numpy(), label="训练后 W")
ax1.semilogy(np.arange(1, 129), torch.linalg.svdvals(W0.double()).cpu().numpy(), "--", label="初始化时 W0")
ax1.semilogy(np.arange(1, 129), torch.linalg.svdvals(dW).cpu().numpy(), ":", label="改变量 W−W0")
ax1.set_ylim(1e-3, 10)                                            # 改变量末尾几个奇异值约为 0，截掉
ax1.set_xlabel("序号 i")
ax1.set_ylabel("奇异值 σᵢ")
ax1.set_title("中间层 128×128 权重的奇异值")
ax1.legend()
ax2.semilogx(ranks, accs, "o-", base=2, label="秩 r 分解")
ax2.axhline(acc_full, color="gray", ls=":", label="原网络")
ax2.axvline(r_even, color="red", ls="--", label="参数量持平 r = 64")
ax2.set_xlabel("秩 r")
ax2.set_ylabel("测试准确率")
ax2.set_title("只分解中间层")
ax2.legend(loc="lower right")
fig.tight_layout()
fig.savefig("lowrank_svd.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]

# --8<-- [start:lora]
class LoRALinear(nn.Module):
    """冻结的 nn.Linear 加一个低秩旁路：y = W x + b + (alpha / r) B A x。"""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)                               # 预训练权重冻结
        self.A = nn.Parameter(torch.randn(r, base.in_features, device=device) / math.sqrt(base.in_features))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, device=device))   # B = 0：初始时旁路输出为 0
        self.scale = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T   # 先乘 A：不生成 (out, in) 的矩阵

    def merge(self) -> nn.Linear:
        """把旁路并进权重：W' = W + (alpha / r) B A，得到一个普通的 nn.Linear。"""
        merged = copy.deepcopy(self.base)
        with torch.no_grad():
            merged.weight += self.scale * self.B @ self.A
        return merged
# --8<-- [end:lora]

# --8<-- [start:source]
# 容差 ±0.01：源任务准确率随训练的末几位而变；种子 0–4 在 0.978 与 0.983 之间
src_tr, src_te = y_tr < 5, y_te < 5                               # 源任务：数字 0–4
tgt_tr, tgt_te = y_tr >= 5, y_te >= 5                             # 目标任务：数字 5–9（标签减 5）
Xs_tr, ys_tr = X_tr[src_tr], y_tr[src_tr]
Xt_tr, yt_tr = X_tr[tgt_tr], y_tr[tgt_tr] - 5
Xt_te, yt_te = X_te[tgt_te], y_te[tgt_te] - 5
torch.manual_seed(0)                                              # 上面的分解消耗过随机数，重新设种子
pre = make_mlp(5)
train(pre, Xs_tr, ys_tr, epochs=10, lr=2e-3, seed=0, batch_size=128)
acc_src = accuracy(pre, X_te[src_te], y_te[src_te])
print(f"源任务（0–4）：训练 {len(ys_tr)}，测试准确率 {acc_src:.3f}")
print(f"目标任务（5–9）：训练 {len(yt_tr)}，测试 {len(yt_te)}")
# 种子 0–4：0.978–0.983；下限 0.95
assert acc_src >= 0.95
# --8<-- [end:source]

# --8<-- [start:adapter]
R, ALPHA = 4, 8.0


def with_lora(pre: nn.Sequential, r: int = R, alpha: float = ALPHA) -> nn.Sequential:
    """复制预训练网络，两个隐藏层套上 LoRA，换一个新的 5 类输出层（它全部参与训练）。"""
    m = copy.deepcopy(pre)
    m[0], m[2] = LoRALinear(m[0], r, alpha), LoRALinear(m[2], r, alpha)
    m[4] = nn.Linear(m[4].in_features, 5).to(device)
    return m


torch.manual_seed(0)
lora = with_lora(pre)
trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
formula = R * (64 + 128) + R * (128 + 128) + (128 * 5 + 5)        # 两个旁路 r(in+out) + 新输出层
total_full = (64 * 128 + 128) + (128 * 128 + 128) + (128 * 5 + 5)  # 全量微调要训练的参数
print(f"LoRA 可训练参数 {trainable}，全量微调 {total_full}，比例 {trainable / total_full:.3f}")
assert trainable == formula
assert total_full == n_params(make_mlp(5))

with torch.no_grad():
    body_pre = pre[:4](Xt_te)                                     # 预训练网络的隐藏表示 (n, 128)
    body_lora = lora[:4](Xt_te)
print(f"初始化时 LoRA 网络与冻结网络的隐藏表示完全相同：{torch.equal(body_pre, body_lora)}")
assert torch.equal(body_pre, body_lora)                           # B = 0，旁路恰好为 0
# --8<-- [end:adapter]

# --8<-- [start:transfer]
# 容差 ±0.05：每个种子的准确率随训练的舍入而变；只训练输出层在种子间相差 0.1 以上
def finetune(seed: int, mode: str) -> tuple[float, nn.Sequential]:
    """mode：'head' 只训练新输出层；'lora' 训练旁路与输出层；'full' 训练全部参数。"""
    torch.manual_seed(seed)
    if mode == "lora":
        m = with_lora(pre)
    else:
        m = copy.deepcopy(pre)
        m[4] = nn.Linear(128, 5).to(device)
        if mode == "head":
            for p in m[:4].parameters():
                p.requires_grad_(False)
    lr = 1e-3 if mode == "full" else 1e-2                         # 参数少的两种用大一些的学习率
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=lr)
    for _ in range(100):                                          # 全批量 100 步
        loss = nn.functional.cross_entropy(m(Xt_tr), yt_tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return accuracy(m, Xt_te, yt_te), m


seeds = [0, 1, 2, 3, 4]
results = {mode: [] for mode in ["head", "lora", "full"]}
print("seed | 只训练输出层 | LoRA r=4 | 全量微调")
for seed in seeds:
    for mode in results:
        acc, model = finetune(seed, mode)
        results[mode].append(acc)
        if mode == "lora":
            last_lora = model
    print(f"{seed:4d} | {results['head'][-1]:.3f} | {results['lora'][-1]:.3f} | {results['full'][-1]:.3f}")
print("平均 | " + " | ".join(f"{np.mean(v):.3f}" for v in results.values()))
diff = np.array(results["lora"]) - np.array(results["full"])
gain = np.array(results["lora"]) - np.array(results["head"])
print(f"LoRA − 全量微调：最大绝对差 {np.abs(diff).max():.3f}，平均差 {diff.mean():+.3f}")
print(f"LoRA − 只训练输出层：最小 {gain.min():.3f}")
# 设计时跑过预训练种子 0–4 × 微调种子 0–9（50 组）：LoRA − 全量微调在 −0.039 与 +0.022 之间，
# 微调种子 0–4 的平均差在 −0.007 与 +0.009 之间；LoRA − 只训练输出层最小 0.111。下面的界都留了余量
assert np.abs(diff).max() <= 0.05 and abs(diff.mean()) <= 0.02   # 种子 0–4：LoRA 与全量微调相当
assert gain.min() >= 0.05                                         # 种子 0–4：LoRA 都明显好于只训练输出层
# --8<-- [end:transfer]

# --8<-- [start:merge]
# 容差 ±0.00001：舍入误差的大小取决于训练出的权重与计算顺序
lora_layers = [last_lora[0], last_lora[2]]
frozen_same = all(torch.equal(l.base.weight, pre[i].weight) for l, i in zip(lora_layers, [0, 2]))
print(f"训练后预训练权重逐位未变：{frozen_same}")
assert frozen_same and all(l.base.weight.grad is None for l in lora_layers)

merged = nn.Sequential(lora_layers[0].merge(), nn.ReLU(), lora_layers[1].merge(), nn.ReLU(), last_lora[4])
with torch.no_grad():
    out_lora, out_merged = last_lora(Xt_te), merged(Xt_te)
    gap32 = (out_lora - out_merged).abs().max().item()
    lora64 = copy.deepcopy(last_lora).double()                   # 同样的运算在 float64 里再做一遍
    merged64 = nn.Sequential(lora64[0].merge(), nn.ReLU(), lora64[2].merge(), nn.ReLU(), lora64[4])
    gap64 = (lora64(Xt_te.double()) - merged64(Xt_te.double())).abs().max().item()
print(f"合并后的普通 MLP：参数量 {n_params(merged)}，与 LoRA 网络输出的最大差 float32 {gap32:.1e}，float64 {gap64:.1e}")
assert n_params(merged) == total_full                             # 合并后推理时没有多余的层和参数
assert gap32 <= 1e-5 * out_lora.abs().max().item() and gap64 <= 1e-12
assert torch.equal(out_lora.argmax(1), out_merged.argmax(1))
# --8<-- [end:merge]
