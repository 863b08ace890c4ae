"""Over-optimisation and reward hacking: what optimisation does with a judge.

Used in notebook 06: 6.4 the proxy judge's labels come from the gold judge (Gao
et al. 2022); 6.5 the answer features of a policy during PPO. Kept for the
"Try it" prompts and notebook 07: a sweep over the KL coefficient against the
proxy, and rewards that are trivial to game. The selection maths is in
:mod:`rlhf_lessons.measure.selection`; the measurement (judge effects, held-out
evaluation, sqrt(KL)) in :mod:`rlhf_lessons.measure.evaluate`; the proxy judge's artefact
in :mod:`rlhf_lessons.course.artefacts`; budgets in
:class:`rlhf_lessons.core.config.OptimisationConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlhf_lessons.core.config import PPOConfig
from rlhf_lessons.core.utils import atomic_torch_save, load_checkpoint, say_once
from rlhf_lessons.measure.analysis import feature_means
from rlhf_lessons.measure.evaluate import evaluate_policy, sample_and_score, score_stats
from rlhf_lessons.train.ppo import train_ppo
from rlhf_lessons.train.rollout import make_value_model, normalise


# --------------------------------------------------------------------------
# 6.5 Do biased raters make a biased policy?
# --------------------------------------------------------------------------
def feature_columns(responses: Sequence[str], prefix: str = "feat/") -> dict[str, float]:
    """Mean answer features of one rollout as metrics columns (``feat/words``, ...):
    the ``on_update`` hook of :func:`rlhf_lessons.train.ppo.train_ppo` in notebook 06."""
    return {prefix + k: v for k, v in feature_means(list(responses)).items()}


# --------------------------------------------------------------------------
# 6.4 Does the gold score peak under best-of-N?
# --------------------------------------------------------------------------
def relabel_by(pairs, r_chosen, r_rejected) -> int:
    """Swap the sides of each pair where ``r_rejected > r_chosen``; returns the count.

    ``pairs``: a :class:`rlhf_lessons.train.reward.PairSet` (changed in place);
    ``r_chosen, r_rejected: (n,)`` a judge's scores. After this the "chosen" side is
    the one that judge prefers: its labels replace the human ones (Gao et al.'s
    synthetic setup, where a gold reward model labels the proxy's data).
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


@dataclass
class RunRecord:
    """One PPO run (notebook 06 and its try-it sweep): its metrics, its held-out points and samples.

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
    """
    if n_updates < 1 or eval_every < 1:
        raise ValueError(f"n_updates={n_updates} and eval_every={eval_every} must be >= 1")
    if not len(betas):
        raise ValueError("beta_sweep: no betas")
    if any(b < 0 for b in betas):
        raise ValueError(f"beta_sweep: betas must be >= 0, got {list(betas)}")
    done: dict[float, RunRecord] = {}
    if checkpoint is not None:
        done = load_checkpoint(checkpoint, what="beta sweep") or {}
        if done:
            say_once(f"↻ beta sweep: reusing {len(done)} finished run(s) from its checkpoint")
    judges = {"proxy": proxy, "gold": gold}
    ref_summary, ref_samples = evaluate_policy(ref_policy, ref_policy, tokenizer,
                                               eval_prompts, ppo_cfg, judges, seed=seed + 1)
    norms = {k: score_stats(ref_samples[f"{k}_raw"], constant_ok=True) for k in judges}
    for k in judges:  # the reference in the units of its own spread: 0 by design
        ref_samples[f"{k}_score"] = normalise(ref_samples[f"{k}_raw"], norms[k])
        ref_summary[f"{k}_score"] = float(ref_samples[f"{k}_score"].mean())
    norm_df = sample_and_score(ref_policy, proxy, tokenizer,
                               list(train_prompts)[:max(ppo_cfg.rollout_batch, 8)],
                               ppo_cfg, seed=seed + 2)
    train_stats = score_stats(norm_df["score"], constant_ok=True)
    out: dict[float, RunRecord] = {}
    for beta in betas:
        beta = float(beta)
        if beta in done:
            out[beta] = done[beta]
            continue
        t0 = time.perf_counter()
        policy = copy.deepcopy(ref_policy).requires_grad_(True)
        vm = (make_value_model(reward_model=proxy_model) if proxy_model is not None
              else make_value_model(policy=policy))
        cfg_b = dataclasses.replace(ppo_cfg, kl_coef=beta, adaptive_kl_target=0.0)
        state = {"points": [{"beta": beta, "step": 0, **ref_summary}],
                 "samples": ref_samples}

        def hook(u, ro, row, policy=policy, cfg_b=cfg_b, beta=beta, state=state):
            if (u + 1) % eval_every == 0 or u + 1 == n_updates:
                summ, samples = evaluate_policy(policy, ref_policy, tokenizer,
                                                eval_prompts, cfg_b, judges, norms,
                                                seed=seed + 1)
                state["points"].append({"beta": beta, "step": u + 1, **summ})
                state["samples"] = samples
            return feature_columns(ro.responses)

        metrics = train_ppo(policy, ref_policy, vm, proxy, tokenizer, train_prompts, cfg_b,
                            seed=seed, n_updates=n_updates, score_norm=train_stats,
                            on_update=hook, show_progress=show_progress,
                            desc=f"PPO vs proxy, beta={beta:g}").metrics
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

    One row per beta, sorted by beta.
    """
    rows = []
    for beta, rec in sorted(runs.items()):
        last = rec.points.iloc[-1]
        rows.append({"beta": float(beta), "kl": float(last["kl"]),
                     "sqrt_kl": float(last["sqrt_kl"]),
                     "proxy_score": float(last["proxy_score"]),
                     "gold_score": float(last["gold_score"]),
                     "words": float(last["words"]), "eos_rate": float(last["eos_rate"])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# Rewards that are trivial to game (for the "Try it" prompts)
# --------------------------------------------------------------------------
def _check_pairs(name: str, prompts, responses) -> None:
    if len(prompts) != len(responses):
        raise ValueError(f"{name}: {len(prompts)} prompts but {len(responses)} responses")
    for i, r in enumerate(responses):
        if not isinstance(r, str):
            raise TypeError(f"{name}: response {i} is {type(r).__name__}, expected str")


def exclamation_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """One point per "!" in the answer: a reward that is trivial to game.

    """
    _check_pairs("exclamation_reward", prompts, responses)
    return [float(r.count("!")) for r in responses]


def length_reward(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """The answer's length in words / 10: "longer is better", with no ceiling.

    """
    _check_pairs("length_reward", prompts, responses)
    return [len(r.split()) / 10.0 for r in responses]
