"""A training run: the one contract every trainer of the course follows.

Pretraining and SFT (02), the judge (03), PPO (04), DPO and RLOO/GRPO (07), and
the writer's LoRA trainer all keep to it, in the style of TRL's config/trainer
split:

- **Config**: an algorithm-only frozen dataclass from :mod:`rlhf_lessons.core.config`
  (learning rate, weight decay, clipping, β, ...). A notebook's budgets (demo
  sizes, how many prompts it evaluates) live in ``cfg.budget`` and the later
  lessons' budget configs, never in a trainer's config, so resizing a widget
  never retrains a finished run.
- **Key**: :func:`run_key` — the config plus what else names the run (the seed,
  how much data, the total number of steps). A checkpoint made under another key
  is not resumed (one line says so).
- **Checkpoint**: one atomic file, written by :func:`save_checkpoint` every
  ``save_every`` steps (default :data:`SAVE_EVERY`) and at the end::

      {"key", "step", "total", "model", "optimizer", "metrics", "extra", "resume"}

  ``model`` and ``optimizer`` are state dicts; ``metrics`` the rows so far;
  ``extra`` what the finished run hands back (PPO's final β); ``resume`` what
  only an unfinished run needs (PPO's value model, the random generator, the
  prompt order). :func:`slim_for_shipping` drops ``optimizer`` and ``resume``.
- **Resume**: :func:`resume_checkpoint` is the one reader.
- **Metrics**: one row per step; every trainer's rows start with :data:`METRIC_KEYS`
  (``step``, ``learning_rate``, ``elapsed_s``) and use TRL's names for the rest
  (``loss``, ``objective/kl``, ``rewards/margins``, ...).
- **Return**: a :class:`TrainRun`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rlhf_lessons.core.utils import atomic_torch_save, load_checkpoint

METRIC_KEYS = ("step", "learning_rate", "elapsed_s")  # first in every trainer's rows
SAVE_EVERY = 10  # steps between checkpoints (and always the last step)
CHECKPOINT_KEYS = ("key", "step", "total", "model", "optimizer", "metrics", "extra", "resume")


@dataclass
class TrainRun:
    """What every trainer returns.

    ``metrics``: one row per step (columns start with :data:`METRIC_KEYS`).
    ``resumed_from``: the step training started at (0 = from scratch; ``total`` =
    a finished run was loaded and nothing trained). ``extra``: what the trainer
    hands back beyond the metrics (PPO: ``{"beta": final β}``; pretraining and
    SFT: their ``figures``). The model itself is trained in place.
    """

    metrics: pd.DataFrame
    total: int
    resumed_from: int = 0
    extra: dict = field(default_factory=dict)
    # seconds per phase of the steps (rlhf_lessons.core.phases.records_phases)
    phases: dict = field(default_factory=dict)

    @property
    def trained_now(self) -> bool:
        """True when this call trained at least one step."""
        return self.resumed_from < self.total

    def __getitem__(self, name: str) -> Any:
        """``run["beta"]``: an entry of ``extra``."""
        return self.extra[name]


def run_key(config, **what_else) -> dict:
    """The settings that name a run: the trainer's config (a dataclass) and what
    else changes its result (``seed``, ``n_pairs``, ``total``, ...)."""
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return {"config": cfg, **what_else}


def should_save(step: int, total: int, save_every: int = SAVE_EVERY) -> bool:
    """Save after ``step`` (1-based, just finished)? Every ``save_every`` and the last."""
    return step == total or (save_every > 0 and step % save_every == 0)


def save_checkpoint(path: str | Path | None, *, key: dict, step: int, total: int,
                    model: torch.nn.Module | dict, optimizer, metrics: list[dict],
                    extra: dict | None = None, resume: dict | None = None) -> None:
    """Write the run's state atomically (nothing half-written is ever left).

    ``model``: the module, or the state dict to keep when only part of it trains
    (LoRA adapters: :mod:`rlhf_lessons.train.lora_grpo`)."""
    if path is None:
        return
    state = model if isinstance(model, dict) else model.state_dict()
    atomic_torch_save({"key": key, "step": step, "total": total,
                       "model": state, "optimizer": optimizer.state_dict(),
                       "metrics": list(metrics), "extra": dict(extra or {}),
                       "resume": dict(resume or {})}, Path(path))


@dataclass
class Resumed:
    """A checkpoint read back: where to go on from, and what it carried."""

    step: int
    metrics: list[dict]
    extra: dict
    resume: dict  # empty for a weights-only (shipped) run
    weights_only: bool = False


def resume_checkpoint(path: str | Path | None, key: dict, total: int, *,
                      model: torch.nn.Module, optimizer=None, what: str = "training",
                      device="cpu", load_model=None) -> Resumed | None:
    """Load ``path`` into ``model`` (and ``optimizer``) if it holds a run of ``key``.

    Returns None when there is no checkpoint or it was made with other settings
    (one line says so). A weights-only state (shipped, see
    :func:`slim_for_shipping`) loads only when finished: it cannot resume. An
    unfinished run says "resuming {what} after step s/total" in one line.
    ``load_model(state_dict)`` replaces ``model.load_state_dict`` (LoRA adapters).
    """
    if path is None:
        return None
    state = load_checkpoint(path, None, what=what, device=device)
    if state is None:
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        print(f"a {what} checkpoint with other settings exists ({Path(path).name}); "
              "starting afresh")
        return None
    weights_only = bool(state.get("weights_only"))
    if weights_only and state["step"] < total:
        raise RuntimeError(f"{path}: a shipped run holds weights only and cannot resume "
                           "an unfinished run; delete it to train afresh")
    (load_model or model.load_state_dict)(state["model"])  # fp16 (shipped) -> fp32
    if optimizer is not None and not weights_only:
        optimizer.load_state_dict(state["optimizer"])
    if state["step"] < total:
        print(f"resuming {what} from its checkpoint after step {state['step']}/{total}")
    return Resumed(state["step"], list(state["metrics"]), dict(state.get("extra", {})),
                   dict(state.get("resume", {})), weights_only)


def slim_for_shipping(state: dict) -> dict:
    """A FINISHED run's state slimmed to ship: no optimizer moments, no resume-only
    state, the model's float tensors in fp16 (tied tensors stay tied, so a shared
    embedding is stored once). It loads like any checkpoint; it cannot resume."""
    if state["step"] < state["total"]:
        raise ValueError(f"step {state['step']}/{state['total']}: only a finished run ships")
    half: dict[int, torch.Tensor] = {}

    def to16(t):
        if not t.is_floating_point():
            return t
        return half.setdefault(t.data_ptr(), t.detach().to(torch.float16))

    out = {k: v for k, v in state.items() if k not in ("optimizer", "resume")}
    out["model"] = {k: to16(v) for k, v in state["model"].items()}
    out["weights_only"] = True
    return out


class Clock:
    """Seconds of training so far, carried over a resume: ``Clock(metrics)()``."""

    def __init__(self, metrics: list[dict] | None = None):
        before = metrics[-1].get("elapsed_s", 0.0) if metrics else 0.0
        self.t0 = time.perf_counter() - float(before)

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def metric_row(step: int, learning_rate: float, elapsed_s: float, **rest) -> dict:
    """One metrics row in the contract's order: step, learning_rate, elapsed_s, rest."""
    return {"step": int(step), "learning_rate": float(learning_rate),
            "elapsed_s": float(elapsed_s), **rest}


def finished(metrics: list[dict], total: int, resumed_from: int, **extra) -> TrainRun:
    """The :class:`TrainRun` of a trainer that has done its steps (the memory the run
    freed goes back to the operating system as its trainer returns:
    :func:`rlhf_lessons.core.memory.reuse_freed_memory`)."""
    return TrainRun(pd.DataFrame(metrics), total, resumed_from, dict(extra))
