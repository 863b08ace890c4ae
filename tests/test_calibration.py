"""Calibration (notebook 06): ECE by hand, reliability bins, temperature, the judge."""

import numpy as np
import pytest
import torch

from rlhf_lessons.measure import calibration as C


def test_ece_by_hand():
    # bins of width 0.5: [0.2, 0.4] acc 1/2, conf 0.3; [0.6, 0.8, 1.0] acc 1/3, conf 0.8
    conf = [0.2, 0.4, 0.6, 0.8, 1.0]
    hit = [1, 0, 1, 0, 0]
    want = 2 / 5 * abs(0.5 - 0.3) + 3 / 5 * abs(1 / 3 - 0.8)
    assert C.ece(conf, hit, 2) == pytest.approx(want)
    assert C.ece([0.5] * 4, [1, 0, 1, 0], 10) == 0.0
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        C.ece([1.5], [1], 2)


def test_reliability_bins_put_one_in_the_last_bin():
    r = C.reliability_bins([1.0, 0.05], [1, 0], 10)
    assert r["count"][-1] == 1 and r["count"][0] == 1 and r["count"].sum() == 2


class _Uniform(torch.nn.Module):
    """An LM that always predicts token 1 with logit 2, others 0 (vocab 4)."""

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, 4)
        logits[..., 1] = 2.0
        return type("O", (), {"logits": logits})()


class _Tok:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 if c == "a" else 2 for c in text if c in "ab"]}


def test_next_token_stats_and_temperature():
    st = C.next_token_stats(_Uniform(), _Tok(), ["b"], ["aab"], [1.0, 2.0])
    assert st["correct"].tolist() == [True, True, False]
    p1 = np.exp(2) / (np.exp(2) + 3)
    assert st["conf"][0] == pytest.approx([p1] * 3)
    assert st["nll"][0, 0] == pytest.approx(-np.log(p1))
    fit = C.fit_temperature(st, [1.0, 2.0])
    assert fit["T"] in (1.0, 2.0)


def test_judge_confidence():
    conf, ok = C.judge_confidence([1.0, 0.0], [0.0, 2.0])
    assert ok.tolist() == [True, False]
    assert conf[1] == pytest.approx(1 / (1 + np.exp(-2)))
