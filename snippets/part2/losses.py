# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 数据一致
f64 = torch.float64                     # 比较实现时一律用 float64


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """两个张量逐元素之差的最大绝对值。"""
    return (a - b).abs().max().item()
# --8<-- [end:setup]


# --8<-- [start:mse]
def my_mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    sq = (pred - target) ** 2                 # 逐元素平方误差
    if reduction == "mean":
        return sq.mean()                      # 对所有元素取平均
    if reduction == "sum":
        return sq.sum()
    return sq                                 # "none"：不汇总


pred = torch.randn(8, 3, generator=gen, dtype=f64).to(device)
target = torch.randn(8, 3, generator=gen, dtype=f64).to(device)
for red in ["mean", "sum", "none"]:
    err = max_diff(my_mse(pred, target, red), F.mse_loss(pred, target, reduction=red))
    print(f"MSE reduction={red:<4}：与 F.mse_loss 的最大差 <= 1e-12：{err <= 1e-12}")
    assert err <= 1e-12
print(f"MSE（mean）= {my_mse(pred, target).item():.4f}")
# --8<-- [end:mse]


# --8<-- [start:bce]
def my_bce(p: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """输入是概率 p ∈ (0, 1)；与 BCELoss 一样把 log 截断在 -100 以上。"""
    log_p = torch.log(p).clamp(min=-100)
    log_1mp = torch.log(1 - p).clamp(min=-100)
    loss = -(y * log_p + (1 - y) * log_1mp)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def my_bce_with_logits(z: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """输入是 logit z；用 softplus(z) - y z = max(z, 0) - y z + log(1 + e^{-|z|})，不会溢出。"""
    loss = z.clamp(min=0) - y * z + torch.log1p(torch.exp(-z.abs()))
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


z = 3 * torch.randn(10, generator=gen, dtype=f64).to(device)                  # logit
y = torch.randint(0, 2, (10,), generator=gen).to(device=device, dtype=f64)   # 0/1 标签
p = torch.sigmoid(z)
for red in ["mean", "sum", "none"]:
    e1 = max_diff(my_bce(p, y, red), F.binary_cross_entropy(p, y, reduction=red))
    e2 = max_diff(my_bce_with_logits(z, y, red), F.binary_cross_entropy_with_logits(z, y, reduction=red))
    print(f"BCE reduction={red:<4}：概率版、logit 版与 torch 的最大差 <= 1e-12：{max(e1, e2) <= 1e-12}")
    assert max(e1, e2) <= 1e-12
print(f"BCE（mean）= {my_bce(p, y).item():.4f}")
# --8<-- [end:bce]


# --8<-- [start:ce]
def my_cross_entropy(logits: torch.Tensor, t: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """logits: (N, K)，t: (N,) 类别下标。ℓ_i = logsumexp(z_i) - z_{i, t_i}。"""
    m = logits.max(dim=1, keepdim=True).values                        # 先减去每行最大值，exp 不会溢出
    lse = m.squeeze(1) + torch.log(torch.exp(logits - m).sum(dim=1))  # (N,)
    loss = lse - logits.gather(1, t[:, None]).squeeze(1)              # 取出正确类别的 logit
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


N, K = 16, 5
logits = 2 * torch.randn(N, K, generator=gen, dtype=f64).to(device)
t = torch.randint(0, K, (N,), generator=gen).to(device)
for red in ["mean", "sum", "none"]:
    err = max_diff(my_cross_entropy(logits, t, red), F.cross_entropy(logits, t, reduction=red))
    print(f"CE  reduction={red:<4}：与 F.cross_entropy 的最大差 <= 1e-12：{err <= 1e-12}")
    assert err <= 1e-12

# nn.CrossEntropyLoss 等于 log_softmax 之后接 nll_loss（负对数似然）
two_step = F.nll_loss(F.log_softmax(logits, dim=1), t)
print(f"CE（mean）= {my_cross_entropy(logits, t).item():.4f}，"
      f"log_softmax + nll_loss = {two_step.item():.4f}")
assert max_diff(nn.CrossEntropyLoss()(logits, t), two_step) <= 1e-12

# 大 logit 不会溢出：朴素地先 exp 再归一化，e^1000 溢出成 inf，概率变成 0，损失变成 inf
big = torch.tensor([[1000.0, 0.0, -1000.0]], dtype=f64, device=device)
naive = -torch.log(torch.exp(big[0, 1]) / torch.exp(big).sum())
stable = my_cross_entropy(big, torch.tensor([1], device=device))
print(f"logits=[1000, 0, -1000]，真实类别 1：朴素公式 {naive.item()}，减最大值后 {stable.item():.1f}")
assert torch.isinf(naive) and abs(stable.item() - 1000.0) <= 1e-9
# --8<-- [end:ce]

# --8<-- [start:mle]
# 三种损失都是某个分布的负对数似然（对样本取平均）
nll_gauss = -torch.distributions.Normal(pred, 1.0).log_prob(target).mean()
nll_bern = -torch.distributions.Bernoulli(logits=z).log_prob(y).mean()
nll_cat = -torch.distributions.Categorical(logits=logits).log_prob(t).mean()
e_gauss = abs(nll_gauss.item() - (0.5 * my_mse(pred, target).item() + 0.5 * math.log(2 * math.pi)))
e_bern = abs(nll_bern.item() - my_bce_with_logits(z, y).item())
e_cat = abs(nll_cat.item() - my_cross_entropy(logits, t).item())
print(f"高斯 NLL = {nll_gauss.item():.4f} = MSE/2 + ln(2π)/2：{e_gauss <= 1e-12}")
print(f"伯努利 NLL = {nll_bern.item():.4f} = BCE：{e_bern <= 1e-12}")
print(f"类别分布 NLL = {nll_cat.item():.4f} = CE：{e_cat <= 1e-12}")
assert max(e_gauss, e_bern, e_cat) <= 1e-12
# --8<-- [end:mle]

# --8<-- [start:stability]
# 普通大小的 logit：两种写法一致（float32，模型训练时的常用精度）
zm = 3 * torch.randn(1000, generator=gen).to(device)
ym = torch.randint(0, 2, (1000,), generator=gen).float().to(device)
gap = abs(nn.BCEWithLogitsLoss()(zm, ym).item() - nn.BCELoss()(torch.sigmoid(zm), ym).item())
print(f"|logit| 适中（1000 个，标准差 3）：两种写法之差 <= 1e-6：{gap <= 1e-6}")
assert gap <= 1e-6

# float32 里 σ(z) 从多大的 z 起被舍入成 1？
grid = torch.arange(0.0, 40.0, 0.5, device=device)
z_one = grid[torch.sigmoid(grid) == 1.0][0].item()
print(f"float32：σ(z) == 1.0 最早出现在 z = {z_one:.1f}（步长 0.5），此时 log(1 - σ(z)) = -inf")
assert 15.0 <= z_one <= 19.0

# 很大的 logit，且预测「自信地错了」：真实损失应等于 |z|
zl = torch.tensor([-100.0, -50.0, -20.0, 20.0, 50.0, 100.0], device=device, requires_grad=True)
yl = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], device=device)
zl2 = zl.detach().clone().requires_grad_()
naive = F.binary_cross_entropy(torch.sigmoid(zl), yl, reduction="none")    # sigmoid + BCELoss
fused = F.binary_cross_entropy_with_logits(zl2, yl, reduction="none")      # BCEWithLogitsLoss
naive.sum().backward()
fused.sum().backward()
exact = my_bce_with_logits(zl.detach().double(), yl.double(), reduction="none")  # float64 参照值
print("    z    y   真实损失  sigmoid+BCELoss  BCEWithLogits  |梯度|(朴素)  |梯度|(WithLogits)")
for i in range(len(zl)):
    print(f"{zl[i].item():6.0f} {yl[i].item():3.0f} {exact[i].item():10.4f} {naive[i].item():16.4f} "
          f"{fused[i].item():14.4f} {abs(zl.grad[i].item()):12.4f} {abs(zl2.grad[i].item()):18.4f}")

assert torch.allclose(fused.double(), exact, rtol=1e-6, atol=0)             # 每一项都精确
assert naive[3].item() == 100.0 and naive[4].item() == 100.0               # 真实值 20、50，却被截断成 100
assert naive.max().item() <= 100.0                                          # log 截断在 -100：损失不超过 100
assert torch.allclose(zl2.grad, torch.sigmoid(zl.detach()) - yl, atol=1e-6)  # 梯度 σ(z) - y = ±1
assert zl.grad[[0, 1, 3, 4, 5]].abs().max().item() < 1e-6                  # 朴素写法：梯度几乎为 0

# BCELoss 的反向对 p 的梯度是 (p - y) / max(p(1 - p), 1e-12)：分母被截断
pt = torch.tensor([1e-13], dtype=f64, device=device, requires_grad=True)
F.binary_cross_entropy(pt, torch.ones_like(pt)).backward()
print(f"p = 1e-13、y = 1：BCELoss 对 p 的梯度 {pt.grad.item():.1e}，精确值 -1/p = {-1 / 1e-13:.1e}")
assert abs(pt.grad.item() / -1e12 - 1) <= 1e-6    # 截断值 1e-12（相对误差 1e-6 内）
p50 = torch.sigmoid(zl.detach()[1]).item()           # z = -50：σ(z) 还能表示
print(f"z = -50：σ(z) = {p50:.1e}，朴素写法的梯度 {zl.grad[1].item():.1e}")
assert 0 < p50 < 1e-20 and 0 < abs(zl.grad[1].item()) < 1e-9
# --8<-- [end:stability]

# --8<-- [start:grad]
Z = logits.clone().requires_grad_()                 # (N, K) logit
loss = F.cross_entropy(Z, t)                        # reduction="mean"
loss.backward()
with torch.no_grad():
    P = torch.softmax(Z, dim=1)                     # (N, K) 预测概率
    Y = F.one_hot(t, K).to(f64)                     # (N, K) 独热标签
    grad_formula = (P - Y) / N
err_mean = max_diff(Z.grad, grad_formula)

Z.grad = None
F.cross_entropy(Z, t, reduction="sum").backward()   # sum 时没有 1/N
err_sum = max_diff(Z.grad, P - Y)

zb = z.clone().requires_grad_()                     # 二分类：BCEWithLogits 的梯度是 (σ(z) - y) / N
F.binary_cross_entropy_with_logits(zb, y).backward()
err_bce = max_diff(zb.grad, (torch.sigmoid(z) - y) / len(z))
print(f"CE（mean）：autograd 与 (P - Y)/N 的最大差 <= 1e-14：{err_mean <= 1e-14}")
print(f"CE（sum） ：autograd 与 P - Y 的最大差 <= 1e-14：{err_sum <= 1e-14}")
print(f"BCE（mean）：autograd 与 (σ(z) - y)/N 的最大差 <= 1e-14：{err_bce <= 1e-14}")
print(f"梯度每行之和的最大绝对值 <= 1e-14：{Z.grad.sum(dim=1).abs().max().item() <= 1e-14}")
assert max(err_mean, err_sum, err_bce) <= 1e-14
assert Z.grad.sum(dim=1).abs().max().item() <= 1e-14   # Σ_k (p_k - y_k) = 1 - 1 = 0
# --8<-- [end:grad]

# --8<-- [start:smoothing]
eps_ls = 0.1
Q = (1 - eps_ls) * F.one_hot(t, K).to(f64) + eps_ls / K        # 平滑后的目标分布 (N, K)
my_ls = -(Q * F.log_softmax(logits, dim=1)).sum(dim=1).mean()  # 对软标签的交叉熵
torch_ls = F.cross_entropy(logits, t, label_smoothing=eps_ls)
Zs = logits.clone().requires_grad_()
F.cross_entropy(Zs, t, label_smoothing=eps_ls).backward()
err_ls = abs(my_ls.item() - torch_ls.item())
err_ls_grad = max_diff(Zs.grad, (torch.softmax(logits, dim=1) - Q) / N)
print(f"label_smoothing=0.1：CE = {torch_ls.item():.4f}（不平滑时 {F.cross_entropy(logits, t).item():.4f}）")
print(f"与自己的实现之差 <= 1e-12：{err_ls <= 1e-12}，梯度等于 (P - Q)/N：{err_ls_grad <= 1e-14}")
assert err_ls <= 1e-12 and err_ls_grad <= 1e-14
# --8<-- [end:smoothing]

# --8<-- [start:figure]
# 真实标签 y = 1，预测概率 p = σ(z)；比较 BCE 与「对概率做 MSE」的损失和对 logit 的梯度
pz = torch.linspace(0.001, 0.999, 500, dtype=f64, device=device)
zz = torch.log(pz / (1 - pz)).requires_grad_()     # logit(p)，使 σ(zz) = pz
bce_curve = F.binary_cross_entropy_with_logits(zz, torch.ones_like(zz), reduction="none")
mse_curve = (torch.sigmoid(zz) - 1) ** 2
(g_bce,) = torch.autograd.grad(bce_curve.sum(), zz)
(g_mse,) = torch.autograd.grad(mse_curve.sum(), zz)
assert max_diff(g_bce, pz - 1) <= 1e-12                          # dℓ/dz = p - 1
assert max_diff(g_mse, 2 * (pz - 1) * pz * (1 - pz)) <= 1e-12    # 多了一个因子 σ'(z) = p(1 - p)

pn = pz.cpu().numpy()
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
axes[0].plot(pn, bce_curve.detach().cpu().numpy(), label="交叉熵  −log p")
axes[0].plot(pn, mse_curve.detach().cpu().numpy(), label="MSE  (1 − p)²")
axes[0].set_ylim(0, 5)
axes[0].set_ylabel("损失")
axes[1].plot(pn, g_bce.abs().cpu().numpy(), label="交叉熵  |p − 1|")
axes[1].plot(pn, g_mse.abs().cpu().numpy(), label="MSE  |2(p − 1)p(1 − p)|")
axes[1].set_ylabel("对 logit z 的梯度大小")
for ax in axes:
    ax.set_xlabel("正确类别的预测概率 p")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
fig.savefig("losses_curves.svg", bbox_inches="tight")
plt.close(fig)

i = 0   # p = 0.001：预测完全错了
print(f"p = {pn[i]:.3f} 时：交叉熵梯度 {g_bce[i].abs().item():.4f}，MSE 梯度 {g_mse[i].abs().item():.4f}")
assert g_bce[i].abs().item() > 0.99 and g_mse[i].abs().item() < 0.002
# --8<-- [end:figure]
