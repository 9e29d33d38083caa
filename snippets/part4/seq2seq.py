# --8<-- [start:setup]
import math
from collections import Counter

import sacrebleu
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:setup]


# --8<-- [start:numerals]
DIGITS = "零一二三四五六七八九"


def to_chinese(n: int) -> str:
    """1 ≤ n ≤ 9999 的中文读法：内部连续的 0 读一个「零」，末尾的 0 不读；一十开头时省去「一」。"""
    assert 1 <= n <= 9999
    out, pending_zero = [], False
    for d, unit in zip(f"{n:04d}", ["千", "百", "十", ""]):
        if d == "0":
            pending_zero = bool(out)           # 前面已有非零位：记下「这里有 0」，先不读
            continue
        if pending_zero:
            out.append("零")                    # 一串 0 之后又出现非零位：只读一个「零」
            pending_zero = False
        out.append(DIGITS[int(d)] + unit)
    s = "".join(out)
    return s[1:] if s.startswith("一十") else s  # 10–19 读作「十」「十五」，110 仍是「一百一十」


cases = {1234: "一千二百三十四", 1004: "一千零四", 1010: "一千零一十", 10: "十", 15: "十五",
         110: "一百一十", 1001: "一千零一", 1100: "一千一百", 1000: "一千", 100: "一百", 101: "一百零一",
         2020: "二千零二十", 7: "七", 20: "二十", 9999: "九千九百九十九", 3050: "三千零五十", 4009: "四千零九"}
for n, ref in cases.items():
    assert to_chinese(n) == ref, (n, to_chinese(n), ref)
print(f"{len(cases)} 个手写用例全部正确")
for n in [1234, 1004, 1010, 10, 110, 3050]:
    print(n, "->", to_chinese(n))
# --8<-- [end:numerals]

# --8<-- [start:data]
SRC_VOCAB = ["<pad>"] + list("0123456789")
TGT_VOCAB = ["<pad>", "<bos>", "<eos>"] + list("零一二三四五六七八九十百千")
PAD, BOS, EOS = 0, 1, 2                        # 两个词表里 <pad> 都是 0
tgt_id = {ch: i for i, ch in enumerate(TGT_VOCAB)}
SRC_LEN, TGT_LEN = 4, 8                        # 最多 4 位数字；输出最多 7 个汉字 + <eos>


def encode_src(n: int) -> list[int]:
    s = str(n)
    return [PAD] * (SRC_LEN - len(s)) + [1 + int(d) for d in s]   # 左侧填充，最后一步总是个位


def encode_tgt(n: int) -> list[int]:
    ids = [tgt_id[ch] for ch in to_chinese(n)] + [EOS]
    return ids + [PAD] * (TGT_LEN - len(ids))


def make_tensors(numbers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.tensor([encode_src(int(n)) for n in numbers])
    Y = torch.tensor([encode_tgt(int(n)) for n in numbers])
    return X.to(device), Y.to(device)


perm = torch.randperm(9999, generator=torch.Generator().manual_seed(0)) + 1   # 1..9999 的固定排列
train_nums, test_nums = perm[:2000], perm[2000:3000]
assert not set(train_nums.tolist()) & set(test_nums.tolist())    # 训练集与测试集不相交
X_train, Y_train = make_tensors(train_nums)
X_test, Y_test = make_tensors(test_nums)
print("训练集", tuple(X_train.shape), tuple(Y_train.shape), "测试集", tuple(X_test.shape))
print("例：", train_nums[0].item(), X_train[0].tolist(), Y_train[0].tolist())
# --8<-- [end:data]


# --8<-- [start:model]
class Seq2Seq(nn.Module):
    """GRU 编码器-解码器：编码器最后的隐状态 c 既是解码器的初始状态，也在每一步和输入拼接。"""

    def __init__(self, emb: int = 32, hidden: int = 64):
        super().__init__()
        self.src_emb = nn.Embedding(len(SRC_VOCAB), emb)
        self.encoder = nn.GRU(emb, hidden, batch_first=True)
        self.tgt_emb = nn.Embedding(len(TGT_VOCAB), emb)
        self.decoder = nn.GRU(emb + hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, len(TGT_VOCAB))

    def encode(self, x: torch.Tensor) -> torch.Tensor:      # x: (B, SRC_LEN)
        _, h = self.encoder(self.src_emb(x))
        return h                                           # 上下文向量 c: (1, B, hidden)

    def decode(self, y_in: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """y_in: (B, T) 前一个词元；h: (1, B, hidden)；返回 logits (B, T, V) 与新的隐状态。"""
        ctx = c.transpose(0, 1).expand(-1, y_in.shape[1], -1)       # (B, T, hidden)
        o, h = self.decoder(torch.cat([self.tgt_emb(y_in), ctx], dim=-1), h)
        return self.out(o), h

    def forward(self, x: torch.Tensor, y_in: torch.Tensor) -> torch.Tensor:
        c = self.encode(x)
        return self.decode(y_in, c, c)[0]


def gru_params(d_in: int, h: int) -> int:      # 3 组（r、z、n）的 W_ih、W_hh 与两个偏置
    return 3 * (h * d_in + h * h + 2 * h)


model = Seq2Seq().to(device)
E, H, Vs, Vt = 32, 64, len(SRC_VOCAB), len(TGT_VOCAB)
formula = Vs * E + gru_params(E, H) + Vt * E + gru_params(E + H, H) + (H * Vt + Vt)
n_params = sum(p.numel() for p in model.parameters())
print("参数量", n_params, "公式", formula)
assert n_params == formula
# --8<-- [end:model]


# --8<-- [start:train]
def shift_right(Y: torch.Tensor) -> torch.Tensor:
    """教师强制的解码器输入：<bos> 加上参考答案去掉最后一个位置。"""
    return torch.cat([torch.full_like(Y[:, :1], BOS), Y[:, :-1]], dim=1)


def train(model: nn.Module, steps: int = 400, batch: int = 128, seed: int = 0) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(X_train), (batch,), generator=gen).to(device)
        logits = model(X_train[idx], shift_right(Y_train[idx]))          # (B, TGT_LEN, V)
        loss = F.cross_entropy(logits.reshape(-1, Vt), Y_train[idx].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


losses = train(model)
for step in [0, 100, 200, 300, 399]:
    print(f"第 {step:3d} 步  交叉熵 {losses[step]:.4f}")
model.eval()
# --8<-- [end:train]


# --8<-- [start:greedy]
@torch.no_grad()
def greedy(model: nn.Module, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """每步取概率最大的词元；输出 <eos> 之后只补 <pad>、不再计分。返回 (B, TGT_LEN) 序列与 log P。"""
    c = model.encode(X)
    h, y = c, torch.full((len(X), 1), BOS, device=device)
    done = torch.zeros(len(X), dtype=torch.bool, device=device)
    score = torch.zeros(len(X), device=device)
    seq = []
    for _ in range(TGT_LEN):
        logits, h = model.decode(y, h, c)
        logp = F.log_softmax(logits[:, -1], dim=-1)
        tok = logp.argmax(-1)
        score += torch.where(done, 0.0, logp.gather(1, tok[:, None]).squeeze(1))
        tok = torch.where(done, PAD, tok)
        seq.append(tok)
        done |= tok == EOS
        y = tok[:, None]
    return torch.stack(seq, dim=1), score


@torch.no_grad()
def sequence_logprob(model: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """用教师强制一次算出给定输出序列的 log P(y | x)（到 <eos> 为止，<pad> 不计）。"""
    logp = F.log_softmax(model(X, shift_right(Y)), dim=-1).gather(2, Y[..., None]).squeeze(2)
    return (logp * (Y != PAD)).sum(1)


def exact_match(P: torch.Tensor, Y: torch.Tensor) -> float:
    return (P == Y).all(1).float().mean().item()


greedy_seq, greedy_score = greedy(model, X_test)
assert torch.allclose(greedy_score, sequence_logprob(model, X_test, greedy_seq), atol=1e-4)
print(f"贪心搜索  精确匹配 {exact_match(greedy_seq, Y_test):.3f}")
# --8<-- [end:greedy]


# --8<-- [start:beam]
@torch.no_grad()
def beam_search(model: nn.Module, X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """对一批输入同时做宽度为 k 的束搜索。返回 (B, k, TGT_LEN) 的候选与它们的 log P（已排序）。"""
    B = len(X)
    c = model.encode(X).repeat_interleave(k, dim=1)          # (1, B*k, H)：每个输入复制 k 份
    h, y = c, torch.full((B * k, 1), BOS, device=device)
    scores = torch.full((B, k), -math.inf, device=device)
    scores[:, 0] = 0.0                                       # 起初只有一条假设：空序列
    done = torch.zeros(B, k, dtype=torch.bool, device=device)
    seqs = torch.zeros(B, k, 0, dtype=torch.long, device=device)
    finished_row = torch.full((Vt,), -math.inf, device=device)
    finished_row[PAD] = 0.0                                  # 已结束的假设只能接 <pad>，得分不变
    for _ in range(TGT_LEN):
        logits, h = model.decode(y, h, c)
        logp = F.log_softmax(logits[:, -1], dim=-1).view(B, k, Vt)
        logp[..., PAD] = -math.inf                           # 未结束的假设不许输出 <pad>、<bos>
        logp[..., BOS] = -math.inf
        logp = torch.where(done[..., None], finished_row, logp)
        cand = (scores[..., None] + logp).view(B, k * Vt)   # 每条假设的每种延伸：k·V 个候选
        scores, idx = cand.topk(k, dim=1)                    # 只留总分最高的 k 个
        parent, tok = idx // Vt, idx % Vt
        seqs = torch.cat([seqs.gather(1, parent[..., None].expand(-1, -1, seqs.shape[2])),
                          tok[..., None]], dim=2)
        done = done.gather(1, parent) | (tok == EOS)
        h = h.view(1, B, k, -1).gather(2, parent[None, ..., None].expand(1, B, k, h.shape[-1]))
        h, y = h.view(1, B * k, -1), tok.view(B * k, 1)
    scores = torch.where(done, scores, -math.inf)            # 到最大长度还没有 <eos> 的不算
    return seqs, scores


def beam_decode(model: nn.Module, X: torch.Tensor, k: int):
    """束搜索的最优候选，再与贪心结果比较取 log P 较大者：由构造保证不比贪心差。"""
    seqs, scores = beam_search(model, X, k)
    g_seq, g_score = greedy(model, X)
    use_greedy = g_score > scores[:, 0]
    best = torch.where(use_greedy[:, None], g_seq, seqs[:, 0])
    return best, torch.maximum(scores[:, 0], g_score), use_greedy


seq1, score1 = beam_search(model, X_test, k=1)
assert torch.equal(seq1[:, 0], greedy_seq)                   # k = 1 的束搜索就是贪心搜索
K = 5
cands, cand_scores = beam_search(model, X_test, K)
beam_seq, beam_score, used_greedy = beam_decode(model, X_test, K)
assert torch.allclose(cand_scores[:, 0], sequence_logprob(model, X_test, cands[:, 0]), atol=1e-4)
gs, bs = greedy_score, sequence_logprob(model, X_test, beam_seq)   # 两者都用教师强制重新打分
assert (bs >= gs - 1e-4).all()   # 每个测试输入上都 ≥ 贪心（1e-4 只容忍两条计算路径的舍入差）
print(f"束搜索 k={K}  精确匹配 {exact_match(beam_seq, Y_test):.3f}")
print("束搜索得分严格更高的输入数", int((bs > gs + 1e-4).sum()),
      "；需要退回贪心结果的输入数", int(used_greedy.sum()))
# --8<-- [end:beam]

# --8<-- [start:floor]
# 下限：种子 0–7（数据划分固定，只换初始化与小批量顺序）各训练 400 步，贪心的精确匹配为
# 0.988、0.994、0.991、0.989、0.993、0.995、0.994、0.993（最小 0.988），束搜索 k=5 为
# 0.990、0.995、0.991、0.990、0.995、0.995、0.994、0.993（最小 0.990）。1000 个测试样本上
# 0.001 就是 1 个样本，种子间最多差 7 个；取 0.97 比观察到的最小值再留出 18 个样本的余量，
# 给换平台（CUDA、别的 CPU）时训练轨迹的不同。
FLOOR = 0.97
em_greedy, em_beam = exact_match(greedy_seq, Y_test), exact_match(beam_seq, Y_test)
assert em_greedy >= FLOOR and em_beam >= FLOOR
print(f"精确匹配  贪心 {em_greedy:.3f}  束搜索 {em_beam:.3f}  下限 {FLOOR}")
# --8<-- [end:floor]


# --8<-- [start:table]
def to_text(ids: torch.Tensor) -> str:
    chars = []
    for i in ids.tolist():
        if i == EOS:
            break
        chars.append(TGT_VOCAB[i])
    return "".join(chars)


def cell(s: str, width: int = 8) -> str:
    return s + "\u3000" * (width - len(s))             # 用全角空格补齐汉字列


wrong = [i for i in range(len(X_test)) if not torch.equal(beam_seq[i], Y_test[i])
         or not torch.equal(greedy_seq[i], Y_test[i])]
shown = sorted(set([0, 1, 2, 3] + wrong[:6]))
print(f"  输入  {cell('参考')}{cell('贪心')}{cell('束搜索')} log P 贪心  log P 束")
for i in shown:
    print(f"{test_nums[i].item():>6}  {cell(to_chinese(int(test_nums[i])))}{cell(to_text(greedy_seq[i]))}"
          f"{cell(to_text(beam_seq[i]))}{gs[i].item():>10.3f}{bs[i].item():>10.3f}")

# 错误集中在 1000 以下：这样的数在 1..9999 中只占一成，训练集里也就只有一成左右
small_train = (train_nums < 1000).float().mean().item()
small = test_nums.to(device) < 1000
err = ~(beam_seq == Y_test).all(1)
err_small, err_large = err[small].float().mean().item(), err[~small].float().mean().item()
print(f"训练集中小于 1000 的数占 {small_train:.3f}；测试错误率：小于 1000 的 {err_small:.3f}，"
      f"其余 {err_large:.3f}")
assert err_small > err_large
# --8<-- [end:table]


# --8<-- [start:lengthnorm]
def gnmt_lp(length: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((5 + length) / 6) ** alpha                # Wu 等（2016）的长度惩罚 lp(Y)


lengths = ((cands != PAD).sum(2)).float()              # 每个候选的长度（含 <eos>）
for alpha in [0.0, 0.6, 1.0]:
    pick = (cand_scores / gnmt_lp(lengths, alpha)).argmax(1)
    chosen = cands[torch.arange(len(cands)), pick]
    changed = int((pick != 0).sum())
    print(f"alpha={alpha}  与未归一化的选择不同的输入数 {changed:3d}  精确匹配 {exact_match(chosen, Y_test):.3f}")
    assert changed <= 10                              # 在这个任务上最多改变 1% 的选择
# --8<-- [end:lengthnorm]


# --8<-- [start:bleu]
def ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hyps: list[str], refs: list[str], max_n: int = 4) -> float:
    """语料级 BLEU（每句一个参考），词元以空格分隔；平滑方式与 sacrebleu 默认的 exp 相同。"""
    match, total = [0] * max_n, [0] * max_n
    c_len = r_len = 0
    for hyp, ref in zip(hyps, refs):
        h, r = hyp.split(), ref.split()
        c_len, r_len = c_len + len(h), r_len + len(r)
        for n in range(1, max_n + 1):
            h_ngr, r_ngr = ngrams(h, n), ngrams(r, n)
            match[n - 1] += sum(min(cnt, r_ngr[g]) for g, cnt in h_ngr.items())   # 截断计数
            total[n - 1] += sum(h_ngr.values())
    if sum(match) == 0 or c_len == 0:
        return 0.0
    log_p, zeros = 0.0, 0
    for m, t in zip(match, total):
        if t == 0:
            return 0.0                                   # 没有任何 n 元组：精确率无定义，记 0
        if m == 0:
            zeros += 1
            m = 1 / 2 ** zeros                           # exp 平滑：第 j 个为 0 的精确率记 1/(2^j·t)
        log_p += math.log(m / t) / max_n                 # 几何平均
    bp = 1.0 if c_len > r_len else math.exp(1 - r_len / c_len)   # 简短惩罚
    return 100 * bp * math.exp(log_p)


def spaced(s: str) -> str:
    return " ".join(s)                                   # 字符级词元：一千零四 -> 一 千 零 四


hand = [
    (["一千二百"], ["一千二百三十四"], 100 * math.exp(1 - 7 / 4)),
    (["一千零零四"], ["一千零四"], 100 * 20 ** -0.25),
    (["一千二百", "一千零四"], ["一千二百三十四", "一千零四"], 100 * math.exp(1 - 11 / 8)),
]
for hyps, refs, expected in hand:
    ours = corpus_bleu([spaced(s) for s in hyps], [spaced(s) for s in refs])
    lib = sacrebleu.corpus_bleu([spaced(s) for s in hyps], [[spaced(s) for s in refs]], tokenize="none").score
    print(f"{' | '.join(hyps):<14} 手算 {expected:.4f}  本节实现 {ours:.4f}  sacrebleu {lib:.4f}")
    assert abs(ours - expected) < 1e-9 and abs(lib - expected) < 1e-9

refs = [spaced(to_chinese(int(n))) for n in test_nums]
for name, P in [("贪心", greedy_seq), ("束搜索", beam_seq)]:
    hyps = [spaced(to_text(p)) for p in P]
    ours = corpus_bleu(hyps, refs)
    lib = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none")
    print(f"{name}  BLEU 本节实现 {ours:.4f}  sacrebleu {lib.score:.4f}  ({lib})")
    assert abs(ours - lib.score) < 1e-9
# --8<-- [end:bleu]
