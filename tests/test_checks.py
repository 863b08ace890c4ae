"""Every exercise check passes the package's reference and fails the classic bugs,
each with a hint that names the mistake."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlhf_lessons.core import data
from rlhf_lessons.course import checks
from rlhf_lessons.train import ppo, reward


def _fails(check, fn, hint: str) -> None:
    with pytest.raises(AssertionError, match=hint):
        check(fn)


def _passes(check, fn, capsys) -> None:
    check(fn)
    assert capsys.readouterr().out.startswith("✅")


# --- 01 ---------------------------------------------------------------------
def _rate(ge=False, ties_in=False, flip=False):
    def fn(c, r):
        c, r = np.asarray(c), np.asarray(r)
        won = (c < r) if flip else ((c >= r) if ge else (c > r))
        return won.sum() / (len(c) if ties_in else (c != r).sum())
    return fn


def test_longer_wins_rate(capsys):
    _passes(checks.check_longer_wins_rate, _rate(), capsys)
    _fails(checks.check_longer_wins_rate, _rate(ties_in=True), "ties are in your denominator")
    _fails(checks.check_longer_wins_rate, _rate(ge=True), "ties as wins")
    _fails(checks.check_longer_wins_rate, _rate(ge=True, ties_in=True), "ties as wins")
    _fails(checks.check_longer_wins_rate, _rate(flip=True), "SHORTER")


def _split_ref(c, r):
    p = data.split_pair(c, r)
    return p.prompt, p.chosen, p.rejected


def _split_first(c, r):
    k = c.index(data.ASSISTANT) + len(data.ASSISTANT)
    return c[:k], c[k:], r[k:]


def _split_rfind(c, r):
    kc = c.rfind(data.ASSISTANT) + len(data.ASSISTANT)
    kr = r.rfind(data.ASSISTANT) + len(data.ASSISTANT)
    return c[:kc], c[kc:], r[kr:]


def _split_prefix(c, r):
    k = 0
    while c[k] == r[k]:
        k += 1
    return c[:k], c[k:], r[k:]


def test_split_pair(capsys):
    _passes(checks.check_split_pair, _split_ref, capsys)
    _fails(checks.check_split_pair, _split_first, "FIRST 'Assistant:'")
    _fails(checks.check_split_pair, _split_prefix, "lost the words they share")
    _fails(checks.check_split_pair, _split_rfind, "invented a turn")


# --- 02 ---------------------------------------------------------------------
def _ntl(shift=1, reduction="mean", raw=False):
    def fn(logits, ids):
        lg, x = (logits[:, :-1], ids[:, 1:]) if shift == 1 else (
            (logits, ids) if shift == 0 else (logits[:, 1:], ids[:, :-1]))
        if raw:
            return -lg.gather(-1, x[..., None]).mean()
        return F.cross_entropy(lg.reshape(-1, lg.size(-1)), x.reshape(-1),
                               reduction=reduction)
    return fn


def test_next_token_loss(capsys):
    _passes(checks.check_next_token_loss, _ntl(), capsys)
    _fails(checks.check_next_token_loss, _ntl(shift=0), "must predict token t\\+1")
    _fails(checks.check_next_token_loss, _ntl(shift=-1), "wrong way")
    _fails(checks.check_next_token_loss, _ntl(reduction="sum"), "SUM")
    _fails(checks.check_next_token_loss, _ntl(raw=True), "raw logits")


def _mask(lo=0, hi=0, prompt=False, pad=False):
    def fn(p, n, T):
        pos = torch.arange(T)[None, :]
        start = (pos >= 0) if prompt else (pos >= p[:, None] + lo)
        end = (pos >= 0) if pad else (pos < n[:, None] + hi)
        return start & end
    return fn


def test_sft_loss_mask(capsys):
    _passes(checks.check_sft_loss_mask, _mask(), capsys)
    _fails(checks.check_sft_loss_mask, _mask(prompt=True), "True on the prompt")
    _fails(checks.check_sft_loss_mask, _mask(pad=True), "padding after the answer")
    _fails(checks.check_sft_loss_mask, _mask(lo=1), "first answer token is missing")
    _fails(checks.check_sft_loss_mask, _mask(lo=-1), "last prompt token")
    _fails(checks.check_sft_loss_mask, _mask(hi=1), "one padding token too many")
    _fails(checks.check_sft_loss_mask, lambda p, n, T: _mask()(p, n, T).int(), "bool")


# --- 03 ---------------------------------------------------------------------
def test_pairwise_loss(capsys):
    check = checks.check_pairwise_loss
    _passes(check, reward.pairwise_loss, capsys)
    _fails(check, lambda c, r: -F.logsigmoid(r - c).mean(), "wrong order")
    _fails(check, lambda c, r: -F.logsigmoid(c - r).sum(), "SUM")
    _fails(check, lambda c, r: F.logsigmoid(c - r).mean(), "MINUS log")
    _fails(check, lambda c, r: (1 - torch.sigmoid(c - r)).mean(), "dropped the log")
    _fails(check, lambda c, r: -F.logsigmoid(c - r), "shape")


def test_last_token_index(capsys):
    check = checks.check_last_token_index
    _passes(check, reward.last_token_index, capsys)
    _passes(check, lambda m: m.sum(1) - 1, capsys)  # right padding: also right
    _fails(check, lambda m: m.sum(1), "off by one")
    _fails(check, lambda m: (m == 0).int().argmax(1) - 1, "no padding")
    _fails(check, lambda m: m.argmax(1), "FIRST maximum")
    _fails(check, lambda m: m.argmin(1), "first padding position")
    _fails(check, lambda m: (m.sum(1) - 1).float(), "integer tensor")


# --- 04 ---------------------------------------------------------------------
def test_kl_k3(capsys):
    check = checks.check_kl_k3
    _passes(check, lambda lp, ref: ppo.kl_per_token(lp, ref, "k3"), capsys)
    _fails(check, lambda lp, ref: lp - ref, "this is k1")
    _fails(check, lambda lp, ref: torch.expm1(lp - ref) - (lp - ref), "r = p / p_ref")
    _fails(check, lambda lp, ref: torch.exp(ref - lp) - (ref - lp), "-1 is missing")
    _fails(check, lambda lp, ref: ppo.kl_per_token(lp, ref, "k3").mean(), "per-token")


def _gae_variant(mask_ones=False, lam=None, returns="ok"):
    def fn(rewards, values, mask, gamma, lam_):
        m = torch.ones_like(mask) if mask_ones else mask
        adv, ret = ppo.gae(rewards, values, m, gamma, lam_ if lam is None else lam)
        adv = adv * mask
        if returns == "adv":
            ret = adv
        return adv, ret * mask
    return fn


def test_gae(capsys):
    check = checks.check_gae
    _passes(check, ppo.gae, capsys)
    _fails(check, _gae_variant(mask_ones=True), "padding leaked in")
    _fails(check, _gae_variant(lam=0.0), "one-step errors")
    _fails(check, _gae_variant(lam=1.0), "λ is missing")
    _fails(check, _gae_variant(returns="adv"), "A_t \\+ V_t, not A_t$")
    _fails(check, lambda r, v, m, g, lam: checks._gae_sum_past(r, v, m, g, lam),
           "pair")
    _fails(check, lambda r, v, m, g, lam: (checks._gae_sum_past(r, v, m, g, lam),
                                           ppo.gae(r, v, m, g, lam)[1]), "EARLIER")

    def no_zero(r, v, m, g, lam):
        adv, ret = ppo.gae(r, v, m, g, lam)
        return adv + 3 * (1 - m), ret
    _fails(check, no_zero, "0 on padding")


def _surrogate(kind):
    def fn(new, old, adv, mask, eps):
        return checks._surrogate_variants(new, old, adv, mask, eps)[kind]
    return fn


def test_clipped_surrogate(capsys):
    check = checks.check_clipped_surrogate

    def ref(new, old, adv, mask, eps):
        z = torch.zeros_like(adv)
        return ppo.ppo_losses(new, old, adv, z, z, z, mask, eps)["pg_loss"]
    _passes(check, ref, capsys)
    _fails(check, _surrogate("min"), "wrong side")
    _fails(check, _surrogate("noclip"), "nothing is clipped")
    _fails(check, _surrogate("sign"), "sign is flipped")
    _fails(check, _surrogate("allmean"), "counts padded tokens")
    _fails(check, _surrogate("unmasked"), "padding leaked in")
    _fails(check, _surrogate("sum"), "SUM")
    _fails(check, _surrogate("logclip"), "clipped log ρ")


# --- DPO (no lesson yet) ----------------------------------------------------
def test_dpo_loss(capsys):
    check = checks.check_dpo_loss
    _passes(check, checks._dpo_loss, capsys)
    _fails(check, lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(),
           "reference terms are missing")
    _fails(check, lambda pc, pr, rc, rr, b: checks._dpo_loss(pr, pc, rr, rc, b),
           "wrong order")
    _fails(check, lambda pc, pr, rc, rr, b: checks._dpo_loss(pc, pr, rc, rr, b) * 3,
           "SUM")
    _fails(check, lambda pc, pr, rc, rr, b: b * checks._dpo_loss(pc, pr, rc, rr, 1.0),
           "outside the log")


# --- 05 ---------------------------------------------------------------------
def _ece_open_last(conf, correct, n_bins):
    conf, correct = np.asarray(conf), np.asarray(correct, float)
    idx = (conf * n_bins).astype(int)  # 1.0 lands in bin n_bins and is lost
    total = 0.0
    for k in range(n_bins):
        sel = idx == k
        if sel.any():
            total += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return total / len(conf)


def test_ece(capsys):
    check = checks.check_ece
    _passes(check, checks._ece, capsys)
    _fails(check, lambda c, y, n: checks._ece(c, y, n, weight="bins"), "share of samples")
    _fails(check, lambda c, y, n: checks._ece(c, y, n, centre=True), "MEAN confidence")
    _fails(check, lambda c, y, n: checks._ece(c, y, n, signed=True), "gaps cancel")
    _fails(check, _ece_open_last, "last bin is closed")


def test_bon_kl(capsys):
    check = checks.check_bon_kl
    _passes(check, checks._bon_kl, capsys)
    _fails(check, lambda n: math.log(n), "upper bound")
    _fails(check, lambda n: math.log(n) + (n - 1) / n, "not added")
    _fails(check, lambda n: math.log2(n) - (n - 1) / n, "natural log")


# --- 08 ---------------------------------------------------------------------
def test_hedge_detector(capsys):
    import re

    def whole(t):
        return re.search(r"\b(i think|probably|maybe|might|i'm not sure)\b", t.lower()) is not None

    check = checks.check_hedge_detector
    _passes(check, whole, capsys)
    _fails(check, lambda t: any(p in t.lower() for p in
                                ("might", "think", "maybe", "probably", "not sure")),
           "inside words")
    _fails(check, lambda t: not whole(t), "swapped")


def test_tilted_share(capsys):
    def tilt(p0, d, b):
        odds = p0 / (1 - p0) * math.exp(d / b)
        return odds / (1 + odds)

    check = checks.check_tilted_share
    _passes(check, tilt, capsys)
    _fails(check, lambda p0, d, b: min(1.0, p0 * math.exp(d / b)), "SHARE")
    _fails(check, lambda p0, d, b: tilt(p0, d * b * b, b), "δ/β, not δ·β")
    _fails(check, lambda p0, d, b: tilt(p0, -d, b), "sign")


def test_answers_needed(capsys):
    from rlhf_lessons.measure.verdicts import n_per_arm

    check = checks.check_answers_needed
    _passes(check, n_per_arm, capsys)
    _fails(check, lambda p0, p1: n_per_arm(p0, p1) - 1, "round UP")

    def no_power(p0, p1):
        pb = (p0 + p1) / 2
        return math.ceil(1.96 ** 2 * 2 * pb * (1 - pb) / (p1 - p0) ** 2)
    _fails(check, no_power, "80% power")
