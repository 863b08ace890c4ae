"""DPO on hand-computable cases: the loss, the answer boundary, the answer log-probs."""

import math

import pytest
import torch

from rlhf_lessons import checks
from rlhf_lessons.config import ModelConfig
from rlhf_lessons.dpo import answer_logprobs, answer_start, dpo_loss
from rlhf_lessons.models import build_gpt2


def test_dpo_loss_by_hand():
    t = lambda *x: torch.tensor(x)  # noqa: E731
    loss, rc, rr = dpo_loss(t(-5.0), t(-7.0), t(-6.0), t(-6.5), beta=0.5)
    # implicit rewards 0.5·(−5+6) = 0.5 and 0.5·(−7+6.5) = −0.25; margin 0.75
    assert rc.item() == pytest.approx(0.5) and rr.item() == pytest.approx(-0.25)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.75)), rel=1e-6)


def test_dpo_loss_passes_the_exercise_check_and_refuses_bad_input():
    checks.check_dpo_loss(lambda *a: dpo_loss(*a)[0])
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), beta=0)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2), beta=0.1)


def test_answer_start_is_the_first_difference():
    assert answer_start([1, 2, 3, 4], [1, 2, 5]) == 2
    assert answer_start([7, 8], [9, 8]) == 0
    assert answer_start([1, 2], [1, 2]) == 2  # identical: no answer
    assert answer_start([1, 2], [1, 2, 3]) == 2  # one is a prefix of the other


def test_answer_logprobs_match_a_loop_and_ignore_padding():
    torch.manual_seed(0)
    mc = ModelConfig(name="tiny", n_layer=1, n_embd=16, n_head=2, n_positions=16)
    model = build_gpt2(11, mc, eos_id=0).eval()
    seqs, starts = [[3, 4, 5, 6, 0], [3, 4, 7]], [2, 2]
    got = answer_logprobs(model, seqs, starts, pad_id=0)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        ids = torch.tensor([s])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        want = sum(logp[t - 1, s[t]].item() for t in range(a, len(s)))
        assert got[i].item() == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="starts"):
        answer_logprobs(model, seqs, [1], pad_id=0)
