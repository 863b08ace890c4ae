"""Pretraining the course's small GPT-2 by next-token prediction.

Taught in notebook 02 (2.3 next-token prediction, 2.4 pretraining). The full run
that made the shipped model is ``python scripts/ship.py pretrain`` (resumable).

The corpus is the TRAIN part of the bundled HH-RLHF transcripts (all four subsets,
chosen and rejected, each ending in EOS); the eval part is never read here except to
measure held-out perplexity. The tokenizer is a byte-level BPE trained on the same
train text. Checkpoints are written atomically to ``outputs/pretrain/<hash>/`` after
every evaluation, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.data import SUBSETS, load_hh_rlhf
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.models import (
    build_gpt2,
    load_tokenizer,
    n_params,
    save_tokenizer,
    train_bpe_tokenizer,
)
from rlhf_lessons.core.utils import (
    adamw,
    autocast,
    get_device,
    optimizer_step,
    precision_name,
    progress,
    seed_everything,
    write_json,
)
from rlhf_lessons.train.run import (
    Clock,
    finished,
    metric_row,
    resume_checkpoint,
    run_key,
    save_checkpoint,
)


# --------------------------------------------------------------------------
# 2.3 Next-token prediction
# --------------------------------------------------------------------------
def corpus_texts(split: str, max_rows_per_subset: int = 0) -> list[str]:
    """Whole transcripts of one split: every chosen one, and each rejected one that differs.

    ``split`` is "train" (pretraining, tokenizer) or "eval" (held-out perplexity only).
    """
    texts = []
    for subset in SUBSETS:
        ds = load_hh_rlhf(subset, split, source="local", max_rows=max_rows_per_subset)
        for chosen, rejected in zip(ds["chosen"], ds["rejected"]):
            texts.append(chosen.strip())
            if rejected != chosen:
                texts.append(rejected.strip())
    return texts


def encode_stream(tok, texts: list[str]) -> np.ndarray:
    """One long token stream: text, EOS, text, EOS, ... as int32. Shape: (n_tokens,)."""
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    out = np.fromiter((t for seq in ids for t in (*seq, eos)), dtype=np.int32)
    return out


def unigram_perplexity(train: np.ndarray, heldout: np.ndarray, vocab_size: int) -> float:
    """Perplexity of a unigram model (add-one smoothed counts of ``train``) on ``heldout``.

    The baseline a language model must beat: it knows how common each token is, and
    nothing about context.
    """
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(math.exp(-logp[heldout].mean()))


def batch_from_stream(stream: np.ndarray, batch_size: int, seq_len: int,
                      gen: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``seq_len`` tokens. Shape: (batch, seq_len)."""
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=gen)
    return torch.stack([torch.from_numpy(stream[s:s + seq_len].astype(np.int64))
                        for s in starts.tolist()])


@torch.no_grad()
def stream_loss(model, stream: np.ndarray, seq_len: int, device, batch_size: int = 16,
                max_windows: int = 0) -> float:
    """Mean next-token loss (nats/token) over consecutive ``seq_len`` windows of ``stream``.

    ``max_windows`` > 0 scores that many windows spread evenly over the stream (a
    quicker estimate that still covers every subset); 0 scores them all.
    """
    model.eval()
    starts = list(range(0, len(stream) - seq_len + 1, seq_len))
    if max_windows and len(starts) > max_windows:
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, max_windows).astype(int)]
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        x = torch.from_numpy(np.stack([stream[s:s + seq_len] for s in starts[i:i + batch_size]])
                             .astype(np.int64)).to(device)
        with autocast(device):
            # every token is real text (EOS between transcripts is not padding)
            logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum"
        )
        total += loss.item()
        count += x[:, 1:].numel()
    return total / max(count, 1)


# --------------------------------------------------------------------------
# 2.4 Pretraining
# --------------------------------------------------------------------------
def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def prepare(cfg: LessonConfig, tokenizer=None):
    """(tokenizer, train_stream, eval_stream). Trains the BPE unless one is given."""
    n = cfg.max_rows_per_subset
    train_texts = corpus_texts("train", n)
    if tokenizer is None:
        tokenizer = train_bpe_tokenizer(train_texts, cfg.pretrain.vocab_size)
    return tokenizer, encode_stream(tokenizer, train_texts), encode_stream(
        tokenizer, corpus_texts("eval", n))


@reuse_freed_memory()
def pretrain(cfg: LessonConfig, run_dir: Path, tokenizer=None,
             max_minutes: float | None = None, show_progress: bool = True,
             final_eval_windows: int = 0) -> dict:
    """Pretrain a GPT-2 of size ``cfg.model`` on the train transcripts; resumable
    from ``run_dir/checkpoint.pt`` (see :func:`rlhf_lessons.course.artefacts.pretrain_run_dir`).

    The final held-out loss scores every eval window, or ``final_eval_windows`` of
    them spread evenly (a quick demo does not need the whole stream).

    Returns a :class:`~rlhf_lessons.train.run.TrainRun` (rows: step, learning_rate,
    elapsed_s, loss, grad_norm, tokens, and eval_loss where evaluated; ``extra``:
    ``model``, ``tokenizer``, ``figures``, ``run_dir``).
    """
    seed_everything(cfg.seed)
    device = get_device(cfg)
    pc = cfg.pretrain
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "checkpoint.pt"

    if tokenizer is None and (run_dir / "tokenizer").exists():
        tokenizer = load_tokenizer(run_dir / "tokenizer")
    tok, train_stream, eval_stream = prepare(cfg, tokenizer)
    save_tokenizer(tok, run_dir / "tokenizer")
    model = build_gpt2(len(tok), cfg.model, tok.eos_token_id, seed=cfg.seed).to(device)
    opt = adamw(model.parameters(), lr=pc.lr, betas=(0.9, pc.adam_beta2),
                weight_decay=pc.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    # Resumed only when made by these settings. The step budget may grow: a longer
    # run continues a shorter one (its cosine schedule stretches from there on), so
    # the key leaves out ``steps`` and what only decides when to evaluate or stop.
    key = run_key({k: v for k, v in dataclasses.asdict(pc).items()
                   if k not in ("steps", "max_minutes", "eval_every", "eval_windows")},
                  model=dataclasses.asdict(cfg.model), seed=cfg.seed, vocab=len(tok),
                  train_tokens=int(len(train_stream)))
    back = resume_checkpoint(ckpt_path, key, pc.steps, model=model, optimizer=opt,
                             what="pretraining", device=device)
    metrics, start = (back.metrics, back.step) if back else ([], 0)
    if back and back.resume.get("generator") is not None:
        gen.set_state(back.resume["generator"])
    step = start

    unigram = unigram_perplexity(train_stream, eval_stream, len(tok))
    limit = pc.max_minutes if max_minutes is None else max_minutes
    print(f"pretraining {n_params(model) / 1e6:.2f}M params on {len(train_stream):,} train "
          f"tokens ({precision_name(device)}); unigram held-out ppl {unigram:.0f}")
    tokens_per_step = pc.batch_size * pc.seq_len
    bar = progress(total=pc.steps, initial=step, desc="pretrain", disable=not show_progress)
    clock = Clock(metrics)
    model.train()
    stopped_early = False
    while step < pc.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, pc.steps, pc.lr, pc.warmup_steps)
        x = batch_from_stream(train_stream, pc.batch_size, pc.seq_len, gen).to(device)
        with autocast(device):
            loss = model(input_ids=x, attention_mask=torch.ones_like(x), labels=x).loss
        gn = optimizer_step(loss, opt, model.parameters(), pc.max_grad_norm)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        row = metric_row(step, opt.param_groups[0]["lr"], clock(), loss=loss.item(),
                         grad_norm=gn, tokens=step * tokens_per_step)
        out_of_time = limit and row["elapsed_s"] > limit * 60
        if step % pc.eval_every == 0 or step == pc.steps or out_of_time:
            row["eval_loss"] = stream_loss(model, eval_stream, pc.seq_len, device,
                                           max_windows=pc.eval_windows)
            model.train()
            bar.write(f"step {step}: train loss {row['loss']:.3f}, "
                      f"held-out loss {row['eval_loss']:.3f} "
                      f"(ppl {math.exp(row['eval_loss']):.1f})")
        metrics.append(row)
        if "eval_loss" in row:  # saved where it is evaluated
            save_checkpoint(ckpt_path, key=key, step=step, total=pc.steps, model=model,
                            optimizer=opt, metrics=metrics,
                            resume={"generator": gen.get_state()})
        if out_of_time:
            stopped_early = True
            bar.write(f"stopping at step {step}: the {limit}-minute budget is spent")
            break
    bar.close()
    wall = clock()
    model.eval()
    eval_loss = stream_loss(model, eval_stream, pc.seq_len, device,
                            max_windows=final_eval_windows)
    figures = {
        "steps": step,
        "stopped_early": stopped_early,
        "train_tokens": int(len(train_stream)),
        "eval_tokens": int(len(eval_stream)),
        "tokens_seen": step * tokens_per_step,
        "wall_s": round(wall, 1),
        "tokens_per_s": round(step * tokens_per_step / max(wall, 1e-9), 1),
        "eval_loss": round(eval_loss, 4),
        "eval_ppl": round(math.exp(eval_loss), 2),
        "unigram_eval_ppl": round(unigram, 2),
        "n_params": n_params(model),
        "precision": precision_name(device),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    write_json(run_dir / "result.json", {"figures": figures, "metrics": metrics,
                                         "config": cfg.to_dict()})
    return finished(metrics, pc.steps, start, figures=figures, run_dir=run_dir,
                    model=model, tokenizer=tok)
