"""Reward hacking and the confidence bias: what the judge pays for, and what PPO learns.

Taught in notebook 05 (reward hacking and confidence). Builds on the judge of
notebook 03 (:mod:`rlhf_lessons.reward`) and the PPO of notebook 04
(:mod:`rlhf_lessons.ppo`).

The pieces, in the notebook's order:

1. **Controlled rewrites** (:data:`REWRITE_KINDS`): the same answer hedged or
   confident, shorter or longer, with or without flattery of the user. The
   templates come from :mod:`rlhf_lessons.rewrites` where they exist; flattery is
   added here. :func:`judge_effects` measures the mean score change per rewrite,
   with a standard error and a bootstrap 95% interval.
2. **Answer features** (:func:`answer_features`): length in words, confident /
   hedge / refusal / flattery phrase counts, "!" count and repetition, tracked over a
   PPO run (:func:`run_ppo`, the trainer loop of :func:`rlhf_lessons.ppo.train_ppo`
   with a hook after every update).
3. **Over-optimisation** (Gao et al. 2022): a *proxy* judge trained on a small slice
   of the train split (:func:`load_proxy_judge`), the notebook-03 judge as *gold*,
   PPO against the proxy for several KL coefficients (:func:`beta_sweep`), and both
   scores against ``sqrt(KL)`` (:func:`sequence_kl`, :func:`sqrt_kl`).
4. **Deliberately hackable rewards** (:func:`exclamation_reward`,
   :func:`length_reward`): ``reward_fn(prompts, responses) -> list[float]``.

Budgets come from :class:`HackingConfig` (``HackingConfig.for_preset(cfg)``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rlhf_lessons.analysis import (
    CONFIDENT_PHRASES,
    HEDGE_PHRASES,
    REFUSAL_PHRASES,
    count_phrases,
    tokenize,
)
from rlhf_lessons.config import LessonConfig, PPOConfig
from rlhf_lessons.rewrites import confident, first_sentence, hedged, padded
from rlhf_lessons.utils import atomic_torch_save, output_dir, progress, say_once

NOTEBOOK = "05_reward_hacking_and_confidence"


# --------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class HackingConfig:
    """Budgets of notebook 05. ``HackingConfig.for_preset(cfg)`` picks them.

    The PPO settings themselves (batch, tokens, clipping, ...) come from
    ``cfg.ppo``; these only say how much of each experiment to run.
    """

    n_effect_answers: int = 96  # held-out answers rewritten for the judge effects
    n_boot: int = 1000  # bootstrap resamples for the effect intervals
    proxy_pairs: int = 768  # TRAIN pairs the proxy judge sees (gold: all of them)
    n_acc_pairs: int = 300  # held-out pairs to compare proxy and gold accuracy
    n_train_prompts: int = 1024  # TRAIN prompts PPO samples from
    n_eval_prompts: int = 48  # held-out prompts for scores, KL and samples
    n_norm_prompts: int = 64  # TRAIN prompts for the reward normalisation
    track_updates: int = 12  # PPO against the gold judge, features per update
    sweep_betas: tuple[float, ...] = (0.0, 0.05, 0.5)
    sweep_updates: int = 9  # per beta, against the proxy judge
    sweep_eval_every: int = 3  # held-out evaluation points along each sweep run
    sweep_lr: float = 1e-4  # a larger step than notebook 04, to reach high KL fast
    hack_updates: int = 10  # PPO against the hackable reward
    hack_lr: float = 1e-4
    track_lr: float = 3e-5  # PPO against the judge, section 5.3
    proxy_labels: str = "gold"  # "gold": the gold judge labels the slice (Gao et al.)
    # Notebook 05 runs many short PPO runs: smaller rollouts and fewer epochs per
    # update than notebook 04 keep the whole lesson within its CPU budget.
    rollout_batch: int = 16
    ppo_epochs: int = 2

    def ppo_config(self, base: PPOConfig, lr: float) -> PPOConfig:
        """``base`` (``cfg.ppo``) with this notebook's rollout size, epochs and ``lr``."""
        mb = max(1, min(base.mini_batches, self.rollout_batch))
        while self.rollout_batch % mb:
            mb -= 1
        return dataclasses.replace(base, rollout_batch=self.rollout_batch,
                                   mini_batches=mb, ppo_epochs=self.ppo_epochs, lr=lr)

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> HackingConfig:
        """Small budgets for the fast preset (tests: seconds), full ones otherwise."""
        if cfg.preset == "fast":
            return cls(n_effect_answers=16, n_boot=200, proxy_pairs=64, n_acc_pairs=32,
                       n_train_prompts=32, n_eval_prompts=8, n_norm_prompts=8,
                       track_updates=2, sweep_betas=(0.0, 0.1), sweep_updates=2,
                       sweep_eval_every=1, sweep_lr=1e-4, hack_updates=2, hack_lr=1e-4,
                       track_lr=1e-4, rollout_batch=8)
        return cls()


# --------------------------------------------------------------------------
# 5.1 Controlled rewrites
# --------------------------------------------------------------------------
FLATTERY_PREFIX = "Great question! You clearly know a lot about this."
FLATTERY_PHRASES = (
    "great question", "good question", "excellent question", "you clearly",
    "you're right", "you are right", "you're absolutely right", "smart", "brilliant",
    "insightful", "you know a lot",
)


def flattering(answer: str) -> str:
    """``"Great question! You clearly know a lot about this. <answer>"``.

    The flattery of the user is the only change. Taught in notebook 05.
    """
    answer = answer.strip()
    return f"{FLATTERY_PREFIX} {answer}" if answer else FLATTERY_PREFIX


REWRITE_KINDS: dict[str, Callable[[str], str]] = {
    "hedged": hedged,
    "confident": confident,
    "shorter": first_sentence,
    "longer": padded,
    "flattering": flattering,
}


def rewrite(answer: str, kind: str) -> str:
    """``answer`` rewritten by the template named ``kind`` (see :data:`REWRITE_KINDS`)."""
    if kind == "original":
        return answer.strip()
    if kind not in REWRITE_KINDS:
        raise ValueError(f"kind={kind!r}: expected 'original' or one of "
                         f"{list(REWRITE_KINDS)}")
    return REWRITE_KINDS[kind](answer)


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
    2.5/97.5 percentiles of ``n_boot`` resampled means. Taught in notebook 05.
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


def judge_effects(score_fn: Callable[[list[str], list[str]], Sequence[float]],
                  prompts: Sequence[str], answers: Sequence[str],
                  effects: Mapping[str, tuple[str, str]] | None = None,
                  n_boot: int = 1000, seed: int = 0):
    """How much the judge's score moves under each controlled rewrite.

    ``score_fn(prompts, answers) -> (n,)`` scores (e.g. :func:`judge_reward_fn`).
    For each effect ``name -> (a, b)``: ``Δ = score(rewrite_a) - score(rewrite_b)``
    over the answers where the two texts differ (a rewrite that changes nothing, e.g.
    "shorter" on a one-sentence answer, is not counted). Returns a DataFrame indexed
    by effect: n, mean, se, ci_low, ci_high, share_up (Δ > 0), mean_dwords.
    Taught in notebook 05.
    """
    import pandas as pd

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


def judge_reward_fn(model, tokenizer, max_len: int = 256, device="cpu",
                    batch_size: int = 32) -> Callable[[list[str], list[str]], list[float]]:
    """The judge as ``reward_fn(prompts, responses) -> list[float]``.

    Scores with :func:`rlhf_lessons.reward.score_texts`, i.e. exactly the way the
    judge was trained to read (prompt, " ", stripped answer, EOS; read at the EOS),
    so what PPO optimises and what the notebook measures are the same number.
    Taught in notebook 05.
    """
    from rlhf_lessons.reward import score_texts

    def reward_fn(prompts, responses):
        answers = [r.strip() for r in responses]
        return score_texts(model, tokenizer, list(prompts), answers, max_len, device,
                           batch_size).tolist()

    reward_fn.judge = model  # so a caller can still reach the model
    return reward_fn


# --------------------------------------------------------------------------
# 5.2 Features of an answer
# --------------------------------------------------------------------------
FEATURES = ("words", "confident", "hedge", "refusal", "flattery", "exclamations",
            "repetition")


def repetition(text: str, n: int = 2) -> float:
    """Fraction of the word ``n``-grams that repeat an earlier one, in [0, 1).

    ``"a b a b" -> bigrams ab, ba, ab -> 1/3``. Fewer than one n-gram gives 0.
    Degenerate RL text ("great great great ...") drives it towards 1.
    Taught in notebook 05.
    """
    if n < 1:
        raise ValueError(f"repetition: n={n} must be >= 1")
    words = tokenize(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _without(text: str, phrases: Sequence[str]) -> str:
    # Blank out whole-word matches of ``phrases`` (same matching as count_phrases).
    norm = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.sub(rf"(?<![a-z0-9'])(?:{alts})(?![a-z0-9'])", " | ", norm)


def answer_features(text: str) -> dict[str, float]:
    """The surface features of one answer (see :data:`FEATURES`).

    words: whitespace-separated words; confident / hedge / refusal / flattery:
    phrase counts (:func:`rlhf_lessons.analysis.count_phrases`, whole words, any
    case); exclamations: "!" count; repetition: :func:`repetition` of bigrams.
    Confident words are counted outside hedge phrases, so "I'm not sure" is one
    hedge and not also a confident "sure".
    Taught in notebook 05.
    """
    if not isinstance(text, str):
        raise TypeError(f"answer_features: expected a str, got {type(text).__name__}")
    return {
        "words": float(len(text.split())),
        "confident": float(count_phrases(_without(text, HEDGE_PHRASES),
                                         CONFIDENT_PHRASES)),
        "hedge": float(count_phrases(text, HEDGE_PHRASES)),
        "refusal": float(count_phrases(text, REFUSAL_PHRASES)),
        "flattery": float(count_phrases(text, FLATTERY_PHRASES)),
        "exclamations": float(text.count("!")),
        "repetition": repetition(text),
    }


def feature_table(texts: Sequence[str]):
    """One row of :func:`answer_features` per text (a DataFrame)."""
    import pandas as pd

    return pd.DataFrame([answer_features(t) for t in texts], columns=list(FEATURES))


def feature_means(texts: Sequence[str]) -> dict[str, float]:
    """Mean of each feature over ``texts`` (all 0 for no texts)."""
    if not len(texts):
        return {k: 0.0 for k in FEATURES}
    return {k: float(v) for k, v in feature_table(texts).mean().items()}


# --------------------------------------------------------------------------
# 5.3 sqrt(KL) bookkeeping
# --------------------------------------------------------------------------
def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """KL of each sampled answer to the reference: ``(B, R) -> (B,)``.

    ``sum_t mask_t (log pi(a_t) - log pi_ref(a_t))`` over the answer tokens (the k1
    estimator summed over the sequence, as PPO's ``objective/kl``). Padding is
    masked out. Its mean over samples estimates KL(pi || pi_ref) in nats.
    Taught in notebook 05.
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
    before the square root. Taught in notebook 05.
    """
    arr = np.asarray(kl.detach().cpu() if isinstance(kl, torch.Tensor) else kl,
                     dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("sqrt_kl: no KL values")
    if not np.all(np.isfinite(arr)):
        raise ValueError("sqrt_kl: KL values must be finite")
    return float(math.sqrt(max(0.0, float(arr.mean()))))


# --------------------------------------------------------------------------
# 5.4 Deliberately hackable rewards
# --------------------------------------------------------------------------
def _check_pairs(name: str, prompts, responses) -> None:
    if len(prompts) != len(responses):
        raise ValueError(f"{name}: {len(prompts)} prompts but {len(responses)} responses")
    for i, r in enumerate(responses):
        if not isinstance(r, str):
            raise TypeError(f"{name}: response {i} is {type(r).__name__}, expected str")


def exclamation_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """One point per "!" in the answer: a reward that is trivial to game.

    Taught in notebook 05 (the hackable reward PPO exploits).
    """
    _check_pairs("exclamation_reward", prompts, responses)
    return [float(r.count("!")) for r in responses]


def length_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """The answer's length in words / 10: "longer is better", with no ceiling.

    Taught in notebook 05.
    """
    _check_pairs("length_reward", prompts, responses)
    return [len(r.split()) / 10.0 for r in responses]


HACKABLE_REWARDS = {"'!' count": exclamation_reward, "length": length_reward}


# --------------------------------------------------------------------------
# PPO with a hook, and the held-out evaluation
# --------------------------------------------------------------------------
def run_ppo(policy, ref_policy, value_model, reward, tokenizer, prompts: Sequence[str],
            cfg: PPOConfig, *, seed: int = 0, n_updates: int | None = None,
            score_stats: tuple[float, float] | None = None,
            on_update: Callable | None = None, show_progress: bool = True,
            desc: str = "PPO"):
    """The loop of :func:`rlhf_lessons.ppo.train_ppo`, with a hook after each update.

    Same steps, same random stream, same metrics (a test checks it against
    ``train_ppo``), minus checkpointing (notebook 05's runs are short; the sweep
    saves whole runs instead). ``on_update(u, rollout, row)`` sees each rollout
    (its ``responses`` are the answers PPO just scored) and the metrics row; a dict
    it returns is merged into the row. Returns the metrics DataFrame.
    Taught in notebook 05.
    """
    import pandas as pd

    from rlhf_lessons import ppo

    if cfg.kl_estimator not in ppo.KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={cfg.kl_estimator!r}: expected one of "
                         f"{ppo.KL_ESTIMATORS}")
    n_updates = cfg.n_updates if n_updates is None else n_updates
    prompts = list(prompts)
    prompt_ids = ppo.encode_prompts(tokenizer, prompts, cfg.max_prompt_tokens)
    if len(prompts) < cfg.rollout_batch:
        raise ValueError(f"{len(prompts)} prompts for rollout_batch={cfg.rollout_batch}")
    for m in (policy, ref_policy, value_model):
        m.train(False)
    if policy is ref_policy:
        raise ValueError("policy and ref_policy are the same object: pass a frozen copy")
    policy.requires_grad_(True)
    value_model.requires_grad_(True)
    ref_policy.requires_grad_(False)
    if isinstance(reward, torch.nn.Module):
        reward.train(False).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    optimizer = ppo.make_optimizer(policy, value_model, cfg)
    beta, rows, order = cfg.kl_coef, [], []
    t_start = time.perf_counter()
    for u in progress(range(n_updates), desc=desc, disable=not show_progress):
        lr = ppo.lr_at(cfg, u, n_updates)
        for g in optimizer.param_groups:
            g["lr"] = lr
        if len(order) < cfg.rollout_batch:
            order += torch.randperm(len(prompts), generator=gen).tolist()
        idx, order = order[:cfg.rollout_batch], order[cfg.rollout_batch:]
        ro = ppo.rollout(policy, ref_policy, value_model, reward, tokenizer,
                         [prompt_ids[i] for i in idx], [prompts[i] for i in idx], cfg,
                         gen, score_stats)
        adv = ppo.compute_advantages(ro, beta, cfg)
        upd = ppo.ppo_update(policy, value_model, optimizer, ro, adv, cfg, gen)
        row = {"update": u + 1, "episodes": (u + 1) * cfg.rollout_batch,
               **ppo.update_metrics_row(ro, adv, upd, beta, lr),
               "tokens_generated": ro.batch.response_ids.numel(),
               "gen_s": ro.gen_s, "time_s": time.perf_counter() - t_start}
        if on_update is not None:
            extra = on_update(u, ro, row)
            if extra:
                row.update(extra)
        rows.append(row)
        beta = ppo.update_kl_coef(beta, row["objective/kl"], cfg.adaptive_kl_target,
                                  cfg.rollout_batch, cfg.kl_horizon)
    return pd.DataFrame(rows)


@torch.no_grad()
def sample_with_kl(policy, ref_policy, tokenizer, prompts: Sequence[str], cfg: PPOConfig,
                   seed: int = 0, batch_size: int = 64):
    """One answer per prompt at the PPO temperature, with its KL to the reference.

    Returns a DataFrame: prompt, answer, kl (nats, :func:`sequence_kl`), n_tokens,
    has_eos. The same seed gives the same answers. Taught in notebook 05.
    """
    import pandas as pd

    from rlhf_lessons import ppo

    gen = torch.Generator().manual_seed(seed)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    dev = next(policy.parameters()).device
    seqs = ppo.encode_prompts(tokenizer, prompts, cfg.max_prompt_tokens)
    rows = []
    for s in range(0, len(prompts), batch_size):
        chunk = list(prompts[s:s + batch_size])
        p_ids, p_mask = ppo.left_pad(seqs[s:s + batch_size], pad)
        p_ids, p_mask = p_ids.to(dev), p_mask.to(dev)
        raw, logp, _ = ppo.sample_responses(policy, p_ids, p_mask, cfg.max_new_tokens,
                                            cfg.temperature, eos, gen)
        r_ids, r_mask, has_eos = ppo.truncate_after_eos(raw, eos, pad)
        batch = ppo.make_batch(p_ids, p_mask, r_ids, r_mask, has_eos)
        ref_logp = ppo.response_logprobs(ref_policy, batch, cfg.temperature)
        kl = sequence_kl(logp, ref_logp, r_mask)
        answers = ppo.decode_responses(tokenizer, r_ids, r_mask, eos)
        for p, a, k, n, e in zip(chunk, answers, kl.tolist(), r_mask.sum(-1).tolist(),
                                 has_eos.tolist()):
            rows.append({"prompt": p, "answer": a.strip(), "kl": k, "n_tokens": int(n),
                         "has_eos": bool(e)})
    return pd.DataFrame(rows)


def normalise(scores, stats: tuple[float, float]) -> np.ndarray:
    """``(scores - mean) / std``: scores in units of the reference policy's spread."""
    mean, std = stats
    return (np.asarray(scores, dtype=np.float64) - mean) / (std if std > 1e-8 else 1.0)


def score_stats(scores) -> tuple[float, float]:
    """(mean, std) of scores (std 1 when they are all equal)."""
    s = np.asarray(scores, dtype=np.float64)
    std = float(s.std())
    return float(s.mean()), (std if std > 1e-8 else 1.0)


def evaluate_policy(policy, ref_policy, tokenizer, prompts: Sequence[str], cfg: PPOConfig,
                    judges: Mapping[str, Callable], norms: Mapping[str, tuple] | None = None,
                    seed: int = 0):
    """Sample on held-out prompts; score with every judge; measure KL and features.

    ``judges``: name -> ``reward_fn(prompts, responses)``. ``norms``: name ->
    (mean, std) of that judge on the reference's samples; when given, the
    ``<name>_score`` columns are in those units (0 = the reference's mean).
    Returns ``(summary, samples)``: summary has kl, sqrt_kl, eos_rate, the mean of
    each judge's score and of each feature; samples is one row per prompt.
    Taught in notebook 05.
    """
    df = sample_with_kl(policy, ref_policy, tokenizer, prompts, cfg, seed=seed)
    summary = {"kl": float(df["kl"].mean()), "sqrt_kl": sqrt_kl(df["kl"].to_numpy()),
               "eos_rate": float(df["has_eos"].mean())}
    for name, fn in judges.items():
        raw = np.asarray(fn(list(df["prompt"]), list(df["answer"])), dtype=np.float64)
        df[f"{name}_raw"] = raw
        df[f"{name}_score"] = normalise(raw, norms[name]) if norms and name in norms else raw
        summary[f"{name}_score"] = float(df[f"{name}_score"].mean())
    feats = feature_table(list(df["answer"]))
    for k in FEATURES:
        df[k] = feats[k].to_numpy()
        summary[k] = float(feats[k].mean())
    return summary, df


# --------------------------------------------------------------------------
# Gold and proxy judges
# --------------------------------------------------------------------------
def proxy_key(cfg: LessonConfig, hc: HackingConfig) -> str:
    return f"{cfg.short_hash('model', 'reward')}-{hc.proxy_pairs}-{hc.proxy_labels}"


def relabel_by(pairs, r_chosen, r_rejected) -> int:
    """Swap the sides of each pair where ``r_rejected > r_chosen``; returns the count.

    ``pairs``: a :class:`rlhf_lessons.reward.PairSet` (changed in place);
    ``r_chosen, r_rejected: (n,)`` a judge's scores. After this the "chosen" side is
    the one that judge prefers: its labels replace the human ones (Gao et al.'s
    synthetic setup, where a gold reward model labels the proxy's data).
    Taught in notebook 05.
    """
    r_chosen, r_rejected = np.asarray(r_chosen), np.asarray(r_rejected)
    if r_chosen.shape != (len(pairs),) or r_rejected.shape != (len(pairs),):
        raise ValueError(f"relabel_by: need {len(pairs)} scores per side, got "
                         f"{r_chosen.shape} and {r_rejected.shape}")
    flip = np.flatnonzero(r_rejected > r_chosen)
    for i in flip:
        pairs.chosen_ids[i], pairs.rejected_ids[i] = pairs.rejected_ids[i], pairs.chosen_ids[i]
        pairs.chosen[i], pairs.rejected[i] = pairs.rejected[i], pairs.chosen[i]
    lc = pairs.len_chosen.copy()
    pairs.len_chosen[flip], pairs.len_rejected[flip] = pairs.len_rejected[flip], lc[flip]
    return int(flip.size)


def load_proxy_judge(cfg: LessonConfig, hc: HackingConfig, device="cpu",
                     show_progress: bool = True, gold_model=None):
    """The proxy judge: the notebook-03 recipe on only ``hc.proxy_pairs`` TRAIN pairs.

    Returns ``(model, tokenizer, card)``. Same backbone and settings as the gold
    judge (:func:`rlhf_lessons.reward.load_judge`), which sees every train pair;
    the rows are a seeded random slice of the train split (never eval). With
    ``hc.proxy_labels == "gold"`` (needs ``gold_model``) the gold judge decides
    which side of each pair is "chosen", as in Gao et al.: the proxy then tries to
    imitate the gold judge from few examples. With "human" it keeps HH-RLHF's
    labels. Saved under ``outputs/05_.../proxy-<key>/`` and reloaded when the
    settings match. Taught in notebook 05.
    """
    from rlhf_lessons import reward as rm
    from rlhf_lessons.data import load_all_hh
    from rlhf_lessons.models import load_policy

    if hc.proxy_pairs < 2:
        raise ValueError(f"proxy_pairs={hc.proxy_pairs}: need at least 2 train pairs")
    key = proxy_key(cfg, hc)
    here = output_dir(NOTEBOOK, cfg) / f"proxy-{key}"
    if (here / "config.json").exists():
        model, tok, card = rm.load_saved_judge(here, device)
        say_once(f"⚖️ proxy judge: loaded the one made earlier (key {key})")
        return model, tok, card
    say_once(f"⚖️ proxy judge: training it on {hc.proxy_pairs} train pairs (key {key})")
    ds = load_all_hh("train", source=cfg.source,
                     max_rows_per_subset=cfg.max_rows_per_subset)
    rng = np.random.default_rng(cfg.seed)
    pick = rng.permutation(len(ds))[:hc.proxy_pairs]
    rows = ds.select(sorted(int(i) for i in pick))
    backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    model = rm.build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed + 1)
    del backbone
    pairs = rm.prepare_pairs(rows, tok, cfg.reward.max_len, drop_identical=True,
                             allow_empty=True, name="proxy train slice")
    n_flipped = 0
    if hc.proxy_labels == "gold":
        if gold_model is None:
            raise ValueError("proxy_labels='gold' needs gold_model (the gold judge)")
        rc, rr = rm.score_pairs(gold_model, pairs, device, pad_id=tok.pad_token_id)
        n_flipped = relabel_by(pairs, rc, rr)
    elif hc.proxy_labels != "human":
        raise ValueError(f"proxy_labels={hc.proxy_labels!r}: expected 'gold' or 'human'")
    steps = cfg.reward.max_steps or max(1, math.ceil(len(pairs) / cfg.reward.batch_size
                                                     * cfg.reward.epochs))
    t0 = time.perf_counter()
    metrics = rm.train_reward_model(model, pairs, cfg.reward, device, seed=cfg.seed,
                                    pad_id=tok.pad_token_id, show_progress=show_progress,
                                    max_steps=steps)
    card = {"key": key, "role": "proxy", "train_pairs": len(pairs), "steps": steps,
            "labels": hc.proxy_labels, "n_flipped_by_gold": n_flipped,
            "train_wall_s": round(time.perf_counter() - t0, 1),
            "final_train_loss_avg10": float(metrics["loss"].dropna().tail(10).mean())}
    rm.save_judge(model, tok, here, card)
    return model.to(device).eval(), tok, card


def judge_accuracy(model, tokenizer, prompts, chosen, rejected, max_len: int = 256,
                   device="cpu") -> dict:
    """Held-out pairwise accuracy of a judge with its 95% Wilson interval.

    Ties (equal scores) count as wrong, as in notebook 03. ``prefers_chosen`` (n,)
    bool says, per pair, whether the judge sided with the raters (to compare two
    judges pair by pair). Taught in notebook 05.
    """
    from rlhf_lessons.reward import score_texts, wilson_ci

    rc = score_texts(model, tokenizer, list(prompts), list(chosen), max_len, device)
    rr = score_texts(model, tokenizer, list(prompts), list(rejected), max_len, device)
    k, n = int((rc > rr).sum()), len(rc)
    return {"accuracy": k / n if n else float("nan"), "ci95": wilson_ci(k, n), "n": n,
            "prefers_chosen": rc > rr}


# --------------------------------------------------------------------------
# The beta sweep against the proxy
# --------------------------------------------------------------------------
@dataclass
class RunRecord:
    """One PPO run of notebook 05: its metrics, its held-out points and samples.

    metrics: one row per update (TRL names, plus any hook columns);
    points: one row per held-out evaluation (update, kl, sqrt_kl, <judge>_score,
    features); samples: the held-out answers at the end (prompt, answer, scores).
    """

    name: str
    beta: float
    metrics: object
    points: object
    samples: object
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)


def sweep_key(cfg: LessonConfig, hc: HackingConfig, extra: str = "") -> str:
    """Short hash naming a sweep's checkpoint: model, reward, PPO settings, budgets."""
    d = {"ppo": dataclasses.asdict(cfg.ppo), "hc": dataclasses.asdict(hc), "x": extra}
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return cfg.short_hash("model", "reward") + "-" + hashlib.sha256(blob).hexdigest()[:8]


def sweep_checkpoint(cfg: LessonConfig, hc: HackingConfig, name: str = "sweep") -> Path:
    """Where a notebook-05 run of these settings is saved (``outputs/05_.../``)."""
    return output_dir(NOTEBOOK, cfg) / f"{name}-{sweep_key(cfg, hc)}.pt"


def beta_sweep(ref_policy, tokenizer, proxy: Callable, gold: Callable,
               train_prompts: Sequence[str], eval_prompts: Sequence[str],
               ppo_cfg: PPOConfig, betas: Sequence[float], n_updates: int,
               eval_every: int, *, proxy_model=None, seed: int = 0,
               checkpoint: str | Path | None = None,
               show_progress: bool = True) -> dict[float, RunRecord]:
    """Short PPO runs against the PROXY judge, one per KL coefficient beta.

    Every run starts from a fresh copy of ``ref_policy`` (the SFT policy) with the
    same seed; only beta differs. Every ``eval_every`` updates (and at update 0)
    the policy answers ``eval_prompts`` (held out) and we record the KL to the
    reference, ``sqrt_kl``, and the proxy and gold scores, both in units of the
    reference's spread on the same prompts (so the reference sits at 0, 0, 0).
    PPO's reward is normalised with the proxy's stats on TRAIN prompts.

    ``proxy``, ``gold``: ``reward_fn(prompts, responses)``; ``proxy_model``: the
    proxy's model, to initialise the value model (else a zero-head copy of the
    policy). ``checkpoint``: a file; finished runs are saved there atomically and
    a re-run with the same file skips them. Returns beta -> :class:`RunRecord`.
    Taught in notebook 05.
    """
    import pandas as pd

    from rlhf_lessons import ppo

    if n_updates < 1 or eval_every < 1:
        raise ValueError(f"n_updates={n_updates} and eval_every={eval_every} must be >= 1")
    if not len(betas):
        raise ValueError("beta_sweep: no betas")
    if any(b < 0 for b in betas):
        raise ValueError(f"beta_sweep: betas must be >= 0, got {list(betas)}")
    done: dict[float, RunRecord] = {}
    if checkpoint is not None and Path(checkpoint).exists():
        done = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if done:
            say_once(f"↻ beta sweep: reusing {len(done)} finished run(s) from its checkpoint")
    judges = {"proxy": proxy, "gold": gold}
    ref_summary, ref_samples = evaluate_policy(ref_policy, ref_policy, tokenizer,
                                               eval_prompts, ppo_cfg, judges, seed=seed + 1)
    norms = {k: score_stats(ref_samples[f"{k}_raw"]) for k in judges}
    for k in judges:  # the reference in the units of its own spread: 0 by design
        ref_samples[f"{k}_score"] = normalise(ref_samples[f"{k}_raw"], norms[k])
        ref_summary[f"{k}_score"] = float(ref_samples[f"{k}_score"].mean())
    norm_df = ppo.sample_and_score(ref_policy, proxy, tokenizer,
                                   list(train_prompts)[:max(ppo_cfg.rollout_batch, 8)],
                                   ppo_cfg, seed=seed + 2)
    train_stats = ppo.score_stats_of(norm_df)
    out: dict[float, RunRecord] = {}
    for beta in betas:
        beta = float(beta)
        if beta in done:
            out[beta] = done[beta]
            continue
        t0 = time.perf_counter()
        policy = copy.deepcopy(ref_policy).requires_grad_(True)
        vm = (ppo.make_value_model(reward_model=proxy_model) if proxy_model is not None
              else ppo.make_value_model(policy=policy))
        cfg_b = dataclasses.replace(ppo_cfg, kl_coef=beta, adaptive_kl_target=0.0)
        state = {"points": [{"beta": beta, "update": 0, **ref_summary}],
                 "samples": ref_samples}

        def evaluate(u, policy=policy, cfg_b=cfg_b, beta=beta, state=state):
            summ, samples = evaluate_policy(policy, ref_policy, tokenizer, eval_prompts,
                                            cfg_b, judges, norms, seed=seed + 1)
            state["points"].append({"beta": beta, "update": u, **summ})
            state["samples"] = samples


        def hook(u, ro, row, evaluate=evaluate):
            if (u + 1) % eval_every == 0 or u + 1 == n_updates:
                evaluate(u + 1)
            return {f"feat/{k}": v for k, v in feature_means(ro.responses).items()}

        metrics = run_ppo(policy, ref_policy, vm, proxy, tokenizer, train_prompts, cfg_b,
                          seed=seed, n_updates=n_updates, score_stats=train_stats,
                          on_update=hook, show_progress=show_progress,
                          desc=f"PPO vs proxy, beta={beta:g}")
        out[beta] = RunRecord(f"beta={beta:g}", beta, metrics,
                              pd.DataFrame(state["points"]), state["samples"],
                              time.perf_counter() - t0,
                              {"ref_summary": ref_summary})
        del policy, vm
        if checkpoint is not None:
            done[beta] = out[beta]
            atomic_torch_save(done, Path(checkpoint))
    return out


def sweep_table(runs: Mapping[float, RunRecord]):
    """The final point of each run: beta, kl, sqrt_kl, proxy_score, gold_score, ...

    One row per beta, sorted by beta. Taught in notebook 05.
    """
    import pandas as pd

    rows = []
    for beta, rec in sorted(runs.items()):
        last = rec.points.iloc[-1]
        rows.append({"beta": float(beta), "kl": float(last["kl"]),
                     "sqrt_kl": float(last["sqrt_kl"]),
                     "proxy_score": float(last["proxy_score"]),
                     "gold_score": float(last["gold_score"]),
                     "words": float(last["words"]), "eos_rate": float(last["eos_rate"])})
    return pd.DataFrame(rows)


def peak_then_fall(xs, ys, tol: float = 0.0) -> dict:
    """Does ``ys`` (ordered by ``xs``) peak strictly inside and then fall by > tol?

    Returns {"peak_x", "peak_y", "last_y", "drop", "peaks_inside"}: the shape Gao
    et al. predict for the gold score against sqrt(KL). Taught in notebook 05.
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
# Plots
# --------------------------------------------------------------------------
def plot_judge_effects(effects, ax=None, title: str = "What the judge pays for"):
    """Mean score change per rewrite, with 95% bootstrap intervals -> Axes.

    ``effects``: the DataFrame of :func:`judge_effects`. Taught in notebook 05.
    """
    import matplotlib.pyplot as plt

    from rlhf_lessons.plots import CHOSEN_COLOR, REFERENCE_COLOR, REJECTED_COLOR

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    names = list(effects.index)
    means = effects["mean"].to_numpy()
    lo = means - effects["ci_low"].to_numpy()
    hi = effects["ci_high"].to_numpy() - means
    colors = [CHOSEN_COLOR if m > 0 else REJECTED_COLOR for m in means]
    ys = np.arange(len(names))
    ax.barh(ys, means, color=colors, alpha=0.8)
    ax.errorbar(means, ys, xerr=np.vstack([lo, hi]), fmt="none", ecolor="black",
                capsize=3, lw=1)
    ax.axvline(0, color=REFERENCE_COLOR, lw=1)
    ax.set_yticks(ys, [f"{n} (n={int(k)})" for n, k in zip(names, effects["n"])])
    ax.invert_yaxis()
    ax.set_xlabel("mean Δ judge score (rewrite − base), 95% CI")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_feature_drift(metrics, features: Sequence[str] = ("words", "confident", "hedge",
                                                            "refusal", "repetition"),
                       axes=None, prefix: str = "feat/"):
    """Each answer feature (mean over the rollout) against the PPO update -> Axes list.

    ``metrics`` has columns ``update`` and ``feat/<name>`` (from :func:`run_ppo`
    with a feature hook). Taught in notebook 05.
    """
    from rlhf_lessons.plots import plot_metrics

    keys = [prefix + f for f in features]
    return plot_metrics(metrics, keys, axes=axes, x="update", smooth=3)


def plot_overoptimisation(runs: Mapping[float, RunRecord], ax=None):
    """Proxy (dashed) and gold (solid) score against sqrt(KL), one colour per beta.

    The points of each run are its held-out evaluations along training; the
    reference policy is the origin. Taught in notebook 05.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    cmap = plt.get_cmap("viridis")
    betas = sorted(runs)
    for i, beta in enumerate(betas):
        pts = runs[beta].points.sort_values("update")
        col = cmap(i / max(1, len(betas) - 1))
        ax.plot(pts["sqrt_kl"], pts["proxy_score"], ls="--", marker="o", ms=3,
                color=col, alpha=0.8)
        ax.plot(pts["sqrt_kl"], pts["gold_score"], ls="-", marker="s", ms=4, color=col,
                label=f"β={beta:g}")
    ax.plot([], [], ls="--", color="black", label="proxy (dashed)")
    ax.plot([], [], ls="-", color="black", label="gold (solid)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("sqrt(KL(policy ‖ reference)), √nats")
    ax.set_ylabel("score (reference std units)")
    ax.set_title("Over-optimisation: proxy vs gold", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return ax


# --------------------------------------------------------------------------
# The explorer: pick two runs, compare samples and curves
# --------------------------------------------------------------------------
def compare_runs(runs: Mapping[str, RunRecord], left: str, right: str, n: int = 4,
                 width: int = 160):
    """Side-by-side held-out answers of two runs (same prompts, same order).

    Returns a DataFrame: prompt, <left> answer, <left> gold, <right> answer,
    <right> gold (gold columns when the samples have a ``gold_score``). Answers are
    cut to ``width`` characters. Taught in notebook 05 (the pure part of the widget).
    """
    import pandas as pd

    for name in (left, right):
        if name not in runs:
            raise KeyError(f"compare_runs: no run named {name!r}; the runs are {list(runs)}")
    a, b = runs[left].samples, runs[right].samples

    def cut(t: str) -> str:
        t = " ".join(str(t).split())
        return t if len(t) <= width else t[:width - 1] + "…"

    k = min(n, len(a), len(b))
    out = {"prompt": [cut(p[-width:]) for p in a["prompt"][:k]]}
    for name, s, tag in ((left, a, "A"), (right, b, "B")):
        label = name if left != right else f"{name} ({tag})"
        out[f"{label}: answer"] = [cut(t) for t in s["answer"][:k]]
        if "gold_score" in s:
            out[f"{label}: gold"] = [round(float(x), 2) for x in s["gold_score"][:k]]
    return pd.DataFrame(out)


def plot_run_curves(runs: Mapping[str, RunRecord], names: Sequence[str], axes=None,
                    keys: Sequence[str] = ("objective/scores", "objective/kl")):
    """Training curves of several runs on shared axes (one Axes per key) -> list."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 2.8),
                               layout="constrained", squeeze=False)
        axes = list(axes.ravel())
    for ax, key in zip(axes, keys):
        for name in names:
            m = runs[name].metrics
            if key in m:
                ax.plot(m["update"], m[key], marker="o", ms=3, label=name)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return axes


def make_run_explorer(runs: Mapping[str, RunRecord], left: str | None = None,
                      right: str | None = None, n: int = 4):
    """Two drop-downs (runs, e.g. β values) -> their samples side by side and curves.

    A thin ipywidgets shell over :func:`compare_runs` and :func:`plot_run_curves`;
    the callback runs once with the defaults, so a headless run shows it.
    Taught in notebook 05.
    """
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    names = list(runs)
    if not names:
        raise ValueError("make_run_explorer: no runs")
    left = names[0] if left is None else left
    right = names[-1] if right is None else right
    dd_left = w.Dropdown(options=names, value=left, description="left")
    dd_right = w.Dropdown(options=names, value=right, description="right")
    out = w.Output()

    def update(_change=None):
        with out:
            out.clear_output(wait=True)
            display(compare_runs(runs, dd_left.value, dd_right.value, n))
            fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), layout="constrained")
            plot_run_curves(runs, [dd_left.value, dd_right.value], axes=list(axes))
            display(fig)
            plt.close(fig)

    dd_left.observe(update, names="value")
    dd_right.observe(update, names="value")
    update()
    return w.VBox([w.HBox([dd_left, dd_right]), out])
