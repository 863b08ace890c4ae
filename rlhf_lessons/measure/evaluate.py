"""Measurement shared by notebooks 03-05: one copy of each yardstick.

- judge accuracy with a Wilson interval, beside the length-only baselines (03);
- the pairs a judge gets most wrong (03);
- what a judge pays for: controlled rewrites with bootstrap intervals (03, 05);
- the reward normaliser's statistics (03, 04, 05);
- sample-and-score on held-out prompts, with the KL to the reference (04, 05);
- a policy's held-out summary (scores, KL, answer features) and the
  over-optimisation shape of Gao et al. (06 and its try-it sweep).

The banners carry the section of the notebook that teaches each piece.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from rlhf_lessons.core.batching import (
    decode_responses,
    encode_prompts,
    left_pad,
    truncate_after_eos,
)
from rlhf_lessons.core.config import PPOConfig
from rlhf_lessons.core.generation import sample_responses
from rlhf_lessons.core.utils import cut
from rlhf_lessons.measure.analysis import FEATURES, feature_table
from rlhf_lessons.measure.rewrites import rewrite
from rlhf_lessons.train.reward import PairSet, held_out_accuracy, p_first_better, score_texts
from rlhf_lessons.train.rollout import make_batch, normalise, response_logprobs, score_batch

ScoreFn = Callable[[list[str], list[str]], Sequence[float]]


# --------------------------------------------------------------------------
# 3.6 Held-out accuracy, beside the length rules
# --------------------------------------------------------------------------
def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def judge_accuracy(model, pairs: PairSet, device="cpu", pad_id: int = 0,
                   batch_size: int = 32, show_progress: bool = False,
                   scores: tuple | None = None) -> dict:
    """Held-out pairwise accuracy of a judge with its 95% Wilson interval.

    Identical pairs are ties and count as wrong. Returns ``{"accuracy", "ci95",
    "loss", "n", "r_chosen", "r_rejected", "correct"}``; ``correct`` (n,) bool says
    per pair whether the judge sided with the raters (to compare judges pair by pair).
    ``scores``: the judge's ``(r_chosen, r_rejected)`` if already computed.
    """
    ev = held_out_accuracy(model, pairs, device, pad_id, batch_size, show_progress, scores)
    ev["ci95"] = wilson_ci(int(ev["correct"].sum()), ev["n"])
    return ev


def length_rule_correct(pairs: PairSet, rule: str) -> np.ndarray:
    """Per pair: does "longer wins" / "shorter wins" pick the chosen answer?

    Equal lengths are ties and count as wrong, like the judge's ties.
    """
    if rule == "longer":
        return pairs.len_chosen > pairs.len_rejected
    if rule == "shorter":
        return pairs.len_chosen < pairs.len_rejected
    raise ValueError(f"rule={rule!r}: expected 'longer' or 'shorter'")


def length_judge_directions(train: PairSet) -> dict[str, str]:
    """For each subset, the length rule ("longer"/"shorter") that wins more TRAIN pairs."""
    subs = np.array(train.subset)
    out = {}
    for s in sorted(set(train.subset)):
        m = subs == s
        lo = length_rule_correct(train, "longer")[m].mean()
        sh = length_rule_correct(train, "shorter")[m].mean()
        out[s] = "longer" if lo >= sh else "shorter"
    return out


def accuracy_table(pairs: PairSet, correct: np.ndarray, directions: dict[str, str]):
    """Per subset and overall: n, judge accuracy with 95% CI, the length rules.

    ``directions``: the length-only judge's rule per subset, chosen on TRAIN
    (:func:`length_judge_directions`).
    """
    subs = np.array(pairs.subset)
    longer = length_rule_correct(pairs, "longer")
    shorter = length_rule_correct(pairs, "shorter")
    length_judge = np.array([longer[i] if directions.get(s, "longer") == "longer"
                             else shorter[i] for i, s in enumerate(subs)])
    rows = []
    for s in [*sorted(set(pairs.subset)), "overall"]:
        m = np.ones(len(subs), bool) if s == "overall" else subs == s
        n, k = int(m.sum()), int(correct[m].sum())
        lo, hi = wilson_ci(k, n)
        rows.append({"subset": s, "n": n, "judge": k / n, "ci_low": lo, "ci_high": hi,
                     "longer_wins": longer[m].mean(), "shorter_wins": shorter[m].mean(),
                     "length_judge": length_judge[m].mean(),
                     "direction": directions.get(s, "per subset")})
    return pd.DataFrame(rows).set_index("subset")


# --------------------------------------------------------------------------
# 3.8 The pairs the judge gets most wrong
# --------------------------------------------------------------------------
def most_wrong(pairs: PairSet, ev: dict, k: int = 5, width: int = 160):
    """The k eval pairs where the judge most prefers the REJECTED answer, as text."""
    gap = ev["r_chosen"] - ev["r_rejected"]
    order = np.argsort(gap)[:k]

    return pd.DataFrame([{"subset": pairs.subset[i], "r_c - r_r": round(float(gap[i]), 2),
                          "prompt (end)": cut(pairs.prompt[i][-width:], width),
                          "chosen": cut(pairs.chosen[i], width),
                          "rejected": cut(pairs.rejected[i], width)}
                         for i in order])


# --------------------------------------------------------------------------
# 3.9 What does the judge reward?
# --------------------------------------------------------------------------
def subset_counts(subsets) -> dict[str, int]:
    """{subset: count} of a sample, for printing and for ``metrics.json``."""
    return {str(k): int(v) for k, v in pd.Series(list(subsets)).value_counts()
            .sort_index().items()}


def judge_compare(model, tok, prompt: str, answer_a: str, answer_b: str,
                  max_len: int = 256, device="cpu") -> dict:
    """The judge widget's pure function: both scores and P(A is better) = σ(r_a − r_b).

    """
    if not prompt.strip():
        raise ValueError("prompt is empty: type the human's message")
    for name, a in (("answer A", answer_a), ("answer B", answer_b)):
        if not a.strip():
            raise ValueError(f"{name} is empty: type an answer to score")
    if "Assistant:" not in prompt:
        prompt = f"\n\nHuman: {prompt.strip()}\n\nAssistant:"
    s = score_texts(model, tok, [prompt, prompt], [answer_a.strip(), answer_b.strip()],
                    max_len, device)
    return {"score_a": float(s[0]), "score_b": float(s[1]),
            "p_a_better": p_first_better(float(s[0]), float(s[1]))}


# Each effect is a paired difference score(a) - score(b) on the same answers.
EFFECTS: dict[str, tuple[str, str]] = {
    "hedged": ("hedged", "original"),
    "confident": ("confident", "original"),
    "confident vs hedged": ("confident", "hedged"),
    "shorter": ("shorter", "original"),
    "longer": ("longer", "original"),
    "flattering": ("flattering", "original"),
}


def mean_with_error(deltas, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean of paired differences with its standard error and a bootstrap 95% CI.

    ``deltas: (n,)``. ``se = std(ddof=1) / sqrt(n)`` (NaN for n < 2); the CI is the
    2.5/97.5 percentiles of ``n_boot`` resampled means.
    """
    d = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("mean_with_error: no differences to average")
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else float("nan")
    if d.size > 1 and n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
        lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
    else:
        lo = hi = float("nan")
    return {"mean": mean, "se": se, "ci_low": lo, "ci_high": hi, "n": int(d.size)}


def judge_effects(score_fn: ScoreFn,
                  prompts: Sequence[str], answers: Sequence[str],
                  effects: Mapping[str, tuple[str, str]] | None = None,
                  n_boot: int = 1000, seed: int = 0):
    """How much the judge's score moves under each controlled rewrite.

    ``score_fn(prompts, answers) -> (n,)`` scores (e.g. :func:`judge_reward_fn`).
    For each effect ``name -> (a, b)``: ``Δ = score(rewrite_a) - score(rewrite_b)``
    over the answers where the two texts differ (a rewrite that changes nothing, e.g.
    "shorter" on a one-sentence answer, is not counted). Returns a DataFrame indexed
    by effect: n, mean, se, ci_low, ci_high, share_up (Δ > 0), mean_dwords.
    """
    effects = dict(EFFECTS if effects is None else effects)
    prompts, answers = list(prompts), [a.strip() for a in answers]
    if len(prompts) != len(answers):
        raise ValueError(f"judge_effects: {len(prompts)} prompts but {len(answers)} answers")
    if not answers:
        raise ValueError("judge_effects: no answers to rewrite")
    kinds = sorted({k for pair in effects.values() for k in pair})
    texts = {k: [rewrite(a, k) for a in answers] for k in kinds}
    flat_p = [p for _ in kinds for p in prompts]
    flat_a = [t for k in kinds for t in texts[k]]
    flat_s = np.asarray(list(score_fn(flat_p, flat_a)), dtype=np.float64)
    if flat_s.shape != (len(flat_a),):
        raise ValueError(f"score_fn returned {flat_s.shape} scores for {len(flat_a)} texts")
    n = len(answers)
    scores = {k: flat_s[i * n:(i + 1) * n] for i, k in enumerate(kinds)}
    rows = []
    for name, (a, b) in effects.items():
        idx = [i for i in range(n) if texts[a][i] != texts[b][i]]
        if not idx:
            continue
        d = scores[a][idx] - scores[b][idx]
        st = mean_with_error(d, n_boot, seed)
        dw = np.mean([len(texts[a][i].split()) - len(texts[b][i].split()) for i in idx])
        rows.append({"effect": name, **st, "share_up": float((d > 0).mean()),
                     "mean_dwords": float(dw)})
    return pd.DataFrame(rows).set_index("effect")


# --------------------------------------------------------------------------
# 3.10 Normalising the score for PPO
# --------------------------------------------------------------------------
def score_stats(scores, constant_ok: bool = False) -> tuple[float, float] | None:
    """(mean, std) of a reward on the reference policy's answers (std with ddof 0);
    :func:`rlhf_lessons.train.rollout.normalise` applies it.

    Scores that do not vary (std ~0 relative to their size) have no spread to
    divide by: that raises, or with ``constant_ok`` returns None (train on raw
    scores) and says so in one line.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError("score_stats: no scores")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"score_stats: {int((~np.isfinite(s)).sum())} of {s.size} scores "
                         "are NaN or infinite")
    mean, std = float(s.mean()), float(s.std())
    if std <= 1e-6 * max(1.0, abs(mean)):
        msg = (f"the {s.size} reference scores do not vary (mean {mean:.4g}, std {std:.2g}), "
               "so there is no spread to normalise by")
        if not constant_ok:
            raise ValueError(msg + ": use raw scores (score_norm=None) or a reward that varies")
        print(msg + ": PPO uses the raw scores")
        return None
    return mean, std


# --------------------------------------------------------------------------
# 4.6 Before and after, on held-out prompts
# --------------------------------------------------------------------------
@torch.no_grad()
def sample_and_score(policy, reward, tokenizer, prompts: Sequence[str], cfg: PPOConfig,
                     seed: int = 0, batch_size: int = 64, ref_policy=None):
    """Sample one answer per prompt at the PPO temperature and score it.

    Returns a DataFrame: prompt, answer, score (the raw reward), n_tokens, has_eos,
    and with ``ref_policy`` also kl = sum over the answer's tokens of
    log pi - log pi_ref (k1, nats, :func:`sequence_kl`). The same seed gives the
    same answers. Used for the reference statistics and every before/after table.
    """
    gen = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    dev = next(policy.parameters()).device
    seqs = encode_prompts(tokenizer, list(prompts), cfg.max_prompt_tokens)
    out = []
    for s in range(0, len(prompts), batch_size):
        chunk = list(prompts[s:s + batch_size])
        p_ids, p_mask = left_pad(seqs[s:s + batch_size], pad)
        p_ids, p_mask = p_ids.to(dev), p_mask.to(dev)
        raw, logp, _ = sample_responses(policy, p_ids, p_mask, cfg.max_new_tokens,
                                        cfg.temperature, eos, gen)
        r_ids, r_mask, has_eos = truncate_after_eos(raw, eos, pad)
        batch = make_batch(p_ids, p_mask, r_ids, r_mask, has_eos)
        answers = decode_responses(tokenizer, r_ids, r_mask)
        scores = (score_batch(reward, batch, chunk, answers) if reward is not None
                  else torch.full((len(chunk),), float("nan")))
        kl = [float("nan")] * len(chunk)
        if ref_policy is not None:
            ref_logp = response_logprobs(ref_policy, batch, cfg.temperature)
            kl = sequence_kl(logp, ref_logp, r_mask).tolist()
        for p, a, sc, n, e, k in zip(chunk, answers, scores.tolist(),
                                     r_mask.sum(-1).tolist(), has_eos.tolist(), kl):
            out.append({"prompt": p, "answer": a, "score": sc, "n_tokens": int(n),
                        "has_eos": bool(e), "kl": k})
    return pd.DataFrame(out)


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """KL of each sampled answer to the reference: ``(B, R) -> (B,)``.

    ``sum_t mask_t (log pi(a_t) - log pi_ref(a_t))`` over the answer tokens (the k1
    estimator summed over the sequence, as PPO's ``objective/kl``). Padding is
    masked out. Its mean over samples estimates KL(pi || pi_ref) in nats.
    """
    if logprobs.shape != ref_logprobs.shape or logprobs.shape != mask.shape:
        raise ValueError(f"sequence_kl: shapes differ: logprobs {tuple(logprobs.shape)}, "
                         f"ref_logprobs {tuple(ref_logprobs.shape)}, mask {tuple(mask.shape)}")
    diff = (logprobs - ref_logprobs).float()
    return torch.where(mask.bool(), diff, torch.zeros_like(diff)).sum(-1)


def sqrt_kl(kl) -> float:
    """Gao et al.'s distance ``d = sqrt(KL)`` from per-sample KLs (or one mean KL).

    The k1 estimate is unbiased but noisy: its mean over a few samples can come out
    slightly below 0 when the policy has barely moved. That noise is clipped to 0
    before the square root.
    """
    arr = np.asarray(kl.detach().cpu() if isinstance(kl, torch.Tensor) else kl,
                     dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("sqrt_kl: no KL values")
    if not np.all(np.isfinite(arr)):
        raise ValueError("sqrt_kl: KL values must be finite")
    return float(math.sqrt(max(0.0, float(arr.mean()))))


# --------------------------------------------------------------------------
# 6.5 Do biased raters make a biased policy?
# --------------------------------------------------------------------------
def evaluate_policy(policy, ref_policy, tokenizer, prompts: Sequence[str], cfg: PPOConfig,
                    judges: Mapping[str, Callable], norms: Mapping[str, tuple] | None = None,
                    seed: int = 0):
    """Sample on held-out prompts; score with every judge; measure KL and features.

    ``judges``: name -> ``reward_fn(prompts, responses)``. ``norms``: name ->
    (mean, std) of that judge on the reference's samples; when given, the
    ``<name>_score`` columns are in those units (0 = the reference's mean).
    Returns ``(summary, samples)``: summary has kl, sqrt_kl, eos_rate, the mean of
    each judge's score and of each feature; samples is one row per prompt.
    """
    df = sample_and_score(policy, None, tokenizer, prompts, cfg, seed=seed,
                          ref_policy=ref_policy).drop(columns="score")
    summary = {"kl": float(df["kl"].mean()), "sqrt_kl": sqrt_kl(df["kl"].to_numpy()),
               "eos_rate": float(df["has_eos"].mean())}
    for name, fn in judges.items():
        raw = np.asarray(fn(list(df["prompt"]), list(df["answer"])), dtype=np.float64)
        df[f"{name}_raw"] = raw
        df[f"{name}_score"] = normalise(raw, norms.get(name)) if norms else raw
        summary[f"{name}_score"] = float(df[f"{name}_score"].mean())
    feats = feature_table(list(df["answer"]))
    for k in FEATURES:
        df[k] = feats[k].to_numpy()
        summary[k] = float(feats[k].mean())
    return summary, df


# --------------------------------------------------------------------------
# 6.4 Does the gold score peak under best-of-N?
# --------------------------------------------------------------------------
def peak_then_fall(xs, ys, tol: float = 0.0) -> dict:
    """Does ``ys`` (ordered by ``xs``) peak strictly inside and then fall by > tol?

    Returns {"peak_x", "peak_y", "last_y", "drop", "peaks_inside"}: the shape Gao
    et al. predict for the gold score against sqrt(KL).
    """
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.size == 0 or xs.shape != ys.shape:
        raise ValueError("peak_then_fall: xs and ys must be non-empty and the same size")
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    k = int(np.argmax(ys))
    drop = float(ys[k] - ys[-1])
    return {"peak_x": float(xs[k]), "peak_y": float(ys[k]), "last_y": float(ys[-1]),
            "drop": drop, "peaks_inside": bool(0 < k < xs.size - 1 and drop > tol)}


# --------------------------------------------------------------------------
# 7.7 The frontier
# --------------------------------------------------------------------------
class PeakRSS:
    """``with PeakRSS() as m: ...`` then ``m.peak_mb``, ``m.wall_s`` (notebook 07).

    Samples this process's resident memory (``/proc/self/statm``) every 20 ms in a
    thread, so the peak is the one reached during the block (the RSS when it began
    included). Where ``/proc`` is missing, the process's lifetime peak instead.
    """

    def __init__(self, every_s: float = 0.02):
        self.every_s, self.peak_mb, self.wall_s = every_s, float("nan"), float("nan")

    @staticmethod
    def rss_mb() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
        except (OSError, ValueError, IndexError, AttributeError):
            import resource  # POSIX only; Windows has /proc neither

            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return kb / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)

    def _watch(self):
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self):
        self.peak_mb, self._t0 = self.rss_mb(), time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())
        self.wall_s = time.perf_counter() - self._t0
        return False
