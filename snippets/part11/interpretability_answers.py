# --8<-- [start:imports]
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# 与正文相同的数据划分与 MLP；train 多了一个参数：训练前怎样改动训练集
X_all, y_all = load_digits(return_X_y=True)
X_all = torch.tensor(X_all / 16.0, dtype=torch.float32)
y_all = torch.tensor(y_all)
X_tr, X_te, y_tr, y_te = train_test_split(X_all, y_all, test_size=0.3, stratify=y_all, random_state=0)
X_tr, y_tr, X_te, y_te = X_tr.to(device), y_tr.to(device), X_te.to(device), y_te.to(device)


def train(X: torch.Tensor, y: torch.Tensor) -> nn.Module:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()


def logit_of(m, inp, t):
    return m(inp).gather(1, t[:, None])[:, 0]


def saliency(m, inp, t):
    inp = inp.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(logit_of(m, inp, t).sum(), inp)
    return g


def integrated_gradients(m, inp, base, t, n_steps=50):
    """高斯-勒让德求积的积分梯度（与正文相同）。"""
    nodes, w = np.polynomial.legendre.leggauss(n_steps)
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32, device=inp.device)
    weights = torch.tensor(w / 2, dtype=torch.float32, device=inp.device)
    B, D = inp.shape
    path = base[None] + alphas[:, None, None] * (inp - base)[None]
    g = saliency(m, path.reshape(-1, D), t.repeat(n_steps)).reshape(n_steps, B, D)
    return (inp - base) * (weights[:, None, None] * g).sum(dim=0)


model = train(X_tr, y_tr)                        # 正文里的模型（同样的数据与训练）
# --8<-- [end:imports]

# --8<-- [start:ex1]
CORNER = 0                                       # 左上角的像素：digits 里它永远是 0
X_short = X_tr.clone()
X_short[y_tr == 7, CORNER] = 1.0                 # 训练集里每张「7」都带一个亮点
shortcut = train(X_short, y_tr)

with torch.no_grad():
    clean_acc = (shortcut(X_te).argmax(1) == y_te).float().mean().item()
    X_dot = X_te.clone()
    X_dot[:, CORNER] = 1.0                       # 给测试集的每张图都点上亮点
    pred_dot = shortcut(X_dot).argmax(1)
    recall7 = (shortcut(X_te[y_te == 7]).argmax(1) == 7).float().mean().item()   # 不带亮点的「7」
    recall7_normal = (model(X_te[y_te == 7]).argmax(1) == 7).float().mean().item()
others = y_te != 7
to_seven = (pred_dot[others] == 7).float().mean().item()
print(f"干净测试集准确率 {clean_acc:.3f}，不带亮点的「7」被认出的比例 {recall7:.3f}（正常训练的模型 {recall7_normal:.3f}）")
print(f"非 7 的测试图点上亮点后被判成 7 的比例 {to_seven:.3f}")

sevens = X_dot[y_te == 7]                        # 带亮点的「7」：看积分梯度把功劳记给谁
t7 = torch.full((len(sevens),), 7, device=device)
ig = integrated_gradients(shortcut, sevens, torch.zeros_like(sevens), t7)
top_is_corner = (ig.argmax(dim=1) == CORNER).float().mean().item()
share = (ig[:, CORNER] / ig.sum(dim=1)).mean().item()
print(f"带亮点的 {len(sevens)} 张「7」中，归因最大的像素是亮点的比例 {top_is_corner:.3f}；"
      f"亮点占归因总和的平均比例 {share:.3f}")
assert clean_acc >= 0.9
assert recall7 < recall7_normal - 0.05           # 种子 0–3：带捷径 0.741–0.833，正常 0.981–1.000
assert to_seven < 0.1                            # 种子 0–3：0.039–0.053，亮点本身不足以改判
assert top_is_corner > 0.9 and share > 0.3       # 种子 0–3：比例都为 1.000，占比 0.395–0.481
# --8<-- [end:ex1]

# --8<-- [start:ex2]
x = X_te[:16]
with torch.no_grad():
    target = model(x).argmax(1)
baseline = torch.zeros_like(x)
with torch.no_grad():
    gap = logit_of(model, x, target) - logit_of(model, baseline, target)
cig = IntegratedGradients(model)
print(f"{'n':>5}{'权重之和':>10}{'平均误差':>10}{'误差 × n / 平均 gap':>20}")
ratios = []
for n in [8, 32, 128, 512]:
    attr = cig.attribute(x, baselines=baseline, target=target, n_steps=n, method="riemann_trapezoid")
    err = (attr.sum(1) - gap).abs().mean().item()
    w_sum = 1 - 1 / n                            # Captum 的权重：[1/(2n), 1/n, …, 1/n, 1/(2n)]
    ratios.append(err * n / gap.mean().item())
    print(f"{n:>5}{w_sum:10.4f}{err:10.4f}{ratios[-1]:20.3f}")
# 改正：把权重之和放大回 1，即乘 n / (n − 1)，误差就回到教科书梯形法则的水平
n = 512
fixed = cig.attribute(x, baselines=baseline, target=target, n_steps=n, method="riemann_trapezoid") * n / (n - 1)
fixed_err = (fixed.sum(1) - gap).abs().mean().item()
# 教科书的梯形法则：同样的节点，两端权重 1/(2(n − 1))，中间 1/(n − 1)
alphas = torch.linspace(0, 1, n, device=device)
w = torch.full((n,), 1 / (n - 1), device=device)
w[[0, -1]] /= 2
path = baseline[None] + alphas[:, None, None] * (x - baseline)[None]
g = saliency(model, path.reshape(-1, 64), target.repeat(n)).reshape(n, len(x), 64)
textbook = (x - baseline) * (w[:, None, None] * g).sum(0)
same = (fixed - textbook).abs().max().item()
print(f"n = 512，乘上 n/(n − 1) 之后的平均误差 {fixed_err:.4f}；与教科书梯形法则的最大差 {same:.1e}")
assert abs(ratios[-1] - 1) < 0.05                # 误差 ≈ gap / n：只按 1/n 缩小（种子 0–3：0.980–0.992）
assert fixed_err < 0.2 * (gap.mean().item() / n) and same < 1e-4
# --8<-- [end:ex2]

# --8<-- [start:ex3]
linear = nn.Linear(64, 10).to(device)            # 线性模型：f_t(x) = w_t · x + b_t
x1 = X_te[:5]
t1 = torch.arange(5, device=device)
b1 = torch.rand_like(x1)                         # 任意基线
exact = linear.weight[t1].detach() * (x1 - b1)   # w_t ⊙ (x − x')
worst = max((integrated_gradients(linear, x1, b1, t1, n) - exact).abs().max().item() for n in [1, 2, 50])
sal_same = (saliency(linear, x1, t1) - saliency(linear, torch.rand_like(x1), t1)).abs().max().item()
print(f"线性模型：n = 1, 2, 50 的积分梯度与 w⊙(x − x') 的最大差 {worst:.1e}；换一个输入，梯度的变化 {sal_same:.1e}")
assert worst < 1e-5 and sal_same == 0.0
# --8<-- [end:ex3]
