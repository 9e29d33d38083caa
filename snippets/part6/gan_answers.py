# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 判别器给假样本的概率 D = σ(a)。两种生成器损失对 logit a 的梯度：
#   饱和 log(1 − σ(a)) → −σ(a) = −D；非饱和 −log σ(a) → −(1 − σ(a)) = −(1 − D)
d = torch.tensor([0.001, 0.01, 0.1, 0.5, 0.9], dtype=torch.float64, device=device)
a = torch.log(d / (1 - d)).requires_grad_()
g_sat = torch.autograd.grad(F.logsigmoid(-a).sum(), a)[0]
g_ns = torch.autograd.grad(-F.logsigmoid(a).sum(), a)[0]
print("D(G(z))   饱和      非饱和    比值")
for di, gs, gn in zip(d.tolist(), g_sat.tolist(), g_ns.tolist()):
    print(f"{di:7.3f}  {gs:8.4f}  {gn:8.4f}  {gn / gs:8.1f}")
assert torch.allclose(g_ns / g_sat, (1 - d) / d, rtol=1e-10)    # 比值正好是 (1 − D)/D
assert (g_sat < 0).all() and (g_ns < 0).all()                    # 方向相同：都把 logit 往上推
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# p_data = N(0, 1)，p_g = N(θ, 1)。D 取最优时生成器面对的是 2·JSD − log 4；看 JSD 与它对 θ 的导数
xs = torch.linspace(-30, 50, 16001, dtype=torch.float64, device=device)
step = (xs[1] - xs[0]).item()


def jsd(theta):
    lp = -0.5 * xs ** 2 - 0.5 * math.log(2 * math.pi)
    lg = -0.5 * (xs - theta) ** 2 - 0.5 * math.log(2 * math.pi)
    lm = torch.logaddexp(lp, lg) - math.log(2)
    return 0.5 * step * ((lp.exp() * (lp - lm)).sum() + (lg.exp() * (lg - lm)).sum())


print("θ      JSD       log 2 − JSD   dJSD/dθ")
grads = []
for t0 in [0.5, 2.0, 4.0, 8.0, 16.0]:
    theta = torch.tensor(t0, dtype=torch.float64, device=device, requires_grad=True)
    j = jsd(theta)
    g = torch.autograd.grad(j, theta)[0].item()
    grads.append(g)
    print(f"{t0:5.1f}  {j.item():.6f}  {math.log(2) - j.item():.2e}   {g:.2e}")
assert all(g1 > g2 for g1, g2 in zip(grads[1:], grads[2:]))      # θ ≥ 2 之后导数单调变小
assert grads[-1] < 1e-10 and abs(jsd(torch.tensor(16.0, device=device)).item() - math.log(2)) < 1e-10
# --8<-- [end:ex2]
