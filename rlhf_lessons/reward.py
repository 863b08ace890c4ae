"""The judge: a reward model trained on human preference pairs.

Taught in notebook 03 (the judge); used by notebooks 04 and 05 (PPO, reward hacking).

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
would score a different accuracy on a machine with bf16 than on one without (the
course judge: 0.587 scored in bf16, 0.590 in fp32, on the same 857 pairs).

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
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_lessons.config import LessonConfig, RewardConfig
from rlhf_lessons.lean_gpt2 import last_token_hidden
from rlhf_lessons.utils import (
    atomic_torch_save,
    autocast,
    output_dir,
    progress,
    say_once,
    seed_everything,
    use_bf16,
)

NOTEBOOK = "03_reward_model_the_judge"
NOTEBOOK_ONLY = ("demo_steps", "n_probe", "n_ref_samples")
SHIPPED_JUDGE_DIR = Path(__file__).resolve().parent.parent / "data" / "models" / "course-judge"


# --------------------------------------------------------------------------
# 3.1 The model: backbone + scalar head at the last real token
# --------------------------------------------------------------------------
def build_reward_model(backbone, pad_token_id: int, seed: int = 0):
    """A ``GPT2ForSequenceClassification`` (num_labels=1) sharing ``backbone``'s weights.

    ``backbone``: a ``GPT2LMHeadModel`` (its LM head is dropped: the judge never
    predicts tokens). The head ``score.weight: (1, d)`` is drawn from
    N(0, std = 1/sqrt(d+1)) so initial scores are O(1). Dropout is off.
    Taught in notebook 03.
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification

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
    Right for left and right padding. Taught in notebook 03.
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
    forward of :func:`rlhf_lessons.lean_gpt2.last_token_hidden`: the causal mask
    alone hides the padding, and only the last real position is computed through
    the final block. Left-padded rows get positions that count real tokens only
    (``cumsum(mask) - 1``), so they score the same as their right-padded twins.
    Taught in notebook 03.
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
        pos = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
        h = model.transformer(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=pos).last_hidden_state  # (batch, seq, d)
        h_last = h[torch.arange(h.shape[0], device=h.device), idx]
    return model.score(h_last).squeeze(-1).float()


# --------------------------------------------------------------------------
# 3.2 The Bradley–Terry loss
# --------------------------------------------------------------------------
def pairwise_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin=0.0,
                  center_coef: float = 0.0) -> torch.Tensor:
    """``mean(-log σ(r_c - r_r - margin)) + center_coef · mean((r_c + r_r)²)``.

    ``r_chosen, r_rejected: (batch,)``; ``margin``: a float or ``(batch,)``.
    Taught in notebook 03.
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
# Data: text, tokens, pairs
# --------------------------------------------------------------------------
def judge_text(prompt: str, answer: str) -> str:
    """What the judge reads (before EOS): ``prompt + " " + answer``."""
    return prompt + (" " + answer if answer else "")


def encode(tok, texts: list[str], max_len: int) -> tuple[list[list[int]], int]:
    """tokens(text) + [eos], keeping the LAST ``max_len`` tokens (left truncation).

    Returns (ids per text, number of texts that were truncated).
    """
    if max_len < 2:
        raise ValueError(f"max_len={max_len}: need at least 2 tokens (text + EOS)")
    eos = tok.eos_token_id
    out, n_cut = [], 0
    for ids in tok(list(texts), add_special_tokens=False)["input_ids"]:
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
    Taught in notebook 03.
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
                             "load the data with rlhf_lessons.data (load_all_hh or "
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


# Batch lengths are rounded up to a multiple of this. On a CPU every new tensor
# shape costs a one-off kernel set-up and keeps cached memory (bf16 especially):
# with 8 lengths instead of ~60, the bench workload trained 30% faster and its peak
# memory fell from 1.8 to 0.95 GB.
PAD_MULTIPLE = 32


def _pad_right(seqs: list[list[int]], pad_id: int, multiple: int = 1,
               max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists to the longest, rounded up to ``multiple`` (at most
    ``max_len``): ``(ids, mask)``, each ``(len(seqs), L)`` long."""
    L = max(len(s) for s in seqs)
    L = -(-L // multiple) * multiple
    if max_len is not None:
        L = max(min(L, max_len), max(len(s) for s in seqs))
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def length_bucketed_batches(pairs: PairSet, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of pair indices with similar lengths, in a seeded random order.

    Pairs are sorted by their longer side and cut into batches, so a batch pads to
    about its own length instead of the longest pair in the data; the ORDER of the
    batches is shuffled so training does not see short pairs first.
    """
    longest = np.array([max(len(a), len(b)) for a, b in zip(pairs.chosen_ids,
                                                             pairs.rejected_ids)])
    order = np.argsort(longest, kind="stable")
    batches = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    return [batches[i] for i in rng.permutation(len(batches))]


def _batch_tensors(pairs: PairSet, idx: list[int], pad_id: int, device,
                   max_len: int | None = None):
    """Chosen then rejected of pairs ``idx``: ``(ids, mask)``, each ``(2·len(idx), L)``."""
    seqs = [pairs.chosen_ids[i] for i in idx] + [pairs.rejected_ids[i] for i in idx]
    ids, mask = _pad_right(seqs, pad_id, PAD_MULTIPLE, max_len)
    return ids.to(device), mask.to(device)


def score_pairs(model, pairs: PairSet, device="cpu", batch_size: int = 32,
                pad_id: int = 0, show_progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every pair's two sides: ``(r_chosen (n,), r_rejected (n,))``.

    One forward per batch for chosen and rejected together; pairs are length-sorted
    so batches pad little. Always in fp32 (see "Precision" above). Taught in notebook 03.
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
            ids, mask = _batch_tensors(pairs, list(chunk), pad_id, device, n_pos)
            r = score(model, ids, mask).cpu().numpy()
            rc[chunk], rr[chunk] = r[: len(chunk)], r[len(chunk):]
    return rc, rr


def score_texts(model, tok, prompts: list[str], answers: list[str], max_len: int = 256,
                device="cpu", batch_size: int = 32) -> np.ndarray:
    """The judge's score of each (prompt, answer): ``(n,)``, left-truncated to ``max_len``.

    In fp32, like :func:`score_pairs`. Taught in notebook 03.
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
            t, m = _pad_right([ids[j] for j in chunk], tok.pad_token_id, PAD_MULTIPLE, max_len)
            out[chunk] = score(model, t.to(device), m.to(device)).cpu().numpy()
    return out


# --------------------------------------------------------------------------
# 3.3 Training
# --------------------------------------------------------------------------
def fuse_gelu(model):
    """Swap GPT-2's Python ``gelu_new`` for torch's fused tanh-GELU (the same function).

    ``gelu_new`` is 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) written as 7 tensor ops,
    each saving an activation for backward; ``nn.GELU(approximate="tanh")`` computes the
    same formula in one kernel: about 17% faster and far less memory. The weights
    (and so ``save_pretrained``) are unchanged.
    """
    for block in getattr(getattr(model, "transformer", model), "h", []):
        act = getattr(block.mlp, "act", None)
        if type(act).__name__ in ("NewGELUActivation", "GELUTanh", "PytorchGELUTanh"):
            block.mlp.act = torch.nn.GELU(approximate="tanh")
    return model


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


def train_reward_model(model, train: PairSet, rc: RewardConfig, device="cpu", seed: int = 0,
                       eval_pairs: PairSet | None = None, checkpoint: Path | None = None,
                       pad_id: int = 0, show_progress: bool = True, max_steps: int | None = None,
                       log_every: int = 1, checkpoint_every: int = 0):
    """Train the judge with the Bradley–Terry loss; returns metrics as a DataFrame.

    - length-bucketed batches of ``rc.batch_size`` pairs, chosen and rejected in ONE
      forward of ``2·batch`` sequences;
    - AdamW (lr ``rc.lr``, no weight decay), grad-norm clip ``rc.max_grad_norm``, linear
      lr decay to 0 over ``rc.epochs`` epochs (or ``rc.max_steps``);
    - bf16 autocast only where the hardware runs it natively;
    - every ``rc.eval_every`` steps: eval accuracy on ``eval_pairs``;
    - every ``checkpoint_every`` steps (default: ``rc.eval_every``), if ``checkpoint``
      is set, an atomic checkpoint there; a rerun resumes from it.

    Metric keys follow TRL: loss, accuracy, margin, rewards/chosen_mean,
    rewards/rejected_mean, mean_reward, min_reward, max_reward, learning_rate,
    grad_norm; eval rows add eval_accuracy and eval_loss. Taught in notebook 03.
    """
    device = torch.device(device)
    if len(train) == 0:
        raise ValueError("no training pairs (after dropping identical ones)")
    seed_everything(seed)
    n_batches = math.ceil(len(train) / rc.batch_size)
    total = max_steps if max_steps is not None else (
        rc.max_steps or max(1, math.ceil(n_batches * rc.epochs)))
    model.to(device).train()
    fuse_gelu(model)  # for models that take the transformers forward
    n_pos = getattr(model.config, "n_positions", None)
    opt = torch.optim.AdamW(model.parameters(), lr=rc.lr, weight_decay=0.0,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    metrics: list[dict] = []
    step = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("total") == total and state.get("n_train") == len(train):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            metrics, step = state["metrics"], state["step"]
            say_once(f"↻ resuming the judge's training at step {step}/{total} from "
                     f"{Path(checkpoint).name}")
    epochs_of_batches: list[list[list[int]]] = []

    def batch_at(s: int) -> list[int]:
        ep, k = divmod(s, n_batches)
        while len(epochs_of_batches) <= ep:
            epochs_of_batches.append(length_bucketed_batches(train, rc.batch_size,
                                                             seed + len(epochs_of_batches)))
        return epochs_of_batches[ep][k]

    bar = progress(total=total, initial=step, desc="training the judge",
                   disable=not show_progress)
    t0 = time.perf_counter() - (metrics[-1]["elapsed_s"] if metrics else 0.0)
    while step < total:
        idx = batch_at(step)
        ids, mask = _batch_tensors(train, idx, pad_id, device, n_pos)
        with autocast(device):
            r = score(model, ids, mask)
        r_c, r_r = r[: len(idx)], r[len(idx):]
        loss = pairwise_loss(r_c, r_r, rc.margin, rc.center_coef)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), rc.max_grad_norm)
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        step += 1
        if step % log_every == 0 or step == total:
            row = {"step": step, "epoch": step / n_batches, "loss": loss.item(),
                   **_batch_stats(r_c.detach(), r_r.detach()), "learning_rate": lr,
                   "grad_norm": float(gn), "elapsed_s": time.perf_counter() - t0}
            metrics.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if rc.eval_every and (step % rc.eval_every == 0 or step == total):
            if eval_pairs is not None and len(eval_pairs):
                ev = evaluate(model, eval_pairs, device, pad_id=pad_id)
                metrics.append({"step": step, "epoch": step / n_batches,
                                "eval_accuracy": ev["accuracy"], "eval_loss": ev["loss"],
                                "elapsed_s": time.perf_counter() - t0})
                model.train()
        ck_every = checkpoint_every or rc.eval_every
        if ck_every and (step % ck_every == 0 or step == total):
            if checkpoint is not None:
                atomic_torch_save({"model": model.state_dict(), "opt": opt.state_dict(),
                                   "sched": sched.state_dict(), "step": step,
                                   "metrics": metrics, "total": total, "n_train": len(train)},
                                  Path(checkpoint))
    bar.close()
    model.eval()
    import pandas as pd  # only for the returned table: not held in memory while training

    return pd.DataFrame(metrics)


# --------------------------------------------------------------------------
# 3.4 Evaluation: accuracy with a CI, beside the length rules
# --------------------------------------------------------------------------
def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n. Taught in notebook 03."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def evaluate(model, pairs: PairSet, device="cpu", pad_id: int = 0, batch_size: int = 32,
             show_progress: bool = False) -> dict:
    """Held-out accuracy and loss; identical pairs are ties and count as wrong.

    Returns ``{"accuracy", "loss", "ci95", "n", "r_chosen", "r_rejected", "correct"}``.
    """
    rc, rr = score_pairs(model, pairs, device, batch_size, pad_id, show_progress)
    correct = (rc > rr) & ~pairs.identical
    loss = float(-F.logsigmoid(torch.tensor(rc - rr)).mean())
    k = int(correct.sum())
    return {"accuracy": k / len(pairs), "loss": loss, "ci95": wilson_ci(k, len(pairs)),
            "n": len(pairs), "r_chosen": rc, "r_rejected": rr, "correct": correct}


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
    (:func:`length_judge_directions`). Taught in notebook 03.
    """
    import pandas as pd

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


def most_wrong(pairs: PairSet, ev: dict, k: int = 5, width: int = 160):
    """The k eval pairs where the judge most prefers the REJECTED answer, as text."""
    import pandas as pd

    gap = ev["r_chosen"] - ev["r_rejected"]
    order = np.argsort(gap)[:k]

    def cut(t):
        t = " ".join(t.split())
        return t if len(t) <= width else t[: width - 1] + "…"

    return pd.DataFrame([{"subset": pairs.subset[i], "r_c - r_r": round(float(gap[i]), 2),
                          "prompt (end)": cut(pairs.prompt[i][-width:]),
                          "chosen": cut(pairs.chosen[i]), "rejected": cut(pairs.rejected[i])}
                         for i in order])


# --------------------------------------------------------------------------
# 3.5 What the judge pays for, and a normaliser for PPO
# --------------------------------------------------------------------------
def judge_compare(model, tok, prompt: str, answer_a: str, answer_b: str,
                  max_len: int = 256, device="cpu") -> dict:
    """The judge widget's pure function: both scores and P(A is better) = σ(r_a − r_b).

    Taught in notebook 03.
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


def make_judge_widget(model, tok, max_len: int = 256, device="cpu",
                      prompt: str = "How do I boil an egg?",
                      answer_a: str = "Put the egg in boiling water for about 9 minutes, "
                                      "then cool it in cold water.",
                      answer_b: str = "I don't know."):
    """A thin ipywidgets shell over :func:`judge_compare` (called once headless)."""
    import ipywidgets as W
    from IPython.display import display

    box_p = W.Textarea(value=prompt, description="prompt", layout=W.Layout(width="95%"))
    box_a = W.Textarea(value=answer_a, description="answer A", layout=W.Layout(width="95%"))
    box_b = W.Textarea(value=answer_b, description="answer B", layout=W.Layout(width="95%"))
    btn = W.Button(description="Judge")
    out = W.Output()

    def show(_=None):
        out.clear_output()
        with out:
            try:
                r = judge_compare(model, tok, box_p.value, box_a.value, box_b.value,
                                  max_len, device)
                print(f"score A = {r['score_a']:+.3f}   score B = {r['score_b']:+.3f}   "
                      f"P(A better) = {r['p_a_better']:.3f}")
            except ValueError as err:
                print(f"⚠️ {err}")

    btn.on_click(show)
    ui = W.VBox([box_p, box_a, box_b, btn, out])
    display(ui)
    show()
    return ui


def rewrite_effects(model, tok, prompts: list[str], answers: list[str], max_len: int = 256,
                    device="cpu"):
    """Score change when each answer is rewritten (hedged, confident, shorter, longer).

    Returns a DataFrame, one row per rewrite: mean Δscore (rewrite − original), the
    fraction of answers whose score went up, and the mean change in characters.
    Only answers a rewrite actually changes are counted for it. Taught in notebook 03.
    """
    import pandas as pd

    from rlhf_lessons.rewrites import REWRITES

    base = score_texts(model, tok, prompts, answers, max_len, device)
    rows = []
    for name, fn in REWRITES.items():
        new = [fn(a) for a in answers]
        changed = np.array([n != a.strip() for n, a in zip(new, answers)])
        if not changed.any():
            continue
        idx = np.flatnonzero(changed)
        s = score_texts(model, tok, [prompts[i] for i in idx], [new[i] for i in idx],
                        max_len, device)
        d = s - base[idx]
        rows.append({"rewrite": name, "n": len(idx), "mean Δscore": float(d.mean()),
                     "share up": float((d > 0).mean()),
                     "mean Δchars": float(np.mean([len(new[i]) - len(answers[i].strip())
                                                   for i in idx]))})
    return pd.DataFrame(rows).set_index("rewrite")


@dataclass(frozen=True)
class RewardNorm:
    """``(score - mean) / std``: mean 0, std 1 on reference-policy samples."""

    mean: float
    std: float

    def __call__(self, scores):
        return (scores - self.mean) / self.std


def fit_reward_norm(scores) -> RewardNorm:
    """Normaliser from judge scores of reference-policy samples (used by PPO, nb 04).

    ``scores: (n,)``, n ≥ 2. Taught in notebook 03.
    """
    s = np.asarray(scores if not isinstance(scores, torch.Tensor) else scores.cpu(),
                   dtype=np.float64).reshape(-1)
    if s.size < 2:
        raise ValueError(f"need at least 2 scores to normalise, got {s.size}")
    std = float(s.std())
    if not std > 0:
        raise ValueError("all scores are equal: std is 0, cannot normalise")
    return RewardNorm(float(s.mean()), std)


# --------------------------------------------------------------------------
# Building, saving, loading the judge for a preset
# --------------------------------------------------------------------------
def judge_key(cfg: LessonConfig) -> str:
    """Short hash of the settings that make the judge (preset, seed, model, reward).

    The notebook-only sizes (demo_steps, n_probe, n_ref_samples) do not change the
    judge, so they are left out of the key.
    """
    import hashlib

    rw = dataclasses.asdict(cfg.reward)
    for k in NOTEBOOK_ONLY:
        rw.pop(k, None)
    blob = {"preset": cfg.preset, "seed": cfg.seed, "model": dataclasses.asdict(cfg.model),
            "reward": rw}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:8]


def judge_dir(cfg: LessonConfig) -> Path:
    return output_dir(NOTEBOOK, cfg) / f"judge-{judge_key(cfg)}"


def save_judge(model, tok, path: Path, card: dict | None = None, fp16: bool = False) -> Path:
    """``save_pretrained`` the judge + tokenizer (+ ``training.json``), atomically."""
    import shutil
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    m = model
    if fp16:
        import copy

        m = copy.deepcopy(model).to(torch.float16)
    m.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    if card is not None:
        (tmp / "training.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def load_saved_judge(path: Path, device="cpu"):
    """(model, tokenizer, card) from a :func:`save_judge` folder, fp32, eval mode."""
    from transformers import GPT2ForSequenceClassification

    from rlhf_lessons.models import load_tokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: no saved judge here (config.json missing)")
    model = GPT2ForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
    tok = load_tokenizer(path, padding_side="right")
    card_path = path / "training.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return model.to(device).eval(), tok, card


def hh_pairs(cfg: LessonConfig, tok, split: str) -> PairSet:
    """HH-RLHF (all 4 subsets) of ``split``, prepared for the judge.

    Train drops identical pairs; eval keeps them as ties. Empty answers are kept.
    """
    from rlhf_lessons.data import load_all_hh

    ds = load_all_hh(split, source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    return prepare_pairs(ds, tok, cfg.reward.max_len, drop_identical=(split == "train"),
                         allow_empty=True, name=f"HH-RLHF {split}")


def build_judge(cfg: LessonConfig, device="cpu", show_progress: bool = True,
                checkpoint: bool = True):
    """Train the judge of ``cfg`` from its backbone; returns (model, tok, card, metrics)."""
    from rlhf_lessons.models import load_policy

    backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    model = build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed)
    del backbone
    train = hh_pairs(cfg, tok, "train")
    ck = (output_dir(NOTEBOOK, cfg) / f"judge-{judge_key(cfg)}.ckpt.pt") if checkpoint else None
    t0 = time.perf_counter()
    metrics = train_reward_model(model, train, cfg.reward, device, seed=cfg.seed,
                                 checkpoint=ck, pad_id=tok.pad_token_id,
                                 show_progress=show_progress, checkpoint_every=20)
    wall = time.perf_counter() - t0
    card = {"key": judge_key(cfg), "preset": cfg.preset, "backbone": cfg.reward.backbone,
            "reward": dataclasses.asdict(cfg.reward), "model": dataclasses.asdict(cfg.model),
            "train_pairs": len(train), "train_summary": train.summary(),
            "steps": int(metrics["step"].max()), "train_wall_s": round(wall, 1),
            "precision": "bf16 autocast" if use_bf16(torch.device(device)) else "fp32",
            "final_train_loss_avg50": float(metrics["loss"].dropna().tail(50).mean())}
    return model, tok, card, metrics


def load_training_metrics(cfg: LessonConfig):
    """The full judge's training metrics (DataFrame), or None if none were kept."""
    import pandas as pd

    for folder in (judge_dir(cfg), SHIPPED_JUDGE_DIR):
        f = folder / "metrics.csv"
        card = folder / "training.json"
        if f.exists() and card.exists() and json.loads(card.read_text()).get("key") == \
                judge_key(cfg):
            return pd.read_csv(f)
    return None


def load_judge(cfg: LessonConfig, device="cpu", verbose: bool = True):
    """The judge for a preset: ``(model, tokenizer, card)``. Says where it came from.

    1. ``outputs/03_.../judge-<key>/`` if a judge with the same settings was made;
    2. else the shipped ``data/models/course-judge`` if its key matches (default preset);
    3. else it is trained now (fast preset: seconds, a tiny model) with a progress
       bar and saved under 1. Taught in notebook 03; used by notebooks 04 and 05.
    """
    key = judge_key(cfg)
    here = judge_dir(cfg)
    if (here / "config.json").exists():
        model, tok, card = load_saved_judge(here, device)
        if verbose:
            say_once(f"⚖️ judge: loaded the one made earlier with these settings (key {key})")
        return model, tok, card
    shipped = SHIPPED_JUDGE_DIR / "training.json"
    if shipped.exists() and json.loads(shipped.read_text()).get("key") == key:
        model, tok, card = load_saved_judge(SHIPPED_JUDGE_DIR, device)
        if verbose:
            say_once(f"⚖️ judge: the course's shipped judge (key {key}, trained for "
                     f"{card.get('steps')} steps)")
        return model, tok, card
    if verbose:
        say_once(f"⚖️ judge: none saved for these settings (key {key}); training it now")
    model, tok, card, metrics = build_judge(cfg, device)
    save_judge(model, tok, here, card)
    metrics.to_csv(here / "metrics.csv", index=False)
    return model.to(device).eval(), tok, card


def _score_for_card(model, tok, cfg: LessonConfig, card: dict, device):
    """Held-out figures of ``model`` into ``card``; returns the accuracy table."""
    train = hh_pairs(cfg, tok, "train")
    ev_pairs = hh_pairs(cfg, tok, "eval")
    ev = evaluate(model, ev_pairs, device, tok.pad_token_id, show_progress=True)
    table = accuracy_table(ev_pairs, ev["correct"], length_judge_directions(train))
    card.update({"eval_pairs": len(ev_pairs), "eval_accuracy": round(ev["accuracy"], 4),
                 "eval_accuracy_ci95": [round(x, 4) for x in ev["ci95"]],
                 "eval_accuracy_by_subset": {s: round(float(v), 4) for s, v in
                                             table["judge"].items() if s != "overall"},
                 "length_rule_accuracy": round(float(table.loc["overall", "length_judge"]), 4)})
    return table


def main(argv=None) -> None:
    """``python -m rlhf_lessons.reward [--ship | --recard]``: train (or resume) and
    evaluate the judge.

    ``--ship`` also writes the fp16 copy to ``data/models/course-judge`` and scores
    THAT copy for its MODEL_CARD.md (wall time, steps, accuracy). ``--recard`` trains
    nothing: it re-scores the shipped judge and rewrites its card.
    """
    import argparse

    from rlhf_lessons.utils import get_device

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--recard", action="store_true")
    ap.add_argument("--backbone", choices=("pretrained", "sft"), default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--epochs", type=float, default=None)
    o = ap.parse_args(argv)
    cfg = LessonConfig.from_env()
    over = {k: v for k, v in (("backbone", o.backbone), ("lr", o.lr), ("epochs", o.epochs))
            if v is not None}
    if over:
        cfg = dataclasses.replace(cfg, reward=dataclasses.replace(cfg.reward, **over))
    device = get_device(cfg)
    if o.recard:
        model, tok, card = load_saved_judge(SHIPPED_JUDGE_DIR, device)
        table = _score_for_card(model, tok, cfg, card, device)
        _write_shipped_card(card, table)
        print(table.round(3).to_string())
        return
    print(f"judge key {judge_key(cfg)}; reward config {dataclasses.asdict(cfg.reward)}")
    model, tok, card, metrics = build_judge(cfg, device)
    here = judge_dir(cfg)
    save_judge(model, tok, here, card)
    metrics.to_csv(here / "metrics.csv", index=False)
    table = _score_for_card(model, tok, cfg, card, device)
    print(table.round(3).to_string())
    save_judge(model, tok, here, card)
    print(json.dumps({k: card[k] for k in ("key", "steps", "train_wall_s", "eval_accuracy",
                                           "eval_accuracy_ci95", "length_rule_accuracy")}))
    if o.ship:
        save_judge(model, tok, SHIPPED_JUDGE_DIR, card, fp16=True)
        shipped, _, _ = load_saved_judge(SHIPPED_JUDGE_DIR, device)
        table = _score_for_card(shipped, tok, cfg, card, device)  # the fp16 weights
        _write_shipped_card(card, table)
        cols = [c for c in ("step", "epoch", "loss", "accuracy", "margin", "learning_rate",
                            "eval_accuracy") if c in metrics]
        metrics[cols].round(5).to_csv(SHIPPED_JUDGE_DIR / "metrics.csv", index=False)
        print(f"shipped to {SHIPPED_JUDGE_DIR}")


def _write_shipped_card(card: dict, table) -> None:
    (SHIPPED_JUDGE_DIR / "training.json").write_text(
        json.dumps(card, indent=2, default=str) + "\n")
    (SHIPPED_JUDGE_DIR / "MODEL_CARD.md").write_text(_model_card(card, table))


def _model_card(card: dict, table) -> str:
    return f"""# course-judge: the course's reward model (notebook 03)

A GPT-2 reward model ("judge"): the course's own {card['model']['n_layer']}-layer,
{card['model']['n_embd']}-wide GPT-2 ({card['backbone']} backbone) plus a linear score head
read at the last real token (the EOS after `prompt + " " + answer`, left-truncated to
{card['reward']['max_len']} tokens). Weights in fp16 safetensors, with the names of
transformers' `GPT2ForSequenceClassification` (num_labels=1, pad_token_id=0). Load it with
`rlhf_lessons.reward.load_judge(cfg)` and score with `rlhf_lessons.reward.score` (the plain
transformers `.logits` pool one token earlier, at the last non-pad token).

- Made by: `python -m rlhf_lessons.reward --ship` (resumable), settings key `{card['key']}`.
- Data: the TRAIN split (row % 10 != 0) of the four bundled Anthropic HH-RLHF test files
  (MIT licence): {card['train_summary']}.
- Training: {card['steps']} steps, batch {card['reward']['batch_size']} pairs,
  lr {card['reward']['lr']} linear to 0, {card['reward']['epochs']} epoch(s),
  {card['precision']}, {card['train_wall_s']} s wall on this machine's CPU.
- Held-out (eval split, {card['eval_pairs']} pairs, identical pairs count as wrong; the
  shipped fp16 weights, scored in fp32):
  accuracy {card['eval_accuracy']} (95% Wilson CI {card['eval_accuracy_ci95']});
  the length-only judge (direction per subset chosen on train) scores
  {card['length_rule_accuracy']}.

```
{table.round(3).to_string()}
```

Limits: a small model trained on about 7.7k pairs; it leans on surface features
(see notebook 03, "what the judge rewards"). Do not use it outside this course.
"""


if __name__ == "__main__":
    main()
