"""Budgets of the later lessons: how much of each experiment notebooks 05-08 run.

``RatersConfig`` (05), ``OptimisationConfig`` (06), ``DPOConfig``, ``GroupPGConfig``
``BeyondConfig`` (07) and ``GraduateConfig`` (08). Each has ``for_preset(cfg)``: seconds in the fast preset,
the notebook's CPU budget in the default one. The settings of the pipeline itself
(model, SFT, judge, PPO) and the presets live in :mod:`rlhf_lessons.config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rlhf_lessons.config import (
    ADVANTAGES,
    LessonConfig,
    PPOConfig,
    _non_negative,
    _positive,
    _rule,
    _whole,
)


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
    rater_biases: tuple[float, ...] = (0.0, 0.1, 0.25)
    n_train_prompts: int = 512  # TRAIN prompts PPO samples from
    n_eval_prompts: int = 128  # held-out prompts for rates, scores and samples
    eval_samples: int = 2  # answers per held-out prompt
    n_norm_prompts: int = 64  # TRAIN prompts for the reward normalisation
    ppo_updates: int = 12  # PPO against the most biased judge
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
    """DPO on preference pairs (notebook 07; :func:`rlhf_lessons.dpo.train_dpo`)."""

    beta: float = 0.1  # how hard the implicit KL leash pulls (TRL's default)
    lr: float = 5e-5
    batch_size: int = 16  # pairs per step (chosen and rejected in one forward)
    epochs: float = 1.0
    max_steps: int = 0  # 0 = as many as ``epochs`` needs
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _whole(self, "batch_size")
        _whole(self, "max_steps", least=0)
        _positive(self, "beta", "lr", "epochs")
        _non_negative(self, "max_grad_norm")




@dataclass(frozen=True)
class GroupPGConfig:
    """RLOO / GRPO (notebook 07; :func:`rlhf_lessons.group_pg.train_group_pg`).

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
    max_grad_norm: float = 1.0

    def __post_init__(self):
        _rule(self, "advantage", self.advantage in ADVANTAGES, f"one of {ADVANTAGES}")
        _whole(self, "group_size", least=2)
        _whole(self, "prompts_per_update", "n_updates", "inner_epochs")
        _positive(self, "lr", "cliprange")
        _non_negative(self, "kl_coef", "max_grad_norm")


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
    """Budgets of notebook 08 (the course's pairs and judge handed to TRL).
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
            return cls(n_train_pairs=32, n_eval_pairs=32, rm_batch=8, dpo_pairs=16,
                       grpo_steps=2, grpo_max_new_tokens=8, n_eval_prompts=8)
        return cls()
