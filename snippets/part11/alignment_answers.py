# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
# 6 个可能的回答：参考分布 π_ref 与奖励 r 都随便取；β = 0.5
pi_ref = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.07, 0.03], dtype=torch.float64, device=device)
r = torch.tensor([0.0, 1.0, -0.5, 2.0, 0.3, 1.5], dtype=torch.float64, device=device)
beta = 0.5
closed = pi_ref * torch.exp(r / beta)
closed = closed / closed.sum()                                   # π* ∝ π_ref · exp(r / β)

logits = torch.zeros(6, dtype=torch.float64, device=device, requires_grad=True)
opt = torch.optim.Adam([logits], lr=0.05)
for _ in range(3000):                                            # 直接对 E_π[r] − β·KL(π ‖ π_ref) 做梯度上升
    pi = logits.softmax(0)
    objective = (pi * r).sum() - beta * (pi * (pi.log() - pi_ref.log())).sum()
    opt.zero_grad()
    (-objective).backward()
    opt.step()
pi = logits.softmax(0).detach()
print("梯度上升：", [round(v, 4) for v in pi.tolist()])
print("闭式解：  ", [round(v, 4) for v in closed.tolist()])
assert (pi - closed).abs().max() < 1e-4
# 反过来：β·log(π*/π_ref) 与 r 只差一个常数（β·log Z），所以差值 r(a) − r(b) 可以只用 π* 与 π_ref 写出
implicit = beta * (closed / pi_ref).log()
shift = (r - implicit).tolist()
print(f"r − β·log(π*/π_ref) 的最大值与最小值：{max(shift):.6f}，{min(shift):.6f}")
assert max(shift) - min(shift) < 1e-12
# --8<-- [end:ex1]

# --8<-- [start:ex2]
D = 8
w_true = torch.randn(D, device=device)                           # 与正文的 w* 不同（随机数的顺序不同）


def make_pairs(n):
    a, b = torch.randn(n, D, device=device), torch.randn(n, D, device=device)
    a_wins = torch.rand(n, device=device) < torch.sigmoid((a - b) @ w_true)
    return torch.where(a_wins[:, None], a, b), torch.where(a_wins[:, None], b, a)


train_w, train_l = make_pairs(2000)
test_w, test_l = make_pairs(2000)
acc_true = ((test_w - test_l) @ w_true > 0).float().mean().item()
result = {}
for n in (50, 200, 2000):                                        # 只用前 n 对训练，其余设置与正文相同
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, 1)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = -F.logsigmoid(model(train_w[:n]) - model(train_l[:n])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        result[n] = (loss.item(), (model(test_w) > model(test_l)).float().mean().item())
    print(f"{n:>5} 对：训练损失 {result[n][0]:.3f}，测试集成对准确率 {result[n][1]:.3f}（真实奖励 {acc_true:.3f}）")
assert result[50][0] < result[2000][0]                           # 对越少，训练损失越低（记住了训练对）
assert result[50][1] < result[200][1] < result[2000][1]          # 测试准确率却越低
# --8<-- [end:ex2]
