"""Checks for the notebooks' exercises: each runs the learner's function on tiny
hand-made cases, and names the classic bug when the answer matches one.

A check raises ``AssertionError`` with a hint ("your loss is 0.97 ...: did you
subtract in the wrong order?") or prints one success line. The right answers
come from the package's own functions. Notebooks 01-04; the later lessons'
checks are in :mod:`rlhf_lessons.course.checks`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_lessons.core import data
from rlhf_lessons.measure.raters import delta_prob, pair_differences
from rlhf_lessons.measure.verdicts import n_per_arm
from rlhf_lessons.train import ppo, reward


# --------------------------------------------------------------------------
# Comparing an answer with the right one and with the classic bugs
# --------------------------------------------------------------------------
def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def _fmt(x: np.ndarray) -> str:
    if x.ndim == 0:
        return f"{float(x):.4f}"
    return np.array2string(x, precision=4, suppress_small=True)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-4)


def _verify(name: str, got, want, bugs=(), what: str = "your output",
            reduce_hint: str = "") -> None:
    """Pass when ``got == want``; else raise naming the bug ``got`` matches.

    ``bugs``: ``(hint, what that bug returns on this case)`` pairs.
    """
    g, w = _np(got), _np(want)
    if g.shape != w.shape:
        raise AssertionError(f"{name}: {what} has shape {g.shape}, expected "
                             f"{w.shape}. {reduce_hint}".rstrip())
    if _same(g, w):
        return
    for hint, bug in bugs:
        if _same(g, _np(bug)):
            raise AssertionError(f"{name}: {what} is {_fmt(g)}, expected "
                                 f"{_fmt(w)}: {hint}")
    raise AssertionError(f"{name}: {what} is {_fmt(g)}, expected {_fmt(w)}. "
                         "Compare with the formula above, one term at a time.")


def _ok(name: str, n_cases: int) -> None:
    print(f"✅ {name}: correct on {n_cases} hand-made cases")


def _t(rows, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype)


# --------------------------------------------------------------------------
# 01 Preference data
# --------------------------------------------------------------------------
def check_longer_wins_rate(fn) -> None:
    """``fn(chosen_len, rejected_len) -> float``: the share of pairs with
    different lengths where the chosen answer is the longer one (ties left out).
    """
    c = np.array([10, 5, 7, 3, 8, 2, 12])
    r = np.array([4, 9, 7, 3, 2, 6, 1])  # 2 ties; chosen longer in 3 of 5
    won, tie = c > r, c == r
    got = fn(c.copy(), r.copy())
    _verify("longer_wins_rate", got, won.sum() / (~tie).sum(), [
        ("the ties are in your denominator: leave pairs of equal length out",
         won.sum() / len(c)),
        ("you counted ties as wins (>= instead of >)",
         (won | tie).sum() / len(c)),
        ("you counted ties as wins (>= instead of >)",
         (won | tie).sum() / (~tie).sum()),
        ("this is how often the SHORTER answer wins: compare chosen > rejected",
         (c < r).sum() / (~tie).sum()),
        ("ties counted as half a win: leave them out instead",
         (won.sum() + 0.5 * tie.sum()) / len(c)),
    ], what="your rate")
    _ok("longer_wins_rate", 1)


_P1 = "\n\nHuman: Hi\n\nAssistant:"
_P2 = "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant:"
_SPLIT_CASES = [  # chosen, rejected, classic wrong outputs (hint, output)
    (_P1 + " Hello there!", _P1 + " Go away.", []),
    (_P2 + " Sure, a pear.", _P2 + " Sure, a stone.", [
        ("you cut at the FIRST 'Assistant:'; the prompt runs to the LAST one "
         "the two transcripts share",
         ("\n\nHuman: Name a fruit.\n\nAssistant:", None, None)),
        ("the answers lost the words they share ('Sure,'): cut the common "
         "prefix back to its last '\\n\\nAssistant:'",
         (_P2 + " Sure, a", "pear.", "stone.")),
    ]),
    (_P1 + " Fine.\n\nHuman: ok\n\nAssistant: bye", _P1 + " No.", [
        ("the chosen answer itself contains '\\n\\nHuman: ... Assistant:' (the "
         "model invented a turn): rfind on each transcript cuts it wrongly; "
         "use the prefix both transcripts share",
         (None, "bye", None)),
    ]),
]


def check_split_pair(fn) -> None:
    """``fn(chosen, rejected) -> (prompt, chosen_answer, rejected_answer)``:
    the shared history up to its last ``"\\n\\nAssistant:"``, then the answers.
    """
    for chosen, rejected, bugs in _SPLIT_CASES:
        ref = data.split_pair(chosen, rejected)
        want = (ref.prompt, ref.chosen, ref.rejected)
        out = fn(chosen, rejected)
        got = (out[0].rstrip(), out[1].strip(), out[2].strip())
        if got == want:
            continue
        for hint, wrong in bugs:
            if all(w is None or w == g for w, g in zip(wrong, got)):
                raise AssertionError(f"split_pair: got {got!r}: {hint}")
        raise AssertionError(f"split_pair: for chosen={chosen!r} expected "
                             f"{want!r}, got {got!r}")
    _ok("split_pair", len(_SPLIT_CASES))


# --------------------------------------------------------------------------
# 02 Next-token loss and the SFT mask
# --------------------------------------------------------------------------
def _ce(logits, targets, reduction="mean"):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)),
                           targets.reshape(-1), reduction=reduction)


def check_next_token_loss(fn) -> None:
    """``fn(logits, input_ids) -> scalar``: mean of -log p(x_{t+1} | x_<=t)
    over every position; ``logits: (B, T, V)``, ``input_ids: (B, T)``."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g) * 2
    ids = torch.randint(0, 7, (2, 5), generator=g)
    lp, x = logits[:, :-1], ids[:, 1:]
    picked = lp.gather(-1, x[..., None])[..., 0]
    got = fn(logits.clone(), ids.clone())
    _verify("next_token_loss", got, _ce(lp, x), [
        ("position t must predict token t+1: drop the LAST logit and the FIRST "
         "token", _ce(logits, ids)),
        ("shifted the wrong way: logits[:, :-1] go with input_ids[:, 1:]",
         _ce(logits[:, 1:], ids[:, :-1])),
        ("this is the SUM over tokens: take the mean", _ce(lp, x, "sum")),
        ("you used the raw logits: take log_softmax first", -picked.mean()),
        ("negative: the loss is MINUS the log-probability", -_ce(lp, x)),
    ], what="your loss", reduce_hint="Return one number (a 0-d tensor).")
    _ok("next_token_loss", 1)


def check_sft_loss_mask(fn) -> None:
    """``fn(prompt_lengths, total_lengths, T) -> (B, T) bool``: True on the answer
    tokens (EOS included) of right-padded rows, False on prompt and padding."""
    p, n, T = _t([2, 3, 1], torch.long), _t([5, 6, 3], torch.long), 6
    pos = torch.arange(T)[None, :]
    p_, n_ = p[:, None], n[:, None]
    want = (pos >= p_) & (pos < n_)
    got = fn(p.clone(), n.clone(), T)
    if not (isinstance(got, torch.Tensor) and got.dtype == torch.bool):
        raise AssertionError("sft_loss_mask: return a bool tensor (e.g. with "
                             "comparisons like `pos >= prompt_lengths[:, None]`)")
    _verify("sft_loss_mask", got.int(), want.int(), [
        ("True on the prompt: SFT trains on the answer only",
         (pos < n_).int()),
        ("True on the padding after the answer: stop at total_lengths",
         (pos >= p_).int()),
        ("the first answer token is missing: it is at index prompt_length",
         ((pos > p_) & (pos < n_)).int()),
        ("the last prompt token is included: start at prompt_length",
         ((pos >= p_ - 1) & (pos < n_)).int()),
        ("one padding token too many: the answer ends at total_length - 1",
         ((pos >= p_) & (pos <= n_)).int()),
        ("inverted: True must mark the answer, not prompt and padding",
         (~want).int()),
    ], what="your mask (as 0/1)")
    _ok("sft_loss_mask", 3)


# --------------------------------------------------------------------------
# 03 The judge
# --------------------------------------------------------------------------
def check_pairwise_loss(fn) -> None:
    """``fn(r_chosen, r_rejected) -> scalar``: mean of -log σ(r_c - r_r)."""
    rc, rr = _t([1.0, 0.0, 2.0]), _t([0.0, 0.5, -1.0])  # mostly r_c > r_r
    d = rc - rr
    got = fn(rc.clone(), rr.clone())
    _verify("pairwise_loss", got, F.softplus(-d).mean(), [
        ("did you subtract in the wrong order? The loss must be small when "
         "r_c > r_r: -log σ(r_c - r_r)", F.softplus(d).mean()),
        ("this is the SUM over the 3 pairs: take the mean",
         F.softplus(-d).sum()),
        ("negative: log σ(x) <= 0, so the loss is MINUS log σ(r_c - r_r)",
         -F.softplus(-d).mean()),
        ("you dropped the log: the loss is -log σ(r_c - r_r), not 1 - σ",
         (1 - torch.sigmoid(d)).mean()),
        ("you dropped the log: the loss is -log σ(r_c - r_r), not -σ",
         -torch.sigmoid(d).mean()),
    ], what="your loss", reduce_hint="Return one number: the mean over pairs.")
    tie = fn(_t([0.3]), _t([0.3]))
    _verify("pairwise_loss", tie, math.log(2), [], what="your loss for r_c == r_r")
    _ok("pairwise_loss", 2)


def check_last_token_index(fn) -> None:
    """``fn(attention_mask) -> (B,) long``: the index of each row's last real
    token, for right-padded masks (one row has no padding; pad == eos, so the
    real EOS can only be found from the mask)."""
    mask = _t([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]],
              torch.long)
    got = fn(mask.clone())
    if not (isinstance(got, torch.Tensor) and not got.is_floating_point()):
        raise AssertionError("last_token_index: return an integer tensor "
                             "(.long()), so it can index the hidden states")
    first_pad = (mask == 0).int().argmax(1)
    _verify("last_token_index", got, reward.last_token_index(mask), [
        ("off by one: mask.sum(1) is the LENGTH; the last real token is at "
         "length - 1", mask.sum(1)),
        ("-1 for the row with no padding: 'first padding - 1' fails when a "
         "row has no padding (argmax finds no 0 and returns 0)", first_pad - 1),
        ("you returned the first padding position, one past the last real "
         "token", mask.argmin(1)),
        ("argmax returns the FIRST maximum: that is the first real token",
         mask.argmax(1)),
        ("you read the last position, which is padding on right-padded rows",
         torch.full((4,), 3)),
    ], what="your indices")
    _ok("last_token_index", 4)


# --------------------------------------------------------------------------
# 04 PPO
# --------------------------------------------------------------------------
def check_kl_k3(fn) -> None:
    """``fn(logprobs, ref_logprobs) -> same shape``: k3 = (r - 1) - log r,
    r = p_ref / p, per token."""
    lp = torch.log(_t([[0.5, 0.25, 0.1], [0.3, 0.6, 0.2]]))
    ref = torch.log(_t([[0.25, 0.5, 0.1], [0.6, 0.3, 0.4]]))  # one equal pair
    lr = lp - ref  # log p - log p_ref = -log r
    got = fn(lp.clone(), ref.clone())
    _verify("kl_k3", got, ppo.kl_per_token(lp, ref, "k3"), [
        ("this is k1 = log p - log p_ref (negative on some tokens); k3 is "
         "(r - 1) - log r", lr),
        ("you used r = p / p_ref; k3 uses r = p_ref / p", torch.expm1(lr) - lr),
        ("the -1 is missing: k3 must be 0 where p == p_ref",
         torch.exp(-lr) + lr),
        ("negative: k3 = (r - 1) - log r is >= 0 (log r <= r - 1)",
         -(torch.expm1(-lr) + lr)),
        ("this is k2 = (log r)^2 / 2", 0.5 * lr ** 2),
        ("|k1| is not k3: use (r - 1) - log r", lr.abs()),
    ], what="your KL", reduce_hint="Return the per-token tensor; do not sum "
                                    "or average it.")
    _ok("kl_k3", 6)


def _gae_sum_past(rewards, values, mask, gamma, lam):
    """The bug: A_t sums the deltas BEFORE t (a forward loop)."""
    m = mask.to(values.dtype)
    v, r = values * m, rewards * m
    delta = r + gamma * torch.cat([v[:, 1:], 0 * v[:, :1]], 1) - v
    adv, last = torch.zeros_like(delta), 0.0
    for t in range(delta.size(1)):
        last = delta[:, t] + gamma * lam * last
        adv[:, t] = last
    return adv * m


def check_gae(fn) -> None:
    """``fn(rewards, values, mask, gamma, lam) -> (advantages, returns)``, all
    (B, R); the episode ends at each row's last real token; 0 on padding."""
    rewards = _t([[0.0, 0.1, 0.0, 1.0], [0.2, -0.5, 7.0, 7.0]])  # 7: padding
    values = _t([[0.3, 0.2, 0.5, 0.4], [0.1, 0.6, 5.0, 5.0]])  # 5: padding
    mask = _t([[1, 1, 1, 1], [1, 1, 0, 0]])
    g, lam = 0.9, 0.8
    adv, ret = ppo.gae(rewards, values, mask, g, lam)
    out = fn(rewards.clone(), values.clone(), mask.clone(), g, lam)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError("gae: return a pair (advantages, returns)")
    no_mask = ppo.gae(rewards, values, torch.ones_like(mask), g, lam)[0] * mask
    m = mask.bool()
    _verify("gae", torch.where(m, out[0], 0.0), adv, [
        ("the padding leaked in: after the last real token V = 0 and there "
         "is no reward (the episode has ended); use the mask", no_mask),
        ("these are the one-step errors δ_t: add the later ones, weighted "
         "(γλ)^k", ppo.gae(rewards, values, mask, g, 0.0)[0]),
        ("λ is missing: the later deltas are weighted (γλ)^k, not γ^k",
         ppo.gae(rewards, values, mask, g, 1.0)[0]),
        ("γ and λ are swapped", ppo.gae(rewards, values, mask, lam, g)[0]),
        ("you summed the EARLIER deltas: loop over t in reversed order",
         _gae_sum_past(rewards, values, mask, g, lam)),
    ], what="your advantages (real tokens)")
    _verify("gae", torch.where(m, out[1], 0.0), ret, [
        ("the returns are A_t + V_t, not A_t", adv),
        ("the returns are A_t + V_t, not A_t - V_t", adv - values * mask),
    ], what="your returns (real tokens)")
    pad_adv, pad_ret = out[0][~m], out[1][~m]
    if pad_adv.abs().max() > 0 or pad_ret.abs().max() > 0:
        raise AssertionError("gae: advantages and returns must be 0 on "
                             "padding (multiply by the mask)")
    _ok("gae", 2)


def _surrogate_variants(new, old, adv, mask, eps):
    """The clipped loss and the classic wrong ones, on one case."""
    m = mask.bool()
    ratio = torch.exp(torch.where(m, new - old, 0.0))
    raw = torch.exp(new - old)
    clip = ratio.clamp(1 - eps, 1 + eps)
    loss = torch.max(-adv * ratio, -adv * clip)

    def mmean(x):
        return (x * mask).sum() / mask.sum()

    raw_loss = torch.max(-adv * raw, -adv * raw.clamp(1 - eps, 1 + eps))
    return {
        "min": mmean(torch.min(-adv * ratio, -adv * clip)),
        "noclip": mmean(-adv * ratio),
        "sign": mmean(torch.max(adv * ratio, adv * clip)),
        "neg": -mmean(loss),
        "allmean": (loss * mask).mean(),
        "unmasked": raw_loss.mean(),
        "sum": (loss * mask).sum(),
        "logclip": mmean(torch.max(-adv * ratio, -adv * torch.exp(
            torch.where(m, new - old, 0.0).clamp(-eps, eps)))),
    }


def check_clipped_surrogate(fn) -> None:
    """``fn(new_logprobs, old_logprobs, advantages, mask, cliprange) -> scalar``:
    mean over real tokens of max(-A ρ, -A clip(ρ, 1 ± ε)), ρ = exp(new - old)."""
    old = torch.log(_t([[0.4, 0.4, 0.5], [0.5, 0.3, 0.2]]))
    new = torch.log(_t([[0.6, 0.2, 0.55], [0.35, 0.45, 0.9]]))  # ρ 1.5, .5, ...
    adv = _t([[1.0, -1.0, 2.0], [1.0, -0.5, 9.0]])
    mask = _t([[1, 1, 1], [1, 1, 0]])
    eps = 0.2
    zeros = torch.zeros_like(adv)
    want = ppo.ppo_losses(new, old, adv, zeros, zeros, zeros, mask, eps)
    bug = _surrogate_variants(new, old, adv, mask, eps)
    got = fn(new.clone(), old.clone(), adv.clone(), mask.clone(), eps)
    _verify("clipped_surrogate", got, want["pg_loss"], [
        ("clip on the wrong side: take the MAX of the two loss terms (the "
         "pessimistic bound), not the min", bug["min"]),
        ("nothing is clipped: also compute -A clip(ρ, 1-ε, 1+ε) and take the "
         "max", bug["noclip"]),
        ("the sign is flipped: the LOSS is -A ρ (we minimise it)", bug["sign"]),
        ("the sign is flipped: the LOSS is -A ρ (we minimise it)", bug["neg"]),
        ("the mean counts padded tokens: divide by mask.sum()",
         bug["allmean"]),
        ("the padding leaked in: mask the loss, mean over real tokens only",
         bug["unmasked"]),
        ("this is the SUM over real tokens: take the mean", bug["sum"]),
        ("you clipped log ρ to ±ε; clip ρ itself to [1-ε, 1+ε]",
         bug["logclip"]),
    ], what="your loss", reduce_hint="Return one number: the masked mean.")
    _ok("clipped_surrogate", 5)


# --------------------------------------------------------------------------
# 07 DPO
# --------------------------------------------------------------------------
def _dpo_loss(pi_c, pi_r, ref_c, ref_r, beta):
    """Reference: mean of -log σ(β[(π_c - ref_c) - (π_r - ref_r)]); all (B,)."""
    return -F.logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))).mean()


def check_dpo_loss(fn) -> None:
    """``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta) -> scalar``: the DPO loss, mean over pairs.
    Three cases: mixed margins; the policy equal to the reference (log 2 by hand);
    one pair with margin 2 at β = 1 (log(1 + e^-2) = 0.1269 by hand)."""
    cases = [
        (_t([-5.0, -8.0, -3.0]), _t([-7.0, -6.0, -9.0]), _t([-6.0, -7.0, -4.0]),
         _t([-6.5, -7.5, -5.0]), 0.5),
        (_t([-4.0, -2.0]), _t([-3.0, -6.0]), _t([-4.0, -2.0]), _t([-3.0, -6.0]), 0.1),
        (_t([-1.0]), _t([-4.0]), _t([-2.0]), _t([-3.0]), 1.0),
    ]
    for pc, pr, rc, rr, beta in cases:
        h = (pc - rc) - (pr - rr)
        got = fn(pc.clone(), pr.clone(), rc.clone(), rr.clone(), beta)
        _verify("dpo_loss", got, _dpo_loss(pc, pr, rc, rr, beta), [
            ("the reference terms are missing: the implicit reward is "
             "β (log π - log π_ref)", -F.logsigmoid(beta * (pc - pr)).mean()),
            ("the reference terms have the wrong sign: subtract ref_chosen from "
             "the chosen side", -F.logsigmoid(beta * ((pc + rc) - (pr + rr))).mean()),
            ("did you subtract in the wrong order? chosen minus rejected",
             -F.logsigmoid(-beta * h).mean()),
            ("this is the SUM over pairs: take the mean",
             -F.logsigmoid(beta * h).sum()),
            ("β is outside the log σ: it scales the margin inside",
             -beta * F.logsigmoid(h).mean()),
            ("β is missing", -F.logsigmoid(h).mean()),
        ], what="your loss", reduce_hint="Return one number: the mean over pairs.")
    _ok("dpo_loss", len(cases))


# 05 What raters and judges pay for
# --------------------------------------------------------------------------
def check_pair_differences(fn) -> None:
    """``fn(f_chosen, f_rejected, flip) -> (X, y)``: X = f(A) - f(B), y = 1 when
    A is the chosen answer; ``flip`` True puts the rejected answer in A."""
    fc = np.array([[3.0, 1.0], [2.0, 0.0], [5.0, 1.0]])
    fr = np.array([[1.0, 0.0], [4.0, 1.0], [5.0, 0.0]])
    flip = np.array([False, True, True])
    x, y = fn(fc.copy(), fr.copy(), flip.copy())
    want_x, want_y = pair_differences(fc, fr, flip)
    _verify("pair_differences (X)", x, want_x, [
        ("X ignores flip: where A is the rejected answer, X = f_rejected - f_chosen",
         fc - fr),
        ("the sign is reversed: X = f(A) - f(B)", -want_x),
    ], what="your X")
    _verify("pair_differences (y)", np.asarray(y, float), want_y, [
        ("y is 1 when A is the CHOSEN answer, i.e. where flip is False",
         flip.astype(float)),
        ("with A/B shuffled, y follows flip: all ones means the label never varies",
         np.ones(3)),
    ], what="your y")
    _ok("pair_differences", 3)


def check_delta_prob(fn) -> None:
    """``fn(coef, sd) -> float``: σ(coef · sd) − 0.5, the change in P(preferred)
    for one standard deviation of the pair difference."""
    cases = [(0.8, 0.5), (-1.2, 2.0), (0.0, 3.0), (2.0, 1.0)]
    got = [float(fn(c, s)) for c, s in cases]
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    _verify("delta_prob", got, [float(delta_prob(c, s)) for c, s in cases], [
        ("subtract 0.5: at coef = 0 the preference stays at 50 %",
         [sig(c * s) for c, s in cases]),
        ("multiply the coefficient by sd (one sd of the feature), not divide",
         [sig(c / s) - 0.5 for c, s in cases]),
        ("scale by sd: a raw coefficient is per unit of the feature",
         [sig(c) - 0.5 for c, s in cases]),
        ("coef / 4 is the slope at 50 %, a linear approximation: use the sigmoid",
         [c * s / 4 for c, s in cases]),
    ], what=f"your Δp for (coef, sd) = {cases}")
    _ok("delta_prob", len(cases))


# --------------------------------------------------------------------------
# 05 Confidence and best-of-N
# --------------------------------------------------------------------------
def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1]; the last one is closed, so 1.0 belongs to it."""
    return np.minimum((conf * n_bins).astype(int), n_bins - 1)


def _ece(conf, correct, n_bins, weight="samples", centre=False, signed=False):
    """Reference (defaults): Σ_b (n_b / N) |acc_b - conf_b|."""
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    b, gaps, ns = _bins(conf, n_bins), [], []
    for k in range(n_bins):
        sel = b == k
        if sel.any():
            c = (k + 0.5) / n_bins if centre else conf[sel].mean()
            gap = correct[sel].mean() - c
            gaps.append(gap if signed else abs(gap))
            ns.append(sel.sum())
    gaps, ns = np.array(gaps), np.array(ns)
    if weight == "bins":
        return float(gaps.mean())
    return float((ns * gaps).sum() / len(conf))


def check_ece(fn) -> None:
    """``fn(confidences, correct, n_bins) -> float``: expected calibration
    error, Σ_b (n_b / N) |acc_b - conf_b| over equal-width bins on [0, 1].
    Three cases: a mixed one (with confidences of exactly 1.0); two bins each
    off by 0.1 (ECE 0.1 by hand); one bin, sure 0.6 and right 1 in 3 (0.2667)."""
    cases = [
        (np.array([0.95, 0.9, 0.85, 0.65, 0.55, 1.0, 0.3, 0.7, 0.92, 1.0]),
         np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0]), 5),
        (np.array([0.9, 0.9, 0.1, 0.1]), np.array([1, 1, 0, 0]), 2),
        (np.array([0.6, 0.6, 0.6]), np.array([1, 0, 0]), 10),
    ]
    for conf, correct, n_bins in cases:
        keep = conf < 1.0  # the bug that drops 1.0 (it lands in bin n_bins)
        got = fn(conf.copy(), correct.copy(), n_bins)
        bugs = [
            ("each bin weighs the same; weight bin b by its share of samples "
             "n_b / N", _ece(conf, correct, n_bins, weight="bins")),
            ("conf_b is the MEAN confidence of the bin's samples, not its centre",
             _ece(conf, correct, n_bins, centre=True)),
            ("the gaps cancel: take |acc_b - conf_b|",
             _ece(conf, correct, n_bins, signed=True)),
        ]
        if not keep.all():
            bugs += [
                ("a confidence of exactly 1.0 fell out of the bins: the last bin "
                 "is closed, [0.8, 1.0]",
                 _ece(conf[keep], correct[keep], n_bins) * keep.sum() / len(conf)),
                ("a confidence of exactly 1.0 fell out of the bins: the last bin "
                 "is closed, [0.8, 1.0]", _ece(conf[keep], correct[keep], n_bins))]
        if len(set(np.minimum((conf * n_bins).astype(int), n_bins - 1))) > 1:
            bugs.append(("that is |overall accuracy - mean confidence| (one bin): "
                         "compare within each bin", abs(correct.mean() - conf.mean())))
        _verify("ece", float(got), _ece(conf, correct, n_bins), bugs, what="your ECE")
    _ok("ece", len(cases))


def _bon_kl(n: int) -> float:
    """Reference: KL(best-of-n || base) = log n - (n - 1) / n (Stiennon et al.)."""
    return math.log(n) - (n - 1) / n


def check_bon_kl(fn) -> None:
    """``fn(n) -> float``: the KL of best-of-n sampling from the base policy."""
    ns = [1, 2, 4, 16, 100]
    got = [float(fn(n)) for n in ns]
    _verify("bon_kl", got, [_bon_kl(n) for n in ns], [
        ("log N is only the upper bound: subtract (N - 1) / N",
         [math.log(n) for n in ns]),
        ("the (N - 1) / N term is subtracted, not added",
         [math.log(n) + (n - 1) / n for n in ns]),
        ("use the natural log (nats), not log2",
         [math.log2(n) - (n - 1) / n for n in ns]),
        ("the order is log N MINUS (N - 1) / N",
         [(n - 1) / n - math.log(n) for n in ns]),
    ], what=f"your KL for N = {ns}")
    _ok("bon_kl", len(ns))


# --------------------------------------------------------------------------
# 07 Beyond PPO: the group baselines
# --------------------------------------------------------------------------
_GROUPS = [[1.0, 2.0, 6.0, 3.0], [0.0, 4.0, 4.0, 0.0], [2.0, 2.0, 2.0, 2.0]]


def check_rloo_baseline(fn) -> None:
    """``fn(scores (P, G)) -> (P, G)``: r_i minus the mean of the OTHER G-1."""
    s = _t(_GROUPS)
    G, mean = s.size(1), s.mean(1, keepdim=True)
    _verify("rloo_baseline", fn(s.clone()), s - (s.sum(1, keepdim=True) - s) / (G - 1), [
        ("the baseline includes the sample itself: leave it out (sum - r_i) / (G - 1)",
         s - mean),
        ("divide the others' sum by G - 1, not G", s - (s.sum(1, keepdim=True) - s) / G),
        ("the sign is flipped: reward minus baseline", (s.sum(1, keepdim=True) - s) / (G - 1)
         - s),
    ], what="your advantages", reduce_hint="One advantage per answer: (P, G).")
    _ok("rloo_baseline", len(_GROUPS))


def check_grpo_advantages(fn) -> None:
    """``fn(scores (P, G)) -> (P, G)``: (r - mean) / (std + 1e-4) per group, Bessel's
    std, and 0 for a group whose rewards are all equal."""
    s = _t(_GROUPS)
    mean = s.mean(1, keepdim=True)
    want = (s - mean) / (s.std(1, keepdim=True) + 1e-4)
    want[2] = 0.0
    _verify("grpo_advantages", fn(s.clone()), want, [
        ("normalise within each GROUP (dim 1), not over the whole batch",
         (s - s.mean()) / (s.std() + 1e-4)),
        ("use the unbiased std (Bessel, torch's default)",
         (s - mean) / (s.std(1, unbiased=False, keepdim=True) + 1e-4)),
        ("subtract the mean but also divide by the std", s - mean),
    ], what="your advantages", reduce_hint="One advantage per answer: (P, G).")
    _ok("grpo_advantages", len(_GROUPS))


# --------------------------------------------------------------------------
# 08 The lesson in a model that can write
# --------------------------------------------------------------------------
_HEDGE_CASES = [
    ("I think it is 12.", True), ("It is 12.", False), ("Probably 40.", True),
    ("I'm not sure, but 7.", True), ("Mighty rivers are long.", False),
    ("Maybe.", True), ("The answer is definitely 9.", False),
]


def check_hedge_detector(fn) -> None:
    """``fn(text) -> bool``: does the answer hedge ("I think", "probably",
    "maybe", "I'm not sure", ...)? Whole words, any case."""
    got = [bool(fn(t)) for t, _ in _HEDGE_CASES]
    want = [w for _, w in _HEDGE_CASES]
    substring = ["might" in t.lower() or "think" in t.lower() or "maybe" in t.lower()
                 or "probably" in t.lower() or "not sure" in t.lower() for t, _ in _HEDGE_CASES]
    case_blind = [any(p in t for p in ("I think", "Probably", "not sure", "Maybe"))
                  and t not in ("Maybe.",) for t, _ in _HEDGE_CASES]
    _verify("hedge_detector", got, want, [
        ("you match inside words: 'Mighty' is not 'might'; match whole words",
         substring),
        ("lowercase the text first: 'Maybe.' and 'maybe' are the same hedge", case_blind),
        ("True and False are swapped", [not w for w in want]),
    ], what="your flags")
    _ok("hedge_detector", len(_HEDGE_CASES))


_TILT_CASES = [(0.2, 0.5, 0.1), (0.6, 0.3, 0.05), (0.5, -0.2, 0.2), (0.1, 0.0, 0.1)]


def check_tilted_share(fn) -> None:
    """``fn(p0, delta, beta) -> float``: the share of answers with a feature at the
    KL-regularised optimum, p0·e^(δ/β) / (p0·e^(δ/β) + 1 − p0): the odds are
    multiplied by e^(δ/β)."""
    got = [float(fn(*c)) for c in _TILT_CASES]
    want = [p * math.exp(d / b) / (p * math.exp(d / b) + 1 - p) for p, d, b in _TILT_CASES]
    _verify("tilted_share", got, want, [
        ("you multiplied the SHARE by e^(δ/β), not the odds p/(1 − p)",
         [min(1.0, p * math.exp(d / b)) for p, d, b in _TILT_CASES]),
        ("the exponent is δ/β, not δ·β",
         [p * math.exp(d * b) / (p * math.exp(d * b) + 1 - p) for p, d, b in _TILT_CASES]),
        ("the sign: a feature the judge pays for (δ > 0) becomes MORE common",
         [p * math.exp(-d / b) / (p * math.exp(-d / b) + 1 - p) for p, d, b in _TILT_CASES]),
    ], what="your shares")
    _ok("tilted_share", len(_TILT_CASES))


_POWER_CASES = [(0.5, 0.6), (0.1, 0.2), (0.3, 0.25), (0.05, 0.15)]


def check_answers_needed(fn) -> None:
    """``fn(p0, p1) -> int``: answers per policy to tell rate p0 from p1 (two-sided
    95%, power 80%), rounded up: (1.96·√(2p̄q̄) + 0.8416·√(p0q0 + p1q1))² / (p1 − p0)²."""
    got = [int(fn(*c)) for c in _POWER_CASES]
    want = [n_per_arm(*c) for c in _POWER_CASES]

    def no_power(p0, p1):
        pb = (p0 + p1) / 2
        return math.ceil((1.96 * math.sqrt(2 * pb * (1 - pb))) ** 2 / (p1 - p0) ** 2)

    def one_arm(p0, p1):
        return math.ceil(((1.96 + 0.8416) ** 2 * p0 * (1 - p0)) / (p1 - p0) ** 2)

    _verify("answers_needed", got, want, [
        ("only the 95% term: add 0.8416·√(p0q0 + p1q1) for 80% power",
         [no_power(*c) for c in _POWER_CASES]),
        ("two policies each have noise: use both p0 and p1, not p0 alone",
         [one_arm(*c) for c in _POWER_CASES]),
        ("round UP (math.ceil): a fraction of an answer is one more answer",
         [int(n_per_arm(*c) - 1) for c in _POWER_CASES]),
    ], what="your sample sizes")
    _ok("answers_needed", len(_POWER_CASES))
