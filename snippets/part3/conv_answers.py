# --8<-- [start:imports]
import warnings

import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_image
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数据在 CPU 上生成再搬到 device
f64 = torch.float64


def out_size(h: int, f: int, p: int = 0, s: int = 1, d: int = 1) -> int:
    """与正文相同：输出边长 ⌊(h + 2p − d(f−1) − 1)/s⌋ + 1。"""
    return (h + 2 * p - d * (f - 1) - 1) // s + 1


def receptive_field(layers: list[tuple[int, int, int]]) -> int:
    """与正文相同：layers 的每一项是 (f, s, d)。"""
    r, jump = 1, 1
    for f, s, d in layers:
        r += (f - 1) * d * jump
        jump *= s
    return r


def measured_field(layers: list[tuple[int, int, int]], size: int) -> int:
    """与正文相同（只返回边长）：全 1 权重，从中间的输出像素反向传播，数梯度非零的行。"""
    net = nn.Sequential(*[nn.Conv2d(1, 1, f, stride=s, dilation=d, bias=False)
                          for f, s, d in layers]).to(device, f64)
    for m in net:
        nn.init.ones_(m.weight)
    x = torch.ones(1, 1, size, size, dtype=f64, device=device, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = x.grad[0, 0].ne(0).any(dim=1).nonzero().view(-1)
    assert rows.min() > 0 and rows.max() < size - 1      # 感受野完整落在输入内部
    return int(rows.max() - rows.min() + 1)
# --8<-- [end:imports]

# --8<-- [start:ex1]
h = 17
x = torch.randn(1, 1, h, h, generator=gen, dtype=f64).to(device)
for f, d in [(3, 1), (5, 1), (3, 2), (5, 3), (2, 1), (4, 1), (4, 3), (2, 2)]:
    w = torch.randn(1, 1, f, f, generator=gen, dtype=f64).to(device)
    total = d * (f - 1)                        # 步幅 1 时两侧一共要补的圈数
    left, right = total // 2, total - total // 2
    manual = F.conv2d(F.pad(x, (left, right, left, right)), w, dilation=d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # 两侧不等时 PyTorch 提醒它要先复制一份补 0 的输入
        same = F.conv2d(x, w, padding="same", dilation=d)
    assert manual.shape[-1] == h and (same - manual).abs().max().item() <= 1e-10
    if total % 2 == 0:
        assert out_size(h, f, total // 2, 1, d) == h
        print(f"f={f} d={d}：d(f-1)={total}，两侧各补 {total // 2}")
    else:
        print(f"f={f} d={d}：d(f-1)={total} 是奇数，padding='same' 上、左补 {left}，下、右补 {right}")
try:
    F.conv2d(x, w, padding="same", stride=2)
    raise AssertionError("应当报错")
except RuntimeError as err:
    print("步幅 2 时 padding='same'：RuntimeError:", str(err).split("\n")[0])
# --8<-- [end:ex1]

# --8<-- [start:ex2]
sobel_x = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=f64, device=device)
assert torch.equal(sobel_x.flip(0, 1), -sobel_x)      # 上下、左右各翻一次，恰好变号
step = torch.zeros(1, 1, 6, 8, dtype=f64, device=device)
step[..., 4:] = 1.0
true_conv = F.conv2d(step, sobel_x.flip(0, 1).view(1, 1, 3, 3))   # 数学上的卷积 = 翻转核的互相关
print("真卷积下台阶图的 Sobel-x 响应：", true_conv[0, 0, 0].tolist())

# 翻不翻核对学习没有影响：两个模型同时训练，一个用互相关，一个用真卷积，初值互为翻转
imgs = torch.randn(8, 1, 12, 12, generator=gen, dtype=f64).to(device)
target = F.conv2d(imgs, sobel_x.view(1, 1, 3, 3))      # 目标：Sobel-x 的响应
w_a = torch.randn(1, 1, 3, 3, generator=gen, dtype=f64).to(device).requires_grad_()
w_b = w_a.detach().flip(-2, -1).clone().requires_grad_()
for _ in range(300):
    loss_a = ((F.conv2d(imgs, w_a) - target) ** 2).mean()                  # 互相关（PyTorch 的卷积）
    loss_b = ((F.conv2d(imgs, w_b.flip(-2, -1)) - target) ** 2).mean()     # 真卷积
    ga, gb = torch.autograd.grad(loss_a, w_a), torch.autograd.grad(loss_b, w_b)
    with torch.no_grad():
        w_a -= 0.05 * ga[0]
        w_b -= 0.05 * gb[0]
print("互相关模型学到的核：", [round(v, 3) + 0.0 for v in w_a[0, 0].flatten().tolist()])
print("真卷积模型学到的核：", [round(v, 3) + 0.0 for v in w_b[0, 0].flatten().tolist()])
assert (true_conv[0, 0] + F.conv2d(step, sobel_x.view(1, 1, 3, 3))[0, 0]).abs().max().item() <= 1e-12
assert (w_b.detach() - w_a.detach().flip(-2, -1)).abs().max().item() <= 1e-10   # 全程互为翻转
assert (w_a.detach()[0, 0] - sobel_x).abs().max().item() <= 1e-3                 # 学到了 Sobel-x
# --8<-- [end:ex2]

# --8<-- [start:ex3]
schemes = {   # 名字: (第 l 层的 (f, s, d)，测量用的输入边长)
    "3×3，步幅 1": (lambda l: (3, 1, 1), 232),
    "3×3，步幅 2": (lambda l: (3, 2, 1), 400),
    "3×3，步幅 1，空洞率 2^(l-1)": (lambda l: (3, 1, 2 ** (l - 1)), 300),
}
for name, (layer, size) in schemes.items():
    L = 1
    while receptive_field([layer(l) for l in range(1, L + 1)]) < 224:
        L += 1
    layers = [layer(l) for l in range(1, L + 1)]
    r = receptive_field(layers)
    measured = measured_field(layers, size)
    jump = 1
    for _, s, _ in layers:
        jump *= s
    print(f"至少 {L:>3} 层，感受野 {r}（梯度测得 {measured}），输出相邻像素在原图上相隔 {jump:>3}：{name}")
    assert measured == r
    assert r == (1 + 2 * L if name == "3×3，步幅 1" else 2 ** (L + 1) - 1)   # 两个闭式
# --8<-- [end:ex3]

# --8<-- [start:ex4]
C, H, W, K = 3, 5, 4, 7
fc = nn.Linear(C * H * W, K).to(device, f64)
conv = nn.Conv2d(C, K, kernel_size=(H, W)).to(device, f64)    # 卷积核和整张图一样大
with torch.no_grad():
    conv.weight.copy_(fc.weight.view(K, C, H, W))              # 同一组参数，换个形状
    conv.bias.copy_(fc.bias)
x = torch.randn(2, C, H, W, generator=gen, dtype=f64).to(device)
y_fc, y_conv = fc(x.flatten(1)), conv(x)
print(f"全连接输出 {tuple(y_fc.shape)}，卷积输出 {tuple(y_conv.shape)}，"
      f"参数量 {sum(p.numel() for p in fc.parameters())} 与 {sum(p.numel() for p in conv.parameters())}")
assert (y_conv.view(2, K) - y_fc).abs().max().item() <= 1e-10
big = torch.randn(1, C, 9, 8, generator=gen, dtype=f64).to(device)     # 更大的图
y_big = conv(big)                                                       # 同一个「全连接层」在每个位置各算一次
crop = big[..., 2:2 + H, 3:3 + W]                                        # 左上角在 (2, 3) 的 5×4 小块
print(f"更大的输入 {tuple(big.shape)} -> 输出 {tuple(y_big.shape)}")
assert y_big.shape == (1, K, 5, 5)
assert (y_big[0, :, 2, 3] - fc(crop.flatten(1))[0]).abs().max().item() <= 1e-10
# --8<-- [end:ex4]
