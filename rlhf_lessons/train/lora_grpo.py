"""GRPO on a chat model through LoRA adapters: the writer notebook's optimiser.

Notebook 07 taught RLOO/GRPO on the course's small GPT-2; here the same loss
(:func:`rlhf_lessons.train.group_pg.group_pg_loss`) and the same group advantages
train a real instruct model (SmolLM2-135M-Instruct) on a CPU, through LoRA
adapters (Hu et al. 2021, the ``peft`` library): the base weights stay frozen,
small low-rank matrices beside the attention projections learn, and the
reference policy is the same model with its adapters switched off. One update:

1. G answers to each of a few prompts, sampled with the chat template
   (temperature and top-p, as the writer is read everywhere in the notebook);
2. the judge scores each (prompt, answer); group advantages (r − mean)/std;
3. the answers' log-probs under the adapters (with gradients) and without them
   (the reference), then the clipped loss with a k3 KL term, one AdamW step.

It keeps the trainer contract of :mod:`rlhf_lessons.train.run`; its checkpoint
holds the adapters only (a few MB), not the 135M frozen weights.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from rlhf_lessons.core.batching import left_pad
from rlhf_lessons.core.config import LoRAGRPOConfig
from rlhf_lessons.core.generation import draw_tokens, filter_logits
from rlhf_lessons.core.memory import reuse_freed_memory
from rlhf_lessons.core.utils import adamw, linear_schedule, optimizer_step, progress
from rlhf_lessons.train.group_pg import group_advantages, group_pg_loss, zero_variance_groups
from rlhf_lessons.train.ppo import kl_per_token
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

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


def add_lora(model, cfg: LoRAGRPOConfig, seed: int = 0):
    """``model`` wrapped with fresh LoRA adapters on ``cfg.lora_targets``; only the
    adapters train. B starts at zero, so the wrapped model answers exactly as
    ``model`` did until the first step."""
    torch.manual_seed(seed)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=list(cfg.lora_targets), bias="none")
    # transformers 5 warns about a renamed attribute each time peft wraps a model;
    # silenced here only, not in the caller's filters
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        return get_peft_model(model, lora)


def chat_prompt_ids(tokenizer, questions: Sequence[str]) -> list[list[int]]:
    """Each question as one user turn of the chat template, ready for the answer."""
    out = []
    for q in questions:
        enc = tokenizer.apply_chat_template([{"role": "user", "content": q}],
                                            add_generation_prompt=True, tokenize=True,
                                            return_dict=True)
        out.append(list(enc["input_ids"]))
    return out


def answer_mask(answer_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including each row's first ``eos_id``, 0 after: (B, R) -> (B, R)."""
    is_eos = answer_ids == eos_id
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOSes strictly before
    return (before == 0).long()


@torch.no_grad()
def sample_answers(model, tokenizer, prompt_ids: Sequence[Sequence[int]], n_per_prompt: int,
                   cfg: LoRAGRPOConfig, seed: int) -> dict:
    """``n_per_prompt`` sampled answers to each prompt, rows grouped by prompt.

    Returns ``{"ids": (B·n, P + R), "mask": (B·n, P + R), "P": P, "answer_mask":
    (B·n, R), "texts": [str] * (B·n)}``. Seeded by ``seed`` alone (a generator of
    its own; the global one is not touched), so the same seed draws the same answers.

    A KV-cache loop of the course's own rather than ``model.generate``: each prompt
    runs through the model once and its keys and values serve its ``n`` answers;
    each step computes one position's logits, scales them by the temperature, keeps
    the top-p nucleus (:func:`rlhf_lessons.core.generation.filter_logits`) and
    draws one token per row by inverse CDF (one uniform per row, not one per word
    of a 49k vocabulary). Rows that have stopped get the pad token; the loop ends
    when every row has stopped or after ``cfg.max_new_tokens``.
    """
    G, pad, eos = n_per_prompt, tokenizer.pad_token_id, tokenizer.eos_token_id
    ids, mask = left_pad(prompt_ids, pad)  # (B/G, P)
    gen = torch.Generator().manual_seed(seed)
    out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(G)
    logits = out.logits[:, -1].repeat_interleave(G, 0)  # (B, V)
    ids, mask = ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)
    B, P = ids.shape
    done = torch.zeros(B, dtype=torch.bool)
    steps = []
    for t in range(cfg.max_new_tokens):
        probs = filter_logits(logits.float() / cfg.temperature, top_p=cfg.top_p).softmax(-1)
        tok = draw_tokens(probs, gen)[:, 0].masked_fill(done, pad)  # (B,)
        steps.append(tok)
        done |= tok == eos
        if done.all() or t + 1 == cfg.max_new_tokens:
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype)], 1)
        logits = model(input_ids=tok[:, None], attention_mask=mask, past_key_values=cache,
                       use_cache=True).logits[:, -1]
    answers = torch.stack(steps, 1)  # (B, R)
    a_mask = answer_mask(answers, eos)
    texts = [tokenizer.decode(a[m.bool()], skip_special_tokens=True).strip()
             for a, m in zip(answers, a_mask)]
    return {"ids": torch.cat([ids, answers], 1), "mask": torch.cat([mask[:, :P], a_mask], 1),
            "P": P, "answer_mask": a_mask, "texts": texts}


def answer_logprobs(model, batch: dict, temperature: float,
                    group_size: int = 1) -> torch.Tensor:
    """log π(a_t | prompt, a_<t) of every answer token at ``temperature``: (B, R).

    Positions after an answer's EOS hold numbers that its mask drops. Only the
    positions that predict an answer token go through the LM head (49k words wide:
    the prompt's logits would cost time and memory for nothing).

    ``group_size`` G > 1: the rows come in groups of G answers to one prompt, as
    :func:`sample_answers` returns them. The prompt then runs through the model once
    per group and its keys and values are repeated for the G answers, so the
    prompt's share of the work falls by (G − 1)/G; the numbers (and gradients) are
    those of the plain forward, up to rounding (tests/test_lora_grpo.py).
    """
    P, ids, mask = batch["P"], batch["ids"], batch["mask"]
    B, R = ids.size(0), ids.size(1) - P
    if group_size == 1:
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=R + 1).logits
        logits = logits[:, :-1]  # (B, R, V): position P-1+t predicts answer token t
    else:
        G = group_size
        if G < 1 or B % G:
            raise ValueError(f"group_size={G}: the batch's {B} rows are not whole groups")
        prompt, p_mask = ids[::G, :P], mask[::G, :P]  # (B/G, P)
        if not (torch.equal(ids[:, :P], prompt.repeat_interleave(G, 0))
                and torch.equal(mask[:, :P], p_mask.repeat_interleave(G, 0))):
            raise ValueError(f"group_size={G}: rows of a group do not share their prompt")
        out = model(input_ids=prompt, attention_mask=p_mask, use_cache=True,
                    logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(G)  # (B/G, ...) -> (B, ...), differentiable
        logits = out.logits.repeat_interleave(G, 0)  # (B, 1, V): predicts answer token 0
        if R > 1:  # answer tokens 0..R-2 predict tokens 1..R-1, reading the prompt's cache
            rest = model(input_ids=ids[:, P:-1], attention_mask=mask[:, :-1],
                         past_key_values=cache, use_cache=True).logits  # (B, R-1, V)
            logits = torch.cat([logits, rest], 1)
    logits = logits.float() / temperature
    V = logits.size(-1)
    return -F.cross_entropy(logits.reshape(-1, V), ids[:, P:].reshape(-1),
                            reduction="none").view(B, R)


@reuse_freed_memory()
def train_lora_grpo(model, tokenizer, reward: RewardFn, questions: Sequence[str],
                    cfg: LoRAGRPOConfig, *, seed: int = 0,
                    checkpoint: str | Path | None = None, save_every: int = SAVE_EVERY,
                    on_update: Callable[[int, list[str], list[str], list[float]], dict]
                    | None = None, show_progress: bool = True,
                    desc: str = "GRPO (LoRA)") -> TrainRun:
    """GRPO for ``cfg.n_updates`` updates on ``model``, a peft model from :func:`add_lora`.

    ``questions``: the TRAIN prompts (plain user messages; the chat template is
    applied here). ``reward(prompts, answers) -> scores`` is the judge.
    ``on_update(u, prompts, answers, scores)`` may return extra metric columns
    (the notebook counts hedges per update). Returns a
    :class:`~rlhf_lessons.train.run.TrainRun`: one row per update with step,
    learning_rate, elapsed_s, episodes, objective/scores, objective/kl (k1, summed
    over the answer), loss/policy_avg, reward_std, frac_reward_zero_std,
    response_length, val/eos_rate, gen_s.
    """
    if not hasattr(model, "disable_adapter"):
        raise TypeError("model: wrap it with add_lora(model, cfg) first (a peft model)")
    questions = list(questions)
    if isinstance(questions, str) or len(questions) < cfg.prompts_per_update:
        raise ValueError(f"questions: need a list of at least {cfg.prompts_per_update}")
    prompt_ids = chat_prompt_ids(tokenizer, questions)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    key = run_key(cfg, seed=seed, n_questions=len(questions))
    back = resume_checkpoint(checkpoint, key, cfg.n_updates, model=model, optimizer=opt,
                             what="LoRA GRPO",
                             load_model=lambda sd: set_peft_model_state_dict(model, sd))
    rows, start, order = [], 0, []
    gen = torch.Generator().manual_seed(seed)
    if back is not None:
        rows, start = back.metrics, back.step
        if back.resume:
            gen.set_state(back.resume["generator"])
            order = back.resume["order"]
    model.train(False)  # no dropout: the log-probs must be reproducible
    clock = Clock(rows)
    G = cfg.group_size
    for u in progress(range(start, cfg.n_updates), desc=desc, total=cfg.n_updates,
                      initial=start, disable=not show_progress):
        lr = cfg.lr * linear_schedule(u, cfg.n_updates)
        for g in opt.param_groups:
            g["lr"] = lr
        if len(order) < cfg.prompts_per_update:
            order += torch.randperm(len(questions), generator=gen).tolist()
        idx, order = order[:cfg.prompts_per_update], order[cfg.prompts_per_update:]
        # 1. G answers per prompt
        t0 = time.perf_counter()
        batch = sample_answers(model, tokenizer, [prompt_ids[i] for i in idx], G, cfg,
                               seed=seed * 100_003 + u)
        gen_s = time.perf_counter() - t0
        prompts = [questions[i] for i in idx for _ in range(G)]
        # 2. scores and group advantages; groups whose answers all tie teach nothing
        scores = torch.tensor([float(s) for s in reward(prompts, batch["texts"])])
        if not torch.isfinite(scores).all():
            raise ValueError(f"update {u + 1}: the reward returned {scores.tolist()}")
        grouped = scores.view(-1, G)
        flat = zero_variance_groups(grouped)
        adv = group_advantages(grouped, "grpo").reshape(-1)
        a_mask = batch["answer_mask"]
        # 3. reference log-probs (adapters off), then the loss with gradients
        with torch.no_grad(), model.disable_adapter():
            ref = answer_logprobs(model, batch, cfg.temperature, G)
        new = answer_logprobs(model, batch, cfg.temperature, G)
        out = group_pg_loss(new, new.detach(), ref, adv, a_mask, cfg.cliprange, cfg.kl_coef)
        if (~flat).any():
            optimizer_step(out["loss"], opt, params, cfg.max_grad_norm)
        else:
            opt.zero_grad(set_to_none=True)
        kl_seq = kl_per_token(new.detach(), ref, "k1").mul(a_mask).sum(-1)
        row = metric_row(
            u + 1, lr, clock(), episodes=(u + 1) * len(prompts),
            **{"objective/scores": float(scores.mean()),
               "objective/kl": float(kl_seq.mean()),
               "loss/policy_avg": float(out["loss"].detach()) if (~flat).any()
               else float("nan")},
            reward_std=float(grouped.std(1).mean()),
            frac_reward_zero_std=float(flat.float().mean()),
            response_length=float(a_mask.sum(-1).float().mean()),
            **{"val/eos_rate": float((batch["ids"][:, batch["P"]:] == tokenizer.eos_token_id)
                                     .any(-1).float().mean())},
            gen_s=gen_s)
        if on_update is not None:
            row.update(on_update(u, prompts, batch["texts"], scores.tolist()) or {})
        rows.append(row)
        if should_save(u + 1, cfg.n_updates, save_every):
            save_checkpoint(checkpoint, key=key, step=u + 1, total=cfg.n_updates,
                            model=get_peft_model_state_dict(model), optimizer=opt,
                            metrics=rows,
                            resume={"generator": gen.get_state(), "order": order})
    return finished(rows, cfg.n_updates, start)
