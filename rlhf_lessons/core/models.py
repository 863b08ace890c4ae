"""Building, saving and loading GPT-2s (policies and judges) and their tokenizers.

Taught in notebook 02 (a small GPT-2 of our own); used by notebooks 03-05. Which
saved model a preset uses, and where it lives, is :mod:`rlhf_lessons.course.artefacts`'
business: this module takes paths and returns models.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from rlhf_lessons.core.config import ModelConfig
from rlhf_lessons.core.data import DATA_DIR
from rlhf_lessons.core.hub import HubUnreachableError, require_hub
from rlhf_lessons.core.utils import file_mode

GPT2_TOKENIZER_DIR = DATA_DIR / "gpt2-tokenizer"
EOS = "<|endoftext|>"


def load_gpt2_tokenizer(padding_side: str = "left"):
    """The real GPT-2 BPE (50,257 tokens) from ``data/gpt2-tokenizer``, pad = eos."""
    tok = GPT2TokenizerFast.from_pretrained(str(GPT2_TOKENIZER_DIR))
    tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def train_bpe_tokenizer(texts, vocab_size: int):
    """A byte-level BPE of ``vocab_size`` tokens trained on ``texts`` (id 0 = EOS = pad).

    Byte-level means any string can be encoded (no unknown token), like GPT-2's own.
    """
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
    # transformers finds a model's loss by its class name, and "GPT2LMHeadModel"
    # names none: say it is a causal LM (else it warns on the first labels= call).
    model.loss_type = "ForCausalLM"
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    model.generation_config.bos_token_id = eos_id
    return model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# Loading a small saved model takes well under a second: no progress bar for it.
hf_logging.disable_progress_bar()

# Beside every saved model: "<sha256>  <file>" for each weights file. Only the
# binary weights: git may rewrite the line endings of the JSON files on checkout.
CHECKSUMS = "SHA256SUMS"
WEIGHTS = ("*.safetensors", "*.bin")


@contextlib.contextmanager
def _folder_swap(path: Path):
    """Yield a temporary folder beside ``path``; on success swap it in by renames
    (old folder aside, new one in, old one removed), so a crash leaves the old
    folder or the new one, plus a hidden leftover that
    :func:`rlhf_lessons.core.utils.remove_leftovers` clears at the next start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    old = path.with_name(f".{path.name}.old{tmp.name[-8:]}")
    try:
        yield tmp
        tmp.chmod(file_mode(folder=True))
        if path.exists():
            path.rename(old)
        tmp.rename(path)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def save_model(model, tokenizer, path: str | Path, card: dict | None = None,
               dtype: torch.dtype | None = None, keep: tuple[str, ...] = ()) -> Path:
    """``save_pretrained`` model and tokenizer (+ ``training.json`` if ``card``),
    with a ``SHA256SUMS`` of its weights, atomically (see :func:`_folder_swap`).

    Policies and judges alike. ``dtype=torch.float16`` halves the size of a shipped
    checkpoint; :func:`load_model` casts it back to fp32. ``keep``: files of the old
    folder to carry over (e.g. "metrics.csv").
    """
    path = Path(path)
    with _folder_swap(path) as tmp:
        if dtype is not None:
            model = copy.deepcopy(model).to(dtype)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if card is not None:
            (tmp / "training.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        for name in keep:
            if (path / name).exists() and not (tmp / name).exists():
                shutil.copy2(path / name, tmp / name)
        write_checksums(tmp)
    return path


def save_tokenizer(tokenizer, path: str | Path) -> Path:
    """``save_pretrained`` a tokenizer alone, atomically."""
    path = Path(path)
    with _folder_swap(path) as tmp:
        tokenizer.save_pretrained(str(tmp))
    return path


def write_checksums(folder: str | Path, patterns: tuple[str, ...] = WEIGHTS,
                    skip: tuple[str, ...] = ()) -> None:
    """Write ``SHA256SUMS`` for the files of ``folder`` that match ``patterns`` (the
    weights files; ``("**/*",)``: every file, named by its path inside ``folder``),
    except ``SHA256SUMS`` itself, hidden files and the names in ``skip``."""
    folder = Path(folder)
    lines = [f"{sha256_of(p)}  {p.relative_to(folder).as_posix()}" for pat in patterns
             for p in sorted(folder.glob(pat)) if p.is_file() and p != folder / CHECKSUMS
             and p.name not in skip and not p.name.startswith(".")]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n")


def read_checksums(folder: str | Path) -> dict[str, str]:
    """``{file: sha256}`` as listed in ``folder/SHA256SUMS`` ({} when there is none)."""
    sums = Path(folder) / CHECKSUMS
    if not sums.exists():
        return {}
    listed = {}
    for line in sums.read_text(errors="replace").splitlines():
        digest, _, name = line.strip().partition("  ")
        if line.strip() and not (len(digest) == 64 and name):
            raise ArtefactError(f"{sums}: {line[:40]!r} is not '<sha256>  <file>'. "
                                f"{_REBUILD.format(sums)}")
        if name:
            listed[name.strip()] = digest
    return listed


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksums(folder: str | Path) -> None:
    """Check every file listed in ``folder/SHA256SUMS``; raise naming the first one
    that is missing or differs. A folder without the file is not checked."""
    folder = Path(folder)
    sums = folder / CHECKSUMS
    for name, digest in read_checksums(folder).items():
        f = folder / name
        if not f.exists():
            raise ArtefactError(f"{f}: missing (listed in {sums}). {_REBUILD.format(folder)}")
        if sha256_of(f) != digest:
            raise ArtefactError(f"{f}: its SHA-256 differs from {sums}: the file is "
                                f"damaged or was changed. {_REBUILD.format(folder)}")


class ArtefactError(RuntimeError):
    """A saved model, tokenizer or card that cannot be used as it is (names the file)."""


_REBUILD = ("Restore it (`git checkout -- {0}` for a shipped model) or delete the folder "
            "so that it is rebuilt")


def load_model(path: str | Path, device: torch.device | str = "cpu", kind: str = "lm"):
    """(model, tokenizer) from a :func:`save_model` folder, in fp32 and eval mode.

    ``kind="lm"``: a ``GPT2LMHeadModel`` with a left-padding tokenizer (a policy);
    ``kind="judge"``: a ``GPT2ForSequenceClassification`` with right padding.
    The files are checked against ``SHA256SUMS`` when it exists, weights that are
    not finite are refused, and any file that cannot be read is named.
    """
    if kind not in ("lm", "judge"):
        raise ValueError(f"kind={kind!r}: expected 'lm' or 'judge'")
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"{path}: no saved model here (config.json missing). The course's models "
            "are rebuilt by `python scripts/ship.py pretrain|sft|judge`.")
    verify_checksums(path)
    try:
        if kind == "judge":
            model = GPT2ForSequenceClassification.from_pretrained(str(path),
                                                                  dtype=torch.float32)
            tok = load_tokenizer(path, padding_side="right")
        else:
            model = GPT2LMHeadModel.from_pretrained(str(path), dtype=torch.float32)
            tok = load_tokenizer(path)
            _with_generation_ids(model, tok.eos_token_id)
    except Exception as err:  # noqa: BLE001 - safetensors, json and OS errors alike
        raise ArtefactError(f"{path}: cannot load this saved model ({type(err).__name__}: "
                            f"{err}). {_REBUILD.format(path)}") from err
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise ArtefactError(f"{path}: weights with NaN or infinite values ({bad[0]}"
                            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}). "
                            f"{_REBUILD.format(path)}")
    return model.to(device).eval(), tok


def load_card(path: str | Path) -> dict:
    """The ``training.json`` saved beside a model ({} when there is none)."""
    card = Path(path) / "training.json"
    if not card.exists():
        return {}
    try:
        return json.loads(card.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtefactError(f"{card}: not valid JSON ({err}). "
                            f"{_REBUILD.format(Path(path))}") from err


def load_hub_gpt2(name: str = "gpt2", device="cpu"):
    """The real GPT-2 from the Hugging Face Hub (needs the Hub; the gpu preset).

    Asks the Hub once, briefly, first: without it this fails at once with what to do,
    not after a minute of retries in transformers.
    """
    try:
        require_hub(f"the gpu preset's pretrained {name!r}")
    except HubUnreachableError as err:
        raise HubUnreachableError(f"{err} Or, offline, use the default preset (unset "
                                  "RLHF_LESSONS_PRESET): it runs on the course's own small "
                                  "GPT-2.") from None
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name)
    except OSError as err:
        raise ArtefactError(f"{name!r} could not be loaded from the Hugging Face Hub ({err}). "
                            "Offline, use the default preset (unset RLHF_LESSONS_PRESET), "
                            "which runs on the course's own small GPT-2.") from err
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    for attr in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, attr, 0.0)
    _with_generation_ids(model, tok.eos_token_id)
    return model.to(device).eval(), tok
