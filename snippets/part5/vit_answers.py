# --8<-- [start:imports]
from collections import OrderedDict

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lenet5() -> nn.Sequential:                            # 与正文相同
    return nn.Sequential(OrderedDict([
        ("C1", nn.Conv2d(1, 6, kernel_size=5)), ("relu1", nn.ReLU()), ("S2", nn.MaxPool2d(2)),
        ("C3", nn.Conv2d(6, 16, kernel_size=5)), ("relu3", nn.ReLU()), ("S4", nn.MaxPool2d(2)),
        ("C5", nn.Conv2d(16, 120, kernel_size=5)), ("relu5", nn.ReLU()), ("flatten", nn.Flatten()),
        ("F6", nn.Linear(120, 84)), ("relu6", nn.ReLU()),
        ("OUT", nn.Linear(84, 10)),
    ]))


class ViT(nn.Module):                                     # 与正文相同，只多一个开关 use_pos
    def __init__(self, img=32, P=8, C=1, D=48, heads=4, d_ff=192, layers=2, classes=10, use_pos=True):
        super().__init__()
        self.n, self.use_pos = (img // P) ** 2, use_pos
        self.embed = nn.Conv2d(C, D, kernel_size=P, stride=P)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.n + 1, D))
        block = nn.TransformerEncoderLayer(D, heads, d_ff, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, classes)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + (self.pos if self.use_pos else 0)
        return self.head(self.norm(self.encoder(z))[:, 0])
# --8<-- [end:imports]


# --8<-- [start:ex1]
def layer_macs(n, D, d_ff):
    """一层编码器每个样本的乘加次数（5.4 的公式）：注意力矩阵部分与线性部分。"""
    return 2 * n * n * D, 4 * n * D * D + 2 * n * D * d_ff


D, d_ff = 768, 3072                                       # ViT-Base 的尺寸
print("ViT-Base，224×224：")
res = {}
for P in (16, 8):
    n = (224 // P) ** 2 + 1                               # 图块 + [CLS]
    att, lin = layer_macs(n, D, d_ff)
    res[P] = (n, att, lin)
    print(f"P={P:2d}：n={n:4d}，注意力矩阵部分 {att:>12d}，线性部分 {lin:>12d}，前者占 {att / (att + lin):.1%}")
(n16, a16, l16), (n8, a8, l8) = res[16], res[8]
print(f"P 从 16 减到 8：注意力矩阵部分乘 {a8 / a16:.1f}，线性部分乘 {l8 / l16:.1f}")
assert n16 == 197 and n8 == 785
assert 15.5 < a8 / a16 < 16 and 3.9 < l8 / l16 < 4       # 约 16 倍与约 4 倍（[CLS] 让它们略小于 16、4）
assert a16 / (a16 + l16) < 0.1 < a8 / (a8 + l8)           # P=16 时注意力矩阵不到一成，P=8 时超过一成
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def shuffle_patches(x, perm, P=8):
    """把 32×32 图像的 4×4 个 8×8 图块按 perm 重新排列（图块内部不动）。"""
    B, C, H, W = x.shape
    g = H // P
    blocks = x.reshape(B, C, g, P, g, P).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C, P, P)
    blocks = blocks[:, perm].reshape(B, g, g, C, P, P).permute(0, 3, 1, 4, 2, 5)
    return blocks.reshape(B, C, H, W)


x = torch.randn(4, 1, 32, 32, dtype=torch.float64, device=device)
perm = torch.randperm(16, device=device)
x_shuf = shuffle_patches(x, perm)
for name, model in [("ViT，无位置向量", ViT(use_pos=False)), ("ViT，有位置向量", ViT()), ("LeNet", lenet5())]:
    model = model.to(device, torch.float64).eval()
    with torch.no_grad():
        diff = (model(x) - model(x_shuf)).abs().max().item()
    print(f"{name}：打乱图块前后 logit 的最大差 {diff:.1e}")
    if name.endswith("无位置向量"):
        assert diff < 1e-10                               # 只是一袋图块：与图块的排列无关
    else:
        assert diff > 1e-3
assert not torch.equal(x, x_shuf)
# --8<-- [end:ex2]

# --8<-- [start:ex3]
def counted_macs(model):
    """FlopCounterMode 数出的矩阵乘法与卷积的乘加次数（训练模式，走普通的计算路径）。
    固定在 CPU 上数：GPU 上注意力走融合核，计数器会把它也数进去，路径不同，计数也不同。"""
    model = model.cpu().train()
    with FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, 1, 32, 32))
    return fc.get_total_flops() // 2


n, D, d_ff, L = 17, 48, 192, 2                            # 16 个图块 + [CLS]
lenet_formula = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 120 * 400 + 84 * 120 + 10 * 84
embed = 16 * 48 * 64                                      # 16 个图块，每个 64 维 -> 48 维
att, lin = layer_macs(n, D, d_ff)
vit_linear = embed + L * lin + 10 * D                     # 图块嵌入 + 各层的投影与前馈网络 + 分类头
vit_total = vit_linear + L * att                          # 再加注意力矩阵部分 2n²D（5.4 用计数验证过）
c_lenet, c_vit = counted_macs(lenet5()), counted_macs(ViT())
print(f"LeNet：公式 {lenet_formula}，计数 {c_lenet}")
print(f"ViT：线性部分公式 {vit_linear}，计数 {c_vit}；加上注意力矩阵部分 {L * att}，合计 {vit_total}")
print(f"ViT 每个样本的乘加次数是 LeNet 的 {vit_total / lenet_formula:.2f} 倍")
assert c_lenet == lenet_formula == 416520
assert c_vit == vit_linear                                # 计数器在这条路径上只数到线性部分
assert 2 < vit_total / lenet_formula < 3
# --8<-- [end:ex3]
