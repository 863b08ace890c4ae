"""Notebook 05 helpers: rewrites, features, sqrt(KL), hackable rewards, the explorer."""

import math

import numpy as np
import pytest
import torch

from rlhf_lessons.core.config import LessonConfig, OptimisationConfig
from rlhf_lessons.measure import analysis, rewrites
from rlhf_lessons.measure import evaluate as E
from rlhf_lessons.measure import overoptimisation as O


# ---------------------------------------------------------------- rewrites
def test_rewrites_are_fixed_templates():
    a = "  Paris is the capital. It is in France.  "
    assert rewrites.rewrite(a, "original") == "Paris is the capital. It is in France."
    assert rewrites.rewrite(a, "confident") == "Definitely. Paris is the capital. It is in France."
    assert rewrites.rewrite(a, "hedged") == ("I'm not completely sure, but I think paris is the "
                                       "capital. It is in France.")
    assert rewrites.rewrite(a, "shorter") == "Paris is the capital."
    assert rewrites.rewrite(a, "longer").startswith("Paris is the capital. It is in France. I hope")
    assert rewrites.rewrite(a, "flattering") == ("Great question! You clearly know a lot about "
                                           "this. Paris is the capital. It is in France.")
    # deterministic: the same input gives the same output
    assert [rewrites.rewrite(a, k) for k in rewrites.REWRITES] == [
        rewrites.rewrite(a, k) for k in rewrites.REWRITES]


def test_rewrite_refuses_unknown_kind():
    with pytest.raises(ValueError, match="kind='sarcastic'"):
        rewrites.rewrite("x", "sarcastic")


def test_flattering_empty_answer():
    assert rewrites.flattering("   ") == rewrites.FLATTERY_PREFIX


# ---------------------------------------------------------------- judge effects
def _word_count_judge(prompts, answers):
    return [float(len(a.split())) for a in answers]


def test_judge_effects_with_a_length_judge():
    prompts = ["p1", "p2", "p3"]
    answers = ["One two. Three.", "Single sentence here.", "A b. C d e."]
    eff = E.judge_effects(_word_count_judge, prompts, answers, n_boot=50)
    # "Definitely." adds exactly one word to each answer
    assert eff.loc["confident", "mean"] == pytest.approx(1.0)
    assert eff.loc["confident", "se"] == pytest.approx(0.0)
    assert eff.loc["confident", "share_up"] == 1.0
    # "Great question! You clearly know a lot about this." is 9 words
    assert eff.loc["flattering", "mean"] == pytest.approx(9.0)
    # hedging: 7 words are added and no word is removed
    assert eff.loc["hedged", "mean"] == pytest.approx(7.0)
    assert eff.loc["confident vs hedged", "mean"] == pytest.approx(-6.0)
    # "shorter" only counts answers with more than one sentence (2 of 3):
    # "One two. Three." -> -1 word; "A b. C d e." -> -3 words
    assert eff.loc["shorter", "n"] == 2
    assert eff.loc["shorter", "mean"] == pytest.approx(-2.0)
    assert eff.loc["shorter", "se"] == pytest.approx(1.0)  # std([-1,-3], ddof=1)/sqrt(2)


def test_judge_effects_checks_its_inputs():
    with pytest.raises(ValueError, match="2 prompts but 1 answers"):
        E.judge_effects(_word_count_judge, ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="returned"):
        E.judge_effects(lambda p, a: [0.0], ["a", "b"], ["x", "y"])


def test_mean_with_error_hand_computed():
    st = E.mean_with_error([1.0, 2.0, 3.0, 6.0], n_boot=2000, seed=0)
    assert st["mean"] == pytest.approx(3.0)
    assert st["se"] == pytest.approx(np.std([1, 2, 3, 6], ddof=1) / 2)
    assert st["ci_low"] < 3.0 < st["ci_high"]
    assert 1.0 <= st["ci_low"] and st["ci_high"] <= 6.0
    one = E.mean_with_error([2.5])
    assert one["mean"] == 2.5 and math.isnan(one["se"])
    with pytest.raises(ValueError):
        E.mean_with_error([])


# ---------------------------------------------------------------- features
def test_repetition_hand_computed():
    assert analysis.repetition("a b a b") == pytest.approx(1 / 3)  # ab ba ab
    assert analysis.repetition("great great great great") == pytest.approx(2 / 3)
    assert analysis.repetition("all different words here") == 0.0
    assert analysis.repetition("one") == 0.0
    assert analysis.repetition("") == 0.0
    assert analysis.repetition("x x x", n=1) == pytest.approx(2 / 3)


def test_answer_features_hand_made():
    f = analysis.answer_features("Great question! I'm not sure, maybe. Definitely sure!!")
    assert f["words"] == 8
    assert f["flattery"] == 1  # "great question"
    assert f["hedge"] == 2  # "i'm not sure", "maybe"
    assert f["confident"] == 2  # "definitely", "sure"; not the "sure" of "not sure"
    assert f["refusal"] == 0
    assert f["exclamations"] == 3
    g = analysis.answer_features("I'm sorry, I can't help with that.")
    assert g["refusal"] == 2 and g["confident"] == 0
    with pytest.raises(TypeError):
        analysis.answer_features(None)


def test_feature_table_and_means():
    t = analysis.feature_table(["a!", "b c d"])
    assert list(t.columns) == list(analysis.FEATURES)
    assert t["words"].tolist() == [1.0, 3.0]
    m = analysis.feature_means(["a!", "b c d"])
    assert m["words"] == 2.0 and m["exclamations"] == 0.5
    assert analysis.feature_means([]) == {k: 0.0 for k in analysis.FEATURES}


# ---------------------------------------------------------------- sqrt(KL)
def test_sequence_kl_masks_padding():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -9.0]])
    ref = torch.tensor([[-1.5, -2.0, -1.0], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    kl = E.sequence_kl(logp, ref, mask)
    assert kl.tolist() == pytest.approx([0.5, 1.0])
    assert E.sequence_kl(ref, ref, mask).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="shapes differ"):
        E.sequence_kl(logp, ref[:, :2], mask)


def test_sqrt_kl_clips_noise_below_zero():
    assert E.sqrt_kl([4.0, 0.0]) == pytest.approx(math.sqrt(2.0))
    assert E.sqrt_kl(torch.tensor([9.0])) == pytest.approx(3.0)
    assert E.sqrt_kl([-0.2, 0.1]) == 0.0
    with pytest.raises(ValueError):
        E.sqrt_kl([])
    with pytest.raises(ValueError, match="finite"):
        E.sqrt_kl([float("nan")])


def test_peak_then_fall():
    r = E.peak_then_fall([0, 1, 2, 3], [0.0, 0.5, 0.2, 0.1])
    assert r["peaks_inside"] and r["peak_x"] == 1 and r["drop"] == pytest.approx(0.4)
    assert not E.peak_then_fall([0, 1, 2], [0.0, 0.5, 0.7])["peaks_inside"]
    # unordered xs are sorted first
    assert E.peak_then_fall([2, 0, 1], [0.2, 0.0, 0.5])["peaks_inside"]


# ---------------------------------------------------------------- hackable rewards
def test_hackable_rewards_on_hand_made_strings():
    prompts = ["q"] * 3
    answers = ["Yes!", "No", "Wow!!! Great!"]
    assert O.exclamation_reward(prompts, answers) == [1.0, 0.0, 4.0]
    assert O.length_reward(prompts, answers) == [0.1, 0.1, 0.2]
    with pytest.raises(ValueError, match="2 prompts but 3 responses"):
        O.exclamation_reward(["a", "b"], answers)
    with pytest.raises(TypeError, match="response 1"):
        O.length_reward(["a", "b"], ["x", 3])


# ---------------------------------------------------------------- config
def test_hacking_config_fast_is_smaller():
    fast = OptimisationConfig.for_preset(LessonConfig.from_env())  # conftest: fast
    full = OptimisationConfig.for_preset(LessonConfig(preset="default"))
    assert fast.ppo_updates < full.ppo_updates
    assert fast.n_effect_answers < full.n_effect_answers
    assert fast.pool_size < full.pool_size and full.pool_size >= 64
    assert 0.0 in full.rater_biases and 0.0 in fast.rater_biases


def test_ppo_config_for_notebook_06():
    base = LessonConfig(preset="default").ppo
    hc = OptimisationConfig(rollout_batch=12, ppo_epochs=3)
    c = hc.ppo_config(base, lr=1e-3)
    assert (c.rollout_batch, c.ppo_epochs, c.lr) == (12, 3, 1e-3)
    assert c.rollout_batch % c.mini_batches == 0
    assert c.kl_coef == base.kl_coef  # everything else is notebook 04's


def test_relabel_by_swaps_where_the_judge_disagrees():
    from rlhf_lessons.train.reward import pairset_from_ids

    ps = pairset_from_ids([[1], [2, 2], [3]], [[4, 4, 4], [5], [6]])
    ps.chosen, ps.rejected = ["c0", "c1", "c2"], ["r0", "r1", "r2"]
    n = O.relabel_by(ps, [0.0, 1.0, -1.0], [1.0, 0.0, 0.5])  # rows 0 and 2 flip
    assert n == 2
    assert ps.chosen_ids == [[4, 4, 4], [2, 2], [6]]
    assert ps.rejected_ids == [[1], [5], [3]]
    assert ps.chosen == ["r0", "c1", "r2"]
    assert ps.len_chosen.tolist() == [3, 2, 1] and ps.len_rejected.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="need 3 scores"):
        O.relabel_by(ps, [0.0], [1.0])


# ---------------------------------------------------------------- PPO hook loop
def test_on_update_hook_sees_each_rollout_and_changes_nothing():
    """train_ppo with an on_update hook: its columns join the metrics, and the
    run's numbers are those of the same run without a hook."""
    import copy

    from rlhf_lessons.course.artefacts import load_policy
    from rlhf_lessons.train import ppo
    from rlhf_lessons.train import rollout as rl

    cfg = LessonConfig.from_env()
    policy, tok = load_policy(cfg, "sft")
    prompts = [f"\n\nHuman: say something {i}\n\nAssistant:" for i in range(8)]
    pcfg = cfg.ppo
    seen = []

    def go(fn, **kw):
        p = copy.deepcopy(policy)
        ref = copy.deepcopy(policy)
        vm = rl.make_value_model(policy=p)
        return fn(p, ref, vm, O.exclamation_reward, tok, prompts, pcfg, seed=3,
                  n_updates=2, show_progress=False, **kw)

    a = go(ppo.train_ppo).metrics
    b = go(ppo.train_ppo, on_update=lambda u, ro, row: seen.append(len(ro.responses))
           or {"hook": u}).metrics
    assert seen == [pcfg.rollout_batch, pcfg.rollout_batch]
    assert b["hook"].tolist() == [0, 1]
    for key in ("objective/kl", "objective/scores", "loss/policy_avg", "policy/clipfrac_avg"):
        assert a[key].tolist() == pytest.approx(b[key].tolist(), abs=1e-6), key


def test_beta_sweep_end_to_end_and_resume(tmp_path):
    """Two betas, one update each, hand-checkable rewards as proxy and gold."""
    from rlhf_lessons.course.artefacts import load_policy

    cfg = LessonConfig.from_env()
    ref, tok = load_policy(cfg, "sft")
    prompts = [f"\n\nHuman: question {i}?\n\nAssistant:" for i in range(8)]
    pcfg = OptimisationConfig.for_preset(cfg).ppo_config(cfg.ppo, lr=1e-4)
    ck = tmp_path / "sweep.pt"
    kw = dict(betas=(0.0, 0.5), n_updates=1, eval_every=1, seed=0, checkpoint=ck,
              show_progress=False)
    runs = O.beta_sweep(ref, tok, O.exclamation_reward, O.length_reward, prompts,
                         prompts[:4], pcfg, **kw)
    assert sorted(runs) == [0.0, 0.5]
    for beta, rec in runs.items():
        assert rec.beta == beta and rec.name == f"beta={beta:g}"
        assert rec.points["step"].tolist() == [0, 1]
        first = rec.points.iloc[0]
        # the reference is the origin: no KL, scores 0 in its own units. The sampled
        # logprobs (KV cache, one token at a time) and the reference's (one full
        # forward) round differently, by ~1e-7 nats a token, and sqrt magnifies that.
        assert first["kl"] == pytest.approx(0.0, abs=1e-5)
        assert first["sqrt_kl"] < 5e-3
        assert first["gold_score"] == pytest.approx(0.0, abs=1e-9)
        assert len(rec.samples) == 4 and "gold_score" in rec.samples
        assert rec.metrics["objective/kl"].iloc[0] == pytest.approx(0.0, abs=1e-5)
    table = O.sweep_table(runs)
    assert table["beta"].tolist() == [0.0, 0.5]
    assert {"sqrt_kl", "proxy_score", "gold_score"} <= set(table.columns)
    # a re-run with the same checkpoint reuses the finished runs
    again = O.beta_sweep(ref, tok, O.exclamation_reward, O.length_reward, prompts,
                          prompts[:4], pcfg, **kw)
    assert [again[b].wall_s for b in (0.0, 0.5)] == [runs[b].wall_s for b in (0.0, 0.5)]
    with pytest.raises(ValueError, match="betas must be >= 0"):
        O.beta_sweep(ref, tok, O.exclamation_reward, O.length_reward, prompts,
                      prompts[:4], pcfg, betas=(-1.0,), n_updates=1, eval_every=1)
