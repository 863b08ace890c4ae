"""The judge: a reward model trained on human preference pairs.

Taught in notebook 03 (the judge), in its order: 3.1 the loss, 3.2 the model and its
score, 3.3 the data, 3.4 training. Evaluation is in :mod:`rlhf_lessons.measure.evaluate`,
loading and building the preset's judge in :mod:`rlhf_lessons.course.artefacts`.

The model
---------
A GPT-2 backbone plus one linear "score" head that turns the hidden state of the
**last real token** into one number, the score ``r(prompt, answer)``. The weights use
the names of transformers' ``GPT2ForSequenceClassification`` (``transformer.*`` and
``score.weight``, ``num_labels=1``, ``pad_token_id`` set), so a saved judge loads with
``GPT2ForSequenceClassification.from_pretrained``.

What the judge reads
--------------------
``text = prompt + " " + answer``, tokenised, plus one EOS token, **left-truncated** to
the last ``max_len`` tokens (the bench workload does the same): HH-RLHF transcripts
share their whole history and differ only in the final answer, so cutting from the
left keeps the part that differs and the EOS. The score is read at the last position
whose attention mask is 1, i.e. at that EOS, whatever the padding side.

Note for plain-transformers users: ``GPT2ForSequenceClassification.forward`` pools at
the last token that is not ``pad_token_id``; with pad == eos that is the token BEFORE
our EOS. Use :func:`score` (or :func:`score_texts`) to get the judge's own score.

The loss (Bradley–Terry)
------------------------
``P(chosen beats rejected) = σ(r_c − r_r)`` and the loss is ``−log σ(r_c − r_r − m)``
with an optional margin ``m`` and an optional centring term
``center_coef · mean((r_c + r_r)²)`` that keeps scores near 0 (TRL's
``center_rewards_coefficient``).

Precision
---------
Training runs under bf16 autocast where the hardware does bf16 natively (CUDA, CPUs
with AVX512-BF16 or AMX), for speed. Scoring (:func:`score_pairs`,
:func:`score_texts`, so evaluation, PPO rewards and the widget) always runs in fp32:
it is cheap, and bf16 rounding flips pairs whose two scores are close, so a judge
would score a different accuracy on a machine with bf16 than on one without.

Data policy
-----------
- Pairs whose two encoded sides are identical carry no signal: they are dropped from
  training (the count is reported) and count as ties, i.e. wrong, in evaluation.
- Empty answers: refused with a clear error by default (a learner's own file).
  For HH-RLHF the 11 rows with an empty final answer are KEPT
  (``allow_empty=True``): an empty answer is a real rater choice between an answer
  and silence. Their count is reported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2ForSequenceClassification

from rlhf_lessons.core.batching import (
    PAD_MULTIPLE,
    length_buckets,
    position_ids,
    right_pad,
    tail_token_ids,
)
from rlhf_lessons.core.config import RewardConfig
from rlhf_lessons.core.lean_gpt2 import fuse_gelu, last_token_hidden
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.phases import phase, records_phases
from rlhf_lessons.core.utils import (
    adamw,
    autocast,
    linear_schedule,
    optimizer_step,
    progress,
    seed_everything,
)
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


# --------------------------------------------------------------------------
# 3.1 From "A beats B" to a loss
# --------------------------------------------------------------------------
def pairwise_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin=0.0,
                  center_coef: float = 0.0) -> torch.Tensor:
    """``mean(-log σ(r_c - r_r - margin)) + center_coef · mean((r_c + r_r)²)``.

    ``r_chosen, r_rejected: (batch,)``; ``margin``: a float or ``(batch,)``.
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen {tuple(r_chosen.shape)} and r_rejected "
                         f"{tuple(r_rejected.shape)} must have the same shape")
    loss = -F.logsigmoid(r_chosen - r_rejected - margin).mean()
    if center_coef:
        loss = loss + center_coef * ((r_chosen + r_rejected) ** 2).mean()
    return loss


def p_first_better(score_a: float, score_b: float) -> float:
    """Bradley–Terry probability that answer A beats answer B: σ(r_a − r_b)."""
    return float(torch.sigmoid(torch.tensor(score_a - score_b, dtype=torch.float64)))


# --------------------------------------------------------------------------
# 3.2 The model: a score at the last real token
# --------------------------------------------------------------------------
def build_reward_model(backbone, pad_token_id: int, seed: int = 0):
    """A ``GPT2ForSequenceClassification`` (num_labels=1) sharing ``backbone``'s weights.

    ``backbone``: a ``GPT2LMHeadModel`` (its LM head is dropped: the judge never
    predicts tokens). The head ``score.weight: (1, d)`` is drawn from
    N(0, std = 1/sqrt(d+1)) so initial scores are O(1). Dropout is off.
    """
    conf = backbone.config.to_dict()
    for k in ("architectures", "num_labels", "id2label", "label2id"):
        conf.pop(k, None)
    config = GPT2Config(**conf)
    config.num_labels = 1
    config.pad_token_id = pad_token_id
    for attr in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_first_dropout"):
        setattr(config, attr, 0.0)
    model = GPT2ForSequenceClassification(config)
    model.transformer.load_state_dict(backbone.transformer.state_dict())
    d = config.n_embd
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=g) / math.sqrt(d + 1))
    return model


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token per row: ``(batch, seq) -> (batch,)``.

    Computed from the attention mask, never from ``input_ids != pad``: with pad == eos
    the real EOS would be mistaken for padding (the classic "stuck at 50%" bug).
    Right for left and right padding.
    """
    seq = attention_mask.shape[1]
    pos = torch.arange(seq, device=attention_mask.device).expand_as(attention_mask)
    idx = torch.where(attention_mask.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values
    if (idx < 0).any():
        raise ValueError("a row of attention_mask is all zeros: an empty sequence has no score")
    return idx


def _is_right_padded(mask: torch.Tensor) -> bool:
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


# Inference (no autograd) scores at most this many token positions per forward.
SCORE_CHUNK_TOKENS = 8192


def score(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Judge scores ``(batch,)`` for ``input_ids, attention_mask: (batch, seq)``.

    Right-padded batches (what the trainer and the evaluation build) take the lean
    forward of :func:`rlhf_lessons.core.lean_gpt2.last_token_hidden`: the causal mask
    alone hides the padding, and only the last real position is computed through
    the final block. Left-padded rows get positions that count real tokens only
    (``cumsum(mask) - 1``), so they score the same as their right-padded twins.
    """
    rows = max(1, SCORE_CHUNK_TOKENS // max(1, input_ids.shape[1]))
    if not torch.is_grad_enabled() and input_ids.shape[0] > rows:
        # Nothing is kept for a backward pass, so scoring a big batch in slices
        # gives the same numbers with a fraction of the peak memory.
        return torch.cat([score(model, input_ids[i:i + rows], attention_mask[i:i + rows])
                          for i in range(0, input_ids.shape[0], rows)])
    idx = last_token_index(attention_mask)
    if _is_right_padded(attention_mask):
        h_last = last_token_hidden(model, input_ids, idx)  # (batch, d)
    else:
        h = model.transformer(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids(attention_mask)).last_hidden_state  # (batch, seq, d)
        h_last = h[torch.arange(h.shape[0], device=h.device), idx]
    return model.score(h_last).squeeze(-1).float()


def score_pairs(model, pairs: PairSet, device="cpu", batch_size: int = 32,
                pad_id: int = 0, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every pair's two sides: ``(r_chosen (n,), r_rejected (n,))``.

    One forward per batch for chosen and rejected together; pairs are length-sorted
    so batches pad little. Always in fp32 (see "Precision" above).
    """
    model.eval()
    order = np.argsort([max(len(a), len(b)) for a, b in zip(pairs.chosen_ids,
                                                            pairs.rejected_ids)])
    rc, rr = np.zeros(len(pairs)), np.zeros(len(pairs))
    chunks = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    it = progress(chunks, desc="scoring", leave=False) if show_progress else chunks
    n_pos = getattr(model.config, "n_positions", None)
    with torch.no_grad():
        for chunk in it:
            ids, mask = batch_tensors(pairs, list(chunk), pad_id, device, n_pos)
            r = score(model, ids, mask).cpu().numpy()
            rc[chunk], rr[chunk] = r[: len(chunk)], r[len(chunk):]
    return rc, rr


def score_texts(model, tok, prompts: list[str], answers: list[str], max_len: int = 256,
                device="cpu", batch_size: int = 32) -> np.ndarray:
    """The judge's score of each (prompt, answer): ``(n,)``, left-truncated to ``max_len``.

    In fp32, like :func:`score_pairs`.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    max_len = min(max_len, model.config.n_positions)  # never past the position table
    ids, _ = encode(tok, [judge_text(p, a) for p, a in zip(prompts, answers)], max_len)
    out = np.zeros(len(ids))
    model.eval()
    order = np.argsort([len(x) for x in ids])
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            chunk = order[i: i + batch_size]
            t, m = right_pad([ids[j] for j in chunk], tok.pad_token_id, PAD_MULTIPLE, max_len)
            out[chunk] = score(model, t.to(device), m.to(device)).cpu().numpy()
    return out


# --------------------------------------------------------------------------
# 3.3 The data the judge learns from
# --------------------------------------------------------------------------
def judge_text(prompt: str, answer: str) -> str:
    """What the judge reads (before EOS): ``prompt + " " + answer``."""
    return prompt + (" " + answer if answer else "")


def encode(tok, texts: list[str], max_len: int) -> tuple[list[list[int]], int]:
    """tokens(text) + [eos], keeping the LAST ``max_len`` tokens (left truncation).

    Returns (ids per text, number of texts that were truncated). A very long text costs
    no more than ``max_len`` tokens' worth (``batching.tail_token_ids``).
    """
    if max_len < 2:
        raise ValueError(f"max_len={max_len}: need at least 2 tokens (text + EOS)")
    eos = tok.eos_token_id
    out, n_cut = [], 0
    for ids in tail_token_ids(tok, list(texts), max_len):
        ids = list(ids) + [eos]
        if len(ids) > max_len:
            ids = ids[-max_len:]
            n_cut += 1
        out.append(ids)
    return out, n_cut


@dataclass
class PairSet:
    """Encoded preference pairs, plus what was dropped or kept and why.

    ``chosen_ids[i]``, ``rejected_ids[i]``: token lists (text + EOS, left-truncated).
    ``len_chosen``/``len_rejected``: answer lengths in characters (the length rules).
    """

    chosen_ids: list[list[int]]
    rejected_ids: list[list[int]]
    subset: list[str]
    prompt: list[str]
    chosen: list[str]
    rejected: list[str]
    len_chosen: np.ndarray
    len_rejected: np.ndarray
    identical: np.ndarray  # bool: both sides encode to the same tokens (a tie)
    n_identical_dropped: int = 0
    n_empty: int = 0
    n_truncated: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chosen_ids)

    def select(self, idx) -> PairSet:
        """The pairs at positions ``idx``, in that order (counts of dropped pairs are
        not carried over)."""
        ks = np.asarray(idx, dtype=int)
        pick = lambda xs: [xs[i] for i in ks]  # noqa: E731
        return dataclasses.replace(
            self, chosen_ids=pick(self.chosen_ids), rejected_ids=pick(self.rejected_ids),
            subset=pick(self.subset), prompt=pick(self.prompt), chosen=pick(self.chosen),
            rejected=pick(self.rejected), len_chosen=self.len_chosen[ks],
            len_rejected=self.len_rejected[ks], identical=self.identical[ks],
            n_identical_dropped=0, n_empty=0, n_truncated=0, notes=[])

    def head(self, n: int) -> PairSet:
        """The first ``n`` pairs (counts of dropped pairs are not carried over)."""
        return self.select(range(min(n, len(self))))

    def summary(self) -> str:
        return (f"{len(self)} pairs; {self.n_identical_dropped} identical pairs dropped, "
                f"{int(self.identical.sum())} identical kept as ties, {self.n_empty} with an "
                f"empty answer kept, {self.n_truncated} sides left-truncated")


def prepare_pairs(rows, tok, max_len: int, drop_identical: bool = True,
                  allow_empty: bool = False, name: str = "data") -> PairSet:
    """Encode preference rows for the judge.

    ``rows``: a ``datasets.Dataset`` or list of dicts with ``prompt``,
    ``chosen_response``, ``rejected_response`` (and optionally ``subset``, ``row``), as
    returned by ``data.load_all_hh`` and ``data.load_preference_file``.
    ``drop_identical=True`` for training (ties teach nothing), False for evaluation
    (ties are kept and count as wrong). ``allow_empty=False`` refuses an empty answer.
    """
    if hasattr(rows, "to_list"):
        rows = rows.to_list()
    rows = list(rows)
    if not rows:
        raise ValueError(f"{name}: no preference rows to prepare")
    need = ("prompt", "chosen_response", "rejected_response")
    n_empty = 0
    for i, r in enumerate(rows):
        missing = [k for k in need if k not in r]
        if missing:
            raise ValueError(f"{name}, row {r.get('row', i)}: missing column(s) {missing}; "
                             "load the data with rlhf_lessons.core.data (load_all_hh or "
                             "load_preference_file)")
        for side in ("chosen_response", "rejected_response"):
            if not isinstance(r[side], str):
                raise ValueError(f"{name}, row {r.get('row', i)}: {side} must be a string, "
                                 f"got {type(r[side]).__name__}")
            if not r[side].strip() and not allow_empty:
                raise ValueError(
                    f"{name}, row {r.get('row', i)}: empty {side.split('_')[0]} answer. A "
                    "judge cannot learn from an empty answer by accident; pass "
                    "allow_empty=True if an empty answer is a real choice in your data")
        if not (r["chosen_response"].strip() and r["rejected_response"].strip()):
            n_empty += 1
    c_ids, n1 = encode(tok, [judge_text(r["prompt"], r["chosen_response"]) for r in rows], max_len)
    r_ids, n2 = encode(tok, [judge_text(r["prompt"], r["rejected_response"]) for r in rows],
                       max_len)
    same = np.array([a == b for a, b in zip(c_ids, r_ids)], dtype=bool)
    keep = ~same if drop_identical else np.ones(len(rows), dtype=bool)
    ks = np.flatnonzero(keep)
    ps = PairSet(
        chosen_ids=[c_ids[i] for i in ks],
        rejected_ids=[r_ids[i] for i in ks],
        subset=[rows[i].get("subset", name) for i in ks],
        prompt=[rows[i]["prompt"] for i in ks],
        chosen=[rows[i]["chosen_response"] for i in ks],
        rejected=[rows[i]["rejected_response"] for i in ks],
        len_chosen=np.array([len(rows[i]["chosen_response"]) for i in ks]),
        len_rejected=np.array([len(rows[i]["rejected_response"]) for i in ks]),
        identical=same[ks],
        n_identical_dropped=int((~keep).sum()),
        n_empty=n_empty,
        n_truncated=n1 + n2,
    )
    return ps


def pairset_from_ids(chosen_ids, rejected_ids, subset: str = "pairs") -> PairSet:
    """A PairSet from ready token lists (e.g. the bench workload's own encoding)."""
    n = len(chosen_ids)
    lc = np.array([len(x) for x in chosen_ids])
    lr = np.array([len(x) for x in rejected_ids])
    same = np.array([a == b for a, b in zip(chosen_ids, rejected_ids)], dtype=bool)
    return PairSet([list(x) for x in chosen_ids], [list(x) for x in rejected_ids], [subset] * n,
                   [""] * n, [""] * n, [""] * n, lc, lr, same)


def batch_tensors(pairs: PairSet, idx: list[int], pad_id: int, device,
                   max_len: int | None = None):
    """Chosen then rejected of pairs ``idx``: ``(ids, mask)``, each ``(2·len(idx), L)``."""
    seqs = [pairs.chosen_ids[i] for i in idx] + [pairs.rejected_ids[i] for i in idx]
    ids, mask = right_pad(seqs, pad_id, PAD_MULTIPLE, max_len)
    return ids.to(device), mask.to(device)


def pair_buckets(pairs: PairSet, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of pair indices of similar length (the longer side), seeded order."""
    longest = [max(len(a), len(b)) for a, b in zip(pairs.chosen_ids, pairs.rejected_ids)]
    return length_buckets(longest, batch_size, seed)


# --------------------------------------------------------------------------
# 3.4 Training
# --------------------------------------------------------------------------
def _batch_stats(rc: torch.Tensor, rr: torch.Tensor) -> dict:
    both = torch.cat([rc, rr])
    return {
        "accuracy": float((rc > rr).float().mean()),
        "margin": float((rc - rr).mean()),
        "rewards/chosen_mean": float(rc.mean()),
        "rewards/rejected_mean": float(rr.mean()),
        "mean_reward": float(both.mean()),
        "min_reward": float(both.min()),
        "max_reward": float(both.max()),
    }


@reuse_freed_memory()
@records_phases
def train_reward_model(model, train: PairSet, reward_cfg: RewardConfig, device="cpu", seed: int = 0,
                       eval_pairs: PairSet | None = None, checkpoint: Path | None = None,
                       pad_id: int = 0, show_progress: bool = True, max_steps: int | None = None,
                       log_every: int = 1, save_every: int = SAVE_EVERY) -> TrainRun:
    """Train the judge with the Bradley–Terry loss, in place.

    - length-bucketed batches of ``reward_cfg.batch_size`` pairs, chosen and rejected in ONE
      forward of ``2·batch`` sequences;
    - AdamW (``reward_cfg.lr``, ``reward_cfg.weight_decay``), grad-norm clip
      ``reward_cfg.max_grad_norm``, linear lr decay to 0 over ``reward_cfg.epochs`` epochs
      (or ``reward_cfg.max_steps``);
    - bf16 autocast only where the hardware runs it natively;
    - every ``reward_cfg.eval_every`` steps: eval accuracy on ``eval_pairs``;
    - ``checkpoint``: the run's file (:mod:`rlhf_lessons.train.run`), saved every
      ``save_every`` steps and at the end, resumed from when its key matches.

    Returns a :class:`~rlhf_lessons.train.run.TrainRun`. Rows: step, learning_rate,
    elapsed_s, then TRL's names: loss, accuracy, margin, rewards/chosen_mean,
    rewards/rejected_mean, mean_reward, min_reward, max_reward, grad_norm, epoch;
    eval rows add eval_accuracy and eval_loss.
    """
    device = torch.device(device)
    if len(train) == 0:
        raise ValueError("no training pairs (after dropping identical ones)")
    seed_everything(seed)
    n_batches = math.ceil(len(train) / reward_cfg.batch_size)
    total = max_steps if max_steps is not None else (
        reward_cfg.max_steps or max(1, math.ceil(n_batches * reward_cfg.epochs)))
    model.to(device).train()
    fuse_gelu(model)  # for models that take the transformers forward
    n_pos = getattr(model.config, "n_positions", None)
    opt = adamw(model.parameters(), lr=reward_cfg.lr, weight_decay=reward_cfg.weight_decay)
    key = run_key(reward_cfg, seed=seed, n_train=len(train), total=total)
    back = resume_checkpoint(checkpoint, key, total, model=model, optimizer=opt,
                             what="judge", device=device)
    metrics, start = (back.metrics, back.step) if back else ([], 0)
    step = start
    epochs_of_batches: list[list[list[int]]] = []

    def batch_at(s: int) -> list[int]:
        ep, k = divmod(s, n_batches)
        while len(epochs_of_batches) <= ep:
            epochs_of_batches.append(pair_buckets(train, reward_cfg.batch_size,
                                                  seed + len(epochs_of_batches)))
        return epochs_of_batches[ep][k]

    bar = progress(total=total, initial=step, desc="training the judge",
                   disable=not show_progress)
    clock = Clock(metrics)
    while step < total:
        idx = batch_at(step)
        ids, mask = batch_tensors(train, idx, pad_id, device, n_pos)
        lr = reward_cfg.lr * linear_schedule(step, total)
        for g in opt.param_groups:
            g["lr"] = lr
        with phase("forward"):
            with autocast(device):
                r = score(model, ids, mask)
            r_c, r_r = r[: len(idx)], r[len(idx):]
            loss = pairwise_loss(r_c, r_r, reward_cfg.margin, reward_cfg.center_coef)
        gn = optimizer_step(loss, opt, model.parameters(), reward_cfg.max_grad_norm)
        step += 1
        if step % log_every == 0 or step == total:
            metrics.append(metric_row(step, lr, clock(), loss=loss.item(),
                                      **_batch_stats(r_c.detach(), r_r.detach()),
                                      grad_norm=float(gn), epoch=step / n_batches))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if reward_cfg.eval_every and (step % reward_cfg.eval_every == 0 or step == total):
            if eval_pairs is not None and len(eval_pairs):
                ev = held_out_accuracy(model, eval_pairs, device, pad_id=pad_id)
                metrics.append(metric_row(step, lr, clock(), eval_accuracy=ev["accuracy"],
                                          eval_loss=ev["loss"], epoch=step / n_batches))
                model.train()
        if should_save(step, total, save_every):
            save_checkpoint(checkpoint, key=key, step=step, total=total, model=model,
                            optimizer=opt, metrics=metrics)
    bar.close()
    model.eval()
    return finished(metrics, total, start)


def held_out_accuracy(model, pairs: PairSet, device="cpu", pad_id: int = 0,
                      batch_size: int = 32, show_progress: bool = False,
                      scores: tuple | None = None) -> dict:
    """Pairwise accuracy and loss on ``pairs``; identical pairs are ties and count
    as wrong. Returns ``{"accuracy", "loss", "n", "r_chosen", "r_rejected",
    "correct"}`` (scores and ``correct`` are (n,) arrays). Intervals and baselines:
    :func:`rlhf_lessons.measure.evaluate.judge_accuracy`.

    ``scores``: ``(r_chosen (n,), r_rejected (n,))`` already computed by ``model``
    (e.g. kept by :func:`rlhf_lessons.course.artefacts.judge_pair_scores`); then
    no forward pass runs."""
    if scores is None:
        r_chosen, r_rejected = score_pairs(model, pairs, device, batch_size, pad_id,
                                           show_progress)
    else:
        r_chosen, r_rejected = (np.asarray(s, np.float64) for s in scores)
        if r_chosen.shape != (len(pairs),) or r_rejected.shape != (len(pairs),):
            raise ValueError(f"scores: expected two arrays of shape ({len(pairs)},) for "
                             f"{len(pairs)} pairs, got {r_chosen.shape} and "
                             f"{r_rejected.shape}")
    correct = (r_chosen > r_rejected) & ~pairs.identical
    loss = float(-F.logsigmoid(torch.tensor(r_chosen - r_rejected)).mean())
    return {"accuracy": float(correct.mean()) if len(pairs) else float("nan"),
            "loss": loss, "n": len(pairs), "r_chosen": r_chosen,
            "r_rejected": r_rejected, "correct": correct}


