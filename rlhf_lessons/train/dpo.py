"""Direct Preference Optimisation: the loss and the log-probabilities it needs.

DPO (Rafailov et al. 2023) trains the policy on the preference pairs directly, with no
judge and no sampling: the implicit reward of an answer is ``β·(log π(y) − log π_ref(y))``,
and the loss is the Bradley–Terry loss of notebook 03 on those implicit rewards.
Notebook 07 teaches it, in its order:

- 7.5 DPO: the loss from the four log-probabilities and β, the implicit reward,
      the answer log-probs of a pair (``scripts/gpu_check.py`` times one step);
- 7.6 Training DPO: :func:`train_dpo` (length-bucketed batches, AdamW, a linear lr,
      TRL's metric names) and the held-out implicit-reward accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_lessons.core.batching import length_buckets, right_pad, tail_token_ids
from rlhf_lessons.core.config import DPOConfig
from rlhf_lessons.core.lean_gpt2 import causal_hidden, chunked_token_logprobs
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.phases import phase, records_phases
from rlhf_lessons.core.utils import (
    adamw,
    autocast,
    linear_schedule,
    optimizer_step,
    progress,
)
from rlhf_lessons.train.reward import PairSet
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

# A held-out DPO loss (nats per pair) at which the course says DPO learned: log 2 =
# 0.693 is a policy that still equals its reference; 0.65 is a clear step below it
# (a typical implicit-reward margin of about 0.09 in the chosen answer's favour).
LEARNED_LOSS = 0.65


# ---------------------------------------------------------------------------
# 7.5 DPO
# ---------------------------------------------------------------------------
def implicit_reward(logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward ``β·(log π(y) − log π_ref(y))`` of each answer: (B,) -> (B,).

    The optimum of the KL-regularised objective is ``π* ∝ π_ref·exp(r/β)``, so
    ``r = β log π*/π_ref + β log Z(x)``; Z cancels in a pair's difference.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if logps.shape != ref_logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and ref_logps "
                         f"{tuple(ref_logps.shape)} differ in shape")
    return beta * (logps - ref_logps)


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


# Batches are padded to a multiple of LENGTH_MULTIPLE tokens, the final block starts at
# a multiple of it, and the LM head runs on a multiple of LM_ROWS_MULTIPLE rows, that many
# at a time (lean_gpt2.ChunkedTokenLogProbs: the DPO benchmark's peak up to the end of
# training fell from 1.2-1.8 GB to 0.85-0.88 GB, at 0.88-1.03 of the speed in six
# interleaved pairs of runs). Under
# bf16 on a CPU each new matmul shape builds oneDNN kernels that stay cached with their
# memory for the life of the process: with every batch its own shapes, the DPO
# benchmark's process still held 690 MB more than at its start after training, its
# freed heap returned; 83 MB with these three roundings (measured). The judge's batches
# round to batching.PAD_MULTIPLE (32) for the same reason; for DPO 64 kept less memory
# at the same speed (measured against 32).
LENGTH_MULTIPLE = 64
LM_ROWS_MULTIPLE = 1024


def answer_logprobs(model, seqs: list[list[int]], starts: list[int], pad_id: int,
                    device="cpu") -> torch.Tensor:
    """Sum of ``log π(token)`` over the tokens at and after ``starts[i]`` of each sequence.

    seqs: token lists (right-padded here); returns ``(len(seqs),)``. Position ``t``'s
    token is predicted by the logits at ``t − 1``, so a start of 0 counts from token 1.
    """
    if len(seqs) != len(starts):
        raise ValueError(f"{len(seqs)} sequences but {len(starts)} starts")
    # never rounded past the model's positions
    ids, mask = right_pad(seqs, pad_id, LENGTH_MULTIPLE,
                          getattr(getattr(model, "config", None), "n_positions", None))
    ids, mask = ids.to(device), mask.to(device)
    first = [max(1, s) for s in starts]
    # Right-padded rows: the lean causal forward (no padding mask needed), its final
    # block from the first answer's position on (lean_gpt2.causal_hidden).
    # rounded down to a multiple of LENGTH_MULTIPLE: a few more prompt positions through
    # the final block, but one of a few shapes rather than one per batch
    f = (min(first) - 1) // LENGTH_MULTIPLE * LENGTH_MULTIPLE
    h = causal_hidden(model, ids, from_pos=f)  # (B, L - f, d)
    pos = torch.arange(1, ids.size(1), device=ids.device)[None]
    keep = (pos >= torch.tensor(first, device=ids.device)[:, None]) & mask[:, 1:].bool()
    rows, cols = keep.nonzero(as_tuple=True)  # (B, L-1): token t+1 is an answer token
    # Only the answer positions go through the LM head: the vocabulary projection of
    # every prompt token would cost memory and time for nothing.
    hs = h[rows, cols - f]  # (N, d)
    n = hs.size(0)
    if getattr(model.lm_head, "bias", None) is not None:
        raise ValueError("answer_logprobs expects GPT-2's LM head, which has no bias")
    # zero rows up to a multiple of LM_ROWS_MULTIPLE, cut off again after the head: the
    # same log-probs, from one matmul shape (see LENGTH_MULTIPLE); the head runs a chunk
    # of rows at a time, never holding the (N, V) float32 logits (lean_gpt2.ChunkedTokenLogProbs)
    pad = -(-n // LM_ROWS_MULTIPLE) * LM_ROWS_MULTIPLE - n
    tok_logp = chunked_token_logprobs(F.pad(hs, (0, 0, 0, pad)), model.lm_head.weight,
                                      F.pad(ids[rows, cols + 1], (0, pad)),
                                      LM_ROWS_MULTIPLE)[:n]  # (N,)
    return torch.zeros(len(seqs), device=ids.device).index_add(0, rows, tok_logp)


def policy_pairs(rows, tok, max_len: int, drop_identical: bool = True) -> PairSet:
    """Preference rows encoded for the POLICY: prompt + " " + answer + EOS, as SFT.

    rows: dicts with prompt, chosen_response, rejected_response (and subset). Both
    sides of a pair keep the SAME prompt tokens (its end, cut to fit the longer
    answer; each answer keeps at most ``max_len − 16`` tokens), so
    :func:`answer_start` finds where the answers begin. A judge's encoding
    (``reward.prepare_pairs``) cuts each side on its own, which would shift them.
    """
    rows = rows.to_list() if hasattr(rows, "to_list") else list(rows)
    if not rows:
        raise ValueError("rows: no preference rows to encode")
    eos = tok.eos_token_id
    prompts = tail_token_ids(tok, [r["prompt"] for r in rows], max_len)
    c_ids, r_ids, n_cut = [], [], 0
    for r, p in zip(rows, prompts):
        a = [tok(" " + r[k].strip(), add_special_tokens=False)["input_ids"][:max_len - 17]
             + [eos] for k in ("chosen_response", "rejected_response")]
        keep = max_len - max(len(a[0]), len(a[1]))
        n_cut += len(p) > keep
        p = p[-keep:]
        c_ids.append(p + a[0])
        r_ids.append(p + a[1])
    same = np.array([c == r for c, r in zip(c_ids, r_ids)], dtype=bool)
    ks = np.flatnonzero(~same) if drop_identical else np.arange(len(rows))
    pick = lambda xs: [xs[i] for i in ks]  # noqa: E731
    return PairSet(pick(c_ids), pick(r_ids), pick([r.get("subset", "pairs") for r in rows]),
                   pick([r["prompt"] for r in rows]), pick([r["chosen_response"] for r in rows]),
                   pick([r["rejected_response"] for r in rows]),
                   np.array([len(rows[i]["chosen_response"]) for i in ks]),
                   np.array([len(rows[i]["rejected_response"]) for i in ks]), same[ks],
                   n_identical_dropped=int(len(rows) - len(ks)), n_truncated=n_cut)


def pair_starts(chosen_ids: list[list[int]], rejected_ids: list[list[int]]) -> list[int]:
    """:func:`answer_start` of each pair: where its two answers begin (B,)."""
    if len(chosen_ids) != len(rejected_ids):
        raise ValueError(f"{len(chosen_ids)} chosen but {len(rejected_ids)} rejected")
    return [answer_start(c, r) for c, r in zip(chosen_ids, rejected_ids)]


def pair_logprobs(model, pairs, idx, pad_id: int, device="cpu"):
    """Summed answer log-probs of pairs ``idx`` of a ``reward.PairSet``:
    ``(chosen, rejected)``, each ``(len(idx),)``, in ONE forward of 2·len(idx) rows."""
    c = [pairs.chosen_ids[i] for i in idx]
    r = [pairs.rejected_ids[i] for i in idx]
    st = pair_starts(c, r)
    lp = answer_logprobs(model, c + r, st + st, pad_id, device)
    return lp[:len(idx)], lp[len(idx):]


@torch.no_grad()
def all_pair_logprobs(model, pairs, pad_id: int, device="cpu", batch_size: int = 32):
    """Answer log-probs of every pair, as two float arrays ``(n,)`` (eval mode).

    DPO needs the reference's once: it is frozen (TRL's ``precompute_ref_log_probs``).
    Batches hold pairs of similar length (sorted by the longer side), so a batch pads
    to about its own length; the arrays come back in the pairs' order.
    """
    model.eval()
    out_c, out_r = np.zeros(len(pairs), np.float32), np.zeros(len(pairs), np.float32)
    order = np.argsort([max(len(a), len(b)) for a, b in zip(pairs.chosen_ids,
                                                            pairs.rejected_ids)],
                       kind="stable")
    for s in range(0, len(pairs), batch_size):
        idx = order[s:s + batch_size].tolist()
        with autocast(torch.device(device)):
            c, r = pair_logprobs(model, pairs, idx, pad_id, device)
        out_c[idx], out_r[idx] = c.float().cpu().numpy(), r.float().cpu().numpy()
    return out_c, out_r


# ---------------------------------------------------------------------------
# 7.6 Training DPO
# ---------------------------------------------------------------------------
def implicit_accuracy(policy_logps, ref_logps, beta: float, identical=None) -> dict:
    """Held-out pairwise accuracy of the implicit reward.

    policy_logps, ref_logps: ``(chosen, rejected)`` arrays ``(n,)`` each. A pair is
    right when the chosen answer's implicit reward is higher; identical pairs are
    ties and count as wrong (as for the judge). Returns accuracy, k, n, margins (n,)
    and losses (n,): DPO's loss per pair, −log σ(margin) (log 2 while the policy
    is its reference).
    """
    pc, pr = (np.asarray(x, dtype=np.float64) for x in policy_logps)
    rc, rr = (np.asarray(x, dtype=np.float64) for x in ref_logps)
    if not (pc.shape == pr.shape == rc.shape == rr.shape) or pc.ndim != 1:
        raise ValueError("policy_logps and ref_logps must be (chosen, rejected) of one (n,)")
    margins = beta * ((pc - rc) - (pr - rr))
    right = margins > 0
    if identical is not None:
        right &= ~np.asarray(identical, dtype=bool)
    k, n = int(right.sum()), int(right.size)
    return {"accuracy": k / n if n else float("nan"), "k": k, "n": n, "margins": margins,
            "losses": np.logaddexp(0.0, -margins)}


@reuse_freed_memory()
@records_phases
def train_dpo(policy, ref_policy, pairs, cfg: DPOConfig, *, pad_id: int, device="cpu",
              seed: int = 0, ref_logps=None, checkpoint: str | Path | None = None,
              save_every: int = SAVE_EVERY, show_progress: bool = True,
              desc: str = "DPO") -> TrainRun:
    """Train ``policy`` in place with the DPO loss on ``pairs`` (a ``reward.PairSet``).

    Length-bucketed batches of ``cfg.batch_size`` pairs (chosen and rejected in one
    forward), AdamW (``cfg.lr``, ``cfg.weight_decay``), gradient clipping, linear lr
    decay to 0. ``ref_logps``: the frozen reference's ``(chosen, rejected)`` arrays
    from :func:`all_pair_logprobs` (computed here if None and there is training to
    do). ``checkpoint``: the run's file (:mod:`rlhf_lessons.train.run`), resumed
    from when its key matches. Returns a :class:`~rlhf_lessons.train.run.TrainRun`
    whose rows carry step, learning_rate, elapsed_s, then TRL's names: loss,
    rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins,
    logps/chosen, logps/rejected, grad_norm.
    """
    if len(pairs) == 0:
        raise ValueError("pairs: no preference pairs to train on")
    if policy is ref_policy:
        raise ValueError("policy and ref_policy are the same object: pass a frozen copy")
    device = torch.device(device)
    n_batches = math.ceil(len(pairs) / cfg.batch_size)
    total = cfg.max_steps or max(1, math.ceil(n_batches * cfg.epochs))
    policy.train(False).requires_grad_(True)  # dropout off: log-probs reproducible
    opt = adamw(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    key = run_key(cfg, seed=seed, n_pairs=len(pairs), total=total)
    back = resume_checkpoint(checkpoint, key, total, model=policy, optimizer=opt,
                             what="DPO", device=device)
    rows, start = (back.metrics, back.step) if back else ([], 0)
    if start >= total:  # a finished run: nothing to train, no reference pass needed
        policy.requires_grad_(False)
        return finished(rows, total, start)
    if ref_logps is None:
        with phase("reference"):
            ref_logps = all_pair_logprobs(ref_policy, pairs, pad_id, device)
    ref_c, ref_r = (torch.as_tensor(x, dtype=torch.float32) for x in ref_logps)
    longest = [max(len(a), len(b)) for a, b in zip(pairs.chosen_ids, pairs.rejected_ids)]
    epochs: list[list[list[int]]] = []
    bar = progress(range(start, total), desc=desc, total=total, initial=start,
                   disable=not show_progress)
    clock = Clock(rows)
    for step in bar:
        ep, k = divmod(step, n_batches)
        while len(epochs) <= ep:
            epochs.append(length_buckets(longest, cfg.batch_size, seed + len(epochs)))
        idx = epochs[ep][k]
        lr = cfg.lr * linear_schedule(step, total)
        for g in opt.param_groups:
            g["lr"] = lr
        with phase("forward"):
            with autocast(device):
                pc, pr = pair_logprobs(policy, pairs, idx, pad_id, device)
            pc, pr = pc.float(), pr.float()
            loss, rc, rr = dpo_loss(pc, pr, ref_c[idx].to(device), ref_r[idx].to(device),
                                    cfg.beta)
        gn = optimizer_step(loss, opt, policy.parameters(), cfg.max_grad_norm)
        rows.append(metric_row(
            step + 1, lr, clock(), loss=loss.item(),
            **{"rewards/chosen": float(rc.mean()), "rewards/rejected": float(rr.mean()),
               "rewards/accuracies": float((rc > rr).float().mean()),
               "rewards/margins": float((rc - rr).mean()),
               "logps/chosen": float(pc.detach().mean()),
               "logps/rejected": float(pr.detach().mean())}, grad_norm=gn))
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if should_save(step + 1, total, save_every):
            save_checkpoint(checkpoint, key=key, step=step + 1, total=total, model=policy,
                            optimizer=opt, metrics=rows)
    policy.requires_grad_(False)
    return finished(rows, total, start)


def beta_view(log_ratio_margins, beta: float) -> dict:
    """What β does to fixed log-ratio margins ``h = (π_c − ref_c) − (π_r − ref_r)``.

    h: (n,) nats. Returns prob (n,) = σ(β h), the policy's implied P(chosen wins);
    loss = mean −log σ(β h); weight = mean σ(−β h), how hard the gradient still
    pushes (½ at the start); share_sure = share of pairs with P > 0.9. The β widget
    of notebook 07 draws it.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    h = torch.as_tensor(np.asarray(log_ratio_margins, dtype=np.float64))
    prob = torch.sigmoid(beta * h)
    return {"prob": prob.numpy(), "loss": float(-F.logsigmoid(beta * h).mean()),
            "weight": float(torch.sigmoid(-beta * h).mean()),
            "share_sure": float((prob > 0.9).double().mean())}
