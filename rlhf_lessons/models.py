"""Building, saving and loading GPT-2 policies and their tokenizers.

Taught in notebook 02 (a small GPT-2 of our own); used by notebooks 03-05.

Offline there are no pretrained GPT-2 weights, so the course ships its own small
GPT-2 (``data/models/course-gpt2``), pretrained by :mod:`rlhf_lessons.pretrain` on the
TRAIN part of the bundled HH-RLHF transcripts, and its SFT version
(``data/models/course-gpt2-sft``). The gpu preset loads the real ``gpt2`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rlhf_lessons.config import LessonConfig, ModelConfig
from rlhf_lessons.data import DATA_DIR
from rlhf_lessons.utils import say_once

MODELS_DIR = DATA_DIR / "models"
PRETRAINED_DIR = MODELS_DIR / "course-gpt2"
SFT_DIR = MODELS_DIR / "course-gpt2-sft"
GPT2_TOKENIZER_DIR = DATA_DIR / "gpt2-tokenizer"
EOS = "<|endoftext|>"

# Named sizes. "course" is the shipped model; "tiny" is the fast preset's.
SIZES = {
    "tiny": dict(n_layer=2, n_embd=64, n_head=2),
    "small": dict(n_layer=4, n_embd=256, n_head=4),
    "course": dict(n_layer=4, n_embd=256, n_head=4),
    "medium": dict(n_layer=6, n_embd=384, n_head=6),
}


def load_gpt2_tokenizer(padding_side: str = "left"):
    """The real GPT-2 BPE (50,257 tokens) from ``data/gpt2-tokenizer``, pad = eos."""
    from transformers import GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(str(GPT2_TOKENIZER_DIR))
    tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def train_bpe_tokenizer(texts, vocab_size: int):
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts`` (id 0 = EOS = pad).

    Byte-level means any string can be encoded (no unknown token), like GPT-2's own.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=EOS)


def load_tokenizer(path: str | Path, padding_side: str = "left"):
    """A saved tokenizer with pad set (pad == eos, as for GPT-2)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def build_gpt2(vocab_size: int, mc: ModelConfig, eos_id: int, seed: int = 0):
    """A randomly initialised ``GPT2LMHeadModel`` of size ``mc``, dropout off.

    Dropout stays off everywhere in this course: RLHF compares log-probs of the
    same text under two passes, and dropout would make them differ at random.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=mc.n_positions,
        n_embd=mc.n_embd,
        n_layer=mc.n_layer,
        n_head=mc.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return _with_generation_ids(GPT2LMHeadModel(config), eos_id)


def _with_generation_ids(model, eos_id: int):
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    model.generation_config.bos_token_id = eos_id
    return model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def save_model(model, tokenizer, path: str | Path, card: dict | None = None,
               dtype: torch.dtype | None = None) -> Path:
    """``save_pretrained`` for model and tokenizer (+ ``training.json`` if ``card``).

    ``dtype=torch.float16`` halves the file size of a shipped checkpoint; it is cast
    back to fp32 when loaded.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if dtype is not None:
        import copy

        model = copy.deepcopy(model).to(dtype)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    if card is not None:
        (path / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu"):
    """(model, tokenizer) from a ``save_pretrained`` folder, in fp32 and eval mode."""
    from transformers import GPT2LMHeadModel

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path}: no config.json here. Run `python -m rlhf_lessons.pretrain` "
            "to build the course model, or check the path."
        )
    model = GPT2LMHeadModel.from_pretrained(str(path), dtype=torch.float32)
    tok = load_tokenizer(path)
    _with_generation_ids(model, tok.eos_token_id)
    return model.to(device).eval(), tok


def load_policy(cfg: LessonConfig, stage: str = "sft", device="cpu"):
    """The starting policy for a preset: (model, tokenizer).

    - gpu preset: the real ``gpt2`` from the Hub (``stage`` is ignored; fine-tune it
      with :mod:`rlhf_lessons.sft` first for a proper SFT policy).
    - default preset: the shipped course model, ``stage`` = "pretrained" or "sft".
    - fast preset: a tiny random GPT-2 on the course tokenizer (seconds, not quality).
    """
    if stage not in ("pretrained", "sft"):
        raise ValueError(f"stage={stage!r}: expected 'pretrained' or 'sft'")
    if cfg.model.name in ("gpt2", "distilgpt2", "gpt2-medium"):
        return load_hub_gpt2(cfg.model.name, device)
    if cfg.preset == "fast":
        tok = load_tokenizer(PRETRAINED_DIR)
        say_once("⚡ fast preset: a tiny randomly initialised GPT-2 (for tests, not quality).")
        model = build_gpt2(len(tok), cfg.model, tok.eos_token_id, seed=cfg.seed)
        return model.to(device).eval(), tok
    path = SFT_DIR if stage == "sft" else PRETRAINED_DIR
    return load_model(path, device)


def load_hub_gpt2(name: str = "gpt2", device="cpu"):
    """The real GPT-2 from the Hugging Face Hub (needs the Hub; the gpu preset)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(name)
    for attr in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, attr, 0.0)
    _with_generation_ids(model, tok.eos_token_id)
    return model.to(device).eval(), tok
