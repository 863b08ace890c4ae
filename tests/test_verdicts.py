"""The one verdict vocabulary and power before running, on hand-computed cases."""

import math

import pytest

from rlhf_lessons.measure import verdicts as V


def test_n_per_arm_by_hand():
    # p̄ = 0.55: (1.96·√0.495 + 0.8416·√0.49)² / 0.01 = 387.3 -> 388
    assert V.n_per_arm(0.5, 0.6) == 388
    assert V.n_per_arm(0.6, 0.5) == 388  # symmetric
    # the review's case: 1.6% before, 4.1% predicted: about 700 answers per policy
    assert 650 < V.n_per_arm(0.016, 0.041) < 800
    with pytest.raises(ValueError, match="no difference"):
        V.n_per_arm(0.2, 0.2)
    with pytest.raises(ValueError, match="p1=1.5"):
        V.n_per_arm(0.2, 1.5)


def test_n_one_sample_by_hand():
    # (1.95996·0.5 + 0.84162·√0.24)² / 0.1² = (0.97998 + 0.41231)² / 0.01 = 193.8 -> 194
    assert V.n_one_sample(0.5, 0.6) == 194
    assert V.n_one_sample(0.5, 0.6) < V.n_per_arm(0.5, 0.6)  # one arm is known exactly
    assert V.min_detectable_rate(0.5, 194, one_sample=True) == 0.6
    with pytest.raises(ValueError):
        V.n_one_sample(0.5, 0.5)


def test_power_line_says_whether_the_experiment_can_decide():
    assert V.power_line("gain", 64, 0.35, " std", expected=1.0).endswith("it can decide)")
    assert "resize it" in V.power_line("gain", 64, 0.35, expected=0.1)
    assert V.power_line("accuracy", 857, 0.548) == (
        "power: with n = 857, the smallest accuracy this can tell from its null is 0.548")


def test_min_detectable_rate_is_the_inverse_of_n_per_arm():
    p1 = V.min_detectable_rate(0.5, 388)
    assert p1 == pytest.approx(0.6, abs=0.001)
    assert V.n_per_arm(0.5, p1) <= 388 < V.n_per_arm(0.5, p1 - 0.001)
    assert V.min_detectable_rate(0.5, 388, upward=False) == pytest.approx(0.4, abs=0.001)
    assert V.min_detectable_rate(0.016, 256) > 0.041  # 06's old experiment could not decide


def test_min_detectable_mean_by_hand():
    assert V.min_detectable_mean(1.0, 100) == pytest.approx(0.2802, abs=1e-4)
    assert V.min_detectable_mean(1.0, 100, paired=False) == pytest.approx(
        0.2802 * math.sqrt(2), abs=1e-4)


def test_verdict_rules():
    assert V.verdict(0.1, 0.3, n=50) == "holds"
    assert V.verdict(-0.3, -0.1, n=50) == "does not hold (the opposite holds)"
    assert V.verdict(-0.3, -0.1, n=50, larger=False) == "holds"
    assert V.verdict(-0.1, 0.3, n=50, n_needed=400) == \
        "cannot tell with n = 50, would need n ≈ 400"
    assert V.verdict(0.51, 0.6, n=300, null=0.5) == "holds"
    # the classic mistake: an interval above chance while the training loss never moved
    assert V.verdict(0.51, 0.62, n=300, null=0.5, curve_moved=False).startswith(
        "does not hold")
    # sized to see a predicted rise of 0.28: an interval around 0 that stops short
    # of it decides (the rise did not come); one that reaches it cannot tell
    assert V.verdict(-0.02, 0.03, n=256, predicted=0.28) == \
        "does not hold (below the predicted +0.28)"
    assert V.verdict(-0.02, 0.3, n=256, predicted=0.28).startswith("cannot tell")
    assert V.verdict(0.01, 0.03, n=256, predicted=0.28) == "holds"
    assert V.verdict(-0.3, 0.02, n=256, larger=False, predicted=-0.1) == \
        "cannot tell with n = 256"
    assert V.verdict(-0.05, 0.02, n=256, larger=False, predicted=-0.1) == \
        "does not hold (above the predicted -0.1)"
    assert V.verdict(float("nan"), 1.0, n=3).startswith("cannot tell")
    with pytest.raises(ValueError):
        V.verdict(0.5, 0.1, n=3)


def test_compare_effects():
    assert V.compare_effects(0.03, (0.01, 0.05), 0.19, (0.15, 0.23)) == "exaggerates"
    assert V.compare_effects(0.03, (0.01, 0.05), 0.04, (0.0, 0.08)) == "follows"
    assert V.compare_effects(0.03, (0.01, 0.05), -0.1, (-0.2, -0.05)) == "reverses"
    assert V.compare_effects(-0.01, (-0.03, 0.01), 0.2, (0.1, 0.3)) == "exaggerates"


def test_claims_table_rounds_and_names_missing_fields():
    t = V.claims_table([{"claim": "x", "number": 0.123456, "ci": (0.1, 0.15), "n": 10,
                         "verdict": "holds"}])
    assert t.loc[0, "number"] == "+0.123" and t.loc[0, "interval"] == "[+0.100, +0.150]"
    with pytest.raises(ValueError, match="missing"):
        V.claims_table([{"claim": "x"}])


def test_claim_computes_its_verdict_and_check_claims_catches_a_typed_one():
    up = V.claim("rises", 0.1, (0.02, 0.18), 100)
    down = V.claim("falls", -0.1, (-0.18, -0.02), 100, larger=False)
    wrong_way = V.claim("rises", -0.1, (-0.18, -0.02), 100)
    flat = V.claim("accuracy beats a coin", 0.52, (0.45, 0.59), 200, null=0.5)
    stuck = V.claim("DPO learns", 0.1, (0.02, 0.18), 100, curve_moved=False)
    assert [c["verdict"] for c in (up, down, wrong_way, flat, stuck)] == [
        "holds", "holds", "does not hold (the opposite holds)", "cannot tell with n = 200",
        "does not hold (the training run it rests on did not move)"]
    assert V.check_claims([up, down, wrong_way, flat, stuck]) == []
    typed = dict(flat, verdict="holds")  # the word a hopeful author would type
    assert V.check_claims([up, typed]) == [
        "accuracy beats a coin: says 'holds', its numbers give 'cannot tell with n = 200'"]
    assert list(V.claims_table([down, flat])["holds if"]) == ["< 0", "> 0.5"]
    short = V.claim("PPO raises the marker", 0.004, (-0.02, 0.03), 256, predicted=0.28)
    assert short["verdict"].startswith("does not hold") and V.check_claims([short]) == []
    assert V.claims_table([short]).loc[0, "holds if"] == "> 0 (predicted +0.28)"
    # a loss that must fall below log 2 and counts as learned at 0.65: an interval
    # wholly above 0.65 decides, named for the target
    stuck = V.claim("DPO's loss falls", 0.69, (0.676, 0.705), 300, null=0.693, larger=False,
                    predicted=0.65, predicted_name="target")
    assert stuck["verdict"] == "does not hold (above the target +0.65)"
    assert V.check_claims([stuck]) == []
    assert V.claims_table([stuck]).loc[0, "holds if"] == "< 0.693 (target +0.65)"
    widened = {**stuck, "mean": 0.69, "ci_low": 0.676}  # a notebook's own extra numbers
    assert V.saved_claim(widened) == stuck and V.check_claims([V.saved_claim(widened)]) == []
    assert V.check_claims([dict(short, predicted=None)]) == [
        "PPO raises the marker: says 'does not hold (below the predicted +0.28)', its "
        "numbers give 'cannot tell with n = 256'"]


def test_curve_moved_compares_the_last_quarter_with_the_first():
    assert V.curve_moved([1.0, 0.9, 0.5, 0.4], rises=False)
    assert not V.curve_moved([1.0, 0.9, 0.5, 0.4])
    # a loss that ends on one high step still fell: quarters, not end points
    assert V.curve_moved([0.9, 0.9, 0.8, 0.5, 0.5, 0.4, 0.3, 0.95], rises=False)
    for one_point in ([], [3.0]):
        with pytest.raises(ValueError, match="cannot have moved"):
            V.curve_moved(one_point)
