# --8<-- [start:setup]
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:tf-names]
try:
    filter * 4  # 种子清单没有定义 filter，这个名字于是指向 Python 内置的 filter（一个类）
except TypeError as err:
    print("filter * 4 ->", type(err).__name__ + ":", err)
# --8<-- [end:tf-names]


# --8<-- [start:tf-shapes]
def seed_logic_shapes(c_in: int, filters: int, strides: int, use_1x1conv: bool,
                      size: int = 56) -> tuple[tuple, tuple]:
    """按种子清单的逻辑只搭卷积（BN、ReLU 不改变形状），返回主路与捷径的输出形状。"""
    with torch.device("meta"):  # 只推形状，不计算
        x = torch.empty(1, c_in, size, size)
        main, c = x, c_in
        if use_1x1conv:
            main, c = nn.Conv2d(c, filters, 1, stride=strides)(main), filters  # 主路 1×1，带步幅
        main = nn.Conv2d(c, filters, 3, stride=strides, padding=1)(main)  # 3×3 也带步幅
        main = nn.Conv2d(filters, filters * 4, 1)(main)
        short = nn.Conv2d(c_in, filters * 4, 1, stride=strides)(x)  # 捷径只下采样一次
    return tuple(main.shape), tuple(short.shape)


for use_1x1conv in [False, True]:
    main_shape, short_shape = seed_logic_shapes(256, 128, strides=2, use_1x1conv=use_1x1conv)
    try:
        torch.empty(main_shape, device="meta") + torch.empty(short_shape, device="meta")  # 即 Add()
        result = "可以相加"
    except RuntimeError:
        result = "RuntimeError：形状不同，不能相加"
    print(f"use_1x1conv={use_1x1conv}：主路 {main_shape}，捷径 {short_shape}，{result}")
    if use_1x1conv:
        assert main_shape == (1, 512, 14, 14) and short_shape == (1, 512, 28, 28)  # 主路被下采样了两次
    else:
        assert main_shape == short_shape == (1, 512, 28, 28)
# --8<-- [end:tf-shapes]


# --8<-- [start:bottleneck]
class Bottleneck(nn.Module):
    """瓶颈块：1×1 降维 -> 3×3（步幅只在这里）-> 1×1 升维到 4 倍；捷径按需投影。"""

    expansion = 4

    def __init__(self, c_in: int, mid: int, stride: int = 1):
        super().__init__()
        c_out = mid * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


for c_in, mid, stride, size in [(64, 64, 1, 16), (256, 128, 2, 16)]:
    block = Bottleneck(c_in, mid, stride).to(device).eval()
    x = torch.randn(2, c_in, size, size, device=device)
    with torch.no_grad():
        body, short, out = block.body(x).shape, block.shortcut(x).shape, block(x).shape
    print(f"Bottleneck({c_in}, {mid}, stride={stride})：输入 {tuple(x.shape)} -> 输出 {tuple(out)}")
    assert body == short == out == (2, 4 * mid, size // stride, size // stride)
# --8<-- [end:bottleneck]
