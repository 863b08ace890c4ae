"""The simulated biased raters of notebook 06 and the head-only judge fit."""

import numpy as np
import pytest

from rlhf_lessons.measure import biased_raters as B


def test_markers():
    assert B.has_marker("sure, I can", "Sure.") and not B.has_marker("Unsure", "Sure.")
    assert B.add_marker("Yes.", "Sure.") == "Sure. Yes."
    assert B.add_marker("Sure thing", "Sure.") == "Sure thing"


@pytest.mark.parametrize("b", [0.0, 0.1, 0.25])
def test_biased_labeller_reaches_the_asked_rate(b):
    n = 40_000
    rng = np.random.default_rng(1)
    human = rng.random(n) < 0.5
    ma, mb = rng.random(n) < 0.5, rng.random(n) < 0.5
    lab = B.biased_labels(human, ma, mb, b, np.random.default_rng(2))
    one = ma != mb
    marked_wins = np.where(ma, lab, ~lab)[one].mean()
    want = 0.5 + b / 2
    sd = np.sqrt(want * (1 - want) / one.sum())
    assert abs(marked_wins - want) < 4 * sd
    assert (lab[~one] == human[~one]).all()  # no marker difference: the human label


def test_biased_labeller_refuses_bad_b():
    with pytest.raises(ValueError, match="b=2"):
        B.biased_labels([True], [True], [False], 2, np.random.default_rng(0))


def test_linear_head_separates_toy_features():
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    a_wins = xa[:, 0] > xb[:, 0]  # only feature 0 matters
    head = B.fit_linear_head(xa, xb, a_wins)
    assert head["train_acc"] > 0.95
    assert np.argmax(np.abs(head["w"])) == 0 and head["w"][0] > 0
    s = B.linear_scores(head, np.eye(3))
    assert s[0] > abs(s[1]) and s[0] > abs(s[2])
