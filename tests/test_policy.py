"""The small GPT-2 policy: SFT loss masking, generation, save/load, the shipped model."""

import dataclasses
import importlib.util
import json
import math
import re

import pytest
import torch

from rlhf_lessons.core.batching import encode_prompts, left_pad, truncate_after_eos
from rlhf_lessons.core.config import REPO_ROOT, LessonConfig
from rlhf_lessons.core.data import load_all_hh
from rlhf_lessons.core.generation import filter_logits, generate
from rlhf_lessons.core.models import build_gpt2, load_model, save_model
from rlhf_lessons.course.artefacts import PRETRAINED_DIR, SFT_DIR, load_policy, sft_run_dir
from rlhf_lessons.train.pretrain import corpus_texts, lr_at, unigram_perplexity
from rlhf_lessons.train.sft import IGNORE, encode_example, sft_loss, sft_pairs

CFG = LessonConfig.from_env()


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_policy(CFG, "pretrained")
    return model, tok


def test_sft_loss_counts_answer_tokens_only():
    # vocab 2, sequence of 3 tokens; only the last label is an answer token.
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[IGNORE, IGNORE, 1]])
    # position 1 predicts token 2 (label 1): -log softmax([2, 0])[1] = log(1 + e^2)
    expected = math.log(1 + math.e**2)
    assert sft_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # changing the logits at prompt positions that predict prompt tokens changes nothing
    logits2 = logits.clone()
    logits2[0, 0] = torch.tensor([9.0, -9.0])
    assert sft_loss(logits2, labels).item() == pytest.approx(expected, rel=1e-6)


def test_encode_example_masks_prompt_and_ends_with_eos(tiny):
    _, tok = tiny
    ex = encode_example(tok, "\n\nHuman: hi\n\nAssistant:", "Hello there.", max_len=64)
    n = ex["n_prompt"]
    assert ex["labels"][:n] == [IGNORE] * n
    assert ex["labels"][n:] == ex["input_ids"][n:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    # too long: the prompt is cut from the left, the answer keeps its start
    long = encode_example(tok, "\n\nHuman: " + "word " * 200 + "\n\nAssistant:", "Yes.", 32)
    assert len(long["input_ids"]) == 32 and long["input_ids"][-1] == tok.eos_token_id


def test_response_mask_stops_after_first_eos():
    eos = 0
    ids = torch.tensor([[5, 6, 0, 7, 0], [5, 6, 7, 8, 9], [0, 3, 3, 3, 3]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    _, mask, has_eos = truncate_after_eos(ids, eos, pad_id=eos)
    assert torch.equal(mask.long(), expected)
    assert has_eos.tolist() == [True, False, True]


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logits(logits, top_k=2)
    assert torch.isinf(k2[0, 2:]).all() and torch.isfinite(k2[0, :2]).all()
    p = filter_logits(logits, top_p=0.7)  # 0.5 < 0.7, 0.5+0.3 >= 0.7: keep two tokens
    assert torch.isfinite(p[0, :2]).all() and torch.isinf(p[0, 2:]).all()
    assert torch.equal(filter_logits(logits), logits)


def test_top_p_over_a_wide_vocabulary_is_the_full_sorts_nucleus():
    """Beyond 256 words the nucleus is first looked for among the top 256; rows whose
    nucleus is wider (a flat row: 0.9 of 1,000 equal words is 900 words) fall back
    to the full sort. Either way the kept set is the smallest prefix reaching top_p."""
    g = torch.Generator().manual_seed(0)
    peaked = torch.randn(3, 1000, generator=g) * 4  # nucleus within the top 256
    flat = torch.zeros(1, 1000)
    for logits, kept in ((peaked, None), (flat, 900)):
        got = filter_logits(logits, top_p=0.9)
        srt, order = torch.sort(logits, descending=True, dim=-1)
        p = srt.softmax(-1)
        want_n = ((p.cumsum(-1) - p) < 0.9).sum(-1)  # the smallest prefix reaching 0.9
        assert torch.isfinite(got).sum(-1).tolist() == want_n.tolist()
        if kept:
            assert want_n.tolist() == [kept]
        for r in range(len(logits)):  # and they are the top words
            assert torch.isfinite(got[r, order[r, :want_n[r]]]).all()


def _always_eos(model, eos):
    """Make every next-token prediction EOS: constant final hidden state aligned with EOS."""
    with torch.no_grad():
        d = model.config.n_embd
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[:, 0] = 0.0
        model.transformer.wte.weight[eos] = torch.zeros(d)
        model.transformer.wte.weight[eos, 0] = 5.0
    return model


def test_generation_stops_at_eos(tiny):
    _, tok = tiny
    model = _always_eos(build_gpt2(len(tok), CFG.model, tok.eos_token_id), tok.eos_token_id)
    out = generate(model, tok, ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: a b c"], 10,
                   greedy=True)
    assert out.response_ids.shape == (2, 1)  # the loop ends once every row has EOS
    assert out.finished.all() and out.texts == ["", ""]


def test_batched_greedy_equals_single_and_left_padding_is_harmless(tiny):
    model, tok = tiny
    prompts = ["\n\nHuman: hi\n\nAssistant:",
               "\n\nHuman: What is a good name for a very large dog?\n\nAssistant:",
               "\n\nHuman: Tell me a joke\n\nAssistant:"]
    batch = generate(model, tok, prompts, max_new_tokens=8, greedy=True)
    ids, mask = left_pad(encode_prompts(tok, prompts, 100), tok.pad_token_id)
    assert (mask[0] == 0).any(), "the short prompt must be left-padded in the batch"
    for i, p in enumerate(prompts):
        alone = generate(model, tok, [p], max_new_tokens=8, greedy=True)
        n = alone.response_ids.size(1)
        assert torch.equal(alone.response_ids[0], batch.response_ids[i, :n])
        assert alone.texts[0] == batch.texts[i]


def test_sampling_is_reproducible_with_a_seed(tiny):
    model, tok = tiny
    a = generate(model, tok, ["\n\nHuman: hi\n\nAssistant:"] * 3, 6, temperature=1.0, seed=3)
    b = generate(model, tok, ["\n\nHuman: hi\n\nAssistant:"] * 3, 6, temperature=1.0, seed=3)
    assert torch.equal(a.response_ids, b.response_ids)


def test_generate_rejects_bad_arguments(tiny):
    model, tok = tiny
    with pytest.raises(TypeError, match="list of strings"):
        generate(model, tok, "one string", 4)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tok, ["hi"], 4, temperature=0)


def test_save_load_round_trip_reproduces_logits(tiny, tmp_path):
    model, tok = tiny
    x = torch.tensor([[1, 2, 3, 4]])
    save_model(model, tok, tmp_path / "m")
    loaded, tok2 = load_model(tmp_path / "m")
    with torch.no_grad():
        assert torch.allclose(model(input_ids=x).logits, loaded(input_ids=x).logits, atol=1e-6)
    assert tok2.eos_token_id == tok.eos_token_id and tok2.padding_side == "left"


def test_load_model_names_the_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        load_model(tmp_path)


@pytest.mark.parametrize("folder", [PRETRAINED_DIR, SFT_DIR], ids=["pretrained", "sft"])
def test_shipped_checkpoint_loads_and_matches_its_model_card(folder):
    model, tok = load_model(folder)
    card = (folder / "MODEL_CARD.md").read_text()
    size = re.search(r"n_layer=(\d+), n_embd=(\d+), n_head=(\d+), n_positions=(\d+)", card)
    assert size, "MODEL_CARD must state the size"
    c = model.config
    assert tuple(map(int, size.groups())) == (c.n_layer, c.n_embd, c.n_head, c.n_positions)
    n = int(re.search(r"([\d,]+) parameters", card).group(1).replace(",", ""))
    assert n == sum(p.numel() for p in model.parameters())
    assert len(tok) == c.vocab_size and tok.eos_token_id == 0
    assert (folder / "model.safetensors").stat().st_size < 26e6
    training = json.loads((folder / "training.json").read_text())
    assert training["figures"]["n_params"] == n


def test_no_eval_text_in_pretraining_or_sft_data():
    train, heldout = set(corpus_texts("train")), set(corpus_texts("eval"))
    assert train and heldout and not (train & heldout)
    cfg = LessonConfig.from_env(max_rows_per_subset=0)
    sft = set(sft_pairs(cfg, "train")[0])
    ev = load_all_hh("eval")
    eval_pairs = set(zip(ev["prompt"], ev["chosen_response"]))
    assert not (sft & eval_pairs)
    assert all(r % 10 != 0 for r in load_all_hh("train")["row"])


def test_unigram_perplexity_by_hand():
    import numpy as np

    train = np.array([0, 0, 1], dtype=np.int32)  # add-one counts: [3, 2, 1] / 6
    heldout = np.array([0, 2], dtype=np.int32)
    expected = math.exp(-(math.log(3 / 6) + math.log(1 / 6)) / 2)
    assert unigram_perplexity(train, heldout, 3) == pytest.approx(expected)


def test_lr_schedule_warms_up_then_decays():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)


def test_pretrain_runs_and_resumes(tmp_path, capsys):
    from rlhf_lessons.train.pretrain import pretrain

    def steps(n):
        return dataclasses.replace(CFG, pretrain=dataclasses.replace(CFG.pretrain, steps=n))

    pretrain(steps(2), tmp_path, show_progress=False)
    first = json.loads((tmp_path / "result.json").read_text())
    assert first["figures"]["steps"] == 2
    pretrain(steps(4), tmp_path, show_progress=False)
    out = capsys.readouterr().out
    assert "resuming pretraining" in out and "after step 2/4" in out
    second = json.loads((tmp_path / "result.json").read_text())
    assert [m["step"] for m in second["metrics"]] == [1, 2, 3, 4]


def _ship_script():
    spec = importlib.util.spec_from_file_location("ship", REPO_ROOT / "scripts" / "ship.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ship_sft_trains_and_evaluates_without_shipping():
    before = (SFT_DIR / "training.json").stat().st_mtime
    _ship_script().main(["sft", "--steps", "3", "--no-ship"])
    run_dir = sft_run_dir(LessonConfig.from_env())  # the tests' temporary outputs/
    result = json.loads((run_dir / "result.json").read_text())
    assert result["figures"]["steps"] == 3
    assert 0.0 <= result["figures"]["eos_rate"] <= 1.0
    assert (run_dir / "checkpoint.pt").exists()
    assert (SFT_DIR / "training.json").stat().st_mtime == before, "--no-ship wrote data/"


def test_sample_answers_table_and_greedy(tiny):
    from rlhf_lessons.core.generation import sample_answers

    model, tok = tiny
    df = sample_answers(model, tok, "Tell me a joke", temperature=0.8, max_new_tokens=5, n=3)
    assert list(df.columns) == ["answer", "tokens", "stopped (EOS)"] and len(df) == 3
    assert (df["tokens"] <= 5).all()
    assert len(sample_answers(model, tok, "hi", temperature=0, max_new_tokens=4)) == 1
    with pytest.raises(ValueError, match="question is empty"):
        sample_answers(model, tok, "   ")
