"""Selection pressure: what picking the judge's favourite does to a feature.

Taught in notebook 06, in its order: 6.2 best-of-N over a fixed pool (the exact
order-statistic estimator, no resampling), 6.3 the tilt of KL-regularised RL,
6.4 Gao et al.'s best-of-n curve (the KL bound and the fit d(alpha - beta d)),
6.7 how much of a score gain is length (Singhal et al. 2023). Pure numpy: no
models, no plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _vector(name: str, x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


# --------------------------------------------------------------------------
# 6.2 How often does best-of-N pick the feature?
# --------------------------------------------------------------------------
def best_of_n_weights(k: int, n: int) -> np.ndarray:
    """P(the sample of ascending rank i is the best of a random n-subset): ``(k,)``.

    Rank i (1-based) wins when it is in the subset and the other n-1 members all
    rank below it: C(i-1, n-1) / C(k, n). Zero for i < n; the weights sum to 1.
    """
    if not (isinstance(k, int) and isinstance(n, int)) or not 1 <= n <= k:
        raise ValueError(f"best_of_n_weights: need whole numbers 1 <= n <= k, got n={n}, k={k}")
    total = math.comb(k, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, k + 1)])


def best_of_n_expected(scores, values, ns: Sequence[int]) -> np.ndarray:
    """E[value of the best-scoring of n samples drawn without replacement] per n.

    ``scores, values: (k,)`` one pool (the judge's score of each candidate, and
    what we record about it: 1/0 for a feature, or a gold score). Exact, from
    the one pool: sort by score and weight each rank by
    :func:`best_of_n_weights`. Ties in score are broken by averaging their values.
    Returns ``(len(ns),)``.
    """
    s, v = _vector("scores", scores), _vector("values", values)
    if s.shape != v.shape:
        raise ValueError(f"scores {s.shape} and values {v.shape} differ in size")
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    for t in np.unique(s[np.r_[False, s[1:] == s[:-1]]]):  # average tied values
        v[s == t] = v[s == t].mean()
    return np.array([float(best_of_n_weights(s.size, int(n)) @ v) for n in ns])


def bootstrap_over_pools(per_pool, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean over pools of ``per_pool: (n_pools, m)`` with a 95% bootstrap over pools.

    Returns ``{"mean": (m,), "ci_low", "ci_high", "n_pools"}``: the interval
    resamples whole pools (prompts), the unit that was drawn at random.
    """
    per = np.asarray(per_pool, dtype=np.float64)
    if per.ndim != 2 or per.shape[0] == 0:
        raise ValueError(f"per_pool {per.shape}: need (n_pools, m) with n_pools >= 1")
    rng = np.random.default_rng(seed)
    boots = per[rng.integers(0, len(per), size=(max(n_boot, 1), len(per)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return {"mean": per.mean(axis=0), "ci_low": lo, "ci_high": hi, "n_pools": len(per)}


def pooled_best_of_n(scores, values, ns: Sequence[int], n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """:func:`best_of_n_expected` averaged over pools, with a bootstrap over pools.

    ``scores, values: (n_pools, k)``. Returns what :func:`bootstrap_over_pools` does.
    """
    s, v = np.asarray(scores, float), np.asarray(values, float)
    if s.ndim != 2 or s.shape != v.shape:
        raise ValueError(f"scores {s.shape} and values {v.shape}: need the same (n_pools, k)")
    per = np.stack([best_of_n_expected(a, b, ns) for a, b in zip(s, v)])  # (pools, len(ns))
    return bootstrap_over_pools(per, n_boot, seed)


def feature_share_best_of_n(plain, with_feature, p0: float, ns: Sequence[int],
                            n_draws: int = 200, seed: int = 0) -> np.ndarray:
    """Share of best-of-n picks carrying a feature, per pool, averaged over coins.

    ``plain, with_feature: (n_pools, k)``: the judge's score of each candidate
    without and with the feature. Each candidate carries it with a coin of
    probability ``p0``; for each of ``n_draws`` seeded coin draws the share is
    exact (:func:`best_of_n_expected`), and the draws are averaged so that the
    coins add no noise. Returns ``(n_pools, len(ns))``.
    """
    a, b = np.asarray(plain, float), np.asarray(with_feature, float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"plain {a.shape} and with_feature {b.shape}: need (n_pools, k)")
    if not 0 < p0 < 1:
        raise ValueError(f"p0={p0}: a probability strictly between 0 and 1")
    k = a.shape[1]
    w = np.stack([best_of_n_weights(k, int(n)) for n in ns])  # (len(ns), k)
    rng = np.random.default_rng(seed)
    out = np.zeros((a.shape[0], len(ns)))
    for _ in range(n_draws):
        coin = rng.random(a.shape) < p0
        s = np.where(coin, b, a)
        order = np.argsort(s, axis=1, kind="stable")
        out += np.take_along_axis(coin, order, axis=1).astype(float) @ w.T
    return out / n_draws


# --------------------------------------------------------------------------
# 6.3 What does the tilt formula predict?
# --------------------------------------------------------------------------
def tilt_share(p0: float, delta, beta) -> np.ndarray:
    """Share of answers with a feature under pi* ∝ pi_ref · exp(r / beta).

    A feature that adds ``delta`` to the reward (in the reward's units) and sits
    on a share ``p0`` of the reference's answers ends at
    p0·e^(delta/beta) / (p0·e^(delta/beta) + 1 - p0). Arrays broadcast.
    """
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0={p0}: a share in [0, 1]")
    beta = np.asarray(beta, dtype=np.float64)
    if np.any(beta <= 0):
        raise ValueError("beta must be > 0 (beta -> 0 is pure maximisation)")
    if p0 in (0, 1):
        return np.full(np.broadcast(np.asarray(delta), beta).shape, float(p0))
    logit = math.log(p0 / (1 - p0)) + np.asarray(delta, dtype=np.float64) / beta
    return 1 / (1 + np.exp(-logit))


# --------------------------------------------------------------------------
# 6.4 Does the gold score peak under best-of-N?
# --------------------------------------------------------------------------
def bon_kl_bound(n) -> np.ndarray:
    """log n - (n - 1)/n nats: an upper bound on KL(best-of-n || base).

    Stiennon et al. (2020) give it as the KL; Beirami et al. (2024) show it is
    only a bound, loose when samples repeat.
    """
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1):
        raise ValueError("n must be >= 1")
    return np.log(n) - (n - 1) / n


def fit_gao_bon(d, gold) -> dict:
    """Least-squares fit of gold = d·(alpha - beta·d) (no intercept: 0 at d = 0).

    ``d, gold: (m,)``. Returns {"alpha", "beta", "d_peak"}: the peak d* = alpha / 2
    beta (inf when beta <= 0: the fit never turns down).
    """
    d, g = _vector("d", d), _vector("gold", gold)
    if d.shape != g.shape or d.size < 2:
        raise ValueError("fit_gao_bon: need d and gold of the same size, at least 2")
    x = np.stack([d, -d * d], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(x, g, rcond=None)
    peak = alpha / (2 * beta) if beta > 0 else math.inf
    return {"alpha": float(alpha), "beta": float(beta), "d_peak": float(peak)}


# --------------------------------------------------------------------------
# 6.7 How much of the gain is length?
# --------------------------------------------------------------------------
def length_decomposition(words_before, scores_before, words_after, scores_after,
                         edges: Sequence[float]) -> dict:
    """Split a mean score gain into a shift between length bins and a gain within them.

    Bins: ``edges`` (ascending; the outer bins are open). With w_b the share of
    answers in bin b and m_b their mean score:
    between = Σ_b (w_after_b - w_before_b)·m_before_b,
    within = Σ_b w_after_b·(m_after_b - m_before_b). A bin empty before borrows
    the overall mean before. between + within = the total gain.
    Returns {"total", "between", "within", "length_share"}.
    """
    wb, sb = _vector("words_before", words_before), _vector("scores_before", scores_before)
    wa, sa = _vector("words_after", words_after), _vector("scores_after", scores_after)
    if wb.shape != sb.shape or wa.shape != sa.shape:
        raise ValueError("words and scores must have the same size, before and after")
    bins_b = np.searchsorted(np.asarray(edges, float), wb, side="right")
    bins_a = np.searchsorted(np.asarray(edges, float), wa, side="right")
    between = within = 0.0
    for b in range(len(edges) + 1):
        w_b, w_a = float(np.mean(bins_b == b)), float(np.mean(bins_a == b))
        m_b = float(sb[bins_b == b].mean()) if w_b else float(sb.mean())
        m_a = float(sa[bins_a == b].mean()) if w_a else m_b
        between += (w_a - w_b) * m_b
        within += w_a * (m_a - m_b)
    total = float(sa.mean() - sb.mean())
    share = between / total if total != 0 else math.nan
    return {"total": total, "between": between, "within": within, "length_share": share}


def bootstrap_length_share(words_before, scores_before, words_after, scores_after,
                           edges: Sequence[float], n_boot: int = 1000,
                           seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of ``length_share`` (before and after resampled apart)."""
    wb, sb = np.asarray(words_before, float), np.asarray(scores_before, float)
    wa, sa = np.asarray(words_after, float), np.asarray(scores_after, float)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        i, j = rng.integers(0, wb.size, wb.size), rng.integers(0, wa.size, wa.size)
        out.append(length_decomposition(wb[i], sb[i], wa[j], sa[j], edges)["length_share"])
    out = np.asarray(out)
    out = out[np.isfinite(out)]
    if out.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.percentile(out, [2.5, 97.5])
    return (float(lo), float(hi))
