# --8<-- [start:setup]
import torch
import torch.nn as nn
from sklearn.datasets import make_moons
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
gen = torch.Generator().manual_seed(0)  # 随机数在 CPU 上生成，CPU/GPU 数据一致


def error_of(fn) -> str:
    """运行 fn()，返回它抛出的 RuntimeError 消息的第一行；没有报错则返回空串。"""
    try:
        fn()
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    return ""


# 二分类数据：两个交错的半月形，512 个二维点，标签是 0.0/1.0 浮点数
X_np, y_np = make_moons(n_samples=512, noise=0.2, random_state=0)
X_all = torch.tensor(X_np, dtype=torch.float32)               # (512, 2)
y_all = torch.tensor(y_np, dtype=torch.float32).unsqueeze(1)  # (512, 1)
# --8<-- [end:setup]

# --8<-- [start:bce-demo]
# 错误写法的后果。固定在 CPU 上演示：GPU 上越界的输入会触发设备端断言，使整个进程的 CUDA 失效
raw = nn.Linear(2, 1)(X_all[:8])                    # 线性层的输出：任意实数，没有经过 sigmoid
fake_target = torch.randn(8, 1, generator=gen)      # 标准正态随机数，不是 0/1 标签
msg_input = error_of(lambda: nn.BCELoss()(raw, y_all[:8]))
msg_target = error_of(lambda: nn.BCELoss()(torch.sigmoid(raw), fake_target))
print(f"输出的范围：[{raw.min().item():.2f}, {raw.max().item():.2f}]")
print(f"BCELoss(线性输出, 0/1 标签)    -> RuntimeError: {msg_input}")
print(f"BCELoss(sigmoid 输出, randn 目标) -> RuntimeError: {msg_target}")
assert "input should be between 0 and 1" in msg_input
assert "target should be between 0 and 1" in msg_target

# 目标超出 [0, 1] 时，交叉熵公式本身就不再是损失：它可以为负，且没有下界
p, y_bad = torch.tensor(0.99), torch.tensor(1.7)
value = -(y_bad * torch.log(p) + (1 - y_bad) * torch.log(1 - p))
print(f"目标 1.7、预测概率 0.99 时按公式算出的值：{value.item():.4f}")
assert value.item() < 0
# --8<-- [end:bce-demo]

# --8<-- [start:bce-right]
model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)).to(device)  # 最后一层输出 logit
loss_fn = nn.BCEWithLogitsLoss()        # 内部完成 sigmoid，数值稳定
X, y = X_all.to(device), y_all.to(device)
logits = model(X)
gap = abs(loss_fn(logits, y).item() - nn.BCELoss()(torch.sigmoid(logits), y).item())
print(f"初始损失 {loss_fn(logits, y).item():.4f}，与 sigmoid + BCELoss 之差 <= 1e-6：{gap <= 1e-6}")

optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for step in range(100):
    optimizer.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
with torch.no_grad():
    logits = model(X)
    prob = torch.sigmoid(logits)        # 需要概率时再调用 sigmoid
    acc = ((prob > 0.5).float() == y).float().mean().item()
print(f"训练 100 步后：损失 {loss.item():.4f}，训练准确率 {acc:.3f}")
assert gap <= 1e-6 and acc >= 0.93    # 实测 0.969
# --8<-- [end:bce-right]

# --8<-- [start:backward-demo]
net = nn.Linear(2, 1).to(device)
loss = loss_fn(net(X), y)
loss.backward()                                     # 第一次：正常，随后图中保存的中间结果被释放
msg_twice = error_of(lambda: loss.backward())      # 第二次反向同一张图
print(f"第二次 backward -> RuntimeError: {msg_twice.split(' (')[0]}")
assert msg_twice.startswith("Trying to backward through the graph a second time")

net.zero_grad()
loss = loss_fn(net(X), y)
loss.backward(retain_graph=True)                    # 保留图，才能再反向一次
g_once = net.weight.grad.clone()
loss.backward()                                     # 不报错了，但梯度累加成两倍
ratio = (net.weight.grad / g_once).mean().item()
print(f"retain_graph=True 时第二次 backward 不报错，但 weight.grad 变成第一次的 {ratio:.1f} 倍")
assert torch.allclose(net.weight.grad, 2 * g_once)
# --8<-- [end:backward-demo]


# --8<-- [start:backward-right]
def train_step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer) -> float:
    optimizer.zero_grad()            # 清掉上一步（以及上面演示）留下的梯度
    loss = loss_fn(model(xb), yb)    # 每一步重新前向，建一张新图
    loss.backward()                  # 每张图只反向一次
    optimizer.step()
    return loss.item()


opt = torch.optim.SGD(net.parameters(), lr=0.1)
w_before = net.weight.detach().clone()
(g_ref,) = torch.autograd.grad(loss_fn(net(X), y), net.weight)   # 这一步「应有」的梯度
loss_value = train_step(net, X, y, loss_fn, opt)
print(f"train_step：损失 {loss_value:.4f}，weight.grad 等于一次反向的梯度："
      f"{torch.allclose(net.weight.grad, g_ref)}")
assert torch.allclose(net.weight.grad, g_ref)
assert torch.allclose(net.weight.detach(), w_before - 0.1 * g_ref)
# --8<-- [end:backward-right]

# --8<-- [start:loader-demo]
# 1) 函数里用到的 device 在它所在的模块中没有定义：一调用就 NameError
module_globals: dict = {}
exec("def to_device(x):\n    return x.to(device)\n", module_globals)   # 模拟一个没有定义 device 的模块
try:
    module_globals["to_device"](X_all)
    msg_name = ""
except NameError as exc:
    msg_name = str(exc)
print(f"未定义 device -> NameError: {msg_name}")
assert msg_name == "name 'device' is not defined"

# 2) 直接遍历 Dataset：每次只得到一个样本，没有批维度
dataset = TensorDataset(X_all, y_all)
x0, y0 = next(iter(dataset))
print(f"遍历 Dataset：每次 x {tuple(x0.shape)}、y {tuple(y0.shape)}，一轮迭代 {sum(1 for _ in dataset)} 次")
loader = DataLoader(dataset, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
xb, yb = next(iter(loader))
print(f"遍历 DataLoader：每次 x {tuple(xb.shape)}、y {tuple(yb.shape)}，一轮迭代 {len(loader)} 次")
assert x0.shape == (2,) and xb.shape == (32, 2) and len(loader) == 16
# --8<-- [end:loader-demo]


# --8<-- [start:loader-right]
def train_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    model.train()
    total, count = 0.0, 0
    for xb, yb in loader:                           # 每次一个小批量：(B, 2) 与 (B, 1)
        xb, yb = xb.to(device), yb.to(device)       # device 作为参数传入
        total += train_step(model, xb, yb, loss_fn, optimizer) * len(xb)   # 批内平均 × 批大小
        count += len(xb)
    return total / count                            # 按样本数平均


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
             device: torch.device) -> tuple[float, float]:
    model.eval()
    total, correct, count = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        logits = model(xb)
        total += loss_fn(logits, yb).item() * len(xb)
        correct += ((logits > 0).float() == yb).sum().item()   # logit > 0 即概率 > 0.5
        count += len(xb)
    return total / count, correct / count


perm = torch.randperm(len(dataset), generator=gen)
train_set = TensorDataset(X_all[perm[:384]], y_all[perm[:384]])
test_set = TensorDataset(X_all[perm[384:]], y_all[perm[384:]])
train_loader = DataLoader(train_set, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
test_loader = DataLoader(test_set, batch_size=64)

model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for epoch in range(1, 21):
    train_loss = train_epoch(model, train_loader, loss_fn, optimizer, device)
    if epoch in (1, 5, 10, 20):
        test_loss, test_acc = evaluate(model, test_loader, loss_fn, device)
        print(f"第 {epoch:2d} 轮：训练损失 {train_loss:.4f}，测试损失 {test_loss:.4f}，测试准确率 {test_acc:.3f}")

# 按样本平均的测试损失应等于在整个测试集上一次算出的损失
with torch.no_grad():
    X_te, y_te = test_set.tensors
    whole = loss_fn(model(X_te.to(device)), y_te.to(device)).item()
    seed_style = sum(loss_fn(model(xb.to(device)), yb.to(device)).item()
                     for xb, yb in test_loader) / len(test_set)      # 批内平均之和 ÷ 样本数
print(f"整个测试集上的损失 {whole:.4f}；各批平均损失之和除以样本数 {seed_style:.4f}")
assert abs(test_loss - whole) <= 1e-6 and test_acc >= 0.92   # 实测 0.953
assert seed_style < whole / 20                                  # 小了约一个批大小的倍数
# --8<-- [end:loader-right]
