# --8<-- [start:setup]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.autograd.gradcheck import GradcheckError

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数一律在 CPU 上生成再搬到 device，CPU/GPU 结果一致


def raises(fn) -> bool:
    """运行 fn()，返回它是否抛出 RuntimeError（用来断言「这样写会报错」）。"""
    try:
        fn()
    except RuntimeError:
        return True
    return False
# --8<-- [end:setup]

# --8<-- [start:tensors]
a = torch.tensor([[1, 2, 3], [4, 5, 6]])          # 由嵌套列表创建；整数默认 int64
b = torch.zeros(2, 3)                              # 浮点默认 float32
c = torch.arange(6, dtype=torch.float64).reshape(2, 3)
r = torch.randn(2, 3, generator=gen)               # 标准正态随机数
for name, t in [("a", a), ("b", b), ("c", c), ("r", r)]:
    print(f"{name}: shape={tuple(t.shape)}, ndim={t.ndim}, dtype={t.dtype}")
print(f"a + c 的 dtype：{(a + c).dtype}")          # 类型提升：int64 与 float64 相加得 float64
print(f"a / 2 的 dtype：{(a / 2).dtype}")          # 真除法总是得到浮点数
for dt in (torch.float32, torch.float64):
    eps = torch.finfo(dt).eps                      # 机器精度 ε：1 与比 1 大的下一个浮点数之差
    print(f"{dt}：机器精度 ε = {eps:.1e}，单位舍入 u = ε/2 = {eps / 2:.1e}")
    one = torch.tensor(1.0, dtype=dt)
    assert one + eps > 1 and one + eps / 2 == 1   # 1 + ε 可以表示，1 + u 舍入回 1
assert torch.finfo(torch.float32).eps == 2.0 ** -23 and torch.finfo(torch.float64).eps == 2.0 ** -52

r = r.to(device)                                   # 搬到所选设备，数值不变
assert r.device.type == device.type and a.dtype == torch.int64 and b.dtype == torch.float32
# --8<-- [end:tensors]

# --8<-- [start:broadcast]
col = torch.arange(3.0, device=device).reshape(3, 1)   # 形状 (3, 1)
row = torch.arange(4.0, device=device)                 # 形状 (4,)，按 (1, 4) 对待
s = 10 * col + row                                     # 两者都被广播成 (3, 4)
print(f"s 的形状：{tuple(s.shape)}")
print(s.cpu())
assert torch.equal(s, 10 * col.expand(3, 4) + row.expand(3, 4))

bad_shapes = raises(lambda: torch.ones(3, device=device) + torch.ones(4, device=device))
print(f"形状 (3,) 与 (4,) 相加抛出 RuntimeError：{bad_shapes}")
assert bad_shapes
# --8<-- [end:broadcast]

# --8<-- [start:views]
base = torch.arange(6.0, device=device)
v = base.view(2, 3)          # 视图（view）：与 base 共享存储，只换了形状
cp = base.clone()            # 副本（copy）：独立的存储
v[0, 0] = 100.0              # 通过视图改写
print(f"base[0] = {base[0].item()}，cp[0] = {cp[0].item()}")

t = v.t()                    # 转置也是视图，但元素在内存中不再按行连续
print(f"t 的形状 {tuple(t.shape)}，步幅 {t.stride()}，是否连续：{t.is_contiguous()}")
t3 = t.view(3, 1, 2)         # 不合并维度（只插入长度为 1 的维）：不要求连续
print(f"t.view(3, 1, 2) 成功，与 base 共享存储：{t3.data_ptr() == base.data_ptr()}")
view_fails = raises(lambda: t.view(6))   # 要把两维合并成一维，而它们在内存中并不首尾相接
print(f"t.view(6) 抛出 RuntimeError：{view_fails}")
flat = t.reshape(6)          # reshape 在需要时会复制
print(f"flat 与 base 共享存储：{flat.data_ptr() == base.data_ptr()}")

assert base[0].item() == 100.0 and cp[0].item() == 0.0 and view_fails
assert t.stride() == (1, 3) and t3.data_ptr() == base.data_ptr()
assert v.data_ptr() == base.data_ptr() and flat.data_ptr() != base.data_ptr()
# --8<-- [end:views]

# --8<-- [start:graph]
x1 = torch.tensor(2.0, dtype=torch.float64, device=device, requires_grad=True)
x2 = torch.tensor(5.0, dtype=torch.float64, device=device, requires_grad=True)
v1 = torch.log(x1)
v2 = x1 * x2
v3 = torch.sin(x2)
y = v1 + v2 - v3             # 前向计算的同时，PyTorch 记录下计算图
print(f"y = {y.item():.6f}")
print(f"y.grad_fn：{type(y.grad_fn).__name__}")
print(f"y.grad_fn.next_functions：{[type(fn).__name__ for fn, _ in y.grad_fn.next_functions]}")
print(f"x1 是叶子：{x1.is_leaf}，v2 是叶子：{v2.is_leaf}")

y.backward()                 # 反向遍历计算图，把 dy/dx 累加进叶子的 .grad
print(f"dy/dx1 = {x1.grad.item():.6f}，dy/dx2 = {x2.grad.item():.6f}")
assert abs(x1.grad.item() - (1 / 2 + 5)) < 1e-12                # 1/x1 + x2
assert abs(x2.grad.item() - (2 - math.cos(5))) < 1e-12          # x1 - cos(x2)
# --8<-- [end:graph]


# --8<-- [start:sin-check]
def f_elem(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * x ** 2


def df_analytic(x: torch.Tensor) -> torch.Tensor:
    return torch.cos(x) * x ** 2 + 2 * x * torch.sin(x)   # 乘积法则


x = torch.linspace(-3, 3, 7, dtype=torch.float64, device=device, requires_grad=True)
f = f_elem(x).sum()          # 标量 f(x) = sum(sin(x) * x^2)
f.backward()
with torch.no_grad():
    expected = df_analytic(x)
err_sin = (x.grad - expected).abs().max().item()


def show(t: torch.Tensor) -> str:
    return " ".join(f"{v:8.4f}" for v in t.tolist())


print("x        :", show(x.detach()))
print("autograd :", show(x.grad))
print("解析导数 :", show(expected))
print(f"最大绝对误差 <= 1e-12：{err_sin <= 1e-12}")
assert err_sin <= 1e-12
# --8<-- [end:sin-check]

# --8<-- [start:figure]
xs = torch.linspace(-6, 6, 401, dtype=torch.float64, device=device, requires_grad=True)
ys = f_elem(xs)
(g,) = torch.autograd.grad(ys.sum(), xs)     # 逐元素函数：对求和求导，就得到每一点的导数
xs_np = xs.detach().cpu().numpy()
fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.plot(xs_np, ys.detach().cpu().numpy(), color="0.6", label=r"$f(x)=x^2\sin x$")
ax.plot(xs_np, g.cpu().numpy(), color="C0", label="autograd 求得的导数")
ax.plot(xs_np[::16], df_analytic(xs.detach()).cpu().numpy()[::16], "o", color="C3",
        markersize=4, label="解析导数（每 16 点取 1 点）")
ax.set_xlabel("$x$")
ax.legend(loc="upper center", fontsize=9)
ax.grid(alpha=0.3)
fig.savefig("autograd_derivative.svg", bbox_inches="tight")
plt.close(fig)
assert (g - df_analytic(xs.detach())).abs().max().item() <= 1e-12
# --8<-- [end:figure]

# --8<-- [start:linear]
n, d, m = 32, 5, 3                          # 样本数、输入维度、输出维度
X = torch.randn(n, d, generator=gen, dtype=torch.float64).to(device)
Y = torch.randn(n, m, generator=gen, dtype=torch.float64).to(device)
W = torch.randn(d, m, generator=gen, dtype=torch.float64).to(device).requires_grad_()
b = torch.zeros(m, dtype=torch.float64, device=device, requires_grad=True)

Y_hat = X @ W + b                           # (n, d) @ (d, m) + (m,) -> (n, m)，b 被广播
loss = ((Y_hat - Y) ** 2).mean()            # 均方误差，对 n*m 个元素取平均
loss.backward()

with torch.no_grad():                       # 闭式梯度，不需要记录计算图
    R = Y_hat - Y                           # 残差 (n, m)
    grad_W = 2 / (n * m) * X.T @ R          # (d, m)
    grad_b = 2 / (n * m) * R.sum(dim=0)     # (m,)
err_W = (W.grad - grad_W).abs().max().item()
err_b = (b.grad - grad_b).abs().max().item()
same_as_torch = torch.allclose(loss, F.mse_loss(Y_hat, Y), rtol=1e-12, atol=0)
print(f"loss = {loss.item():.6f}，与 F.mse_loss 一致：{same_as_torch}")
print(f"W.grad 形状：{tuple(W.grad.shape)}，b.grad 形状：{tuple(b.grad.shape)}")
print("b.grad =", show(b.grad))
print(f"W、b 梯度与闭式解的最大误差都 <= 1e-12：{max(err_W, err_b) <= 1e-12}")
assert same_as_torch and max(err_W, err_b) <= 1e-12
# --8<-- [end:linear]

# --8<-- [start:vjp]
A = torch.randn(4, 3, generator=gen, dtype=torch.float64).to(device)
u = torch.randn(3, generator=gen, dtype=torch.float64).to(device).requires_grad_()
z = torch.tanh(A @ u)                       # 向量输出 z ∈ R^4，雅可比 J ∈ R^{4×3}
non_scalar = raises(lambda: z.backward())  # 非标量输出不能直接 backward
print(f"对非标量直接 backward 抛出 RuntimeError：{non_scalar}")
assert non_scalar

vec = torch.randn(4, generator=gen, dtype=torch.float64).to(device)
z.backward(vec)                             # 传入上游梯度 v，得到 v^T J
J = torch.autograd.functional.jacobian(lambda t: torch.tanh(A @ t), u.detach())
with torch.no_grad():
    J_analytic = (1 - z ** 2)[:, None] * A  # tanh' = 1 - tanh^2，逐行缩放 A
print(f"J 的形状：{tuple(J.shape)}，u.grad 的形状：{tuple(u.grad.shape)}")
print("u.grad =", show(u.grad))
print("v^T J  =", show(vec @ J))
assert (u.grad - vec @ J).abs().max().item() <= 1e-12
assert (J - J_analytic).abs().max().item() <= 1e-12
# --8<-- [end:vjp]

# --8<-- [start:accumulate]
w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, device=device, requires_grad=True)
for step in range(2):
    (w ** 2).sum().backward()               # 每次前向都新建一张图；梯度 2w 累加进 w.grad
    print(f"第 {step + 1} 次 backward 后 w.grad =", w.grad.tolist())
assert torch.equal(w.grad, 4 * w.detach())

w.grad.zero_()                              # 清零（优化器的 zero_grad() 默认直接设为 None）
print("zero_() 后 w.grad =", w.grad.tolist())

q = torch.exp(w).sum()
q.backward()
twice = raises(lambda: q.backward())        # 同一张图的中间结果已被释放
print(f"同一张图第二次 backward 抛出 RuntimeError：{twice}")
assert twice and torch.allclose(w.grad, torch.exp(w.detach()), rtol=0, atol=1e-15)
# --8<-- [end:accumulate]

# --8<-- [start:no-grad]
with torch.no_grad():
    p = w * 2                               # 不记录计算图
print(f"no_grad 中算出的 p.requires_grad：{p.requires_grad}")

k = w.detach()                              # 与 w 共享存储，但脱离计算图
print(f"k.requires_grad：{k.requires_grad}，与 w 共享存储：{k.data_ptr() == w.data_ptr()}")

w.grad = None
(w * w.detach()).sum().backward()           # detach 的那一份被当成常数
print("d/dw sum(w * w.detach()) =", w.grad.tolist())   # 是 w，而不是 2w
assert torch.equal(w.grad, w.detach())

outside = raises(lambda: w.sub_(0.1 * w.grad))   # 即 w -= 0.1 * w.grad，不在 no_grad 中
print(f"不在 no_grad 中原地更新叶子抛出 RuntimeError：{outside}")
assert outside
with torch.no_grad():
    w -= 0.1 * w.grad                       # 一步梯度下降的正确写法
print("更新后 w =", [round(val, 4) for val in w.tolist()])
assert torch.allclose(w.detach(), torch.tensor([0.9, -1.8, 2.7], dtype=torch.float64, device=device))
# --8<-- [end:no-grad]


# --8<-- [start:custom]
class MySigmoid(torch.autograd.Function):
    """σ(x) = 1 / (1 + e^{-x})，反向用 σ'(x) = σ(x)(1 - σ(x))。"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        s = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(s)            # 反向只需要输出 s
        return s

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_out * s * (1 - s)       # 向量-雅可比积：雅可比是对角阵


xc = torch.randn(8, generator=gen, dtype=torch.float64).to(device).requires_grad_()
ok = gradcheck(MySigmoid.apply, (xc,), eps=1e-6, atol=1e-5, rtol=1e-3)
print(f"gradcheck(MySigmoid)：{ok}")

out = MySigmoid.apply(xc)
(gx,) = torch.autograd.grad(out.sum(), xc)
ref = torch.sigmoid(xc)
(gref,) = torch.autograd.grad(ref.sum(), xc)
err_sig = max((out - ref).abs().max().item(), (gx - gref).abs().max().item())
print(f"与 torch.sigmoid 的前向、梯度最大误差都 <= 1e-15：{err_sig <= 1e-15}")
assert ok is True and err_sig <= 1e-15
# --8<-- [end:custom]


# --8<-- [start:wrong]
class WrongSigmoid(torch.autograd.Function):
    """前向正确，反向故意漏掉因子 (1 - s)。"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        s = 1 / (1 + torch.exp(-x))
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return grad_out * s                 # 错误！


bad = gradcheck(WrongSigmoid.apply, (xc,), raise_exception=False)
print(f"gradcheck(WrongSigmoid, raise_exception=False)：{bad}")
try:
    gradcheck(WrongSigmoid.apply, (xc,))
    raised = False
except GradcheckError as exc:
    raised = True
    print(f"GradcheckError：{str(exc).splitlines()[0]}")

# 自己做一遍中心差分：σ 逐元素作用，雅可比是对角阵，对角元 ≈ (σ(x+ε) - σ(x-ε)) / (2ε)
eps = 1e-6
with torch.no_grad():
    numeric = (torch.sigmoid(xc + eps) - torch.sigmoid(xc - eps)) / (2 * eps)
(g_good,) = torch.autograd.grad(MySigmoid.apply(xc).sum(), xc)
(g_bad,) = torch.autograd.grad(WrongSigmoid.apply(xc).sum(), xc)
gap_good = (g_good - numeric).abs().max().item()
gap_bad = (g_bad - numeric).abs().max().item()
print(f"正确反向与中心差分的最大差 <= 1e-8：{gap_good <= 1e-8}")
print(f"错误反向与中心差分的最大差：{gap_bad:.4f}")
assert bad is False and raised and gap_good <= 1e-8 and gap_bad > 0.1
# --8<-- [end:wrong]
