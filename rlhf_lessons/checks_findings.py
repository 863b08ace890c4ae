"""The checks of the later lessons' exercises (notebooks 05-07).

Same contract as :mod:`rlhf_lessons.checks` (notebooks 01-04), whose comparison
helpers these use: each ``check_*`` runs the learner's function on hand-made cases,
compares it with a reference, and names the classic bug it sees. The notebooks
import it as ``checks``.
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F

from rlhf_lessons.checks import _ok, _t, _verify
from rlhf_lessons.raters import delta_prob, pair_differences


# --------------------------------------------------------------------------
# 07 DPO
# --------------------------------------------------------------------------
def _dpo_loss(pi_c, pi_r, ref_c, ref_r, beta):
    """Reference: mean of -log σ(β[(π_c - ref_c) - (π_r - ref_r)]); all (B,)."""
    return -F.logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))).mean()


def check_dpo_loss(fn) -> None:
    """``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta) -> scalar``: the DPO loss, mean over pairs."""
    pc, pr = _t([-5.0, -8.0, -3.0]), _t([-7.0, -6.0, -9.0])
    rc, rr = _t([-6.0, -7.0, -4.0]), _t([-6.5, -7.5, -5.0])
    beta = 0.5
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
    _ok("dpo_loss", 1)


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
    error, Σ_b (n_b / N) |acc_b - conf_b| over equal-width bins on [0, 1]."""
    conf = np.array([0.95, 0.9, 0.85, 0.65, 0.55, 1.0, 0.3, 0.7, 0.92, 1.0])
    correct = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0])
    n_bins = 5
    keep = conf < 1.0  # the bug that drops 1.0 (it lands in bin n_bins)
    got = fn(conf.copy(), correct.copy(), n_bins)
    _verify("ece", float(got), _ece(conf, correct, n_bins), [
        ("each bin weighs the same; weight bin b by its share of samples "
         "n_b / N", _ece(conf, correct, n_bins, weight="bins")),
        ("conf_b is the MEAN confidence of the bin's samples, not its centre",
         _ece(conf, correct, n_bins, centre=True)),
        ("the gaps cancel: take |acc_b - conf_b|",
         _ece(conf, correct, n_bins, signed=True)),
        ("a confidence of exactly 1.0 fell out of the bins: the last bin is "
         "closed, [0.8, 1.0]",
         _ece(conf[keep], correct[keep], n_bins) * keep.sum() / len(conf)),
        ("a confidence of exactly 1.0 fell out of the bins: the last bin is "
         "closed, [0.8, 1.0]", _ece(conf[keep], correct[keep], n_bins)),
        ("that is |overall accuracy - mean confidence| (one bin): compare "
         "within each bin", abs(correct.mean() - conf.mean())),
    ], what="your ECE")
    _ok("ece", 1)


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
