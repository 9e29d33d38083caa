# --8<-- [start:imports]
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def w1_assignment(x: torch.Tensor, y: torch.Tensor) -> float:
    cost = torch.cdist(x.double(), y.double()).cpu().numpy()
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def make_critic(d_in: int = 2, hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1)).to(device)


def fit_clipped_critic(real, fake, clip: float, steps: int = 300):
    """与正文 clip 一节的 fit_critic(mode="clip") 相同。"""
    critic = make_critic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(steps):
        loss = critic(fake).mean() - critic(real).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p in critic.parameters():
                p.clamp_(-clip, clip)
    with torch.no_grad():
        return (critic(real).mean() - critic(fake).mean()).item()
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 离散的 p_d 与 p_g（10 个取值），全部 float64。对每个 x，最优 D 使 ½p_d(D − b)² + ½p_g(D − a)² 最小：
# D*(x) = (b·p_d + a·p_g) / (p_d + p_g)。生成器的目标取论文的形式 C = ½E_pd[(D* − c)²] + ½E_pg[(D* − c)²]
# （第一项与生成器无关，加上它不改变最优解）。
torch.manual_seed(0)
p_d = torch.rand(10, dtype=torch.float64, device=device) + 0.1
p_d /= p_d.sum()


def lsgan_c(p_g, a, b, c):
    d_star = (b * p_d + a * p_g) / (p_d + p_g)
    return 0.5 * (p_d * (d_star - c) ** 2).sum() + 0.5 * (p_g * (d_star - c) ** 2).sum()


# (1) D* 确实是判别器损失的最小点：往任意方向挪一点，损失都不降
p_g = torch.rand(10, dtype=torch.float64, device=device) + 0.1
p_g /= p_g.sum()
d_star = (p_d - p_g) / (p_d + p_g)                      # a = −1, b = 1
loss_d = lambda d: 0.5 * (p_d * (d - 1) ** 2).sum() + 0.5 * (p_g * (d + 1) ** 2).sum()
assert all(loss_d(d_star + 1e-3 * torch.randn_like(d_star)) > loss_d(d_star) for _ in range(100))

# (2) a = −1, b = 1, c = 0：2C = Σ (p_d − p_g)² / (p_d + p_g)，即论文中 p_d + p_g 与 2p_g 之间的皮尔逊 χ² 散度
chi2 = ((2 * p_g - (p_d + p_g)) ** 2 / (p_d + p_g)).sum()
print(f"a=-1, b=1, c=0：2C = {2 * lsgan_c(p_g, -1, 1, 0).item():.6f}，χ² = {chi2.item():.6f}")
assert abs(2 * lsgan_c(p_g, -1, 1, 0) - chi2) < 1e-12

# (3) 两种编码下，p_g = p_d 都是 C 的最小点：与 1000 个随机的 p_g 比较
rand_pg = torch.rand(1000, 10, dtype=torch.float64, device=device) + 0.05
rand_pg /= rand_pg.sum(1, keepdim=True)
for name, (a, b, c) in {"a=-1, b=1, c=0": (-1.0, 1.0, 0.0), "a=0, b=1, c=1": (0.0, 1.0, 1.0)}.items():
    at_pd = lsgan_c(p_d, a, b, c).item()
    others = torch.stack([lsgan_c(q, a, b, c) for q in rand_pg])
    print(f"{name}：C(p_g = p_d) = {at_pd:.6f}，1000 个随机 p_g 的最小 C = {others.min().item():.6f}")
    assert (others > at_pd).all()
# --8<-- [end:ex1]

# --8<-- [start:ex2]
# 评论家里有批归一化（训练模式）时，D(x̂_i) 依赖整批的均值和方差，批量求出的「梯度」混进了别的样本的贡献。
torch.manual_seed(0)
x_hat = torch.randn(32, 2, dtype=torch.float64, device=device)


def gp_batched(critic, x):
    x = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(critic(x).sum(), x)
    return ((g.norm(dim=1) - 1) ** 2).mean().item()


def gp_per_sample(critic, x):
    """每个样本单独求 ∇_x D(x)，批量统计量固定为整批的值（eval 模式下用的就是固定统计量）。"""
    terms = []
    for i in range(len(x)):
        xi = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(critic(xi)[i].sum(), xi)
        terms.append((g[i].norm() - 1) ** 2)     # 只保留 D(x̂_i) 对 x̂_i 自己的偏导
    return torch.stack(terms).mean().item()


for name, norm in [("批归一化", nn.BatchNorm1d(16)), ("层归一化", nn.LayerNorm(16))]:
    critic = nn.Sequential(nn.Linear(2, 16), norm, nn.Tanh(), nn.Linear(16, 1)).to(device).double().train()
    b, p = gp_batched(critic, x_hat), gp_per_sample(critic, x_hat)
    if name == "层归一化":
        assert abs(b - p) < 1e-12                # 层归一化只在每个样本内部归一化，批量写法仍然正确
        print(f"{name}：批量 {b:.6f}，逐个样本 {p:.6f}，差 < 1e-12")
    else:
        assert abs(b - p) > 1e-3                 # 批归一化下批量写法算的不是每个样本的梯度
        print(f"{name}：批量 {b:.6f}，逐个样本 {p:.6f}，差 {abs(b - p):.4f}")
# --8<-- [end:ex2]

# --8<-- [start:ex3]
# 正文 clip 一节的两组二维样本，裁剪常数 c 从 0.005 取到 0.1
torch.manual_seed(0)
real_2d = torch.tensor([2.0, 0.0], device=device) + 0.5 * torch.randn(512, 2, device=device)
fake_2d = 0.5 * torch.randn(512, 2, device=device)
w1 = w1_assignment(real_2d, fake_2d)
clips = [0.005, 0.01, 0.02, 0.05, 0.1]
estimates = []
print(f"精确 W1 = {w1:.4f}")
print("   c      估计        估计 / W1")
for c in clips:
    torch.manual_seed(1)
    est = fit_clipped_critic(real_2d, fake_2d, c)
    estimates.append(est)
    print(f"{c:6.3f}  {est:10.4f}  {est / w1:12.4f}")
slope = torch.linalg.lstsq(torch.stack([torch.tensor(clips).log(), torch.ones(5)], 1),
                           torch.tensor(estimates).log()[:, None]).solution[0, 0].item()
print(f"log(估计) 对 log(c) 的斜率 = {slope:.2f}")
assert all(e1 < e2 for e1, e2 in zip(estimates, estimates[1:]))     # c 越大，估计越大
assert 2.5 < slope < 3.5                                            # 大致按 c³ 变化：三层权重各贡献一个 c
# --8<-- [end:ex3]
