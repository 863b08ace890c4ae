"""Small ipywidgets for the notebooks: thin shells around pure, tested functions.

Each ``make_*`` builds its controls, calls its callback ONCE with the defaults (so a
headless run, e.g. the notebook tests, still renders the output) and then re-calls
it when a control changes. All the logic lives in pure functions such as
:func:`filter_pairs` and :func:`render_pair_html`, which pytest checks directly.

Every builder RETURNS its widget and never displays it (the notebook cell ends with
the call, so Jupyter shows it). Every redraw goes through :func:`redraw` and
:func:`show_figure`. Used in notebooks 00-08, in the notebooks' order.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable
from contextlib import contextmanager

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from rlhf_lessons.core.config import KL_ESTIMATORS
from rlhf_lessons.core.data import prompt_history
from rlhf_lessons.core.generation import sample_answers
from rlhf_lessons.core.utils import cut
from rlhf_lessons.course import plots
from rlhf_lessons.course.plots import (
    CHOSEN_COLOR,
    NEUTRAL_COLOR,
    REFERENCE_COLOR,
    REJECTED_COLOR,
    plot_phrase_rates,
    plot_preference_curve,
)
from rlhf_lessons.measure.analysis import phrase_rates
from rlhf_lessons.measure.evaluate import judge_compare
from rlhf_lessons.train.dpo import beta_view
from rlhf_lessons.train.group_pg import chance_all_equal

ALL = "all"
_TOKEN_RE = re.compile(r"\S+|\s+")


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------
RED_TEAM = "harmless-base"  # red-team prompts: some offensive, never a default screen


@contextmanager
def redraw(out: w.Output):
    """``with redraw(out): ...``: what the block prints or shows replaces ``out``'s
    old content (cleared when the new content arrives, so it does not flicker)."""
    with out:
        out.clear_output(wait=True)
        yield


def show_figure(fig) -> None:
    """Show a figure (or the figure of an Axes) inside a widget, then close it, so
    Jupyter does not draw it a second time under the cell."""
    fig = getattr(fig, "figure", fig)
    display(fig)
    plt.close(fig)


def safe_pairs(df: pd.DataFrame, show_all: bool = False) -> pd.DataFrame:
    """``df`` without the red-team subset (harmless-base) unless ``show_all``.

    Default displays start on neutral helpful-* rows, so a notebook is safe to
    project; the analyses still use every row. Notebooks 01 and 04.
    """
    return df if show_all else df[df["subset"] != RED_TEAM]


def filter_pairs(df: pd.DataFrame, subset: str = ALL, query: str = "") -> pd.DataFrame:
    """The pairs of ``subset`` ("all" for every subset) whose prompt, chosen or
    rejected text contains ``query`` (case-insensitive; "" keeps every row).

    ``df`` is :func:`rlhf_lessons.core.data.to_dataframe` output. The result keeps the
    original index. Notebook 01's browser.
    """
    if subset != ALL:
        known = sorted(df["subset"].unique())
        if subset not in known:
            raise ValueError(f"subset={subset!r}: expected 'all' or one of {known}")
        df = df[df["subset"] == subset]
    q = query.strip().lower()
    if q:
        hit = pd.Series(False, index=df.index)
        for col in ("prompt", "chosen", "rejected"):
            hit |= df[col].str.lower().str.contains(q, regex=False)
        df = df[hit]
    return df


def diff_spans(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """Split ``a`` and ``b`` into (text, differs) pieces, word by word.

    ``"".join(t for t, _ in pieces) == a`` (and likewise for ``b``); ``differs`` is
    True for the words that the other text does not share at that place.
    """
    ta, tb = _TOKEN_RE.findall(a), _TOKEN_RE.findall(b)
    out_a, out_b = [], []
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        same = op == "equal"
        if i2 > i1:
            out_a.append(("".join(ta[i1:i2]), not same))
        if j2 > j1:
            out_b.append(("".join(tb[j1:j2]), not same))
    return out_a, out_b


def _spans_html(spans, tint: str) -> str:
    if not spans:
        return "<i>(empty answer)</i>"
    parts = []
    for text, differs in spans:
        t = html.escape(text)
        if differs and text.strip():
            parts.append(f'<mark style="background:{tint};padding:0">{t}</mark>')
        else:
            parts.append(t)
    return "".join(parts)


def _box(title: str, body: str, color: str) -> str:
    return (
        f'<div style="flex:1;min-width:0;border:2px solid {color};border-radius:6px;'
        f'padding:6px 8px"><b style="color:{color}">{title}</b>'
        f'<div style="white-space:pre-wrap;margin-top:4px">{body}</div></div>'
    )


def render_pair_html(df: pd.DataFrame, subset: str = ALL, index: int = 0,
                     query: str = "") -> str:
    """HTML for the ``index``-th pair of ``filter_pairs(df, subset, query)``.

    The shared history is shown once; below it the chosen and rejected final answers
    sit side by side, with the words where they differ highlighted. When no pair
    matches, it says so. An ``index`` past the matches raises ``IndexError``.
    Notebook 01's browser.
    """
    pairs = filter_pairs(df, subset, query)
    if len(pairs) == 0:
        return (f"<p>No pair in subset <b>{html.escape(subset)}</b> contains "
                f"<b>{html.escape(query)!s}</b>.</p>")
    if not 0 <= index < len(pairs):
        raise IndexError(f"index={index}: only {len(pairs)} pairs match subset={subset!r}, "
                         f"query={query!r} (valid: 0..{len(pairs) - 1})")
    pair = pairs.iloc[index]
    turns = prompt_history(pair["prompt"])
    history = "".join(
        f'<div style="margin:2px 0;white-space:pre-wrap"><b>{who}:</b> '
        f"{html.escape(text)}</div>"
        for who, text in turns
    )
    same = pair["chosen"] == pair["rejected"]
    spans_c, spans_r = diff_spans(pair["chosen"], pair["rejected"])
    note = (" <b>The two answers are identical.</b>" if same else
            " Highlighted: where the two answers differ.")
    header = (f"<p>Pair {index + 1} of {len(pairs)} &middot; subset "
              f"<b>{html.escape(str(pair['subset']))}</b>, row {int(pair['row'])} &middot; "
              f"{len(turns)} earlier turns &middot; answers {len(pair['chosen'])} vs "
              f"{len(pair['rejected'])} chars.{note}</p>")
    answers = (
        '<div style="display:flex;gap:10px">'
        + _box("Assistant (chosen)", _spans_html(spans_c, "#b9f0dd"), CHOSEN_COLOR)
        + _box("Assistant (rejected)", _spans_html(spans_r, "#ffd2b8"), REJECTED_COLOR)
        + "</div>"
    )
    return (f"<div style='font-family:sans-serif;font-size:13px'>{header}"
            f"<div style='background:#f4f4f4;padding:6px 8px;border-radius:6px;"
            f"margin-bottom:8px'><b>Shared history</b>{history}</div>{answers}</div>")


# --------------------------------------------------------------------------
# Thin ipywidgets shells
# --------------------------------------------------------------------------
def make_pair_browser(df: pd.DataFrame, show_all: bool = False):
    """Subset dropdown + row slider + search box over HH-RLHF pairs (notebook 01).

    It opens on helpful-base; the red-team subset (harmless-base) appears only
    once the "show red-team pairs" box is ticked (or with ``show_all=True``).
    """
    every = sorted(df["subset"].unique())
    first = "helpful-base" if "helpful-base" in every else ALL
    subset = w.Dropdown(options=[ALL] + every, value=first, description="subset")
    red = w.Checkbox(value=show_all, description="show red-team pairs (harmless-base)",
                     indent=False)
    query = w.Text(value="", description="search", placeholder="e.g. joke",
                   continuous_update=False)
    index = w.IntSlider(value=0, min=0, max=max(len(df) - 1, 0), description="pair",
                        continuous_update=False)
    view = w.HTML()

    def update(_change=None):
        shown = safe_pairs(df, red.value)
        names = [ALL] + sorted(shown["subset"].unique())
        if list(subset.options) != names:
            keep = subset.value if subset.value in names else names[min(1, len(names) - 1)]
            subset.options, subset.value = names, keep
        n = len(filter_pairs(shown, subset.value, query.value))
        index.max = max(n - 1, 0)  # shrinks the slider first, so index stays valid
        view.value = render_pair_html(shown, subset.value, min(index.value, index.max),
                                      query.value)

    for control in (subset, query, index, red):
        control.observe(update, names="value")
    update()
    return w.VBox([w.HBox([subset, query, red]), index, view])


def make_phrase_explorer(df: pd.DataFrame, phrases: str = "I'm sorry, I can't"):
    """Type phrases (comma-separated); see how often chosen vs rejected answers use
    them, per subset (notebook 01's "Try it")."""
    box = w.Text(value=phrases, description="phrases", continuous_update=False,
                 layout=w.Layout(width="60%"))
    out = w.Output()

    def update(_change=None):
        wanted = tuple(p.strip() for p in box.value.split(",") if p.strip())
        with redraw(out):
            if not wanted:
                print("Type one or more phrases, separated by commas.")
                return
            rates = phrase_rates(df, {", ".join(wanted): wanted})
            fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
            plot_phrase_rates(rates, ax=ax)
            show_figure(fig)

    box.observe(update, names="value")
    update()
    return w.VBox([box, out])


def make_plot_demo(margin: float = 1.0):
    """A slider for the reward margin and the Bradley-Terry curve (notebook 00)."""
    slider = w.FloatSlider(value=margin, min=-6.0, max=6.0, step=0.5,
                           description="margin", continuous_update=False)
    out = w.Output()

    def update(_change=None):
        with redraw(out):
            fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
            plot_preference_curve(slider.value, ax=ax)
            show_figure(fig)

    slider.observe(update, names="value")
    update()
    return w.VBox([slider, out])


def make_generation_widget(model, tokenizer, question: str = "Tell me a joke.",
                           temperature: float = 0.7, max_new_tokens: int = 64):
    """Prompt, temperature and max-tokens controls around
    :func:`rlhf_lessons.core.generation.sample_answers` (notebook 02)."""
    text = w.Text(value=question, description="you ask", layout=w.Layout(width="95%"))
    temp = w.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.1,
                         description="temperature", continuous_update=False)
    budget = w.IntSlider(value=max_new_tokens, min=8, max=max_new_tokens * 2, step=8,
                         description="max tokens", continuous_update=False)
    out = w.Output()

    def update(_change=None):
        with redraw(out):
            try:
                display(sample_answers(model, tokenizer, text.value, temp.value,
                                       budget.value))
            except ValueError as err:
                print(f"⚠️ {err}")

    for control in (text, temp, budget):
        control.observe(update, names="value")
    update()
    return w.VBox([text, w.HBox([temp, budget]), out])


# Notebook 03
def make_judge_widget(model, tok, max_len: int = 256, device="cpu",
                      prompt: str = "How do I boil an egg?",
                      answer_a: str = "Put the egg in boiling water for about 9 minutes, "
                                      "then cool it in cold water.",
                      answer_b: str = "I don't know."):
    """A thin ipywidgets shell over :func:`judge_compare` (called once headless)."""
    box_p = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="95%"))
    box_a = w.Textarea(value=answer_a, description="answer A", layout=w.Layout(width="95%"))
    box_b = w.Textarea(value=answer_b, description="answer B", layout=w.Layout(width="95%"))
    btn = w.Button(description="Judge")
    out = w.Output()

    def show(_=None):
        with redraw(out):
            try:
                r = judge_compare(model, tok, box_p.value, box_a.value, box_b.value,
                                  max_len, device)
                print(f"score A = {r['score_a']:+.3f}   score B = {r['score_b']:+.3f}   "
                      f"P(A better) = {r['p_a_better']:.3f}")
            except ValueError as err:
                print(f"⚠️ {err}")

    btn.on_click(show)
    show()
    return w.VBox([box_p, box_a, box_b, btn, out])


# Notebook 04
def make_kl_explorer(run_variant: Callable[[float, str], object], baseline,
                     kl_coef: float = 0.2, kl_estimator: str = "k3"):
    """A beta slider, an estimator menu and a "run" button (notebook 04).

    ``run_variant(kl_coef, kl_estimator) -> metrics DataFrame`` does the work (e.g.
    a ``functools.partial`` of :func:`run_kl_variant`); the widget only plots its
    curves beside ``baseline``. Runs once with the defaults, so headless runs show it.
    """
    beta = w.FloatLogSlider(value=kl_coef, base=10, min=-3, max=0.5, step=0.1,
                            description="KL coef", continuous_update=False)
    est = w.Dropdown(options=list(KL_ESTIMATORS), value=kl_estimator, description="estimator")
    button = w.Button(description="run PPO")
    out = w.Output()

    def update(_=None):
        with redraw(out):
            df = run_variant(beta.value, est.value)
            axes = plots.plot_kl_comparison(baseline, df)
            show_figure(axes[0])
            last = df.iloc[-1]
            print(f"beta={beta.value:.3g} ({est.value}): final score "
                  f"{last['objective/scores']:.2f}, KL {last['objective/kl']:.2f} nats")

    button.on_click(update)
    update()
    return w.VBox([w.HBox([beta, est, button]), out])


# Notebook 05 (what raters and judges pay for)
def make_rater_widget(items: list[dict], labels: dict | None = None, width: int = 600):
    """"Be the rater": one pair at a time, buttons A / B / skip -> the widget.

    ``items``: :func:`rlhf_lessons.measure.raters.rater_items`. Each click stores "A" or
    "B" in ``labels`` (item index -> side) and shows the next pair; nothing is
    labelled until someone clicks. Headless, the first pair is shown once.
    :func:`rlhf_lessons.measure.raters.rater_results` tallies ``labels``.
    """
    labels = {} if labels is None else labels
    state = {"i": 0}
    out = w.Output()
    count = w.Label()
    buttons = [w.Button(description=d) for d in ("A is better", "B is better", "skip")]

    def esc(text: str) -> str:
        return html.escape(cut(text, width))

    def show(_=None):
        count.value = f"{len(labels)} of {len(items)} labelled"
        with redraw(out):
            if state["i"] >= len(items):
                print("All pairs seen: run the results cell below.")
                return
            it = items[state["i"]]
            hist = prompt_history(it["prompt"])
            last = hist[-1][1] if hist else it["prompt"]
            display(w.HTML(f"<b>Pair {state['i'] + 1} of {len(items)}</b><br>"
                           + _box("The human asked", esc(last), REFERENCE_COLOR)
                           + _box("Answer A", esc(it["A"]), NEUTRAL_COLOR)
                           + _box("Answer B", esc(it["B"]), NEUTRAL_COLOR)))

    def click(side):
        def handler(_):
            if state["i"] < len(items) and side:
                labels[state["i"]] = side
            state["i"] += 1
            show()
        return handler

    for b, side in zip(buttons, ("A", "B", None)):
        b.on_click(click(side))
    show()
    return w.VBox([w.HBox(buttons + [count]), out])


# Notebook 07
def make_dpo_beta_widget(log_ratio_margins, beta: float = 0.1):
    """A β slider over held-out log-ratio margins (:func:`dpo.beta_view`): cheap."""
    slider = w.FloatLogSlider(value=beta, base=10, min=-2, max=1, step=0.1,
                              description="β", continuous_update=False)
    out = w.Output()

    def update(_change=None):
        v = beta_view(log_ratio_margins, slider.value)
        with redraw(out):
            fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
            plots.plot_dpo_beta(v["prob"], slider.value, ax=ax)
            show_figure(fig)
            print(f"β = {slider.value:.3g}: loss {v['loss']:.3f}, gradient weight "
                  f"{v['weight']:.3f} (0.5 at the start), {v['share_sure']:.0%} of "
                  "pairs past P = 0.9")

    slider.observe(update, names="value")
    update()
    return w.VBox([slider, out])


def make_group_size_widget(n_pass, n_samples: int, group_size: int = 4,
                           prompts_per_update: int | None = None):
    """A group-size slider: the share of all-equal groups (:func:`chance_all_equal`)
    and how many of an update's ``prompts_per_update`` groups still teach (the
    trainer's setting, ``GroupPGConfig.prompts_per_update``; default: one group
    per prompt of ``n_pass``)."""
    if prompts_per_update is None:
        prompts_per_update = len(n_pass)
    sizes = list(range(2, n_samples + 1))
    shares = [float(chance_all_equal(n_pass, n_samples, g).mean()) for g in sizes]
    slider = w.IntSlider(value=group_size, min=2, max=n_samples, description="G",
                         continuous_update=False)
    out = w.Output()

    def update(_change=None):
        g = slider.value
        with redraw(out):
            fig, ax = plt.subplots(figsize=(6.5, 3.2), layout="constrained")
            plots.plot_zero_variance(sizes, shares, g, ax=ax)
            show_figure(fig)
            print(f"G = {g}: {shares[g - 2]:.0%} of groups all equal; each update "
                  f"of {prompts_per_update} prompts keeps about "
                  f"{prompts_per_update * (1 - shares[g - 2]):.1f} of them")

    slider.observe(update, names="value")
    update()
    return w.VBox([slider, out])


# Notebook 08
def make_ask_widget(answer_fn: Callable[[str], pd.DataFrame],
                    question: str = "What is 37 times 24?"):
    """A question box around ``answer_fn(question) -> table`` (notebook 08: the
    writer's answer before and after optimisation, with both judges' scores).
    Headless runs call it once with ``question``."""
    text = w.Text(value=question, description="you ask", layout=w.Layout(width="95%"),
                  continuous_update=False)
    out = w.Output()

    def update(_change=None):
        with redraw(out):
            if not text.value.strip():
                print("⚠️ type a question")
                return
            display(answer_fn(text.value.strip()))

    text.observe(update, names="value")
    update()
    return w.VBox([text, out])
