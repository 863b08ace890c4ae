"""The course's pairs, models and judge handed to TRL (notebook 09, scripts/train_trl_gpt2.py).

TRL (Hugging Face's RLHF library, on top of ``transformers.Trainer`` and
``accelerate``) runs the recipe of notebooks 02-07 on many GPUs. This module holds
the little glue it needs and nothing it already does:

- :func:`quiet` and :func:`common_args`: TRL's trainers without their log noise;
- :func:`trl_reward` and :func:`rule_reward`: rewards in the signature TRL's
  GRPO/RLOO trainers call, ``reward_fn(prompts, completions, **kw) -> list[float]``;
- :func:`implicit_reward_accuracy`: DPO's held-out implicit-reward accuracy;
- :data:`METRIC_NAMES`: our metric names beside the ones TRL logs.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence

import datasets
import numpy as np
import pandas as pd
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.utils import logging as hf_logging

from rlhf_lessons.core.utils import progress
from rlhf_lessons.train.dpo import all_pair_logprobs, implicit_accuracy

# Messages that TRL, transformers and accelerate print for settings we chose on
# purpose (a CPU run, no chat template, a small model). Matched exactly, so any
# other warning still shows.
_EXPECTED = (
    r".*(padding_free|Padding-free|use_cpu|gradient_checkpointing|tokenizers|"
    r"chat template|generation_config|pad_token|max_length|no_cuda|"
    r"torch.utils.checkpoint|`torch_dtype`|loss_type|Trainer.tokenizer|"
    r"num_generations|generation_batch_size|model_init_kwargs).*"
)
_LOGGERS = ("trl", "transformers", "accelerate", "datasets", "torch.distributed")


def quiet() -> None:
    """Silence TRL's, transformers' and accelerate's info logs, dataset progress bars
    and the expected warnings (see ``_EXPECTED``) for the rest of the process."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ACCELERATE_DISABLE_RICH", "1")
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=_EXPECTED)


def common_args(output_dir, seed: int = 0, use_cpu: bool = True, log_every: int = 1) -> dict:
    """The settings every TRL config of notebook 09 shares: write nowhere but
    ``output_dir``, report to no tracker, no checkpoints, fp32 on the CPU, no bars."""
    return dict(output_dir=str(output_dir), report_to="none", save_strategy="no",
                logging_steps=log_every, use_cpu=use_cpu, bf16=False,
                activation_checkpointing=False, dataloader_num_workers=0, seed=seed,
                data_seed=seed, disable_tqdm=True)


class ProgressBar(TrainerCallback):
    """The course's progress bar (:func:`rlhf_lessons.core.utils.progress`) over a TRL
    trainer's optimisation steps, in place of TRL's own (which prints to stderr)."""

    def __init__(self, desc: str = "training"):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kw):
        self.bar = progress(total=state.max_steps, desc=self.desc)

    def on_step_end(self, args, state, control, **kw):
        self.bar.update(1)

    def on_train_end(self, args, state, control, **kw):
        self.bar.close()


def drop_printing(trainer, desc: str | None = None):
    """Remove the callbacks that print a dict per log step (we show a table instead);
    with ``desc``, add the course's progress bar under that name."""
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    if desc:
        trainer.add_callback(ProgressBar(desc))
    return trainer


def log_history(trainer):
    """TRL's log, one dict per logging step (``trainer.state.log_history``), as a
    DataFrame without the end-of-training summary row."""
    rows = [h for h in trainer.state.log_history if "train_runtime" not in h]
    return pd.DataFrame(rows)


def train_seconds(trainer) -> float:
    """How long ``trainer.train()`` took, from the summary row TRL logs at its end."""
    ends = [h["train_runtime"] for h in trainer.state.log_history if "train_runtime" in h]
    if not ends:
        raise ValueError("this trainer has not finished a train() yet: no train_runtime "
                         "in its log_history")
    return float(ends[-1])


# --------------------------------------------------------------------------
# 9.1 Our pairs in TRL's formats
# --------------------------------------------------------------------------
def fitting_rows(chosen: Sequence[str], rejected: Sequence[str], tok, max_len: int) -> np.ndarray:
    """Indices of the pairs TRL keeps whole: both transcripts differ and fit in
    ``max_len`` tokens with their EOS (TRL's trainers DROP longer pairs, or cut their
    answers; the course's trainer cuts the oldest turns instead)."""
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} chosen but {len(rejected)} rejected transcripts")
    if max_len < 2:
        raise ValueError(f"max_len={max_len}: must be >= 2")
    n_c = [len(x) for x in tok(list(chosen), add_special_tokens=False)["input_ids"]]
    n_r = [len(x) for x in tok(list(rejected), add_special_tokens=False)["input_ids"]]
    keep = [i for i, (a, b) in enumerate(zip(chosen, rejected))
            if a != b and max(n_c[i], n_r[i]) + 1 <= max_len]
    return np.asarray(keep, dtype=int)


# --------------------------------------------------------------------------
# 9.3 TRL's DPOTrainer
# --------------------------------------------------------------------------
def implicit_reward_accuracy(policy, ref_policy, pairs, beta: float, pad_id: int,
                             device="cpu", batch_size: int = 16, ref_logps=None,
                             policy_logps=None) -> dict:
    """How often DPO's implicit reward ``beta * (log pi - log pi_ref)`` of the answer
    ranks the chosen answer above the rejected one, on ``pairs`` (a
    :class:`rlhf_lessons.train.reward.PairSet`). A tie (identical pair, or policy ==
    reference) counts as wrong, as in TRL's ``rewards/accuracies``. The course's own
    :func:`rlhf_lessons.train.dpo.all_pair_logprobs` and :func:`~rlhf_lessons.train.dpo.implicit_accuracy`
    do the work, so TRL's policy is measured exactly as notebook 07's.

    Returns ``{"accuracy", "k", "n", "margin", "losses"}``; margin: (n,) reward
    differences; losses: (n,) DPO's loss per pair. ``ref_logps``: the reference's
    ``(chosen, rejected)`` log-probs from :func:`all_pair_logprobs` if already
    computed (the reference never trains, so they can be kept); ``policy_logps``
    likewise for the trained policy (kept with a finished run).
    """
    if ref_logps is None:
        ref_logps = all_pair_logprobs(ref_policy, pairs, pad_id, device, batch_size)
    if policy_logps is None:
        policy_logps = all_pair_logprobs(policy, pairs, pad_id, device, batch_size)
    out = implicit_accuracy(policy_logps, ref_logps, beta)
    return {"accuracy": out["accuracy"], "k": out["k"], "n": out["n"],
            "margin": out["margins"], "losses": out["losses"]}


# --------------------------------------------------------------------------
# 9.4 TRL's GRPOTrainer
# --------------------------------------------------------------------------
def trl_reward(score_fn: Callable[[list[str], list[str]], Sequence[float]], name: str):
    """``score_fn(prompts, answers)`` (e.g. :func:`rlhf_lessons.course.artefacts.judge_reward_fn`)
    in TRL's signature ``reward_fn(prompts, completions, **kw) -> list[float]``.

    TRL logs each reward under ``rewards/<__name__>/mean``, so ``name`` names it.
    """
    def reward_fn(prompts, completions, **kw):
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return [float(s) for s in score_fn(list(prompts), list(completions))]

    reward_fn.__name__ = name
    return reward_fn


def rule_reward(prompts, completions, max_words: int = 30, **kw) -> list[float]:
    """A rule anyone can check: 1.0 for an answer that is one clean turn (it has no
    ``Human:``), ends a sentence (``.``, ``!`` or ``?``) and has 3 to ``max_words``
    words; 0.5 for a clean turn that misses one of the two; else 0."""
    out = []
    for c in completions:
        text = c.strip()
        if "Human:" in text or not text:
            out.append(0.0)
            continue
        n = len(text.split())
        ends = text.endswith((".", "!", "?"))
        out.append(0.5 * ends + 0.5 * (3 <= n <= max_words))
    return out


# --------------------------------------------------------------------------
# 9.5 Reading a TRL log
# --------------------------------------------------------------------------
# (trainer, ours, TRL's log key, what it is). TRL's keys as TRL 1.16 logs them.
METRIC_NAMES = (
    ("reward", "loss", "loss", "Bradley-Terry loss -log σ(r_c - r_r), batch mean"),
    ("reward", "accuracy", "accuracy", "share of pairs with r_c > r_r"),
    ("reward", "margin", "margin", "mean of r_c - r_r"),
    ("reward", "r_chosen, r_rejected", "min_reward, mean_reward, max_reward",
     "the scores themselves (TRL pools both sides)"),
    ("dpo", "loss", "loss", "-log σ(β·(Δ log π_c - Δ log π_r))"),
    ("dpo", "dpo/accuracy", "rewards/accuracies",
     "share of pairs whose implicit reward ranks chosen first"),
    ("dpo", "dpo/margin", "rewards/margins", "implicit reward chosen - rejected"),
    ("dpo", "dpo/chosen_reward", "rewards/chosen", "β·(log π - log π_ref) of chosen"),
    ("ppo/grpo", "objective/scores", "reward",
     "mean reward of the sampled answers (all reward functions summed)"),
    ("ppo/grpo", "—", "rewards/<fn>/mean", "one reward function's mean"),
    ("ppo/grpo", "objective/kl", "kl", "KL to the reference; logged only when beta > 0 (GRPO's default is 0)"),
    ("ppo/grpo", "objective/entropy", "entropy", "mean per-token entropy"),
    ("ppo/grpo", "policy/clipfrac_avg", "clip_ratio/region_mean",
     "share of tokens where the ratio was clipped"),
    ("ppo/grpo", "answer length", "completions/mean_length", "answer tokens"),
    ("ppo/grpo", "—", "frac_reward_zero_std",
     "groups whose answers all scored the same (no signal)"),
)


def metric_names():
    """:data:`METRIC_NAMES` as a DataFrame: trainer, ours, TRL, meaning."""
    return pd.DataFrame(METRIC_NAMES, columns=["trainer", "ours", "TRL", "meaning"])
