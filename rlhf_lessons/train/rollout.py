"""Rollout: the models of PPO, and episodes sampled and scored (notebook 04, 4.1-4.3.2).

In the order of notebook 04 and of Huang et al. 2023 ("The N Implementation Details
of RLHF with PPO"):

- 4.1   the four models: ``policy`` (trained), ``ref_policy`` (frozen copy),
        ``value_model`` (trained with the policy) and the reward;
- 4.3.1 rollout: left-padded prompts, sampling at a temperature with top-k 0 /
        top-p 1, the frozen forward passes at that same temperature;
- 4.3.2 score: truncate after the first EOS, ask the reward (a judge model or any
        ``reward_fn(prompts, responses) -> list[float]``), normalise it, penalise
        answers that never emitted EOS.

What PPO does with a rollout (KL shaping, GAE, the clipped update, the loop) is in
:mod:`rlhf_lessons.train.ppo`; sampling in :mod:`rlhf_lessons.core.generation`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rlhf_lessons.core.batching import decode_responses, left_pad, position_ids, truncate_after_eos
from rlhf_lessons.core.config import PPOConfig
from rlhf_lessons.core.generation import sample_responses
from rlhf_lessons.core.lean_gpt2 import answer_hidden, backbone_of, token_logprobs
from rlhf_lessons.core.phases import phase


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
    vocabulary projection is the biggest matmul of a tiny GPT-2), fused with the
    log-softmax and the pick (:func:`rlhf_lessons.core.lean_gpt2.token_logprobs`). With
    ``with_entropy`` also returns the entropy of each tempered distribution, (B, R).
    """
    P, R = batch.P, batch.response_ids.size(1)
    h = answer_hidden(policy, batch.ids, batch.mask, batch.pos, P)[:, :R]  # (B, R, d)
    if policy.lm_head.bias is not None:
        raise ValueError("response_logprobs expects a GPT-2 LM head without a bias")
    logp, ent = token_logprobs(h, policy.lm_head.weight, batch.response_ids, temperature,
                               with_entropy)
    return (logp, ent) if with_entropy else logp


def response_values(value_model, batch: Batch) -> torch.Tensor:
    """V(s_t) before each answer token: (B, R). Same positions as the logprobs."""
    P, R = batch.P, batch.response_ids.size(1)
    h = answer_hidden(value_model, batch.ids, batch.mask, batch.pos, P)
    return value_model.score(h[:, :R]).squeeze(-1).float()


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
        # score_index >= P - 1 (the last prompt token at the earliest)
        h = answer_hidden(reward_model, batch.ids, batch.mask, batch.pos, batch.P)
        last = h[torch.arange(h.size(0), device=h.device), batch.score_index - (batch.P - 1)]
        return reward_model.score(last).squeeze(-1).float()


def score_batch(reward, batch: Batch, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """The reward of each episode, (B,): a judge model read at ``score_index`` or a
    ``reward_fn(prompts, responses)`` callable.

    A score that is NaN or infinite would turn every weight into NaN within one
    update (and a checkpoint would keep them), so it is refused here with the
    reward's name and the first offending (prompt, answer).
    """
    if isinstance(reward, nn.Module):
        scores = judge_scores(reward, batch)
    elif callable(reward):
        vals = list(reward(prompts, responses))
        if len(vals) != len(prompts):
            raise ValueError(f"reward_fn returned {len(vals)} scores for {len(prompts)} "
                             "answers")
        scores = torch.tensor([float(v) for v in vals], dtype=torch.float32,
                              device=batch.ids.device)
    else:
        raise TypeError("reward must be a judge model or reward_fn(prompts, responses)")
    bad = (~torch.isfinite(scores)).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        name = getattr(reward, "__name__", type(reward).__name__)
        raise ValueError(
            f"reward {name!r} returned {scores[i].item()} for {len(bad)} of {len(scores)} "
            f"answers, e.g. prompt {prompts[i][-80:]!r} -> answer {responses[i][:80]!r}. "
            "PPO needs finite scores: fix the reward (or clip it) before training.")
    return scores


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
    ``ref_logprobs`` is None when the rollout had no reference model (GRPO with
    no KL term needs none, as in TRL at beta 0).
    """

    prompts: list[str]
    responses: list[str]
    batch: Batch
    has_eos: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor | None
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
    reference samples normalises the score when given. ``ref_policy=None`` skips
    the reference pass (``ref_logprobs`` is then None).
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    dev = next(policy.parameters()).device
    p_ids, p_mask = left_pad(prompt_seqs, pad)
    p_ids, p_mask = p_ids.to(dev), p_mask.to(dev)
    # 4.3.1 sample with the policy (its logprobs come from the same tempered logits)
    t0 = time.perf_counter()
    with phase("sample"):
        raw_ids, logprobs, entropy = sample_responses(
            policy, p_ids, p_mask, cfg.max_new_tokens, cfg.temperature, eos, generator)
    gen_s = time.perf_counter() - t0
    # 4.3.2 truncate after the first EOS; the padding is masked everywhere from here on
    r_ids, r_mask, has_eos = truncate_after_eos(raw_ids, eos, pad)
    batch = make_batch(p_ids, p_mask, r_ids, r_mask, has_eos)
    logprobs = logprobs * r_mask
    entropy = entropy * r_mask
    with phase("reference"):
        ref_logprobs = (response_logprobs(ref_policy, batch, cfg.temperature) * r_mask
                        if ref_policy is not None else None)
    # no value model (the critic-free methods of notebook 07): values are 0
    with phase("values"):
        values = (response_values(value_model, batch) * r_mask if value_model is not None
                  else torch.zeros_like(logprobs))
    with phase("decode"):
        responses = decode_responses(tokenizer, r_ids, r_mask)
    # 4.3.2 score, normalise, penalise answers without EOS
    with phase("reward"):
        raw = score_batch(reward, batch, list(prompts), responses)
    scores = apply_missing_eos_penalty(normalise(raw, score_norm), has_eos,
                                       cfg.missing_eos_penalty)
    return Rollout(list(prompts), responses, batch, has_eos, logprobs, ref_logprobs,
                   entropy, values, raw, scores, gen_s)
