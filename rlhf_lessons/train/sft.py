"""Supervised fine-tuning (SFT): teach the pretrained GPT-2 to answer, then stop.

Taught in notebook 02 (2.7 SFT, 2.8 before and after). The full run that made the
shipped SFT model is ``python scripts/ship.py sft`` (resumable).

Data: Dolly when the Hub can be reached (instruction -> response), and offline the
CHOSEN answers of the HH-RLHF train split (conversation so far -> chosen answer).
Each example is ``prompt tokens + answer tokens + EOS``; the loss counts the answer
tokens only (the prompt's labels are -100), so the model learns to answer rather than
to write the user's side of the conversation. The EOS teaches it to stop.

Only answers that end within ``cfg.sft.max_answer_tokens`` tokens are used (about half
of the HH-RLHF chosen answers at 64): the policy must learn to finish inside the short
budgets that generation and PPO give it, and it imitates the lengths it is shown.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from rlhf_lessons.core.batching import length_buckets, right_pad, tail_token_ids
from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.data import load_all_hh, load_dolly
from rlhf_lessons.core.generation import generate
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.models import n_params
from rlhf_lessons.core.utils import (
    adamw,
    autocast,
    get_device,
    linear_schedule,
    optimizer_step,
    precision_name,
    progress,
    seed_everything,
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

IGNORE = -100  # label value that cross_entropy skips


# --------------------------------------------------------------------------
# 2.7 SFT: learn to answer, then stop
# --------------------------------------------------------------------------
def dolly_to_prompt(instruction: str, context: str = "") -> str:
    """Dolly's fields in the HH conversation format the course model knows."""
    body = instruction.strip() if not context.strip() else f"{instruction.strip()}\n\n{context.strip()}"
    return f"\n\nHuman: {body}\n\nAssistant:"


def sft_pairs(cfg: LessonConfig, split: str = "train") -> tuple[list[tuple[str, str]], str]:
    """(prompt, answer) pairs for SFT and where they came from.

    Dolly (train only; it has no eval split here) when it can be loaded, else the
    chosen answers of HH-RLHF. Empty answers are dropped (nothing to imitate) and
    counted in the printed line.
    """
    if cfg.source != "local" and split == "train":
        dolly = load_dolly(source=cfg.source)
        if dolly is not None:
            pairs = [(dolly_to_prompt(r["instruction"], r["context"]), r["response"].strip())
                     for r in dolly]
            return [p for p in pairs if p[1]], "databricks-dolly-15k"
    ds = load_all_hh(split, source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    pairs = list(zip(ds["prompt"], ds["chosen_response"]))
    kept = [p for p in pairs if p[1].strip()]
    if len(kept) < len(pairs):
        print(f"SFT data: dropped {len(pairs) - len(kept)} of {len(pairs)} rows whose "
              "chosen answer is empty (nothing to imitate)")
    return kept, f"HH-RLHF chosen answers ({split} split)"


def encode_example(tokenizer, prompt: str, answer: str, max_len: int) -> dict:
    """Token ids and labels for one example.

    ``input_ids = prompt + " " + answer + EOS``; ``labels`` are -100 on the prompt.
    Too long: the answer keeps at most ``max_len - 16`` tokens (and loses its EOS,
    since it did not end), then the prompt is cut from the LEFT to fit.
    """
    eos = tokenizer.eos_token_id
    (p_ids,) = tail_token_ids(tokenizer, [prompt], max_len)  # only its end is kept
    a_ids = tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"] + [eos]
    if len(a_ids) > max_len - 16:
        a_ids = a_ids[: max_len - 16]
    p_ids = p_ids[-(max_len - len(a_ids)):]
    return {"input_ids": p_ids + a_ids, "labels": [IGNORE] * len(p_ids) + a_ids,
            "n_prompt": len(p_ids)}


def short_answer_examples(examples: list[dict], max_answer_tokens: int,
                          verbose: bool = True) -> list[dict]:
    """The examples whose answer ends (EOS included) within ``max_answer_tokens``.

    A model that imitates 200-token answers cannot stop inside the 32-64 tokens that
    generation and PPO give it, so SFT trains, and is scored, on answers that fit.
    ``max_answer_tokens=0`` keeps every example.
    """
    if not max_answer_tokens:
        return examples
    short = [e for e in examples if len(e["input_ids"]) - e["n_prompt"] <= max_answer_tokens]
    if verbose:
        print(f"SFT data: kept {len(short):,} of {len(examples):,} examples whose answer ends "
              f"within {max_answer_tokens} tokens (EOS included)")
    return short


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-pad a batch. input_ids, attention_mask, labels: (B, T); labels are -100
    on the padding as well as on the prompt."""
    ids, mask = right_pad([e["input_ids"] for e in examples], pad_id)
    labels, _ = right_pad([e["labels"] for e in examples], IGNORE)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens only.

    logits: (B, T, V); labels: (B, T) with -100 on prompt and padding. Position t
    predicts token t+1, so logits drop their last step and labels their first.
    """
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
    )


def example_buckets(examples: list[dict], batch_size: int, seed: int) -> list[list[dict]]:
    """Batches of examples of similar length (less padding), in a seeded order."""
    lengths = [len(e["input_ids"]) for e in examples]
    return [[examples[i] for i in b] for b in length_buckets(lengths, batch_size, seed)]


@reuse_freed_memory()
def train_sft(cfg: LessonConfig, model, tokenizer, run_dir: Path,
              max_steps: int | None = None, show_progress: bool = True,
              save_every: int = 50) -> TrainRun:
    """Fine-tune ``model`` (the pretrained policy) on SFT pairs, in place.

    Resumes from ``run_dir/checkpoint.pt`` when it holds a run of the same key
    (see :func:`rlhf_lessons.course.artefacts.sft_run_dir`). Returns a
    :class:`~rlhf_lessons.train.run.TrainRun` (rows: step, learning_rate,
    elapsed_s, loss; ``extra``: ``figures`` and ``run_dir``).
    """
    seed_everything(cfg.seed)
    device = get_device(cfg)
    sc = cfg.sft
    model.to(device).train()
    pairs, origin = sft_pairs(cfg, "train")
    examples = short_answer_examples(
        [encode_example(tokenizer, p, a, sc.max_len) for p, a in pairs], sc.max_answer_tokens)
    steps_per_epoch = math.ceil(len(examples) / sc.batch_size)
    total = max_steps or sc.max_steps or max(1, int(sc.epochs * steps_per_epoch))
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    opt = adamw(model.parameters(), lr=sc.lr, weight_decay=sc.weight_decay)
    # The lr schedule depends on the total, the batches on the data and the seed.
    key = run_key(sc, model=dataclasses.asdict(cfg.model), seed=cfg.seed, total=total,
                  examples=len(examples), data=origin)
    back = resume_checkpoint(ckpt, key, total, model=model, optimizer=opt, what="SFT",
                             device=device)
    metrics, start = (back.metrics, back.step) if back else ([], 0)
    step = start
    print(f"SFT on {len(examples):,} examples from {origin}; {total} steps of "
          f"{sc.batch_size}; {precision_name(device)}")
    bar = progress(total=total, initial=step, desc="SFT", disable=not show_progress)
    clock = Clock(metrics)
    epoch = step // steps_per_epoch
    batches = example_buckets(examples, sc.batch_size, cfg.seed + epoch)
    while step < total:
        if step // steps_per_epoch != epoch:
            epoch = step // steps_per_epoch
            batches = example_buckets(examples, sc.batch_size, cfg.seed + epoch)
        batch = collate(batches[step % steps_per_epoch], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        lr = sc.lr * linear_schedule(step, total, sc.warmup_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast(device):
            logits = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).logits
        loss = sft_loss(logits, batch["labels"])
        gn = optimizer_step(loss, opt, model.parameters(), sc.max_grad_norm)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        metrics.append(metric_row(step, lr, clock(), loss=loss.item(), grad_norm=gn))
        if should_save(step, total, save_every):
            save_checkpoint(ckpt, key=key, step=step, total=total, model=model,
                            optimizer=opt, metrics=metrics)
    bar.close()
    model.eval()
    figures = {"steps": step, "examples": len(examples), "data": origin,
               "wall_s": round(clock(), 1), "n_params": n_params(model),
               "precision": precision_name(device)}
    return finished(metrics, total, start, figures=figures, run_dir=run_dir)


# --------------------------------------------------------------------------
# 2.8 Before and after SFT
# --------------------------------------------------------------------------
@torch.no_grad()
def answer_loss(model, examples: list[dict], pad_id: int, device, batch_size: int = 16) -> float:
    """Mean loss (nats) per answer token over ``examples``: the SFT objective, held out."""
    model.eval()
    total, count = 0.0, 0
    for batch in example_buckets(examples, batch_size, seed=0):
        b = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
        with autocast(device):
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        n = int((b["labels"][:, 1:] != IGNORE).sum())
        total += sft_loss(logits, b["labels"]).item() * n
        count += n
    return total / max(count, 1)


@torch.no_grad()
def eos_rate(model, tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 0,
             temperature: float = 0.7) -> tuple[float, list[dict]]:
    """Fraction of prompts whose sampled answer ends with EOS within the budget."""
    out = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                   temperature=temperature, seed=seed)
    return float(out.finished.float().mean()), out.rows()


def evaluate_sft(cfg: LessonConfig, model, tokenizer, n_prompts: int | None = None) -> dict:
    """Held-out answer-token loss/perplexity and the EOS rate on eval prompts.

    The perplexity is scored on eval answers of the kind SFT trains on (ending within
    ``cfg.sft.max_answer_tokens``); the EOS rate on evenly spaced eval prompts.
    """
    device = next(model.parameters()).device
    pairs, _ = sft_pairs(dataclasses.replace(cfg, source="local"), "eval")
    examples = short_answer_examples(
        [encode_example(tokenizer, p, a, cfg.sft.max_len) for p, a in pairs],
        cfg.sft.max_answer_tokens, verbose=False)
    loss = answer_loss(model, examples, tokenizer.pad_token_id, device)
    n = n_prompts or cfg.budget.sft_eval_prompts
    prompts = [p for p, _ in pairs[:: max(1, len(pairs) // n)]][:n]
    rate, rows = eos_rate(model, tokenizer, prompts, cfg.budget.sft_new_tokens, seed=cfg.seed)
    return {"answer_loss": loss, "answer_ppl": math.exp(loss), "eos_rate": rate,
            "n_eos_prompts": len(prompts), "samples": rows}
