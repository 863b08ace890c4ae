"""Small ipywidgets for the notebooks: thin shells around pure, tested functions.

Each ``make_*`` builds its controls, calls its callback ONCE with the defaults (so a
headless run, e.g. the notebook tests, still renders the output) and then re-calls
it when a control changes. All the logic lives in pure functions such as
:func:`filter_pairs` and :func:`render_pair_html`, which pytest checks directly.

Taught in notebook 00 (setup check) and notebook 01 (browse the preference data).
"""

from __future__ import annotations

import difflib
import html
import re

import pandas as pd

from rlhf_lessons.plots import CHOSEN_COLOR, REJECTED_COLOR

ALL = "all"
_TOKEN_RE = re.compile(r"\S+|\s+")


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------
def filter_pairs(df: pd.DataFrame, subset: str = ALL, query: str = "") -> pd.DataFrame:
    """The pairs of ``subset`` ("all" for every subset) whose prompt, chosen or
    rejected text contains ``query`` (case-insensitive; "" keeps every row).

    ``df`` is :func:`rlhf_lessons.data.to_dataframe` output. The result keeps the
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
    from rlhf_lessons.data import prompt_history

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
def make_pair_browser(df: pd.DataFrame):
    """Subset dropdown + row slider + search box over HH-RLHF pairs (notebook 01)."""
    import ipywidgets as w

    subsets = [ALL] + sorted(df["subset"].unique())
    subset = w.Dropdown(options=subsets, value=ALL, description="subset")
    query = w.Text(value="", description="search", placeholder="e.g. joke",
                   continuous_update=False)
    index = w.IntSlider(value=0, min=0, max=max(len(df) - 1, 0), description="pair",
                        continuous_update=False)
    view = w.HTML()

    def update(_change=None):
        n = len(filter_pairs(df, subset.value, query.value))
        index.max = max(n - 1, 0)  # shrinks the slider first, so index stays valid
        view.value = render_pair_html(df, subset.value, min(index.value, index.max),
                                      query.value)

    for control in (subset, query, index):
        control.observe(update, names="value")
    update()
    return w.VBox([w.HBox([subset, query]), index, view])


def make_phrase_explorer(df: pd.DataFrame, phrases: str = "I'm sorry, I can't"):
    """Type phrases (comma-separated); see how often chosen vs rejected answers use
    them, per subset (notebook 01's "Try it")."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from rlhf_lessons.analysis import phrase_rates
    from rlhf_lessons.plots import plot_phrase_rates

    box = w.Text(value=phrases, description="phrases", continuous_update=False,
                 layout=w.Layout(width="60%"))
    out = w.Output()

    def update(_change=None):
        wanted = tuple(p.strip() for p in box.value.split(",") if p.strip())
        with out:
            out.clear_output(wait=True)
            if not wanted:
                print("Type one or more phrases, separated by commas.")
                return
            rates = phrase_rates(df, {", ".join(wanted): wanted})
            fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
            plot_phrase_rates(rates, ax=ax)
            display(fig)
            plt.close(fig)

    box.observe(update, names="value")
    update()
    return w.VBox([box, out])


def make_plot_demo(margin: float = 1.0):
    """A slider for the reward margin and the Bradley-Terry curve (notebook 00)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from rlhf_lessons.plots import plot_preference_curve

    slider = w.FloatSlider(value=margin, min=-6.0, max=6.0, step=0.5,
                           description="margin", continuous_update=False)
    out = w.Output()

    def update(_change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
            plot_preference_curve(slider.value, ax=ax)
            display(fig)
            plt.close(fig)

    slider.observe(update, names="value")
    update()
    return w.VBox([slider, out])


def make_generation_widget(model, tokenizer, question: str = "Tell me a joke.",
                           temperature: float = 0.7, max_new_tokens: int = 64):
    """Prompt, temperature and max-tokens controls around
    :func:`rlhf_lessons.generation.sample_answers` (notebook 02)."""
    import ipywidgets as w
    from IPython.display import display

    from rlhf_lessons.generation import sample_answers

    text = w.Text(value=question, description="you ask", layout=w.Layout(width="95%"))
    temp = w.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.1,
                         description="temperature", continuous_update=False)
    budget = w.IntSlider(value=max_new_tokens, min=8, max=max_new_tokens * 2, step=8,
                         description="max tokens", continuous_update=False)
    out = w.Output()

    def update(_change=None):
        with out:
            out.clear_output(wait=True)
            try:
                display(sample_answers(model, tokenizer, text.value, temp.value,
                                       budget.value))
            except ValueError as err:
                print(f"⚠️ {err}")

    for control in (text, temp, budget):
        control.observe(update, names="value")
    update()
    return w.VBox([text, w.HBox([temp, budget]), out])
