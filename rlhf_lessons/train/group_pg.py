"""Group policy gradients: RLOO and GRPO, PPO without a value model (notebook 07).

In the order of notebook 07's simplification ladder:

- 7.3 The group baseline: sample G answers per prompt; each answer's baseline is
      the others' mean (RLOO, Ahmadian et al. 2024) or its advantage is the
      z-score within the group (GRPO, Shao et al. 2024). A group whose rewards are
      all equal teaches nothing: it is counted and skipped.
- 7.4 Training with groups: the clipped ratio of PPO on a sequence-level
      advantage, an optional k3 KL term to the reference (GRPO), the loop
      :func:`train_group_pg`.

Sampling, scoring and the log-probs are :func:`rlhf_lessons.train.rollout.rollout` and
:func:`rlhf_lessons.train.rollout.response_logprobs` (called with no value model): there
is one rollout in the package.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from rlhf_lessons.core.batching import encode_prompts, masked_mean
from rlhf_lessons.core.config import ADVANTAGES, GroupPGConfig, PPOConfig
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.phases import phase, records_phases
from rlhf_lessons.core.utils import adamw, linear_schedule, optimizer_step, progress
from rlhf_lessons.train.ppo import kl_per_token
from rlhf_lessons.train.rollout import response_logprobs, rollout
from rlhf_lessons.train.run import (
    SAVE_EVERY,
    Clock,
    TrainRun,
    finished,
    metric_row,
    resume_checkpoint,
    run_key,
    save_checkpoint,
    should_save,
)


# ---------------------------------------------------------------------------
# 7.3 The group baseline
# ---------------------------------------------------------------------------
def _groups(scores: torch.Tensor) -> torch.Tensor:
    if scores.dim() != 2 or scores.size(1) < 2:
        raise ValueError(f"scores must be (prompts, G) with G >= 2, got {tuple(scores.shape)}")
    return scores.float()


def zero_variance_groups(scores: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Which groups have (nearly) equal rewards: ``(P, G) -> (P,)`` bool."""
    s = _groups(scores)
    return (s.max(1).values - s.min(1).values) <= tol


def rloo_advantages(scores: torch.Tensor) -> torch.Tensor:
    """RLOO: ``A_i = r_i − mean_{j≠i} r_j`` within each group. ``(P, G) -> (P, G)``.

    The baseline leaves the sample itself out, so it does not depend on the action
    and the estimate stays unbiased; equal rewards give A = 0.
    """
    s = _groups(scores)
    G = s.size(1)
    return s - (s.sum(1, keepdim=True) - s) / (G - 1)


def grpo_advantages(scores: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: ``A_i = (r_i − mean) / (std + eps)`` within each group (std with
    Bessel's correction, as TRL). Zero-variance groups get exactly 0. ``(P, G)``."""
    s = _groups(scores)
    adv = (s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + eps)
    return torch.where(zero_variance_groups(s)[:, None], torch.zeros_like(adv), adv)


def group_advantages(scores: torch.Tensor, kind: str = "grpo") -> torch.Tensor:
    """:func:`grpo_advantages` or :func:`rloo_advantages` by name."""
    if kind not in ADVANTAGES:
        raise ValueError(f"kind={kind!r}: expected one of {ADVANTAGES}")
    return grpo_advantages(scores) if kind == "grpo" else rloo_advantages(scores)


def chance_all_equal(n_pass, n_samples: int, group_size: int) -> np.ndarray:
    """Chance that a group of ``group_size`` answers drawn (without replacement)
    from ``n_samples`` with ``n_pass`` passing (pass/fail reward) all agree.

    ``n_pass``: (P,) counts. Returns (P,): ``[C(k, G) + C(K − k, G)] / C(K, G)``,
    the share of such groups that give GRPO no signal (the group-size widget).
    """
    k = np.asarray(n_pass, dtype=int)
    K, G = int(n_samples), int(group_size)
    if not 2 <= G <= K:
        raise ValueError(f"group_size={G}: must be between 2 and n_samples={K}")
    if np.any((k < 0) | (k > K)):
        raise ValueError(f"n_pass must be between 0 and n_samples={K}")
    total = math.comb(K, G)
    return np.array([(math.comb(int(x), G) + math.comb(K - int(x), G)) / total for x in k])


# ---------------------------------------------------------------------------
# 7.4 Training with groups
# ---------------------------------------------------------------------------
def group_pg_loss(new_logprobs, old_logprobs, ref_logprobs, advantages, mask,
                  cliprange: float = 0.2, kl_coef: float = 0.0) -> dict:
    """GRPO's loss on a minibatch. Log-probs and mask: (B, R); advantages: (B,).

    Per token: ``−min(ρ A, clip(ρ, 1±ε) A) + kl_coef · k3(π, π_ref)`` with
    ``ρ = exp(new − old)``; the mean over real tokens. Returns the loss (with grad)
    and clipfrac, ratio, kl (0-d, detached; NaN when ``ref_logprobs`` is None,
    which only ``kl_coef == 0`` allows).
    """
    if ref_logprobs is None and kl_coef > 0:
        raise ValueError(f"kl_coef={kl_coef} needs ref_logprobs (a reference model)")
    m = mask.bool()
    log_ratio = torch.where(m, new_logprobs - old_logprobs, torch.zeros_like(new_logprobs))
    ratio = torch.exp(log_ratio)
    a = advantages[:, None].to(ratio.dtype)
    pg1, pg2 = -a * ratio, -a * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    per_token = torch.max(pg1, pg2)
    kl = (kl_per_token(new_logprobs, ref_logprobs, "k3") if ref_logprobs is not None
          else torch.full_like(new_logprobs, float("nan")))
    if kl_coef > 0:
        per_token = per_token + kl_coef * kl
    loss = masked_mean(per_token, mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((pg2 > pg1).float(), mask),
                 "ratio": masked_mean(ratio, mask), "kl": masked_mean(kl, mask)}
    return {"loss": loss, **stats}


def group_rollout(policy, ref_policy, reward, tokenizer, prompt_ids, prompts,
                  gcfg: GroupPGConfig, cfg: PPOConfig, generator=None, score_norm=None):
    """G answers to each prompt through :func:`rlhf_lessons.train.rollout.rollout` (no
    value model). Returns ``(rollout, scores (P, G))``; rows are prompt-major."""
    G = gcfg.group_size
    ids = [p for p in prompt_ids for _ in range(G)]
    texts = [p for p in prompts for _ in range(G)]
    ro = rollout(policy, ref_policy, None, reward, tokenizer, ids, texts, cfg, generator,
                 score_norm)
    return ro, ro.scores.view(len(prompts), G)


@reuse_freed_memory()
@records_phases
def train_group_pg(policy, ref_policy, reward, tokenizer, prompts, gcfg: GroupPGConfig,
                   cfg: PPOConfig, *, seed: int = 0, score_norm=None,
                   show_progress: bool = True, desc: str | None = None,
                   prompt_ids: list[list[int]] | None = None,
                   checkpoint: str | Path | None = None, save_every: int = SAVE_EVERY,
                   ) -> TrainRun:
    """RLOO or GRPO (``gcfg.advantage``) for ``gcfg.n_updates`` updates, in place.

    Each update: ``gcfg.prompts_per_update`` TRAIN prompts × G answers sampled at
    ``cfg.temperature`` (``cfg`` also gives the new tokens and the missing-EOS
    penalty), group advantages, zero-variance groups skipped, ``gcfg.inner_epochs``
    passes of :func:`group_pg_loss` over the kept answers. One row per update with
    PPO's names where they apply (objective/scores, objective/kl, ...) and TRL's
    GRPO ones (frac_reward_zero_std, reward_std).

    ``ref_policy=None`` is allowed when ``gcfg.kl_coef == 0``: no reference pass
    (TRL does not load one at beta 0 either) and ``objective/kl`` is NaN.
    ``checkpoint``: the run's file (:mod:`rlhf_lessons.train.run`), resumed from
    when its key matches. Returns a :class:`~rlhf_lessons.train.run.TrainRun`
    (rows start with step, learning_rate, elapsed_s). The loss and clip statistics
    of an update are means over its inner epochs; an update whose groups all tie
    trains nothing and logs NaN for them.
    """
    if isinstance(prompts, str) or len(prompts) < gcfg.prompts_per_update:
        raise ValueError(f"prompts: need a list of at least {gcfg.prompts_per_update}")
    if policy is ref_policy:
        raise ValueError("policy and ref_policy are the same object: pass a frozen copy")
    if ref_policy is None and gcfg.kl_coef > 0:
        raise ValueError(f"kl_coef={gcfg.kl_coef} needs a ref_policy (or set kl_coef=0)")
    prompts = list(prompts)
    if prompt_ids is None:
        prompt_ids = encode_prompts(tokenizer, prompts, cfg.max_prompt_tokens)
    policy.train(False).requires_grad_(True)
    if ref_policy is not None:
        ref_policy.train(False).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = adamw(params, lr=gcfg.lr, weight_decay=gcfg.weight_decay)
    scfg = dataclasses.replace(cfg, rollout_batch=gcfg.prompts_per_update * gcfg.group_size,
                               mini_batches=1)
    key = run_key(gcfg, sampling=dataclasses.asdict(cfg.sampling), seed=seed, total=gcfg.n_updates,
                  n_prompts=len(prompts), normalised=score_norm is not None)
    back = resume_checkpoint(checkpoint, key, gcfg.n_updates, model=policy, optimizer=opt,
                             what=gcfg.advantage.upper())
    rows, start, order = [], 0, []
    if back is not None:
        rows, start = back.metrics, back.step
        if back.resume:
            gen.set_state(back.resume["generator"])
            order = back.resume["order"]
    clock = Clock(rows)
    for u in progress(range(start, gcfg.n_updates), desc=desc or gcfg.advantage.upper(),
                      total=gcfg.n_updates, initial=start, disable=not show_progress):
        lr = gcfg.lr * linear_schedule(u, gcfg.n_updates)
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < gcfg.prompts_per_update:
            order += torch.randperm(len(prompts), generator=gen).tolist()
        idx, order = order[:gcfg.prompts_per_update], order[gcfg.prompts_per_update:]
        # 1. G answers per prompt, scored (the one rollout)
        ro, scores = group_rollout(policy, ref_policy, reward, tokenizer,
                                   [prompt_ids[i] for i in idx], [prompts[i] for i in idx],
                                   gcfg, scfg, gen, score_norm)
        # 2. group advantages; groups with equal rewards are skipped
        flat = zero_variance_groups(scores)
        adv = group_advantages(scores, gcfg.advantage).reshape(-1)
        keep = (~flat).repeat_interleave(gcfg.group_size).nonzero().flatten()
        per_epoch = []
        if keep.numel():
            b = ro.batch.index(keep)
            # 3. the clipped ratio (1 on the first pass) and the KL term
            for _ in range(gcfg.inner_epochs):
                with phase("forward"):
                    new = response_logprobs(policy, b, cfg.temperature)
                    ref = ro.ref_logprobs[keep] if ro.ref_logprobs is not None else None
                    out = group_pg_loss(new, ro.logprobs[keep], ref,
                                        adv[keep], b.response_mask, gcfg.cliprange,
                                        gcfg.kl_coef)
                optimizer_step(out["loss"], opt, params, gcfg.max_grad_norm)
                per_epoch.append({k: float(v.detach()) for k, v in out.items() if k != "kl"})
        stats = {k: (sum(d[k] for d in per_epoch) / len(per_epoch) if per_epoch
                     else float("nan")) for k in ("loss", "clipfrac", "ratio")}
        mask = ro.batch.response_mask
        kl_seq = (kl_per_token(ro.logprobs, ro.ref_logprobs, "k1").mul(mask).sum(-1)
                  if ro.ref_logprobs is not None else torch.tensor([float("nan")]))
        rows.append(metric_row(
            u + 1, lr, clock(), episodes=(u + 1) * scfg.rollout_batch,
            **{"objective/scores": float(ro.scores.mean()),
               "objective/raw_scores": float(ro.raw_scores.mean()),
               "objective/kl": float(kl_seq.mean()),
               "objective/entropy": float(ro.entropy.sum(-1).mean()),
               "loss/policy_avg": stats["loss"], "policy/clipfrac_avg": stats["clipfrac"],
               "val/ratio": stats["ratio"], "val/eos_rate": float(ro.has_eos.float().mean())},
            response_length=float(mask.sum(-1).mean()),
            reward_std=float(scores.std(1).mean()),
            frac_reward_zero_std=float(flat.float().mean()),
            beta=gcfg.kl_coef, gen_s=ro.gen_s))
        if should_save(u + 1, gcfg.n_updates, save_every):
            save_checkpoint(checkpoint, key=key, step=u + 1, total=gcfg.n_updates,
                            model=policy, optimizer=opt, metrics=rows,
                            resume={"generator": gen.get_state(), "order": order})
    policy.requires_grad_(False)
    return finished(rows, gcfg.n_updates, start)
