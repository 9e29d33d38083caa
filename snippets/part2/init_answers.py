# --8<-- [start:imports]
import math

import matplotlib.pyplot as plt
import torch
import torch.nn as nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = torch.float64
# --8<-- [end:imports]


# --8<-- [start:ex1]
def deep_ratios(width: int, seed: int = 0, depth: int = 50, batch: int = 128) -> dict[str, float]:
    """50 层无偏置网络第 50 层与第 1 层输出标准差之比。三种设置共用同一组标准正态矩阵 Z（按各自的标准差缩放），
    省去重复抽样；每种设置单独看，权重分布与正文相同。Z 在 float32 中抽样（快几倍）再转成 float64 计算。"""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, width, generator=gen, dtype=f64).to(device)
    scale = {"tanh + N(0, 0.01²)": 0.01, "ReLU + N(0, 1)": 1.0, "ReLU + Kaiming": math.sqrt(2 / width)}
    h = dict.fromkeys(scale, x0)
    stds = {name: [] for name in scale}
    for _ in range(depth):
        Z = torch.randn(width, width, generator=gen).to(device, f64)
        for name, s in scale.items():
            act = torch.tanh if name.startswith("tanh") else torch.relu
            h[name] = act(h[name] @ (s * Z).T)
            stds[name].append(h[name].std().item())
    return {name: v[-1] / v[0] for name, v in stds.items()}


print("宽度  tanh + N(0, 0.01²)：预测 / 实测     ReLU + N(0, 1)：预测 / 实测     ReLU + Kaiming 实测")
for width in (64, 1024):
    r = deep_ratios(width)
    pred_tanh = math.sqrt(width * 0.01 ** 2) ** 49       # 每层因子 √(n·Var[w])，连乘 49 次
    pred_relu = math.sqrt(width / 2) ** 49               # 每层因子 √(n/2)
    print(f"{width:4d}  {pred_tanh:9.2g} / {r['tanh + N(0, 0.01²)']:9.3g}          "
          f"{pred_relu:9.2g} / {r['ReLU + N(0, 1)']:9.3g}          {r['ReLU + Kaiming']:.3f}")
    assert 1 / 3 < r["tanh + N(0, 0.01²)"] / pred_tanh < 3
    # ReLU 是正齐次的：relu(c·z) = c·relu(z)，所以 N(0, 1) 恰好是 Kaiming 的每层放大 √(n/2) 倍
    assert math.isclose(r["ReLU + N(0, 1)"] / pred_relu, r["ReLU + Kaiming"], rel_tol=1e-9)

# Kaiming 的比值是随机的：对单个输入 h，高斯矩阵 W 给出的 Wh 只取决于 ‖h‖（旋转不变性），
# 所以每层可以直接抽 n 个正态数代替整个矩阵。每个宽度独立重复 R 次（R 个互不相关的网络）
R, depth = 400, 50
gen1 = torch.Generator().manual_seed(1)
print("宽度  ln(第 50 层 / 第 1 层 的 RMS)：均值   标准差     理论 -5·49/(4n)   √(5·49/(4n))")
for width in (64, 256, 1024):
    H = torch.randn(R, width, generator=gen1).to(device, f64)
    rms = []
    for _ in range(depth):
        G = torch.randn(R, width, generator=gen1).to(device, f64)
        H = torch.relu(math.sqrt(2 / width) * H.norm(dim=1, keepdim=True) * G)   # 等价于 relu(W h)
        rms.append(H.pow(2).mean(dim=1).sqrt())
    logs = (rms[-1] / rms[0]).log()
    mean, sd = logs.mean().item(), logs.std().item()
    s2 = 5 * (depth - 1) / (4 * width)                   # 理论：均值 -s²，方差 s²
    print(f"{width:4d}  {mean:30.3f}  {sd:7.3f}   {-s2:15.3f}   {math.sqrt(s2):12.3f}")
    assert abs(mean + s2) < 3 * sd / math.sqrt(R) and abs(sd / math.sqrt(s2) - 1) < 0.1
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def moons(n0: int, n1: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """正文的两个半月形数据（上半月 n0 个点，标签 0；下半月 n1 个点，标签 1）。"""
    gen = torch.Generator().manual_seed(seed)
    t0 = math.pi * torch.rand(n0, generator=gen, dtype=f64)
    t1 = math.pi * torch.rand(n1, generator=gen, dtype=f64)
    upper = torch.stack([t0.cos(), t0.sin()], dim=1)
    lower = torch.stack([1 - t1.cos(), 0.5 - t1.sin()], dim=1)
    pts = torch.cat([upper, lower]) + 0.1 * torch.randn(n0 + n1, 2, generator=gen, dtype=f64)
    labels = torch.cat([torch.zeros(n0, dtype=f64), torch.ones(n1, dtype=f64)])
    return pts.to(device), labels.to(device)


pts2, labels2 = moons(200, 200)                     # n1 改成 200：两类一样多


def make_net2(zero_init: bool, w2: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.Sigmoid(), nn.Linear(16, 1)).to(device, f64)
    if zero_init:
        for p in net.parameters():
            nn.init.zeros_(p)
        nn.init.constant_(net[2].weight, w2)        # w2 ≠ 0 时仍是 16 个相同的值
    return net


def train2(net: nn.Module, steps: int) -> tuple[float, float]:
    """返回第 1 步所有参数梯度的最大绝对值与训练后的准确率。"""
    opt = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    for step in range(steps):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(net(pts2).squeeze(1), labels2).backward()
        if step == 0:
            g_first = max(p.grad.abs().max().item() for p in net.parameters())
        opt.step()
    acc = ((net(pts2).squeeze(1) > 0) == (labels2 > 0.5)).double().mean().item()
    return g_first, acc


net_z = make_net2(zero_init=True)
g_first, acc_z = train2(net_z, 200)
w_max = max(p.abs().max().item() for p in net_z.parameters())
print(f"全零初始化、两类各 200 个点：第 1 步所有梯度 < 1e-15：{g_first < 1e-15}，"
      f"200 步后准确率 {acc_z:.3f}，最大 |w| < 0.1：{w_max < 0.1}")
assert g_first < 1e-15 and acc_z == 0.5 and w_max < 0.1

net_p = make_net2(zero_init=True, w2=1e-3)        # 给 w2 一个小的、各单元相同的扰动
_, acc_p = train2(net_p, 100)
W1 = net_p[0].weight.detach()
same_rows = (W1 - W1[0]).abs().max().item() < 1e-10
print(f"w2 的 16 个元素都设为 1e-3：100 步后准确率 {acc_p:.3f}，16 行权重仍相同：{same_rows}")
assert acc_p > 0.8 and same_rows
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def backward_stats(mode: str, depth: int = 50, batch: int = 128) -> dict[str, list[float]]:
    """宽度在 128 与 512 之间交替的 50 层 ReLU 网络：每层输出、输出的梯度、权重梯度的标准差。"""
    gen = torch.Generator().manual_seed(0)
    widths = [128 if l % 2 == 0 else 512 for l in range(depth + 1)]
    Ws = [nn.init.kaiming_normal_(torch.empty(widths[l + 1], widths[l], dtype=f64), mode=mode,
                                  nonlinearity="relu", generator=gen).to(device).requires_grad_()
          for l in range(depth)]
    h = torch.randn(batch, widths[0], generator=gen, dtype=f64).to(device)
    hs = []
    for W in Ws:
        h = torch.relu(h @ W.T)
        h.retain_grad()                              # 保留中间层输出的梯度 ∂ℓ/∂h
        hs.append(h)
    r = torch.randn(h.shape, generator=gen, dtype=f64).to(device)
    (h * r).sum().backward()                         # ℓ = Σ h⁽⁵⁰⁾ ⊙ r，顶层梯度是标准正态的 r
    return {"前向 std(h)": [t.std().item() for t in hs],
            "反向 std(∂ℓ/∂h)": [t.grad.std().item() for t in hs],
            "权重梯度 std": [W.grad.std().item() for W in Ws]}


def zigzag(v: list[float]) -> float:
    """相邻两层之比的平均幅度 mean |log2(v[l+1] / v[l])|：1 表示每层翻倍或减半。"""
    return sum(abs(math.log2(b / a)) for a, b in zip(v, v[1:])) / (len(v) - 1)


def trend(v: list[float]) -> float:
    """随深度的总体变化：最后两层与最初两层的几何平均之比（成对取，消去宽度交替带来的锯齿）。"""
    return math.sqrt(v[-2] * v[-1] / (v[0] * v[1]))


show = [0, 1, 2, 3, 47, 48, 49]
print(f"{'':<24}" + "".join(f"第{l + 1:>2}层  " for l in show) + "相邻层起伏  总体趋势")
z = {}
for mode in ("fan_in", "fan_out"):
    for name, v in backward_stats(mode).items():
        z[mode, name] = zigzag(v)
        print(f"{mode + ' ' + name:<24}" + "".join(f"{v[l]:7.3f} " for l in show)
              + f"{z[mode, name]:8.2f}  {trend(v):8.2f}")
        assert 1 / 4 < trend(v) < 4                     # 没有随深度指数级地消失或爆炸
assert z["fan_in", "前向 std(h)"] < 0.25 < 0.75 < z["fan_in", "反向 std(∂ℓ/∂h)"]
assert z["fan_out", "反向 std(∂ℓ/∂h)"] < 0.25 < 0.75 < z["fan_out", "前向 std(h)"]
# --8<-- [end:ex3]


# --8<-- [start:ex4]
gen4 = torch.Generator().manual_seed(0)
depth, width, batch = 50, 256, 128
x0 = torch.randn(batch, width, generator=gen4, dtype=f64).to(device)
curves4, mats = {}, {}
for name, init in (("Xavier (normal)", nn.init.xavier_normal_), ("正交", nn.init.orthogonal_)):
    h, stds, mats[name] = x0, [], []
    for _ in range(depth):
        W = init(torch.empty(width, width, dtype=f64), gain=5 / 3, generator=gen4).to(device)
        h = torch.tanh(h @ W.T)
        stds.append(h.std().item())
        mats[name].append(W)
    curves4[name] = stds
    print(f"tanh + {name:<16} 第 1 层 std {stds[0]:.3f}，第 {depth} 层 {stds[-1]:.3f}，比值 {stds[-1] / stds[0]:.3f}")
gap4 = max(abs(a / b - 1) for a, b in zip(*curves4.values()))
print(f"两条曲线逐层的最大相对差：{gap4:.3f}")
assert gap4 < 0.05

# 区别在哪里：去掉 tanh，看 50 个权重矩阵（增益换成 1）之积的奇异值
for name, Ws in mats.items():
    J = torch.eye(width, dtype=f64, device=device)
    for W in Ws:
        J = (0.6 * W) @ J                                 # 0.6 = 1 / (5/3)，把增益换回 1
    s = torch.linalg.svdvals(J)
    print(f"{name:<16} 50 层线性网络：最大奇异值 {s.max().item():.3g}，中位数 / 最大 = "
          f"{(s.median() / s.max()).item():.2g}")
    if name == "正交":
        assert (s - 1).abs().max().item() < 1e-9          # 正交矩阵之积仍是正交矩阵
    else:
        assert (s.median() / s.max()).item() < 1e-4

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, stds in curves4.items():
    ax.plot(range(1, depth + 1), stds, label=f"tanh + {name}（增益 5/3）",
            linestyle="-" if name == "正交" else "--")
ax.set_xlabel("层")
ax.set_ylabel("该层输出的标准差")
ax.set_ylim(0, 1)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig("init_answers_orthogonal.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:ex4]
