# --8<-- [start:imports]
import math
from collections import Counter

import sacrebleu
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:imports]


# --8<-- [start:ex1]
def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hyps: list[str], refs: list[str], max_n: int = 4) -> float:
    """与正文相同的语料级 BLEU（exp 平滑）。"""
    match, total, c_len, r_len = [0] * max_n, [0] * max_n, 0, 0
    for hyp, ref in zip(hyps, refs):
        h, r = hyp.split(), ref.split()
        c_len, r_len = c_len + len(h), r_len + len(r)
        for n in range(1, max_n + 1):
            h_ngr, r_ngr = ngrams(h, n), ngrams(r, n)
            match[n - 1] += sum(min(cnt, r_ngr[g]) for g, cnt in h_ngr.items())
            total[n - 1] += sum(h_ngr.values())
    if sum(match) == 0 or c_len == 0:
        return 0.0
    log_p, zeros = 0.0, 0
    for m, t in zip(match, total):
        if t == 0:
            return 0.0
        if m == 0:
            zeros += 1
            m = 1 / 2 ** zeros
        log_p += math.log(m / t) / max_n
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)
    return 100 * bp * math.exp(log_p)


for hyps, refs in [(["十 一"], ["十 一"]), (["十 一", "一 千 二 百"], ["十 一", "一 千 二 百"])]:
    ours = corpus_bleu(hyps, refs)
    lib = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score
    eff = sacrebleu.BLEU(tokenize="none", effective_order=True).corpus_score(hyps, [refs]).score
    print(f"{' | '.join(hyps):<14} 本节实现 {ours:.1f}  sacrebleu {lib:.1f}  effective_order {eff:.1f}")
    assert abs(ours - lib) < 1e-9
assert corpus_bleu(["十 一"], ["十 一"]) == 0.0 and abs(corpus_bleu(["十 一", "一 千 二 百"], ["十 一", "一 千 二 百"]) - 100) < 1e-9
# --8<-- [end:ex1]


# --8<-- [start:ex2]
def toy_model(table: dict[str, dict[str, float]]):
    """一个查表的「语言模型」：给定前缀返回下一个词元的概率；表里没有的前缀以概率 1 结束。"""
    def probs(prefix: str) -> dict[str, float]:
        p = table.get(prefix, {"$": 1.0})               # "$" 表示 <eos>
        assert abs(sum(p.values()) - 1) < 1e-12
        return p
    return probs


def greedy_toy(probs, max_len: int = 6) -> tuple[str, float]:
    seq, logp = "", 0.0
    while not seq.endswith("$") and len(seq) < max_len:
        tok, p = max(probs(seq).items(), key=lambda kv: kv[1])
        seq, logp = seq + tok, logp + math.log(p)
    return seq, logp


def beam_toy(probs, k: int, max_len: int = 6) -> tuple[str, float]:
    """不带「退回贪心」的纯束搜索；已结束的假设留在束里，得分不变。"""
    beams = [("", 0.0)]
    for _ in range(max_len):
        cands = []
        for seq, lp in beams:
            if seq.endswith("$"):
                cands.append((seq, lp))
            else:
                cands += [(seq + t, lp + math.log(p)) for t, p in probs(seq).items()]
        beams = sorted(cands, key=lambda c: -c[1])[:k]
    return max((b for b in beams if b[0].endswith("$")), key=lambda c: c[1])


good_for_beam = toy_model({"": {"a": 0.5, "b": 0.4, "c": 0.1},
                           "a": {"x": 0.4, "y": 0.3, "$": 0.3},
                           "b": {"$": 0.9, "x": 0.1}})
bad_for_beam = toy_model({"": {"a": 0.4, "b": 0.35, "c": 0.25},
                          "a": {"x": 0.3, "y": 0.25, "z": 0.25, "$": 0.2},
                          "b": {"x": 0.6, "y": 0.4},
                          "bx": {"x": 0.25, "y": 0.25, "z": 0.25, "$": 0.25},
                          "by": {"x": 0.25, "y": 0.25, "z": 0.25, "$": 0.25}})
for name, probs in [("例 1", good_for_beam), ("例 2", bad_for_beam)]:
    (gs, gl), (bs, bl) = greedy_toy(probs), beam_toy(probs, k=2)
    print(f"{name}  贪心 {gs:<5} P={math.exp(gl):.4f}   束搜索 k=2 {bs:<5} P={math.exp(bl):.4f}")
assert beam_toy(good_for_beam, 2)[1] > greedy_toy(good_for_beam)[1]     # 例 1：束搜索更好
assert beam_toy(bad_for_beam, 2)[1] < greedy_toy(bad_for_beam)[1]       # 例 2：纯束搜索反而更差
assert beam_toy(bad_for_beam, 4)[1] >= greedy_toy(bad_for_beam)[1]      # 例 2 中 k=4 又找回贪心的结果
# --8<-- [end:ex2]


# --8<-- [start:ex3]
DIGITS = "零一二三四五六七八九"


def to_chinese(n: int) -> str:
    out, pending_zero = [], False
    for d, unit in zip(f"{n:04d}", ["千", "百", "十", ""]):
        if d == "0":
            pending_zero = bool(out)
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        out.append(DIGITS[int(d)] + unit)
    s = "".join(out)
    return s[1:] if s.startswith("一十") else s


TGT_VOCAB = ["<pad>", "<bos>", "<eos>"] + list("零一二三四五六七八九十百千")
PAD, BOS, EOS, Vs, Vt, SRC_LEN, TGT_LEN = 0, 1, 2, 11, len(TGT_VOCAB), 4, 8
tgt_id = {ch: i for i, ch in enumerate(TGT_VOCAB)}


def make_tensors(numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    X = [[PAD] * (SRC_LEN - len(str(int(n)))) + [1 + int(d) for d in str(int(n))] for n in numbers]
    Y = [[tgt_id[ch] for ch in to_chinese(int(n))] + [EOS] for n in numbers]
    Y = [y + [PAD] * (TGT_LEN - len(y)) for y in Y]
    return torch.tensor(X, device=device), torch.tensor(Y, device=device)


perm = torch.randperm(9999, generator=torch.Generator().manual_seed(0)) + 1   # 与正文相同的划分
X_train, Y_train = make_tensors(perm[:2000])
X_test, Y_test = make_tensors(perm[2000:3000])


class Seq2Seq(nn.Module):
    """feed_context=True 是正文的模型；False 时 c 只作初始隐状态（Sutskever 等的做法）。"""

    def __init__(self, feed_context: bool, emb: int = 32, hidden: int = 64):
        super().__init__()
        self.feed_context = feed_context
        self.src_emb, self.tgt_emb = nn.Embedding(Vs, emb), nn.Embedding(Vt, emb)
        self.encoder = nn.GRU(emb, hidden, batch_first=True)
        self.decoder = nn.GRU(emb + hidden * feed_context, hidden, batch_first=True)
        self.out = nn.Linear(hidden, Vt)

    def encode(self, x):
        return self.encoder(self.src_emb(x))[1]

    def decode(self, y_in, h, c):
        e = self.tgt_emb(y_in)
        if self.feed_context:
            e = torch.cat([e, c.transpose(0, 1).expand(-1, y_in.shape[1], -1)], dim=-1)
        o, h = self.decoder(e, h)
        return self.out(o), h


def shift_right(Y):
    return torch.cat([torch.full_like(Y[:, :1], BOS), Y[:, :-1]], dim=1)


def train_and_eval(feed_context: bool, seed: int, steps: int = 400) -> float:
    torch.manual_seed(seed)
    model = Seq2Seq(feed_context).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(X_train), (128,), generator=gen).to(device)
        c = model.encode(X_train[idx])
        logits = model.decode(shift_right(Y_train[idx]), c, c)[0]
        loss = F.cross_entropy(logits.reshape(-1, Vt), Y_train[idx].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():                                    # 贪心解码，<eos> 之后补 <pad>
        c = model.encode(X_test)
        h, y = c, torch.full((len(X_test), 1), BOS, device=device)
        done, seq = torch.zeros(len(X_test), dtype=torch.bool, device=device), []
        for _ in range(TGT_LEN):
            logits, h = model.decode(y, h, c)
            tok = torch.where(done, PAD, logits[:, -1].argmax(-1))
            seq.append(tok)
            done |= tok == EOS
            y = tok[:, None]
    return (torch.stack(seq, 1) == Y_test).all(1).float().mean().item()


results = {fc: [train_and_eval(fc, seed) for seed in range(3)] for fc in (True, False)}
for fc, accs in results.items():
    name = "每步拼接 c（正文）" if fc else "c 只作初始状态"
    print(f"{name:<12} 种子 0–2 的精确匹配 " + "  ".join(f"{a:.3f}" for a in accs)
          + f"  平均 {sum(accs) / 3:.3f}")
assert sum(results[True]) > sum(results[False])          # 平均而言，每步拼接 c 更好
# --8<-- [end:ex3]
