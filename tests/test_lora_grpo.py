"""GRPO through LoRA adapters (the writer notebook's optimiser), on a tiny Llama.

A word-level tokenizer of eight words and a two-layer Llama stand in for the
writer, so every case runs in seconds and its answers can be counted by hand.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlhf_lessons.core.config import LoRAGRPOConfig
from rlhf_lessons.train import lora_grpo as L
from rlhf_lessons.train.run import CHECKPOINT_KEYS, METRIC_KEYS

WORDS = ["<pad>", "<eos>", "<user>", "<bot>", "a", "b", "c", "d"]
TEMPLATE = ("{% for m in messages %}<user> {{ m['content'] }} {% endfor %}"
            "{% if add_generation_prompt %}<bot>{% endif %}")


def tiny_tokenizer():
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")
    tok.chat_template = TEMPLATE
    return tok


def tiny_writer(seed: int = 0):
    torch.manual_seed(seed)
    c = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                    bos_token_id=2)
    return LlamaForCausalLM(c).eval()


def count_a(prompts, answers):
    return [float(a.split().count("a")) for a in answers]


CFG = LoRAGRPOConfig(group_size=4, prompts_per_update=2, n_updates=2, lr=1e-2,
                     lora_r=4, lora_alpha=8, max_new_tokens=6, temperature=1.0, top_p=1.0)
QUESTIONS = ["b c", "c d", "d b", "b b"]


def test_answer_mask_and_left_pad_by_hand():
    ids = torch.tensor([[5, 1, 0, 0], [5, 6, 7, 4], [1, 1, 0, 0]])
    assert L.answer_mask(ids, eos_id=1).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    x, m = L.left_pad([[4, 5, 6], [7]], pad_id=0)
    assert x.tolist() == [[4, 5, 6], [0, 0, 7]] and m.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_chat_prompt_ids_follow_the_template():
    tok = tiny_tokenizer()
    assert L.chat_prompt_ids(tok, ["b c"]) == [[2, 5, 6, 3]]


def test_fresh_adapters_answer_like_the_base_model():
    tok = tiny_tokenizer()
    model = L.add_lora(tiny_writer(), CFG)
    batch = L.sample_answers(model, tok, L.chat_prompt_ids(tok, QUESTIONS[:2]), 3, CFG, seed=0)
    assert batch["ids"].shape[0] == 6 and len(batch["texts"]) == 6
    with_lora = L.answer_logprobs(model, batch, 1.0)
    with torch.no_grad(), model.disable_adapter():
        without = L.answer_logprobs(model, batch, 1.0)
    assert torch.allclose(with_lora, without, atol=1e-6)  # B = 0 at the start
    again = L.sample_answers(model, tok, L.chat_prompt_ids(tok, QUESTIONS[:2]), 3, CFG, seed=0)
    assert again["texts"] == batch["texts"]  # seeded


def test_a_run_keeps_the_contract_and_reloads_finished(tmp_path, capsys):
    tok = tiny_tokenizer()
    model = L.add_lora(tiny_writer(), CFG)
    ck = tmp_path / "writer-grpo.pt"
    seen = []
    run = L.train_lora_grpo(model, tok, count_a, QUESTIONS, CFG, checkpoint=ck,
                            show_progress=False,
                            on_update=lambda u, p, a, s: seen.append(len(a)) or {"n": len(a)})
    assert list(run.metrics.columns[:3]) == list(METRIC_KEYS) and run.total == 2
    assert seen == [8, 8] and run.metrics["n"].tolist() == [8, 8]
    state = torch.load(ck, weights_only=False)
    assert set(state) == set(CHECKPOINT_KEYS)
    assert state["model"] and all("lora_" in k for k in state["model"])  # adapters only
    fresh = L.add_lora(tiny_writer(), CFG)
    capsys.readouterr()
    again = L.train_lora_grpo(fresh, tok, count_a, QUESTIONS, CFG, checkpoint=ck,
                              show_progress=False)
    assert not again.trained_now and "resuming" not in capsys.readouterr().out
    trained = dict(model.named_parameters())
    for name, p in fresh.named_parameters():
        if "lora_" in name:
            assert torch.equal(p, trained[name]), name


def test_grpo_teaches_the_tiny_writer_what_the_judge_counts():
    """The judge counts the word "a": after 40 updates the writer says it more."""
    tok = tiny_tokenizer()
    cfg = LoRAGRPOConfig(group_size=6, prompts_per_update=2, n_updates=40, lr=5e-2,
                         kl_coef=0.0, lora_r=4, lora_alpha=8, max_new_tokens=6,
                         temperature=1.0, top_p=1.0, lora_targets=("q_proj", "v_proj",
                                                                   "o_proj"))
    model = L.add_lora(tiny_writer(seed=1), cfg)
    ids = L.chat_prompt_ids(tok, QUESTIONS)

    def says_a():  # mean count of "a" over 4 x 50 fresh answers (seeds unseen in training)
        b = L.sample_answers(model, tok, ids, 50, cfg, seed=10_000)
        return sum(count_a(None, b["texts"])) / len(b["texts"])

    before = says_a()
    run = L.train_lora_grpo(model, tok, count_a, QUESTIONS, cfg, seed=1, show_progress=False)
    after = says_a()
    # seeds 1-6: about 0.54 before and 0.71-1.09 over the last 8 updates
    assert after > before + 0.25, (before, after)
    # it moved away from the reference (k1 per batch is noisy: the last 8 together)
    assert run.metrics["objective/kl"].iloc[-8:].mean() > 0.05, run.metrics["objective/kl"]


def test_the_shared_prompt_gives_the_plain_forwards_log_probs_and_gradients():
    """Running each group's prompt once (group_size=3) is only a saving: the answer
    log-probs and the adapters' gradients match the plain forward over every row."""
    tok = tiny_tokenizer()
    cfg = dataclasses.replace(CFG, lora_r=2, lora_alpha=4)
    model = L.add_lora(tiny_writer(), cfg)
    with torch.no_grad():  # adapters that matter: B != 0
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    batch = L.sample_answers(model, tok, L.chat_prompt_ids(tok, ["b c", "c d b b"]), 3,
                             CFG, seed=0)
    grads = []
    for g in (1, 3):
        model.zero_grad()
        lp = L.answer_logprobs(model, batch, 0.7, group_size=g)
        (lp * batch["answer_mask"]).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
        if g == 1:
            plain = lp.detach()
    assert torch.allclose(lp.detach(), plain, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))
    with pytest.raises(ValueError, match="not whole groups"):
        L.answer_logprobs(model, batch, 0.7, group_size=4)
    with pytest.raises(ValueError, match="do not share their prompt"):
        L.answer_logprobs(model, batch, 0.7, group_size=2)
