"""Supervised fine-tuning of a chat model through LoRA adapters (notebook 08).

Notebook 02 taught SFT on the course's small GPT-2; here the same loss (the
answer tokens' cross-entropy, the prompt masked out) teaches the writer a
*style* in a minute on a CPU: to say "I'm not completely sure, but I think …"
where it is usually wrong. That gives optimisation something to take away.
It keeps the trainer contract of :mod:`rlhf_lessons.train.run`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import get_peft_model_state_dict, set_peft_model_state_dict

from rlhf_lessons.core.config import ChatSFTConfig
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.utils import adamw, linear_schedule, optimizer_step, progress
from rlhf_lessons.train.lora_grpo import chat_prompt_ids
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

IGNORE = -100


def encode_chat_example(tokenizer, question: str, answer: str) -> dict:
    """``{"input_ids", "labels"}`` of one user turn and its answer: labels are
    IGNORE on the prompt, the answer's ids, then the end-of-turn token."""
    p = chat_prompt_ids(tokenizer, [question])[0]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return {"input_ids": p + a, "labels": [IGNORE] * len(p) + a}


def collate_right(examples: Sequence[dict], pad_id: int) -> dict:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (IGNORE on pads),
    each (B, T)."""
    T = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def chat_sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens: logits (B, T, V) predict labels
    shifted by one; IGNORE positions count for nothing."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                           labels[:, 1:].reshape(-1), ignore_index=IGNORE)


@reuse_freed_memory()
def train_chat_sft(model, tokenizer, pairs: Sequence[tuple[str, str]], cfg: ChatSFTConfig,
                   *, seed: int = 0, checkpoint: str | Path | None = None,
                   save_every: int = SAVE_EVERY, show_progress: bool = True,
                   desc: str = "SFT (LoRA)") -> TrainRun:
    """``cfg.steps`` AdamW steps on (question, answer) ``pairs``, through the LoRA
    adapters of ``model`` (a peft model), shuffled batches of ``cfg.batch_size``,
    linear lr decay. Returns a :class:`~rlhf_lessons.train.run.TrainRun` (rows:
    step, learning_rate, elapsed_s, loss, grad_norm)."""
    if not hasattr(model, "disable_adapter"):
        raise TypeError("model: wrap it with lora_grpo.add_lora(model, ...) first")
    if len(pairs) < cfg.batch_size:
        raise ValueError(f"{len(pairs)} pairs for batch_size={cfg.batch_size}")
    examples = [encode_chat_example(tokenizer, q, a) for q, a in pairs]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    key = run_key(cfg, seed=seed, n_pairs=len(pairs))
    back = resume_checkpoint(checkpoint, key, cfg.steps, model=model, optimizer=opt,
                             what="LoRA SFT",
                             load_model=lambda sd: set_peft_model_state_dict(model, sd))
    rows, start = (back.metrics, back.step) if back else ([], 0)
    gen = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    orders: list[list[int]] = []
    model.train(False)  # LoRA dropout is 0; keep the base model deterministic
    clock = Clock(rows)
    for step in progress(range(start, cfg.steps), desc=desc, total=cfg.steps, initial=start,
                         disable=not show_progress):
        ep, k = divmod(step, per_epoch)
        while len(orders) <= ep:
            orders.append(torch.randperm(len(examples), generator=gen).tolist())
        idx = orders[ep][k * cfg.batch_size:(k + 1) * cfg.batch_size]
        batch = collate_right([examples[i] for i in idx], tokenizer.pad_token_id)
        lr = cfg.lr * linear_schedule(step, cfg.steps)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits
        loss = chat_sft_loss(logits, batch["labels"])
        gn = optimizer_step(loss, opt, params, cfg.max_grad_norm)
        rows.append(metric_row(step + 1, lr, clock(), loss=loss.item(), grad_norm=gn))
        if should_save(step + 1, cfg.steps, save_every):
            save_checkpoint(checkpoint, key=key, step=step + 1, total=cfg.steps,
                            model=get_peft_model_state_dict(model), optimizer=opt,
                            metrics=rows)
    return finished(rows, cfg.steps, start)
