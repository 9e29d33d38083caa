# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
f64 = dict(dtype=torch.float64, device=device)


def f_true(x):
    return 2 * torch.sin(x) + x ** 0.8


gen = torch.Generator().manual_seed(0)                          # 与正文相同的数据
n_train = 50
x_train = (torch.rand(n_train, generator=gen, dtype=torch.float64) * 5).sort().values.to(device)
y_train = f_true(x_train) + 0.5 * torch.randn(n_train, generator=gen, dtype=torch.float64).to(device)
x_test = torch.arange(0, 5, 0.1, **f64)
y_test = f_true(x_test)


def nw_kernel(x_q, x_k, y_k, sigma):
    K = torch.exp(-(x_q[:, None] - x_k[None, :]) ** 2 / (2 * sigma ** 2))
    return (K @ y_k) / K.sum(dim=1)


def nw_attention(x_q, x_k, y_k, sigma, mask=None):
    scores = -(x_q[:, None] - x_k[None, :]) ** 2 / (2 * sigma ** 2)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=1)
    return weights @ y_k, weights
# --8<-- [end:imports]


# --8<-- [start:ex1]
nearest = (x_test[:, None] - x_train[None, :]).abs().argmin(dim=1)   # 每个查询最近的训练点
pred_small, _ = nw_attention(x_test, x_train, y_train, 1e-4)
pred_kernel = nw_kernel(x_test, x_train, y_train, 1e-4)
err_nn = (pred_small - y_train[nearest]).abs().max().item()
print(f"sigma=1e-4：softmax 写法与最近邻的 y 的最大差 {err_nn:.1e}；"
      f"原始核公式得到 NaN 的查询数 {int(pred_kernel.isnan().sum())} / {len(x_test)}")
assert err_nn < 1e-10 and pred_kernel.isnan().any()

pred_large, w_large = nw_attention(x_test, x_train, y_train, 1e3)
err_mean = (pred_large - y_train.mean()).abs().max().item()
print(f"sigma=1e3：与训练集 y 均值 {y_train.mean().item():.4f} 的最大差 {err_mean:.1e}，"
      f"权重最小 {w_large.min().item():.5f}、最大 {w_large.max().item():.5f}（1/50 = 0.02）")
assert err_mean < 1e-4
print(f"测试 MSE：最近邻 {F.mse_loss(pred_small, y_test).item():.4f}，"
      f"常数均值 {F.mse_loss(pred_large, y_test).item():.4f}")
# --8<-- [end:ex1]


# --8<-- [start:ex2]
class Additive(nn.Module):
    def __init__(self, d_q, d_k, d_h, act):
        super().__init__()
        self.W_q = nn.Linear(d_q, d_h, bias=False)
        self.W_k = nn.Linear(d_k, d_h, bias=False)
        self.v = nn.Linear(d_h, 1, bias=False)
        self.act = act

    def forward(self, q, K):                      # q (d_q,)，K (T_k, d_k) → 权重 (T_k,)
        return torch.softmax(self.v(self.act(self.W_q(q) + self.W_k(K))).squeeze(-1), dim=-1)


K = torch.randn(6, 12, **f64)
q1, q2 = torch.randn(20, **f64), torch.randn(20, **f64)
for name, act in [("tanh", torch.tanh), ("去掉 tanh", nn.Identity())]:
    att = Additive(20, 12, 8, act).to(**f64)
    w1, w2 = att(q1, K), att(q2, K)
    print(f"{name:<7} 两个不同查询的权重最大差 {(w1 - w2).abs().max().item():.1e}")
    if name == "tanh":
        assert (w1 - w2).abs().max().item() > 1e-3
    else:
        assert (w1 - w2).abs().max().item() < 1e-12      # 权重与查询无关
# --8<-- [end:ex2]


# --8<-- [start:ex3]
def learn_sigma(mask):
    log_sigma = torch.tensor(0.0, **f64, requires_grad=True)
    opt = torch.optim.Adam([log_sigma], lr=0.05)
    for _ in range(200):
        loss = F.mse_loss(nw_attention(x_train, x_train, y_train, log_sigma.exp(), mask=mask)[0], y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return log_sigma.exp().item(), loss.item()


not_self = ~torch.eye(n_train, dtype=torch.bool, device=device)
res = {}
for name, mask in [("留一（屏蔽自己）", not_self), ("不屏蔽", None)]:
    sigma, train_loss = learn_sigma(mask)
    with torch.no_grad():
        test_mse = F.mse_loss(nw_attention(x_test, x_train, y_train, sigma)[0], y_test).item()
    res[name] = (sigma, train_loss, test_mse)
    print(f"{name:<8} sigma {sigma:.4f}  训练目标 {train_loss:.4f}  测试 MSE {test_mse:.4f}")
loo, plain = res["留一（屏蔽自己）"], res["不屏蔽"]
assert plain[0] < loo[0] / 2 and plain[1] < loo[1] / 10 and plain[2] > loo[2]
# --8<-- [end:ex3]
