"""Direct Preference Optimisation: the loss and the log-probabilities it needs.

DPO (Rafailov et al. 2023) trains the policy on the preference pairs directly, with no
judge and no sampling: the implicit reward of an answer is ``β·(log π(y) − log π_ref(y))``,
and the loss is the Bradley–Terry loss of notebook 03 on those implicit rewards.
``scripts/gpu_check.py`` times one DPO step; the lesson that teaches it is the
beyond-PPO notebook (the exercise's check, ``checks.check_dpo_loss``, is ready).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf_lessons.batching import position_ids, right_pad


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
             ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float):
    """Mean DPO loss and the implicit rewards.

    All inputs: summed answer log-probs, ``(B,)``. Returns ``(loss, chosen_rewards,
    rejected_rewards)`` with ``loss = mean(−log σ(β[(π_c − ref_c) − (π_r − ref_r)]))``
    and rewards ``β·(π − ref)``, each ``(B,)`` and detached.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    shapes = {t.shape for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"expected four (B,) tensors of one shape, got {sorted(shapes)}")
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return loss, chosen.detach(), rejected.detach()


def answer_start(chosen_ids: list[int], rejected_ids: list[int]) -> int:
    """Index of the first token where two transcripts of one pair differ.

    HH pairs share their whole history and differ in the last answer, so the tokens
    from here on are the answers. Identical pairs return their length (no answer).
    """
    n = 0
    for a, b in zip(chosen_ids, rejected_ids):
        if a != b:
            break
        n += 1
    return n


def answer_logprobs(model, seqs: list[list[int]], starts: list[int], pad_id: int,
                    device="cpu") -> torch.Tensor:
    """Sum of ``log π(token)`` over the tokens at and after ``starts[i]`` of each sequence.

    seqs: token lists (right-padded here); returns ``(len(seqs),)``. Position ``t``'s
    token is predicted by the logits at ``t − 1``, so a start of 0 counts from token 1.
    """
    if len(seqs) != len(starts):
        raise ValueError(f"{len(seqs)} sequences but {len(starts)} starts")
    ids, mask = right_pad(seqs, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    h = model.transformer(input_ids=ids, attention_mask=mask,
                          position_ids=position_ids(mask)).last_hidden_state  # (B, L, d)
    pos = torch.arange(1, ids.size(1), device=ids.device)[None]
    first = torch.tensor([max(1, s) for s in starts], device=ids.device)[:, None]
    keep = (pos >= first) & mask[:, 1:].bool()  # (B, L-1): token t+1 is an answer token
    rows, cols = keep.nonzero(as_tuple=True)
    # Only the answer positions go through the LM head: the vocabulary projection of
    # every prompt token would cost memory and time for nothing.
    logp = torch.log_softmax(model.lm_head(h[rows, cols]).float(), dim=-1)  # (N, V)
    tok_logp = logp.gather(-1, ids[rows, cols + 1][:, None])[:, 0]  # (N,)
    return torch.zeros(len(seqs), device=ids.device).index_add(0, rows, tok_logp)
