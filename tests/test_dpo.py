"""DPO on hand-computable cases: the loss, the answer boundary, the answer log-probs."""

import math

import pytest
import torch

from rlhf_lessons.core.config import ModelConfig
from rlhf_lessons.core.models import build_gpt2
from rlhf_lessons.core.utils import autocast
from rlhf_lessons.course import checks
from rlhf_lessons.train.dpo import answer_logprobs, answer_start, dpo_loss


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
    # the third fills all 16 positions: the batch's length is rounded up to
    # LENGTH_MULTIPLE (64) but never past the model's positions
    seqs, starts = [[3, 4, 5, 6, 0], [3, 4, 7], [3, 4] + [5, 6, 7, 8, 9, 10, 1] * 2], [2, 2, 2]
    got = answer_logprobs(model, seqs, starts, pad_id=0)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        ids = torch.tensor([s])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        want = sum(logp[t - 1, s[t]].item() for t in range(a, len(s)))
        assert got[i].item() == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="starts"):
        answer_logprobs(model, seqs, [1], pad_id=0)


def test_dpo_loss_is_log2_at_the_reference_and_grad_pushes_chosen_up():
    pc = torch.tensor([-5.0, -3.0], requires_grad=True)
    pr = torch.tensor([-4.0, -6.0], requires_grad=True)
    loss, rc, rr = dpo_loss(pc, pr, pc.detach().clone(), pr.detach().clone(), beta=0.3)
    assert loss.item() == pytest.approx(math.log(2))
    assert rc.tolist() == [0.0, 0.0] and rr.tolist() == [0.0, 0.0]
    loss.backward()
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent: chosen up, rejected down


def test_implicit_reward_and_accuracy_by_hand_on_two_pairs():
    from rlhf_lessons.train.dpo import implicit_accuracy, implicit_reward

    r = implicit_reward(torch.tensor([-5.0, -2.0]), torch.tensor([-6.0, -1.0]), beta=0.5)
    assert r.tolist() == pytest.approx([0.5, -0.5])
    # pair 1: margin 0.5·((−5+6) − (−7+6.5)) = 0.75 > 0; pair 2: 0.5·((−2+1) − (−3+4)) = −1
    acc = implicit_accuracy(([-5.0, -2.0], [-7.0, -3.0]), ([-6.0, -1.0], [-6.5, -4.0]), 0.5)
    assert acc["k"] == 1 and acc["n"] == 2 and acc["accuracy"] == 0.5
    assert acc["margins"].tolist() == pytest.approx([0.75, -1.0])
    # −log σ(0.75) = log(1 + e^−0.75) = log 1.47237 = 0.38687; −log σ(−1) = log(1 + e) = 1.31326
    assert acc["losses"].tolist() == pytest.approx([0.38687, 1.31326], abs=1e-5)
    tie = implicit_accuracy(([-5.0], [-7.0]), ([-6.0], [-6.5]), 0.5, identical=[True])
    assert tie["k"] == 0  # identical pairs are ties: wrong
    with pytest.raises(ValueError, match="beta"):
        implicit_reward(torch.zeros(1), torch.zeros(1), beta=-1.0)


def test_train_dpo_raises_the_implicit_accuracy_on_its_train_pairs(tmp_path):
    import copy

    from rlhf_lessons.core.config import DPOConfig
    from rlhf_lessons.train.dpo import all_pair_logprobs, implicit_accuracy, train_dpo
    from rlhf_lessons.train.reward import pairset_from_ids

    torch.manual_seed(0)
    mc = ModelConfig(name="tiny", n_layer=1, n_embd=16, n_head=2, n_positions=32)
    policy = build_gpt2(20, mc, eos_id=0)
    ref = copy.deepcopy(policy)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 20, (5,), generator=g).tolist() for _ in range(16)]
    # chosen answers repeat token 1, rejected ones token 2: learnable
    pairs = pairset_from_ids([p + [1, 1, 1, 0] for p in prompts],
                             [p + [2, 2, 0] for p in prompts])
    ref_lp = all_pair_logprobs(ref, pairs, pad_id=0)
    cfg = DPOConfig(beta=0.5, lr=1e-2, batch_size=8, max_steps=12)
    ck = tmp_path / "dpo.pt"
    run = train_dpo(policy, ref, pairs, cfg, pad_id=0, ref_logps=ref_lp, checkpoint=ck,
                    show_progress=False)
    df = run.metrics
    # the reference's log-probs were given: no reference phase
    assert {"forward", "backward", "optimizer", "other", "total"} == set(run.phases)
    for col in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies",
                "rewards/margins", "logps/chosen", "logps/rejected"):
        assert df[col].notna().all(), col
    assert df["loss"].iloc[0] == pytest.approx(math.log(2), abs=1e-4)
    after = implicit_accuracy(all_pair_logprobs(policy, pairs, pad_id=0), ref_lp, 0.5)
    assert after["accuracy"] == 1.0 and df["loss"].iloc[-1] < 0.3
    assert ck.exists()
    # a rerun with the same settings resumes at the end: no new rows
    again = train_dpo(copy.deepcopy(ref), ref, pairs, cfg, pad_id=0, ref_logps=ref_lp,
                      checkpoint=ck, show_progress=False)
    assert len(again.metrics) == len(df) and not again.trained_now


def test_beta_view_by_hand():
    from rlhf_lessons.train.dpo import beta_view

    v = beta_view([0.0, 2.0], beta=0.5)
    s = 1 / (1 + math.exp(-1.0))  # σ(0.5·2)
    assert v["prob"].tolist() == pytest.approx([0.5, s])
    assert v["loss"] == pytest.approx((math.log(2) - math.log(s)) / 2)
    assert v["weight"] == pytest.approx((0.5 + (1 - s)) / 2) and v["share_sure"] == 0.0
    with pytest.raises(ValueError, match="beta"):
        beta_view([1.0], beta=0)


def test_policy_pairs_share_the_prompt_tokens_and_start_at_the_answer():
    from rlhf_lessons.course.artefacts import PRETRAINED_DIR, load_tokenizer
    from rlhf_lessons.train.dpo import pair_starts, policy_pairs

    tok = load_tokenizer(PRETRAINED_DIR)
    long_prompt = "\n\nHuman: " + "tell me more " * 40 + "\n\nAssistant:"
    rows = [{"prompt": long_prompt, "chosen_response": "Yes, gladly.",
             "rejected_response": "No." * 20, "subset": "helpful-base"},
            {"prompt": "\n\nHuman: Hi\n\nAssistant:", "chosen_response": "Hi!",
             "rejected_response": "Hi!"}]
    ps = policy_pairs(rows, tok, max_len=48)
    assert len(ps) == 1 and ps.n_identical_dropped == 1 and ps.n_truncated == 1
    c, r = ps.chosen_ids[0], ps.rejected_ids[0]
    assert max(len(c), len(r)) == 48 and c[-1] == r[-1] == tok.eos_token_id
    (st,) = pair_starts(ps.chosen_ids, ps.rejected_ids)
    n_answer = len(tok(" Yes, gladly.", add_special_tokens=False)["input_ids"]) + 1
    assert len(c) - st == n_answer  # the answers differ from their first token


def test_all_pair_logprobs_batches_by_length_and_returns_the_pairs_order():
    from rlhf_lessons.train.dpo import all_pair_logprobs, pair_logprobs
    from rlhf_lessons.train.reward import pairset_from_ids

    torch.manual_seed(0)
    mc = ModelConfig(name="tiny", n_layer=1, n_embd=16, n_head=2, n_positions=32)
    model = build_gpt2(20, mc, eos_id=0).eval()
    # lengths 9, 4, 12, 5, 7: sorting reorders them, batches of 2 mix the order
    lens = [9, 4, 12, 5, 7]
    chosen = [[3 + (i + j) % 15 for j in range(n)] for i, n in enumerate(lens)]
    rejected = [c[:-2] + [1, 0] for c in chosen]
    pairs = pairset_from_ids(chosen, rejected)
    c, r = all_pair_logprobs(model, pairs, pad_id=0, batch_size=2)
    # each pair alone (no padding at all), in the precision all_pair_logprobs uses
    # (bf16 autocast on a CPU with native bf16)
    with torch.no_grad(), autocast(torch.device("cpu")):
        for i in range(len(lens)):
            ci, ri = pair_logprobs(model, pairs, [i], pad_id=0)
            assert c[i] == pytest.approx(float(ci[0]), abs=1e-5)
            assert r[i] == pytest.approx(float(ri[0]), abs=1e-5)


def test_answer_logprobs_with_long_prompts_start_the_final_block_at_a_multiple_of_64():
    from rlhf_lessons.train.dpo import LENGTH_MULTIPLE

    torch.manual_seed(1)
    mc = ModelConfig(name="tiny", n_layer=2, n_embd=16, n_head=2, n_positions=160)
    model = build_gpt2(11, mc, eos_id=0).eval()
    # answers start at 100 and 130: the final block runs from position 64, not 99
    seqs = [[1 + (i * 7) % 10 for i in range(120)], [1 + (i * 3) % 10 for i in range(150)]]
    starts = [100, 130]
    assert (min(starts) - 1) // LENGTH_MULTIPLE * LENGTH_MULTIPLE == 64
    got = answer_logprobs(model, seqs, starts, pad_id=0)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([s])).logits[0].float(), -1)
        want = sum(logp[t - 1, s[t]].item() for t in range(a, len(s)))
        assert got[i].item() == pytest.approx(want, abs=1e-4)
