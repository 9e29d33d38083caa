# --8<-- [start:imports]
import numpy as np
import torch

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def grid_world(slip: float, gamma: float = 0.9, step_r: float = -0.04):
    """与正文相同的 4×4 格子世界；返回 P (S, A, S) 与 R (S, A)。"""
    H = W = 4
    wall, pit, goal = 5, 7, 15
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]

    def move(s, a):
        r, c = divmod(s, W)
        r2, c2 = r + moves[a][0], c + moves[a][1]
        if not (0 <= r2 < H and 0 <= c2 < W) or r2 * W + c2 == wall:
            return s
        return r2 * W + c2

    P, R = np.zeros((16, 4, 16)), np.zeros((16, 4))
    for s in range(16):
        if s in (wall, pit, goal):
            P[s, :, s] = 1.0
            continue
        for a in range(4):
            for a2, p in ((a, 1 - slip), ((a + 1) % 4, slip / 2), ((a + 3) % 4, slip / 2)):
                s2 = move(s, a2)
                P[s, a, s2] += p
                R[s, a] += p * (1.0 if s2 == goal else -1.0 if s2 == pit else step_r)
    return P, R


def value_iteration(P, R, gamma=0.9):
    V = np.zeros(P.shape[0])
    while True:
        Q = R + gamma * P @ V
        if np.abs(Q.max(1) - V).max() < 1e-12:
            return Q.max(1), Q
        V = Q.max(1)
# --8<-- [end:imports]


# --8<-- [start:ex1]
V0, Q0 = value_iteration(*grid_world(slip=0.0))
V2, Q2 = value_iteration(*grid_world(slip=0.2))
# 没有打滑时，从 (0,0) 走最短路（6 步）到终点：前 5 步各得 -0.04，第 6 步得 +1
closed = sum(-0.04 * 0.9**k for k in range(5)) + 0.9**5
print(f"V*(0,0)：打滑 0 时 {V0[0]:.4f}（闭式 {closed:.4f}），打滑 0.2 时 {V2[0]:.4f}")
print("最优动作不同的格子数：", int((Q0.argmax(1) != Q2.argmax(1))[[s for s in range(16) if s not in (5, 7, 15)]].sum()))
assert abs(V0[0] - closed) < 1e-9 and V0[0] > V2[0]
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def q_learning(P, R, steps, eps, seed, gamma=0.9):
    rng = np.random.default_rng(seed)
    cum = P.cumsum(axis=2)
    starts = [s for s in range(16) if s not in (5, 7, 15)]
    Qh, n = np.zeros((16, 4)), np.zeros((16, 4))
    u = rng.random((steps, 3))
    s = starts[int(u[0, 0] * len(starts))]
    for t in range(steps):
        a = int(u[t, 0] * 4) if u[t, 1] < eps else int(Qh[s].argmax())
        s2 = int(np.searchsorted(cum[s, a], u[t, 2]))
        r = 1.0 if s2 == 15 else -1.0 if s2 == 7 else -0.04
        target = r + (0.0 if s2 in (7, 15) else gamma * Qh[s2].max())
        n[s, a] += 1
        Qh[s, a] += (target - Qh[s, a]) / n[s, a] ** 0.8
        s = starts[int(u[t, 1] * len(starts))] if s2 in (7, 15) else s2
    return Qh, n


P, R = grid_world(slip=0.2)
live = [s for s in range(16) if s not in (5, 7, 15)]
for eps in (0.5, 0.0):
    errs, never = [], []
    for seed in range(3):
        Qh, n = q_learning(P, R, 50_000, eps, seed)
        errs.append(np.abs(Qh[live] - Q2[live]).max())
        never.append(int((n[live] == 0).sum()))
    print(f"ε = {eps}：max|Q - Q*|（种子 0–2）{np.round(errs, 3).tolist()}，从未试过的 (s, a) 数 {never}")
    if eps == 0.5:
        errs_explore = errs
    else:
        errs_greedy, never_greedy = errs, never
assert min(errs_greedy) > max(errs_explore) and min(never_greedy) > 0
# --8<-- [end:ex2]
