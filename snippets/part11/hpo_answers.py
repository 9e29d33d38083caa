# --8<-- [start:imports]
import math

import numpy as np
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]

# --8<-- [start:ex1]
def grid_vs_random(w: np.ndarray, reps: int = 1000, seed: int = 0):
    """与正文相同的实验：3 个超参数、预算 27；返回随机搜索更好的次数与单侧符号检验的 p 值。"""
    levels = (np.arange(3) + 0.5) / 3
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(reps):
        c = rng.uniform(size=3)
        x = rng.uniform(size=(27, 3))
        wins += ((x - c) ** 2 * w).sum(1).min() < ((grid - c) ** 2 * w).sum(1).min()
    p = sum(math.comb(reps, k) for k in range(wins, reps + 1)) / 2**reps
    return int(wins), p


for name, w in [("只有 1 个重要", np.array([1.0, 0.05, 0.0])), ("3 个同样重要", np.array([1.0, 1.0, 1.0]))]:
    wins, p = grid_vs_random(w)
    print(f"{name}：1000 次中随机搜索更好 {wins} 次，单侧 p = {p:.2g}")
    if name.startswith("3"):
        assert wins < 500                          # 各维同样重要时，随机搜索不再占优：网格反而更常赢
# --8<-- [end:ex1]

# --8<-- [start:ex2]
def halving_epochs(n: int, eta: int, r_min: int, resume: bool) -> int:
    """逐次减半的总 epoch 数：n 个配置，每轮留 1/eta，每轮的 epoch 数乘 eta，直到剩 1 个。"""
    total, done, r = 0, 0, r_min
    while True:
        total += n * ((r - done) if resume else r)  # 续训只花新增的 epoch；从头训练要花满 r 个
        done = r
        if n == 1:
            return total
        n, r = n // eta, r * eta


for n, eta in [(27, 3), (81, 3), (16, 2)]:
    s = round(math.log(n, eta))
    R = eta**s                                     # 最后一轮的 epoch 数
    a, b = halving_epochs(n, eta, 1, True), halving_epochs(n, eta, 1, False)
    print(f"n={n:2d}, eta={eta}：续训 {a} 个 epoch，从头训练 {b} 个，全预算 {n * R} 个")
    assert a == n * (1 + s * (1 - 1 / eta)) and b == n * (s + 1)   # 两个公式
# --8<-- [end:ex2]
