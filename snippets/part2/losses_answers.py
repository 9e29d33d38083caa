# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = torch.float64

# 与正文 setup 之后各节相同的随机数序列：同一个生成器、同样的调用顺序，得到正文里的 pred、z、y、logits、t
gen = torch.Generator().manual_seed(0)
pred = torch.randn(8, 3, generator=gen, dtype=f64).to(device)                  # mse 一节
target = torch.randn(8, 3, generator=gen, dtype=f64).to(device)
z = 3 * torch.randn(10, generator=gen, dtype=f64).to(device)                    # bce 一节
y = torch.randint(0, 2, (10,), generator=gen).to(device=device, dtype=f64)
N, K = 16, 5                                                                     # ce 一节
logits = 2 * torch.randn(N, K, generator=gen, dtype=f64).to(device)
t = torch.randint(0, K, (N,), generator=gen).to(device)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()
# --8<-- [end:imports]

# --8<-- [start:ex1]
grid64 = torch.arange(0.0, 60.0, 0.5, dtype=f64, device=device)
z_one64 = grid64[torch.sigmoid(grid64) == 1.0][0].item()
print(f"float64：σ(z) == 1.0 最早出现在 z = {z_one64:.1f}（步长 0.5）；"
      f"1 + e^(-z) 在 z >= 53 ln 2 = {53 * math.log(2):.2f} 时舍入为 1")

zl = torch.tensor([-100.0, -50.0, -20.0, 20.0, 50.0, 100.0], dtype=f64, device=device, requires_grad=True)
yl = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=f64, device=device)
naive = F.binary_cross_entropy(torch.sigmoid(zl), yl, reduction="none")    # float64 的 sigmoid + BCELoss
naive.sum().backward()
exact = F.binary_cross_entropy_with_logits(zl.detach(), yl, reduction="none")   # 参照值（约等于 |z|）
true_grad = torch.sigmoid(zl.detach()) - yl                                 # 真实梯度 σ(z) - y，大小约为 1
print("    z    y   真实损失  sigmoid+BCELoss  |梯度|(朴素)  损失对  梯度对")
loss_ok = (naive.detach() - exact).abs() <= 1e-6 * exact
grad_ok = (zl.grad - true_grad).abs() <= 1e-6
for i in range(len(zl)):
    print(f"{zl[i].item():6.0f} {yl[i].item():3.0f} {exact[i].item():10.4f} {naive[i].item():16.4f} "
          f"{abs(zl.grad[i].item()):12.4f}  {str(loss_ok[i].item()):>6}  {str(grad_ok[i].item()):>6}")
assert z_one64 == 37.0 and 36.5 < 53 * math.log(2) < 37.0
assert loss_ok.tolist() == [True, True, True, True, False, True]     # 只有 z = 50 的损失仍被截断成 100
assert grad_ok.tolist() == [False, False, True, True, False, False]  # 只有 z = ±20 的梯度变对了
# --8<-- [end:ex1]

# --8<-- [start:ex2]
Z2 = torch.stack([z, torch.zeros_like(z)], dim=1)         # (N, 2)：logit 取 (z, 0)
t2 = (1 - y).long()                                        # y = 1 -> 第 0 类，y = 0 -> 第 1 类
for red in ["mean", "sum", "none"]:
    ce = F.cross_entropy(Z2, t2, reduction=red)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction=red)
    print(f"reduction={red:<4}：CE((z, 0)) 与 BCEWithLogits 的最大差 <= 1e-12：{max_diff(ce, bce) <= 1e-12}")
    assert max_diff(ce, bce) <= 1e-12
print(f"softmax((z, 0)) 的第 0 列与 σ(z) 的最大差 <= 1e-15：{max_diff(torch.softmax(Z2, dim=1)[:, 0], torch.sigmoid(z)) <= 1e-15}")
assert max_diff(torch.softmax(Z2, dim=1)[:, 0], torch.sigmoid(z)) <= 1e-15
# --8<-- [end:ex2]

# --8<-- [start:ex3]
eps_ls = 0.1
Q = (1 - eps_ls) * F.one_hot(t, K).to(f64) + eps_ls / K   # 平滑后的目标分布 (N, K)，每行和为 1
soft = F.cross_entropy(logits, Q)                          # 目标是 (N, K) 的概率矩阵
smoothed = F.cross_entropy(logits, t, label_smoothing=eps_ls)
print(f"软标签 Q：{soft.item():.4f}，label_smoothing=0.1：{smoothed.item():.4f}，"
      f"差 <= 1e-12：{abs(soft.item() - smoothed.item()) <= 1e-12}")
assert abs(soft.item() - smoothed.item()) <= 1e-12 and torch.allclose(Q.sum(dim=1), torch.ones(N, dtype=f64, device=device))
# --8<-- [end:ex3]

# --8<-- [start:ex4]
b = 2.0                                                     # 拉普拉斯分布的尺度
y_hat = pred.clone().requires_grad_()                       # 预测 (8, 3)，target 是目标
nll = -torch.distributions.Laplace(y_hat, b).log_prob(target).mean()
l1 = F.l1_loss(y_hat, target)                               # mean |y_hat - y|
print(f"拉普拉斯 NLL = {nll.item():.4f}，L1/b + ln(2b) = {(l1 / b + math.log(2 * b)).item():.4f}")
assert abs(nll.item() - (l1.item() / b + math.log(2 * b))) <= 1e-12

(g_l1,) = torch.autograd.grad(l1, y_hat)
(g_mse,) = torch.autograd.grad(F.mse_loss(y_hat, target), y_hat)
resid = (y_hat - target).detach()
print(f"L1 的梯度 × 元素个数：取值 {sorted(set((g_l1 * resid.numel()).flatten().tolist()))}，"
      f"等于 sign(ŷ - y)：{torch.equal(g_l1 * resid.numel(), torch.sign(resid))}")
print(f"残差的绝对值在 [{resid.abs().min().item():.4f}, {resid.abs().max().item():.4f}]；"
      f"MSE 梯度的大小随之在 [{g_mse.abs().min().item():.4f}, {g_mse.abs().max().item():.4f}]，"
      f"L1 梯度的大小恒为 1/{resid.numel()}")
assert torch.equal(g_l1 * resid.numel(), torch.sign(resid))            # 只看符号，与误差大小无关
assert torch.allclose(g_mse, 2 * resid / resid.numel(), rtol=1e-12)    # MSE 的梯度与误差成正比

# 最优的常数预测：MSE 取均值，L1 取中位数；一个离群点把均值拉走，中位数几乎不动
data = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=f64, device=device)
c = torch.linspace(0, 110, 110001, dtype=f64, device=device)         # 候选的常数预测，步长 0.001
best_mse = c[((data[None] - c[:, None]) ** 2).mean(dim=1).argmin()].item()
best_l1 = c[(data[None] - c[:, None]).abs().mean(dim=1).argmin()].item()
print(f"数据 {data.tolist()}：MSE 最优常数 {best_mse:.3f}（均值 {data.mean().item():.3f}），"
      f"L1 最优常数 {best_l1:.3f}（中位数 {data.median().item():.3f}）")
assert abs(best_mse - data.mean().item()) < 1e-3 and abs(best_l1 - data.median().item()) < 1e-3
# --8<-- [end:ex4]
