# --8<-- [start:setup]
import matplotlib.pyplot as plt
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 数据在 CPU 上生成再搬到 device，CPU/GPU 数据相同
dtype = torch.float64                   # 感知机只做加减与点积，用 float64 避免舍入影响「是否分错」的判断
# --8<-- [end:setup]


# --8<-- [start:neuron]
def step(z: torch.Tensor) -> torch.Tensor:
    """阶跃函数：z > 0 输出 1，否则输出 0。"""
    return (z > 0).to(z.dtype)


def neuron(x: torch.Tensor, w: torch.Tensor, b: float) -> torch.Tensor:
    """人工神经元：加权和 z = w·x + b，再经过激活函数。x 的形状 (n, d)，w 的形状 (d,)。"""
    return step(x @ w + b)


X_bool = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype, device=device)
w_gate = torch.tensor([1.0, 1.0], dtype=dtype, device=device)
and_out = neuron(X_bool, w_gate, -1.5)   # 只有两个输入都为 1 时 z = 0.5 > 0
or_out = neuron(X_bool, w_gate, -0.5)    # 至少一个输入为 1 时 z >= 0.5 > 0
print("x1 x2 | AND OR")
for (x1, x2), a, o in zip(X_bool.int().tolist(), and_out.int().tolist(), or_out.int().tolist()):
    print(f" {x1}  {x2} |  {a}   {o}")
assert and_out.tolist() == [0, 0, 0, 1] and or_out.tolist() == [0, 1, 1, 1]
# --8<-- [end:neuron]

# --8<-- [start:data]
n = 100
w_true = torch.tensor([1.0, -0.6], dtype=dtype)   # 生成数据用的「真」分界线 w_true·x + b_true = 0
b_true = 0.2
pts = torch.rand(400, 2, generator=gen, dtype=dtype) * 2 - 1        # [-1, 1]^2 上均匀取点
dist = (pts @ w_true + b_true) / w_true.norm()                     # 到真分界线的有符号距离
keep = dist.abs() >= 0.1                                           # 去掉离分界线太近的点，留出间隔
X = pts[keep][:n].to(device)                                       # (n, 2)
y = torch.where(dist[keep][:n] > 0, 1.0, -1.0).to(dtype).to(device)  # 标签取 ±1，形状 (n,)
print(f"X: {tuple(X.shape)}，正类 {int((y > 0).sum())} 个，负类 {int((y < 0).sum())} 个")
assert X.shape == (n, 2) and set(y.tolist()) == {-1.0, 1.0}
# --8<-- [end:data]


# --8<-- [start:train]
def augment(X: torch.Tensor) -> torch.Tensor:
    """在每个样本末尾补一个常数 1，把偏置并入权重：x~ = (x, 1)，w~ = (w, b)。"""
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)


def perceptron(X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 1.0, seed: int = 0):
    """Rosenblatt 感知机：每轮按随机顺序扫过样本，只在分错（y w~·x~ <= 0）时更新 w~ <- w~ + lr y x~。

    返回最终权重 w~、总更新次数、每一轮结束时 w~ 分错的样本数，以及每轮结束时 ||w~||。
    """
    order_gen = torch.Generator().manual_seed(seed)   # 打乱顺序用的生成器，结果可复现
    Xa = augment(X)
    w = torch.zeros(Xa.shape[1], dtype=X.dtype, device=X.device)
    updates, errors_per_epoch, norms = 0, [], []
    for _ in range(epochs):
        for i in torch.randperm(len(y), generator=order_gen).tolist():
            if y[i] * (w @ Xa[i]) <= 0:     # 分错了（恰好落在分界线上也算错）
                w = w + lr * y[i] * Xa[i]
                updates += 1
        errors = int((y * (Xa @ w) <= 0).sum())
        errors_per_epoch.append(errors)
        norms.append(w.norm().item())
        if errors == 0:                     # 这一轮结束时没有分错的点：已收敛
            break
    return w, updates, errors_per_epoch, norms


w_hat, n_updates, errs, _ = perceptron(X, y, epochs=100)
print(f"每轮结束时的错误数：{errs}")
print(f"共 {len(errs)} 轮、{n_updates} 次更新；w~ = {[round(v, 3) for v in w_hat.tolist()]}")
assert errs[-1] == 0                                     # 收敛：训练误差为 0
assert (y * (augment(X) @ w_hat) > 0).all()              # 每个点都在正确的一侧
# --8<-- [end:train]

# --8<-- [start:bound]
Xa = augment(X)
R = Xa.norm(dim=1).max().item()                          # R = max_i ||x~_i||


def margin(u: torch.Tensor) -> float:
    """单位化后的 u 在数据上的间隔 γ = min_i y_i u·x~_i / ||u||（u 分对所有点时为正）。"""
    return (y * (Xa @ u)).min().item() / u.norm().item()


u_true = torch.cat([w_true, torch.tensor([b_true], dtype=dtype)]).to(device)
gammas = {}
for name, u in [("生成数据的 (w_true, b_true)", u_true), ("学到的 w~", w_hat)]:
    gammas[name] = gamma = margin(u)
    bound = (R / gamma) ** 2
    print(f"{name}：γ = {gamma:.4f}，(R/γ)^2 = {bound:.1f}")
    assert gamma > 0 and n_updates <= bound              # Novikoff：更新次数 <= (R/γ)^2
print(f"R = {R:.4f}，实际更新次数 = {n_updates}")

# 为什么真分界线的 γ 不是 0.1：平面上的距离除以 ||w||，增广空间里的间隔除以 ||(w, b)||
d_min = (y * (X @ w_true.to(device) + b_true)).min().item() / w_true.norm().item()  # 平面上最近点的距离
ratio = w_true.norm().item() / u_true.norm().item()                                # ||w|| / ||(w, b)||
print(f"平面上最近点到真分界线的距离 {d_min:.4f}（>= 0.1），||w|| / ||(w, b)|| = {ratio:.4f}")
print(f"γ = {d_min:.4f} × {ratio:.4f} = {d_min * ratio:.4f}，下界 0.1 × {ratio:.4f} = {0.1 * ratio:.4f}")
assert d_min >= 0.1 and abs(gammas["生成数据的 (w_true, b_true)"] - d_min * ratio) < 1e-12
assert gammas["学到的 w~"] < gammas["生成数据的 (w_true, b_true)"]   # 学到的分界线间隔更小，上界更松
# --8<-- [end:bound]

# --8<-- [start:xor]
y_xor = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=dtype, device=device)   # 异或：两输入不同为正类
w_xor, updates_xor, errs_xor, norms_xor = perceptron(X_bool, y_xor, epochs=1000)
counts = {k: errs_xor.count(k) for k in sorted(set(errs_xor))}
print(f"训练 {len(errs_xor)} 轮、{updates_xor} 次更新")
print(f"各轮结束时的错误数 -> 出现的轮数：{counts}")
print(f"最好的一轮仍分错 {min(errs_xor)} 个点；||w~|| 的最大值 = {max(norms_xor):.4f}")
assert len(errs_xor) == 1000 and min(errs_xor) >= 1     # 1000 轮中从未把 4 个点全部分对
assert max(norms_xor) < 10                               # 权重始终有界，只是在原地打转
# --8<-- [end:xor]

# --8<-- [start:search]
# 随机试 20 万组 (w1, w2, b)：最好也只能分对 4 个点中的 3 个
cand = torch.randn(200_000, 3, generator=gen, dtype=dtype).to(device)
correct = ((augment(X_bool) @ cand.T) * y_xor[:, None] > 0).sum(dim=0)   # 每组参数分对的点数
print(f"随机搜索：最多分对 {int(correct.max())} / 4 个点")
assert int(correct.max()) == 3
# --8<-- [end:search]

# --8<-- [start:figure]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
ax = axes[0]
Xc, yc = X.cpu(), y.cpu()
ax.scatter(*Xc[yc > 0].T, marker="o", color="C0", s=18, label="$y=+1$")
ax.scatter(*Xc[yc < 0].T, marker="x", color="C3", s=18, label="$y=-1$")
line_x = torch.linspace(-1.2, 1.2, 2, dtype=dtype)
for (w1, w2, b), style, color, label in [(w_hat.tolist(), "-", "k", "感知机学到的分界线"),
                                         (u_true.tolist(), "--", "0.5", "生成数据的分界线")]:
    ax.plot(line_x, -(w1 * line_x + b) / w2, style, color=color, label=label)   # 直线 w1 x1 + w2 x2 + b = 0
ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), xlabel="$x_1$", ylabel="$x_2$", aspect="equal",
       title=f"线性可分数据：{n_updates} 次更新后收敛")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)

ax = axes[1]
shown = 60
ax.plot(range(1, shown + 1), errs_xor[:shown], "o-", markersize=3, color="C3", label="异或（4 个点）")
ax.plot(range(1, len(errs) + 1), errs, "s-", markersize=4, color="C0", label=f"线性可分数据（{n} 个点）")
ax.set(xlabel="轮", ylabel="本轮结束时分错的点数", ylim=(-0.3, 4.6),
       title=f"异或：前 {shown} 轮（共 1000 轮）从未降到 0")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig("perceptron_boundary.svg", bbox_inches="tight")
plt.close(fig)
# --8<-- [end:figure]
