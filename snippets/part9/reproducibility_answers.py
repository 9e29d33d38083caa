# --8<-- [start:imports]
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
class Jitter(Dataset):
    """给样本 i 加一个随机偏移。per_sample=True 时，随机数只由 (seed, epoch, i) 决定。"""

    def __init__(self, n: int = 8, seed: int = 0, per_sample: bool = False):
        self.n, self.seed, self.per_sample, self.epoch = n, seed, per_sample, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> float:
        if self.per_sample:
            g = torch.Generator().manual_seed(self.seed * 10**6 + self.epoch * 10**3 + i)  # 设 n < 1000
            return torch.rand((), generator=g).item()
        return torch.rand(()).item()             # 主进程或工作进程自己的全局生成器


def augmentations(ds: Jitter, num_workers: int, epochs: int = 2) -> list[list[float]]:
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers,
                        multiprocessing_context="fork" if num_workers else None,
                        generator=torch.Generator().manual_seed(0))
    out = []
    for epoch in range(epochs):
        ds.epoch = epoch                         # 工作进程每轮重新创建，会看到新的 epoch
        out.append([round(v, 4) for v in loader])
    return out


for per_sample in (False, True):
    runs = {w: augmentations(Jitter(per_sample=per_sample), w) for w in (0, 2)}
    print(f"per_sample={per_sample}：num_workers=0 第一轮 {runs[0][0][:4]}")
    print(f"{'':18}num_workers=2 第一轮 {runs[2][0][:4]}，两轮相同：{runs[2][0] == runs[2][1]}")
    assert (runs[0] == runs[2]) == per_sample    # 只有按样本定种子时，结果与 num_workers 无关
    assert runs[2][0] != runs[2][1]              # 两种写法每轮的增强都在变
# --8<-- [end:ex1]


# --8<-- [start:ex2]
class OwnRng(Dataset):
    """数据集在 __init__ 里创建自己的 NumPy 生成器（正文里的 Augmented 的精简版）。"""

    def __init__(self, n: int = 4):
        import numpy as np
        self.n, self.rng = n, np.random.default_rng(0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> float:
        return round(float(self.rng.random()), 4)


loader = DataLoader(OwnRng(), batch_size=None, num_workers=2, multiprocessing_context="fork",
                    persistent_workers=True, generator=torch.Generator().manual_seed(0))
e1, e2 = list(loader), list(loader)
print("persistent_workers=True：第一轮", e1, " 第二轮", e2)
assert e1[0::2] == e1[1::2] and e2[0::2] == e2[1::2]   # 两个进程仍然给出同一串数
assert e1 != e2                                        # 但进程不再重建，第二轮接着往下取
del loader                                             # 结束常驻的工作进程
# --8<-- [end:ex2]


# --8<-- [start:ex3]
code = "print(list({'猫', '狗', '鸟', '鱼', '马', '牛'}))"     # 用 set 去重后直接当词表
orders = {}
for hash_seed in ("1", "2", "1"):
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    orders.setdefault(hash_seed, []).append(out.stdout.strip())
    print(f"PYTHONHASHSEED={hash_seed}：{out.stdout.strip()}")
assert orders["1"][0] == orders["1"][1]          # 同一个 hash 种子：顺序相同
assert orders["1"][0] != orders["2"][0]          # 换一个：词表里每个词的编号都变了
print("sorted 之后：", sorted({'猫', '狗', '鸟', '鱼', '马', '牛'}))
# --8<-- [end:ex3]


# --8<-- [start:ex4]
data_gen = torch.Generator().manual_seed(0)
data = TensorDataset(torch.randn(64, 8, generator=data_gen), torch.randn(64, 1, generator=data_gen))


def make(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, torch.Generator().manual_seed(seed)     # 最后一个管数据顺序


def run(model, opt, g, epochs: int) -> None:
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=g)
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.mse_loss(model(xb.to(device)), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()


def rng_state(g: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "loader": g.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()          # GPU 上的丢弃掩码用它
    return state


def set_rng_state(g: torch.Generator, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    g.set_state(state["loader"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


straight = make(0)
run(*straight, epochs=4)                                        # 一口气训练 4 轮

half = make(0)
run(*half, epochs=2)
ckpt = {"model": half[0].state_dict(), "opt": half[1].state_dict(), "rng": rng_state(half[2])}
results = {}
for restore_rng in (True, False):
    resumed = make(123)                                         # 新进程：别的种子、新的对象
    resumed[0].load_state_dict(ckpt["model"])
    resumed[1].load_state_dict(ckpt["opt"])
    if restore_rng:
        set_rng_state(resumed[2], ckpt["rng"])
    run(*resumed, epochs=2)
    results[restore_rng] = all(torch.equal(p, q) for p, q in zip(straight[0].parameters(), resumed[0].parameters()))
    print(f"恢复生成器状态={restore_rng}：续训 2 轮后与一口气训练 4 轮逐位相同 {results[restore_rng]}")
assert results[True] and not results[False]
# --8<-- [end:ex4]
