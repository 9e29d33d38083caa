# --8<-- [start:data]
import copy
import math
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def find_corpus(name: str = "book_corpus.txt") -> Path:
    """本书语料快照（同 4.1）：先找当前目录，再找本文件旁边，最后找本书仓库里的 docs/part4/。"""
    here = Path(globals().get("__file__", "")).resolve().parent
    for path in (Path(name), here / name, here.parent.parent / "docs" / "part4" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"找不到 {name}：请从本书网站 4.1 一页（part4/book_corpus.txt）下载，放在当前目录")


lines = find_corpus().read_text(encoding="utf-8").splitlines()
paragraphs = [line for line in lines if not line.startswith("# ")]
split = {"train": [p for i, p in enumerate(paragraphs) if i % 10 < 8],     # 与 4.1 相同的划分
         "valid": [p for i, p in enumerate(paragraphs) if i % 10 == 8],
         "test": [p for i, p in enumerate(paragraphs) if i % 10 == 9]}
counts = Counter(c for p in split["train"] for c in p)
itos = ["<unk>", "</s>"] + sorted((c for c, n in counts.items() if n >= 2), key=lambda c: (-counts[c], c))
stoi = {c: i for i, c in enumerate(itos)}
V = len(itos)


def encode(text):
    return [stoi.get(c, 0) for c in text]                 # 生字 -> 0（<unk>）


def decode(ids):
    return "".join("¶" if i == 1 else "□" if i == 0 else itos[i] for i in ids)   # ¶ 表示 </s>


# 每段末尾加 </s>，整个划分连成一条长序列；开头再放一个 </s>，它充当第一段的「段首」
data = {name: torch.tensor([1] + [i for p in ps for i in encode(p) + [1]], device=device)
        for name, ps in split.items()}
for name, x in data.items():
    print(f"{name:>5}: {len(x) - 1:6d} 个要预测的词元")
assert V == 1136 and len(data["test"]) - 1 == 22097                 # 与 4.1 的词表和测试集词元数相同
# --8<-- [end:data]


# --8<-- [start:baselines]
def ppl_of(probs, x):
    """x[1:] 中每个词元在上一个词元 x[:-1] 之后的概率 probs[上一个, 下一个] 的几何平均的倒数。"""
    return math.exp(-probs[x[:-1], x[1:]].log().mean().item())


uni = torch.bincount(data["train"][1:], minlength=V).double()
uni = uni / uni.sum()                                              # 一元：只看训练集频率
pair = torch.zeros(V, V, dtype=torch.float64, device=device)
pair.index_put_((data["train"][:-1], data["train"][1:]), torch.ones(len(data["train"]) - 1,
                dtype=torch.float64, device=device), accumulate=True)
seen = pair.sum(1, keepdim=True)


def bigram(lam):                                                   # 插值平滑的二元模型（同 4.1）
    return torch.where(seen > 0, lam * pair / seen.clamp_min(1) + (1 - lam) * uni, uni)


lam = min([k / 20 for k in range(1, 20)], key=lambda l: ppl_of(bigram(l), data["valid"]))  # λ 在验证集上选
base = {"一元": ppl_of(uni.expand(V, V), data["test"]), "二元": ppl_of(bigram(lam), data["test"])}
print(f"测试集困惑度：一元 {base['一元']:.2f}，二元（λ = {lam}）{base['二元']:.2f}")
assert abs(base["一元"] - 276.96) < 0.01 and abs(base["二元"] - 36.92) < 0.01   # 与 4.1 的结果相同
# --8<-- [end:baselines]


# --8<-- [start:model]
class CausalSelfAttention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.qkv = nn.Linear(d, 3 * d)                             # W_Q、W_K、W_V 摞在一起
        self.proj = nn.Linear(d, d)                                # 输出投影 W_O

    def forward(self, x, cache=None):
        """x: (B, T, d)。cache 是一个 dict：传入时把本次的 K、V 接在缓存后面，并写回缓存。"""
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)  # 各 (B, h, T, d/h)
        if cache is not None:
            if cache:                                              # 已缓存之前 t0 个位置的 K、V
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        S = k.shape[2]                                             # 键的个数 = t0 + T
        # 第 i 个查询是绝对位置 S-T+i，只许看位置 ≤ S-T+i 的键
        blocked = torch.ones(T, S, dtype=torch.bool, device=x.device).triu(S - T + 1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.h)   # (B, h, T, S)
        att = att.masked_fill(blocked, float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    """前置归一化的解码器块：x + Attn(LN(x))，再 x + FFN(LN(x))。没有交叉注意力。"""

    def __init__(self, d, h):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, h)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.ffn(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, n_ctx, d, h, layers):
        super().__init__()
        self.n_ctx = n_ctx
        self.tok = nn.Embedding(vocab, d)                          # 词元嵌入，也当输出层用（权重共享）
        self.pos = nn.Embedding(n_ctx, d)                          # 可学习的位置向量
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)                                # 前置归一化的栈末还要一次 LN
        for m in self.modules():                                   # GPT-2 式的初始化：N(0, 0.02²)，偏置为 0
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, idx, caches=None):
        """idx: (B, T) 的词元编号；caches: 每层一个 dict（KV 缓存），或 None。返回 (B, T, V) 的 logit。"""
        t0 = caches[0]["k"].shape[2] if caches and caches[0] else 0   # 已缓存的位置数
        pos = torch.arange(t0, t0 + idx.shape[1], device=idx.device)
        x = self.tok(idx) + self.pos(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches is not None else None)
        return self.ln_f(x) @ self.tok.weight.T                   # 输出层与词元嵌入共用一个矩阵


def n_params_formula(vocab, n_ctx, d, layers):
    per_layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    assert per_layer == 12 * d * d + 13 * d                        # LN、QKV、W_O、LN、FFN 两层
    return vocab * d + n_ctx * d + layers * per_layer + 2 * d      # 输出层共享 tok，不另计


cfg = dict(vocab=V, n_ctx=64, d=48, h=4, layers=2)
n_params = sum(p.numel() for p in GPT(**cfg).parameters())
print(f"参数量 {n_params}（其中词元嵌入 {V * cfg['d']}，也是输出层）")
assert n_params == n_params_formula(V, cfg["n_ctx"], cfg["d"], cfg["layers"])
# --8<-- [end:model]


# --8<-- [start:train]
@torch.no_grad()
def perplexity(model, x):
    """按不重叠的 n_ctx 长窗口预测 x[1:] 的每个词元（每个窗口开头的上下文较短，所以略偏高）。"""
    nll, n = 0.0, 0
    for s in range(0, len(x) - 1, model.n_ctx):
        inp, tgt = x[s:s + model.n_ctx], x[s + 1:s + model.n_ctx + 1]
        inp = inp[:len(tgt)]
        nll += F.cross_entropy(model(inp[None])[0], tgt, reduction="sum").item()
        n += len(tgt)
    assert n == len(x) - 1
    return math.exp(nll / n)


def train(seed, steps=800, batch=16, lr=1e-2, log_every=100):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)                      # 取窗口的位置在 CPU 上生成
    model = GPT(**cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    x, n = data["train"], cfg["n_ctx"]
    history = {"step": [], "train": [], "valid": []}
    for step in range(1, steps + 1):
        start = torch.randint(0, len(x) - n - 1, (batch,), generator=gen).to(device)
        win = x[start[:, None] + torch.arange(n + 1, device=device)]   # (batch, n+1) 个连续的字
        loss = F.cross_entropy(model(win[:, :-1]).reshape(-1, V), win[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history["train"].append(loss.item())
        if step % log_every == 0:
            history["step"].append(step)
            history["valid"].append(math.log(perplexity(model, data["valid"][:4097])))  # 验证集前 4096 个词元
    return model.eval(), history


model, history = train(seed=0)
ppl = perplexity(model, data["test"])
print(f"训练 800 步后：测试集困惑度 {ppl:.2f}（一元 {base['一元']:.2f}，二元 {base['二元']:.2f}）")
# 种子 0–4 各训练 800 步，测试集困惑度 40.34、61.74、48.26、51.76、47.77（最大 61.74）；
# 断言的上限 FLOOR 在最大值之上留约 13% 的余量，给其他设备上的数值差异
FLOOR = 70.0
assert ppl < FLOOR < base["一元"]
# --8<-- [end:train]

# --8<-- [start:figure]
fig, ax = plt.subplots(figsize=(6, 3.8))
smooth = torch.tensor(history["train"]).unfold(0, 50, 1).mean(1)   # 50 步滑动平均
ax.plot(range(50, len(history["train"]) + 1), smooth, label="训练损失（50 步滑动平均）")
ax.plot(history["step"], history["valid"], "o-", label="验证集交叉熵（前 4096 个词元）")
for name, value in base.items():
    ax.axhline(math.log(value), ls="--", lw=1, color="gray")
    ax.text(len(history["train"]), math.log(value), f"{name}模型（测试集）", ha="right", va="bottom")
ax.set_xlabel("训练步数")
ax.set_ylabel("交叉熵（nat）")
ax.legend()
fig.savefig("gpt_loss.svg", bbox_inches="tight")
# --8<-- [end:figure]


# --8<-- [start:filters]
def with_temperature(logits, T):
    return torch.softmax(logits / T, dim=-1)


def top_k_filter(probs, k):
    """只留概率最大的 k 个词元，再归一化。并列时 topk 也只取 k 个。"""
    vals, ids = probs.topk(k, dim=-1)
    out = torch.zeros_like(probs).scatter(-1, ids, vals)
    return out / out.sum(-1, keepdim=True)


def top_p_filter(probs, p):
    """核采样：按概率从大到小，留下累计概率首次 ≥ p 的最小前缀，再归一化。"""
    vals, ids = probs.sort(dim=-1, descending=True, stable=True)   # stable：并列时编号小的在前
    before = vals.cumsum(-1) - vals                                # 排在它前面的词元的总概率
    keep = before < p                                              # 前面的还不够 p，它就要留下
    out = torch.zeros_like(probs).scatter(-1, ids, vals * keep)
    return out / out.sum(-1, keepdim=True)


def entropy(probs):
    return -(probs * probs.clamp_min(1e-300).log()).sum(-1)


# 并列的小例子：用 2 的幂次的概率，浮点运算没有舍入误差
q = torch.tensor([0.0625, 0.25, 0.375, 0.25, 0.0625], dtype=torch.float64, device=device)
for p in (0.5, 0.625, 0.7):
    kept = top_p_filter(q, p).nonzero().flatten().tolist()
    print(f"p = {p}：留下编号 {kept}，原概率之和 {q[kept].sum().item()}")
assert top_p_filter(q, 0.625).nonzero().flatten().tolist() == [1, 2]   # 恰好等于 p 也算「≥ p」，两个 0.25 只留一个
assert top_p_filter(q, 0.7).nonzero().flatten().tolist() == [1, 2, 3]
assert top_k_filter(q, 2).count_nonzero() == 2                         # 并列时也恰好 k 个

# 随机分布上检查定义：留下的是使累计概率 ≥ p 的最小集合
gen = torch.Generator(device=device).manual_seed(0)
P = torch.softmax(3 * torch.randn(2000, 50, generator=gen, dtype=torch.float64, device=device), dim=-1)
ps = torch.rand(2000, 1, generator=gen, dtype=torch.float64, device=device)
for i in range(len(P)):
    probs, p = P[i], ps[i].item()
    kept = top_p_filter(probs, p) > 0
    mass = probs[kept].sum()
    assert mass >= p and mass - probs[kept].min() < p                  # 够 p；去掉最小的一个就不够
    assert kept.sum() == (probs.sort(descending=True).values.cumsum(0) < p).sum() + 1  # 个数 = 最小的 k
    k = int(torch.randint(1, 51, (), generator=gen, device=device))
    fk = top_k_filter(probs, k)
    assert fk.count_nonzero() == k and abs(fk.sum().item() - 1) < 1e-12
    assert torch.allclose(fk[fk > 0], probs[fk > 0] / probs[fk > 0].sum())   # 留下的按原比例放大
print("2000 个随机分布：top-p 留下的都是最小集合，top-k 都恰好留 k 个并按原比例归一化")
# --8<-- [end:filters]


# --8<-- [start:temperature]
prompt = encode("深度学")
with torch.no_grad():
    z = model(torch.tensor([prompt], device=device))[0, -1].double()   # 下一个字的 logit，(V,)
Ts = [0.01, 0.1, 0.5, 0.8, 1.0, 1.5, 2.0]
H = [entropy(with_temperature(z, T)).item() for T in Ts]
top = [with_temperature(z, T).max().item() for T in Ts]
for T, h_, t_ in zip(Ts, H, top):
    print(f"T = {T:4}：熵 {h_:.3f} nat，最大概率 {t_:.4f}")
print("最可能的 5 个字：", " ".join(f"{itos[i]} {v:.3f}" for v, i in zip(*torch.softmax(z, -1).topk(5))))
assert torch.allclose(with_temperature(z, 1.0), F.softmax(z, -1))      # T = 1 就是模型本身的分布
assert all(a < b for a, b in zip(H, H[1:]))                            # 熵随 T 单调增大
assert all(a > b for a, b in zip(top, top[1:]))                        # T 越小越集中于最大者
assert with_temperature(z, 0.01).argmax() == z.argmax() and top[0] > 0.999   # T → 0：趋于贪心
assert H[-1] < math.log(V)                                             # 均匀分布的熵 log V 是上界
# --8<-- [end:temperature]


# --8<-- [start:frequencies]
N = 200_000
gen = torch.Generator(device=device).manual_seed(1)
base_probs = F.softmax(z, -1)
for name, q in [("T = 0.8", with_temperature(z, 0.8)), ("top-k, k = 10", top_k_filter(base_probs, 10)),
                ("top-p, p = 0.9", top_p_filter(base_probs, 0.9))]:
    draws = torch.multinomial(q, N, replacement=True, generator=gen)
    freq = torch.bincount(draws, minlength=V).double() / N
    tv = (freq - q).abs().sum().item() / 2                         # 总变差距离
    # 容许的上限：E[tv] ≤ ½ Σ sqrt(q(1-q)/N)（每个字的计数是二项分布，再用 Jensen 不等式）；
    # 换掉一个样本，tv 最多变 1/N，由 McDiarmid 不等式，tv 超过 E[tv] + ε 的概率 ≤ exp(-2Nε²) = 1e-6
    bound = (q * (1 - q) / N).sqrt().sum().item() / 2 + math.sqrt(math.log(1e6) / (2 * N))
    print(f"{name:>14}：{int((q > 0).sum()):4d} 个字可选，经验频率与过滤后分布的总变差 {tv:.4f}（上限 {bound:.4f}）")
    assert (freq[q == 0] == 0).all()                                   # 被滤掉的字一次也没抽到
    assert tv <= bound
# --8<-- [end:frequencies]


# --8<-- [start:generate]
@torch.no_grad()
def generate(model, prompt, n_new, pick, use_cache=True):
    """逐个生成 n_new 个词元。pick 把最后一个位置的 logit (1, V) 变成下一个词元 (1,)。
    use_cache=True：第一次把整个提示送进去（预填充），之后每步只送 1 个新词元，K、V 从缓存里取；
    use_cache=False：每步都把全部上下文重新算一遍。返回生成的编号和每一步的 logit。"""
    assert len(prompt) + n_new <= model.n_ctx                      # 不超出位置向量的长度
    idx = torch.tensor([prompt], device=device)
    caches = [dict() for _ in model.blocks] if use_cache else None
    step_in, all_logits = idx, []
    for _ in range(n_new):
        logits = model(step_in, caches)[:, -1] if use_cache else model(idx)[:, -1]
        nxt = pick(logits)
        all_logits.append(logits)
        idx = torch.cat([idx, nxt[:, None]], dim=1)
        step_in = nxt[:, None]                                     # 有缓存时下一步只送这个新词元
    return idx[0, len(prompt):].tolist(), torch.cat(all_logits)


def greedy(logits):
    return logits.argmax(-1)


def sampler(filt, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    return lambda logits: torch.multinomial(filt(logits), 1, generator=g)[:, 0]


strategies = {"贪心": lambda s: greedy,
              "T = 0.8": lambda s: sampler(lambda l: with_temperature(l, 0.8), s),
              "top-k 10": lambda s: sampler(lambda l: top_k_filter(F.softmax(l, -1), 10), s),
              "top-p 0.9": lambda s: sampler(lambda l: top_p_filter(F.softmax(l, -1), 0.9), s)}
for name, make in strategies.items():
    for seed in (0, 1) if name != "贪心" else (0,):
        ids, _ = generate(model, encode("深度学习"), 40, make(seed))
        print(f"{name:>9}（种子 {seed}）：深度学习{decode(ids)}")
ids, logits = generate(model, encode("深度学习"), 40, greedy)
assert (logits.argmax(-1) == torch.tensor(ids, device=device)).all()   # 贪心：每一步都取 argmax
# --8<-- [end:generate]


# --8<-- [start:kvcache]
prompt = encode("注意力")
m64 = copy.deepcopy(model).double()                                # float64 副本，用来比较「完全相同」
for name, m in (("float32", model), ("float64", m64)):
    ids_c, logits_c = generate(m, prompt, 60, greedy, use_cache=True)
    ids_f, logits_f = generate(m, prompt, 60, greedy, use_cache=False)
    err = (logits_c - logits_f).abs().max().item()
    print(f"{name}：生成的 60 个字相同 {ids_c == ids_f}，logit 最大差 {err:.1e}")
    assert ids_c == ids_f
    assert err < (1e-4 if m is model else 1e-10)
print("注意力" + decode(ids_c))
for seed in range(3):                                              # 采样也一样：同一随机数序列，同样的结果
    pick = lambda s: sampler(lambda l: top_p_filter(F.softmax(l, -1), 0.9), s)
    ids_c, _ = generate(m64, prompt, 60, pick(seed), use_cache=True)
    ids_f, _ = generate(m64, prompt, 60, pick(seed), use_cache=False)
    assert ids_c == ids_f
# --8<-- [end:kvcache]


# --8<-- [start:macs]
def count_macs(fn):
    """数矩阵乘法的乘加次数（FlopCounterMode 把一次乘加记作 2 次浮点运算）。"""
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() // 2


def macs_per_token(vocab, n_ctx, d, h, layers, t):
    """在 meta 设备上（只有形状）数生成第 t 个位置的词元时的乘加：不用缓存 vs 用缓存。"""
    with torch.device("meta"):                                     # 不分配内存，也不真的初始化
        m = GPT(vocab, n_ctx, d, h, layers)
    full = count_macs(lambda: m(torch.zeros(1, t, dtype=torch.long, device="meta")))   # 重算 t 个位置
    caches = [{"k": torch.empty(1, h, t - 1, d // h, device="meta"),
               "v": torch.empty(1, h, t - 1, d // h, device="meta")} for _ in range(layers)]
    cached = count_macs(lambda: m(torch.zeros(1, 1, dtype=torch.long, device="meta"), caches))  # 只算 1 个
    return full, cached


for label, (vocab, n_ctx, d, h, L) in [("本节的小 GPT", (V, 64, 48, 4, 2)),
                                      ("GPT-2 最小配置", (50257, 1024, 768, 12, 12))]:
    for t in (16, n_ctx // 2, n_ctx):
        full, cached = macs_per_token(vocab, n_ctx, d, h, L, t)
        assert full == L * (12 * t * d * d + 2 * t * t * d) + t * d * vocab   # 公式：逐位置的线性层 + 注意力 + 输出层
        assert cached == L * (12 * d * d + 2 * t * d) + d * vocab
        assert full == t * cached                                          # 省下的倍数恰好是 t
        print(f"{label}，上下文 t = {t:4d}：不用缓存 {full:>13d} 次乘加，用缓存 {cached:>11d} 次，"
              f"比值 {full / cached:.1f}")
# --8<-- [end:macs]
