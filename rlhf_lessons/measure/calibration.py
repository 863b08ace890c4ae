"""Calibration: is a model right as often as it is sure?

Taught in notebook 06, section 6.6: the expected calibration error and the
reliability diagram, next-token confidence of a language model on held-out
text (at several temperatures), the one temperature that fits best (Kadavath et
al. 2022), and a judge's own confidence sigma(r_a - r_b).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlhf_lessons.train.reward import judge_text


# --------------------------------------------------------------------------
# 6.6 Is the policy sure when it is wrong?
# --------------------------------------------------------------------------
def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    # equal-width bins on [0, 1]; the last is closed, so 1.0 belongs to it
    return np.minimum((conf * n_bins).astype(int), n_bins - 1)


def _check(conf, correct, n_bins):
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.size == 0 or conf.shape != correct.shape:
        raise ValueError(f"confidences {conf.shape} and correct {correct.shape}: need the "
                         "same non-zero size")
    if np.any((conf < 0) | (conf > 1)):
        raise ValueError("confidences must lie in [0, 1]")
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r}: a whole number >= 1")
    return conf, correct


def reliability_bins(confidences, correct, n_bins: int = 10) -> dict:
    """Per equal-width bin: ``count``, mean ``confidence`` and ``accuracy`` (NaN if empty)."""
    conf, hit = _check(confidences, correct, n_bins)
    b = _bins(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, conf, n_bins) / count
        acc = np.bincount(b, hit, n_bins) / count
    return {"count": count, "confidence": mean_conf, "accuracy": acc,
            "edges": np.linspace(0, 1, n_bins + 1)}


def ece(confidences, correct, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_b (n_b / N)·|acc_b - conf_b|."""
    r = reliability_bins(confidences, correct, n_bins)
    keep = r["count"] > 0
    w = r["count"][keep] / r["count"].sum()
    return float((w * np.abs(r["accuracy"][keep] - r["confidence"][keep])).sum())


@torch.no_grad()
def next_token_stats(model, tokenizer, prompts: Sequence[str], answers: Sequence[str],
                     temperatures: Sequence[float], max_len: int = 256,
                     device="cpu") -> dict:
    """Next-token confidence on the ANSWER tokens of held-out transcripts.

    For each answer token the model predicts from everything before it; at each
    temperature T: ``conf`` = max softmax(logits / T), ``nll`` = -log p(true token).
    ``correct`` (the argmax is the true token) does not depend on T.
    Returns {"correct": (n,), "conf": (len(T), n), "nll": (len(T), n)}.
    """
    if len(prompts) != len(answers) or not len(prompts):
        raise ValueError("next_token_stats: need as many prompts as answers, at least one")
    temps = torch.tensor([float(t) for t in temperatures])
    if temps.numel() == 0 or bool((temps <= 0).any()):
        raise ValueError("temperatures must be > 0")
    model.eval()
    correct, conf, nll = [], [], []
    for p, a in zip(prompts, answers):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"][-(max_len // 2):]
        full = tokenizer(judge_text(p, a.strip()), add_special_tokens=False)["input_ids"]
        a_ids = full[len(tokenizer(p, add_special_tokens=False)["input_ids"]):]
        a_ids = a_ids[:max_len - len(p_ids)]
        if not a_ids:
            continue
        ids = torch.tensor([p_ids + a_ids], device=device)
        logits = model(input_ids=ids).logits[0, len(p_ids) - 1:-1].float().cpu()  # (a, V)
        target = torch.tensor(a_ids)
        correct.append((logits.argmax(-1) == target).numpy())
        lp = torch.log_softmax(logits[None] / temps[:, None, None], dim=-1)  # (T, a, V)
        conf.append(lp.max(-1).values.exp().numpy())
        nll.append(-lp[:, torch.arange(len(a_ids)), target].numpy())
    return {"correct": np.concatenate(correct), "conf": np.concatenate(conf, axis=1),
            "nll": np.concatenate(nll, axis=1)}


def fit_temperature(stats: dict, temperatures: Sequence[float]) -> dict:
    """The temperature (of the grid) with the lowest mean NLL, and the ECE there.

    ``stats``: from :func:`next_token_stats` on the same ``temperatures``.
    Returns {"T", "nll", "ece"}.
    """
    nll = np.asarray(stats["nll"]).mean(axis=1)
    k = int(np.argmin(nll))
    return {"T": float(temperatures[k]), "nll": float(nll[k]),
            "ece": ece(stats["conf"][k], stats["correct"], 10)}


def judge_confidence(r_first, r_second) -> tuple[np.ndarray, np.ndarray]:
    """A judge's confidence in the side it picks, and whether that side was chosen.

    ``r_first`` are the scores of the answers the raters chose: the judge picks
    the higher side with confidence sigma(|r_c - r_r|). Returns (conf, correct).
    """
    gap = np.asarray(r_first, float) - np.asarray(r_second, float)
    return 1 / (1 + np.exp(-np.abs(gap))), gap > 0
