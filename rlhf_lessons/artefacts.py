"""The course's artefacts: the one module that knows ``outputs/`` and ``data/models/``.

A notebook names a step ("the SFT policy", "the judge", "the proxy judge") and this
module finds it: an artefact made earlier with the same settings, else the copy the
course ships, else it builds one now with a progress bar. It says which, in one
line. Every artefact is keyed by the settings that made it, with the one key scheme
:meth:`rlhf_lessons.config.LessonConfig.short_hash`, so a changed setting never
silently reuses a stale model.

The pipeline's products:

- the small GPT-2, pretrained and after SFT (notebook 02): :func:`load_policy`;
- the judge (notebook 03): :func:`load_judge`, its training curves
  :func:`load_training_metrics`, and :func:`judge_reward_fn` for PPO;
- PPO's prompts and checkpoints (notebook 04): :func:`ppo_prompts`,
  :func:`ppo_checkpoint`;
- the proxy judge and the sweep's checkpoint (notebook 05): :func:`load_proxy_judge`,
  :func:`sweep_checkpoint`;
- each notebook's ``metrics.json``: :func:`update_metrics`.

``scripts/ship.py`` rebuilds the shipped models in ``data/models/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rlhf_lessons.config import HackingConfig, LessonConfig
from rlhf_lessons.data import DATA_DIR, load_all_hh
from rlhf_lessons.models import (
    build_gpt2,
    load_card,
    load_hub_gpt2,
    load_model,
    load_tokenizer,
    save_model,
)
from rlhf_lessons.overoptimisation import relabel_by
from rlhf_lessons.reward import (
    PairSet,
    build_reward_model,
    prepare_pairs,
    score_pairs,
    score_texts,
    train_reward_model,
)
from rlhf_lessons.utils import file_lock, remove_leftovers, say_once, use_bf16, write_json

MODELS_DIR = DATA_DIR / "models"
PRETRAINED_DIR = MODELS_DIR / "course-gpt2"
SFT_DIR = MODELS_DIR / "course-gpt2-sft"
SHIPPED_JUDGE_DIR = MODELS_DIR / "course-judge"
NOTEBOOKS = {
    "pretrain": "02_small_gpt2_pretrain_and_sft",
    "judge": "03_reward_model_the_judge",
    "ppo": "04_ppo_with_the_judge",
    "hacking": "05_reward_hacking_and_confidence",
}
# Settings of notebook 03 that change its demos, not the judge: left out of its key.
JUDGE_DEMO_FIELDS = ("demo_steps", "n_probe", "n_ref_samples")


# ---------------------------------------------------------------------------
# Folders and metrics.json
# ---------------------------------------------------------------------------
_CLEANED: set[Path] = set()


def output_dir(notebook: str, cfg: LessonConfig | None = None) -> Path:
    """``outputs/<notebook>/``, created if needed. ``notebook`` is a stem or a step name.

    The first call in a process also clears what a killed save left behind there.
    """
    cfg = cfg or LessonConfig.from_env()
    root = Path(cfg.outputs)
    path = root / Path(notebook).stem
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot write to the outputs folder {root} ({err.strerror}): set "
                      "RLHF_LESSONS_OUTPUTS to a folder you can write") from err
    if root not in _CLEANED:
        _CLEANED.add(root)
        n = remove_leftovers(root)
        if n:
            say_once(f"🧹 removed {n} temporary file(s) left by an interrupted save in {root}")
    return path


def update_metrics(notebook: str, cfg: LessonConfig | None = None, **figures) -> dict:
    """Merge ``figures`` into ``outputs/<notebook>/metrics.json`` and return the whole dict.

    Every notebook ends by calling this with at least ``wall_s``; ``preset`` is added.
    The read-merge-write holds a lock, so two runs writing one file lose nothing.
    """
    cfg = cfg or LessonConfig.from_env()
    path = output_dir(notebook, cfg) / "metrics.json"
    with file_lock(path):
        metrics = {}
        if path.exists():
            try:
                metrics = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err}); delete it and re-run "
                                 "the notebook to write it again") from err
        metrics.update(figures)
        metrics["preset"] = cfg.preset
        write_json(path, metrics)
    return metrics


# ---------------------------------------------------------------------------
# The policy (notebook 02)
# ---------------------------------------------------------------------------
def shipped_policy_dir(stage: str) -> Path:
    """``data/models/course-gpt2`` ("pretrained") or ``course-gpt2-sft`` ("sft")."""
    if stage not in ("pretrained", "sft"):
        raise ValueError(f"stage={stage!r}: expected 'pretrained' or 'sft'")
    return SFT_DIR if stage == "sft" else PRETRAINED_DIR


def load_policy(cfg: LessonConfig, stage: str = "sft", device="cpu"):
    """The starting policy for a preset: (model, tokenizer).

    - gpu preset: the real ``gpt2`` from the Hub (``stage`` is ignored; fine-tune it
      with :mod:`rlhf_lessons.sft` first for a proper SFT policy).
    - default preset: the shipped course model, ``stage`` = "pretrained" or "sft".
    - fast preset: a tiny random GPT-2 on the course tokenizer (seconds, not quality).
    """
    path = shipped_policy_dir(stage)
    if cfg.model.name in ("gpt2", "distilgpt2", "gpt2-medium"):
        return load_hub_gpt2(cfg.model.name, device)
    if cfg.preset == "fast":
        tok = load_tokenizer(PRETRAINED_DIR)
        say_once("⚡ fast preset: a tiny randomly initialised GPT-2 (for tests, not quality).")
        model = build_gpt2(len(tok), cfg.model, tok.eos_token_id, seed=cfg.seed)
        return model.to(device).eval(), tok
    return load_model(path, device)


def course_tokenizer():
    """The course GPT-2's own byte-level BPE (shipped with the pretrained model)."""
    return load_tokenizer(PRETRAINED_DIR)


def shipped_training_log(stage: str) -> dict:
    """What the run that made a shipped policy logged: ``figures``, ``metrics``
    (one dict per step) and ``config``; ``stage`` is "pretrained" or "sft"."""
    return load_card(shipped_policy_dir(stage))


def demo_dir(cfg: LessonConfig, name: str) -> Path:
    """A folder for one of notebook 02's short live runs (``name``: "pretrain_demo")."""
    return output_dir(NOTEBOOKS["pretrain"], cfg) / name


def pretrain_run_dir(cfg: LessonConfig) -> Path:
    """Where a pretraining run of these settings keeps its checkpoint."""
    return output_dir("pretrain", cfg) / cfg.short_hash("model", "pretrain")


def sft_run_dir(cfg: LessonConfig) -> Path:
    """Where an SFT run of these settings keeps its checkpoint."""
    return output_dir("sft", cfg) / cfg.short_hash("model", "sft")


# ---------------------------------------------------------------------------
# The judge (notebook 03)
# ---------------------------------------------------------------------------
def judge_key(cfg: LessonConfig) -> str:
    """The judge's settings key: preset, seed, model and reward settings, without
    the notebook-only demo sizes (they do not change the judge)."""
    return cfg.short_hash("model", "reward", drop=JUDGE_DEMO_FIELDS)


def judge_dir(cfg: LessonConfig) -> Path:
    return output_dir(NOTEBOOKS["judge"], cfg) / f"judge-{judge_key(cfg)}"


def hh_pairs(cfg: LessonConfig, tok, split: str) -> PairSet:
    """HH-RLHF (all 4 subsets) of ``split``, prepared for the judge.

    Train drops identical pairs; eval keeps them as ties. Empty answers are kept.
    """
    ds = load_all_hh(split, source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    return prepare_pairs(ds, tok, cfg.reward.max_len, drop_identical=(split == "train"),
                         allow_empty=True, name=f"HH-RLHF {split}")


def build_judge(cfg: LessonConfig, device="cpu", show_progress: bool = True,
                checkpoint: bool = True):
    """Train the judge of ``cfg`` from its backbone; returns (model, tok, card, metrics).

    Resumes from ``outputs/03_.../judge-<key>.ckpt.pt`` when one exists.
    """
    backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    model = build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed)
    del backbone
    train = hh_pairs(cfg, tok, "train")
    key = judge_key(cfg)
    ck = output_dir(NOTEBOOKS["judge"], cfg) / f"judge-{key}.ckpt.pt" if checkpoint else None
    t0 = time.perf_counter()
    metrics = train_reward_model(model, train, cfg.reward, device, seed=cfg.seed,
                                 checkpoint=ck, pad_id=tok.pad_token_id,
                                 show_progress=show_progress, checkpoint_every=20)
    card = {"key": key, "preset": cfg.preset, "backbone": cfg.reward.backbone,
            "reward": dataclasses.asdict(cfg.reward), "model": dataclasses.asdict(cfg.model),
            "train_pairs": len(train), "train_summary": train.summary(),
            "steps": int(metrics["step"].max()),
            "train_wall_s": round(time.perf_counter() - t0, 1),
            "precision": "bf16 autocast" if use_bf16(torch.device(device)) else "fp32",
            "final_train_loss_avg50": float(metrics["loss"].dropna().tail(50).mean())}
    return model, tok, card, metrics


def load_judge(cfg: LessonConfig, device="cpu", verbose: bool = True):
    """The judge for a preset: ``(model, tokenizer, card)``. Says where it came from.

    1. ``outputs/03_.../judge-<key>/`` if a judge with the same settings was made;
    2. else the shipped ``data/models/course-judge`` if its key matches (default preset);
    3. else it is trained now (fast preset: seconds, a tiny model) with a progress
       bar and saved under 1.
    """
    key = judge_key(cfg)
    here = judge_dir(cfg)
    if (here / "config.json").exists():
        if verbose:
            say_once(f"⚖️ judge: loaded the one made earlier with these settings (key {key})")
        return (*load_model(here, device, kind="judge"), load_card(here))
    shipped = load_card(SHIPPED_JUDGE_DIR)
    if shipped.get("key") == key:
        if verbose:
            say_once(f"⚖️ judge: the course's shipped judge (key {key}, trained for "
                     f"{shipped.get('steps')} steps)")
        return (*load_model(SHIPPED_JUDGE_DIR, device, kind="judge"), shipped)
    if verbose:
        say_once(f"⚖️ judge: none saved for these settings (key {key}); training it now")
    model, tok, card, metrics = build_judge(cfg, device)
    save_model(model, tok, here, card)
    metrics.to_csv(here / "metrics.csv", index=False)
    return model.to(device).eval(), tok, card


def load_training_metrics(cfg: LessonConfig) -> pd.DataFrame | None:
    """The full judge's training metrics, or None if none were kept for its key."""
    for folder in (judge_dir(cfg), SHIPPED_JUDGE_DIR):
        f = folder / "metrics.csv"
        if f.exists() and load_card(folder).get("key") == judge_key(cfg):
            return pd.read_csv(f)
    return None


def judge_reward_fn(judge, tokenizer, max_len: int = 256, device="cpu",
                    batch_size: int = 32):
    """A judge as ``reward_fn(prompts, responses) -> list[float]`` (notebooks 04, 05).

    It reads each (prompt, answer) exactly as it was trained to: the text
    re-tokenised with its own tokenizer, the answer stripped, EOS appended, the
    score taken at the EOS (:func:`rlhf_lessons.reward.score_texts`). So what PPO
    optimises and what the notebooks measure are the same number.
    """
    def reward_fn(prompts, responses):
        answers = [r.strip() for r in responses]
        return score_texts(judge, tokenizer, list(prompts), answers, max_len, device,
                           batch_size).tolist()

    return reward_fn


# ---------------------------------------------------------------------------
# PPO (notebook 04)
# ---------------------------------------------------------------------------
def ppo_prompts(cfg: LessonConfig, split: str, tokenizer, n: int = 0) -> list[str]:
    """HH-RLHF prompts for PPO: single-turn ("Human: ...\\n\\nAssistant:") and at
    most ``cfg.ppo.max_prompt_tokens`` tokens long, in file order.

    ``split="train"`` for the PPO prompts and ``"eval"`` for held-out evaluation
    only (nothing from eval is ever trained on). ``n`` > 0 keeps the first n.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}: PPO prompts come from 'train' or 'eval'")
    ds = load_all_hh(split, source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    out, seen = [], set()
    limit = cfg.ppo.max_prompt_tokens
    for p in ds["prompt"]:
        if p.count("Human:") != 1 or p in seen:
            continue
        if limit and len(tokenizer(p, add_special_tokens=False)["input_ids"]) > limit:
            continue
        seen.add(p)
        out.append(p)
        if n and len(out) >= n:
            break
    if not out:
        raise ValueError(f"no single-turn {split} prompts of <= {limit} tokens found")
    return out


def ppo_checkpoint(cfg: LessonConfig, name: str) -> Path:
    """Where notebook 04's PPO run ``name`` ("rule", "judge") resumes from."""
    return output_dir(NOTEBOOKS["ppo"], cfg) / f"ppo-{name}-{cfg.short_hash('model', 'ppo')}.pt"


# ---------------------------------------------------------------------------
# The proxy judge and the sweep (notebook 05)
# ---------------------------------------------------------------------------
def proxy_key(cfg: LessonConfig, hc: HackingConfig) -> str:
    return cfg.short_hash("model", "reward", drop=JUDGE_DEMO_FIELDS,
                          extra={"proxy_pairs": hc.proxy_pairs, "labels": hc.proxy_labels})


def load_proxy_judge(cfg: LessonConfig, hc: HackingConfig, device="cpu",
                     show_progress: bool = True, gold_model=None):
    """The proxy judge: the notebook-03 recipe on only ``hc.proxy_pairs`` TRAIN pairs.

    Returns ``(model, tokenizer, card)``. Same backbone and settings as the gold
    judge (:func:`load_judge`), which sees every train pair; the rows are a seeded
    random slice of the train split (never eval). With ``hc.proxy_labels == "gold"``
    (needs ``gold_model``) the gold judge decides which side of each pair is
    "chosen", as in Gao et al.: the proxy then imitates the gold judge from few
    examples. With "human" it keeps HH-RLHF's labels. Saved under
    ``outputs/05_.../proxy-<key>/`` and reloaded when the settings match.
    """
    if hc.proxy_pairs < 2:
        raise ValueError(f"proxy_pairs={hc.proxy_pairs}: need at least 2 train pairs")
    if hc.proxy_labels not in ("gold", "human"):
        raise ValueError(f"proxy_labels={hc.proxy_labels!r}: expected 'gold' or 'human'")
    if hc.proxy_labels == "gold" and gold_model is None:
        raise ValueError("proxy_labels='gold' needs gold_model (the gold judge)")
    key = proxy_key(cfg, hc)
    here = output_dir(NOTEBOOKS["hacking"], cfg) / f"proxy-{key}"
    if (here / "config.json").exists():
        say_once(f"⚖️ proxy judge: loaded the one made earlier (key {key})")
        return (*load_model(here, device, kind="judge"), load_card(here))
    say_once(f"⚖️ proxy judge: training it on {hc.proxy_pairs} train pairs (key {key})")
    ds = load_all_hh("train", source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    pick = np.random.default_rng(cfg.seed).permutation(len(ds))[:hc.proxy_pairs]
    rows = ds.select(sorted(int(i) for i in pick))
    backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    model = build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed + 1)
    del backbone
    pairs = prepare_pairs(rows, tok, cfg.reward.max_len, drop_identical=True,
                          allow_empty=True, name="proxy train slice")
    n_flipped = 0
    if hc.proxy_labels == "gold":
        r_chosen, r_rejected = score_pairs(gold_model, pairs, device, pad_id=tok.pad_token_id)
        n_flipped = relabel_by(pairs, r_chosen, r_rejected)
    rcfg = cfg.reward
    steps = rcfg.max_steps or max(1, math.ceil(len(pairs) / rcfg.batch_size * rcfg.epochs))
    t0 = time.perf_counter()
    metrics = train_reward_model(model, pairs, rcfg, device, seed=cfg.seed,
                                 pad_id=tok.pad_token_id, show_progress=show_progress,
                                 max_steps=steps)
    card = {"key": key, "role": "proxy", "train_pairs": len(pairs), "steps": steps,
            "labels": hc.proxy_labels, "n_flipped_by_gold": n_flipped,
            "train_wall_s": round(time.perf_counter() - t0, 1),
            "final_train_loss_avg10": float(metrics["loss"].dropna().tail(10).mean())}
    save_model(model, tok, here, card)
    return model.to(device).eval(), tok, card


def sweep_checkpoint(cfg: LessonConfig, hc: HackingConfig, name: str = "sweep") -> Path:
    """Where notebook 05's runs of these settings are saved."""
    key = cfg.short_hash("model", "reward", "ppo", drop=JUDGE_DEMO_FIELDS,
                         extra=dataclasses.asdict(hc))
    return output_dir(NOTEBOOKS["hacking"], cfg) / f"{name}-{key}.pt"


# ---------------------------------------------------------------------------
# Beyond PPO (notebook 07)
# ---------------------------------------------------------------------------
NOTEBOOKS["beyond"] = "07_beyond_ppo"


def beyond_checkpoint(cfg: LessonConfig, name: str, settings: dict) -> Path:
    """Where notebook 07's run ``name`` ("dpo", ...) is saved, keyed by its settings."""
    key = cfg.short_hash("model", "reward", "ppo", drop=JUDGE_DEMO_FIELDS, extra=settings)
    return output_dir(NOTEBOOKS["beyond"], cfg) / f"{name}-{key}.pt"
