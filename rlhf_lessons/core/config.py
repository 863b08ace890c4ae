"""Frozen configs and the three presets: ``fast``, ``default`` and ``gpu``.

This module is the ONLY place that reads the ``RLHF_LESSONS_*`` environment
variables, so a notebook's behaviour is fully described by the config it prints.

- ``fast``    tests and CI: tiny models, a handful of steps, seconds per notebook.
              Selected by ``RLHF_LESSONS_FAST=1``.
- ``default`` what a student runs offline on a laptop CPU: the course's own small
              GPT-2, bundled HH-RLHF data, results worth looking at in minutes.
- ``gpu``     the real ``gpt2`` and the full Hub datasets, on a GPU.
              Selected by ``RLHF_LESSONS_PRESET=gpu``.

Environment variables read here:

- ``RLHF_LESSONS_FAST=1``           selects the fast preset.
- ``RLHF_LESSONS_PRESET=name``      selects a preset by name (fast/default/gpu).
- ``RLHF_LESSONS_DEVICE=cpu|cuda|mps`` overrides the device auto-selection.
- ``RLHF_LESSONS_SOURCE=auto|hub|local`` where datasets come from.
- ``RLHF_LESSONS_OUTPUTS=path``     where run artefacts go (default ``outputs/``).
- ``RLHF_LESSONS_CACHE=path``       where downloaded model weights are kept, outside
                                    git (default ``~/.cache/rlhf-lessons``).
- ``RLHF_LESSONS_RETRAIN=1``        retrain what a notebook would otherwise load from
                                    ``outputs/`` (finished checkpoints, saved judges).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

PRESETS = ("fast", "default", "gpu")
REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("auto", "hub", "local")
KL_ESTIMATORS = ("k1", "k3")
LR_SCHEDULES = ("linear", "constant")
ADVANTAGES = ("grpo", "rloo")  # group baselines of notebook 07


def _rule(owner: object, name: str, ok: bool, what: str) -> None:
    """Raise a ValueError naming ``Class.field`` and its value unless ``ok``."""
    if not ok:
        value = getattr(owner, name)
        raise ValueError(f"{type(owner).__name__}.{name}={value!r}: must be {what}")


def _flag(value: str, name: str) -> bool:
    """An on/off environment variable: 1/true/yes/on, 0/false/no/off or empty."""
    v = value.strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={value!r}: expected 1/true/yes/on or 0/false/no/off")


def _device_ok(device: str) -> bool:
    return re.fullmatch(r"cpu|mps|cuda(:\d+)?", device) is not None


def _positive(owner, *names: str) -> None:
    for n in names:
        _rule(owner, n, isinstance(getattr(owner, n), (int, float)) and getattr(owner, n) > 0,
              "> 0")


def _non_negative(owner, *names: str) -> None:
    for n in names:
        _rule(owner, n, isinstance(getattr(owner, n), (int, float)) and getattr(owner, n) >= 0,
              ">= 0")


def _whole(owner, *names: str, least: int = 1) -> None:
    for n in names:
        v = getattr(owner, n)
        _rule(owner, n, isinstance(v, int) and not isinstance(v, bool) and v >= least,
              f"a whole number >= {least}")



@dataclass(frozen=True)
class ModelConfig:
    """Size of a GPT-2. ``name`` is a Hub id ("gpt2") or "course" for our own."""

    name: str = "course"
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 256

    def __post_init__(self):
        _whole(self, "n_layer", "n_embd", "n_head")
        _whole(self, "n_positions", least=2)
        _rule(self, "n_embd", self.n_embd % self.n_head == 0,
              f"a multiple of n_head={self.n_head}")


@dataclass(frozen=True)
class PretrainConfig:
    """Next-token pretraining of the course's small GPT-2 (notebook 02)."""

    vocab_size: int = 4096
    seq_len: int = 256
    batch_size: int = 16
    steps: int = 1500
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.1
    adam_beta2: float = 0.95  # nanoGPT's; TRL's default 0.999 is slower to adapt
    max_grad_norm: float = 1.0
    eval_every: int = 100
    eval_windows: int = 200  # held-out windows scored during training and in notebook 02
    max_minutes: float = 0.0  # 0 = no time limit; >0 stops early (and says so)

    def __post_init__(self):
        _whole(self, "vocab_size", least=2)
        _whole(self, "seq_len", least=2)
        _whole(self, "batch_size", "steps", "eval_every", "eval_windows")
        _whole(self, "warmup_steps", least=0)
        _positive(self, "lr")
        _non_negative(self, "weight_decay", "max_minutes", "max_grad_norm")
        _rule(self, "adam_beta2", 0 < self.adam_beta2 < 1, "in (0, 1)")


@dataclass(frozen=True)
class SFTConfig:
    """Instruction tuning on chosen answers (notebook 02)."""

    max_len: int = 256
    max_answer_tokens: int = 64  # train on answers that end (EOS) within this many tokens
    batch_size: int = 16
    epochs: float = 2.0
    lr: float = 3e-4
    warmup_steps: int = 20
    max_steps: int = 0  # 0 = as many as ``epochs`` needs
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _whole(self, "max_len", least=18)  # 16 tokens are kept for the answer's cut
        _whole(self, "max_answer_tokens", "max_steps", least=0)
        _whole(self, "batch_size")
        _whole(self, "warmup_steps", least=0)
        _positive(self, "epochs", "lr")
        _non_negative(self, "weight_decay", "max_grad_norm")


@dataclass(frozen=True)
class RewardConfig:
    """Reward-model ("judge") training (notebook 03)."""

    backbone: str = "pretrained"  # "pretrained" or "sft": which course model to start from
    max_len: int = 256  # tokens per side; longer texts are cut from the LEFT (keep the answer)
    batch_size: int = 16  # pairs per step (2x sequences per forward)
    epochs: float = 1.0  # lr decays linearly to 0 over these epochs
    lr: float = 1e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    margin: float = 0.0
    center_coef: float = 0.0  # TRL's center_rewards_coefficient (0.01 in arXiv 2312.09244)
    eval_every: int = 100
    max_steps: int = 0  # 0 = as many as ``epochs`` needs

    def __post_init__(self):
        _rule(self, "backbone", self.backbone in ("pretrained", "sft"), "'pretrained' or 'sft'")
        _whole(self, "max_len", least=2)
        _whole(self, "batch_size")
        _whole(self, "eval_every", "max_steps", least=0)
        _positive(self, "epochs", "lr")
        _non_negative(self, "max_grad_norm", "center_coef", "weight_decay")
        _rule(self, "margin", isinstance(self.margin, (int, float)), "a number")


@dataclass(frozen=True)
class SamplingConfig:
    """How a trainer samples answers: what PPO (04) and RLOO/GRPO (07) share.

    ``PPOConfig.sampling`` gives these settings of a PPO config; GRPO's run key
    holds only them, not the rest of the PPO config it is passed."""

    max_new_tokens: int = 32
    temperature: float = 0.7
    max_prompt_tokens: int = 64  # keep the END of longer prompts
    missing_eos_penalty: float = 1.0  # subtracted from the score of an answer with no EOS

    def __post_init__(self):
        _whole(self, "max_new_tokens")
        _whole(self, "max_prompt_tokens", least=0)
        _positive(self, "temperature")
        _non_negative(self, "missing_eos_penalty")


@dataclass(frozen=True)
class PPOConfig:
    """PPO fine-tuning with the judge (notebooks 04 and 05)."""

    n_updates: int = 16  # sized for notebook 04's 3-minute CPU budget
    rollout_batch: int = 32
    mini_batches: int = 2
    ppo_epochs: int = 2  # 4 in N-details; 2 halves the CPU cost per update
    max_new_tokens: int = 32
    temperature: float = 0.7
    lr: float = 7e-5  # a 4M-parameter model in 16 updates: larger than TRL's 3e-6
    kl_coef: float = 0.15  # beta_0 of the N-details: how hard the KL leash pulls
    kl_estimator: str = "k1"
    adaptive_kl_target: float = 0.0  # 0 = fixed beta
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    missing_eos_penalty: float = 1.0
    whiten_rewards: bool = False
    normalize_scores: bool = True  # judge score -> (s - mean) / std on reference samples
    kl_horizon: float = 10000.0  # adaptive KL controller horizon (episodes)
    max_grad_norm: float = 1.0
    lr_schedule: str = "linear"  # linear decay to 0 over the updates, or "constant"
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    max_prompt_tokens: int = 64  # keep the END of longer prompts

    def __post_init__(self):
        _whole(self, "n_updates", "rollout_batch", "mini_batches", "ppo_epochs",
               "max_new_tokens")
        _rule(self, "mini_batches", self.rollout_batch % self.mini_batches == 0,
              f"a divisor of rollout_batch={self.rollout_batch}")
        _whole(self, "max_prompt_tokens", least=0)
        _positive(self, "temperature", "lr", "cliprange", "cliprange_value", "kl_horizon",
                  "adam_eps")
        _non_negative(self, "kl_coef", "adaptive_kl_target", "vf_coef",
                      "missing_eos_penalty", "max_grad_norm", "weight_decay")
        for n in ("gamma", "lam"):
            _rule(self, n, isinstance(getattr(self, n), (int, float))
                  and 0 <= getattr(self, n) <= 1, "in [0, 1]")
        _rule(self, "kl_estimator", self.kl_estimator in KL_ESTIMATORS,
              f"one of {KL_ESTIMATORS}")
        _rule(self, "lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}")

    @property
    def sampling(self) -> SamplingConfig:
        """The sampling settings of this config (what GRPO shares with PPO)."""
        return SamplingConfig(self.max_new_tokens, self.temperature, self.max_prompt_tokens,
                              self.missing_eos_penalty)


@dataclass(frozen=True)
class BudgetConfig:
    """How much of each demo and measurement notebooks 02-04 run (not trainer settings).

    Kept out of every trainer's config, so resizing a demo never renames or
    retrains a finished run. The budgets of notebooks 05-09 are
    ``RatersConfig``, ``OptimisationConfig``, ``BeyondConfig``, ``WriterConfig`` and
    ``GraduateConfig``.
    """

    pretrain_demo_steps: int = 15  # notebook 02: the live pretraining demo
    sft_demo_steps: int = 10  # notebook 02: the live SFT demo
    sft_eval_prompts: int = 120  # notebook 02: held-out prompts for the EOS rate
    sft_new_tokens: int = 64  # notebook 02: tokens sampled per answer (demos, EOS rate)
    judge_demo_steps: int = 12  # notebook 03: the judge's short live training demo
    judge_probe_answers: int = 200  # notebook 03: eval answers rewritten in 3.8
    ppo_sanity_updates: int = 8  # notebook 04: the rule-reward sanity run
    ppo_explore_updates: int = 3  # notebook 04: each run of the KL explorer
    eval_prompts: int = 64  # notebook 04: held-out (eval split) prompts for before/after
    ref_prompts: int = 64  # notebooks 03-04: train prompts whose reference samples
    # normalise the judge

    def __post_init__(self):
        _whole(self, *(f.name for f in dataclasses.fields(self)))


@dataclass(frozen=True)
class LessonConfig:
    """Everything a notebook needs to know. Build it with ``LessonConfig.from_env()``."""

    preset: str = "default"
    seed: int = 0
    source: str = "local"  # auto / hub / local: where HH-RLHF and Dolly come from
    device: str | None = None  # None = auto-select (cuda, mps, cpu)
    outputs: Path = REPO_ROOT / "outputs"
    cache: Path = Path.home() / ".cache" / "rlhf-lessons"  # downloaded weights (the writer)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    # Rows per subset that a fast run reads at most (0 = all).
    max_rows_per_subset: int = 0
    # True: every checkpointed step trains again instead of loading what an earlier
    # run saved in ``outputs/`` (RLHF_LESSONS_RETRAIN=1; see rlhf_lessons.course.artefacts).
    retrain: bool = False

    def __post_init__(self):
        _rule(self, "preset", self.preset in PRESETS, f"one of {PRESETS}")
        _rule(self, "source", self.source in SOURCES, f"one of {SOURCES}")
        _rule(self, "seed", isinstance(self.seed, int) and not isinstance(self.seed, bool),
              "a whole number")
        _whole(self, "max_rows_per_subset", least=0)
        _rule(self, "retrain", isinstance(self.retrain, bool), "True or False")
        _rule(self, "device", self.device is None or _device_ok(self.device),
              "cpu, cuda, cuda:N or mps (or None to choose)")

    @classmethod
    def from_env(cls, **overrides) -> LessonConfig:
        """The preset chosen by the environment, with keyword overrides on top.

        Rules: ``RLHF_LESSONS_FAST`` is 1/true/yes/on or 0/false/no/off (or unset);
        it selects the fast preset and may not contradict ``RLHF_LESSONS_PRESET``.
        ``RLHF_LESSONS_DEVICE`` is cpu, cuda, cuda:N or mps (any case). A relative
        ``RLHF_LESSONS_OUTPUTS`` is taken from the current folder, once. Anything
        else is refused with an error naming the variable.
        """
        env = os.environ
        fast = _flag(env.get("RLHF_LESSONS_FAST", ""), "RLHF_LESSONS_FAST")
        asked = env.get("RLHF_LESSONS_PRESET", "").strip()
        if asked and asked not in PRESETS:
            raise ValueError(f"RLHF_LESSONS_PRESET={asked!r}: expected one of "
                             f"{', '.join(PRESETS)}")
        if fast and asked not in ("", "fast"):
            raise ValueError(f"RLHF_LESSONS_FAST and RLHF_LESSONS_PRESET={asked!r} disagree: "
                             "unset one of them")
        cfg = preset("fast" if fast else (asked or "default"))
        extra = {}
        device = env.get("RLHF_LESSONS_DEVICE", "").strip().lower()
        if device:
            if not _device_ok(device):
                hint = " (for an NVIDIA GPU write cuda)" if device == "gpu" else ""
                raise ValueError(f"RLHF_LESSONS_DEVICE={env['RLHF_LESSONS_DEVICE']!r}: "
                                 f"expected cpu, cuda, cuda:N or mps{hint}")
            extra["device"] = device
        src = env.get("RLHF_LESSONS_SOURCE", "").strip()
        if src:
            if src not in SOURCES:
                raise ValueError(f"RLHF_LESSONS_SOURCE={src!r}: expected auto, hub or local")
            extra["source"] = src
        if _flag(env.get("RLHF_LESSONS_RETRAIN", ""), "RLHF_LESSONS_RETRAIN"):
            extra["retrain"] = True
        if env.get("RLHF_LESSONS_OUTPUTS", "").strip():
            extra["outputs"] = Path(env["RLHF_LESSONS_OUTPUTS"].strip()).expanduser().resolve()
        if env.get("RLHF_LESSONS_CACHE", "").strip():
            extra["cache"] = Path(env["RLHF_LESSONS_CACHE"].strip()).expanduser().resolve()
        extra.update(overrides)
        return dataclasses.replace(cfg, **extra) if extra else cfg

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["outputs"] = str(self.outputs)
        d["cache"] = str(self.cache)
        return d

    def short_hash(self, *parts: str, drop: tuple[str, ...] = (),
                   extra: dict | None = None) -> str:
        """8 hex digits naming an artefact made from these config sections.

        Artefacts are keyed by the settings that made them, so changing a setting
        never silently reuses a stale model. ``parts`` are attribute names, e.g.
        ``cfg.short_hash("model", "sft")``; ``drop`` names fields of those sections
        that do not change the artefact (a notebook's demo sizes); ``extra`` adds
        settings from outside this config (e.g. notebook 05's budgets). This is the
        course's one key scheme (see :mod:`rlhf_lessons.course.artefacts`).
        """
        d = self.to_dict()
        blob = {"preset": self.preset, "seed": self.seed}
        for p in parts:
            section = d[p]
            if isinstance(section, dict):
                section = {k: v for k, v in section.items() if k not in drop}
            blob[p] = section
        if extra:
            blob["extra"] = extra
        raw = json.dumps(blob, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:8]


def preset(name: str) -> LessonConfig:
    """The named preset: "fast", "default" or "gpu"."""
    if name == "default":
        return LessonConfig(preset="default", source="local")
    if name == "fast":
        return LessonConfig(
            preset="fast",
            source="local",
            device="cpu",
            model=ModelConfig(name="tiny", n_layer=2, n_embd=64, n_head=2, n_positions=128),
            pretrain=PretrainConfig(
                vocab_size=512, seq_len=64, batch_size=8, steps=20, eval_every=10,
                warmup_steps=2, eval_windows=8,
            ),
            sft=SFTConfig(max_len=96, batch_size=8, max_steps=12, warmup_steps=2),
            reward=RewardConfig(max_len=96, batch_size=8, max_steps=12, eval_every=6),
            ppo=PPOConfig(n_updates=4, rollout_batch=8, mini_batches=2, ppo_epochs=2,
                          max_new_tokens=12, lr=1e-4, max_prompt_tokens=32),
            budget=BudgetConfig(pretrain_demo_steps=3, sft_demo_steps=3, sft_eval_prompts=8,
                                sft_new_tokens=16, judge_demo_steps=4,
                                judge_probe_answers=16, ppo_sanity_updates=3,
                                ppo_explore_updates=2, eval_prompts=8, ref_prompts=8),
            max_rows_per_subset=200,
        )
    if name == "gpu":
        return LessonConfig(
            preset="gpu",
            source="auto",
            model=ModelConfig(name="gpt2", n_layer=12, n_embd=768, n_head=12,
                              n_positions=1024),
            sft=SFTConfig(max_len=512, batch_size=16, lr=5e-5),
            reward=RewardConfig(max_len=512, batch_size=16, lr=2e-5),
            ppo=PPOConfig(n_updates=100, rollout_batch=64, max_new_tokens=48, lr=3e-6),
        )
    raise ValueError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class OptimisationConfig:
    """Budgets of notebook 06. ``OptimisationConfig.for_preset(cfg)`` picks them.

    The PPO settings themselves (batch, tokens, clipping, beta) come from
    ``cfg.ppo``; these only say how much of each experiment to run.
    """

    n_effect_answers: int = 96  # held-out answers rewritten to measure delta (6.1)
    n_boot: int = 1000  # bootstrap resamples for every interval
    n_pool_prompts: int = 8  # held-out prompts with a pool of human answers (6.2)
    pool_size: int = 64  # candidates per pool: N runs up to this
    p0: float = 0.5  # chance that a candidate carries the feature (6.2)
    n_bon_prompts: int = 24  # held-out prompts for Gao's best-of-n curve (6.4)
    bon_k: int = 32  # policy samples per prompt (n <= bon_k)
    proxy_pairs: int = 384  # TRAIN pairs the proxy judge sees (gold: all of them)
    proxy_labels: str = "gold"  # "gold": the gold judge labels the slice (Gao et al.)
    rater_pairs: int = 800  # single-turn TRAIN pairs the simulated raters label (6.5)
    rater_eval_pairs: int = 200  # single-turn held-out pairs: accuracy and judge calibration
    marker_share: float = 0.5  # share of answers given the marker opener
    # b = 0.8 pays enough for the marker that the tilt optimum lies far beyond the
    # noise of n_eval_prompts x eval_samples answers: the experiment can decide
    rater_biases: tuple[float, ...] = (0.0, 0.25, 0.8)
    n_train_prompts: int = 512  # TRAIN prompts PPO samples from
    n_eval_prompts: int = 128  # held-out prompts for rates, scores and samples
    eval_samples: int = 2  # answers per held-out prompt
    n_norm_prompts: int = 64  # TRAIN prompts for the reward normalisation
    ppo_updates: int = 40  # PPO against the most biased judge
    ppo_lr: float = 1e-4
    n_calib_texts: int = 48  # held-out transcripts for next-token calibration (6.6)
    # Smaller rollouts and fewer epochs per update than notebook 04 keep the
    # lesson within its CPU budget.
    rollout_batch: int = 16
    ppo_epochs: int = 2

    def __post_init__(self):
        _whole(self, "n_effect_answers", "n_pool_prompts", "pool_size", "n_bon_prompts",
               "bon_k", "proxy_pairs", "rater_pairs", "rater_eval_pairs", "n_train_prompts",
               "n_eval_prompts", "eval_samples", "n_norm_prompts", "ppo_updates",
               "n_calib_texts", "rollout_batch", "ppo_epochs")
        _whole(self, "n_boot", least=0)
        _positive(self, "ppo_lr")
        _rule(self, "p0", 0 < self.p0 < 1, "a probability strictly between 0 and 1")
        _rule(self, "marker_share", 0 < self.marker_share < 1,
              "a probability strictly between 0 and 1")
        _rule(self, "rater_biases", len(self.rater_biases) > 0
              and all(isinstance(b, (int, float)) and 0 <= b <= 1 for b in self.rater_biases),
              "a non-empty tuple of numbers in [0, 1]")
        _rule(self, "proxy_labels", self.proxy_labels in ("gold", "human"), "'gold' or 'human'")

    def ppo_config(self, base: PPOConfig, lr: float) -> PPOConfig:
        """``base`` (``cfg.ppo``) with this notebook's rollout size, epochs and ``lr``."""
        mb = max(1, min(base.mini_batches, self.rollout_batch))
        while self.rollout_batch % mb:
            mb -= 1
        return dataclasses.replace(base, rollout_batch=self.rollout_batch,
                                   mini_batches=mb, ppo_epochs=self.ppo_epochs, lr=lr)

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> OptimisationConfig:
        """Small budgets for the fast preset (tests: seconds), full ones otherwise."""
        if cfg.preset == "fast":
            return cls(n_effect_answers=16, n_boot=200, n_pool_prompts=4, pool_size=8,
                       n_bon_prompts=4, bon_k=8, proxy_pairs=64, rater_pairs=64,
                       rater_eval_pairs=32, n_train_prompts=32, n_eval_prompts=8,
                       n_norm_prompts=8, ppo_updates=2, n_calib_texts=8, rollout_batch=8)
        return cls()


@dataclass(frozen=True)
class RatersConfig:
    """Budgets of notebook 05 (what raters and judges pay for).

    ``RatersConfig.for_preset(cfg)`` picks them. The regressions are numpy and
    fast; the judge's forward passes set the time.
    """

    l1: float = 2e-3  # Laplace-prior strength: mean log-loss + l1 * sum |w|
    n_boot_reg: int = 150  # bootstrap refits of each regression (pairs resampled)
    n_iter: int = 400  # FISTA steps per fit (a bootstrap refit, warm, a quarter)
    n_judge_pairs: int = 0  # eval pairs the judge's regression uses (0 = all)
    n_probe_answers: int = 120  # eval answers, stratified, for rewrites and probes
    n_boot: int = 1000  # bootstrap resamples of the paired differences
    n_widget_real: int = 12  # "be the rater": real HH pairs
    n_widget_confident: int = 4  # ... confident vs hedged, one answer
    n_widget_flattering: int = 4  # ... flattering vs plain, one answer

    def __post_init__(self):
        _positive(self, "l1")
        _whole(self, "n_iter", "n_probe_answers", "n_widget_real")
        _whole(self, "n_boot_reg", "n_boot", "n_judge_pairs", "n_widget_confident",
               "n_widget_flattering", least=0)

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> RatersConfig:
        """Small budgets for the fast preset (tests: seconds), full ones otherwise."""
        if cfg.preset == "fast":
            return cls(n_boot_reg=10, n_iter=100, n_judge_pairs=96, n_probe_answers=16,
                       n_boot=200)
        return cls()


@dataclass(frozen=True)
class DPOConfig:
    """DPO on preference pairs (notebook 07; :func:`rlhf_lessons.train.dpo.train_dpo`)."""

    beta: float = 0.1  # how hard the implicit KL leash pulls (TRL's default)
    lr: float = 5e-5
    batch_size: int = 16  # pairs per step (chosen and rejected in one forward)
    epochs: float = 1.0
    max_steps: int = 0  # 0 = as many as ``epochs`` needs
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _whole(self, "batch_size")
        _whole(self, "max_steps", least=0)
        _positive(self, "beta", "lr", "epochs")
        _non_negative(self, "max_grad_norm", "weight_decay")


@dataclass(frozen=True)
class GroupPGConfig:
    """RLOO / GRPO (notebook 07; :func:`rlhf_lessons.train.group_pg.train_group_pg`).

    Sampling (temperature, new tokens, prompt length, missing-EOS penalty) comes
    from the ``PPOConfig`` passed beside it."""

    advantage: str = "grpo"  # "grpo": (r - mean) / std; "rloo": r - mean of the others
    group_size: int = 4  # G answers per prompt
    prompts_per_update: int = 8  # so G * 8 episodes per update
    n_updates: int = 16
    inner_epochs: int = 1  # passes over each rollout (1: the ratio stays 1, no clip)
    lr: float = 5e-5
    kl_coef: float = 0.05  # GRPO's beta on the k3 KL term; 0 = no KL term
    cliprange: float = 0.2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _rule(self, "advantage", self.advantage in ADVANTAGES, f"one of {ADVANTAGES}")
        _whole(self, "group_size", least=2)
        _whole(self, "prompts_per_update", "n_updates", "inner_epochs")
        _positive(self, "lr", "cliprange")
        _non_negative(self, "kl_coef", "max_grad_norm", "weight_decay")


@dataclass(frozen=True)
class LoRAGRPOConfig:
    """GRPO on a chat model through LoRA adapters (the writer notebook;
    :func:`rlhf_lessons.train.lora_grpo.train_lora_grpo`).

    Algorithm settings only: the writer notebook's budgets (how many answers it
    measures) are not here. The reference policy is the same model with its
    adapters switched off, so no second copy of the weights is held.
    """

    group_size: int = 4  # G answers per prompt
    prompts_per_update: int = 4
    n_updates: int = 24
    lr: float = 3e-4  # LoRA trains few weights: a larger lr than full fine-tuning
    kl_coef: float = 0.05  # beta on the k3 KL to the adapter-free model
    cliprange: float = 0.2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.9

    def __post_init__(self):
        _whole(self, "group_size", least=2)
        _whole(self, "prompts_per_update", "n_updates", "lora_r", "max_new_tokens")
        _positive(self, "lr", "cliprange", "lora_alpha", "temperature")
        _non_negative(self, "kl_coef", "weight_decay", "max_grad_norm")
        _rule(self, "top_p", isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1,
              "in (0, 1]")
        _rule(self, "lora_targets", len(self.lora_targets) > 0, "at least one module name")


@dataclass(frozen=True)
class ChatSFTConfig:
    """SFT of a chat model through LoRA adapters (the writer notebook;
    :func:`rlhf_lessons.train.chat_sft.train_chat_sft`)."""

    steps: int = 20
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32

    def __post_init__(self):
        _whole(self, "steps", "batch_size", "lora_r")
        _positive(self, "lr", "lora_alpha")
        _non_negative(self, "weight_decay", "max_grad_norm")


@dataclass(frozen=True)
class WriterConfig:
    """Budgets of notebook 08 (the writer): how many questions and answers each
    measurement uses, the simulated raters' bias, and the two trainers' configs.
    ``WriterConfig.for_preset(cfg)``: seconds in the fast preset; the shipped
    runs' sizes otherwise (the notebook loads them; RETRAIN rebuilds them)."""

    # 4 x 90 + 24 facts = 384 held-out questions: a rate's 95% interval is at most
    # +-0.05 wide (1.96 * sqrt(0.25 / 384) = 0.050)
    eval_per_kind: int = 90  # held-out questions of each generated kind (+ 24 facts)
    train_per_kind: int = 32  # training questions of each kind (SFT, judge, GRPO)
    # every numeric held-out question (378 of the 384) asked with a wrong belief: the
    # agreement rate's interval at most +-0.05 (1.96 * sqrt(0.65 * 0.35 / 378) = 0.048)
    belief_questions: int = 378
    bon_questions: int = 8  # held-out questions for best-of-N
    bon_samples: int = 16  # answers per question behind best-of-N (N = 1, 4, 16)
    hh_prompts: int = 24  # held-out single-turn helpful HH prompts (meet the writer)
    rater_bias: float = 0.8  # b: how often a rater picks the sure-sounding answer anyway
    sft: ChatSFTConfig = field(default_factory=ChatSFTConfig)
    grpo: LoRAGRPOConfig = field(default_factory=lambda: LoRAGRPOConfig(
        n_updates=16, prompts_per_update=4, group_size=4, max_new_tokens=32))
    live_updates: int = 1  # GRPO updates trained live in the notebook (the demo)

    def __post_init__(self):
        _whole(self, "eval_per_kind", "train_per_kind", "belief_questions",
               "bon_questions", "hh_prompts", "live_updates")
        _whole(self, "bon_samples", least=4)
        _rule(self, "rater_bias", 0 <= self.rater_bias <= 1, "a probability in [0, 1]")

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> WriterConfig:
        """Seconds in the fast preset; the shipped runs' sizes otherwise."""
        if cfg.preset == "fast":
            return cls(eval_per_kind=2, train_per_kind=4, belief_questions=4,
                       bon_questions=2, bon_samples=4, hh_prompts=4,
                       sft=ChatSFTConfig(steps=2, batch_size=4, lora_r=4, lora_alpha=8),
                       grpo=LoRAGRPOConfig(n_updates=2, prompts_per_update=2, group_size=2,
                                           max_new_tokens=6, lora_r=4, lora_alpha=8))
        return cls()


@dataclass(frozen=True)
class BeyondConfig:
    """Budgets of notebook 07 (beyond PPO). ``BeyondConfig.for_preset(cfg)``."""

    dpo: DPOConfig = field(default_factory=DPOConfig)
    group: GroupPGConfig = field(default_factory=GroupPGConfig)
    n_dpo_pairs: int = 640  # TRAIN pairs DPO learns from (40 steps of 16)
    dpo_max_len: int = 128  # tokens per side for DPO: the prompt's end, the answer's start
    n_acc_pairs: int = 300  # held-out pairs for the implicit-reward accuracy
    n_eval_prompts: int = 48  # held-out prompts of the frontier (stratified)
    n_train_prompts: int = 512  # TRAIN prompts PPO and GRPO sample from
    n_norm_prompts: int = 64  # TRAIN prompts for the reward normalisation
    bon_n: int = 8  # best-of-N
    ppo_updates: int = 10  # the short PPO run for the frontier
    widget_samples: int = 8  # answers per prompt behind the group-size widget

    def __post_init__(self):
        _whole(self, "n_dpo_pairs", "n_acc_pairs", "n_eval_prompts", "n_train_prompts",
               "n_norm_prompts", "bon_n", "ppo_updates")
        _whole(self, "widget_samples", least=2)
        _whole(self, "dpo_max_len", least=18)

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> BeyondConfig:
        """Seconds in the fast preset; the notebook's 6-minute budget otherwise."""
        if cfg.preset == "fast":
            return cls(DPOConfig(lr=1e-3, batch_size=8, max_steps=6),
                       GroupPGConfig(group_size=4, prompts_per_update=2, n_updates=3,
                                     lr=1e-3),
                       n_dpo_pairs=48, n_acc_pairs=16, n_eval_prompts=8,
                       n_train_prompts=16, n_norm_prompts=8, bon_n=4, ppo_updates=2, dpo_max_len=96,
                       widget_samples=4)
        return cls()


@dataclass(frozen=True)
class GraduateConfig:
    """Budgets of notebook 09 (the course's pairs and judge handed to TRL).
    ``GraduateConfig.for_preset(cfg)`` picks them; lengths come from ``cfg.reward``."""

    # sizes restored after the series got faster (cut to 256 / 192 / 96 for a while,
    # where TRL's RM and DPO could not be told from chance)
    n_train_pairs: int = 384  # TRAIN pairs for TRL's RewardTrainer (1 epoch)
    n_eval_pairs: int = 256  # held-out pairs: TRL's RM, our judge and DPO on the same
    rm_batch: int = 16
    rm_lr: float = 1e-4
    dpo_pairs: int = 128  # TRAIN pairs for DPOTrainer (1 epoch)
    dpo_batch: int = 8
    dpo_lr: float = 1e-4
    dpo_beta: float = 0.1
    grpo_steps: int = 16
    grpo_generations: int = 4  # answers per prompt (the group)
    grpo_batch: int = 8  # answers per step: grpo_batch / grpo_generations prompts
    grpo_max_new_tokens: int = 24
    grpo_lr: float = 1e-4  # as notebook 05's short runs: a few steps must move
    n_eval_prompts: int = 32  # held-out prompts: the judge's score before and after GRPO

    def __post_init__(self):
        _whole(self, "n_train_pairs", "n_eval_pairs", "rm_batch", "dpo_pairs", "dpo_batch",
               "grpo_steps", "grpo_generations", "grpo_batch", "grpo_max_new_tokens",
               "n_eval_prompts")
        _positive(self, "rm_lr", "dpo_lr", "dpo_beta", "grpo_lr")
        _rule(self, "grpo_generations", self.grpo_generations >= 2, ">= 2 (a group)")
        _rule(self, "grpo_batch", self.grpo_batch % self.grpo_generations == 0,
              "a multiple of grpo_generations")

    @classmethod
    def for_preset(cls, cfg: LessonConfig) -> GraduateConfig:
        """Small budgets for the fast preset (tests: seconds), full ones otherwise."""
        if cfg.preset == "fast":
            # at least two logged points per training curve (the verdicts check them)
            return cls(n_train_pairs=32, n_eval_pairs=32, rm_batch=8, dpo_pairs=32,
                       grpo_steps=2, grpo_max_new_tokens=8, n_eval_prompts=8)
        return cls()
