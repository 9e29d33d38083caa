# --8<-- [start:setup]
import copy
import math
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:bt]
def bt_loss(r_w, r_l):
    """Bradley–Terry 损失：-log σ(r_w - r_l) 的平均，用 log σ(z) = -log(1 + e^{-z}) 写成稳定形式。"""
    return -F.logsigmoid(r_w - r_l).mean()


# 手算的例子：r_w - r_l = 1 时，损失 = log(1 + e^{-1})
hand = bt_loss(torch.tensor([2.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)).item()
print(f"r_w = 2, r_l = 1：损失 {hand:.4f}，log(1 + e^-1) = {math.log(1 + math.exp(-1)):.4f}")
assert abs(hand - math.log(1 + math.exp(-1))) < 1e-12
z = torch.randn(1000, dtype=torch.float64, device=device) * 10                 # 包括很大的差值
formula = torch.log1p(torch.exp(-z)).mean()
same_as_bce = F.binary_cross_entropy_with_logits(z, torch.ones_like(z))         # 标签全为 1 的二元交叉熵
assert abs(bt_loss(z, torch.zeros_like(z)) - formula) < 1e-12 and abs(formula - same_as_bce) < 1e-12

# 生成偏好数据：每个回答是一个 8 维特征向量，隐藏的真实奖励 r*(x) = w*·x；
# 标注员按 Bradley–Terry 模型选择：P(a 优于 b) = σ(r*(a) - r*(b))，所以标签带噪声
D, N_TRAIN, N_TEST = 8, 2000, 2000
w_true = torch.randn(D, device=device)


def make_pairs(n):
    a, b = torch.randn(n, D, device=device), torch.randn(n, D, device=device)
    a_wins = torch.rand(n, device=device) < torch.sigmoid((a - b) @ w_true)
    return torch.where(a_wins[:, None], a, b), torch.where(a_wins[:, None], b, a)   # (胜者, 败者)


train_w, train_l = make_pairs(N_TRAIN)
test_w, test_l = make_pairs(N_TEST)
reward_model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, 1)).to(device)
opt = torch.optim.Adam(reward_model.parameters(), lr=1e-2)
for step in range(300):                                                          # 全批量训练
    loss = bt_loss(reward_model(train_w)[:, 0], reward_model(train_l)[:, 0])
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    acc = (reward_model(test_w) > reward_model(test_l)).float().mean().item()
    acc_true = ((test_w - test_l) @ w_true > 0).float().mean().item()            # 用真实奖励来判，也会错
print(f"训练损失 {loss.item():.3f}；测试集 {N_TEST} 对：奖励模型的成对准确率 {acc:.3f}，真实奖励 {acc_true:.3f}")
# 种子 0–4（w* 与数据都随种子变）：奖励模型 0.742–0.848，比真实奖励低 0.013–0.045；
# 断言下限 0.70 与差距上限 0.07 都留了余量
assert acc > 0.70 and acc > acc_true - 0.07
# --8<-- [end:bt]


# --8<-- [start:data]
def find_corpus(name: str = "book_corpus.txt") -> Path:
    """本书语料快照（同 5.6）：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part4/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


paragraphs = [p for p in find_corpus().read_text(encoding="utf-8").splitlines() if not p.startswith("# ")]
train_p = [p for i, p in enumerate(paragraphs) if i % 10 < 8]                    # 与 4.1、5.6 相同的划分
valid_p = [p for i, p in enumerate(paragraphs) if i % 10 == 8]
counts = Counter(c for p in train_p for c in p)
itos = ["<unk>", "</s>"] + sorted((c for c, n in counts.items() if n >= 2), key=lambda c: (-counts[c], c))
stoi = {c: i for i, c in enumerate(itos)}
V = len(itos)


def encode(text):
    return [stoi.get(c, 0) for c in text]


def decode(ids):
    return "".join("¶" if i == 1 else "□" if i == 0 else itos[i] for i in ids)


data = {name: torch.tensor([1] + [i for p in ps for i in encode(p) + [1]], device=device)
        for name, ps in (("train", train_p), ("valid", valid_p))}
print(f"词表 {V} 个字；训练集 {len(data['train']) - 1} 个词元，验证集 {len(data['valid']) - 1} 个")
assert V == 1136                                                                 # 与 5.6 的词表相同
# --8<-- [end:data]


# --8<-- [start:model]
class CausalSelfAttention(nn.Module):                                            # 同 5.6，去掉了 KV 缓存
    def __init__(self, d, h):
        super().__init__()
        self.h, self.qkv, self.proj = h, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h)
        blocked = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        att = att.masked_fill(blocked, float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, h)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, n_ctx, d, h, layers):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(n_ctx, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx):
        """idx: (B, T) 的词元编号；返回 (B, T, V) 的 logit。"""
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.tok.weight.T                                  # 输出层与词元嵌入共用


cfg = dict(vocab=V, n_ctx=32, d=48, h=4, layers=2)
n_params = sum(p.numel() for p in GPT(**cfg).parameters())
d = cfg["d"]
per_layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
print(f"参数量 {n_params}")
assert n_params == V * d + cfg["n_ctx"] * d + cfg["layers"] * per_layer + 2 * d
# --8<-- [end:model]


# --8<-- [start:pretrain]
@torch.no_grad()
def valid_ce(model, n_tokens=4096):
    """验证集前 n_tokens 个词元上的平均交叉熵（nat），按不重叠的 n_ctx 长窗口计算。"""
    x, n = data["valid"][:n_tokens + 1], cfg["n_ctx"]
    return sum(F.cross_entropy(model(x[s:s + n][None])[0], x[s + 1:s + n + 1], reduction="sum").item()
               for s in range(0, n_tokens, n)) / n_tokens


def pretrain(seed, steps=400, batch=16, lr=1e-2):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = GPT(**cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    x, n = data["train"], cfg["n_ctx"]
    for _ in range(steps):
        start = torch.randint(0, len(x) - n - 1, (batch,), generator=gen).to(device)
        win = x[start[:, None] + torch.arange(n + 1, device=device)]
        loss = F.cross_entropy(model(win[:, :-1]).reshape(-1, V), win[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


ref = pretrain(seed=0)
for p in ref.parameters():
    p.requires_grad_(False)                                                      # 参考模型从此冻结
ce_ref = valid_ce(ref)
print(f"参考模型：验证集交叉熵 {ce_ref:.3f} nat（均匀猜测 log V = {math.log(V):.3f}）")
assert ce_ref < math.log(V) - 1.5
# --8<-- [end:pretrain]


# --8<-- [start:pairs]
L_PRE, L_GEN = 6, 24                                    # 提示（prompt）6 个字，续写 24 个字
TARGET = stoi["的"]


@torch.no_grad()
def sample(model, prompts, gen):
    """从 model 里按概率逐字采样，续写 L_GEN 个字；返回 (B, L_PRE + L_GEN)。"""
    x = prompts
    for _ in range(L_GEN):
        probs = model(x)[:, -1].softmax(dim=-1)
        x = torch.cat([x, torch.multinomial(probs, 1, generator=gen)], dim=1)
    return x


def prompts_from(x, n, gen):
    start = torch.randint(0, len(x) - L_PRE, (n,), generator=gen).to(device)
    return x[start[:, None] + torch.arange(L_PRE, device=device)]


def preferred(x):
    """要测量的偏好：续写里至少有一个「的」。"""
    return (x[:, L_PRE:] == TARGET).any(dim=1)


gen_cpu = torch.Generator().manual_seed(0)                       # 取提示的位置在 CPU 上生成
gen_dev = torch.Generator(device=device).manual_seed(0)          # 采样用设备上的生成器
prompts = prompts_from(data["train"], 512, gen_cpu)
a, b = sample(ref, prompts, gen_dev), sample(ref, prompts, gen_dev)   # 每个提示采样两次
keep = preferred(a) != preferred(b)                                   # 只留下恰有一个合乎偏好的
y_w = torch.where(preferred(a)[:, None], a, b)[keep]
y_l = torch.where(preferred(a)[:, None], b, a)[keep]
print(f"{len(prompts)} 个提示各采样两次，{int(keep.sum())} 对恰有一个续写含「的」，用作偏好对")
print("一对例子：", decode(y_w[0, :L_PRE].tolist()), "|", decode(y_w[0, L_PRE:].tolist()), "≻",
      decode(y_l[0, L_PRE:].tolist()))
assert bool(preferred(y_w).all()) and not bool(preferred(y_l).any()) and (y_w[:, :L_PRE] == y_l[:, :L_PRE]).all()
# --8<-- [end:pairs]


# --8<-- [start:dpo_loss]
def seq_logp(model, x):
    """log π(y | x)：续写部分每个字的对数概率之和，形状 (B,)。提示本身不计。"""
    logp = model(x[:, :-1]).log_softmax(dim=-1).gather(-1, x[:, 1:, None])[..., 0]   # (B, T-1)
    return logp[:, L_PRE - 1:].sum(dim=1)


def dpo_loss(pol_w, pol_l, ref_w, ref_l, beta):
    """DPO：-log σ(β[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]) 的平均。"""
    return -F.logsigmoid(beta * ((pol_w - ref_w) - (pol_l - ref_l))).mean()


# 手算的例子：对数比 log π/π_ref 对 y_w 是 -10 - (-12) = 2，对 y_l 是 -15 - (-14) = -1；β = 0.5
t = lambda v: torch.tensor([v], dtype=torch.float64)
hand = dpo_loss(t(-10.0), t(-15.0), t(-12.0), t(-14.0), beta=0.5).item()
print(f"手算例子：β·(2 - (-1)) = 1.5，DPO 损失 {hand:.4f}，log(1 + e^-1.5) = {math.log1p(math.exp(-1.5)):.4f}")
assert abs(hand - math.log1p(math.exp(-1.5))) < 1e-12
# 策略与参考相同时，对数比都是 0，损失是 log 2
assert abs(dpo_loss(t(-3.0), t(-7.0), t(-3.0), t(-7.0), beta=0.1).item() - math.log(2)) < 1e-12

# seq_logp 与逐字手算的和相同：对第 0 对的 y_w，一个字一个字地取条件概率
with torch.no_grad():
    by_hand = sum(ref(y_w[:1, :i]).log_softmax(-1)[0, -1, y_w[0, i]].item() for i in range(L_PRE, L_PRE + L_GEN))
    batched = seq_logp(ref, y_w[:1]).item()
print(f"log π_ref(y_w | x)：逐字相加 {by_hand:.4f}，seq_logp {batched:.4f}")
assert abs(by_hand - batched) < 1e-3
# --8<-- [end:dpo_loss]


# --8<-- [start:dpo]
with torch.no_grad():
    ref_w, ref_l = seq_logp(ref, y_w), seq_logp(ref, y_l)          # 参考模型的对数概率只算一次


def train_dpo(beta, steps=60, batch=32, lr=1e-3, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    policy = copy.deepcopy(ref).train()                            # 策略从参考模型出发
    for p in policy.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    for _ in range(steps):
        i = torch.randint(0, len(y_w), (batch,), generator=gen).to(device)
        loss = dpo_loss(seq_logp(policy, y_w[i]), seq_logp(policy, y_l[i]), ref_w[i], ref_l[i], beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


@torch.no_grad()
def kl_to_ref(policy, x):
    """沿策略自己采样的续写，逐位置精确计算 KL(π(·|前文) ‖ π_ref(·|前文))，再沿序列求和、对样本平均。"""
    lp = policy(x[:, :-1]).log_softmax(-1)[:, L_PRE - 1:]
    lr = ref(x[:, :-1]).log_softmax(-1)[:, L_PRE - 1:]
    return (lp.exp() * (lp - lr)).sum(-1).sum(1).mean().item()


eval_prompts = prompts_from(data["valid"], 300, torch.Generator().manual_seed(1))   # 验证集里的新提示


def evaluate(model):
    x = sample(model, eval_prompts, torch.Generator(device=device).manual_seed(1))
    return {"rate": preferred(x).float().mean().item(), "count": (x[:, L_PRE:] == TARGET).sum(1).float().mean().item(),
            "kl": kl_to_ref(model, x), "ce": valid_ce(model), "x": x}


before = evaluate(ref)
policy = train_dpo(beta=1.0)
after = evaluate(policy)
for name, r in (("参考模型", before), ("DPO（β = 1）", after)):
    print(f"{name:<12}含「的」的比例 {r['rate']:.3f}，平均「的」数 {r['count']:.2f}，"
          f"KL 到参考 {r['kl']:.2f} nat，验证集交叉熵 {r['ce']:.3f}")
for i in range(3):
    print("  ", decode(eval_prompts[i].tolist()), "| 参考：", decode(before["x"][i, L_PRE:].tolist()),
          "| DPO：", decode(after["x"][i, L_PRE:].tolist()))
# 种子 0–4（预训练、采样与 DPO 用同一个种子）：参考模型 0.527–0.597，DPO 后 0.987–1.000（提高至少 0.39），
# KL 在 5.43–7.49 nat 之间；断言提高 > 0.25、KL < 15
assert abs(before["kl"]) < 1e-5                                   # 参考模型到自己的 KL 为 0
assert after["rate"] > before["rate"] + 0.25
assert 0 < after["kl"] < 15
# --8<-- [end:dpo]


# --8<-- [start:beta]
betas = [0.1, 1.0, 5.0]
sweep = {1.0: after} | {beta: evaluate(train_dpo(beta)) for beta in (0.1, 5.0)}
for beta in betas:
    r = sweep[beta]
    print(f"β = {beta:<4}含「的」的比例 {r['rate']:.3f}，平均「的」数 {r['count']:.2f}，"
          f"KL {r['kl']:5.2f} nat，验证集交叉熵 {r['ce']:.3f}")
# 种子 0–4 上 KL、「的」的个数与验证集交叉熵都随 β 增大而减小；β = 0.1 时交叉熵比参考模型高 1.39–2.14
for key in ("kl", "count", "ce"):
    assert sweep[0.1][key] > sweep[1.0][key] > sweep[5.0][key]
assert sweep[0.1]["ce"] > before["ce"] + 0.5
assert all(sweep[beta]["rate"] > before["rate"] + 0.25 for beta in betas)
# --8<-- [end:beta]

# --8<-- [start:figure]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
labels = ["参考模型"] + [f"β = {beta}" for beta in betas]
runs = [before] + [sweep[beta] for beta in betas]
ax1.bar(labels, [r["rate"] for r in runs], color=["gray", "C0", "C1", "C2"])
ax1.set_ylabel("续写含「的」的比例（300 个验证集提示）")
ax1.set_ylim(0, 1.05)
ax2.plot([r["kl"] for r in runs], [r["rate"] for r in runs], "o")
for label, r in zip(labels, runs):
    ax2.annotate(label, (r["kl"], r["rate"]), textcoords="offset points", xytext=(5, -12))
ax2.set_xlabel("KL(π ‖ π_ref)（nat，每条续写）")
ax2.set_ylabel("含「的」的比例")
fig.savefig("alignment_dpo.svg", bbox_inches="tight")
# --8<-- [end:figure]
