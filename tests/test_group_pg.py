"""RLOO and GRPO (rlhf_lessons.train.group_pg, notebook 07) on hand-computable groups."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from rlhf_lessons.core.config import GroupPGConfig, preset
from rlhf_lessons.core.models import build_gpt2
from rlhf_lessons.course import checks
from rlhf_lessons.course.artefacts import PRETRAINED_DIR, load_tokenizer
from rlhf_lessons.train import group_pg as gp


def test_rloo_baseline_leaves_the_sample_out_by_hand():
    # group of 3: baselines are the means of the OTHER two
    adv = gp.rloo_advantages(torch.tensor([[1.0, 2.0, 6.0]]))
    want = [1 - (2 + 6) / 2, 2 - (1 + 6) / 2, 6 - (1 + 2) / 2]  # -3, -1.5, 4.5
    assert adv[0].tolist() == pytest.approx(want)
    # a mean that includes the sample would give 1 - 3 = -2: not this
    assert adv[0, 0].item() != pytest.approx(-2.0)
    checks.check_rloo_baseline(gp.rloo_advantages)


def test_grpo_advantages_by_hand_and_zero_for_equal_rewards():
    s = torch.tensor([[1.0, 2.0, 6.0], [3.0, 3.0, 3.0]])
    adv = gp.grpo_advantages(s, eps=0.0)
    std = math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2)  # Bessel
    assert adv[0].tolist() == pytest.approx([(x - 3) / std for x in (1, 2, 6)])
    assert adv[1].tolist() == [0.0, 0.0, 0.0]
    assert gp.zero_variance_groups(s).tolist() == [False, True]
    checks.check_grpo_advantages(gp.grpo_advantages)
    with pytest.raises(ValueError, match="G >= 2"):
        gp.grpo_advantages(torch.ones(3, 1))
    with pytest.raises(ValueError, match="kind"):
        gp.group_advantages(s, "ppo")


def test_chance_all_equal_by_hand():
    # K=4 answers, 2 pass, groups of 2: C(2,2)+C(2,2) = 2 of C(4,2) = 6
    assert gp.chance_all_equal([2, 0, 4], 4, 2).tolist() == pytest.approx([1 / 3, 1, 1])
    assert gp.chance_all_equal([1], 4, 4).tolist() == [0.0]
    with pytest.raises(ValueError, match="group_size"):
        gp.chance_all_equal([1], 4, 5)


def test_clipped_ratio_is_one_at_the_first_minibatch_and_kl_term():
    old = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -2.0])
    out = gp.group_pg_loss(old.clone(), old, old, adv, mask, 0.2, kl_coef=0.5)
    assert out["ratio"].item() == pytest.approx(1.0)
    assert out["clipfrac"].item() == 0.0 and out["kl"].item() == pytest.approx(0.0)
    # ratio 1: loss = mean over real tokens of -A = (-1 -1 +2) / 3
    assert out["loss"].item() == pytest.approx(0.0)
    # a ratio of e^0.5 with A > 0 is clipped at 1.2
    new = old + torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    out = gp.group_pg_loss(new, old, old, adv, mask, 0.2)
    assert out["loss"].item() == pytest.approx((-1.2 - 1 + 2) / 3)


def test_end_to_end_rule_reward_rises_with_grpo_and_rloo():
    """Reward +1 per occurrence of one token: both group methods must find it."""
    fast = preset("fast")
    tok = load_tokenizer(PRETRAINED_DIR)
    target = tok.decode([7])
    prompt_ids = [[int(x) for x in torch.randint(1, 32, (6,), generator=torch.Generator()
                                                  .manual_seed(i))] for i in range(16)]
    prompts = [tok.decode(p) for p in prompt_ids]

    def count_target(prompts, responses):
        return [float(r.count(target)) for r in responses]

    cfg = dataclasses.replace(fast.ppo, temperature=1.0, max_new_tokens=12,
                              missing_eos_penalty=0.0)
    for kind in ("grpo", "rloo"):
        policy = build_gpt2(32, fast.model, tok.eos_token_id, seed=0)
        ref = copy.deepcopy(policy)
        g = GroupPGConfig(advantage=kind, group_size=4, prompts_per_update=4,
                          n_updates=30, lr=3e-3, kl_coef=0.01, inner_epochs=2)
        df = gp.train_group_pg(policy, ref, count_target, tok, prompts, g, cfg,
                               prompt_ids=prompt_ids, show_progress=False).metrics
        s = df["objective/raw_scores"]
        first, last = s.iloc[:5].mean(), s.iloc[-5:].mean()
        print(f"{kind}: first 5 updates {first:.2f}, last 5 {last:.2f}")
        assert last > first + 1.0, (kind, first, last)
        assert np.isfinite(df["frac_reward_zero_std"]).all()


def test_zero_variance_groups_are_skipped_and_the_first_ratio_is_one():
    fast = preset("fast")
    tok = load_tokenizer(PRETRAINED_DIR)
    prompt_ids = [[3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 14]]
    prompts = [tok.decode(p) for p in prompt_ids]
    cfg = dataclasses.replace(fast.ppo, temperature=1.0, max_new_tokens=6,
                              missing_eos_penalty=0.0)
    g = GroupPGConfig(group_size=3, prompts_per_update=2, n_updates=2, lr=1e-2)
    policy = build_gpt2(32, fast.model, tok.eos_token_id, seed=0)
    ref = copy.deepcopy(policy)
    flat = gp.train_group_pg(policy, ref, lambda p, r: [1.0] * len(r), tok, prompts, g,
                             cfg, prompt_ids=prompt_ids, show_progress=False).metrics
    assert flat["frac_reward_zero_std"].tolist() == [1.0, 1.0]
    for a, b in zip(policy.parameters(), ref.parameters()):
        assert torch.equal(a, b)  # every group skipped: no step taken
    # a varying reward, one pass per rollout: the ratio of that pass is 1
    df = gp.train_group_pg(policy, ref, lambda p, r: [float(len(x)) for x in r], tok,
                           prompts, g, cfg, prompt_ids=prompt_ids,
                           show_progress=False).metrics
    assert df["val/ratio"].tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert df["policy/clipfrac_avg"].tolist() == [0.0, 0.0]


def test_no_reference_model_only_without_a_kl_term():
    """kl_coef 0 needs no reference pass (TRL at beta 0); kl_coef > 0 refuses None."""
    old = torch.tensor([[-1.0, -2.0]])
    mask = torch.tensor([[1, 1]])
    with pytest.raises(ValueError, match="kl_coef=0.1 needs ref_logprobs"):
        gp.group_pg_loss(old.clone(), old, None, torch.tensor([1.0]), mask, 0.2, 0.1)
    out = gp.group_pg_loss(old.clone(), old, None, torch.tensor([1.0]), mask, 0.2, 0.0)
    assert math.isnan(out["kl"].item()) and out["loss"].item() == pytest.approx(-1.0)

    fast = preset("fast")
    tok = load_tokenizer(PRETRAINED_DIR)
    prompt_ids = [[3, 4, 5], [6, 7, 8]]
    prompts = [tok.decode(p) for p in prompt_ids]
    cfg = dataclasses.replace(fast.ppo, temperature=1.0, max_new_tokens=5,
                              missing_eos_penalty=0.0)
    policy = build_gpt2(32, fast.model, tok.eos_token_id, seed=0)
    reward = lambda p, r: [float(len(x)) for x in r]  # noqa: E731
    with pytest.raises(ValueError, match="needs a ref_policy"):
        gp.train_group_pg(policy, None, reward, tok, prompts,
                          GroupPGConfig(group_size=2, prompts_per_update=2, n_updates=1),
                          cfg, prompt_ids=prompt_ids, show_progress=False)
    g = GroupPGConfig(group_size=2, prompts_per_update=2, n_updates=2, kl_coef=0.0)
    df = gp.train_group_pg(policy, None, reward, tok, prompts, g, cfg,
                           prompt_ids=prompt_ids, show_progress=False).metrics
    assert df["objective/kl"].isna().all() and len(df) == 2
