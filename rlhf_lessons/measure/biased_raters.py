"""A controlled rater bias (a simulation): raters who favour a marker, and their judges.

Taught in notebook 06, section 6.5. The raters follow the human label of each
HH-RLHF pair, except that when exactly one answer carries a confidence marker
(an opener such as "Sure.") they pick that one with probability ``b`` whatever
its content. A judge is fitted to each rater's labels cheaply: the shipped
judge's transformer stays frozen, each (prompt, answer) is embedded once, and
only a linear score head is fitted with the Bradley-Terry loss (seconds).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_lessons.core.batching import right_pad
from rlhf_lessons.train.reward import encode, judge_text


# --------------------------------------------------------------------------
# 6.5 Do biased raters make a biased policy?
# --------------------------------------------------------------------------
def has_marker(answer: str, opener: str) -> bool:
    """Does ``answer`` open with the marker's first word ("Sure." -> "sure", any case)?"""
    word = opener.strip().split()[0].strip(".,!").lower()
    first = answer.strip().split()[:1]
    return bool(first) and first[0].strip(".,!").lower() == word


def add_marker(answer: str, opener: str) -> str:
    """``"<opener> <answer>"``, unless the answer already opens with it."""
    answer = answer.strip()
    return answer if has_marker(answer, opener) else f"{opener} {answer}".strip()


def biased_labels(human_label, marker_a, marker_b, b: float, rng) -> np.ndarray:
    """Labels of a rater with a marker bias ``b``: True where A is preferred.

    ``human_label, marker_a, marker_b: (n,)`` bool. Where exactly one answer
    carries the marker, with probability ``b`` the rater picks the marked one
    (ignoring content); otherwise, and everywhere else, the human label. If the
    markers are independent of content, the marked answer then wins
    b + (1 - b)·P(human prefers it) of those pairs (0.5 + b/2 for random markers).
    """
    h, ma, mb = (np.asarray(x, dtype=bool).reshape(-1) for x in (human_label, marker_a,
                                                                 marker_b))
    if not (h.shape == ma.shape == mb.shape):
        raise ValueError(f"human_label {h.shape}, marker_a {ma.shape}, marker_b {mb.shape}: "
                         "need the same size")
    if not 0 <= b <= 1:
        raise ValueError(f"b={b}: a probability in [0, 1]")
    one = ma != mb
    biased = one & (rng.random(h.size) < b)
    return np.where(biased, ma, h)


@torch.no_grad()
def embed_answers(model, tokenizer, prompts: Sequence[str], answers: Sequence[str],
                  max_len: int = 256, device="cpu", batch_size: int = 32) -> dict:
    """Frozen features of each (prompt, answer), read exactly as the judge reads them.

    ``model``: a judge (``GPT2ForSequenceClassification``). Returns {"x": (n, 2d):
    the hidden state at the last token beside the mean over all tokens,
    "score": (n,) the judge's own score}. Mean-pooling lets a head see an opener
    that sits far from the last token.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    max_len = min(max_len, model.config.n_positions)
    ids, _ = encode(tokenizer, [judge_text(p, a.strip()) for p, a in zip(prompts, answers)],
                    max_len)
    d = model.config.n_embd
    x, s = np.zeros((len(ids), 2 * d), np.float32), np.zeros(len(ids))
    order = np.argsort([len(t) for t in ids])
    model.eval()
    for i in range(0, len(ids), batch_size):
        chunk = order[i:i + batch_size]
        t, m = right_pad([ids[j] for j in chunk], tokenizer.pad_token_id, 8, max_len)
        t, m = t.to(device), m.to(device)
        h = model.transformer(input_ids=t, attention_mask=m).last_hidden_state.float()
        last = h[torch.arange(len(chunk)), m.sum(1) - 1]  # (b, d)
        mean = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True)  # (b, d)
        x[chunk] = torch.cat([last, mean], -1).cpu().numpy()
        s[chunk] = model.score(last).squeeze(-1).cpu().numpy()
    return {"x": x, "score": s}


def fit_linear_head(x_a, x_b, a_wins, l2: float = 1e-3, steps: int = 200,
                    seed: int = 0) -> dict:
    """Bradley-Terry fit of a linear score head on frozen features.

    ``x_a, x_b: (n, d)`` features of the two answers; ``a_wins: (n,)`` bool.
    Minimises mean softplus(-s·w·(x_a - x_b)) + l2·|w|² with s = ±1, on
    standardised features (full-batch L-BFGS). Returns {"w": (d,), "scale": (d,),
    "train_acc"}; :func:`linear_scores` applies it.
    """
    xa, xb = np.asarray(x_a, np.float64), np.asarray(x_b, np.float64)
    y = np.asarray(a_wins, bool).reshape(-1)
    if xa.shape != xb.shape or xa.ndim != 2 or xa.shape[0] != y.size or y.size == 0:
        raise ValueError(f"x_a {xa.shape}, x_b {xb.shape}, a_wins {y.shape}: need (n, d), "
                         "(n, d), (n,)")
    scale = np.concatenate([xa, xb]).std(0) + 1e-6
    diff = torch.tensor((xa - xb) / scale, dtype=torch.float64)
    sign = torch.tensor(np.where(y, 1.0, -1.0))
    torch.manual_seed(seed)
    w = torch.zeros(diff.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.softplus(-sign * (diff @ w)).mean() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w = w.detach().numpy()
    acc = float(((diff.numpy() @ w) * sign.numpy() > 0).mean())
    return {"w": w, "scale": scale, "train_acc": acc}


def linear_scores(head: dict, x) -> np.ndarray:
    """Scores ``(n,)`` of features ``x: (n, d)`` under a head of :func:`fit_linear_head`."""
    return (np.asarray(x, np.float64) / head["scale"]) @ head["w"]


def linear_judge_fn(model, tokenizer, head: dict, max_len: int = 256, device="cpu"):
    """A fitted head as ``reward_fn(prompts, responses) -> list[float]`` (for PPO)."""
    def reward_fn(prompts, responses):
        x = embed_answers(model, tokenizer, list(prompts), list(responses), max_len,
                          device)["x"]
        return linear_scores(head, x).tolist()

    return reward_fn
