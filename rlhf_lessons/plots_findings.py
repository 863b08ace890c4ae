"""The plots of the findings: what the judge pays for and what optimisation does with it.

Notebooks 05 (raters and judges) and 06 (selection, the tilt, best-of-n, calibration);
the same rules and the same palette as :mod:`rlhf_lessons.plots`, which holds the
plots of the pipeline itself (data, training curves, judge scores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlhf_lessons.plots import (
    ACCENT_COLOR,
    CHOSEN_COLOR,
    NEUTRAL_COLOR,
    POLICY_COLOR,
    REFERENCE_COLOR,
    REJECTED_COLOR,
    _axes,
    plot_metrics,
)

if TYPE_CHECKING:
    from rlhf_lessons.overoptimisation import RunRecord


# --------------------------------------------------------------------------
# Notebook 05
def plot_judge_effects(effects, ax=None, title: str = "What the judge pays for"):
    """Mean score change per rewrite, with 95% bootstrap intervals -> Axes.

    ``effects``: the DataFrame of :func:`rlhf_lessons.evaluate.judge_effects`.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    names = list(effects.index)
    means = effects["mean"].to_numpy()
    lo = means - effects["ci_low"].to_numpy()
    hi = effects["ci_high"].to_numpy() - means
    colors = [CHOSEN_COLOR if m > 0 else REJECTED_COLOR for m in means]
    ys = np.arange(len(names))
    ax.barh(ys, means, color=colors, alpha=0.8)
    ax.errorbar(means, ys, xerr=np.vstack([lo, hi]), fmt="none", ecolor="black",
                capsize=3, lw=1)
    ax.axvline(0, color=REFERENCE_COLOR, lw=1)
    ax.set_yticks(ys, [f"{n} (n={int(k)})" for n, k in zip(names, effects["n"])])
    ax.invert_yaxis()
    ax.set_xlabel("mean Δ judge score (rewrite − base), 95% CI")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_paid_for(table, ax=None, title: str = "What raters and the judge pay for"):
    """Paired horizontal bars: Δ preference probability per feature for the raters
    and the judge, with 95 % bootstrap intervals -> Axes.

    ``table``: :func:`rlhf_lessons.raters.compare_tables` (columns raters,
    raters_low, raters_high, judge, judge_low, judge_high). Notebook 05.
    """
    ax = _axes(ax, figsize=(7.5, 0.45 * len(table) + 1.5))
    ys = np.arange(len(table))
    for who, color, dy in (("raters", CHOSEN_COLOR, -0.2), ("judge", ACCENT_COLOR, 0.2)):
        m = table[who].to_numpy() * 100
        err = np.vstack([m - table[f"{who}_low"].to_numpy() * 100,
                         table[f"{who}_high"].to_numpy() * 100 - m])
        ax.barh(ys + dy, m, height=0.38, color=color, alpha=0.85, label=who)
        ax.errorbar(m, ys + dy, xerr=err, fmt="none", ecolor="black", capsize=2, lw=1)
    ax.axvline(0, color=REFERENCE_COLOR, lw=1)
    ax.set_yticks(ys, list(table.index), fontsize=12)
    ax.invert_yaxis()
    ax.set_xlabel("Δ P(preferred), percentage points per 1 sd (95% CI)", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.legend(fontsize=12, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_feature_drift(metrics, features: Sequence[str] = ("words", "confident", "hedge",
                                                            "refusal", "repetition"),
                       axes=None, prefix: str = "feat/"):
    """Each answer feature (mean over the rollout) against the PPO update -> Axes list.

    ``metrics`` has columns ``update`` and ``feat/<name>`` (``train_ppo`` with the
    ``feature_columns`` hook).
    """
    keys = [prefix + f for f in features]
    return plot_metrics(metrics, keys, axes=axes, x="update", smooth=3)


def plot_overoptimisation(runs: Mapping[float, RunRecord], ax=None):
    """Proxy (dashed) and gold (solid) score against sqrt(KL), one colour per beta.

    The points of each run are its held-out evaluations along training; the
    reference policy is the origin.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    cmap = plt.get_cmap("viridis")
    betas = sorted(runs)
    for i, beta in enumerate(betas):
        pts = runs[beta].points.sort_values("update")
        col = cmap(i / max(1, len(betas) - 1))
        ax.plot(pts["sqrt_kl"], pts["proxy_score"], ls="--", marker="o", ms=3,
                color=col, alpha=0.8)
        ax.plot(pts["sqrt_kl"], pts["gold_score"], ls="-", marker="s", ms=4, color=col,
                label=f"β={beta:g}")
    ax.plot([], [], ls="--", color="black", label="proxy (dashed)")
    ax.plot([], [], ls="-", color="black", label="gold (solid)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("sqrt(KL(policy ‖ reference)), √nats")
    ax.set_ylabel("score (reference std units)")
    ax.set_title("Over-optimisation: proxy vs gold", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def plot_run_curves(runs: Mapping[str, RunRecord], names: Sequence[str], axes=None,
                    keys: Sequence[str] = ("objective/scores", "objective/kl")):
    """Training curves of several runs on shared axes (one Axes per key) -> list."""
    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 2.8),
                               layout="constrained", squeeze=False)
        axes = list(axes.ravel())
    for ax, key in zip(axes, keys):
        for name in names:
            m = runs[name].metrics
            if key in m:
                ax.plot(m["update"], m[key], marker="o", ms=3, label=name)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return axes


# --------------------------------------------------------------------------
# Notebook 06
# --------------------------------------------------------------------------
def plot_bon_selection(ns, shares: Mapping[str, dict], ax=None):
    """Share of best-of-N picks that carry each feature, against N (95% CI band)."""
    ax = _axes(ax, (6.5, 3.8))
    for col, (name, r) in zip((POLICY_COLOR, ACCENT_COLOR, CHOSEN_COLOR), shares.items()):
        ax.plot(ns, r["mean"], marker="o", ms=3, color=col, label=name)
        ax.fill_between(ns, r["ci_low"], r["ci_high"], color=col, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (candidates the judge picks from)", fontsize=12)
    ax.set_ylabel("share of picks with the feature", fontsize=12)
    ax.set_title("Best-of-N: how often the pick carries the feature", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=11)
    return ax


def plot_tilt(betas, share, band=None, p0: float | None = None, points=None, ax=None):
    """The tilted share against beta (log axis), its CI band and measured points."""
    ax = _axes(ax, (6.5, 3.8))
    ax.plot(betas, share, color=POLICY_COLOR, label="predicted (measured δ)")
    if band is not None:
        ax.fill_between(betas, band[0], band[1], color=POLICY_COLOR, alpha=0.2,
                        label="δ's 95% CI")
    if p0 is not None:
        ax.axhline(p0, color=REFERENCE_COLOR, ls="--", label=f"reference p0 = {p0:.3f}")
    for name, (b, s) in (points or {}).items():
        ax.plot([b], [s], "s", color=ACCENT_COLOR, ms=8, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("β (KL coefficient, log scale)", fontsize=12)
    ax.set_ylabel("share with the feature", fontsize=12)
    ax.set_title("Optimum of KL-regularised RL", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    return ax


def plot_bon_curve(curve: pd.DataFrame, fit: Mapping | None = None, ax=None):
    """Proxy and gold expected best-of-n score against sqrt(KL bound) (+ the fit)."""
    ax = _axes(ax, (6.5, 3.8))
    d = np.sqrt(curve["kl_bound"].to_numpy())
    ax.plot(d, curve["proxy"], marker="o", ms=3, ls="--", color=ACCENT_COLOR,
            label="proxy (selects)")
    ax.plot(d, curve["gold"], marker="s", ms=3, color=POLICY_COLOR, label="gold")
    if fit is not None:
        xs = np.linspace(0, d.max(), 50)
        ax.plot(xs, xs * (fit["alpha"] - fit["beta"] * xs), color=POLICY_COLOR, lw=1,
                ls=":", label="fit d(α − βd)")
    ax.axhline(0, color=REFERENCE_COLOR, lw=0.8)
    ax.set_xlabel("√KL bound, √nats (upper bound)", fontsize=12)
    ax.set_ylabel("score (reference std units)", fontsize=12)
    ax.set_title("Best-of-n: proxy vs gold", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    return ax


def plot_reliability(bins: Mapping[str, dict], ax=None, title: str = "Reliability"):
    """Accuracy against mean confidence per bin, one line per model; diagonal = calibrated."""
    ax = _axes(ax, (5, 4))
    ax.plot([0, 1], [0, 1], color=REFERENCE_COLOR, ls="--", lw=1, label="calibrated")
    for col, (name, r) in zip((NEUTRAL_COLOR, POLICY_COLOR, ACCENT_COLOR, CHOSEN_COLOR),
                              bins.items()):
        keep = r["count"] > 0
        ax.plot(r["confidence"][keep], r["accuracy"][keep], marker="o", ms=4, color=col,
                label=name)
    ax.set_xlabel("confidence (mean in bin)", fontsize=12)
    ax.set_ylabel("accuracy in bin", fontsize=12)
    ax.set_title(title, fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10)
    return ax
