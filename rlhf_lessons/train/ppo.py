"""PPO for language models, in the order of notebook 04 and of Huang et al. 2023
("The N Implementation Details of RLHF with PPO") and TRL's former ``PPOTrainer``.

One numbering, the notebook's sections (the banners below and the step comments
inside :func:`train_ppo`). Sections 4.1-4.3.2 (the models, sampling and scoring a
rollout) are :mod:`rlhf_lessons.train.rollout`; this module does the rest:

- 4.3.3 KL-shaped rewards: ``-beta * KL_t`` per token plus the score at the last one;
- 4.3.4 values and GAE (gamma, lambda), whitened advantages;
- 4.3.5 the clipped update: several epochs of the clipped surrogate and clipped
        value loss over reshuffled minibatches, gradient clipping, a linear lr;
- 4.5   the loop (:func:`train_ppo`), with a hook after every update and an atomic
        checkpoint to resume from.

The token plumbing (padding, masked statistics) is :mod:`rlhf_lessons.core.batching`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rlhf_lessons.core.batching import encode_prompts, masked_mean, masked_whiten
from rlhf_lessons.core.config import KL_ESTIMATORS, PPOConfig
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.phases import phase, records_phases
from rlhf_lessons.core.utils import (
    adamw,
    linear_schedule,
    optimizer_step,
    progress,
)
from rlhf_lessons.train.rollout import (
    Rollout,
    make_value_model,
    response_logprobs,
    response_values,
    rollout,
)
from rlhf_lessons.train.run import (
    Clock,
    TrainRun,
    finished,
    metric_row,
    resume_checkpoint,
    run_key,
    save_checkpoint,
    should_save,
)

# on_update(update_index, rollout, metrics_row) -> optional dict of extra columns
OnUpdate = Callable[[int, Rollout, dict], "dict | None"]


# ---------------------------------------------------------------------------
# 4.3.3 KL-shaped rewards
# ---------------------------------------------------------------------------
def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                 estimator: str = "k1") -> torch.Tensor:
    """Per-token KL estimate, (B, R) -> (B, R).

    k1 = log p - log p_ref (unbiased, can be negative per token);
    k3 = (r - 1) - log r with r = p_ref / p (unbiased, always >= 0).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={estimator!r}: expected one of {KL_ESTIMATORS}")
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    return torch.expm1(-log_ratio) + log_ratio


def shape_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float):
    """Per-token rewards: -beta * KL_t, plus the score at the last real token.

    scores: (B,); kl, mask: (B, R). Returns ``(rewards, non_score_reward)``:
    rewards (B, R), zero on padding; non_score_reward (B, R) = -beta * KL_t.
    """
    m = mask.bool()
    non_score = torch.where(m, -beta * kl, torch.zeros_like(kl))
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    rewards = non_score.clone()
    rows = torch.arange(scores.size(0), device=scores.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards, non_score


def update_kl_coef(beta: float, kl: float, target: float, n_steps: int,
                   horizon: float = 10000.0) -> float:
    """Adaptive KL controller (Ziegler et al. 2019): beta *= 1 + clip(KL/target - 1,
    +-0.2) * n / horizon. ``target <= 0`` keeps beta fixed."""
    if target <= 0:
        return beta
    err = max(-0.2, min(0.2, kl / target - 1.0))
    return beta * (1.0 + err * n_steps / horizon)


# ---------------------------------------------------------------------------
# 4.3.4 Values and GAE
# ---------------------------------------------------------------------------
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
        gamma: float = 1.0, lam: float = 0.95):
    """Generalised advantage estimation, vectorised over the batch AND time.

    rewards, values, mask: (B, R). Padded steps have value 0 and reward 0, so the
    episode ends at each row's last real token. delta_t = r_t + gamma V_{t+1} - V_t;
    A_t = sum_k (gamma lam)^k delta_{t+k}, as one (R x R) matrix product.
    Returns ``(advantages, returns)``, each (B, R), zero on padding.
    """
    m = mask.to(values.dtype)
    v = torch.where(mask.bool(), values, torch.zeros_like(values))
    r = torch.where(mask.bool(), rewards, torch.zeros_like(rewards))
    v_next = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], 1)
    delta = r + gamma * v_next - v
    R = rewards.size(1)
    t = torch.arange(R, device=rewards.device, dtype=values.dtype)
    expo = t[:, None] - t[None, :]  # [k, t] = k - t
    disc = torch.where(expo >= 0, (gamma * lam) ** expo.clamp(min=0),
                       torch.zeros_like(expo))
    adv = (delta @ disc) * m
    return adv, (adv + v) * m


def compute_advantages(ro: Rollout, beta: float, cfg: PPOConfig) -> dict:
    """4.3.3-4.3.4: KL-shaped rewards, GAE, whitened advantages. All (B, R).

    Returns kl, non_score_reward, rewards, advantages, returns.
    """
    mask = ro.batch.response_mask
    kl = kl_per_token(ro.logprobs, ro.ref_logprobs, cfg.kl_estimator)
    kl = torch.where(mask.bool(), kl, torch.zeros_like(kl))
    rewards, non_score = shape_rewards(ro.scores, kl, mask, beta)
    if cfg.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    adv, returns = gae(rewards, ro.values, mask, cfg.gamma, cfg.lam)
    adv = masked_whiten(adv, mask)
    return {"kl": kl, "non_score_reward": non_score, "rewards": rewards,
            "advantages": adv, "returns": returns}


# ---------------------------------------------------------------------------
# 4.3.5 The clipped update
# ---------------------------------------------------------------------------
def ppo_losses(new_logprobs, old_logprobs, advantages, new_values, old_values, returns, mask,
               cliprange: float = 0.2, cliprange_value: float = 0.2) -> dict:
    """Clipped surrogate and clipped value loss on one minibatch; all inputs (B, R).

    pg_loss = mean(max(-A r, -A clip(r, 1-eps, 1+eps))), r = exp(new - old);
    vf_loss = 0.5 mean(max((V - G)^2, (V_clip - G)^2)), V_clip = V_old + clip(V - V_old).
    Means are over real tokens only. Returns the two losses (with grad) and the
    TRL statistics (approxkl, clipfrac, vf_clipfrac, ratio), as 0-d tensors.
    """
    m = mask.bool()
    log_ratio = torch.where(m, new_logprobs - old_logprobs, torch.zeros_like(new_logprobs))
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    v_clip = old_values + torch.clamp(new_values - old_values, -cliprange_value, cliprange_value)
    vf1 = (new_values - returns) ** 2
    vf2 = (v_clip - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf1, vf2), mask)
    with torch.no_grad():
        stats = {
            "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask),
            "clipfrac": masked_mean((pg2 > pg1).float(), mask),
            "vf_clipfrac": masked_mean((vf2 > vf1).float(), mask),
            "ratio": masked_mean(ratio, mask),
        }
    return {"pg_loss": pg_loss, "vf_loss": vf_loss, **stats}


def make_optimizer(policy, value_model, cfg: PPOConfig):
    """One AdamW over policy and value parameters (as TRL's wrapper does)."""
    params = [p for p in policy.parameters() if p.requires_grad]
    params += [p for p in value_model.parameters() if p.requires_grad]
    return adamw(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)


def ppo_update(policy, value_model, optimizer, ro: Rollout, adv: dict, cfg: PPOConfig,
               generator=None, max_grad_norm: float | None = None) -> dict:
    """4.3.5: ``cfg.ppo_epochs`` epochs over ``cfg.mini_batches`` reshuffled
    minibatches. Returns the mean of each statistic over all minibatches, and
    ``first`` = the statistics of the very first minibatch (ratio 1 there).
    """
    B = ro.batch.ids.size(0)
    if B % cfg.mini_batches:
        raise ValueError(f"rollout_batch={B} is not divisible by mini_batches="
                         f"{cfg.mini_batches}")
    mb = B // cfg.mini_batches
    clip = cfg.max_grad_norm if max_grad_norm is None else max_grad_norm
    params = [p for g in optimizer.param_groups for p in g["params"]]
    sums: dict[str, float] = {}
    first = None
    n = 0
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(B, generator=generator)
        for s in range(0, B, mb):
            rows = order[s:s + mb].to(ro.batch.ids.device)
            b = ro.batch.index(rows)
            with phase("forward"):
                new_logp, ent = response_logprobs(policy, b, cfg.temperature,
                                                  with_entropy=True)
                new_v = response_values(value_model, b)
                out = ppo_losses(new_logp, ro.logprobs[rows], adv["advantages"][rows],
                                 new_v, ro.values[rows], adv["returns"][rows],
                                 b.response_mask, cfg.cliprange, cfg.cliprange_value)
                loss = out["pg_loss"] + cfg.vf_coef * out["vf_loss"]
            optimizer_step(loss, optimizer, params, clip)
            stats = {k: float(v.detach()) for k, v in out.items()}
            stats["entropy"] = float(masked_mean(ent, b.response_mask))
            if first is None:
                first = dict(stats)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
    avg = {k: v / n for k, v in sums.items()}
    avg["first"] = first
    return avg


def metrics_row(ro: Rollout, adv: dict, upd: dict, beta: float) -> dict:
    """One row of the metrics table, with TRL's names (sums over tokens, means over
    episodes, as TRL logs them)."""
    mask = ro.batch.response_mask
    kl_seq = adv["kl"].sum(-1)
    non_score = adv["non_score_reward"].sum(-1)
    return {
        "objective/kl": float(kl_seq.mean()),
        "objective/entropy": float(torch.where(mask.bool(), ro.entropy, 0.0).sum(-1).mean()),
        "objective/non_score_reward": float(non_score.mean()),
        "objective/rlhf_reward": float((ro.scores + non_score).mean()),
        "objective/scores": float(ro.scores.mean()),
        "objective/raw_scores": float(ro.raw_scores.mean()),
        "policy/approxkl_avg": upd["approxkl"],
        "policy/clipfrac_avg": upd["clipfrac"],
        "policy/entropy_avg": upd["entropy"],
        "loss/policy_avg": upd["pg_loss"],
        "loss/value_avg": upd["vf_loss"],
        "val/clipfrac_avg": upd["vf_clipfrac"],
        "val/ratio": upd["ratio"],
        "val/num_eos_tokens": int(ro.has_eos.sum()),
        "val/eos_rate": float(ro.has_eos.float().mean()),
        "response_length": float(mask.sum(-1).mean()),
        "beta": beta,
    }


# ---------------------------------------------------------------------------
# 4.5 PPO with the judge
# ---------------------------------------------------------------------------
@reuse_freed_memory()
@records_phases
def train_ppo(policy, ref_policy, value_model, reward, tokenizer, prompts,
              cfg: PPOConfig, *, seed: int = 0, n_updates: int | None = None,
              score_norm: tuple[float, float] | None = None,
              checkpoint: str | Path | None = None, on_update: OnUpdate | None = None,
              show_progress: bool = True, desc: str = "PPO",
              prompt_ids: list[list[int]] | None = None,
              save_every: int = 1) -> TrainRun:
    """Run PPO for ``n_updates`` (default ``cfg.n_updates``) rollout+update rounds.

    prompts: texts from the TRAIN split (or ``prompt_ids`` token lists as well).
    reward: a judge model or ``reward_fn(prompts, responses) -> list[float]``.
    ``score_norm``: (mean, std) of the reward on reference answers (see
    :func:`normalise`). ``on_update(u, rollout, row)`` runs after each update; a
    dict it returns is merged into that update's metrics row. ``checkpoint``: the
    run's file (:mod:`rlhf_lessons.train.run`), written after every ``save_every``
    updates (default every one: an update is the costliest step of the course)
    and resumed from when its key matches. The policy and value model are trained
    in place. Returns a :class:`~rlhf_lessons.train.run.TrainRun`: one row per
    update (step, learning_rate, elapsed_s, episodes, then N-details / TRL names)
    and ``run["beta"]``, the final β.
    """
    n_updates = cfg.n_updates if n_updates is None else n_updates
    if isinstance(n_updates, bool) or not isinstance(n_updates, int) or n_updates < 1:
        raise ValueError(f"n_updates={n_updates!r}: must be a whole number >= 1")
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompt strings, not one string")
    if prompt_ids is None:
        prompt_ids = encode_prompts(tokenizer, prompts, cfg.max_prompt_tokens)
    prompts = list(prompts)
    if len(prompts) != len(prompt_ids):
        raise ValueError(f"{len(prompts)} prompts but {len(prompt_ids)} token lists")
    if len(prompts) < cfg.rollout_batch:
        raise ValueError(f"{len(prompts)} prompts for rollout_batch={cfg.rollout_batch}")
    if policy is ref_policy:
        raise ValueError("policy and ref_policy are the same object: pass a frozen copy")
    for m in (policy, ref_policy, value_model):
        m.train(False)  # dropout off everywhere: logprobs must be reproducible
    policy.requires_grad_(True)
    value_model.requires_grad_(True)
    ref_policy.requires_grad_(False)
    if isinstance(reward, nn.Module):
        reward.train(False).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(policy, value_model, cfg)
    # Whether scores are normalised, not the (mean, std) itself: those come from
    # sampled answers, and one token drawn differently on another CPU moves them.
    # What they are computed from is in the caller's checkpoint key.
    key = run_key(cfg, seed=seed, total=n_updates, n_prompts=len(prompts),
                  normalised=score_norm is not None)
    back = resume_checkpoint(checkpoint, key, n_updates, model=policy,
                             optimizer=optimizer, what="PPO")
    rows, start, beta, order = [], 0, cfg.kl_coef, []
    if back is not None:
        rows, start, beta = back.metrics, back.step, back.extra["beta"]
        if back.resume:  # an unfinished run goes on exactly where it stopped
            value_model.load_state_dict(back.resume["value_model"])
            gen.set_state(back.resume["generator"])
            order = back.resume["order"]
    bar = progress(range(start, n_updates), desc=desc, total=n_updates, initial=start,
                   disable=not show_progress)
    clock = Clock(rows)
    for u in bar:
        lr = cfg.lr * linear_schedule(u, n_updates, constant=cfg.lr_schedule == "constant")
        for g in optimizer.param_groups:
            g["lr"] = lr
        if len(order) < cfg.rollout_batch:  # a fresh shuffled pass over the prompts
            order += torch.randperm(len(prompts), generator=gen).tolist()
        idx, order = order[:cfg.rollout_batch], order[cfg.rollout_batch:]
        # 4.3.1-4.3.2 rollout and score
        ro = rollout(policy, ref_policy, value_model, reward, tokenizer,
                     [prompt_ids[i] for i in idx], [prompts[i] for i in idx], cfg, gen,
                     score_norm)
        # 4.3.3-4.3.4 KL-shaped rewards, GAE
        adv = compute_advantages(ro, beta, cfg)
        # 4.3.5 the clipped update
        upd = ppo_update(policy, value_model, optimizer, ro, adv, cfg, gen)
        # 4.5 log, adapt beta, checkpoint
        row = metric_row(u + 1, lr, clock(), episodes=(u + 1) * cfg.rollout_batch,
                         **metrics_row(ro, adv, upd, beta),
                         tokens_generated=ro.batch.response_ids.numel(), gen_s=ro.gen_s)
        if on_update is not None:
            row.update(on_update(u, ro, row) or {})
        rows.append(row)
        beta = update_kl_coef(beta, row["objective/kl"], cfg.adaptive_kl_target,
                              cfg.rollout_batch, cfg.kl_horizon)
        bar.set_postfix(score=f"{row['objective/scores']:.2f}",
                        kl=f"{row['objective/kl']:.2f}")
        if should_save(u + 1, n_updates, save_every):
            save_checkpoint(checkpoint, key=key, step=u + 1, total=n_updates, model=policy,
                            optimizer=optimizer, metrics=rows, extra={"beta": beta},
                            resume={"value_model": value_model.state_dict(),
                                    "generator": gen.get_state(), "order": order})
    return finished(rows, n_updates, start, beta=beta)


def run_kl_variant(policy, ref_policy, reward, tokenizer, prompts, cfg: PPOConfig,
                   kl_coef: float, kl_estimator: str, n_updates: int, seed: int = 0,
                   value_init=None, score_norm: tuple[float, float] | None = None):
    """PPO from a fresh copy of ``policy`` with another beta / estimator -> metrics.

    The input policy is not touched. ``value_init``: a judge to copy the value model
    from (else a zero-head copy of the policy backbone). Returns the metrics
    DataFrame with ``kl_coef`` and ``kl_estimator`` columns (notebook 04's explorer).
    """
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    pol = copy.deepcopy(policy)
    value = (make_value_model(reward_model=value_init) if value_init is not None
             else make_value_model(policy=pol))
    c = dataclasses.replace(cfg, kl_coef=float(kl_coef), kl_estimator=kl_estimator)
    run = train_ppo(pol, ref_policy, value, reward, tokenizer, prompts, c, seed=seed,
                    n_updates=n_updates, show_progress=False, score_norm=score_norm)
    df = run.metrics
    df["kl_coef"], df["kl_estimator"] = float(kl_coef), kl_estimator
    return df
