"""Token plumbing shared by SFT, the judge, PPO and generation: one copy of each.

- prompts to token lists (:func:`encode_prompts`), keeping the END of a long one;
- padding: :func:`left_pad` for prompts a decoder continues, :func:`right_pad` for
  texts read whole (SFT examples, judge inputs), and :func:`position_ids` that count
  real tokens only, so a padded row reads as it would alone;
- answers: :func:`truncate_after_eos` and :func:`decode_responses`;
- masked statistics over real tokens (:func:`masked_mean`, :func:`masked_whiten`);
- :func:`length_buckets`: batches of similar length in a seeded random order.

Taught along the way in notebooks 02 (padding, generation), 03 (the judge's batches)
and 04 (PPO's rollout).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

# Judge batch lengths are rounded up to a multiple of this: on a CPU every new
# tensor shape costs a one-off kernel set-up and keeps cached memory.
PAD_MULTIPLE = 32


CHARS_PER_TOKEN_CAP = 32  # tokenise at most max_tokens * 32 characters of a long text
TAIL_MARGIN = 16  # tokens beyond max_tokens that a cut text must give (see tail_token_ids)
_WORD_START = re.compile(r"(?<=\S)\s(?=\S)")  # one space between two words: a token edge


def tail_token_ids(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token lists of ``texts``, ready to be cut to their LAST ``max_tokens`` tokens,
    at a cost bounded by ``max_tokens``, not by the length of a text.

    A text longer than ``max_tokens * 32`` characters is cut to its last
    ``max_tokens * 32`` characters, then forward to the first single space between two
    words. GPT-2's tokenizer never merges across that edge, so the cut text's tokens
    end exactly as the whole text's do. When the cut text gives fewer than
    ``max_tokens + 16`` tokens, or has no such edge (one giant word or a long run of
    spaces), the whole text is tokenised. So ``ids[-max_tokens:]`` is always what
    tokenising the whole text gives, and a 50 MB answer costs what a few kilobytes
    do. ``max_tokens=0`` tokenises every text whole. Returns every token of each
    (possibly cut) text.
    """
    if not len(texts):
        return []
    cap = max_tokens * CHARS_PER_TOKEN_CAP
    tails = []
    for t in texts:
        edge = _WORD_START.search(t, len(t) - cap) if max_tokens and len(t) > cap else None
        tails.append(t[edge.start():] if edge else t)
    ids = [list(x) for x in tokenizer(tails, add_special_tokens=False)["input_ids"]]
    redo = [i for i, (t, tail) in enumerate(zip(texts, tails))
            if tail is not t and len(ids[i]) < max_tokens + TAIL_MARGIN]
    if redo:
        whole = tokenizer([texts[i] for i in redo], add_special_tokens=False)["input_ids"]
        for i, x in zip(redo, whole):
            ids[i] = list(x)
    return ids


def encode_prompts(tokenizer, prompts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token lists of ``prompts``, each cut to its LAST ``max_tokens`` tokens.

    Keeping the end of a long conversation keeps the turn the model must answer.
    ``max_tokens=0`` keeps every token. Raises on a non-string or empty prompt.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if not len(prompts):
        raise ValueError("prompts is empty")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i} is {type(p).__name__}, expected str")
    out = []
    for i, ids in enumerate(tail_token_ids(tokenizer, list(prompts), max_tokens)):
        if not ids:
            raise ValueError(f"prompt {i} is empty after tokenisation")
        out.append(ids[-max_tokens:] if max_tokens else ids)
    return out


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """LEFT-pad token lists to the longest: ``(ids, mask)``, each (B, P) long."""
    if not len(seqs):
        raise ValueError("left_pad: no sequences given")
    if any(len(s) == 0 for s in seqs):
        bad = next(i for i, s in enumerate(seqs) if len(s) == 0)
        raise ValueError(f"left_pad: sequence {bad} is empty")
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, P - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, P - len(s):] = 1
    return ids, mask


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int, multiple: int = 1,
              max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RIGHT-pad token lists: ``(ids, mask)``, each (B, L) long.

    L is the longest length rounded up to ``multiple``, but never past ``max_len``
    (nor below the longest sequence).
    """
    if not len(seqs):
        raise ValueError("right_pad: no sequences given")
    longest = max(len(s) for s in seqs)
    L = -(-longest // multiple) * multiple
    if max_len is not None:
        L = max(min(L, max_len), longest)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only: (B, T) mask -> (B, T), pads at 0.

    Left padding shifts every prompt right; without this a padded prompt would be
    read at positions it never saw in training.
    """
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def truncate_after_eos(response_ids: torch.Tensor, eos_id: int, pad_id: int):
    """Keep each answer up to and including its first EOS; pad the rest.

    response_ids: (B, R). Returns ``(ids, mask, has_eos)``: ids (B, R) with pads
    after the first EOS, mask (B, R) float (1 = a real token, EOS included: emitting
    EOS is an action the policy is rewarded for), has_eos (B,) bool.
    """
    is_eos = response_ids == eos_id
    before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS tokens strictly before t
    mask = before == 0
    ids = torch.where(mask, response_ids, torch.full_like(response_ids, pad_id))
    return ids, mask.float(), is_eos.any(-1)


def decode_responses(tokenizer, response_ids: torch.Tensor,
                     response_mask: torch.Tensor) -> list[str]:
    """Answers as text: the real tokens, EOS dropped, outer spaces stripped."""
    eos = tokenizer.eos_token_id
    out = []
    for ids, m in zip(response_ids.tolist(), response_mask.tolist()):
        keep = [t for t, k in zip(ids, m) if k and t != eos]
        out.append(tokenizer.decode(keep, skip_special_tokens=True).strip())
    return out


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (same shapes)."""
    x = torch.where(mask.bool(), x, torch.zeros_like(x))
    if dim is None:
        return x.sum() / mask.sum().clamp(min=1)
    return x.sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of ``x`` over the masked positions (a scalar)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    return var * n / (n - 1).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked positions; padded positions come out 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, torch.zeros_like(out))


def length_buckets(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of indices with similar lengths, in a seeded random order.

    Items are sorted by length (stable) and cut into batches of ``batch_size``, so a
    batch pads to about its own length; the ORDER of the batches is shuffled so
    training does not see the short items first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    return [batches[i] for i in rng.permutation(len(batches))]
