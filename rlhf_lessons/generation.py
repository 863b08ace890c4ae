"""Batched text generation: left padding, a KV cache, temperature / top-k / top-p, EOS.

Taught in notebook 02; used to show samples in every later notebook.

Why left padding: a decoder writes its next token after the LAST position of the row.
With right padding that position is a pad for every row but the longest one. Left
padding puts all prompts flush against the right edge, and position ids that count
only real tokens make a padded prompt behave exactly as it would alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GenerationOutput:
    """What :func:`generate` returns. B = number of prompts.

    - ``prompt_ids``: (B, P) left-padded prompt tokens; ``prompt_mask`` the same shape.
    - ``response_ids``: (B, R) generated tokens; after a row's first EOS only pads.
    - ``response_mask``: (B, R) 1 for generated tokens up to and including the first EOS.
    - ``finished``: (B,) True where the answer ended with EOS within the budget.
    """

    prompts: list[str]
    texts: list[str]
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    finished: torch.Tensor

    def rows(self) -> list[dict]:
        """One dict per prompt: prompt, answer, n_tokens, ended_with_eos."""
        return [
            {"prompt": p, "answer": t, "n_tokens": int(m.sum()), "ended_with_eos": bool(f)}
            for p, t, m, f in zip(self.prompts, self.texts, self.response_mask, self.finished)
        ]


def encode_prompts(tokenizer, prompts: list[str], max_len: int, device="cpu"):
    """Tokenise and LEFT-pad prompts; keep the last ``max_len`` tokens of a long one.

    Returns ``(ids, mask)``, each (B, P). Keeping the end of a long conversation keeps
    the turn the model must answer.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if not prompts:
        raise ValueError("prompts is empty")
    seqs = [tokenizer(p, add_special_tokens=False)["input_ids"][-max_len:] for p in prompts]
    if any(len(s) == 0 for s in seqs):
        bad = next(i for i, s in enumerate(seqs) if not s)
        raise ValueError(f"prompt {bad} is empty after tokenisation")
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s)
        mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus.

    logits: (B, V). ``top_k=0`` and ``top_p=1.0`` leave them untouched (what PPO uses).
    """
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (keep at least one)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    greedy: bool = False,
    seed: int | None = None,
    batch_size: int = 32,
) -> GenerationOutput:
    """Continue each prompt until EOS or ``max_new_tokens``. Batched, with a KV cache.

    ``greedy=True`` takes the arg-max token (temperature, top-k, top-p unused).
    ``seed`` makes sampling reproducible. Long lists are cut into ``batch_size`` chunks.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature}")
    gen = None
    if seed is not None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
    parts = [
        _generate_batch(model, tokenizer, prompts[i:i + batch_size], max_new_tokens,
                        temperature, top_k, top_p, greedy, gen)
        for i in range(0, len(prompts), batch_size)
    ]
    if len(parts) == 1:
        return parts[0]
    return _concat(parts, tokenizer.pad_token_id)


def _generate_batch(model, tokenizer, prompts, max_new_tokens, temperature, top_k, top_p,
                    greedy, gen) -> GenerationOutput:
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    max_prompt = model.config.n_positions - max_new_tokens
    if max_prompt < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt "
                         f"(the model has {model.config.n_positions} positions)")
    ids, mask = encode_prompts(tokenizer, prompts, max_prompt, device)
    was_training = model.training
    model.eval()
    B = ids.size(0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    attn = mask
    step_ids, cache = ids, None
    out_tokens = []
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=attn, position_ids=positions,
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
        if greedy:
            nxt = logits.argmax(-1)
        else:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(device)
        nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
        out_tokens.append(nxt)
        finished |= nxt == eos
        if bool(finished.all()):
            break
        step_ids = nxt[:, None]
        positions = positions[:, -1:] + 1
        attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=device)], dim=1)
    if was_training:
        model.train()
    resp = torch.stack(out_tokens, dim=1)
    resp_mask = response_mask_after_eos(resp, eos)
    texts = [decode_answer(tokenizer, r, m) for r, m in zip(resp, resp_mask)]
    return GenerationOutput(list(prompts), texts, ids, mask, resp, resp_mask, finished.cpu())


def response_mask_after_eos(response_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 up to and including each row's first EOS, 0 after it. (B, R) -> (B, R) long."""
    is_eos = (response_ids == eos_id).long()
    # number of EOS tokens strictly before each position
    before = is_eos.cumsum(-1) - is_eos
    return (before == 0).long()


def decode_answer(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor) -> str:
    """The answer text: the tokens under ``mask``, EOS dropped, outer spaces stripped."""
    keep = [int(t) for t, m in zip(response_ids, mask) if m and int(t) != tokenizer.eos_token_id]
    return tokenizer.decode(keep, skip_special_tokens=True).strip()


def _concat(parts: list[GenerationOutput], pad: int) -> GenerationOutput:
    return GenerationOutput(
        prompts=[p for o in parts for p in o.prompts],
        texts=[t for o in parts for t in o.texts],
        prompt_ids=_pad_cat([o.prompt_ids for o in parts], pad, left=True),
        prompt_mask=_pad_cat([o.prompt_mask for o in parts], 0, left=True),
        response_ids=_pad_cat([o.response_ids for o in parts], pad, left=False),
        response_mask=_pad_cat([o.response_mask for o in parts], 0, left=False),
        finished=torch.cat([o.finished for o in parts]),
    )


def _pad_cat(tensors: list[torch.Tensor], value: int, left: bool) -> torch.Tensor:
    width = max(t.size(1) for t in tensors)
    out = []
    for t in tensors:
        fill = torch.full((t.size(0), width - t.size(1)), value, dtype=t.dtype, device=t.device)
        out.append(torch.cat([fill, t] if left else [t, fill], dim=1))
    return torch.cat(out)


def sample_answers(model, tokenizer, question: str, temperature: float = 0.7,
                   max_new_tokens: int = 64, n: int = 3, seed: int = 0):
    """``n`` answers to one user question, as a DataFrame (the generation widget's core).

    ``question`` is wrapped as ``"\\n\\nHuman: {question}\\n\\nAssistant:"`` unless it
    already contains an "Assistant:" turn. ``temperature=0`` means greedy (one answer).
    """
    import pandas as pd

    if not question.strip():
        raise ValueError("question is empty: type something for the model to answer")
    prompt = question if "Assistant:" in question else (
        f"\n\nHuman: {question.strip()}\n\nAssistant:")
    greedy = temperature <= 0
    out = generate(model, tokenizer, [prompt] * (1 if greedy else n), max_new_tokens,
                   temperature=max(temperature, 1e-6), greedy=greedy, seed=seed)
    return pd.DataFrame([{"answer": r["answer"], "tokens": r["n_tokens"],
                          "stopped (EOS)": r["ended_with_eos"]} for r in out.rows()])
