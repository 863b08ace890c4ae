"""The shared plumbing (batching.py) and training helpers (utils.py) on hand-made cases."""

from __future__ import annotations

import pytest
import torch

from rlhf_lessons.core import batching as bt
from rlhf_lessons.core.utils import (
    atomic_torch_save,
    linear_schedule,
    load_checkpoint,
    optimizer_step,
)


class _Tok:
    """A tokenizer stand-in: one id per character, 0 = EOS."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        if isinstance(text, list):  # a batch, as Hugging Face tokenizers take it
            return {"input_ids": [[ord(c) for c in t] for t in text]}
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_left_and_right_pad_by_hand():
    ids, mask = bt.left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = bt.right_pad([[5, 6, 7], [8]], pad_id=9, multiple=4)
    assert ids.tolist() == [[5, 6, 7, 9], [8, 9, 9, 9]]  # 3 rounded up to 4
    ids, _ = bt.right_pad([[5, 6, 7], [8]], pad_id=9, multiple=4, max_len=3)
    assert ids.shape == (2, 3)  # never past max_len, never below the longest
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        bt.left_pad([[1], []], 0)


def test_position_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert bt.position_ids(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


def test_encode_prompts_keeps_the_end_and_refuses_bad_input():
    tok = _Tok()
    assert bt.encode_prompts(tok, ["abcdef", "xy"], 3) == [[100, 101, 102], [120, 121]]
    assert bt.encode_prompts(tok, ["abc"], 0) == [[97, 98, 99]]
    with pytest.raises(TypeError, match="not one string"):
        bt.encode_prompts(tok, "abc", 3)
    with pytest.raises(TypeError, match="prompt 1 is int"):
        bt.encode_prompts(tok, ["a", 3], 3)
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        bt.encode_prompts(tok, [""], 3)


def test_truncate_and_decode_after_the_first_eos():
    ids, mask, has_eos = bt.truncate_after_eos(torch.tensor([[104, 105, 0, 120], [97, 98, 99, 100]]),
                                               eos_id=0, pad_id=1)
    assert ids.tolist() == [[104, 105, 0, 1], [97, 98, 99, 100]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]] and has_eos.tolist() == [True, False]
    assert bt.decode_responses(_Tok(), ids, mask) == ["hi", "abcd"]


def test_masked_mean_and_whiten_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    m = torch.tensor([[1, 1, 0]])
    assert bt.masked_mean(x, m).item() == pytest.approx(2.0)
    assert bt.masked_var(x, m).item() == pytest.approx(2.0)  # unbiased: (1 + 1) / 1
    w = bt.masked_whiten(x, m)
    assert w[0, 2].item() == 0.0 and w[0, :2].tolist() == pytest.approx([-0.7071, 0.7071],
                                                                        abs=1e-3)


def test_length_buckets_cover_every_item_once_in_a_seeded_order():
    lengths = [5, 1, 4, 2, 3, 6, 7]
    a = bt.length_buckets(lengths, batch_size=2, seed=0)
    assert sorted(i for b in a for i in b) == list(range(7))
    # each batch holds neighbours in length order: 1,2 | 3,4 | 5,6 | 7
    assert sorted(tuple(sorted(lengths[i] for i in b)) for b in a) == [
        (1, 2), (3, 4), (5, 6), (7,)]
    assert a == bt.length_buckets(lengths, 2, seed=0)
    assert any(bt.length_buckets(lengths, 2, seed=s) != a for s in range(1, 6))


def test_linear_schedule_by_hand():
    assert [linear_schedule(s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert linear_schedule(0, 10, warmup=4) == pytest.approx(0.25)  # (0+1)/4 * (1-0)
    assert linear_schedule(5, 10, warmup=4) == pytest.approx(0.5)
    assert linear_schedule(7, 10, constant=True) == 1.0


def test_optimizer_step_clips_and_clears():
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = torch.optim.SGD([w], lr=1.0)
    norm = optimizer_step((w * torch.tensor([3.0, 4.0])).sum(), opt, [w], max_grad_norm=1.0)
    assert norm == pytest.approx(5.0)  # |(3, 4)| before clipping
    assert w.tolist() == pytest.approx([3.0 - 0.6, 4.0 - 0.8])  # clipped to norm 1
    assert w.grad is None


def test_load_checkpoint_resumes_refuses_other_settings_and_names_a_broken_file(
        tmp_path, capsys):
    path = tmp_path / "run.pt"
    assert load_checkpoint(path) is None
    atomic_torch_save({"settings": {"lr": 1}, "step": 3}, path)
    assert load_checkpoint(path, {"lr": 1})["step"] == 3
    assert load_checkpoint(path, {"lr": 2}, what="PPO") is None
    assert "PPO checkpoint with other settings" in capsys.readouterr().out
    path.write_bytes(path.read_bytes()[:40])  # truncated by a crash or a full disk
    with pytest.raises(RuntimeError, match="run.pt: cannot read this judge checkpoint"):
        load_checkpoint(path, what="judge")
