# --8<-- [start:imports]
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
dtype = torch.float64


def augment(X: torch.Tensor) -> torch.Tensor:
    """与正文相同：在每个样本末尾补常数 1，把偏置并入权重。"""
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype, device=X.device)], dim=1)


def perceptron(X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 1.0, seed: int = 0):
    """与正文 train 一节相同的感知机（返回 w~、更新次数、每轮结束时的错误数、每轮的 ||w~||）。"""
    order_gen = torch.Generator().manual_seed(seed)
    Xa = augment(X)
    w = torch.zeros(Xa.shape[1], dtype=X.dtype, device=X.device)
    updates, errors_per_epoch, norms = 0, [], []
    for _ in range(epochs):
        for i in torch.randperm(len(y), generator=order_gen).tolist():
            if y[i] * (w @ Xa[i]) <= 0:
                w = w + lr * y[i] * Xa[i]
                updates += 1
        errors = int((y * (Xa @ w) <= 0).sum())
        errors_per_epoch.append(errors)
        norms.append(w.norm().item())
        if errors == 0:
            break
    return w, updates, errors_per_epoch, norms


def make_data(threshold: float, n: int = 100):
    """与正文 data 一节相同的 400 个点（同一个种子），只改间隔阈值。"""
    gen = torch.Generator().manual_seed(0)
    w_true = torch.tensor([1.0, -0.6], dtype=dtype)
    b_true = 0.2
    pts = torch.rand(400, 2, generator=gen, dtype=dtype) * 2 - 1
    dist = (pts @ w_true + b_true) / w_true.norm()
    keep = dist.abs() >= threshold
    X = pts[keep][:n].to(device)
    y = torch.where(dist[keep][:n] > 0, 1.0, -1.0).to(dtype).to(device)
    u_true = torch.cat([w_true, torch.tensor([b_true], dtype=dtype)]).to(device)
    return X, y, u_true
# --8<-- [end:imports]

# --8<-- [start:ex1]
print("阈值 | 保留点数 | 更新次数 | 轮数 |   R    |   γ    | (R/γ)^2")
results = {}
for threshold in [0.02, 0.1, 0.3]:
    X, y, u_true = make_data(threshold)
    w, updates, errs, _ = perceptron(X, y, epochs=100)
    Xa = augment(X)
    R = Xa.norm(dim=1).max().item()
    gamma = (y * (Xa @ u_true)).min().item() / u_true.norm().item()
    bound = (R / gamma) ** 2
    results[threshold] = (updates, bound)
    print(f"{threshold:4} | {len(y):8d} | {updates:8d} | {len(errs):4d} | {R:.4f} | {gamma:.4f} | {bound:7.1f}")
    assert errs[-1] == 0 and 0 < updates <= bound          # 收敛，且不超过 Novikoff 上界
bounds = [results[t][1] for t in [0.02, 0.1, 0.3]]
updates = [results[t][0] for t in [0.02, 0.1, 0.3]]
assert bounds[0] > bounds[1] > bounds[2]                    # 间隔越大，上界越小
assert updates[0] > updates[1] > updates[2]                 # 这组数据上，更新次数也随之减少
# --8<-- [end:ex1]

# --8<-- [start:ex2]
X, y, _ = make_data(0.1)                                    # 正文的数据
runs = {lr: perceptron(X, y, epochs=100, lr=lr) for lr in [0.1, 1.0, 10.0]}
w1 = runs[1.0][0]
for lr, (w, updates, errs, _) in runs.items():
    ratio = (w / w1).tolist()
    print(f"lr = {lr:4}：{updates} 次更新，{len(errs)} 轮，w~ = {[round(v, 4) for v in w.tolist()]}，"
          f"w~ / w~(lr=1) = {[round(r, 6) for r in ratio]}")
    assert updates == runs[1.0][1] and errs == runs[1.0][2]          # 更新次数、每轮错误数完全相同
    assert torch.allclose(w, lr * w1, rtol=1e-12, atol=0)             # 权重只差一个倍数 lr
# --8<-- [end:ex2]

# --8<-- [start:ex3]
X_bool = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype, device=device)
y_xor = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=dtype, device=device)
X3 = torch.cat([X_bool, X_bool[:, :1] * X_bool[:, 1:]], dim=1)      # (x1, x2, x1 x2)，形状 (4, 3)
w3, updates3, errs3, _ = perceptron(X3, y_xor, epochs=1000)
print(f"加入 x1·x2 后：{len(errs3)} 轮、{updates3} 次更新后收敛，每轮错误数 {errs3}")
print(f"学到的 (w, b) = {w3.tolist()}")
assert errs3[-1] == 0 and (y_xor * (augment(X3) @ w3) > 0).all()

w_hand = torch.tensor([1.0, 1.0, -2.0, -0.5], dtype=dtype, device=device)   # w = (1, 1, -2)，b = -0.5
z_hand = augment(X3) @ w_hand
print(f"手工的 w = (1, 1, -2)、b = -0.5：z = {z_hand.tolist()}")
assert (torch.sign(z_hand) == y_xor).all()
relu_h2 = torch.relu(X_bool.sum(dim=1) - 1)                          # 下一节异或网络的 h2 = ReLU(x1 + x2 - 1)
print(f"在这 4 个点上 ReLU(x1 + x2 - 1) = {relu_h2.tolist()}，x1·x2 = {X3[:, 2].tolist()}")
assert torch.equal(relu_h2, X3[:, 2])
# --8<-- [end:ex3]

# --8<-- [start:ex4]
separable, failed = [], []
print("f(0,0) f(0,1) f(1,0) f(1,1) | 收敛")
for code in range(16):
    bits = [(code >> (3 - k)) & 1 for k in range(4)]                   # 真值表，对应 X_bool 的 4 行
    y_f = torch.tensor([1.0 if b else -1.0 for b in bits], dtype=dtype, device=device)
    _, _, errs_f, _ = perceptron(X_bool, y_f, epochs=100)
    ok = errs_f[-1] == 0
    (separable if ok else failed).append(bits)
    print("   " + "      ".join(str(b) for b in bits) + f"   | {'是' if ok else '否'}")
print(f"收敛：{len(separable)} 个；不收敛：{len(failed)} 个，真值表 {failed}")
assert len(separable) == 14 and failed == [[0, 1, 1, 0], [1, 0, 0, 1]]   # 只有异或与同或
# --8<-- [end:ex4]
