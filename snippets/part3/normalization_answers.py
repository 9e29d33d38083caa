# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机输入在 CPU 上生成再搬到 device


def randn(*shape: int) -> torch.Tensor:
    """float64 的标准正态随机张量（CPU 上用 gen 生成，结果与设备无关）。"""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device)
# --8<-- [end:imports]

# --8<-- [start:ex1]
torch.manual_seed(0)
conv = nn.Conv2d(3, 8, kernel_size=3, padding=1).double().to(device)   # 带偏置的卷积
bn = nn.BatchNorm2d(8).double().to(device)                             # 训练模式
x = randn(16, 3, 6, 6)
y = bn(conv(x))
with torch.no_grad():
    conv.bias.add_(randn(8) * 100)                                     # 偏置随便改，改得很大
y_new = bn(conv(x))
print(f"偏置加上随机数之后，BN 输出的最大变化 < 1e-10：{(y_new - y).abs().max().item() < 1e-10}")
assert (y_new - y).abs().max().item() < 1e-10
g_bias, g_weight = torch.autograd.grad((y_new * randn(*y_new.shape)).sum(), [conv.bias, conv.weight])
print(f"损失对卷积偏置的梯度：最大绝对值 < 1e-10：{g_bias.abs().max().item() < 1e-10}"
      f"（对权重的梯度最大绝对值 {g_weight.abs().max().item():.2f}）")
assert g_bias.abs().max().item() < 1e-10 < g_weight.abs().max().item()
conv_nb = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
print(f"bias=False 省下的参数量：{sum(p.numel() for p in conv.parameters()) - sum(p.numel() for p in conv_nb.parameters())}")
assert sum(p.numel() for p in conv.parameters()) - sum(p.numel() for p in conv_nb.parameters()) == 8
# --8<-- [end:ex1]


# --8<-- [start:ex2]
class BatchNorm2dScratch(nn.Module):
    """正文的 BatchNorm2dScratch，只改了运行统计量的更新：momentum=None 时用累积平均。"""

    def __init__(self, num_channels: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(num_channels))
        self.beta = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0))   # 已经用过几批

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), correction=0)
            m = x.numel() // x.shape[1]
            with torch.no_grad():
                self.num_batches_tracked += 1
                # momentum=None：第 t 批的权重为 1/t，即到目前为止各批统计量的简单平均
                w = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - w).add_(w * mean)
                self.running_var.mul_(1 - w).add_(w * var * m / (m - 1))
        else:
            mean, var = self.running_mean, self.running_var
        shape = (1, -1, 1, 1)
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return self.gamma.view(shape) * x_hat + self.beta.view(shape)


batches = [randn(4, 2, 3, 3) * (1 + k) + k for k in range(6)]          # 6 批，分布逐批变化
for momentum in [0.01, None]:
    ours = BatchNorm2dScratch(2, momentum=momentum).double().to(device)
    ref = nn.BatchNorm2d(2, momentum=momentum).double().to(device)
    err = max((ours(xb) - ref(xb)).abs().max().item() for xb in batches)
    err = max(err, (ours.running_mean - ref.running_mean).abs().max().item(),
              (ours.running_var - ref.running_var).abs().max().item())
    print(f"momentum={momentum}：输出与运行统计量和 nn.BatchNorm2d 的最大误差 < 1e-10：{err < 1e-10}")
    assert err < 1e-10

means = torch.stack([xb.mean(dim=(0, 2, 3)) for xb in batches])        # 各批的均值 (6, 2)
uvars = torch.stack([xb.var(dim=(0, 2, 3)) for xb in batches])         # 各批的无偏方差
ok = ((ref.running_mean - means.mean(dim=0)).abs().max().item() < 1e-12
      and (ref.running_var - uvars.mean(dim=0)).abs().max().item() < 1e-12)
print(f"momentum=None：运行均值、运行方差 == 各批均值、无偏方差的简单平均：{ok}")
assert ok

# Keras 的约定：moving = moving * momentum + batch * (1 - momentum)，默认 momentum = 0.99
keras_mean = torch.zeros(2, dtype=torch.float64, device=device)
for mb in means:
    keras_mean = keras_mean * 0.99 + mb * (1 - 0.99)
pt = nn.BatchNorm2d(2, momentum=0.01).double().to(device)             # PyTorch 的 momentum = 1 − 0.99
wrong = nn.BatchNorm2d(2, momentum=0.99).double().to(device)          # 把 Keras 的数字原样抄过来
for xb in batches:
    pt(xb), wrong(xb)
print(f"Keras 的 momentum=0.99 == PyTorch 的 momentum=0.01：{(pt.running_mean - keras_mean).abs().max().item() < 1e-12}")
assert (pt.running_mean - keras_mean).abs().max().item() < 1e-12
print(f"误把 0.99 写进 PyTorch：运行均值 {wrong.running_mean[0].item():.3f}，最后一批的均值 {means[-1, 0].item():.3f}")
assert (wrong.running_mean - means[-1]).abs().max().item() < 0.05     # 几乎只记得最后一批
# --8<-- [end:ex2]

# --8<-- [start:ex3]
bn = nn.BatchNorm2d(4).double().to(device)
with torch.no_grad():
    bn.weight.copy_(randn(4)), bn.bias.copy_(randn(4))
x = (randn(8, 4, 5, 5) * 3 + 1).requires_grad_()
g = randn(8, 4, 5, 5)                                                  # 上游梯度 ∂L/∂y
gx_auto, = torch.autograd.grad(bn(x), x, g)

dims = (0, 2, 3)                                                       # 每个通道在 (N, H, W) 上求平均
mean = x.detach().mean(dim=dims, keepdim=True)
sigma = torch.sqrt(x.detach().var(dim=dims, keepdim=True, correction=0) + bn.eps)
x_hat = (x.detach() - mean) / sigma
gamma = bn.weight.detach().view(1, -1, 1, 1)
gx_formula = gamma / sigma * (g - g.mean(dim=dims, keepdim=True)
                              - x_hat * (g * x_hat).mean(dim=dims, keepdim=True))
err = (gx_formula - gx_auto).abs().max().item()
print(f"按公式算的 ∂L/∂x 与 autograd 的最大误差 < 1e-10：{err < 1e-10}")
assert err < 1e-10
# --8<-- [end:ex3]

# --8<-- [start:ex4]
torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).double().to(device)
with torch.no_grad():                                                  # 假装已经训练过：运行统计量、γ、β 都不平凡
    net[1].running_mean.copy_(randn(4))
    net[1].running_var.copy_(randn(4).abs() + 0.5)
    net[1].weight.copy_(randn(4)), net[1].bias.copy_(randn(4))
img = randn(1, 1, 8, 8)                                                # 一张图，批量大小 1

net.train()
z = net[0](img)                                                        # BN 的输入 (1, 4, 8, 8)
out_train = net[1](z)
as_instance = F.instance_norm(z, weight=net[1].weight, bias=net[1].bias, eps=net[1].eps)
print(f"训练模式、批量大小 1 的 BatchNorm2d == InstanceNorm2d（同样的 γ、β）："
      f"{(out_train - as_instance).abs().max().item() < 1e-10}")
assert (out_train - as_instance).abs().max().item() < 1e-10

net.eval()
out_eval = net[1](z)
gap = (out_train - out_eval).abs().max().item()
print(f"同一张图，训练模式与评估模式的 BN 输出最多相差 {gap:.2f}")
assert gap > 0.1
scaled = net[1].train()(3 * z + 5)                                     # 把输入整体放大、平移
print(f"训练模式下把这张图的特征整体乘 3 再加 5，输出的最大变化 < 1e-3：{(scaled - out_train).abs().max().item() < 1e-3}")
assert (scaled - out_train).abs().max().item() < 1e-3                  # 只差 eps 带来的微小影响
# --8<-- [end:ex4]
