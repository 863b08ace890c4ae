"""PPO's prompts: single-turn HH-RLHF prompts, in a seeded order or a stratified sample.

Notebooks 03 (the judge's normalisation) and 04 (PPO's training and held-out
prompts). Never the file's order: the bundled eval split starts with 232
harmless-base (red-team) rows, so its first prompts are all one subset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.data import load_all_hh, stratified_sample


def ppo_prompt_table(cfg: LessonConfig, split: str, tokenizer, n: int = 0,
                     exclude=()) -> pd.DataFrame:
    """HH-RLHF prompts for PPO with their subset: columns ``prompt``, ``subset``.

    Single-turn ("Human: ...\\n\\nAssistant:") prompts of at most
    ``cfg.ppo.max_prompt_tokens`` tokens, each text once, none in ``exclude``.
    ``split="train"`` for PPO and ``"eval"`` for held-out evaluation only (nothing
    from eval is ever trained on). Rows come in a seeded random order (``cfg.seed``),
    never the file's, whose first rows are all harmless-base; ``n`` > 0 keeps a
    sample of n drawn across the four subsets in proportion, seeded
    (:func:`rlhf_lessons.core.data.stratified_sample`).
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}: PPO prompts come from 'train' or 'eval'")
    ds = load_all_hh(split, source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    rows, seen = [], set(exclude)
    limit = cfg.ppo.max_prompt_tokens
    for p, sub in zip(ds["prompt"], ds["subset"]):
        if p.count("Human:") != 1 or p in seen:
            continue
        if limit and len(tokenizer(p, add_special_tokens=False)["input_ids"]) > limit:
            continue
        seen.add(p)
        rows.append((p, sub))
    if not rows:
        raise ValueError(f"no single-turn {split} prompts of <= {limit} tokens found")
    table = pd.DataFrame(rows, columns=["prompt", "subset"])
    if n:
        table = table.iloc[stratified_sample(table["subset"], n, cfg.seed)]
    order = np.random.default_rng(cfg.seed).permutation(len(table))
    return table.iloc[order].reset_index(drop=True)


def ppo_prompts(cfg: LessonConfig, split: str, tokenizer, n: int = 0,
                exclude=()) -> list[str]:
    """The prompts of :func:`ppo_prompt_table` (seeded order; ``n`` > 0: a
    stratified sample of n)."""
    return ppo_prompt_table(cfg, split, tokenizer, n, exclude)["prompt"].tolist()
