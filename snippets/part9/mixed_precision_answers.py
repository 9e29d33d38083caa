# --8<-- [start:imports]
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
def largest_exact_run(dtype: torch.dtype, limit: int = 2 ** 12) -> int:
    """从 0 开始连续的整数里，能被 dtype 精确表示的最后一个。"""
    ints = torch.arange(limit + 1, dtype=torch.float64)
    ok = ints.to(dtype).double() == ints
    return int(torch.nonzero(~ok)[0].item()) - 1           # 第一个表示不了的整数减 1


for dtype, m in [(torch.float16, 10), (torch.bfloat16, 7)]:
    n = largest_exact_run(dtype)
    print(f"{str(dtype):<15} 尾数 {m:>2} 位：0..{n} 都能精确表示，{n + 1} 舍入成 "
          f"{torch.tensor([n + 1.0], dtype=torch.float64).to(dtype).item():g}")
    assert n == 2 ** (m + 1)
big = torch.tensor([2.0 ** 24 - 1, 2.0 ** 24, 2.0 ** 24 + 1], dtype=torch.float64)
print("float32：", [f"{v:.0f}" for v in big.tolist()], "->", [f"{v:.0f}" for v in big.float().double().tolist()])
assert big.float().double().tolist() == [2.0 ** 24 - 1, 2.0 ** 24, 2.0 ** 24]   # 2^24 + 1 是第一个表示不了的
# --8<-- [end:ex1]

# --8<-- [start:ex2]
lr_times_grad = 0.001                               # 每步的更新量，比 bf16 在 1 附近的半个间距 2^-8 小
w_bf16 = torch.tensor(1.0, dtype=torch.bfloat16, device=device)   # 只存 bf16 的权重
w_master = torch.tensor(1.0, dtype=torch.float32, device=device)  # fp32 主权重
for _ in range(100):
    w_bf16 = w_bf16 + lr_times_grad                 # 结果按 bf16 舍入：1 + 0.001 -> 1
    w_master = w_master + lr_times_grad             # 在 fp32 里累积
print(f"只存 bf16：{w_bf16.item():.4f}；fp32 主权重：{w_master.item():.4f}，"
      f"它的 bf16 副本：{w_master.to(torch.bfloat16).item():.4f}")
assert w_bf16.item() == 1.0                         # 100 次更新全部丢失
assert abs(w_master.item() - 1.1) < 1e-5
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X, y = load_digits(return_X_y=True)
X_tr, _, y_tr, _ = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
X_tr = torch.tensor(X_tr, dtype=torch.float32, device=device)
y_tr = torch.tensor(y_tr, device=device)
torch.manual_seed(0)                                # 与正文 train(0, amp=False) 相同的模型与小批量
model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
opt = torch.optim.Adam(model.parameters(), lr=0.01)
gen = torch.Generator().manual_seed(0)
for _ in range(100):
    idx = torch.randint(0, len(y_tr), (256,), generator=gen).to(device)
    loss = F.cross_entropy(model(X_tr[idx]), y_tr[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()

logits = model(X_tr).detach().requires_grad_(True)
F.cross_entropy(logits, y_tr).backward()
g32 = logits.grad
nonzero = (g32 != 0).sum().item()
zeros, infs = {}, {}
for k in [0, 16, 20, 24, 26, 27]:
    g = (g32 * 2.0 ** k).half()
    zeros[k] = ((g32 != 0) & (g == 0)).sum().item()
    infs[k] = torch.isinf(g).sum().item()
    print(f"S = 2^{k:<2}：{nonzero} 个非零梯度中变成 0 的 {zeros[k]:>5} 个，变成 inf 的 {infs[k]} 个")
assert all(zeros[a] >= zeros[b] for a, b in zip(zeros, list(zeros)[1:]))   # S 越大，下溢越少
assert infs[26] == 0 < infs[27]                     # 2^26 还安全，2^27 开始上溢
# --8<-- [end:ex3]

# --8<-- [start:ex4]
g_bf16 = g32.to(torch.bfloat16)
lost = ((g32 != 0) & (g_bf16 == 0)).sum().item()
rel = ((g_bf16.float() - g32).abs() / g32.abs())[g32 != 0]
print(f"bf16 不缩放：变成 0 的 {lost} 个；最大相对误差 {rel.max().item():.2e}，"
      f"不超过单位舍入 2^-8 = {2.0 ** -8:.2e}")
assert lost == 0 and rel.max().item() <= 2.0 ** -8
# --8<-- [end:ex4]
