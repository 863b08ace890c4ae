"""Tests for the judge (rlhf_lessons.train.reward, rlhf_lessons.measure.rewrites): notebook 03."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlhf_lessons.core import batching as B
from rlhf_lessons.core import data, lean_gpt2
from rlhf_lessons.core.models import load_card, load_model, save_model
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.measure import evaluate as E
from rlhf_lessons.measure import rewrites
from rlhf_lessons.train import reward as R
from rlhf_lessons.train import rollout as rl


def tiny_backbone(vocab: int = 16, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    conf = GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=1, n_head=2,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return GPT2LMHeadModel(conf)


def tiny_judge(seed: int = 0):
    return R.build_reward_model(tiny_backbone(seed=seed), pad_token_id=0, seed=seed).eval()


@pytest.fixture(scope="module")
def tok():
    from rlhf_lessons.course.artefacts import PRETRAINED_DIR, load_tokenizer

    return load_tokenizer(PRETRAINED_DIR, padding_side="right")


# ---------------------------------------------------------------- the loss
def test_loss_matches_hand_computed_value_on_two_pairs():
    rc = torch.tensor([1.0, 0.0])
    rr = torch.tensor([0.0, 0.5])
    # -log σ(1) = log(1 + e^-1); -log σ(-0.5) = log(1 + e^0.5)
    want = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(0.5))) / 2
    assert R.pairwise_loss(rc, rr).item() == pytest.approx(want, abs=1e-6)
    assert want == pytest.approx(0.643670, abs=1e-6)  # (0.313262 + 0.974077) / 2
    # margin 0.5 shifts both differences down by 0.5
    want_m = (math.log(1 + math.exp(-0.5)) + math.log(1 + math.exp(1.0))) / 2
    assert R.pairwise_loss(rc, rr, margin=0.5).item() == pytest.approx(want_m, abs=1e-6)
    # centring adds 0.01 * mean((1+0)^2, (0+0.5)^2) = 0.01 * 0.625
    got = R.pairwise_loss(rc, rr, center_coef=0.01).item()
    assert got == pytest.approx(want + 0.00625, abs=1e-6)


def test_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        R.pairwise_loss(torch.zeros(2), torch.zeros(3))


def test_p_first_better_is_sigmoid_of_difference():
    assert R.p_first_better(2.0, 1.0) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert R.p_first_better(0.3, 0.3) == pytest.approx(0.5)


# ---------------------------------------------------------------- the last token
def test_last_token_index_left_and_right_padding():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1]])
    assert R.last_token_index(right).tolist() == [2, 1, 3]
    assert R.last_token_index(left).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="all zeros"):
        R.last_token_index(torch.tensor([[0, 0], [1, 0]]))


def test_score_reads_the_real_eos_with_pad_equal_eos_on_both_sides():
    model = tiny_judge()
    eos = pad = 0
    seqs = [[5, 6, 7, eos], [3, 9, eos]]  # each ends with a REAL eos, and pad == eos
    alone = [R.score(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)).item()
             for s in seqs]
    # the score is the head applied at the real EOS (last position) of each sequence
    with torch.no_grad():
        h = model.transformer(input_ids=torch.tensor([seqs[0]])).last_hidden_state
        assert model.score(h[0, -1]).item() == pytest.approx(alone[0], abs=1e-5)
    right = torch.tensor([[5, 6, 7, eos], [3, 9, eos, pad]])
    rmask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    left = torch.tensor([[5, 6, 7, eos], [pad, 3, 9, eos]])
    lmask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])
    with torch.no_grad():
        r_right = R.score(model, right, rmask).tolist()
        r_left = R.score(model, left, lmask).tolist()
    assert r_right == pytest.approx(alone, abs=1e-5)
    assert r_left == pytest.approx(alone, abs=1e-5)
    # the classic bug: "last token that is not pad" skips the real EOS when pad == eos
    naive = ((right != pad) * torch.arange(4)).argmax(1)
    assert naive.tolist() != R.last_token_index(rmask).tolist()


def test_fused_gelu_is_the_same_function():
    model = tiny_judge()
    ids = torch.tensor([[1, 2, 3, 0]])
    with torch.no_grad():  # the transformers forward: the one that uses mlp.act
        before = model.transformer(input_ids=ids).last_hidden_state
        lean_gpt2.fuse_gelu(model)
        after = model.transformer(input_ids=ids).last_hidden_state
    assert type(model.transformer.h[0].mlp.act) is torch.nn.GELU
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)


def test_pad_right_rounds_lengths_up_but_not_past_the_cap():
    ids, mask = B.right_pad([[5, 6, 7], [8]], pad_id=0, multiple=4)
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert B.right_pad([[1] * 5], 0, multiple=4)[0].shape == (1, 8)
    assert B.right_pad([[1] * 5], 0, multiple=4, max_len=6)[0].shape == (1, 6)


def test_inference_in_slices_gives_the_same_scores(monkeypatch):
    model = tiny_judge()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 16, (10, 6), generator=g)
    mask = torch.ones_like(ids)
    mask[3, 4:] = 0
    with torch.no_grad():
        whole = R.score(model, ids, mask)
        monkeypatch.setattr(R, "SCORE_CHUNK_TOKENS", 12)  # 2 rows of 6 per slice
        sliced = R.score(model, ids, mask)
    torch.testing.assert_close(sliced, whole)


def test_scoring_stays_fp32_where_training_uses_bf16(monkeypatch):
    import rlhf_lessons.core.utils as U

    monkeypatch.setattr(U, "use_bf16", lambda device: True)  # as on a bf16 machine
    model = tiny_judge()
    pairs = R.pairset_from_ids([[5, 6, 7, 0], [3, 9, 0]], [[5, 6, 8, 0], [3, 4, 4, 2, 0]])
    rc, rr = R.score_pairs(model, pairs)
    with torch.no_grad():
        one = lambda s: R.score(model, torch.tensor([s]), torch.ones(1, len(s))).item()  # noqa: E731
        want_c = [one(s) for s in pairs.chosen_ids]
        want_r = [one(s) for s in pairs.rejected_ids]
    # bf16 would be off by ~1e-3; fp32 agrees to rounding
    assert rc.tolist() == pytest.approx(want_c, abs=1e-6)
    assert rr.tolist() == pytest.approx(want_r, abs=1e-6)


def test_head_init_scale():
    model = R.build_reward_model(tiny_backbone(), pad_token_id=0, seed=1)
    w = model.score.weight
    assert w.shape == (1, 32) and model.config.num_labels == 1
    assert model.config.pad_token_id == 0
    # std 1/sqrt(33) ~= 0.174; with 32 draws the sample std is within a factor 2
    assert 0.08 < w.std().item() < 0.35


# ---------------------------------------------------------------- training
def synthetic_pairs(n: int, seed: int):
    """Prompt of random tokens 3..15; chosen ends with token 1, rejected with token 2."""
    rng = np.random.default_rng(seed)
    ch, rj = [], []
    for _ in range(n):
        prompt = rng.integers(3, 16, size=int(rng.integers(2, 8))).tolist()
        ch.append(prompt + [1, 0])
        rj.append(prompt + [2, 0])
    return R.pairset_from_ids(ch, rj)


def small_cfg(**kw):
    from rlhf_lessons.core.config import RewardConfig

    base = dict(batch_size=8, lr=3e-3, max_steps=40, eval_every=0, max_len=32)
    base.update(kw)
    return RewardConfig(**base)


def test_training_solves_a_separable_task():
    model = tiny_judge()
    run = R.train_reward_model(model, synthetic_pairs(160, 0), small_cfg(), seed=0,
                               show_progress=False)
    metrics = run.metrics
    # where its time went: a reward model's step is forward, backward, optimizer
    assert {"forward", "backward", "optimizer", "other", "total"} == set(run.phases)
    parts = sum(v for k, v in run.phases.items() if k != "total")
    assert run.phases["forward"] > 0 and parts == pytest.approx(run.phases["total"], abs=0.01)
    ev = E.judge_accuracy(model, synthetic_pairs(64, 1))
    assert ev["accuracy"] >= 0.95
    for key in ("loss", "accuracy", "margin", "rewards/chosen_mean",
                "rewards/rejected_mean", "mean_reward", "min_reward", "max_reward",
                "learning_rate", "grad_norm"):
        assert key in metrics.columns
    # linear decay to 0: the last step used the smallest lr
    assert metrics["learning_rate"].iloc[-1] < metrics["learning_rate"].iloc[0]


def test_same_seed_same_numbers():
    runs = []
    for _ in range(2):
        model = tiny_judge(seed=3)
        m = R.train_reward_model(model, synthetic_pairs(48, 0), small_cfg(max_steps=5),
                                 seed=3, show_progress=False).metrics
        runs.append(m["loss"].tolist())
    assert runs[0] == runs[1]


def test_resume_from_checkpoint_gives_the_same_end(tmp_path, monkeypatch):
    pairs = synthetic_pairs(48, 0)
    cfg = small_cfg(max_steps=6, eval_every=3)
    m_ref = R.train_reward_model(tiny_judge(seed=2), pairs, cfg, seed=2,
                                 show_progress=False).metrics
    ck = tmp_path / "judge.ckpt.pt"
    real = R.batch_tensors
    calls = {"n": 0}

    def crash_on_5th(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated crash at step 5")
        return real(*a, **k)

    monkeypatch.setattr(R, "batch_tensors", crash_on_5th)
    with pytest.raises(KeyboardInterrupt):
        R.train_reward_model(tiny_judge(seed=2), pairs, cfg, seed=2, show_progress=False,
                             checkpoint=ck, save_every=3)
    assert torch.load(ck, weights_only=False)["step"] == 3
    monkeypatch.setattr(R, "batch_tensors", real)
    run = R.train_reward_model(tiny_judge(seed=2), pairs, cfg, seed=2,
                               show_progress=False, checkpoint=ck, save_every=3)
    assert run.resumed_from == 3 and run.trained_now
    m_res = run.metrics
    assert m_res["loss"].dropna().tolist() == pytest.approx(
        m_ref["loss"].dropna().tolist(), abs=1e-5)


def test_pairset_select_keeps_every_field_in_step():
    ps = R.pairset_from_ids([[1, 0], [2, 2, 0], [3, 0]], [[1, 0], [4, 0], [5, 5, 5, 0]])
    sub = ps.select([2, 0])
    assert sub.chosen_ids == [[3, 0], [1, 0]]
    assert sub.rejected_ids == [[5, 5, 5, 0], [1, 0]]
    assert sub.len_rejected.tolist() == [4, 2] and sub.identical.tolist() == [False, True]
    assert len(ps.head(2)) == 2 and ps.head(9).chosen_ids == ps.chosen_ids


def test_batches_are_length_bucketed_and_cover_every_pair():
    pairs = synthetic_pairs(40, 0)
    batches = R.pair_buckets(pairs, 8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(40))
    longest = [max(len(pairs.chosen_ids[i]) for i in b) for b in batches]
    shortest = [min(len(pairs.chosen_ids[i]) for i in b) for b in batches]
    assert all(hi - lo <= 2 for hi, lo in zip(longest, shortest))


# ---------------------------------------------------------------- data policy
def rows_of(*answers):
    return [{"prompt": f"\n\nHuman: q{i}\n\nAssistant:", "chosen_response": c,
             "rejected_response": r, "subset": "s", "row": i}
            for i, (c, r) in enumerate(answers)]


def test_identical_pairs_dropped_from_training_and_ties_in_eval(tok):
    rows = rows_of(("Yes.", "No."), ("Same.", "Same."), ("Sure thing.", "Nope."))
    train = R.prepare_pairs(rows, tok, 64, drop_identical=True)
    assert len(train) == 2 and train.n_identical_dropped == 1
    assert "1 identical pairs dropped" in train.summary()
    ev = R.prepare_pairs(rows, tok, 64, drop_identical=False)
    assert len(ev) == 3 and ev.identical.tolist() == [False, True, False]
    only_ties = R.prepare_pairs([rows[1]], tok, 64, drop_identical=False)
    assert E.judge_accuracy(tiny_judge_for(tok), only_ties)["accuracy"] == 0.0


def tiny_judge_for(tok):
    return R.build_reward_model(tiny_backbone(vocab=len(tok)), tok.pad_token_id).eval()


def test_empty_answer_refused_by_default_and_counted_when_allowed(tok):
    rows = rows_of(("Yes.", "No."), ("", "Something."))
    with pytest.raises(ValueError, match=r"row 1: empty chosen answer"):
        R.prepare_pairs(rows, tok, 64, name="my_prefs.jsonl")
    kept = R.prepare_pairs(rows, tok, 64, allow_empty=True)
    assert len(kept) == 2 and kept.n_empty == 1


def test_missing_column_named(tok):
    with pytest.raises(ValueError, match="missing column"):
        R.prepare_pairs([{"prompt": "x", "chosen_response": "y"}], tok, 64)
    with pytest.raises(ValueError, match="no preference rows"):
        R.prepare_pairs([], tok, 64)


def test_left_truncation_keeps_the_end_and_the_eos(tok):
    text = "one two three four five six seven eight nine ten"
    full = tok(text, add_special_tokens=False)["input_ids"]
    (ids,), n_cut = R.encode(tok, [text], max_len=4)
    assert n_cut == 1
    assert ids == full[-3:] + [tok.eos_token_id]
    (short,), n0 = R.encode(tok, ["hi"], max_len=64)
    assert n0 == 0 and short[-1] == tok.eos_token_id
    with pytest.raises(ValueError, match="max_len"):
        R.encode(tok, [text], max_len=1)


def test_prepare_pairs_accepts_a_learners_preference_file(tmp_path, tok):
    import json

    from rlhf_lessons.core.data import load_preference_file

    p = tmp_path / "mine.jsonl"
    lines = [{"chosen": "\n\nHuman: hi\n\nAssistant: Hello! How can I help?",
              "rejected": "\n\nHuman: hi\n\nAssistant: Go away."}] * 2
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    pairs = R.prepare_pairs(load_preference_file(p), tok, 64)
    assert len(pairs) == 2 and pairs.subset == ["mine", "mine"]


# ---------------------------------------------------------------- evaluation
def test_wilson_interval_known_value():
    lo, hi = E.wilson_ci(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert E.wilson_ci(0, 10)[0] == 0.0


def test_length_rules_and_length_judge_direction():
    train = R.pairset_from_ids([[1, 1, 1], [1], [1, 1]], [[1], [1, 1, 1], [1, 1]])
    train.subset = ["a", "a", "a"]
    assert E.length_rule_correct(train, "longer").tolist() == [True, False, False]
    assert E.length_rule_correct(train, "shorter").tolist() == [False, True, False]
    train.len_chosen = np.array([1, 1, 5])
    train.len_rejected = np.array([3, 3, 2])
    assert E.length_judge_directions(train) == {"a": "shorter"}
    table = E.accuracy_table(train, np.array([True, True, False]), {"a": "shorter"})
    assert table.loc["overall", "judge"] == pytest.approx(2 / 3)
    assert table.loc["a", "length_judge"] == pytest.approx(2 / 3)
    assert table.loc["a", "longer_wins"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="rule"):
        E.length_rule_correct(train, "random")


def test_reward_norm_mean_zero_std_one():
    stats = E.score_stats([1.0, 2.0, 3.0, 4.0])
    assert stats == pytest.approx((2.5, math.sqrt(1.25)))  # ddof 0, by hand
    z = rl.normalise(np.array([1.0, 2.0, 3.0, 4.0]), stats)
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    t = rl.normalise(torch.tensor([1.0, 4.0]), stats)  # tensors stay tensors
    assert isinstance(t, torch.Tensor) and t.tolist() == pytest.approx(list(z[[0, 3]]))
    # scores that do not vary have no spread: an error, or None (raw scores) if asked
    for flat in ([2.0, 2.0], [3e8, 3e8 + 1e-7]):
        with pytest.raises(ValueError, match="do not vary"):
            E.score_stats(flat)
    assert E.score_stats([2.0, 2.0], constant_ok=True) is None
    with pytest.raises(ValueError, match="NaN or infinite"):
        E.score_stats([1.0, float("nan")])
    with pytest.raises(ValueError, match="no scores"):
        E.score_stats([])


def test_judge_compare_and_its_refusals(tok):
    model = tiny_judge_for(tok)
    out = E.judge_compare(model, tok, "How are you?", "Fine, thanks.", "Bad.")
    assert out["p_a_better"] == pytest.approx(R.p_first_better(out["score_a"],
                                                               out["score_b"]))
    swapped = E.judge_compare(model, tok, "How are you?", "Bad.", "Fine, thanks.")
    assert swapped["p_a_better"] == pytest.approx(1 - out["p_a_better"], abs=1e-6)
    with pytest.raises(ValueError, match="answer B is empty"):
        E.judge_compare(model, tok, "Hi", "Hello", "   ")
    with pytest.raises(ValueError, match="prompt is empty"):
        E.judge_compare(model, tok, "", "Hello", "Hi")


def test_save_load_round_trip_with_transformers(tmp_path, tok):
    from transformers import GPT2ForSequenceClassification

    model = tiny_judge_for(tok)
    save_model(model, tok, tmp_path / "judge", card={"key": "abc"})
    hf = GPT2ForSequenceClassification.from_pretrained(str(tmp_path / "judge"))
    assert hf.config.num_labels == 1 and hf.config.pad_token_id == tok.pad_token_id
    loaded, tok2 = load_model(tmp_path / "judge", kind="judge")
    card = load_card(tmp_path / "judge")
    assert card == {"key": "abc"}
    a = R.score_texts(model, tok, ["\n\nHuman: hi\n\nAssistant:"], ["Hello."])
    b = R.score_texts(loaded, tok2, ["\n\nHuman: hi\n\nAssistant:"], ["Hello."])
    c = R.score_texts(hf, tok2, ["\n\nHuman: hi\n\nAssistant:"], ["Hello."])
    assert a == pytest.approx(b, abs=1e-6) and a == pytest.approx(c, abs=1e-6)


# ---------------------------------------------------------------- rewrites
def test_rewrites_are_deterministic_templates():
    a = "Boil it for nine minutes. Then cool it in cold water."
    out = rewrites.rewrite_all(a)
    assert out["hedged"] == ("I'm not completely sure, but I think boil it for nine "
                             "minutes. Then cool it in cold water.")
    assert out["confident"] == "Definitely. " + a
    assert out["shorter"] == "Boil it for nine minutes."
    assert out["longer"].startswith(a) and len(out["longer"]) > len(a)
    assert out["flattering"] == rewrites.FLATTERY_PREFIX + " " + a
    assert rewrites.rewrite(" x ", "original") == "x"
    with pytest.raises(ValueError, match="kind='sarcastic'"):
        rewrites.rewrite(a, "sarcastic")
    assert rewrites.hedged("I think so.").endswith("I think I think so.")
    assert rewrites.first_sentence("One sentence only") == "One sentence only"


def test_judge_effects_with_the_course_judge_as_score_fn(tok):
    model = tiny_judge_for(tok)
    score_fn = A.judge_reward_fn(model, tok, max_len=64)
    table = E.judge_effects(score_fn, ["\n\nHuman: q\n\nAssistant:"] * 2,
                            ["Yes. It works.", "Sure."], n_boot=50)
    assert table.loc["hedged", "n"] == 2
    assert table.loc["shorter", "n"] == 1  # "Sure." has one sentence
    assert (table["mean_dwords"].loc[["hedged", "longer"]] > 0).all()
    # the mean is the score difference, computed again by hand for "confident"
    base = np.array(score_fn(["\n\nHuman: q\n\nAssistant:"] * 2, ["Yes. It works.", "Sure."]))
    conf = np.array(score_fn(["\n\nHuman: q\n\nAssistant:"] * 2,
                             ["Definitely. Yes. It works.", "Definitely. Sure."]))
    assert table.loc["confident", "mean"] == pytest.approx((conf - base).mean(), abs=1e-5)


# ---------------------------------------------------------------- tier 3 (slow)
@pytest.mark.slow
def test_default_judge_beats_the_length_only_judge(request):
    """Default preset: the judge must beat the length-only judge on held-out pairs."""
    from rlhf_lessons.core.config import preset

    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("default-preset quality check (minutes): run `pytest -m slow`")

    cfg = preset("default")
    model, tok2, _ = A.load_judge(cfg, "cpu")
    train = A.hh_pairs(cfg, tok2, "train")
    ev_pairs = A.hh_pairs(cfg, tok2, "eval")
    ev = E.judge_accuracy(model, ev_pairs, "cpu", tok2.pad_token_id)
    table = E.accuracy_table(ev_pairs, ev["correct"], E.length_judge_directions(train))
    assert ev["accuracy"] > table.loc["overall", "length_judge"]


def test_stratified_sample_by_hand():
    subsets = ["a"] * 6 + ["b"] * 3 + ["c"] * 1
    idx = data.stratified_sample(subsets, 5, seed=0)
    picked = [subsets[i] for i in idx]
    assert (picked.count("a"), picked.count("b"), picked.count("c")) == (3, 2, 0)  # 3/1.5/0.5
    assert list(idx) == sorted(set(idx)) and len(idx) == 5
    assert list(data.stratified_sample(subsets, 5, seed=0)) == list(idx)
    assert any(list(data.stratified_sample(subsets, 5, seed=s)) != list(idx) for s in range(1, 6))
    assert len(data.stratified_sample(subsets, 50, seed=0)) == 10  # never more than there are


def test_accuracy_from_given_scores_runs_no_model_and_checks_their_shape(tok):
    """Scores kept from an earlier pass give the same accuracy as scoring afresh:
    pairs 1 and 3 won (2 > 1, 0.5 > -1), pair 2 is identical (a tie counts as wrong)."""
    rows = rows_of(("Yes.", "No."), ("Same.", "Same."), ("Sure thing.", "Nope."))
    ev = R.prepare_pairs(rows, tok, 64, drop_identical=False)
    got = E.judge_accuracy(None, ev, scores=([2.0, 3.0, 0.5], [1.0, 3.0, -1.0]))
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["correct"].tolist() == [True, False, True]
    # loss: mean of -log sigma(margin) over margins 1, 0, 1.5
    want = np.mean([math.log1p(math.exp(-m)) for m in (1.0, 0.0, 1.5)])
    assert got["loss"] == pytest.approx(want)
    judge = tiny_judge_for(tok)
    fresh = E.judge_accuracy(judge, ev)
    kept = E.judge_accuracy(judge, ev, scores=(fresh["r_chosen"], fresh["r_rejected"]))
    assert kept["correct"].tolist() == fresh["correct"].tolist()
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        E.judge_accuracy(None, ev, scores=([1.0, 2.0], [0.0, 1.0]))
