"""Selection pressure (notebook 06): best-of-n, the tilt, Gao's fit, the length split."""

import itertools
import math

import numpy as np
import pytest

from rlhf_lessons.measure import selection as S


def test_best_of_n_matches_brute_force_over_all_subsets():
    rng = np.random.default_rng(0)
    scores, values = rng.normal(size=6), rng.normal(size=6)
    for n in range(1, 7):
        subsets = list(itertools.combinations(range(6), n))
        brute = np.mean([values[max(c, key=lambda i: scores[i])] for c in subsets])
        assert S.best_of_n_expected(scores, values, [n])[0] == pytest.approx(brute)


def test_best_of_n_weights_sum_to_one_and_n_equal_k_is_the_max():
    w = S.best_of_n_weights(5, 3)
    assert w.sum() == pytest.approx(1.0) and w[:2].tolist() == [0, 0]
    assert S.best_of_n_expected([3, 1, 2], [10, 20, 30], [3])[0] == 10
    assert S.best_of_n_expected([3, 1, 2], [10, 20, 30], [1])[0] == pytest.approx(20)
    with pytest.raises(ValueError, match="n <= k"):
        S.best_of_n_weights(3, 4)


def test_pooled_best_of_n_averages_pools():
    out = S.pooled_best_of_n([[1, 2], [2, 1]], [[0, 1], [0, 1]], [1, 2], n_boot=50)
    assert out["mean"].tolist() == pytest.approx([0.5, 0.5])
    assert out["n_pools"] == 2


def test_tilt_share_is_exact_reweighting_of_a_discrete_distribution():
    # four answers, two with the feature; reward delta on those
    p_ref = np.array([0.1, 0.2, 0.3, 0.4])
    feat = np.array([1, 0, 1, 0], bool)
    delta, beta = 0.7, 0.3
    tilted = p_ref * np.exp(np.where(feat, delta, 0) / beta)
    want = tilted[feat].sum() / tilted.sum()
    assert S.tilt_share(p_ref[feat].sum(), delta, beta) == pytest.approx(want)
    assert S.tilt_share(0.0, 5.0, 0.1) == 0.0
    with pytest.raises(ValueError, match="beta"):
        S.tilt_share(0.5, 1.0, 0.0)


def test_bon_kl_bound_values():
    assert S.bon_kl_bound(1) == 0
    assert S.bon_kl_bound(16) == pytest.approx(math.log(16) - 15 / 16)


def test_fit_gao_bon_recovers_known_coefficients():
    d = np.linspace(0.1, 3, 12)
    fit = S.fit_gao_bon(d, d * (1.2 - 0.4 * d))
    assert (fit["alpha"], fit["beta"]) == pytest.approx((1.2, 0.4))
    assert fit["d_peak"] == pytest.approx(1.5)
    assert S.fit_gao_bon(d, 0.5 * d)["d_peak"] == math.inf or \
        abs(S.fit_gao_bon(d, 0.5 * d)["beta"]) < 1e-9


def test_length_decomposition_on_a_constructed_case():
    # before: short answers score 0, long score 1, half each; after: all long,
    # and long ones now score 2.
    wb, sb = [5, 5, 50, 50], [0, 0, 1, 1]
    wa, sa = [50, 50, 50, 50], [2, 2, 2, 2]
    out = S.length_decomposition(wb, sb, wa, sa, edges=[20])
    assert out["total"] == pytest.approx(1.5)
    assert out["between"] == pytest.approx(0.5)  # +0.5 weight on a bin worth 1
    assert out["within"] == pytest.approx(1.0)  # long bin gained 1
    assert out["between"] + out["within"] == pytest.approx(out["total"])
    lo, hi = S.bootstrap_length_share(wb, sb, wa, sa, [20], n_boot=50)
    assert lo <= hi


def test_feature_share_best_of_n():
    # a feature worth +10 always wins at n = k; at n = 1 the share is p0
    plain = np.array([[0.0, 1.0, 2.0, 3.0]])
    out = S.feature_share_best_of_n(plain, plain + 10, 0.3, [1, 4], n_draws=2000)
    assert out[0, 0] == pytest.approx(0.3, abs=0.03)
    assert out[0, 1] == pytest.approx(1 - 0.7 ** 4, abs=0.03)
    # a feature worth nothing: the share stays at p0 for every n
    same = S.feature_share_best_of_n(plain, plain, 0.5, [1, 2, 4], n_draws=2000)
    assert same[0] == pytest.approx([0.5, 0.5, 0.5], abs=0.03)
    boot = S.bootstrap_over_pools(np.array([[0.0], [1.0]]), n_boot=100)
    assert boot["mean"][0] == 0.5 and boot["n_pools"] == 2
