"""plots, widgets and analysis: Axes come back under Agg; the pure functions behind
the widgets and the statistics are checked on tiny hand-made DataFrames."""

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from rlhf_lessons.course import plots, widgets  # noqa: E402
from rlhf_lessons.measure import analysis


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pairs(rows):
    """A to_dataframe-like frame from (subset, prompt, chosen, rejected) tuples."""
    df = pd.DataFrame(rows, columns=["subset", "prompt", "chosen", "rejected"])
    df["row"] = range(len(df))
    df["n_turns"] = 2
    return df


# Hand-made pairs. Lengths in chars: a: 11 vs 1 (longer chosen), 1 vs 10
# (shorter chosen), 4 vs 4 (tie); b: 2 vs 1 (longer chosen).
TINY = _pairs([
    ("a", "\n\nHuman: q1\n\nAssistant:", "long answer", "x"),
    ("a", "\n\nHuman: q2\n\nAssistant:", "y", "longer one"),
    ("a", "\n\nHuman: q3\n\nAssistant:", "same", "same"),
    ("b", "\n\nHuman: Tell me a joke\n\nAssistant:", "aa", "a"),
])


# --------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------
def test_longer_wins_rate_by_hand():
    r = analysis.longer_wins_rate(TINY)
    assert list(r.index) == ["a", "b", "overall"]
    assert r.loc["a", ["n_pairs", "n_ties", "n_longer_chosen"]].tolist() == [3, 1, 1]
    assert r.loc["a", "rate"] == pytest.approx(0.5)
    assert r.loc["b", "rate"] == pytest.approx(1.0)
    assert r.loc["overall", "rate"] == pytest.approx(2 / 3)
    assert r.loc["overall", "n_ties"] == 1


def test_longer_wins_rate_all_ties_is_nan_and_words_unit():
    only_ties = TINY.iloc[[2]]
    assert math.isnan(analysis.longer_wins_rate(only_ties).loc["a", "rate"])
    # in words: "long answer" (2) vs "x" (1) wins; "y" vs "longer one" loses; ...
    r = analysis.longer_wins_rate(TINY, unit="words")
    assert r.loc["a", ["n_ties", "n_longer_chosen"]].tolist() == [1, 1]
    # "aa" vs "a" is one word each: a tie in words, a win in chars
    assert r.loc["b", "n_ties"] == 1
    with pytest.raises(ValueError, match="unit='tokens'"):
        analysis.longer_wins_rate(TINY, unit="tokens")


def test_tokenize_lowercases_and_keeps_contractions():
    assert analysis.tokenize("I\u2019m SURE, it's 42!") == ["i'm", "sure", "it's", "42"]


def test_count_phrases_whole_words_any_case():
    assert analysis.count_phrases("Sure! I'm not sure; ensure it.", ("sure",)) == 2
    assert analysis.count_phrases("I\u2019m sorry, I CAN'T.", analysis.REFUSAL_PHRASES) == 2
    assert analysis.count_phrases("Maybe. Perhaps? mightily", analysis.HEDGE_PHRASES) == 2
    assert analysis.count_phrases("Of course, definitely.", analysis.CONFIDENT_PHRASES) == 2
    assert analysis.count_phrases("nothing here", "sure") == 0
    with pytest.raises(ValueError, match="non-empty"):
        analysis.count_phrases("x", ("",))


def test_phrase_lists_cover_the_brief():
    for p in ("i'm sorry", "i can't"):
        assert p in analysis.REFUSAL_PHRASES
    for p in ("i don't know", "maybe", "i think", "might"):
        assert p in analysis.HEDGE_PHRASES
    for p in ("definitely", "certainly", "of course", "sure"):
        assert p in analysis.CONFIDENT_PHRASES


def test_word_rates_by_hand():
    df = _pairs([
        ("a", "p", "Sorry, I can't.", "Sure thing"),
        ("a", "p", "sorry no", "sure, sure"),
    ])
    w = analysis.word_rates(df, min_count=1).set_index("word")
    assert w.loc["sorry", ["chosen_count", "rejected_count"]].tolist() == [2, 0]
    assert w.loc["sure", ["chosen_count", "rejected_count"]].tolist() == [0, 2]  # once per answer
    assert w.loc["sorry", "diff"] == pytest.approx(1.0)
    assert w.loc["thing", "diff"] == pytest.approx(-0.5)
    assert w.loc["sorry", "log_odds"] == pytest.approx(math.log(3))
    assert "can't" in w.index
    # min_count drops words used in fewer answers
    assert set(analysis.word_rates(df, min_count=2)["word"]) == {"sorry", "sure"}
    top = analysis.top_words(analysis.word_rates(df, min_count=1), n=1)
    assert list(top["word"]) == ["sorry", "sure"]


def test_phrase_rates_by_hand():
    df = _pairs([
        ("a", "p", "I'm sorry.", "Sure!"),
        ("a", "p", "Maybe.", "ok"),
        ("b", "p", "fine", "I can't"),
    ])
    r = analysis.phrase_rates(df).set_index(["subset", "group"])
    assert r.loc[("a", "refusal"), "chosen_rate"] == pytest.approx(0.5)
    assert r.loc[("a", "refusal"), "rejected_rate"] == pytest.approx(0.0)
    assert r.loc[("a", "confident"), "rejected_rate"] == pytest.approx(0.5)
    assert r.loc[("a", "hedge"), "diff"] == pytest.approx(0.5)
    assert r.loc[("b", "refusal"), "diff"] == pytest.approx(-1.0)
    whole = analysis.phrase_rates(df, {"refusal": analysis.REFUSAL_PHRASES}, by_subset=False)
    assert whole.loc[0, ["chosen_rate", "rejected_rate"]].tolist() == pytest.approx([1 / 3, 1 / 3])


# --------------------------------------------------------------------------
# widgets: the pure functions
# --------------------------------------------------------------------------
def test_filter_pairs_by_subset_and_query():
    assert len(widgets.filter_pairs(TINY)) == 4
    assert list(widgets.filter_pairs(TINY, "a").index) == [0, 1, 2]
    assert list(widgets.filter_pairs(TINY, "all", "JOKE").index) == [3]  # prompt, any case
    assert list(widgets.filter_pairs(TINY, "a", "longer").index) == [1]  # rejected text
    assert len(widgets.filter_pairs(TINY, "b", "nothing like this")) == 0
    with pytest.raises(ValueError, match="subset='c'"):
        widgets.filter_pairs(TINY, "c")


def test_diff_spans_rebuild_the_texts_and_mark_the_difference():
    a, b = widgets.diff_spans("I like red apples", "I like green apples")
    assert "".join(t for t, _ in a) == "I like red apples"
    assert "".join(t for t, _ in b) == "I like green apples"
    assert [t for t, d in a if d] == ["red"]
    assert [t for t, d in b if d] == ["green"]


def test_render_pair_html_shows_history_once_and_highlights_the_difference():
    df = _pairs([("a", "\n\nHuman: Name a fruit\n\nAssistant: Which colour?"
                       "\n\nHuman: Red, <b>please</b>\n\nAssistant:",
                  "A red apple.", "A red brick.")])
    page = widgets.render_pair_html(df, "a", 0)
    assert page.count("Name a fruit") == 1  # the shared history appears once
    assert "Which colour?" in page
    assert "&lt;b&gt;please&lt;/b&gt;" in page and "<b>please</b>" not in page  # escaped
    assert ">apple.</mark>" in page and ">brick.</mark>" in page
    assert ">A</mark>" not in page  # shared words are not highlighted
    assert "(chosen)" in page and "(rejected)" in page


def test_render_pair_html_identical_empty_and_no_match():
    assert "identical" in widgets.render_pair_html(TINY, "a", 2)
    empty = _pairs([("a", "\n\nHuman: hi\n\nAssistant:", "hello", "")])
    assert "(empty answer)" in widgets.render_pair_html(empty, "a", 0)
    assert "No pair" in widgets.render_pair_html(TINY, "b", 0, query="zebra")
    with pytest.raises(IndexError, match="index=5: only 3 pairs"):
        widgets.render_pair_html(TINY, "a", 5)
    # the index counts within the filtered pairs
    assert "Pair 1 of 1" in widgets.render_pair_html(TINY, "all", 0, query="joke")


def test_make_pair_browser_renders_once_and_follows_its_controls():
    box = widgets.make_pair_browser(TINY)
    (subset, query, _red), slider, view = (box.children[0].children, box.children[1],
                                           box.children[2])
    subset.value = "all"
    assert "Pair 1 of 4" in view.value  # the callback ran once with the defaults
    assert slider.max == 3
    query.value = "joke"
    assert slider.max == 0 and "Pair 1 of 1" in view.value
    subset.value = "a"
    assert "No pair" in view.value


def test_pair_browser_opens_on_helpful_and_hides_red_team_until_asked():
    hh = TINY.assign(subset=["harmless-base", "harmless-base", "helpful-base",
                             "helpful-base"])
    assert list(widgets.safe_pairs(hh)["subset"].unique()) == ["helpful-base"]
    assert len(widgets.safe_pairs(hh, show_all=True)) == 4
    box = widgets.make_pair_browser(hh)
    (subset, _query, red), view = box.children[0].children, box.children[2]
    assert subset.value == "helpful-base" and "harmless-base" not in subset.options
    assert "q1" not in view.value
    red.value = True
    assert "harmless-base" in subset.options
    subset.value = "harmless-base"
    assert "q1" in view.value


def test_make_plot_demo_and_phrase_explorer_build():
    assert widgets.make_plot_demo(margin=2.0).children[0].value == 2.0
    assert widgets.make_phrase_explorer(TINY, "same").children[0].value == "same"


# --------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------
def test_palette_is_fixed_and_distinct():
    roles = [plots.CHOSEN_COLOR, plots.REJECTED_COLOR, plots.POLICY_COLOR,
             plots.REFERENCE_COLOR]
    assert len(set(roles)) == 4
    assert plots.PALETTE["chosen"] == plots.CHOSEN_COLOR


@pytest.mark.parametrize("draw", [
    lambda ax: plots.plot_turns_histogram([2, 2, 4, 6, 40], ax=ax),
    lambda ax: plots.plot_answer_lengths(TINY, ax=ax),
    lambda ax: plots.plot_longer_wins(analysis.longer_wins_rate(TINY), ax=ax),
    lambda ax: plots.plot_word_differences(
        analysis.top_words(analysis.word_rates(TINY, min_count=1), n=2), ax=ax),
    lambda ax: plots.plot_phrase_rates(analysis.phrase_rates(TINY), ax=ax),
    lambda ax: plots.plot_dolly_categories({"open_qa": 3, "summarization": 1}, ax=ax),
    lambda ax: plots.plot_score_histograms([1.0, 2.0, 0.5], [0.0, -1.0], ax=ax),
    lambda ax: plots.plot_preference_curve(1.5, ax=ax),
], ids=["turns", "lengths", "longer-wins", "words", "phrases", "dolly", "scores", "bt"])
def test_plots_return_axes_and_draw_on_the_given_one(draw):
    assert isinstance(draw(None), Axes)  # makes its own figure
    _, ax = plt.subplots()
    assert draw(ax) is ax
    assert ax.has_data() or ax.patches or ax.lines


def test_turns_histogram_counts_with_overflow_bar():
    ax = plots.plot_turns_histogram([2, 2, 4, 40], max_turns=16)
    heights = [p.get_height() for p in ax.patches]
    assert heights == [2, 1, 1]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "16+"]


def test_plot_metrics_one_axes_per_key_skipping_missing_values():
    df = pd.DataFrame({"step": [0, 1, 2, 3], "objective/kl": [0.0, 0.1, 0.2, 0.3],
                       "eval/accuracy": [np.nan, 0.6, np.nan, 0.7]})
    axes = plots.plot_metrics(df, ["objective/kl", "eval/accuracy"])
    assert len(axes) == 2 and all(isinstance(a, Axes) for a in axes)
    assert axes[0].get_title() == "KL from the reference"  # a title in words
    xs, ys = axes[1].lines[0].get_data()
    assert list(xs) == [1, 3] and list(ys) == [0.6, 0.7]
    single = plots.plot_metrics(df, "objective/kl")
    assert len(single) == 1
    _, given = plt.subplots(1, 2)
    assert plots.plot_metrics(df, ["objective/kl", "eval/accuracy"], axes=given)[1] is given[1]


def test_plot_metrics_titles_tell_panels_apart_and_leave_no_empty_axes():
    keys = ["rewards/judge/mean", "rewards/rule_reward/mean", "loss",
            "completions/mean_length"]
    df = pd.DataFrame({"step": [0, 1], **{k: [0.1, 0.2] for k in keys}})
    axes = plots.plot_metrics(df, keys, labels={"loss": ("DPO loss", "nats per pair")})
    titles = [a.get_title() for a in axes]
    assert titles == ["Judge (mean)", "Rule reward (mean)", "DPO loss", "Mean length"]
    assert axes[2].get_ylabel() == "nats per pair"
    # 2 x 2, not 3 + 1 beside two blank spaces
    assert axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 2)


def test_plot_metrics_errors_name_the_problem():
    df = pd.DataFrame({"step": [0], "loss": [1.0]})
    with pytest.raises(KeyError, match="objective/kl"):
        plots.plot_metrics(df, ["objective/kl"])
    _, one = plt.subplots()
    with pytest.raises(ValueError, match="2 keys but 1 axes"):
        plots.plot_metrics(df.assign(acc=0.5), ["loss", "acc"], axes=one)


def test_score_histograms_share_bins_and_mark_means():
    ax = plots.plot_score_histograms([0.0, 1.0, 2.0], [0.0, 0.0], bins=4)
    widths = {round(p.get_width(), 9) for p in ax.patches}
    assert widths == {0.5}  # both sides on the same 4 bins over [0, 2]
    means = sorted(line.get_xdata()[0] for line in ax.lines)
    assert means == pytest.approx([0.0, 1.0])


# ---------------------------------------------------------------- the widgets' contract
def _builders():
    import ast

    from rlhf_lessons.course import widgets

    tree = ast.parse(open(widgets.__file__, encoding="utf-8").read())
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name.startswith("make_")]


def _displays_outside_redraw(fn) -> list[int]:
    """Lines of ``display(...)`` calls in builder ``fn`` that are not inside a
    ``with redraw(...)`` block of one of its callbacks (nested functions)."""
    import ast

    bad = []

    def visit(node, in_callback, in_redraw):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "display":
            if not (in_callback and in_redraw):
                bad.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            cb = in_callback or (node is not fn and isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
            rd = in_redraw or (isinstance(node, ast.With) and any(
                isinstance(i.context_expr, ast.Call)
                and getattr(i.context_expr.func, "id", "") == "redraw"
                for i in node.items))
            visit(child, cb, rd)

    visit(fn, False, False)
    return bad


def test_no_builder_displays_itself():
    """A builder returns its widget; only its callbacks may display what they draw,
    and only inside ``with redraw(out):`` (figures through show_figure)."""
    import ast

    builders = _builders()
    assert len(builders) >= 10
    for fn in builders:
        lines = _displays_outside_redraw(fn)
        assert not lines, (f"{fn.name} calls display outside a redraw callback "
                           f"(line {lines}): return the widget")
        assert any(isinstance(s, ast.Return) for s in fn.body), f"{fn.name} returns nothing"


def test_the_contract_check_catches_a_builder_that_displays():
    import ast

    src = (
        "def make_bad():\n"
        "    box = w.VBox()\n"
        "    display(box)\n"
        "    return box\n"
        "def make_loose():\n"
        "    def update():\n"
        "        display(1)\n"
        "    return update\n"
        "def make_good():\n"
        "    def update():\n"
        "        with redraw(out):\n"
        "            display(1)\n"
        "    return update\n")
    fns = {f.name: f for f in ast.parse(src).body}
    assert _displays_outside_redraw(fns["make_bad"]) == [3]
    assert _displays_outside_redraw(fns["make_loose"]) == [7]
    assert _displays_outside_redraw(fns["make_good"]) == []


def _build_every_widget(monkeypatch):
    """Each builder once, headless, on tiny inputs (model calls replaced)."""
    answers = pd.DataFrame({"answer": ["Hi."]})
    monkeypatch.setattr(widgets, "sample_answers", lambda *a, **k: answers)
    monkeypatch.setattr(widgets, "judge_compare", lambda *a, **k: {
        "score_a": 1.0, "score_b": 0.0, "p_a_better": 0.73})
    curve = pd.DataFrame({"step": [1, 2], "beta": [0.1, 0.1],
                          "objective/scores": [0.1, 0.3],
                          "objective/kl": [0.0, 0.2]})
    items = [{"prompt": "\n\nHuman: Hi?\n\nAssistant:", "A": "Hello.", "B": "<b>No</b>"}]
    return {
        "make_pair_browser": widgets.make_pair_browser(TINY),
        "make_phrase_explorer": widgets.make_phrase_explorer(TINY, "same"),
        "make_plot_demo": widgets.make_plot_demo(),
        "make_generation_widget": widgets.make_generation_widget(None, None),
        "make_judge_widget": widgets.make_judge_widget(None, None),
        "make_kl_explorer": widgets.make_kl_explorer(lambda b, e: curve, curve),
        "make_rater_widget": widgets.make_rater_widget(items, {}),
        "make_dpo_beta_widget": widgets.make_dpo_beta_widget(np.array([-1.0, 0.5, 3.0])),
        "make_group_size_widget": widgets.make_group_size_widget(np.array([0, 2, 4]), 4),
        "make_ask_widget": widgets.make_ask_widget(lambda q: pd.DataFrame({"q": [q]})),
    }


def test_every_builder_returns_a_widget(monkeypatch):
    import ipywidgets

    built = _build_every_widget(monkeypatch)
    assert set(built) == {fn.name for fn in _builders()}, "a new builder: build it here"
    for name, ui in built.items():
        assert isinstance(ui, ipywidgets.Widget), f"{name} returned {type(ui).__name__}"
    plt.close("all")


def test_the_redraw_block_is_written_once():
    from rlhf_lessons.course import widgets

    src = open(widgets.__file__, encoding="utf-8").read()
    assert src.count("clear_output(") == 1, "use widgets.redraw for every redraw"
    assert src.count("plt.close(") == 1, "use widgets.show_figure for every figure"

    from rlhf_lessons.core.utils import cut

    assert cut("a  b\nc", 10) == "a b c" and cut("abcdef", 4) == "abc…"
    package = Path(widgets.__file__).parents[1]
    cuts = [p for p in package.rglob("*.py")
            if re.search(r"^\s*def cut\(", p.read_text(encoding="utf-8"), re.M)]
    assert [p.name for p in cuts] == ["utils.py"], "one cut: rlhf_lessons.core.utils.cut"
