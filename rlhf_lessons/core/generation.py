"""Batched sampling: left padding, a KV cache, temperature / top-k / top-p, EOS.

Taught in notebook 02; PPO's rollout (notebook 04) samples with the same
:func:`sample_responses`, so there is one sampler in the course.

Why left padding: a decoder writes its next token after the LAST position of the row.
With right padding that position is a pad for every row but the longest one. Left
padding puts all prompts flush against the right edge, and position ids that count
only real tokens make a padded prompt behave exactly as it would alone.

Speed: the GPT-2s here are tiny, so Python overhead dominates on a CPU. A short
functional GPT-2 forward (:func:`rlhf_lessons.core.lean_gpt2.gpt2_hidden` for the prompt,
:func:`rlhf_lessons.core.lean_gpt2.gpt2_step` for each new token) with a preallocated KV
cache replaces ``model.generate``, under ``torch.inference_mode``; rows that repeat a
prompt (G answers to one prompt) share its prefill. Other architectures take the
transformers forward with its own cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from rlhf_lessons.core.batching import (
    decode_responses,
    encode_prompts,
    left_pad,
    position_ids,
    right_pad,
    truncate_after_eos,
)
from rlhf_lessons.core.lean_gpt2 import (
    KVCache,
    StepWeights,
    backbone_of,
    entropy_from_pick,
    fast_ok,
    gpt2_hidden,
    gpt2_step,
    shared_prompts,
)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the top-p nucleus.

    logits: (B, V). ``top_k=0`` and ``top_p=1.0`` leave them untouched (what PPO uses).
    """
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        # The nucleus is usually a few dozen words: look for it among the top 256 first
        # (a partial sort), and sort the whole vocabulary only for rows where it is wider.
        k = min(logits.size(-1), 256)
        top, order = torch.topk(logits, k, dim=-1)  # (B, k), descending
        p_top = (top - logits.logsumexp(-1, keepdim=True)).exp()
        if k < logits.size(-1) and not bool((p_top.sum(-1) >= top_p).all()):
            top, order = torch.sort(logits, descending=True, dim=-1)
            p_top = top.softmax(-1)
        # drop a token when the tokens before it already reach top_p (keep at least one)
        keep_sorted = (p_top.cumsum(-1) - p_top) < top_p
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, keep_sorted)
        logits = logits.masked_fill(~keep, float("-inf"))
    return logits


def draw_tokens(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """One token per row from probs (B, V) by inverse-CDF sampling: (B, 1).

    The same distribution as ``torch.multinomial`` but one uniform per row instead
    of one exponential per vocabulary entry (much faster for a large vocabulary).
    """
    cdf = probs.cumsum(-1)
    u = torch.rand((probs.size(0), 1), generator=generator, device=probs.device)
    tok = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return tok.clamp_(max=probs.size(-1) - 1)


def sample_responses(policy, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                     max_new_tokens: int, temperature: float, eos_id: int,
                     generator: torch.Generator | None = None, top_k: int = 0,
                     top_p: float = 1.0, greedy: bool = False):
    """Sample answers with a KV cache, at ``temperature`` (top-k 0 / top-p 1 for PPO).

    prompt_ids, prompt_mask: (B, P), left-padded. Returns ``(response_ids,
    logprobs, entropy)``, each (B, R) with R <= max_new_tokens (the loop stops once
    every row has emitted EOS). ``logprobs`` are log pi(token) of the tempered,
    filtered distribution the token was drawn from; ``entropy`` is that
    distribution's entropy. ``greedy`` takes the arg-max. Tokens after a row's
    first EOS are junk: see :func:`rlhf_lessons.core.batching.truncate_after_eos`.
    """
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    c = backbone_of(policy).config
    if prompt_ids.size(1) + max_new_tokens > c.n_positions:
        raise ValueError(f"prompt ({prompt_ids.size(1)}) + max_new_tokens ({max_new_tokens}) "
                         f"exceeds the model's {c.n_positions} positions")
    # inference mode: no autograd bookkeeping on any of the ~40 ops of a step; the
    # results are cloned out of it so that training can use them as ordinary tensors
    with torch.inference_mode():
        out = _sample(policy, prompt_ids, prompt_mask, max_new_tokens, temperature, eos_id,
                      generator, top_k, top_p, greedy)
    return tuple(t.clone() for t in out)


def _prefill(policy, prompt_ids, prompt_mask, cache_len):
    """Run the prompts once and fill a KV cache: ``(cache, last hidden (B, d))``.

    Rows with the same prompt (a group of G answers to one prompt, as in best-of-n
    and GRPO) share one forward pass: the distinct prompts run, then the cache rows
    are copied out to every row that asked for them.
    """
    bb = backbone_of(policy)
    c, (B, P) = bb.config, prompt_ids.shape
    groups = shared_prompts(prompt_ids, prompt_mask, P)
    ids, mask = ((prompt_ids[groups[0]], prompt_mask[groups[0]]) if groups
                 else (prompt_ids, prompt_mask))
    cache = KVCache(c.n_layer, ids.size(0), c.n_head, cache_len, c.n_embd // c.n_head,
                    bb.wte.weight.dtype, ids.device)
    last = gpt2_hidden(policy, ids, mask.bool(), position_ids(mask), cache, from_pos=P - 1)[:, -1]
    if groups:
        return cache.expand_rows(groups[1], B), last[groups[1]]
    return cache, last


def _sample(policy, prompt_ids, prompt_mask, R, temperature, eos_id, generator, top_k,
            top_p, greedy):
    """The loop of :func:`sample_responses` (arguments already checked)."""
    bb = backbone_of(policy)
    B, P = prompt_ids.shape
    dev = prompt_ids.device
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    pos = position_ids(prompt_mask)
    fast = fast_ok(bb)
    if fast:
        cache, last = _prefill(policy, prompt_ids, prompt_mask, P + R)
        weights = StepWeights(bb)
        # the LM head (V, d) read transposed, as nn.Linear does: for 16 rows measured
        # 10-15% faster than a contiguous (d, V) copy, and no copy
        head_t = policy.lm_head.weight.t()
        # additive attention bias per key: 0 for real tokens (every answer position:
        # a step reads only the keys up to its own), -inf for pads
        key_bias = torch.zeros((B, P + R), dtype=last.dtype, device=dev)
        key_bias[:, :P].masked_fill_(~prompt_mask.bool(), float("-inf"))
    else:
        key_mask = torch.zeros((B, P + R), dtype=torch.bool, device=dev)
        key_mask[:, :P] = prompt_mask.bool()
        out = policy(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos,
                     use_cache=True)
        past, last_logits = out.past_key_values, out.logits[:, -1]
    next_pos = pos[:, -1] + 1  # (B,)
    toks, lps, hs = [], [], []  # per step: (B,) each, stacked at the end
    # Each vocabulary-wide op costs about as much as a layer of this tiny model, so
    # the loop does three: the softmax, its running sum (to draw from) and, for the
    # entropy, one dot product. The log-probability and the log-normaliser come from
    # the drawn token's own entries: log p(tok) = log softmax(z)[tok] and
    # log Z = z[tok] - log p(tok), so H = log Z - sum p z. With top-k / top-p
    # (-inf in the logits) and greedy the log-softmax route is kept.
    filtered = bool(top_k) or top_p < 1.0
    for t in range(R):
        logits = (torch.mm(last, head_t) if fast else last_logits).float()
        if not greedy and temperature != 1.0:
            logits = logits / temperature
        if greedy or filtered:
            logp_all = torch.log_softmax(logits if greedy else
                                         filter_logits(logits, top_k, top_p), dim=-1)
            probs = logp_all.exp()
            tok = (logits.argmax(-1, keepdim=True) if greedy
                   else draw_tokens(probs, generator))  # (B, 1)
            lps.append(logp_all.gather(1, tok)[:, 0])
            hs.append(-torch.where(probs > 0, probs * logp_all, 0.0).sum(-1))
        else:
            probs = torch.softmax(logits, dim=-1)
            tok = draw_tokens(probs, generator)  # (B, 1)
            logp = probs.gather(1, tok)[:, 0].log_()
            lps.append(logp)
            hs.append(entropy_from_pick(probs, logits, logp, logits.gather(1, tok)[:, 0]))
        toks.append(tok[:, 0])
        done |= tok[:, 0] == eos_id
        if bool(done.all()) or t == R - 1:
            break
        if fast:
            last = gpt2_step(weights, tok[:, 0], next_pos, cache, key_bias)
        else:
            key_mask[:, P + t] = True
            out = policy(input_ids=tok, attention_mask=key_mask[:, :P + t + 1].long(),
                         position_ids=next_pos[:, None], past_key_values=past, use_cache=True)
            past, last_logits = out.past_key_values, out.logits[:, -1]
        next_pos = next_pos + 1
    return torch.stack(toks, 1), torch.stack(lps, 1), torch.stack(hs, 1)


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


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 64,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             greedy: bool = False, seed: int | None = None,
             batch_size: int = 32) -> GenerationOutput:
    """Continue each prompt until EOS or ``max_new_tokens``: :func:`sample_responses`
    with top-k / top-p, on text in and text out.

    ``greedy=True`` takes the arg-max token (temperature, top-k, top-p unused).
    ``seed`` makes sampling reproducible. Long lists are cut into ``batch_size``
    chunks; the returned tensors are padded to one width across chunks.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature}")
    max_prompt = model.config.n_positions - max_new_tokens
    if max_prompt < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt "
                         f"(the model has {model.config.n_positions} positions)")
    seqs = encode_prompts(tokenizer, prompts, max_prompt)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    answers, finished = [], []  # per row: the real answer tokens, EOS included
    for s in range(0, len(seqs), batch_size):
        ids, mask = left_pad(seqs[s:s + batch_size], pad)
        raw, _, _ = sample_responses(model, ids.to(device), mask.to(device), max_new_tokens,
                                     temperature, eos, gen, top_k, top_p, greedy)
        r_ids, r_mask, has_eos = truncate_after_eos(raw.cpu(), eos, pad)
        answers += [row[:int(n)] for row, n in zip(r_ids.tolist(), r_mask.sum(-1).tolist())]
        finished.append(has_eos)
    if was_training:
        model.train()
    ids, mask = left_pad(seqs, pad)
    r_ids, r_mask = right_pad(answers, pad)
    return GenerationOutput(list(prompts), decode_responses(tokenizer, r_ids, r_mask),
                            ids, mask, r_ids, r_mask, torch.cat(finished))


def sample_answers(model, tokenizer, question: str, temperature: float = 0.7,
                   max_new_tokens: int = 64, n: int = 3, seed: int = 0) -> pd.DataFrame:
    """``n`` answers to one user question, as a DataFrame (the generation widget's core).

    ``question`` is wrapped as ``"\\n\\nHuman: {question}\\n\\nAssistant:"`` unless it
    already contains an "Assistant:" turn. ``temperature=0`` means greedy (one answer).
    """
    if not question.strip():
        raise ValueError("question is empty: type something for the model to answer")
    prompt = question if "Assistant:" in question else (
        f"\n\nHuman: {question.strip()}\n\nAssistant:")
    greedy = temperature <= 0
    out = generate(model, tokenizer, [prompt] * (1 if greedy else n), max_new_tokens,
                   temperature=max(temperature, 1e-6), greedy=greedy, seed=seed)
    return pd.DataFrame([{"answer": r["answer"], "tokens": r["n_tokens"],
                          "stopped (EOS)": r["ended_with_eos"]} for r in out.rows()])
