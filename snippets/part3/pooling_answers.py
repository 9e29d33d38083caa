# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)


def out_size(h: int, f: int, p: int, s: int = 1) -> int:
    return (h + 2 * p - f) // s + 1


def windows(x: torch.Tensor, k: int, s: int, p: int, fill: float) -> torch.Tensor:
    """与正文相同：(N, C, H, W) -> (N, C, k*k, Ho*Wo)，填充值为 fill。"""
    n, c, h, w = x.shape
    xp = F.pad(x, (p, p, p, p), value=fill)
    cols = F.unfold(xp.reshape(n * c, 1, h + 2 * p, w + 2 * p), kernel_size=k, stride=s)
    return cols.reshape(n, c, k * k, -1)
# --8<-- [end:imports]


# --8<-- [start:ex1]
def avg_pool2d_exclude_pad(x: torch.Tensor, k: int, s: int, p: int = 0) -> torch.Tensor:
    """只对窗口中真实的像素求平均：分子是窗口内的和，分母是窗口内真实像素的个数。"""
    ho, wo = out_size(x.shape[-2], k, p, s), out_size(x.shape[-1], k, p, s)
    total = windows(x, k, s, p, fill=0.0).sum(dim=2)                  # 填充处是 0，不影响和
    count = windows(torch.ones_like(x[:1, :1]), k, s, p, fill=0.0).sum(dim=2)   # 每个窗口里有几个真实像素
    return (total / count).reshape(*x.shape[:2], ho, wo)


x = torch.randn(2, 3, 9, 9, generator=gen, dtype=torch.float64).to(device)
for k, s, p in [(3, 2, 1), (3, 1, 1), (4, 2, 2)]:
    mine = avg_pool2d_exclude_pad(x, k, s, p)
    ref = F.avg_pool2d(x, k, s, p, count_include_pad=False)
    err = (mine - ref).abs().max().item()
    print(f"k={k} s={s} p={p}：与 count_include_pad=False 的最大误差 {err:.1e}")
    assert err < 1e-12

ones = torch.ones(1, 1, 4, 4, device=device)
incl = F.avg_pool2d(ones, 3, 1, 1)[0, 0]
excl = F.avg_pool2d(ones, 3, 1, 1, count_include_pad=False)[0, 0]
print(f"全 1 输入，3×3 窗口、填充 1：角上 {incl[0, 0].item():.3f}（计入填充） vs {excl[0, 0].item():.3f}（不计入）")
assert abs(incl[0, 0].item() - 4 / 9) < 1e-6 and (excl - 1).abs().max() < 1e-6
# --8<-- [end:ex1]

# --8<-- [start:ex2]
z = torch.zeros(1, 1, 4, 4, device=device, requires_grad=True)   # ReLU 之后常见的全 0 区域：窗口内处处并列最大
out, idx = F.max_pool2d(z, 2, return_indices=True)
out.sum().backward()
print("上游梯度全为 1 时，输入的梯度：")
for row in z.grad[0, 0].int().tolist():
    print("   ", row)
print(f"各窗口选中的下标（在 4×4 中按行展开）：{idx.flatten().tolist()}")
assert torch.equal(idx.flatten().cpu(), torch.tensor([0, 2, 8, 10]))   # 每个窗口的左上角：按行扫描遇到的第一个最大值
assert z.grad.sum().item() == 4 and (z.grad != 0).sum().item() == 4   # 每个窗口只有一个位置拿到梯度
cols = windows(z.detach(), 2, 2, 0, fill=float("-inf"))
assert cols.argmax(dim=2).eq(0).all()                                 # torch.argmax 同样返回第一个最大值
# --8<-- [end:ex2]

# --8<-- [start:ex3]
images = torch.tensor(load_digits().images, dtype=torch.float32) / 16
canvas = F.pad(images[:, None], (8, 8, 8, 8)).to(device)          # 24×24：两级池化后 6×6，平移 4 像素不出界
w1 = torch.randn(8, 1, 3, 3, generator=gen).to(device)
w2 = (torch.randn(8, 8, 3, 3, generator=gen) / 3).to(device)


def stage1(z: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(F.relu(F.conv2d(z, w1, padding=1)), 2)     # (N, 8, 12, 12)


def stage2(z: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(F.relu(F.conv2d(stage1(z), w2, padding=1)), 2)   # (N, 8, 6, 6)


def rel_change(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean().item()


def unchanged(a: torch.Tensor, b: torch.Tensor) -> float:
    active = (a > 0) | (b > 0)
    return (torch.isclose(a, b, rtol=1e-5, atol=1e-6) & active).sum().item() / active.sum().item()


a0, b0 = stage1(canvas), stage2(canvas)
rows = []
print("平移 d | 一级：相对变化  不变占比 | 两级：相对变化  不变占比")
for d in range(5):
    shifted = torch.roll(canvas, d, dims=3)
    a, b = stage1(shifted), stage2(shifted)
    rows.append((rel_change(a, a0), unchanged(a, a0), rel_change(b, b0), unchanged(b, b0)))
    print(f"{d:6d} | {rows[-1][0]:14.3f} {rows[-1][1]:9.3f} | {rows[-1][2]:14.3f} {rows[-1][3]:9.3f}")
    if d % 4 == 0:                                                 # 平移 4 像素：两级输出恰好移动 1 格
        assert torch.allclose(b, torch.roll(b0, d // 4, dims=3), atol=1e-6)
r1, u1, r2, u2 = zip(*rows)
assert all(r2[d] < r1[d] for d in range(1, 5))                    # 每个平移下，两级的相对变化都更小
assert u1[1] > 0.15 and u2[1] < 0.01                              # 平移 1：一级约五分之一不变，两级几乎没有
assert u2[2] > 0.15 and u2[3] < 0.01                              # 平移 2：两级约五分之一不变；平移 3 又几乎没有
# --8<-- [end:ex3]
