"""Every plot in the course, with one palette.

Rules (see docs/CONVENTIONS.md): each ``plot_*`` function draws on ``ax`` when one
is given and makes a new figure only when it is not; it returns the Axes, never
calls ``plt.show()`` and never writes files. Chosen/rejected and policy/reference
always get the colours below, in every notebook.

Taught in notebook 00 (setup check) and used by all the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from rlhf_lessons.measure.analysis import answer_lengths

if TYPE_CHECKING:
    pass

# The palette (colour-blind safe: Okabe-Ito). Import these rather than typing colours.
CHOSEN_COLOR = "#009E73"  # bluish green
REJECTED_COLOR = "#D55E00"  # vermilion
POLICY_COLOR = "#0072B2"  # blue
REFERENCE_COLOR = "#7F7F7F"  # grey
ACCENT_COLOR = "#CC79A7"  # reddish purple: thresholds, baselines, "the judge"
NEUTRAL_COLOR = "#56B4E9"  # sky blue: anything that is not one of the roles above
PALETTE = {
    "chosen": CHOSEN_COLOR,
    "rejected": REJECTED_COLOR,
    "policy": POLICY_COLOR,
    "reference": REFERENCE_COLOR,
    "accent": ACCENT_COLOR,
    "neutral": NEUTRAL_COLOR,
}


# Legible on a projector: one setting for every plot of the course (>= 12 pt text).
PROJECTOR_RC = {"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12,
                "xtick.labelsize": 12, "ytick.labelsize": 12, "legend.fontsize": 12,
                "figure.titlesize": 13}
plt.rcParams.update(PROJECTOR_RC)

# Logged metric keys -> (title in words, y label with its unit).
METRIC_LABELS = {
    "loss": ("Training loss", "loss (nats per token)"),
    "eval_loss": ("Held-out loss", "loss (nats per token)"),
    "accuracy": ("Train accuracy (batch)", "share of pairs right"),
    "eval_accuracy": ("Held-out accuracy", "share of pairs right"),
    "lr": ("Learning rate", "learning rate"),
    "objective/scores": ("Judge score (normalised)", "score (reference std)"),
    "objective/raw_scores": ("Reward before normalising", "reward"),
    "objective/kl": ("KL from the reference", "KL (nats per answer)"),
    "objective/entropy": ("Entropy of the policy", "entropy (nats per answer)"),
    "objective/rlhf_reward": ("Score minus KL penalty", "reward"),
    "policy/clipfrac_avg": ("Clipped tokens", "share of tokens"),
    "policy/approxkl_avg": ("Step size (approx. KL)", "KL (nats per token)"),
    "val/ratio": ("Probability ratio new/old", "ratio"),
    "val/eos_rate": ("Answers that stop (EOS)", "share of answers"),
    "response_length": ("Answer length", "tokens"),
    "loss/value_avg": ("Value loss", "loss"),
    "loss/policy_avg": ("Policy loss", "loss"),
}
# The loss of a judge or of DPO: -log sigmoid(margin), one number per pair.
PAIR_LOSS = ("Training loss", "loss (nats per pair)")
X_LABELS = {"update": "PPO update", "step": "training step", "episodes": "answers seen"}


STATS = ("mean", "std", "min", "max", "median")  # a key's last part that names no metric


def metric_label(key: str) -> tuple[str, str]:
    """(title, y label) for a logged metric key; unknown keys read as their words,
    the last part of the key, or the two last when it ends in a statistic
    (TRL's ``rewards/judge/mean`` -> "Judge (mean)")."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    parts = key.split("/")
    words = parts[-1].replace("_", " ")
    if parts[-1] in STATS and len(parts) > 1:
        words = f"{parts[-2].replace('_', ' ')} ({parts[-1]})"
    return words[:1].upper() + words[1:], words


def _axes(ax, figsize=(6, 3.5)):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _short(subset: str) -> str:
    # "helpful-rejection-sampled" is too wide for a tick label.
    return subset.replace("-rejection-sampled", "-rej.-sampled")


# --------------------------------------------------------------------------
# Notebook 00
# --------------------------------------------------------------------------
def plot_preference_curve(margin: float = 1.0, ax=None):
    """P(chosen preferred) = sigmoid(r_chosen - r_rejected), with ``margin`` marked.

    The Bradley-Terry curve that notebook 03 trains the judge with; notebook 00
    uses it as its demo plot and widget.
    """
    ax = _axes(ax)
    x = np.linspace(-6, 6, 241)
    ax.plot(x, 1 / (1 + np.exp(-x)), color=POLICY_COLOR, lw=2)
    p = 1 / (1 + math.exp(-margin))
    ax.axhline(0.5, color=REFERENCE_COLOR, ls="--", lw=1)
    ax.scatter([margin], [p], color=CHOSEN_COLOR, zorder=3, s=50,
               label=f"margin {margin:+.1f} -> P = {p:.2f}")
    ax.set_xlabel("reward margin  r(chosen) - r(rejected)")
    ax.set_ylabel("P(chosen is preferred)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left", frameon=False)
    ax.set_title("Bradley-Terry: a bigger margin, a surer preference")
    return ax


# --------------------------------------------------------------------------
# Notebook 01: the preference data
# --------------------------------------------------------------------------
def plot_turns_histogram(n_turns, ax=None, max_turns: int = 16):
    """Bar chart of turns per conversation (Human + Assistant turns, the final answer
    included). Conversations longer than ``max_turns`` go into the last bar."""
    ax = _axes(ax)
    values = np.asarray(n_turns, dtype=int)
    if values.size == 0:
        raise ValueError("plot_turns_histogram: n_turns is empty")
    clipped = np.minimum(values, max_turns)
    counts = np.bincount(clipped, minlength=max_turns + 1)
    xs = np.arange(counts.size)
    keep = counts > 0
    ax.bar(xs[keep], counts[keep], color=NEUTRAL_COLOR, edgecolor="white")
    labels = [str(x) if x < max_turns else f"{max_turns}+" for x in xs[keep]]
    ax.set_xticks(xs[keep], labels)
    ax.set_xlabel("turns in the conversation (final answer included)")
    ax.set_ylabel("pairs")
    ax.set_title(f"Turns per conversation ({values.size} pairs)")
    return ax


def plot_answer_lengths(df: pd.DataFrame, unit: str = "chars", ax=None):
    """Box plots of final-answer length, chosen beside rejected, for each subset.

    ``df`` is :func:`rlhf_lessons.core.data.to_dataframe` output (subset, chosen, rejected).
    Outliers are hidden and the y axis is logarithmic, so the boxes stay readable.
    """
    ax = _axes(ax, figsize=(7, 3.8))
    chosen_len, rejected_len = answer_lengths(df, unit)
    subsets = sorted(df["subset"].unique())
    pos, data, colors = [], [], []
    for i, s in enumerate(subsets):
        mask = (df["subset"] == s).to_numpy()
        for off, lens, col in ((-0.2, chosen_len, CHOSEN_COLOR),
                               (0.2, rejected_len, REJECTED_COLOR)):
            # +1 so empty answers (length 0) survive the log scale.
            data.append(lens.to_numpy()[mask] + 1)
            pos.append(i + off)
            colors.append(col)
    box = ax.boxplot(data, positions=pos, widths=0.35, showfliers=False,
                     patch_artist=True, medianprops={"color": "black"})
    for patch, col in zip(box["boxes"], colors):
        patch.set_facecolor(col)
        patch.set_alpha(0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(subsets)), [_short(s) for s in subsets], rotation=12)
    ax.set_ylabel(f"final answer length ({unit} + 1)")
    ax.legend([box["boxes"][0], box["boxes"][1]], ["chosen", "rejected"],
              frameon=False, loc="upper right")
    ax.set_title("Answer lengths: chosen vs rejected")
    return ax


def plot_longer_wins(rates: pd.DataFrame, ax=None):
    """Bars of "how often the longer answer is chosen", per subset, with the 0.5 line.

    ``rates`` is :func:`rlhf_lessons.measure.analysis.longer_wins_rate` output (index =
    subset, columns rate, n_pairs, n_ties). Each bar is labelled with its rate.
    """
    ax = _axes(ax, figsize=(7, 3.5))
    names = list(rates.index)
    colors = [ACCENT_COLOR if n == "overall" else NEUTRAL_COLOR for n in names]
    bars = ax.bar(range(len(names)), rates["rate"], color=colors)
    for b, r in zip(bars, rates["rate"]):
        ax.annotate(f"{r:.2f}", (b.get_x() + b.get_width() / 2, r),
                    ha="center", va="bottom")
    ax.axhline(0.5, color=REFERENCE_COLOR, ls="--", lw=1, label="coin flip (0.5)")
    ax.set_xticks(range(len(names)), [_short(n) for n in names], rotation=12)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of pairs (ties excluded)")
    ax.set_title("How often is the LONGER answer the chosen one?")
    ax.legend(frameon=False, loc="upper right")
    return ax


def plot_word_differences(words: pd.DataFrame, by: str = "log_odds", ax=None,
                          title: str = "Words that separate chosen from rejected"):
    """Horizontal bars: one per word, right (chosen colour) = typical of chosen
    answers, left (rejected colour) = typical of rejected ones.

    ``words`` has columns ``word`` and ``by`` (e.g. from
    :func:`rlhf_lessons.measure.analysis.top_words`).
    """
    ax = _axes(ax, figsize=(6, max(3.0, 0.22 * len(words) + 1)))
    w = words.sort_values(by)
    colors = [CHOSEN_COLOR if v > 0 else REJECTED_COLOR for v in w[by]]
    ax.barh(range(len(w)), w[by], color=colors)
    ax.set_yticks(range(len(w)), w["word"])
    ax.axvline(0, color="black", lw=0.8)
    label = {"log_odds": "log-odds  log((n_chosen+1)/(n_rejected+1))",
             "diff": "share of chosen - share of rejected answers"}.get(by, by)
    ax.set_xlabel(label)
    ax.set_title(title)
    return ax


def plot_phrase_rates(rates: pd.DataFrame, ax=None):
    """Grouped bars: the share of chosen vs rejected answers with each phrase group.

    ``rates`` is :func:`rlhf_lessons.measure.analysis.phrase_rates` output; with several
    subsets the x axis shows "subset / group".
    """
    ax = _axes(ax, figsize=(12, 4.5))
    several = rates["subset"].nunique() > 1
    if several:
        tiny = {"harmless-base": "harmless", "helpful-base": "helpful",
                "helpful-online": "online", "helpful-rejection-sampled": "rej-samp"}
        labels = [f"{g}\n{tiny.get(s, s)}" for s, g in zip(rates["subset"], rates["group"])]
    else:
        labels = list(rates["group"])
    x = np.arange(len(rates))
    if several:  # thin lines between subsets
        change = np.flatnonzero(rates["subset"].to_numpy()[1:] != rates["subset"].to_numpy()[:-1])
        for c in change:
            ax.axvline(c + 0.5, color=REFERENCE_COLOR, lw=0.6, alpha=0.6)
    ax.bar(x - 0.2, rates["chosen_rate"], 0.4, color=CHOSEN_COLOR, label="chosen")
    ax.bar(x + 0.2, rates["rejected_rate"], 0.4, color=REJECTED_COLOR, label="rejected")
    ax.set_xticks(x, labels)
    ax.set_ylabel("share of answers with the phrase")
    ax.set_title("Refusals, hedges and confident phrases")
    ax.legend(frameon=False)
    return ax


def plot_dolly_categories(counts: Mapping | pd.Series, ax=None):
    """Horizontal bars of rows per Dolly category (largest at the top)."""
    ax = _axes(ax)
    s = pd.Series(counts).sort_values()
    ax.barh(s.index.astype(str), s.to_numpy(), color=NEUTRAL_COLOR)
    ax.set_xlabel("rows")
    ax.set_title(f"Dolly: rows per category ({int(s.sum())} rows)")
    return ax


# --------------------------------------------------------------------------
# Notebooks 03-05: training curves and judge scores
# --------------------------------------------------------------------------
_KEY_COLORS = {"rejected": REJECTED_COLOR, "chosen": CHOSEN_COLOR,
               "ref": REFERENCE_COLOR, "reference": REFERENCE_COLOR, "kl": ACCENT_COLOR}


def _color_for(key: str) -> str:
    """The palette colour of a metric key, by its whole words ("objective/kl",
    "ref_score"): "refusal" is not "ref", so it stays the policy's blue."""
    for word in key.lower().replace("/", "_").replace("-", "_").split("_"):
        if word in _KEY_COLORS:
            return _KEY_COLORS[word]
    return POLICY_COLOR


def _integer_x(ax, x: str) -> None:
    if x in X_LABELS:  # updates and steps are counts: no 2.5 ticks
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_metrics(df: pd.DataFrame, keys: str | Sequence[str], axes=None,
                 x: str = "step", smooth: int = 1,
                 labels: dict[str, tuple[str, str]] | None = None) -> list:
    """One small plot per metric column (TRL-style keys such as ``objective/kl``).

    ``df`` is the list of logged dicts as a DataFrame; rows where a key is missing
    (NaN, e.g. eval metrics logged every N steps) are skipped for that key. ``x``
    is the column on the x axis (the index when it is absent). ``smooth`` > 1 adds a
    rolling mean over that many points. ``axes``: one Axes per key, or None for a
    new figure (up to 3 plots per row, rows as full as they can be: 4 keys make
    2 x 2). ``labels``: {key: (title, y label)} where :func:`metric_label`'s would
    be wrong (a DPO ``loss`` is per pair, not per token). Returns the list of Axes.
    Taught in notebook 03; used in 04 and 05.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("plot_metrics: keys is empty")
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise KeyError(f"plot_metrics: no column(s) {missing}; the columns are "
                       f"{list(df.columns)}")
    if axes is None:
        nrows = math.ceil(len(keys) / 3)
        ncols = math.ceil(len(keys) / nrows)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.3 * nrows),
                                 layout="constrained", squeeze=False)
        axes = list(grid.ravel())
        for extra in axes[len(keys):]:
            fig.delaxes(extra)
        axes = axes[:len(keys)]
    else:
        axes = [axes] if not isinstance(axes, (list, tuple, np.ndarray)) else list(
            np.ravel(axes))
        if len(axes) != len(keys):
            raise ValueError(f"plot_metrics: {len(keys)} keys but {len(axes)} axes")
    xs_all = df[x] if x in df.columns else pd.Series(df.index, index=df.index)
    for ax, key in zip(axes, keys):
        ok = df[key].notna()
        xs, ys = xs_all[ok].to_numpy(), df.loc[ok, key].to_numpy(dtype=float)
        col = _color_for(key)
        if smooth > 1 and len(ys) >= smooth:
            ax.plot(xs, ys, color=col, alpha=0.3, lw=1)
            ys_s = pd.Series(ys).rolling(smooth, min_periods=1).mean().to_numpy()
            ax.plot(xs, ys_s, color=col, lw=2)
        else:
            ax.plot(xs, ys, color=col, lw=2, marker="o" if len(ys) < 30 else None,
                    ms=3)
        title, ylabel = (labels or {}).get(key) or metric_label(key)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(X_LABELS.get(x, x) if x in df.columns else "index")
        _integer_x(ax, x)
        ax.grid(alpha=0.3)
    return axes


def plot_score_histograms(chosen_scores, rejected_scores, ax=None, bins: int = 30,
                          title: str = "Judge scores: chosen vs rejected"):
    """Overlaid histograms of the judge's scores on chosen and rejected answers,
    on shared bins, with each side's mean as a dashed line. Notebook 03."""
    ax = _axes(ax)
    c = np.asarray(chosen_scores, dtype=float).ravel()
    r = np.asarray(rejected_scores, dtype=float).ravel()
    if c.size == 0 or r.size == 0:
        raise ValueError("plot_score_histograms: both score arrays must be non-empty")
    edges = np.histogram_bin_edges(np.concatenate([c, r]), bins=bins)
    for vals, col, name in ((c, CHOSEN_COLOR, "chosen"), (r, REJECTED_COLOR, "rejected")):
        ax.hist(vals, bins=edges, color=col, alpha=0.55, label=f"{name} (mean {vals.mean():.2f})")
        ax.axvline(vals.mean(), color=col, ls="--", lw=1.5)
    ax.set_xlabel("score")
    ax.set_ylabel("answers")
    ax.set_title(title)
    ax.legend(frameon=False)
    return ax


# Notebook 04
def plot_kl_comparison(baseline, variant, keys=("objective/scores", "objective/kl"),
                       axes=None):
    """Curves of ``baseline`` (reference grey) and ``variant`` (policy blue) per key,
    over the updates both runs have. Returns the list of Axes."""
    if axes is None:
        _, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.3),
                               layout="constrained", squeeze=False)
        axes = list(axes.ravel())
    n = min(len(baseline), len(variant))
    for ax, key in zip(axes, keys):
        for df, col in ((baseline, REFERENCE_COLOR), (variant, POLICY_COLOR)):
            d = df.iloc[:n]
            label = f"beta={d['beta'].iloc[0]:.3g}"
            if "kl_estimator" in d:
                label += f", {d['kl_estimator'].iloc[0]}"
            ax.plot(d["step"], d[key], color=col, lw=2, marker="o", ms=3, label=label)
        title, ylabel = metric_label(key)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(X_LABELS["update"])
        _integer_x(ax, "step")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    return axes


# --------------------------------------------------------------------------
# Notebook 07
# --------------------------------------------------------------------------
METHOD_COLORS = {"sft": REFERENCE_COLOR, "best_of_n": ACCENT_COLOR, "ppo": POLICY_COLOR,
                 "grpo": CHOSEN_COLOR, "rloo": CHOSEN_COLOR, "dpo": REJECTED_COLOR}


def plot_frontier(frontier: pd.DataFrame, ax=None):
    """Gold score (with its 95% interval) against sqrt(KL to SFT), one point per method.

    ``frontier``: rows with method, sqrt_kl, gold_score and optionally gold_lo /
    gold_hi (the interval) and kl_bound (True: sqrt_kl is an upper bound, drawn hollow).
    """
    ax = _axes(ax, figsize=(7, 4.2))
    for _, r in frontier.iterrows():
        col = METHOD_COLORS.get(r["method"], NEUTRAL_COLOR)
        yerr = None
        if "gold_lo" in r and not pd.isna(r.get("gold_lo")):
            yerr = [[r["gold_score"] - r["gold_lo"]], [r["gold_hi"] - r["gold_score"]]]
        hollow = bool(r.get("kl_bound", False))
        ax.errorbar([r["sqrt_kl"]], [r["gold_score"]], yerr=yerr, fmt="o", ms=9,
                    color=col, mfc="white" if hollow else col, capsize=4, lw=1.5)
        ax.annotate(r["method"] + (" (KL bound)" if hollow else ""),
                    (r["sqrt_kl"], r["gold_score"]), xytext=(7, 5),
                    textcoords="offset points", fontsize=12)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("√KL(method ‖ SFT), √nats", fontsize=12)
    ax.set_ylabel("gold score (SFT std units)", fontsize=12)
    ax.set_title("Which method buys the most gold score per unit of KL?", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.grid(alpha=0.3)
    return ax


def plot_zero_variance(group_sizes, shares, current: int | None = None, ax=None):
    """Share of GRPO groups with no signal against the group size G."""
    ax = _axes(ax)
    ax.plot(group_sizes, shares, "o-", color=POLICY_COLOR)
    if current is not None and current in list(group_sizes):
        i = list(group_sizes).index(current)
        ax.plot([current], [shares[i]], "o", ms=12, color=ACCENT_COLOR)
    ax.set_ylim(0, 1)
    ax.set_xlabel("group size G (answers per prompt)", fontsize=12)
    ax.set_ylabel("share of groups all equal", fontsize=12)
    ax.set_title("With a pass/fail reward, how many groups teach nothing?", fontsize=13)
    ax.tick_params(labelsize=12)
    ax.grid(alpha=0.3)
    return ax


def plot_dpo_beta(prob_chosen, beta: float, ax=None):
    """Histogram of σ(β·h) over held-out pairs: the policy's implied P(chosen wins)."""
    ax = _axes(ax)
    ax.hist(prob_chosen, bins=np.linspace(0, 1, 21), color=POLICY_COLOR, alpha=0.8)
    ax.axvline(0.5, color=ACCENT_COLOR, lw=2)
    ax.set_xlabel("implied P(chosen preferred) = σ(β·log-ratio margin)", fontsize=12)
    ax.set_ylabel("held-out pairs", fontsize=12)
    ax.set_title(f"DPO's implicit judge at β = {beta:g}", fontsize=13)
    ax.tick_params(labelsize=12)
    return ax


if TYPE_CHECKING:
    from rlhf_lessons.measure.overoptimisation import RunRecord


# --------------------------------------------------------------------------
# Notebook 05
def plot_judge_effects(effects, ax=None, title: str = "What the judge pays for"):
    """Mean score change per rewrite, with 95% bootstrap intervals -> Axes.

    ``effects``: the DataFrame of :func:`rlhf_lessons.measure.evaluate.judge_effects`.
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

    ``table``: :func:`rlhf_lessons.measure.raters.compare_tables` (columns raters,
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
    return plot_metrics(metrics, keys, axes=axes, x="step", smooth=3)


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
        pts = runs[beta].points.sort_values("step")
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
