"""PPO for language models, in the order of notebook 04 and of Huang et al. 2023
("The N Implementation Details of RLHF with PPO") and TRL's former ``PPOTrainer``.

One numbering, the notebook's sections (the banners below and the step comments
inside :func:`train_ppo`):

- 4.1   the four models: ``policy`` (trained), ``ref_policy`` (frozen copy),
        ``value_model`` (trained with the policy) and the reward;
- 4.3.1 rollout: left-padded prompts, sampling at a temperature with top-k 0 /
        top-p 1, the frozen forward passes at that same temperature;
- 4.3.2 score: truncate after the first EOS, ask the reward (a judge model or any
        ``reward_fn(prompts, responses) -> list[float]``), normalise it, penalise
        answers that never emitted EOS;
- 4.3.3 KL-shaped rewards: ``-beta * KL_t`` per token plus the score at the last one;
- 4.3.4 values and GAE (gamma, lambda), whitened advantages;
- 4.3.5 the clipped update: several epochs of the clipped surrogate and clipped
        value loss over reshuffled minibatches, gradient clipping, a linear lr;
- 4.5   the loop (:func:`train_ppo`), with a hook after every update and an atomic
        checkpoint to resume from.

Sampling lives in :mod:`rlhf_lessons.generation` and the token plumbing (padding,
truncation, masked statistics) in :mod:`rlhf_lessons.batching`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from rlhf_lessons.batching import (
    decode_responses,
    encode_prompts,
    left_pad,
    masked_mean,
    masked_whiten,
    position_ids,
    truncate_after_eos,
)
from rlhf_lessons.config import PPOConfig
from rlhf_lessons.generation import sample_responses
from rlhf_lessons.lean_gpt2 import backbone_of, gpt2_hidden
from rlhf_lessons.utils import atomic_torch_save, linear_schedule, progress

KL_ESTIMATORS = ("k1", "k3")
RewardFn = Callable[[list[str], list[str]], Sequence[float]]
# on_update(update_index, rollout, metrics_row) -> optional dict of extra columns
OnUpdate = Callable[[int, "Rollout", dict], "dict | None"]


# ---------------------------------------------------------------------------
# 4.1 The four models
# ---------------------------------------------------------------------------
class ValueModel(nn.Module):
    """A GPT-2 backbone (``.transformer``) and a scalar head (``.score``).

    The same layout as ``GPT2ForSequenceClassification``, so a reward model can be
    used as a value model directly.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear):
        super().__init__()
        self.transformer = backbone
        self.score = head
        self.config = backbone.config


def make_value_model(policy=None, reward_model=None) -> nn.Module:
    """The value model: a copy of the reward model if given, else a zero-head copy of
    the policy backbone.

    From the reward model: the backbone already reads answers like the judge and the
    head is on the score's scale. Zero-init head: V = 0 at the start, so the first
    advantages are the (whitened) shaped rewards and nothing random leaks in.
    """
    if reward_model is not None:
        if not (hasattr(reward_model, "transformer") and hasattr(reward_model, "score")):
            raise TypeError("reward_model must have .transformer and .score (a GPT-2 "
                            "sequence classifier) to initialise the value model")
        vm = copy.deepcopy(reward_model)
        return vm.train(False).requires_grad_(True)
    if policy is None:
        raise ValueError("make_value_model needs a policy or a reward_model")
    bb = copy.deepcopy(backbone_of(policy))
    head = nn.Linear(bb.config.n_embd, 1, bias=False)
    nn.init.zeros_(head.weight)
    dev = next(bb.parameters()).device
    return ValueModel(bb, head).to(dev).train(False).requires_grad_(True)


# ---------------------------------------------------------------------------
# 4.3.1 Rollout: left-padded prompts, sampling at a temperature
# ---------------------------------------------------------------------------
@dataclass
class Batch:
    """Prompt + answer as one left-padded sequence. P = prompt width, R = answer width.

    ids, mask, pos: (B, P + R). response_ids, response_mask: (B, R).
    score_index: (B,) where a judge reads its score: the last real token before
    EOS (the last prompt token when the answer is only EOS).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    pos: torch.Tensor
    P: int
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    score_index: torch.Tensor

    def index(self, rows: torch.Tensor) -> Batch:
        return Batch(self.ids[rows], self.mask[rows], self.pos[rows], self.P,
                     self.response_ids[rows], self.response_mask[rows], self.score_index[rows])


def make_batch(prompt_ids, prompt_mask, response_ids, response_mask, has_eos) -> Batch:
    """Concatenate a left-padded prompt and a truncated answer (see :class:`Batch`)."""
    P = prompt_ids.size(1)
    ids = torch.cat([prompt_ids, response_ids], 1)
    mask = torch.cat([prompt_mask.long(), response_mask.long()], 1)
    n_real = response_mask.sum(-1).long()
    score_index = P + n_real - 1 - has_eos.long()
    return Batch(ids, mask, position_ids(mask), P, response_ids, response_mask, score_index)


def response_logprobs(policy, batch: Batch, temperature: float, with_entropy: bool = False):
    """log pi(a_t | s_t) of each answer token at ``temperature``: (B, R).

    Only the R positions that predict answer tokens go through the LM head (the
    vocabulary projection is the biggest matmul of a tiny GPT-2). With
    ``with_entropy`` also returns the entropy of each tempered distribution, (B, R).
    """
    h = gpt2_hidden(policy, batch.ids, batch.mask, batch.pos)
    P, R = batch.P, batch.response_ids.size(1)
    logits = policy.lm_head(h[:, P - 1:P + R - 1]).float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.response_ids[..., None])[..., 0]
    if not with_entropy:
        return logp
    with torch.no_grad():
        ent = -(logp_all.exp() * logp_all).sum(-1)
    return logp, ent


def response_values(value_model, batch: Batch) -> torch.Tensor:
    """V(s_t) before each answer token: (B, R). Same positions as the logprobs."""
    h = gpt2_hidden(value_model, batch.ids, batch.mask, batch.pos)
    P, R = batch.P, batch.response_ids.size(1)
    return value_model.score(h[:, P - 1:P + R - 1]).squeeze(-1).float()


# ---------------------------------------------------------------------------
# 4.3.2 Score
# ---------------------------------------------------------------------------
def judge_scores(reward_model, batch: Batch) -> torch.Tensor:
    """A sequence-classifier judge's score at ``batch.score_index``: (B,).

    ``score_index`` is the last real token that is not EOS, where transformers'
    ``GPT2ForSequenceClassification`` (and so TRL and the benchmark workload) pool
    when pad == eos. The course's own judge (notebook 03) was trained to read AT the
    EOS of the re-tokenised text: give it to PPO through :func:`judge_reward_fn`.
    """
    with torch.no_grad():
        h = gpt2_hidden(reward_model, batch.ids, batch.mask, batch.pos)
        last = h[torch.arange(h.size(0), device=h.device), batch.score_index]
        return reward_model.score(last).squeeze(-1).float()


def score_batch(reward, batch: Batch, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """The reward of each episode, (B,): a judge model read at ``score_index`` or a
    ``reward_fn(prompts, responses)`` callable."""
    if isinstance(reward, nn.Module):
        return judge_scores(reward, batch)
    if not callable(reward):
        raise TypeError("reward must be a judge model or reward_fn(prompts, responses)")
    vals = list(reward(prompts, responses))
    if len(vals) != len(prompts):
        raise ValueError(f"reward_fn returned {len(vals)} scores for {len(prompts)} answers")
    return torch.tensor([float(v) for v in vals], dtype=torch.float32,
                        device=batch.ids.device)


def normalise(scores, stats: tuple[float, float] | None):
    """``(scores - mean) / std`` with ``stats = (mean, std)`` of the reward on the
    reference policy's own answers (N-details): 0 is the reference's mean, 1 its
    spread. Tensors stay tensors, anything else becomes a float64 array (n,).
    ``stats=None`` returns the scores unchanged."""
    if stats is None:
        return scores
    mean, std = stats
    std = std if std > 1e-8 else 1.0
    if isinstance(scores, torch.Tensor):
        return (scores - mean) / std
    return (np.asarray(scores, dtype=np.float64) - mean) / std


def apply_missing_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor,
                              penalty: float) -> torch.Tensor:
    """scores (B,) minus ``penalty`` where the answer never emitted EOS (B,) bool."""
    return scores - penalty * (~has_eos).to(scores.dtype)


@dataclass
class Rollout:
    """One batch of episodes. B episodes, R answer tokens (see :class:`Batch`).

    logprobs, ref_logprobs, entropy, values: (B, R); raw_scores (the reward as
    given), scores (normalised, with the missing-EOS penalty): (B,); has_eos (B,).
    """

    prompts: list[str]
    responses: list[str]
    batch: Batch
    has_eos: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    entropy: torch.Tensor
    values: torch.Tensor
    raw_scores: torch.Tensor
    scores: torch.Tensor
    gen_s: float = 0.0


@torch.no_grad()
def rollout(policy, ref_policy, value_model, reward, tokenizer, prompt_seqs, prompts,
            cfg: PPOConfig, generator=None, score_norm: tuple[float, float] | None = None,
            ) -> Rollout:
    """4.3.1-4.3.2: sample answers, truncate, the frozen forward passes, score.

    prompt_seqs: B token lists (already cut to ``cfg.max_prompt_tokens``); prompts:
    their texts (for a ``reward_fn``). ``score_norm`` = (mean, std) of the reward on
    reference samples normalises the score when given.
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    dev = next(policy.parameters()).device
    p_ids, p_mask = left_pad(prompt_seqs, pad)
    p_ids, p_mask = p_ids.to(dev), p_mask.to(dev)
    # 4.3.1 sample with the policy (its logprobs come from the same tempered logits)
    t0 = time.perf_counter()
    raw_ids, logprobs, entropy = sample_responses(
        policy, p_ids, p_mask, cfg.max_new_tokens, cfg.temperature, eos, generator)
    gen_s = time.perf_counter() - t0
    # 4.3.2 truncate after the first EOS; the padding is masked everywhere from here on
    r_ids, r_mask, has_eos = truncate_after_eos(raw_ids, eos, pad)
    batch = make_batch(p_ids, p_mask, r_ids, r_mask, has_eos)
    logprobs = logprobs * r_mask
    entropy = entropy * r_mask
    ref_logprobs = response_logprobs(ref_policy, batch, cfg.temperature) * r_mask
    values = response_values(value_model, batch) * r_mask
    responses = decode_responses(tokenizer, r_ids, r_mask)
    # 4.3.2 score, normalise, penalise answers without EOS
    raw = score_batch(reward, batch, list(prompts), responses)
    scores = apply_missing_eos_penalty(normalise(raw, score_norm), has_eos,
                                       cfg.missing_eos_penalty)
    return Rollout(list(prompts), responses, batch, has_eos, logprobs, ref_logprobs,
                   entropy, values, raw, scores, gen_s)


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
    return torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps,
                             weight_decay=cfg.weight_decay)


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
            new_logp, ent = response_logprobs(policy, b, cfg.temperature, with_entropy=True)
            new_v = response_values(value_model, b)
            out = ppo_losses(new_logp, ro.logprobs[rows], adv["advantages"][rows], new_v,
                             ro.values[rows], adv["returns"][rows], b.response_mask,
                             cfg.cliprange, cfg.cliprange_value)
            loss = out["pg_loss"] + cfg.vf_coef * out["vf_loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip and clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
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


def metrics_row(ro: Rollout, adv: dict, upd: dict, beta: float, lr: float) -> dict:
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
        "lr": lr,
        "beta": beta,
    }




# ---------------------------------------------------------------------------
# 4.5 PPO with the judge: the loop
# ---------------------------------------------------------------------------
@dataclass
class PPORun:
    """What :func:`train_ppo` returns: the metrics table and the final beta."""

    metrics: pd.DataFrame  # one row per update
    beta: float
    resumed_from: int = 0


def _resume(checkpoint, settings, policy, value_model, optimizer, gen):
    """(beta, rows, start, order) from ``checkpoint`` if it holds these settings."""
    if checkpoint is None or not Path(checkpoint).exists():
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if state.get("settings") != settings:
        print("a PPO checkpoint with other settings exists; starting afresh")
        return None
    policy.load_state_dict(state["policy"])
    value_model.load_state_dict(state["value_model"])
    optimizer.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    print(f"resuming PPO from its checkpoint after update {state['update']}/"
          f"{settings['n_updates']}")
    return state["beta"], state["rows"], state["update"], state["order"]


def _save(checkpoint, settings, update, policy, value_model, optimizer, gen, beta, rows,
          order) -> None:
    atomic_torch_save({
        "settings": settings, "update": update, "policy": policy.state_dict(),
        "value_model": value_model.state_dict(), "optimizer": optimizer.state_dict(),
        "generator": gen.get_state(), "beta": beta, "rows": rows, "order": order,
    }, Path(checkpoint))


def train_ppo(policy, ref_policy, value_model, reward, tokenizer, prompts,
              cfg: PPOConfig, *, seed: int = 0, n_updates: int | None = None,
              score_norm: tuple[float, float] | None = None,
              checkpoint: str | Path | None = None, on_update: OnUpdate | None = None,
              show_progress: bool = True, desc: str = "PPO",
              prompt_ids: list[list[int]] | None = None) -> PPORun:
    """Run PPO for ``n_updates`` (default ``cfg.n_updates``) rollout+update rounds.

    prompts: texts from the TRAIN split (or ``prompt_ids`` token lists as well).
    reward: a judge model or ``reward_fn(prompts, responses) -> list[float]``.
    ``score_norm``: (mean, std) of the reward on reference answers (see
    :func:`normalise`). ``on_update(u, rollout, row)`` runs after each update; a
    dict it returns is merged into that update's metrics row. ``checkpoint``: a
    path, written atomically after every update and, if it exists with the same
    settings, resumed from. The policy and value model are trained in place.
    """
    if cfg.kl_estimator not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={cfg.kl_estimator!r}: expected one of {KL_ESTIMATORS}")
    n_updates = cfg.n_updates if n_updates is None else n_updates
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
    settings = {"cfg": asdict(cfg), "seed": seed, "n_updates": n_updates,
                "n_prompts": len(prompts), "score_norm": score_norm}
    state = _resume(checkpoint, settings, policy, value_model, optimizer, gen)
    beta, rows, start, order = state or (cfg.kl_coef, [], 0, [])
    bar = progress(range(start, n_updates), desc=desc, total=n_updates, initial=start,
                   disable=not show_progress)
    t_start = time.perf_counter()
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
        row = {"update": u + 1, "episodes": (u + 1) * cfg.rollout_batch,
               **metrics_row(ro, adv, upd, beta, lr),
               "tokens_generated": ro.batch.response_ids.numel(),
               "gen_s": ro.gen_s, "time_s": time.perf_counter() - t_start}
        if on_update is not None:
            row.update(on_update(u, ro, row) or {})
        rows.append(row)
        beta = update_kl_coef(beta, row["objective/kl"], cfg.adaptive_kl_target,
                              cfg.rollout_batch, cfg.kl_horizon)
        bar.set_postfix(score=f"{row['objective/scores']:.2f}",
                        kl=f"{row['objective/kl']:.2f}")
        if checkpoint is not None:
            _save(checkpoint, settings, u + 1, policy, value_model, optimizer, gen, beta,
                  rows, order)
    return PPORun(pd.DataFrame(rows), beta, start)


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
