"""Notebook 05: surface features, pair differences, the L1 logistic regression,
the Δ-probability conversion, the verdicts, the "be the rater" tally and the
two exercise checks, all on hand-made inputs."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rlhf_lessons.core.config import (
    LessonConfig,  # noqa: E402
    RatersConfig,
)
from rlhf_lessons.course import checks, plots, widgets  # noqa: E402
from rlhf_lessons.measure import raters as R  # noqa: E402


# --- 5.1 features -------------------------------------------------------------
@pytest.mark.parametrize("text, feature, want", [
    ("Definitely, do it.", "confident", 1.0),
    ("I'm not sure, maybe.", "confident", 0.0),  # "sure" inside a hedge
    ("I'm not sure, maybe.", "hedge", 1.0),
    ("I'm sorry, I can't help.", "apology_refusal", 1.0),
    ("My apologies.", "apology_refusal", 1.0),
    ("Great question, brilliant.", "praise", 1.0),
    ("You're right, it is red.", "praise", 0.0),  # agreement, not praise
    ("You're right, it is red.", "agreement", 1.0),
    ("I agree.", "agreement", 1.0),
    ("It is red.", "agreement", 0.0),
    ("Which one do you mean?", "question_back", 1.0),
    ("Wow!", "exclamation", 1.0),
    ("Wow.", "exclamation", 0.0),
    ("Your cat is fine.", "second_person", 1.0),
    ("The cat is fine.", "second_person", 0.0),
    ("Take 2 pills.", "list_or_number", 1.0),
    ("Steps:\n- boil\n- eat", "list_or_number", 1.0),
    ("Boil it, then eat it.", "list_or_number", 0.0),
])
def test_each_feature_on_hand_written_answers(text, feature, want):
    assert R.surface_features(text)[feature] == want


def test_length_is_log_words_and_matrix_has_feature_columns():
    assert R.surface_features("one two three")["log_words"] == pytest.approx(math.log(4))
    assert R.surface_features("")["log_words"] == 0.0
    m = R.feature_matrix(["a b", "Sure!"])
    assert m.shape == (2, len(R.RATER_FEATURES))
    assert m[1, R.RATER_FEATURES.index("exclamation")] == 1.0
    assert R.feature_matrix([]).shape == (0, len(R.RATER_FEATURES))
    with pytest.raises(TypeError):
        R.surface_features(None)


# --- 5.2 pair differences and the regression -----------------------------------
def test_pair_differences_flip_the_sign_and_the_label():
    fc, fr = np.array([[3.0], [2.0]]), np.array([[1.0], [5.0]])
    x, y = R.pair_differences(fc, fr, np.array([False, True]))
    assert x.tolist() == [[2.0], [3.0]] and y.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="flip"):
        R.pair_differences(fc, fr, np.array([True]))


def test_random_flips_are_seeded_and_balanced():
    a, b = R.random_flips(1000, 3), R.random_flips(1000, 3)
    assert (a == b).all() and 0.45 < a.mean() < 0.55
    assert not (a == R.random_flips(1000, 4)).all()


def _synthetic(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * np.array([1.0, 2.0, 1.0])
    w_raw = np.array([1.0, -0.25, 0.0])  # per raw unit; the last is irrelevant
    y = (rng.random(n) < R.sigmoid(x @ w_raw)).astype(float)
    return x, y, w_raw


def test_regression_recovers_known_coefficients_and_zeroes_an_irrelevant_one():
    x, y, w_raw = _synthetic()
    m = R.fit_l1_logistic(x, y, lam=0.001, n_iter=800)
    per_raw = m.w / m.sd
    assert per_raw[0] == pytest.approx(1.0, abs=0.1)
    assert per_raw[1] == pytest.approx(-0.25, abs=0.05)
    assert abs(per_raw[2]) < 0.08 and abs(m.b) < 0.1
    # a stronger Laplace prior sets the irrelevant weight to exactly 0 and keeps
    # the real ones; with no penalty it is small but not 0
    strong = R.fit_l1_logistic(x, y, lam=0.05, n_iter=800)
    assert strong.w[2] == 0.0 and strong.w[0] > 0.5 and strong.w[1] < -0.2
    assert R.fit_l1_logistic(x, y, lam=0.0, n_iter=800).w[2] != 0.0


def test_regression_table_intervals_cover_the_truth_and_accuracy_is_sane():
    x, y, w_raw = _synthetic()
    m, tab = R.regression_table(x, y, ["a", "b", "c"], lam=0.005, n_boot=30, seed=1)
    true_dp = R.delta_prob(w_raw, x.std(axis=0))
    assert (tab["dp_low"].to_numpy()[:2] < true_dp[:2]).all()
    assert (tab["dp_high"].to_numpy()[:2] > true_dp[:2]).all()
    assert tab.loc["a", "dp_low"] > 0 and tab.loc["b", "dp_high"] < 0
    assert tab["n"].eq(len(y)).all()
    acc = R.accuracy(m, x, y)
    assert 0.6 < acc["accuracy"] < 0.9 and acc["n"] == len(y)
    assert acc["ci95"][0] < acc["accuracy"] < acc["ci95"][1]


def test_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="0 or 1"):
        R.fit_l1_logistic(np.zeros((2, 1)), np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="lam"):
        R.fit_l1_logistic(np.zeros((2, 1)), np.array([0.0, 1.0]), lam=-1)
    with pytest.raises(ValueError, match="must be"):
        R.fit_l1_logistic(np.zeros(2), np.array([0.0, 1.0]))


def test_delta_prob_is_the_sigmoid_of_coef_times_sd_minus_a_half():
    assert R.delta_prob(0.0, 5.0) == 0.0
    assert R.delta_prob(math.log(3), 1.0) == pytest.approx(0.25)  # odds 3 -> p 0.75
    assert R.delta_prob(1.0, 2.0) == pytest.approx(1 / (1 + math.exp(-2)) - 0.5)
    assert R.delta_prob(-1.0, 1.0) == pytest.approx(-R.delta_prob(1.0, 1.0))


# --- 5.4 verdicts ------------------------------------------------------------------
def _row(dp, lo, hi):
    return {"dp": dp, "dp_low": lo, "dp_high": hi}


@pytest.mark.parametrize("rater, judge, want", [
    (_row(0.05, 0.02, 0.08), _row(0.06, 0.03, 0.09), "copies"),
    (_row(0.05, 0.02, 0.08), _row(0.20, 0.15, 0.25), "exaggerates"),
    (_row(0.20, 0.15, 0.25), _row(0.05, 0.02, 0.08), "damps"),
    (_row(0.05, 0.02, 0.08), _row(-0.05, -0.08, -0.02), "reverses"),
    (_row(0.01, -0.02, 0.04), _row(0.05, 0.02, 0.08), "invents"),
    (_row(0.05, 0.02, 0.08), _row(0.01, -0.02, 0.04), "ignores"),
    (_row(0.01, -0.02, 0.04), _row(0.01, -0.02, 0.04), "neither pays"),
])
def test_verdict(rater, judge, want):
    assert R.verdict(rater, judge) == want


# --- 5.5 be the rater -------------------------------------------------------------
def _rows(n):
    return [{"prompt": f"\n\nHuman: q{i}?\n\nAssistant:", "chosen_response": f"Good {i}.",
             "rejected_response": f"Bad {i}.", "subset": "helpful-base"} for i in range(n)]


def test_rater_items_mix_real_and_controlled_pairs():
    items = R.rater_items(_rows(6), 2, 2, 2, seed=0)
    kinds = sorted(it["kind"] for it in items)
    assert kinds == ["confident", "confident", "flattering", "flattering", "real", "real"]
    for it in items:
        if it["kind"] == "real":
            assert it[it["hh"]].startswith("Good") and it["variant"] is None
        elif it["kind"] == "confident":
            assert it[it["variant"]].startswith("Definitely.")
            other = "B" if it["variant"] == "A" else "A"
            assert it[other].startswith("I'm not completely sure")
        else:
            assert it[it["variant"]].startswith("Great question!")
    assert R.rater_items(_rows(6), 2, 2, 2, seed=0) == items
    with pytest.raises(ValueError, match="need 7"):
        R.rater_items(_rows(6), 3, 2, 2)


def test_rater_results_counts_only_real_clicks():
    items = [{"kind": "real", "hh": "A", "variant": None},
             {"kind": "real", "hh": "B", "variant": None},
             {"kind": "confident", "hh": None, "variant": "A"},
             {"kind": "flattering", "hh": None, "variant": "B"}]
    judge = ["A", "A", "B", "B"]
    empty = R.rater_results(items, {}, judge)
    assert empty["n"].eq(0).all()
    assert R.rater_summary(empty, 4) == (
        "0 of 4 labelled: label some pairs above and re-run this cell")
    tab = R.rater_results(items, {0: "A", 1: "A", 2: "A"}, judge)
    assert tab.loc["agree with the HH raters", ["k", "n"]].tolist() == [1, 2]
    assert tab.loc["agree with the judge", ["k", "n"]].tolist() == [2, 3]
    assert tab.loc["picked the confident version", ["k", "n"]].tolist() == [1, 1]
    assert tab.loc["picked the flattering version", "n"] == 0
    text = R.rater_summary(tab, 4)
    assert text.startswith("3 of 4 labelled") and "1 of 2 = 50%" in text
    with pytest.raises(ValueError, match="'A' or 'B'"):
        R.rater_results(items, {0: "C"})


# --- config and checks ----------------------------------------------------------------
def test_raters_config_presets_and_validation():
    fast = RatersConfig.for_preset(LessonConfig(preset="fast"))
    assert fast.n_boot_reg < RatersConfig().n_boot_reg
    with pytest.raises(ValueError, match="RatersConfig.l1"):
        RatersConfig(l1=0)
    with pytest.raises(ValueError, match="n_probe_answers"):
        RatersConfig(n_probe_answers=0)


def _fails(check, fn, hint):
    with pytest.raises(AssertionError, match=hint):
        check(fn)


def test_check_pair_differences(capsys):
    check = checks.check_pair_differences
    check(R.pair_differences)
    assert capsys.readouterr().out.startswith("✅")
    _fails(check, lambda c, r, f: (c - r, (~f).astype(float)), "ignores flip")
    _fails(check, lambda c, r, f: (-R.pair_differences(c, r, f)[0],
                                   R.pair_differences(c, r, f)[1]), "sign is reversed")
    _fails(check, lambda c, r, f: (R.pair_differences(c, r, f)[0], f.astype(float)),
           "CHOSEN")
    _fails(check, lambda c, r, f: (R.pair_differences(c, r, f)[0], np.ones(len(f))),
           "never varies")


def test_check_delta_prob(capsys):
    check = checks.check_delta_prob
    check(lambda c, s: float(R.delta_prob(c, s)))
    assert capsys.readouterr().out.startswith("✅")
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    _fails(check, lambda c, s: sig(c * s), "subtract 0.5")
    _fails(check, lambda c, s: sig(c / s) - 0.5, "not divide")
    _fails(check, lambda c, s: sig(c) - 0.5, "scale by sd")
    _fails(check, lambda c, s: c * s / 4, "linear approximation")


# --- presentation: the paired bars and the widget, headless ------------------------
def test_plot_paid_for_and_the_rater_widget_headless():
    tab = pd.DataFrame({"raters": [0.05, -0.02], "raters_low": [0.02, -0.05],
                        "raters_high": [0.08, 0.01], "judge": [0.1, 0.0],
                        "judge_low": [0.05, -0.03], "judge_high": [0.15, 0.03]},
                       index=["log_words", "hedge"])
    ax = plots.plot_paid_for(tab)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["log_words", "hedge"]
    assert len(ax.patches) == 4  # two bars per feature
    plt.close("all")
    items = R.rater_items(_rows(3), 1, 1, 1, seed=0)
    labels = {}
    ui = widgets.make_rater_widget(items, labels)
    assert labels == {}  # headless: nobody clicked, nothing is labelled
    ok, _, skip = ui.children[0].children[:3]
    ok.click()
    skip.click()
    assert labels == {0: "A"}
