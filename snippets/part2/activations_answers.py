# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ALPHA, C = 0.01, math.sqrt(2 / math.pi)


def sigmoid(x):                      # 以下六对函数与正文 define 一节相同，写得紧凑一些
    return 1 / (1 + torch.exp(-x))


def Phi(x):
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def phi(x):
    return torch.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi)


def tanh(x):
    return 2 * sigmoid(2 * x) - 1


def gelu_tanh_t(x):
    return torch.tanh(C * (x + 0.044715 * x ** 3))


ACTS = {   # 名称 -> (手写函数, 手写导数, PyTorch 内置)
    "sigmoid": (sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x)), torch.sigmoid),
    "tanh": (tanh, lambda x: 1 - tanh(x) ** 2, torch.tanh),
    "ReLU": (lambda x: torch.where(x > 0, x, torch.zeros_like(x)), lambda x: (x > 0).to(x.dtype), F.relu),
    "LeakyReLU": (lambda x: torch.where(x > 0, x, ALPHA * x),
                  lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, ALPHA)),
                  lambda x: F.leaky_relu(x, negative_slope=ALPHA)),
    "GELU": (lambda x: x * Phi(x), lambda x: Phi(x) + x * phi(x), lambda x: F.gelu(x, approximate="none")),
    "GELU(tanh)": (lambda x: 0.5 * x * (1 + gelu_tanh_t(x)),
                   lambda x: 0.5 * (1 + gelu_tanh_t(x))
                   + 0.5 * x * (1 - gelu_tanh_t(x) ** 2) * C * (1 + 3 * 0.044715 * x ** 2),
                   lambda x: F.gelu(x, approximate="tanh")),
}


def check_points(dt: torch.dtype) -> torch.Tensor:
    """与正文 check 一节相同的 1004 个点（不含 0）。"""
    x = torch.linspace(-8, 8, 1000, dtype=dt, device=device)
    return torch.cat([x, torch.tensor([-1e-3, 1e-3, -30.0, 30.0], dtype=dt, device=device)])


def compare(f, df, builtin, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """返回 (手写函数, 内置函数, 解析导数, autograd 导数) 在 x 上的值。"""
    x = x.detach().requires_grad_(True)
    y = f(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    with torch.no_grad():
        return y.detach(), builtin(x), df(x), g
# --8<-- [end:imports]

# --8<-- [start:ex1]
def silu(x):
    return x * sigmoid(x)


def d_silu(x):
    s = sigmoid(x)
    return s * (1 + x * (1 - s))                 # σ(x) + x σ(x)(1 - σ(x))


ACTS["SiLU"] = (silu, d_silu, F.silu)
y, ref, d, g = compare(*ACTS["SiLU"], check_points(torch.float64))
err_f, err_d = (y - ref).abs().max().item(), (g - d).abs().max().item()
print(f"SiLU  与 F.silu 之差 <= 1e-12：{err_f <= 1e-12}，解析导数与 autograd 之差 <= 1e-12：{err_d <= 1e-12}")
assert err_f <= 1e-12 and err_d <= 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 容差 ±16：float32 末位的舍入随计算路径（CPU 指令集、GPU）而变，断言只要求相对误差 <= 16ε
eps32 = torch.finfo(torch.float32).eps                     # 2^-23 ≈ 1.19e-07
x32 = check_points(torch.float32)
print(f"float32 的机器精度 ε = {eps32:.3e}")
print(f"{'':<11}{'函数的最大差':>12}{'导数的最大差':>14}{'相对误差/ε':>12}   通过 1e-12")
first_failure = None
for name, fns in ACTS.items():
    y, ref, d, g = compare(*fns, x32)
    err_f, err_d = (y - ref).abs().max().item(), (g - d).abs().max().item()
    # 相对误差：除以 max(1, |值|)，再以 ε 为单位
    rel = max(((y - ref).abs() / ref.abs().clamp(min=1)).max().item(),
              ((g - d).abs() / g.abs().clamp(min=1)).max().item()) / eps32
    passed = err_f <= 1e-12 and err_d <= 1e-12
    if not passed and first_failure is None:
        first_failure = name
    print(f"{name:<11}{err_f:12.2e}{err_d:14.2e}{rel:12.2f}   {passed}")
    assert rel <= 16                                       # 合理的容差：16ε × max(1, |值|)
    torch.testing.assert_close(y, ref)                     # PyTorch 对 float32 的默认容差也都通过
    torch.testing.assert_close(g, d)
print(f"第一个不满足 1e-12 的：{first_failure}")
assert first_failure is not None                              # 总有函数通不过 1e-12
assert first_failure == "sigmoid" or device.type == "cuda"     # CPU 上是第一个函数 sigmoid；GPU 的内核另有舍入
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def chain_derivative(act, start: float, layers: int = 10) -> tuple[float, list[float]]:
    """把 act 复合 layers 次，返回在 start 处的导数与每层的输入。"""
    z = torch.tensor(start, dtype=torch.float64, device=device, requires_grad=True)
    out, inputs = z, []
    for _ in range(layers):
        inputs.append(out.item())
        out = act(out)
    (g,) = torch.autograd.grad(out, z)
    return g.item(), inputs


for name, act, start in [("sigmoid", torch.sigmoid, 0.0), ("tanh", torch.tanh, 0.0),
                         ("ReLU", torch.relu, 1.0), ("tanh", torch.tanh, 1.0), ("ReLU", torch.relu, -1.0)]:
    g, inputs = chain_derivative(act, start)
    print(f"{name:<7} 从 z = {start:4.1f} 开始：10 层复合的导数 = {g:.4e}，"
          f"各层输入在 [{min(inputs):.4f}, {max(inputs):.4f}] 之间")
    if start == 0.0 and name == "tanh" or start == 1.0 and name == "ReLU":
        assert g == 1.0                                    # 每层的输入都停在导数为 1 的点上
g_tanh1, g_sig0 = chain_derivative(torch.tanh, 1.0)[0], chain_derivative(torch.sigmoid, 0.0)[0]
assert 0 < g_tanh1 < 1 and g_tanh1 > 1e4 * g_sig0          # 从 1 开始：每层的因子都 < 1，但仍比 sigmoid 大 4 个数量级以上
assert chain_derivative(torch.relu, -1.0)[0] == 0.0
# --8<-- [end:ex3]

# --8<-- [start:ex4]
def softmax_naive(z: torch.Tensor) -> torch.Tensor:      # 与正文 softmax 一节相同
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


c_nan = next(c for c in range(1, 1000)
             if torch.isnan(softmax_naive(torch.tensor([c, c], dtype=torch.float32, device=device))).any())
print(f"float32：softmax_naive([c, c]) 出现 nan 的最小整数 c = {c_nan}，"
      f"ln(float32 最大值) = {math.log(torch.finfo(torch.float32).max):.2f}")
assert c_nan == 89 and c_nan - 1 < math.log(torch.finfo(torch.float32).max) < c_nan


def logsumexp_stable(z: torch.Tensor) -> torch.Tensor:
    m = z.max(dim=-1, keepdim=True).values                 # 减去最大值：指数的自变量都 <= 0
    return (m + torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True))).squeeze(-1)


gen = torch.Generator().manual_seed(0)
Z = torch.randn(4, 10, generator=gen, dtype=torch.float64).to(device) * 3
big = torch.tensor([[1000.0, 1000.0], [-1000.0, 1000.0]], dtype=torch.float64, device=device)
err = (logsumexp_stable(Z) - torch.logsumexp(Z, dim=-1)).abs().max().item()
print(f"随机输入：与 torch.logsumexp 的最大差 <= 1e-12：{err <= 1e-12}")
print(f"[1000, 1000] 与 [-1000, 1000]：稳定版 {[round(v, 4) for v in logsumexp_stable(big).tolist()]}，"
      f"torch.logsumexp {[round(v, 4) for v in torch.logsumexp(big, dim=-1).tolist()]}，"
      f"朴素版 {torch.log(torch.exp(big).sum(dim=-1)).tolist()}")
assert err <= 1e-12 and torch.equal(logsumexp_stable(big), torch.logsumexp(big, dim=-1))
assert abs(logsumexp_stable(big)[0].item() - (1000 + math.log(2))) < 1e-9
# --8<-- [end:ex4]
