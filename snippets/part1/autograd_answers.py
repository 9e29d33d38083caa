# --8<-- [start:imports]
import warnings

import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成再搬到 device，CPU/GPU 结果一致
# --8<-- [end:imports]


# --8<-- [start:ex1]
def scaled_sigmoid(factor: float):
    """前向是 sigmoid，反向把正确的导数乘以 (1 + factor)：相对误差恰为 factor。"""

    class ScaledSigmoid(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            s = 1 / (1 + torch.exp(-x))
            ctx.save_for_backward(s)
            return s

        @staticmethod
        def backward(ctx, grad_out):
            (s,) = ctx.saved_tensors
            return grad_out * s * (1 - s) * (1 + factor)

    return ScaledSigmoid.apply


x1 = torch.randn(8, generator=gen, dtype=torch.float64).to(device).requires_grad_()
s1 = torch.sigmoid(x1.detach())
J = s1 * (1 - s1)                                   # 真导数（雅可比的对角元）
accepted = {}
for factor in (1e-4, 1e-2):
    accepted[factor] = gradcheck(scaled_sigmoid(factor), (x1,), raise_exception=False)
    ratio = factor * J / (1e-5 + 1e-3 * J)          # 判据左边 |J_ana - J_num| ≈ factor·J 与右边之比
    print(f"相对误差 {factor:.0e}：gradcheck 通过 {accepted[factor]}，"
          f"左边/右边 在 {ratio.min().item():.3f} 到 {ratio.max().item():.3f} 之间")
print(f"在 σ' 取最大值 0.25 的点，能通过的最大相对误差：{1e-3 + 1e-5 / 0.25:.2e}")
assert accepted[1e-4] is True and accepted[1e-2] is False
assert (1e-4 * J / (1e-5 + 1e-3 * J)).max() < 1 < (1e-2 * J / (1e-5 + 1e-3 * J)).min()
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def my_sigmoid(x):
    return scaled_sigmoid(0.0)(x)                   # 正确的反向（factor = 0）


x32 = x1.detach().float().requires_grad_()          # 同样的 8 个点，改成 float32
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ok32 = gradcheck(my_sigmoid, (x32,), raise_exception=False)
print(f"float32、eps=1e-6：gradcheck 通过 {ok32}")
print("警告：", str(caught[0].message).split(".")[0])

u = torch.finfo(torch.float32).eps / 2              # float32 的单位舍入
errors, passed = {}, {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")                 # 同一条警告上面已经看过
    for h in (1e-6, 1e-4, 1e-3, 1e-2):
        with torch.no_grad():
            numeric = (torch.sigmoid(x32 + h) - torch.sigmoid(x32 - h)) / (2 * h)
        errors[h] = (numeric.double() - J).abs().max().item()   # 与 float64 的真导数比较
        passed[h] = gradcheck(my_sigmoid, (x32,), eps=h, raise_exception=False)
        print(f"h = {h:.0e}：中心差分最大误差 {errors[h]:.1e}（u/h = {u / h:.1e}），gradcheck 通过 {passed[h]}")
assert ok32 is False and "not a double precision" in str(caught[0].message)
assert errors[1e-6] > 1e-2 and errors[1e-3] < 1e-4           # 舍入误差约 u/h，h 增大时变小
assert passed[1e-6] is False and passed[1e-3] is True
# --8<-- [end:ex2]

# --8<-- [start:ex3]
n, d, m = 32, 5, 3
X = torch.randn(n, d, generator=gen, dtype=torch.float64).to(device)
Y = torch.randn(n, m, generator=gen, dtype=torch.float64).to(device)
W = torch.randn(d, m, generator=gen, dtype=torch.float64).to(device).requires_grad_()
b = torch.zeros(m, dtype=torch.float64, device=device, requires_grad=True)

Y_hat = X @ W + b
loss = ((Y_hat - Y) ** 2).sum(dim=1).mean()         # 每个样本的平方误差之和，再对样本取平均
loss.backward()
with torch.no_grad():
    R = Y_hat - Y
    grad_W = 2 / n * X.T @ R                        # 分母从 nm 变成 n
    grad_b = 2 / n * R.sum(dim=0)
    mse = F.mse_loss(Y_hat, Y)                      # 原来的损失：对 n*m 个元素取平均
same = torch.allclose(loss, m * mse, rtol=1e-12, atol=0)
print(f"新损失 {loss.item():.6f}，原损失 {mse.item():.6f}，新损失 = {m} × 原损失：{same}")
err = max((W.grad - grad_W).abs().max().item(), (b.grad - grad_b).abs().max().item())
print(f"W、b 梯度与闭式解 2/n·XᵀR、2/n·Rᵀ1 的最大误差 <= 1e-12：{err <= 1e-12}")
assert same and err <= 1e-12
# --8<-- [end:ex3]


# --8<-- [start:ex4]
class MySoftplus(torch.autograd.Function):
    """softplus(x) = ln(1 + e^x)，导数是 σ(x)。"""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))   # 稳定写法：e 的指数总 <= 0

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * torch.sigmoid(x)


x4 = torch.randn(8, generator=gen, dtype=torch.float64).to(device).requires_grad_()
ok4 = gradcheck(MySoftplus.apply, (x4,))
out = MySoftplus.apply(x4)
(g4,) = torch.autograd.grad(out.sum(), x4)
ref = F.softplus(x4)
(gref,) = torch.autograd.grad(ref.sum(), x4)
err4 = max((out - ref).abs().max().item(), (g4 - gref).abs().max().item())
print(f"gradcheck(MySoftplus)：{ok4}；与 F.softplus 的前向、梯度最大误差 <= 1e-15：{err4 <= 1e-15}")

big = torch.tensor([-1000.0, 0.0, 1000.0], dtype=torch.float64, device=device)
naive = torch.log(1 + torch.exp(big))               # 直接照公式：e^1000 溢出成 inf
print("直接写 ln(1 + e^x)：", naive.tolist())
print("稳定写法          ：", MySoftplus.apply(big).tolist())
assert ok4 and err4 <= 1e-15
assert torch.isinf(naive[2]) and torch.equal(MySoftplus.apply(big), F.softplus(big))
# --8<-- [end:ex4]
