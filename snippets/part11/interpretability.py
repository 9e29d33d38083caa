# --8<-- [start:setup]
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]

# --8<-- [start:model]
X_all, y_all = load_digits(return_X_y=True)
X_all = torch.tensor(X_all / 16.0, dtype=torch.float32)          # (1797, 64)，像素缩放到 [0, 1]
y_all = torch.tensor(y_all)
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.3, stratify=y_all, random_state=0)
X_tr, y_tr, X_te, y_te = X_tr.to(device), y_tr.to(device), X_te.to(device), y_te.to(device)

sizes = [64, 64, 64, 10]
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(150):                                           # 全批量训练 150 步
    opt.zero_grad()
    F.cross_entropy(model(X_tr), y_tr).backward()
    opt.step()
model.eval()
with torch.no_grad():
    acc = (model(X_te).argmax(dim=1) == y_te).float().mean().item()
n_params = sum(p.numel() for p in model.parameters())
n_formula = sum(d_in * d_out + d_out for d_in, d_out in zip(sizes[:-1], sizes[1:]))
print(f"参数量 {n_params}（逐层公式 {n_formula}），测试准确率 {acc:.3f}")
assert n_params == n_formula
assert acc >= 0.95          # 种子 0–4：0.967–0.976

x = X_te[:16]                                                     # 要解释的 16 张测试图，(16, 64)
with torch.no_grad():
    target = model(x).argmax(dim=1)                               # 解释模型预测的类别
baseline = torch.zeros_like(x)                                    # 基线：全黑的图
# --8<-- [end:model]


# --8<-- [start:saliency]
def logit_of(m: nn.Module, inp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """每个样本目标类别的 logit，(B,)。"""
    return m(inp).gather(1, t[:, None])[:, 0]


def saliency(m: nn.Module, inp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """梯度 ∂f_t/∂x，形状与 inp 相同。各样本互不影响，所以对 logit 之和求一次导即可。"""
    inp = inp.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(logit_of(m, inp, t).sum(), inp)
    return g


grad = saliency(model, x, target)
grad_x_input = grad * x
print("梯度的形状:", tuple(grad.shape))
print("x = 0 的像素上，梯度×输入恰为 0 的比例:", f"{(grad_x_input[x == 0] == 0).float().mean().item():.3f}")
print("x = 0 的像素占全部像素的比例:", f"{(x == 0).float().mean().item():.3f}")
assert (grad_x_input[x == 0] == 0).all()
# --8<-- [end:saliency]


# --8<-- [start:ig]
def quadrature(rule: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] 上 n 个节点 α_k 与权重 w_k，使 ∫₀¹ g(α) dα ≈ Σ w_k g(α_k)。"""
    if rule == "right":                                           # 右端点黎曼和（论文式 (3)）
        alphas, weights = np.arange(1, n + 1) / n, np.full(n, 1.0 / n)
    elif rule == "trapezoid":                                     # 梯形法则：n 个等距节点含两端
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
    elif rule == "gausslegendre":                                 # 高斯-勒让德：从 [-1, 1] 换到 [0, 1]
        nodes, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = (nodes + 1) / 2, w / 2
    else:
        raise ValueError(rule)
    return torch.tensor(alphas, dtype=torch.float32), torch.tensor(weights, dtype=torch.float32)


def integrated_gradients(m, inp, base, t, n_steps=50, rule="gausslegendre"):
    """IG_i = (x_i − x'_i) · Σ_k w_k ∂f_t/∂x_i (x' + α_k (x − x'))。inp, base: (B, D)。"""
    alphas, weights = (v.to(inp.device) for v in quadrature(rule, n_steps))
    B, D = inp.shape
    path = base[None] + alphas[:, None, None] * (inp - base)[None]       # (n, B, D)：直线路径上的点
    g = saliency(m, path.reshape(-1, D), t.repeat(n_steps)).reshape(n_steps, B, D)
    return (inp - base) * (weights[:, None, None] * g).sum(dim=0)


ig = integrated_gradients(model, x, baseline, target)
with torch.no_grad():
    gap = logit_of(model, x, target) - logit_of(model, baseline, target)  # f(x) − f(x')，(16,)
print(f"f(x) − f(x') 的范围: {gap.min().item():.2f} 到 {gap.max().item():.2f}")
print(f"n = 50（高斯-勒让德）: 归因之和与 f(x) − f(x') 的最大差 {(ig.sum(1) - gap).abs().max().item():.4f}")
# --8<-- [end:ig]

# --8<-- [start:completeness]
steps = [8, 32, 128, 512]
print(f"{'n':>5} {'右端点':>10} {'梯形':>10} {'高斯-勒让德':>10}   （16 张图上 |Σ IG − (f(x) − f(x'))| 的平均）")
errors = {}
for n in steps:
    row = []
    for rule in ["right", "trapezoid", "gausslegendre"]:
        err = (integrated_gradients(model, x, baseline, target, n, rule).sum(1) - gap).abs()
        errors[rule, n] = err
        row.append(f"{err.mean().item():10.4f}")
    print(f"{n:>5} " + " ".join(row))
for rule in ["right", "trapezoid", "gausslegendre"]:
    means = [errors[rule, n].mean().item() for n in steps]
    assert all(a > b for a, b in zip(means, means[1:])), rule    # 步数越多，完备性误差越小
    rel = (errors[rule, 512] / gap.abs()).max().item()
    print(f"{rule:>13}: n = 512 时最大相对误差 {rel:.5f}")
    assert rel < 0.01        # 种子 0–4：三种法则的平均误差都单调下降；n = 512 时最大为 0.00090（右端点）
# --8<-- [end:completeness]

# --8<-- [start:captum]
captum_ig = IntegratedGradients(model)
worst = 0.0
for rule, method in [("gausslegendre", "gausslegendre"), ("right", "riemann_right")]:
    for n in [16, 50]:
        ours = integrated_gradients(model, x, baseline, target, n, rule)
        theirs, delta = captum_ig.attribute(x, baselines=baseline, target=target, n_steps=n, method=method,
                                            return_convergence_delta=True)
        diff = (ours - theirs).abs().max().item()
        worst = max(worst, diff)
        # Captum 的 delta 就是完备性误差 Σ IG − (f(x) − f(x'))
        assert torch.allclose(delta.float(), ours.sum(1) - gap, atol=1e-3)
print(f"与 captum 的 IntegratedGradients（2 种方法 × 2 种步数）的最大差: {worst:.1e}")
print(f"归因的最大绝对值: {ig.abs().max().item():.2f}")
assert worst < 1e-4
# --8<-- [end:captum]


# --8<-- [start:sanity]
def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """两个一维张量的斯皮尔曼等级相关：先换成秩（并列取平均秩），再算皮尔逊相关。"""
    def rank(v):
        order = v.argsort()
        r = torch.empty_like(v)
        r[order] = torch.arange(len(v), dtype=v.dtype, device=v.device)
        for val in v.unique():                                    # 并列的值取平均秩
            tie = v == val
            r[tie] = r[tie].mean()
        return r
    ra, rb = rank(a.double()), rank(b.double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return ((ra * rb).sum() / (ra.norm() * rb.norm())).item()


def mean_rank_corr(A, Bm, mask=None):
    """16 张图上 |A| 与 |B| 的斯皮尔曼相关的平均；mask 只看笔画上的像素。"""
    vals = []
    for i in range(len(A)):
        keep = mask[i] if mask is not None else torch.ones_like(A[i], dtype=torch.bool)
        vals.append(spearman(A[i][keep].abs(), Bm[i][keep].abs()))
    return float(np.mean(vals))


def edge_map(inp: torch.Tensor) -> torch.Tensor:
    """Sobel 边缘强度：只看输入、完全不看模型的「解释」，(B, 64)。"""
    img = inp.reshape(-1, 1, 8, 8)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=inp.device)[None, None]
    gx, gy = F.conv2d(img, kx, padding=1), F.conv2d(img, kx.transpose(2, 3), padding=1)
    return (gx**2 + gy**2).sqrt().reshape(len(inp), -1)


def explain(m):
    return {"梯度": saliency(m, x, target),
            "积分梯度": integrated_gradients(m, x, baseline, target),
            "边缘检测": edge_map(x)}


stroke = x > 0                                                    # 笔画上的像素
before = explain(model)
randomized = copy.deepcopy(model)
corr = {}
print(f"{'随机化到':<12}{'方法':<8}{'全图':>8}{'笔画上':>8}")
for layer, name in [(4, "输出层"), (2, "第 2 层"), (0, "第 1 层")]:   # 从顶层往下逐层随机化
    torch.manual_seed(100 + layer)
    randomized[layer].reset_parameters()
    after = explain(randomized)
    for method in before:
        corr[name, method] = (mean_rank_corr(before[method], after[method]),
                              mean_rank_corr(before[method], after[method], stroke))
        print(f"{name:<12}{method:<8}{corr[name, method][0]:8.3f}{corr[name, method][1]:8.3f}")
ig_vs_input = (mean_rank_corr(before["积分梯度"], x), mean_rank_corr(after["积分梯度"], x))
print(f"积分梯度与输入本身的秩相关（全图）: 训练好的模型 {ig_vs_input[0]:.3f}，全随机的模型 {ig_vs_input[1]:.3f}")

for name in ["输出层", "第 2 层", "第 1 层"]:
    assert corr[name, "边缘检测"] == (1.0, 1.0)                   # 不看模型的方法：随机化后一模一样
    assert corr[name, "梯度"][0] < 0.4                             # 种子 0–4：最大 0.317
    assert corr[name, "积分梯度"][1] < 0.65                        # 种子 0–4：笔画上最大 0.488
    assert corr[name, "积分梯度"][0] > 0.8                         # 种子 0–4：全图最小 0.893，x = 0 处总是 0
    assert corr[name, "积分梯度"][0] - corr[name, "积分梯度"][1] > 0.3
assert min(ig_vs_input) > 0.8
# --8<-- [end:sanity]

# --8<-- [start:figure]
plt.rcParams["svg.fonttype"] = "none"
show = [0, 1, 2, 3]
rows = [("输入", x), ("梯度", before["梯度"]), ("梯度×输入", grad_x_input),
        ("积分梯度", before["积分梯度"]), ("积分梯度（全随机）", after["积分梯度"])]
fig, axes = plt.subplots(len(show), len(rows), figsize=(2.0 * len(rows), 2.1 * len(show)))
for r, i in enumerate(show):
    for c, (title, maps) in enumerate(rows):
        img = maps[i].detach().cpu().reshape(8, 8).numpy()
        ax = axes[r, c]
        if c == 0:
            ax.imshow(img, cmap="gray_r")
            ax.set_ylabel(f"预测 {target[i].item()}")
        else:
            lim = np.abs(img).max() + 1e-12
            ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(title, fontsize=10)
fig.savefig("interpretability_maps.svg", bbox_inches="tight")
print("图中", len(show), "张数字，每张", len(rows) - 1, "种归因")
# --8<-- [end:figure]
