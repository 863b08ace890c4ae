"""What raters and judges pay for: surface features and an L1 logistic regression.

Taught in notebook 05, in its order: 5.1 the surface features of an answer,
5.2 pair differences and a Laplace-prior (L1) logistic regression of the raters'
choices, with bootstrap intervals and coefficients as Δ preference probability,
5.4 the same regression on the judge's choices and a verdict per feature, 5.5
the "be the rater" tally. In the spirit of Sharma et al. 2023 ("Towards
Understanding Sycophancy"), with features a laptop computes offline instead of
labels from a large model.

Shapes: ``F`` is ``(n_pairs, n_features)``; labels ``y`` are ``(n_pairs,)`` in
{0, 1}, 1 when answer A (the first) was preferred.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rlhf_lessons.measure.analysis import (
    AGREEMENT_PHRASES,
    FLATTERY_PHRASES,
    REFUSAL_PHRASES,
    answer_features,
    count_phrases,
)
from rlhf_lessons.measure.evaluate import wilson_ci
from rlhf_lessons.measure.rewrites import confident, flattering, hedged

# ---------------------------------------------------------------------------
# 5.1 Which surface features can a laptop measure
# ---------------------------------------------------------------------------
RATER_FEATURES = ("log_words", "confident", "hedge", "apology_refusal", "praise",
                  "agreement", "question_back", "exclamation", "second_person",
                  "list_or_number")
PRAISE_PHRASES = tuple(p for p in FLATTERY_PHRASES if p not in AGREEMENT_PHRASES)
APOLOGY_PHRASES = (*REFUSAL_PHRASES, "sorry", "apologise", "apologize", "my apologies")
SECOND_PERSON = ("you", "your", "you're", "yours", "yourself", "you'll", "you've")
_LIST_RE = re.compile(r"\d|(?:^|\n)\s*(?:[-*•]|\w[.)])\s")


def surface_features(text: str) -> dict[str, float]:
    """The 10 features of one answer (:data:`RATER_FEATURES`), for notebook 05.

    ``log_words`` = log(1 + words); every other feature is 1.0 when the answer
    has it and 0.0 when not: a confident word or a hedge (the lists of notebook
    01, :func:`rlhf_lessons.measure.analysis.answer_features`), an apology or refusal,
    praise of the user, agreement with the user, a question mark, an
    exclamation mark, "you"/"your", a digit or a list item.
    """
    base = answer_features(text)  # raises a clear TypeError on a non-str
    has = {
        "confident": base["confident"],
        "hedge": base["hedge"],
        "apology_refusal": count_phrases(text, APOLOGY_PHRASES),
        "praise": count_phrases(text, PRAISE_PHRASES),
        "agreement": count_phrases(text, AGREEMENT_PHRASES),
        "question_back": text.count("?"),
        "exclamation": base["exclamations"],
        "second_person": count_phrases(text, SECOND_PERSON),
        "list_or_number": len(_LIST_RE.findall(text)),
    }
    out = {"log_words": math.log1p(base["words"])}
    out.update({k: float(v > 0) for k, v in has.items()})
    return out


def feature_matrix(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), 10)``: :func:`surface_features` of each text, in column order
    :data:`RATER_FEATURES`."""
    rows = (surface_features(t) for t in texts)
    return np.array([[f[k] for k in RATER_FEATURES] for f in rows],
                    dtype=np.float64).reshape(len(texts), len(RATER_FEATURES))


# ---------------------------------------------------------------------------
# 5.2 What do the raters pay for
# ---------------------------------------------------------------------------
def random_flips(n: int, seed: int = 0) -> np.ndarray:
    """``(n,)`` bool, seeded: True where answer A shows the REJECTED side."""
    return np.random.default_rng(seed).random(n) < 0.5


def pair_differences(f_chosen, f_rejected, flip):
    """Pair features ``X = f(A) - f(B)`` and labels ``y = 1`` when A was chosen.

    ``f_chosen, f_rejected: (n, k)``; ``flip: (n,)`` bool, True where A is the
    rejected answer. With A/B shuffled the label is balanced and the intercept
    means nothing. Returns ``(X: (n, k), y: (n,) float)``.
    """
    fc, fr = np.asarray(f_chosen, float), np.asarray(f_rejected, float)
    flip = np.asarray(flip, bool)
    if fc.shape != fr.shape or fc.ndim != 2 or flip.shape != (fc.shape[0],):
        raise ValueError(f"pair_differences: f_chosen {fc.shape}, f_rejected {fr.shape} "
                         f"and flip {flip.shape} must be (n, k), (n, k) and (n,)")
    x = np.where(flip[:, None], fr - fc, fc - fr)
    return x, (~flip).astype(np.float64)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def delta_prob(coef, sd=1.0):
    """A logistic coefficient as a change in preference probability.

    ``σ(coef · sd) − 0.5``: how far P(A preferred) moves from 50 % when A has
    ``sd`` more of the feature than B (one standard deviation of the pair
    difference when ``coef`` is per raw unit). Works on arrays.
    """
    return sigmoid(np.asarray(coef, float) * np.asarray(sd, float)) - 0.5


@dataclass
class L1Logistic:
    """A fitted model: ``P(A preferred) = σ(b + Σ_j w_j x_j / sd_j)``."""

    w: np.ndarray  # (k,) per standard deviation of each pair difference
    b: float
    sd: np.ndarray  # (k,) the scale the features were divided by

    def proba(self, x) -> np.ndarray:
        return sigmoid(np.asarray(x, float) / self.sd @ self.w + self.b)


def _scale(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def _fista(z, y, lam, w, b, n_iter):
    # proximal gradient (FISTA) on mean log-loss + lam * |w|_1; b is not penalised
    n = len(y)
    step = 1.0 / (0.25 * (np.linalg.norm(z, 2) ** 2 / n + 1.0))
    wv, bv, t = w.copy(), b, 1.0
    for _ in range(n_iter):
        g = sigmoid(z @ wv + bv) - y
        w_new = wv - step * (z.T @ g / n)
        w_new = np.sign(w_new) * np.maximum(np.abs(w_new) - step * lam, 0.0)
        b_new = bv - step * g.mean()
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        mom = (t - 1) / t_new
        wv = w_new + mom * (w_new - w)
        bv = b_new + mom * (b_new - b)
        w, b, t = w_new, b_new, t_new
    return w, b


def fit_l1_logistic(x, y, lam: float = 1e-3, n_iter: int = 400,
                    sd=None, start: L1Logistic | None = None) -> L1Logistic:
    """MAP logistic regression with a Laplace prior (L1), features standardised.

    ``x: (n, k)`` pair differences, ``y: (n,)`` in {0, 1}. Minimises the mean
    log-loss + ``lam`` · Σ|w_j| on ``x / sd`` (``sd``: the columns' standard
    deviations unless given), so ``w_j`` is per standard deviation and a
    feature that does not help is set to exactly 0.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or not len(y):
        raise ValueError(f"fit_l1_logistic: x {x.shape} must be (n, k) and y {y.shape} (n,)")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("fit_l1_logistic: y must be 0 or 1")
    if lam < 0:
        raise ValueError(f"fit_l1_logistic: lam={lam} must be >= 0")
    sd = _scale(x) if sd is None else np.asarray(sd, np.float64)
    w0 = np.zeros(x.shape[1]) if start is None else start.w
    b0 = 0.0 if start is None else start.b
    w, b = _fista(x / sd, y, lam, w0, b0, n_iter)
    return L1Logistic(w=w, b=float(b), sd=sd)


def regression_table(x, y, names: Sequence[str], lam: float = 1e-3,
                     n_boot: int = 200, seed: int = 0, n_iter: int = 400):
    """Fit, then refit on ``n_boot`` resamples of the PAIRS: ``(model, table)``.

    Each refit starts from the full fit and takes ``n_iter // 4`` steps.

    ``table`` has one row per feature: ``coef`` (logit per sd), ``dp`` = Δ
    preference probability (:func:`delta_prob` of coef), ``dp_low``/``dp_high``
    (2.5/97.5 percentiles of the bootstrap Δp) and ``n``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    model = fit_l1_logistic(x, y, lam, n_iter)
    rng = np.random.default_rng(seed)
    boots = np.empty((n_boot, x.shape[1]))
    for i in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boots[i] = fit_l1_logistic(x[idx], y[idx], lam, max(1, n_iter // 4), sd=model.sd,
                                   start=model).w
    dp_b = delta_prob(boots) if n_boot else np.full((1, x.shape[1]), np.nan)
    lo, hi = np.percentile(dp_b, [2.5, 97.5], axis=0)
    table = pd.DataFrame({"coef": model.w, "dp": delta_prob(model.w), "dp_low": lo,
                          "dp_high": hi, "n": len(y)}, index=list(names))
    table.index.name = "feature"
    return model, table


def accuracy(model: L1Logistic, x, y) -> dict:
    """Share of pairs where the model's side (P > 0.5) is the labelled one, with
    its 95 % Wilson interval and n."""
    hit = (model.proba(x) > 0.5) == (np.asarray(y) > 0.5)
    k, n = int(hit.sum()), int(hit.size)
    return {"accuracy": k / n if n else float("nan"), "ci95": wilson_ci(k, n), "n": n}


# ---------------------------------------------------------------------------
# 5.4 What does the judge pay for
# ---------------------------------------------------------------------------
def _clear(lo: float, hi: float) -> bool:
    return lo > 0 or hi < 0


def verdict(raters: Mapping, judge: Mapping) -> str:
    """What the judge does with one feature, from two rows with dp, dp_low, dp_high.

    copies (both clear of 0, same sign, intervals overlap); exaggerates / damps
    (both clear, same sign, intervals disjoint, judge's larger / smaller);
    reverses (both clear, opposite signs); invents (judge clear, raters not);
    ignores (raters clear, judge not); "neither pays" (neither clear).
    """
    rc, jc = _clear(raters["dp_low"], raters["dp_high"]), _clear(judge["dp_low"],
                                                                  judge["dp_high"])
    if rc and jc:
        if np.sign(raters["dp"]) != np.sign(judge["dp"]):
            return "reverses"
        disjoint = judge["dp_low"] > raters["dp_high"] or judge["dp_high"] < raters["dp_low"]
        if not disjoint:
            return "copies"
        return "exaggerates" if abs(judge["dp"]) > abs(raters["dp"]) else "damps"
    if jc:
        return "invents"
    return "ignores" if rc else "neither pays"


def compare_tables(raters: pd.DataFrame, judge: pd.DataFrame) -> pd.DataFrame:
    """Side by side: Δp of the raters and of the judge, and :func:`verdict`."""
    out = pd.DataFrame({"raters": raters["dp"], "raters_low": raters["dp_low"],
                        "raters_high": raters["dp_high"], "judge": judge["dp"],
                        "judge_low": judge["dp_low"], "judge_high": judge["dp_high"]})
    out["verdict"] = [verdict(raters.loc[f], judge.loc[f]) for f in out.index]
    return out


# ---------------------------------------------------------------------------
# 5.5 Be the rater
# ---------------------------------------------------------------------------
def rater_items(rows: Sequence[Mapping], n_real: int, n_confident: int,
                n_flattering: int, seed: int = 0) -> list[dict]:
    """Pairs for the learner to label, A/B order seeded.

    ``rows``: dicts with prompt, chosen_response, rejected_response. The first
    ``n_real`` rows give real HH pairs (``hh`` = the raters' side); the next
    rows give controlled pairs of ONE answer: confident vs hedged
    (``kind="confident"``) and flattering vs plain (``kind="flattering"``);
    ``variant`` is the side with the confident / flattering version.
    """
    need = n_real + n_confident + n_flattering
    if len(rows) < need:
        raise ValueError(f"rater_items: {len(rows)} rows, need {need}")
    rng = np.random.default_rng(seed)
    items = []
    for i, r in enumerate(rows[:need]):
        a_first = bool(rng.random() < 0.5)
        if i < n_real:
            kind, x, y = "real", r["chosen_response"], r["rejected_response"]
        elif i < n_real + n_confident:
            kind = "confident"
            x, y = confident(r["chosen_response"]), hedged(r["chosen_response"])
        else:
            kind = "flattering"
            x, y = flattering(r["chosen_response"]), r["chosen_response"].strip()
        a, b = (x, y) if a_first else (y, x)
        side = "A" if a_first else "B"
        items.append({"kind": kind, "prompt": r["prompt"], "A": a, "B": b,
                      "hh": side if kind == "real" else None,
                      "variant": side if kind != "real" else None,
                      "subset": r.get("subset", "")})
    order = rng.permutation(len(items))
    return [items[i] for i in order]


def rater_results(items: Sequence[Mapping], labels: Mapping[int, str],
                  judge_picks: Sequence[str] | None = None) -> pd.DataFrame:
    """The learner's tally: agreement with the HH raters and the judge, and how
    often they picked the confident / flattering version.

    ``labels``: item index -> "A" or "B" (unlabelled items are left out);
    ``judge_picks[i]``: the side the judge scores higher. Rows: k, n, rate and
    its 95 % Wilson interval; n = 0 gives rate NaN.
    """
    bad = {i: v for i, v in labels.items() if v not in ("A", "B")}
    if bad:
        raise ValueError(f"rater_results: labels must be 'A' or 'B', got {bad}")
    rows = {}

    def tally(name, pairs):
        k, n = sum(a == b for a, b in pairs), len(pairs)
        lo, hi = wilson_ci(k, n)
        rows[name] = {"k": k, "n": n, "rate": k / n if n else float("nan"),
                      "ci_low": lo, "ci_high": hi}

    got = [(i, v) for i, v in sorted(labels.items()) if 0 <= i < len(items)]
    tally("agree with the HH raters",
          [(v, items[i]["hh"]) for i, v in got if items[i]["hh"]])
    if judge_picks is not None:
        tally("agree with the judge", [(v, judge_picks[i]) for i, v in got])
    for kind in ("confident", "flattering"):
        tally(f"picked the {kind} version",
              [(v, items[i]["variant"]) for i, v in got if items[i]["kind"] == kind])
    return pd.DataFrame.from_dict(rows, orient="index")


def rater_summary(table: pd.DataFrame, n_items: int) -> str:
    """The results cell's text: each row of :func:`rater_results` as "k of n
    (rate, 95 % CI)", or, when nothing is labelled, how to label."""
    n_labelled = int(table["n"].max()) if len(table) else 0
    if "agree with the judge" in table.index:
        n_labelled = int(table.loc["agree with the judge", "n"])
    if n_labelled == 0:
        return (f"0 of {n_items} labelled: label some pairs above and re-run this cell")
    lines = [f"{n_labelled} of {n_items} labelled (your labels, nobody else's):"]
    for name, r in table.iterrows():
        if r["n"] == 0:
            lines.append(f"  {name:28} no pair of this kind labelled yet")
        else:
            lines.append(f"  {name:28} {int(r['k'])} of {int(r['n'])} = {r['rate']:.0%} "
                         f"(95% CI {r['ci_low']:.0%}-{r['ci_high']:.0%})")
    return "\n".join(lines)
