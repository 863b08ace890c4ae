"""PPO (rlhf_lessons.train.ppo, notebook 04): hand-computable cases and the classic bugs."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from rlhf_lessons.core import batching as bt
from rlhf_lessons.core.config import LessonConfig, preset
from rlhf_lessons.core.lean_gpt2 import gpt2_hidden
from rlhf_lessons.core.models import build_gpt2
from rlhf_lessons.course.artefacts import load_policy
from rlhf_lessons.train import ppo
from rlhf_lessons.train import rollout as rl
from rlhf_lessons.train.prompts import ppo_prompts


@pytest.fixture(scope="module")
def fast() -> LessonConfig:
    return preset("fast")


@pytest.fixture(scope="module")
def tiny(fast):
    policy, tok = load_policy(fast, "sft")
    return policy, tok


def gae_loop(rewards, values, mask, gamma, lam):
    """The textbook backward loop, one row at a time, on the real tokens only."""
    adv = torch.zeros_like(rewards)
    for i in range(rewards.size(0)):
        n = int(mask[i].sum())
        last = 0.0
        for t in reversed(range(n)):
            v_next = values[i, t + 1] if t + 1 < n else 0.0
            delta = rewards[i, t] + gamma * v_next - values[i, t]
            last = delta + gamma * lam * last
            adv[i, t] = last
    return adv, (adv + values) * mask


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (0.99, 1.0)])
def test_gae_vectorised_equals_loop(gamma, lam):
    g = torch.Generator().manual_seed(1)
    B, R = 5, 9
    rewards = torch.randn(B, R, generator=g, dtype=torch.float64)
    values = torch.randn(B, R, generator=g, dtype=torch.float64)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    mask = (torch.arange(R)[None] < lengths[:, None]).double()
    adv, ret = ppo.gae(rewards, values, mask, gamma, lam)
    ref_adv, ref_ret = gae_loop(rewards, values * mask, mask, gamma, lam)
    torch.testing.assert_close(adv, ref_adv)
    torch.testing.assert_close(ret, ref_ret)


def test_gae_three_step_by_hand():
    # gamma = lam = 1: A_t = sum of rewards from t on - V_t
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([[0.5, 0.2, 0.1]])
    adv, ret = ppo.gae(r, v, torch.ones(1, 3), 1.0, 1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.8, 0.9]]))
    torch.testing.assert_close(ret, torch.tensor([[1.0, 1.0, 1.0]]))


def test_kl_estimators_by_hand_and_k3_nonnegative():
    lp = torch.tensor([math.log(0.5)])
    ref = torch.tensor([math.log(0.25)])
    assert ppo.kl_per_token(lp, ref, "k1").item() == pytest.approx(math.log(2))
    # r = p_ref / p = 0.5: k3 = (0.5 - 1) - log 0.5
    assert ppo.kl_per_token(lp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    assert (ppo.kl_per_token(a, b, "k3") >= 0).all()
    assert (ppo.kl_per_token(a, b, "k1") < 0).any()  # k1 can be negative per token
    with pytest.raises(ValueError, match="kl_estimator"):
        ppo.kl_per_token(a, b, "k2")


def test_truncation_after_first_eos_and_missing_eos_penalty():
    eos = pad = 0
    raw = torch.tensor([[5, 0, 7, 0], [5, 6, 7, 8], [0, 3, 3, 3]])
    ids, mask, has_eos = bt.truncate_after_eos(raw, eos, pad)
    assert ids.tolist() == [[5, 0, 0, 0], [5, 6, 7, 8], [0, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]
    scores = rl.apply_missing_eos_penalty(torch.tensor([1.0, 1.0, 1.0]), has_eos, 0.5)
    assert scores.tolist() == [1.0, 0.5, 1.0]
    # a distinct pad id: pads replace everything after the first EOS
    ids2, _, _ = bt.truncate_after_eos(torch.tensor([[4, 2, 9]]), eos_id=2, pad_id=1)
    assert ids2.tolist() == [[4, 2, 1]]


def test_score_index_reads_last_text_token():
    p_ids, p_mask = bt.left_pad([[7, 8], [9]], pad_id=0)
    r_ids, r_mask, has = bt.truncate_after_eos(torch.tensor([[3, 0, 5], [3, 4, 5]]), 0, 0)
    b = rl.make_batch(p_ids, p_mask, r_ids, r_mask, has)
    # row 0: [7 8 | 3 EOS .] -> the "3" at index 2; row 1: [. 9 | 3 4 5] -> index 4
    assert b.score_index.tolist() == [2, 4]
    assert b.pos.tolist() == [[0, 1, 2, 3, 3], [0, 0, 1, 2, 3]]


def test_shape_rewards_by_hand():
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    rewards, non_score = ppo.shape_rewards(torch.tensor([2.0]), kl, mask, beta=0.5)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, -0.1, 1.85, 0.0]]))
    torch.testing.assert_close(non_score.sum(), torch.tensor(-0.3))


def test_adaptive_kl_controller():
    assert ppo.update_kl_coef(0.1, 12.0, 6.0, 100, 1000) == pytest.approx(0.1 * 1.02)
    assert ppo.update_kl_coef(0.1, 6.6, 6.0, 100, 1000) == pytest.approx(0.1 * 1.01)
    assert ppo.update_kl_coef(0.1, 1.0, 6.0, 100, 1000) == pytest.approx(0.1 * 0.98)
    assert ppo.update_kl_coef(0.1, 50.0, 0.0, 100, 1000) == 0.1  # target 0 = fixed


def test_clipped_surrogate_by_hand():
    one = torch.ones(1, 2)
    adv = torch.tensor([[1.0, 1.0]])
    new = torch.tensor([[0.5, -0.5]])  # ratios e^0.5 = 1.65 (clipped), e^-0.5 = 0.61
    out = ppo.ppo_losses(new, torch.zeros(1, 2), adv, torch.zeros(1, 2), torch.zeros(1, 2),
                         torch.zeros(1, 2), one, cliprange=0.2)
    # token 0: max(-1.65, -1.2) = -1.2 (clipped); token 1: max(-0.61, -0.8) = -0.61
    assert out["pg_loss"].item() == pytest.approx((-1.2 - math.exp(-0.5)) / 2)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    assert out["approxkl"].item() == pytest.approx(0.5 * 0.25)
    assert out["ratio"].item() == pytest.approx((math.exp(0.5) + math.exp(-0.5)) / 2)


def test_clipped_value_loss_by_hand():
    z = torch.zeros(1, 2)
    new_v = torch.tensor([[1.0, 1.0]])
    returns = torch.tensor([[0.0, 2.0]])
    out = ppo.ppo_losses(z, z, z, new_v, z, returns, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: V_clip = 0.2, max((1-0)^2, (0.2-0)^2) = 1 (unclipped wins)
    # token 1: max((1-2)^2, (0.2-2)^2) = 3.24 (the clipped one is used)
    assert out["vf_loss"].item() == pytest.approx(0.5 * (1.0 + 3.24) / 2)
    assert out["vf_clipfrac"].item() == pytest.approx(0.5)


def test_fast_forward_matches_transformers(tiny):
    policy, tok = tiny
    seqs = [tok("Human: hi there", add_special_tokens=False)["input_ids"],
            tok("Human: what is a cat, really?", add_special_tokens=False)["input_ids"]]
    ids, mask = bt.left_pad(seqs, tok.pad_token_id)
    pos = bt.position_ids(mask)
    with torch.no_grad():
        ours = gpt2_hidden(policy, ids, mask, pos)
        hf = policy.transformer(input_ids=ids, attention_mask=mask,
                                position_ids=pos).last_hidden_state
    m = mask.bool()
    torch.testing.assert_close(ours[m], hf[m], atol=1e-5, rtol=1e-4)
    # a left-padded row reads exactly as it does alone
    with torch.no_grad():
        alone = gpt2_hidden(policy, ids[:1, m[0]], mask[:1, m[0]], pos[:1, m[0]])
    torch.testing.assert_close(ours[0, m[0]], alone[0], atol=1e-5, rtol=1e-4)


def test_from_pos_computes_the_same_tail_and_gradients(tiny):
    """The final block run only from ``from_pos`` on: the same hidden states there,
    and the same gradients for every parameter (the earlier positions still feed
    the keys and values)."""
    policy, tok = tiny
    seqs = [tok("Human: hi there, how are you?", add_special_tokens=False)["input_ids"],
            tok("Human: a cat?", add_special_tokens=False)["input_ids"]]
    ids, mask = bt.left_pad(seqs, tok.pad_token_id)
    pos = bt.position_ids(mask)
    k = ids.size(1) - 3
    grads = []
    for from_pos in (0, k):
        policy.zero_grad()
        h = gpt2_hidden(policy, ids, mask, pos, from_pos=from_pos)
        tail = h[:, -3:]
        assert h.shape[1] == ids.size(1) - from_pos
        tail.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in policy.transformer.parameters()])
        if from_pos == 0:
            full_tail = tail.detach()
        else:
            torch.testing.assert_close(tail.detach(), full_tail, atol=1e-5, rtol=1e-4)
    for a, b in zip(*grads):  # float sums in another order: a few ulps apart
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    policy.zero_grad()
    with pytest.raises(ValueError, match="from_pos"):
        gpt2_hidden(policy, ids, mask, pos, from_pos=ids.size(1))


def toy_reward(prompts, responses):
    return [float(len(r)) / 10 for r in responses]


def make_rollout(policy, tok, cfg, seed=0, ref=None, reward=toy_reward):
    ref = ref if ref is not None else copy.deepcopy(policy)
    value = rl.make_value_model(policy=policy)
    prompts = ["Human: hello\n\nAssistant:", "Human: how are you today?\n\nAssistant:",
               "Human: tell me\n\nAssistant:", "Human: why?\n\nAssistant:"]
    seqs = bt.encode_prompts(tok, prompts, cfg.max_prompt_tokens)
    g = torch.Generator().manual_seed(seed)
    ro = rl.rollout(policy, ref, value, reward, tok, seqs, prompts, cfg, g)
    return ro, ref, value


def test_sampling_logprobs_match_full_forward(tiny, fast):
    policy, tok = tiny
    cfg = dataclasses.replace(fast.ppo, temperature=0.7)
    ro, _, _ = make_rollout(policy, tok, cfg)
    with torch.no_grad():
        full, ent = rl.response_logprobs(policy, ro.batch, cfg.temperature, with_entropy=True)
    m = ro.batch.response_mask
    torch.testing.assert_close(ro.logprobs, full * m, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ro.entropy, ent * m, atol=1e-5, rtol=1e-4)


def test_policy_equals_reference_gives_zero_kl_and_unit_ratio(tiny, fast):
    policy, tok = tiny
    policy = copy.deepcopy(policy)
    cfg = dataclasses.replace(fast.ppo, rollout_batch=4, mini_batches=2, ppo_epochs=2)
    ro, ref, value = make_rollout(policy, tok, cfg)
    for est in ("k1", "k3"):
        adv = ppo.compute_advantages(ro, 0.1, dataclasses.replace(cfg, kl_estimator=est))
        assert adv["kl"].abs().max().item() < 1e-5
    opt = ppo.make_optimizer(policy, value, cfg)
    upd = ppo.ppo_update(policy, value, opt, ro, adv, cfg, torch.Generator().manual_seed(0))
    first = upd["first"]
    assert first["ratio"] == pytest.approx(1.0, abs=1e-5)
    assert first["approxkl"] == pytest.approx(0.0, abs=1e-9)
    assert first["clipfrac"] == 0.0
    assert first["vf_clipfrac"] == 0.0  # zero-init value head: V = V_old = 0


def test_entropy_nonnegative_with_padding(tiny, fast):
    policy, tok = tiny
    cfg = fast.ppo
    ro, _, _ = make_rollout(policy, tok, cfg, seed=3)
    assert (ro.batch.response_mask == 0).any() or (~ro.has_eos).all()
    assert (ro.entropy >= 0).all()
    assert (ro.entropy[ro.batch.response_mask == 0] == 0).all()
    adv = ppo.compute_advantages(ro, cfg.kl_coef, cfg)
    row = ppo.metrics_row(ro, adv, {k: 0.0 for k in (
        "approxkl", "clipfrac", "entropy", "pg_loss", "vf_loss", "vf_clipfrac", "ratio")},
        cfg.kl_coef)
    assert row["objective/entropy"] >= 0


def _hand_rollout(padding_fill: float, pad_token: int):
    """A fixed rollout whose padded slots hold ``padding_fill`` / ``pad_token``."""
    g = torch.Generator().manual_seed(0)
    B, R = 3, 5
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    def fill(x):
        return torch.where(mask.bool(), x, torch.full_like(x, padding_fill))
    r_ids = torch.where(mask.bool(), torch.randint(1, 50, (B, R), generator=g),
                        torch.full((B, R), pad_token))
    p_ids, p_mask = bt.left_pad([[5, 6, 7], [8], [9, 10]], pad_id=pad_token)
    batch = rl.make_batch(p_ids, p_mask, r_ids, mask, torch.tensor([True, False, True]))
    lp = fill(-torch.rand(B, R, generator=g) * 3)
    ro = rl.Rollout(["a"] * B, ["b"] * B, batch, torch.tensor([True, False, True]),
                     lp, fill(lp - 0.3 * torch.rand(B, R, generator=g)),
                     fill(torch.rand(B, R, generator=g)), fill(torch.randn(B, R, generator=g)),
                     torch.tensor([1.0, 0.0, 2.0]), torch.tensor([1.0, -1.0, 2.0]))
    return ro


@pytest.mark.parametrize("est", ["k1", "k3"])
def test_padding_never_leaks_into_rewards_advantages_losses(fast, est):
    cfg = dataclasses.replace(fast.ppo, kl_estimator=est, whiten_rewards=True)
    a, b = _hand_rollout(0.0, 0), _hand_rollout(123.0, 3)
    adv_a, adv_b = ppo.compute_advantages(a, 0.2, cfg), ppo.compute_advantages(b, 0.2, cfg)
    for k in adv_a:
        torch.testing.assert_close(adv_a[k], adv_b[k], msg=k)
    g = torch.Generator().manual_seed(0)
    new_lp_a = a.logprobs + 0.1 * torch.randn(a.logprobs.shape, generator=g)
    new_lp_b = torch.where(b.batch.response_mask.bool(), new_lp_a, torch.full_like(new_lp_a, 55.))
    new_v = torch.randn(a.values.shape, generator=g)
    new_v_b = torch.where(b.batch.response_mask.bool(), new_v, torch.full_like(new_v, -77.))
    la = ppo.ppo_losses(new_lp_a, a.logprobs, adv_a["advantages"], new_v, a.values,
                        adv_a["returns"], a.batch.response_mask)
    lb = ppo.ppo_losses(new_lp_b, b.logprobs, adv_b["advantages"], new_v_b, b.values,
                        adv_b["returns"], b.batch.response_mask)
    for k in la:
        torch.testing.assert_close(la[k], lb[k], msg=k)
    z = {k: 0.0 for k in ("approxkl", "clipfrac", "entropy", "pg_loss", "vf_loss",
                          "vf_clipfrac", "ratio")}
    assert ppo.metrics_row(a, adv_a, z, 0.2) == \
        ppo.metrics_row(b, adv_b, z, 0.2)


def test_padding_tokens_do_not_change_model_outputs(tiny):
    policy, _ = tiny
    value = rl.make_value_model(policy=policy)
    torch.nn.init.normal_(value.score.weight)
    p_ids, p_mask = bt.left_pad([[5, 6, 7, 8], [9, 10]], pad_id=0)
    r_ids, r_mask, has = bt.truncate_after_eos(torch.tensor([[11, 0, 0], [12, 13, 14]]), 0, 0)
    b1 = rl.make_batch(p_ids, p_mask, r_ids, r_mask, has)
    # the same batch with other tokens in every padded slot
    p2 = torch.where(p_mask.bool(), p_ids, torch.full_like(p_ids, 77))
    r2 = torch.where(r_mask.bool(), r_ids, torch.full_like(r_ids, 99))
    b2 = rl.make_batch(p2, p_mask, r2, r_mask, has)
    with torch.no_grad():
        for f in (lambda b: rl.response_logprobs(policy, b, 0.7),
                  lambda b: rl.response_values(value, b)):
            torch.testing.assert_close(f(b1) * r_mask, f(b2) * r_mask)


def test_end_to_end_trivial_reward_rises(fast):
    """Reward +1 per occurrence of one chosen token: PPO must find it."""
    from rlhf_lessons.course.artefacts import PRETRAINED_DIR, load_tokenizer

    tok = load_tokenizer(PRETRAINED_DIR)
    # A tiny GPT-2 of the fast preset over the first 32 token ids (single bytes), so
    # the chosen token starts at ~1/32 per step and PPO has something to reinforce.
    policy = build_gpt2(32, fast.model, tok.eos_token_id, seed=0)
    target = tok.decode([7])
    prompt_ids = [[int(x) for x in torch.randint(1, 32, (6,), generator=torch.Generator()
                                                  .manual_seed(i))] for i in range(16)]
    prompts = [tok.decode(p) for p in prompt_ids]

    def count_target(prompts, responses):
        return [float(r.count(target)) for r in responses]

    cfg = dataclasses.replace(fast.ppo, n_updates=20, rollout_batch=16, mini_batches=2,
                              ppo_epochs=2, lr=3e-3, temperature=1.0, max_new_tokens=12,
                              kl_coef=0.01, missing_eos_penalty=0.0)
    ref = copy.deepcopy(policy)
    value = rl.make_value_model(policy=policy)
    run = ppo.train_ppo(policy, ref, value, count_target, tok, prompts, cfg,
                        prompt_ids=prompt_ids, show_progress=False)
    s = run.metrics["objective/raw_scores"]
    first, last = s.iloc[:5].mean(), s.iloc[-5:].mean()
    print(f"trivial reward: first 5 updates {first:.2f}, last 5 {last:.2f}")
    assert last > first + 1.0, (first, last)
    # every phase of a PPO step was timed (the reward here is a function: no judge pass)
    assert {"sample", "decode", "reference", "values", "reward", "forward", "backward",
            "optimizer"} <= set(run.phases)
    assert run.phases["sample"] > 0 and run.phases["other"] >= 0
    for col in ("objective/kl", "objective/entropy", "policy/approxkl_avg",
                "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
                "val/clipfrac_avg", "val/ratio", "val/num_eos_tokens",
                "objective/rlhf_reward", "objective/non_score_reward", "objective/scores"):
        assert run.metrics[col].notna().all(), col


def test_checkpoint_resume_equals_uninterrupted_run(tiny, fast, tmp_path):
    base_policy, tok = tiny
    cfg = dataclasses.replace(fast.ppo, n_updates=4, rollout_batch=4, mini_batches=2,
                              ppo_epochs=1, max_new_tokens=6)
    prompts = [f"Human: question number {i}?\n\nAssistant:" for i in range(8)]

    def fresh():
        pol = copy.deepcopy(base_policy)
        return pol, copy.deepcopy(pol), rl.make_value_model(policy=pol)

    full = ppo.train_ppo(*fresh(), toy_reward, tok, prompts, cfg, show_progress=False)

    calls = {"n": 0}

    def flaky_reward(p, r):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return toy_reward(p, r)

    ck = tmp_path / "ppo.pt"
    with pytest.raises(KeyboardInterrupt):
        ppo.train_ppo(*fresh(), flaky_reward, tok, prompts, cfg, checkpoint=ck,
                      show_progress=False)
    resumed = ppo.train_ppo(*fresh(), toy_reward, tok, prompts, cfg, checkpoint=ck,
                            show_progress=False)
    assert resumed.resumed_from == 2
    cols = ["objective/kl", "objective/scores", "loss/policy_avg", "loss/value_avg"]
    a = full.metrics[cols].to_numpy()
    b = resumed.metrics[cols].to_numpy()
    assert a.shape == b.shape == (4, 4)
    assert abs(a - b).max() < 1e-5


def test_bad_inputs_give_clear_errors(tiny, fast):
    policy, tok = tiny
    with pytest.raises(ValueError, match="rollout_batch"):
        ppo.train_ppo(policy, copy.deepcopy(policy), rl.make_value_model(policy=policy),
                      toy_reward, tok, ["Human: hi\n\nAssistant:"], fast.ppo,
                      show_progress=False)
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        bt.left_pad([[1], []], 0)

    def bad_reward(p, r):
        return [1.0]

    cfg = dataclasses.replace(fast.ppo, rollout_batch=4)
    with pytest.raises(ValueError, match="reward_fn returned 1 scores for 4"):
        make_rollout(policy, tok, cfg, reward=bad_reward)


def test_kl_variant_runs_on_a_copy(tiny, fast):
    policy, tok = tiny
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    cfg = dataclasses.replace(fast.ppo, rollout_batch=4, mini_batches=2, ppo_epochs=1,
                              max_new_tokens=6)
    prompts = [f"Human: question {i}?\n\nAssistant:" for i in range(4)]
    df = ppo.run_kl_variant(policy, copy.deepcopy(policy), toy_reward, tok, prompts, cfg,
                            kl_coef=0.3, kl_estimator="k3", n_updates=2)
    assert len(df) == 2 and (df["beta"] == 0.3).all() and (df["kl_estimator"] == "k3").all()
    for k, v in policy.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="kl_coef"):
        ppo.run_kl_variant(policy, policy, toy_reward, tok, prompts, cfg, -1.0, "k1", 1)


def test_ppo_prompts_refuses_other_splits(fast, tiny):
    with pytest.raises(ValueError, match="split='all'"):
        ppo_prompts(fast, "all", tiny[1])
