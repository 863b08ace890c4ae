"""The course's artefacts: the one module that knows ``outputs/`` and ``data/models/``.

A notebook names a step ("the SFT policy", "the judge", "the proxy judge") and this
module finds it: an artefact made earlier with the same settings, else the copy the
course ships, else it builds one now with a progress bar. It says which, in one
line. Every artefact is keyed by the settings that made it, with the one key scheme
:meth:`rlhf_lessons.core.config.LessonConfig.short_hash`, so a changed setting never
silently reuses a stale model.

The pipeline's products:

- the small GPT-2, pretrained and after SFT (notebook 02): :func:`load_policy`;
- the judge (notebook 03): :func:`load_judge`, its training curves
  :func:`load_training_metrics`, and :func:`judge_reward_fn` for PPO;
- PPO's checkpoints (notebook 04): :func:`ppo_checkpoint` (its prompts:
  :mod:`rlhf_lessons.train.prompts`);
- the judge's scores of every eval pair, kept (notebook 05): :func:`judge_pair_scores`;
- the proxy judge, the cached results and the runs of notebook 06:
  :func:`load_proxy_judge`, :func:`load_or_build`, :func:`sweep_checkpoint`;
- each notebook's ``metrics.json``: :func:`update_metrics`.

Rerunning: what a run saved in ``outputs/`` (a finished PPO checkpoint, a judge
trained here, a demo run) is loaded on the next run, and one standard line says
so (:func:`loaded_or_trained`). ``RLHF_LESSONS_RETRAIN=1`` (``cfg.retrain``) makes
every such step train again: each checkpoint path goes through
:func:`retrain_path`, which clears it once per process. The models shipped in
``data/models/`` are not retrained by it: ``scripts/ship.py`` rebuilds them.
The finished runs shipped in ``data/runs/`` are checked against its
``SHA256SUMS`` before they are copied (:func:`from_shipped`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
import shutil
import textwrap
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rlhf_lessons.core.config import REPO_ROOT, LessonConfig, OptimisationConfig
from rlhf_lessons.core.data import DATA_DIR, load_all_hh
from rlhf_lessons.core.models import (
    CHECKSUMS,
    ArtefactError,
    build_gpt2,
    load_card,
    load_hub_gpt2,
    load_model,
    load_tokenizer,
    read_checksums,
    save_model,
    sha256_of,
)
from rlhf_lessons.core.utils import (
    CHECKPOINT_FIXES,
    atomic_torch_save,
    file_lock,
    remove_leftovers,
    say_once,
    use_bf16,
    write_json,
)
from rlhf_lessons.measure.overoptimisation import relabel_by
from rlhf_lessons.train.reward import (
    PairSet,
    build_reward_model,
    prepare_pairs,
    score_pairs,
    score_texts,
    train_reward_model,
)

MODELS_DIR = DATA_DIR / "models"
PRETRAINED_DIR = MODELS_DIR / "course-gpt2"
SFT_DIR = MODELS_DIR / "course-gpt2-sft"
SHIPPED_JUDGE_DIR = MODELS_DIR / "course-judge"
RUNS_DIR = DATA_DIR / "runs"  # finished runs of 06-07 that travel (scripts/ship.py runs)
NOTEBOOKS = {
    "pretrain": "02_small_gpt2_pretrain_and_sft",
    "judge": "03_reward_model_the_judge",
    "ppo": "04_ppo_with_the_judge",
    "raters": "05_what_raters_and_judges_pay_for",
    "optimisation": "06_what_optimisation_does_with_it",
    "beyond": "07_beyond_ppo",
    "writer": "08_the_lesson_in_a_model_that_can_write",
    "graduate": "09_graduate_to_trl",
}


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
# Loaded or trained now: the retrain switch
# ---------------------------------------------------------------------------
_FRESH: set[Path] = set()
RETRAIN_HINT = "set RLHF_LESSONS_RETRAIN=1 to retrain"
_SHIPPED: set[Path] = set()  # copied from data/runs/ by this process


def retrain_path(cfg: LessonConfig, path: str | Path) -> Path:
    """``path`` (a checkpoint file or a saved-model folder) as the step should use it.

    With ``cfg.retrain`` (``RLHF_LESSONS_RETRAIN=1``) the first call in a process
    deletes what is there, so the step trains from scratch; later calls in the same
    process keep what this run wrote. Without it, nothing is touched. Every
    checkpointed step of the course passes its path through here.
    """
    path = Path(path)
    if cfg.retrain and path not in _FRESH:
        _FRESH.add(path)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return path


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def loaded_or_trained(what: str, path: str | Path, trained_now: bool,
                      seconds: float | None = None, verb: str = "trained") -> str:
    """Print (and return) the one standard line that says where ``what`` came from.

    ``trained_now``: "trained <what> now (<s> s)"; else "loaded <what> from <path>
    (trained <date>, set RLHF_LESSONS_RETRAIN=1 to retrain)", the date being the
    file's. Notebooks call it after every step that may resume from ``outputs/``.
    """
    path = Path(path)
    if not trained_now and path in _SHIPPED:  # from_shipped said where it came from
        return ""
    if trained_now:
        took = f" ({seconds:.0f} s)" if seconds is not None else ""
        line = f"🛠️ {verb} {what} now{took}"
    else:
        when = (datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
                if path.exists() else "earlier")
        line = f"📦 loaded {what} from {_shown(path)} ({verb} {when}, {RETRAIN_HINT})"
    print(line, flush=True)
    return line


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
      with :mod:`rlhf_lessons.train.sft` first for a proper SFT policy).
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
    """A folder for one of notebook 02's short live runs (``name``: "pretrain_demo");
    cleared first with ``cfg.retrain``."""
    return retrain_path(cfg, output_dir(NOTEBOOKS["pretrain"], cfg) / name)


def pretrain_run_dir(cfg: LessonConfig) -> Path:
    """Where a pretraining run of these settings keeps its checkpoint."""
    return retrain_path(cfg, output_dir("pretrain", cfg) / cfg.short_hash("model", "pretrain"))


def sft_run_dir(cfg: LessonConfig) -> Path:
    """Where an SFT run of these settings keeps its checkpoint."""
    return retrain_path(cfg, output_dir("sft", cfg) / cfg.short_hash("model", "sft"))


# ---------------------------------------------------------------------------
# The judge (notebook 03)
# ---------------------------------------------------------------------------
def judge_key(cfg: LessonConfig) -> str:
    """The judge's settings key: preset, seed, model and reward settings (the
    notebooks' demo sizes live in ``cfg.budget`` and do not change the judge)."""
    return cfg.short_hash("model", "reward")


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
    ck = (retrain_path(cfg, output_dir(NOTEBOOKS["judge"], cfg) / f"judge-{key}.ckpt.pt")
          if checkpoint else None)
    t0 = time.perf_counter()
    metrics = train_reward_model(model, train, cfg.reward, device, seed=cfg.seed,
                                 checkpoint=ck, pad_id=tok.pad_token_id,
                                 show_progress=show_progress, save_every=20).metrics
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

    ``cfg.retrain`` skips 1 (the judge is trained again); the shipped judge of 2 is
    rebuilt by ``python scripts/ship.py judge`` only.
    """
    key = judge_key(cfg)
    here = retrain_path(cfg, judge_dir(cfg))
    if (here / "config.json").exists():
        if verbose:
            loaded_or_trained(f"the judge (key {key})", here, False)
        return (*load_model(here, device, kind="judge"), load_card(here))
    shipped = load_card(SHIPPED_JUDGE_DIR)
    if shipped.get("key") == key:
        if verbose:
            say_once(f"📦 loaded the judge shipped in {_shown(SHIPPED_JUDGE_DIR)} (key {key}, "
                     f"{shipped.get('steps')} steps; `python scripts/ship.py judge` "
                     "retrains it)")
        return (*load_model(SHIPPED_JUDGE_DIR, device, kind="judge"), shipped)
    if verbose:
        say_once(f"⚖️ judge: none saved for these settings (key {key}); training it now")
    t0 = time.perf_counter()
    model, tok, card, metrics = build_judge(cfg, device)
    save_model(model, tok, here, card)
    metrics.to_csv(here / "metrics.csv", index=False)
    if verbose:
        loaded_or_trained(f"the judge (key {key})", here, True, time.perf_counter() - t0)
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
    score taken at the EOS (:func:`rlhf_lessons.train.reward.score_texts`). So what PPO
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
def ppo_checkpoint(cfg: LessonConfig, name: str) -> Path:
    """Where notebook 04's PPO run ``name`` ("rule", "judge", "judge-seed2") resumes
    from (cleared first with ``cfg.retrain``). The rule-reward run and the second
    seed travel finished in ``data/runs/`` (:func:`from_shipped`): the default series
    trains one PPO run live, the one against the judge."""
    path = output_dir(NOTEBOOKS["ppo"], cfg) / f"ppo-{name}-{cfg.short_hash('model', 'ppo')}.pt"
    return from_shipped(cfg, retrain_path(cfg, path))


# ---------------------------------------------------------------------------
# The proxy judge, cached results and runs (notebook 06)
# ---------------------------------------------------------------------------
def proxy_key(cfg: LessonConfig, oc: OptimisationConfig) -> str:
    return cfg.short_hash("model", "reward",
                          extra={"proxy_pairs": oc.proxy_pairs, "labels": oc.proxy_labels})


def load_proxy_judge(cfg: LessonConfig, oc: OptimisationConfig, device="cpu",
                     show_progress: bool = True, gold_model=None):
    """The proxy judge: the notebook-03 recipe on only ``oc.proxy_pairs`` TRAIN pairs.

    Returns ``(model, tokenizer, card)``. Same backbone and settings as the gold
    judge (:func:`load_judge`), which sees every train pair; the rows are a seeded
    random slice of the train split (never eval). With ``oc.proxy_labels == "gold"``
    (needs ``gold_model``) the gold judge decides which side of each pair is
    "chosen", as in Gao et al.: the proxy then imitates the gold judge from few
    examples. With "human" it keeps HH-RLHF's labels. Saved under
    ``outputs/06_.../proxy-<key>/`` and reloaded when the settings match.
    """
    if oc.proxy_pairs < 2:
        raise ValueError(f"proxy_pairs={oc.proxy_pairs}: need at least 2 train pairs")
    if oc.proxy_labels not in ("gold", "human"):
        raise ValueError(f"proxy_labels={oc.proxy_labels!r}: expected 'gold' or 'human'")
    if oc.proxy_labels == "gold" and gold_model is None:
        raise ValueError("proxy_labels='gold' needs gold_model (the gold judge)")
    key = proxy_key(cfg, oc)
    here = from_shipped(cfg, retrain_path(
        cfg, output_dir(NOTEBOOKS["optimisation"], cfg) / f"proxy-{key}"))
    if (here / "config.json").exists():
        loaded_or_trained(f"the proxy judge (key {key})", here, False)
        try:
            return (*load_model(here, device, kind="judge"), load_card(here))
        except ArtefactError as err:
            raise ArtefactError(f"{err}. {CHECKPOINT_FIXES[here]}") from err
    say_once(f"⚖️ proxy judge: training it on {oc.proxy_pairs} train pairs (key {key})")
    ds = load_all_hh("train", source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    pick = np.random.default_rng(cfg.seed).permutation(len(ds))[:oc.proxy_pairs]
    rows = ds.select(sorted(int(i) for i in pick))
    backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    model = build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed + 1)
    del backbone
    pairs = prepare_pairs(rows, tok, cfg.reward.max_len, drop_identical=True,
                          allow_empty=True, name="proxy train slice")
    n_flipped = 0
    if oc.proxy_labels == "gold":
        r_chosen, r_rejected = score_pairs(gold_model, pairs, device, pad_id=tok.pad_token_id)
        n_flipped = relabel_by(pairs, r_chosen, r_rejected)
    rcfg = cfg.reward
    steps = rcfg.max_steps or max(1, math.ceil(len(pairs) / rcfg.batch_size * rcfg.epochs))
    t0 = time.perf_counter()
    metrics = train_reward_model(model, pairs, rcfg, device, seed=cfg.seed,
                                 pad_id=tok.pad_token_id, show_progress=show_progress,
                                 max_steps=steps).metrics
    card = {"key": key, "role": "proxy", "train_pairs": len(pairs), "steps": steps,
            "labels": oc.proxy_labels, "n_flipped_by_gold": n_flipped,
            "train_wall_s": round(time.perf_counter() - t0, 1),
            "final_train_loss_avg10": float(metrics["loss"].dropna().tail(10).mean())}
    save_model(model, tok, here, card)
    loaded_or_trained(f"the proxy judge (key {key})", here, True, card["train_wall_s"])
    return model.to(device).eval(), tok, card


class ShippedRunError(ArtefactError):
    """A file of ``data/runs/`` that is damaged (its sha256 differs from
    ``data/runs/SHA256SUMS``), listed but missing, or not listed: the message names the
    shipped file, how to restore it and how to train it live instead. Nothing of it
    is copied into ``outputs/``."""


def _live_instead(src: Path) -> str:
    return (f"Restore it with `git checkout -- {_shown(src)}`, or train it live instead: "
            "RLHF_LESSONS_RETRAIN=1, or `RETRAIN = True` in the notebook's first cell.")


def check_shipped(src: Path) -> dict[str, str]:
    """Check ``src`` (a file or folder of ``data/runs/``) against ``data/runs/SHA256SUMS``
    (written by ``scripts/ship.py runs``) before anything of it is copied or loaded.

    Returns the files it covers, ``{path inside data/runs: sha256}``; raises
    :class:`ShippedRunError` when one is truncated or garbled, listed but missing, or
    when ``src`` is not listed at all (it cannot be checked).
    """
    rel = src.relative_to(RUNS_DIR).as_posix()
    manifest = RUNS_DIR / CHECKSUMS
    try:
        sums = read_checksums(RUNS_DIR)
    except ArtefactError as err:
        raise ShippedRunError(f"{err}; {_live_instead(manifest)}") from err
    listed = {n: d for n, d in sums.items() if n == rel or n.startswith(f"{rel}/")}
    if not listed:
        raise ShippedRunError(f"{_shown(src)}: not listed in {_shown(manifest)}, so it "
                              f"cannot be checked and is not copied. {_live_instead(manifest)}")
    for name, digest in listed.items():
        f = RUNS_DIR / name
        if not f.is_file():
            raise ShippedRunError(f"{_shown(f)}: missing, though {_shown(manifest)} lists "
                                  f"it as part of the shipped {rel}. {_live_instead(src)}")
        if sha256_of(f) != digest:
            raise ShippedRunError(f"{_shown(f)}: this shipped file is damaged (truncated or "
                                  f"changed: its sha256 differs from {_shown(manifest)}), so "
                                  f"it is not copied. {_live_instead(src)}")
    return listed


def _shipped_took(rel: str) -> str:
    """How long the shipped run took, as data/runs/README.md says ("trained in 59 s")."""
    readme = RUNS_DIR / "README.md"
    m = re.search(rf"\| `{re.escape(rel)}` \|[^|\n]*trained in (\d+ s)",
                  readme.read_text() if readme.exists() else "")
    return f"it took {m.group(1)} when it was shipped; " if m else ""


def from_shipped(cfg: LessonConfig, path: str | Path) -> Path:
    """``path`` under ``outputs/``, first copied from ``data/runs/`` when a finished run
    of the same name and key travels with the repository and ``outputs/`` has none.

    The shipped file is checked against ``data/runs/SHA256SUMS`` first
    (:func:`check_shipped`): a damaged one raises :class:`ShippedRunError` and never
    reaches ``outputs/``. One listed there but gone from ``data/runs/`` is trained
    live, and one line says so. Never with ``cfg.retrain``; a copy whose settings
    no longer match is retrained over by its trainer, so ``data/`` is only ever
    read. Why: the default series must fit 15 minutes on 2 cores, and these runs
    would take minutes. A file of ``outputs/`` that later cannot be read is named
    with its origin and fix (``CHECKPOINT_FIXES``).
    """
    path = Path(path)
    src = RUNS_DIR / path.parent.name / path.name
    rel = f"{path.parent.name}/{path.name}"
    shipped = any(n == rel or n.startswith(f"{rel}/") for n in _manifest_names())
    CHECKPOINT_FIXES[path] = (
        f"It is {path.name} as shipped in {_shown(src)}, unless RLHF_LESSONS_RETRAIN=1 "
        "trained it here: delete it, and the next run copies the shipped file again, "
        "checked against data/runs/SHA256SUMS first" if shipped else
        "It was made here, not copied from data/runs/: delete it to start afresh")
    if cfg.retrain or path.exists():
        return path
    if not src.exists():
        if shipped:
            print(f"⚠️ {path.name}: listed in data/runs/SHA256SUMS but not in "
                  f"{_shown(src.parent)}: making it now ({_shipped_took(rel)}"
                  f"`git checkout -- {_shown(src)}` restores it)", flush=True)
        return path
    listed = check_shipped(src)
    tmp = path.with_name(f".{path.name}.shipping")
    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    if src.is_dir():  # only what the manifest lists and check_shipped checked
        for name in listed:
            (tmp / name[len(rel) + 1:]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(RUNS_DIR / name, tmp / name[len(rel) + 1:])
    else:
        shutil.copyfile(src, tmp)
    tmp.replace(path)
    _SHIPPED.add(path)
    print(f"📦 {path.name}: copied from {_shown(src)}, where it travels finished "
          f"(`python scripts/ship.py runs` rebuilds it; {RETRAIN_HINT})", flush=True)
    return path


def _manifest_names() -> list[str]:
    try:
        return list(read_checksums(RUNS_DIR))
    except ArtefactError:
        return []  # check_shipped names the garbled manifest when a file is copied


def keyed_path(cfg: LessonConfig, notebook: str, name: str, settings: dict) -> Path:
    """``outputs/<notebook>/<name>-<key>.pt``, keyed by ``settings`` plus the model, judge
    and PPO settings (a changed setting never reuses a stale run); cleared first with
    ``cfg.retrain``, else copied from ``data/runs/`` when shipped (:func:`from_shipped`).
    Notebook 06's runs and sweeps, notebook 07's runs."""
    key = cfg.short_hash("model", "reward", "ppo", extra=settings)
    path = retrain_path(cfg, output_dir(NOTEBOOKS[notebook], cfg) / f"{name}-{key}.pt")
    return from_shipped(cfg, path)


def sweep_checkpoint(cfg: LessonConfig, oc: OptimisationConfig, name: str = "sweep") -> Path:
    """Where notebook 06's run ``name`` of these settings is saved."""
    return keyed_path(cfg, "optimisation", name, dataclasses.asdict(oc))


def load_or_build(cfg: LessonConfig, name: str, settings: dict, build, what: str,
                  notebook: str = "optimisation"):
    """A finished result of a notebook (scores, embeddings, samples, a run), or ``build()``.

    Keyed by ``settings`` plus the model, judge and PPO settings, so a changed setting
    builds afresh; saved atomically under ``outputs/<notebook>/``; ``cfg.retrain``
    rebuilds it. Prints the standard line of :func:`loaded_or_trained`.
    """
    path = keyed_path(cfg, notebook, name, settings)
    if path.exists():
        try:
            out = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - torch raises many kinds; name the file
            raise ArtefactError(f"{path}: cannot read this saved result ({type(err).__name__}"
                                f": {err}). {CHECKPOINT_FIXES[path]}.") from err
        loaded_or_trained(what, path, False, verb="computed")
        return out
    t0 = time.perf_counter()
    out = build()
    atomic_torch_save(out, path)
    loaded_or_trained(what, path, True, time.perf_counter() - t0, verb="computed")
    return out


def weights_digest(model) -> str:
    """The first 12 hex of a sha256 over ``model``'s parameters and buffers (names,
    shapes, dtypes and bytes): keys a cached result to the exact weights it measured,
    so a rebuilt shipped model never reuses an old result."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:12]


def source_digest(fn) -> str:
    """The first 8 hex of a sha256 over ``fn``'s source text: a checkpoint named with
    it belongs to that exact function, so a reward a learner edits in a notebook
    trains afresh instead of loading the run of the old one. A function whose
    source cannot be read (a builtin, a lambda typed at a prompt) gets its name."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(textwrap.dedent(text).strip().encode()).hexdigest()[:8]


def judge_pair_scores(cfg: LessonConfig, model, tok, pairs: PairSet, device="cpu",
                      name: str = "eval") -> tuple[np.ndarray, np.ndarray]:
    """``(r_chosen, r_rejected)``: the judge's scores of ``pairs``, each ``(n,)``.

    Kept under ``outputs/05_.../`` (:func:`load_or_build`), keyed by the judge's
    settings, ``name`` and the pairs' texts, so a re-run of notebook 05 skips the
    forward passes and a changed judge or sample never reuses stale scores.
    """
    digest = texts_digest(pairs)

    def build():
        rc, rr = score_pairs(model, pairs, device, pad_id=tok.pad_token_id, show_progress=True)
        return np.asarray(rc, np.float64), np.asarray(rr, np.float64)

    return load_or_build(cfg, f"judge-scores-{name}", {"judge": judge_key(cfg), "texts": digest},
                         build, f"the judge's scores of the {len(pairs)} {name} pairs",
                         notebook="raters")


def beyond_checkpoint(cfg: LessonConfig, name: str, settings: dict) -> Path:
    """Where notebook 07's run ``name`` ("dpo", ...) is saved, keyed by its settings."""
    return keyed_path(cfg, "beyond", name, settings)


# TrainingArguments fields that say where a run writes, not what it computes.
_WHERE_FIELDS = ("output_dir", "run_name", "logging_dir")


def trl_run_settings(args, dataset, model, **extra) -> dict:
    """What a TRL run's result depends on, as ``settings`` for :func:`load_or_build`:
    TRL's and transformers' versions, every field of the config ``args`` except where
    it writes (``output_dir``...), a sha256 over the training rows ``dataset`` (a
    ``datasets.Dataset``) and the starting weights of ``model``
    (:func:`weights_digest`); ``extra`` adds what the result measures (the held-out
    pairs). So notebook 09's TRL runs ship finished, and a learner who changes a
    setting, the rows or the TRL version trains live."""
    import transformers
    import trl

    fields = {k: v for k, v in args.to_dict().items() if k not in _WHERE_FIELDS}
    rows = hashlib.sha256(json.dumps(dataset.to_list(), sort_keys=True,
                                     default=str).encode()).hexdigest()[:12]
    return {"trl": trl.__version__, "transformers": transformers.__version__,
            "args": fields, "rows": rows, "start": weights_digest(model), **extra}


def texts_digest(pairs: PairSet) -> str:
    """8 hex of a sha256 over the texts of ``pairs``: keys a result to the pairs it scored."""
    return hashlib.sha256("\x00".join(
        p + c + r for p, c, r in zip(pairs.prompt, pairs.chosen, pairs.rejected)
    ).encode()).hexdigest()[:8]
