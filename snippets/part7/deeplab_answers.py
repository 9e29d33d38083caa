# --8<-- [start:imports]
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
def mean_valid_taps(n, rate):
    """n×n 特征图、四周补 0（填充 = rate）的 3×3 空洞卷积：每个输出位置平均有几个抽头落在图内。
    用卷积数：全 1 的图与全 1 的核卷积，每个位置的值就是落在图内的抽头数。"""
    ones = torch.ones(1, 1, n, n, dtype=torch.float64, device=device)
    k = torch.ones(1, 1, 3, 3, dtype=torch.float64, device=device)
    return F.conv2d(ones, k, padding=rate, dilation=rate).mean().item()


def mean_valid_taps_formula(n, rate):
    # 一维：位置 i 的三个抽头 i-r、i、i+r，落在 [0, n) 内的个数；二维是行、列两个一维的乘积
    per_axis = [1 + (i - rate >= 0) + (i + rate <= n - 1) for i in range(n)]
    return (sum(per_axis) / n) ** 2


n = 33                                            # 513×513 的输入，输出步幅 16
print("空洞率  平均落在图内的抽头数（共 9 个）")
taps = []
for rate in (1, 6, 12, 18, 24, 32, 33):
    m = mean_valid_taps(n, rate)
    assert abs(m - mean_valid_taps_formula(n, rate)) < 1e-10
    taps.append(m)
    print(f"{rate:>4}    {m:.2f}")
assert all(a > b for a, b in zip(taps, taps[1:]))            # 空洞率增大，抽头数单调下降……
assert taps[-1] == 1.0                                      # ……空洞率 ≥ 边长时只剩中心一个：退化成 1×1 卷积
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def holes_by_gradient(rates):
    """一维上量：全 1 权重的 conv1d 堆叠，中间输出对输入的梯度；返回跨度内梯度为 0 的位置个数。"""
    span = 1 + 2 * sum(rates)
    x = torch.zeros(1, 1, span, dtype=torch.float64, device=device, requires_grad=True)
    y = x
    for d in rates:
        y = F.conv1d(y, torch.ones(1, 1, 3, dtype=torch.float64, device=device), dilation=d)
    y[0, 0, 0].backward()                          # 跨度恰好等于输入长度，只有一个输出
    return int((x.grad[0, 0] == 0).sum())


def holes_by_sumset(rates):
    offsets = {0}
    for d in rates:
        offsets = {o + t for o in offsets for t in (-d, 0, d)}
    return 1 + 2 * sum(rates) - len(offsets)


triples = [(a, b, c) for a in range(1, 7) for b in range(1, 7) for c in range(1, 7)]
holes = {t: holes_by_gradient(t) for t in triples}
assert all(holes[t] == holes_by_sumset(t) for t in triples)
common = [t for t in triples if math.gcd(*t) > 1]
coprime_with_holes = [t for t in triples if math.gcd(*t) == 1 and holes[t] > 0]
assert all(holes[t] > 0 for t in common)                     # 有公因子 ⇒ 一定有洞
print("三层 3×3，空洞率各取 1..6，共", len(triples), "种")
print("有洞的:", sum(h > 0 for h in holes.values()), "；其中有公因子的:", len(common))
print("没有公因子却有洞的:", len(coprime_with_holes), "，例如", coprime_with_holes[:4],
      "洞数", [holes[t] for t in coprime_with_holes[:4]])
assert len(coprime_with_holes) > 0                          # 互素不是充分条件
# --8<-- [end:ex2]
