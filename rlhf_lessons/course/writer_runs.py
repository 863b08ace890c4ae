"""Notebook 08's long work, loaded finished or built: the writer's answers before
and after each step, the hedge SFT, the simulated raters' judges and the GRPO run.

Each product is saved atomically under ``outputs/08_.../`` keyed by its settings
(:func:`rlhf_lessons.course.artefacts.load_or_build`), travels finished in
``data/runs/08_.../`` (``python scripts/ship.py runs``; checked against its sha256
before it is copied) and is rebuilt with ``RETRAIN = True``. Sampling a 135M model
on 2 CPU cores writes about one short answer a second, so the notebook reads the
answers behind its rates and trains only a short live demo.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import pandas as pd

from rlhf_lessons.core.config import LessonConfig, LoRAGRPOConfig, WriterConfig
from rlhf_lessons.core.data import load_all_hh, stratified_sample
from rlhf_lessons.core.writer import load_writer
from rlhf_lessons.course.artefacts import (
    course_tokenizer,
    keyed_path,
    load_judge,
    load_or_build,
)
from rlhf_lessons.measure import sounding_sure as S
from rlhf_lessons.measure.biased_raters import biased_labels, embed_answers, fit_linear_head
from rlhf_lessons.measure.rewrites import hedged
from rlhf_lessons.train.chat_sft import train_chat_sft
from rlhf_lessons.train.lora_grpo import add_lora, train_lora_grpo
from rlhf_lessons.train.prompts import ppo_prompt_table

NB = "writer"
HELPFUL = ("helpful-base", "helpful-online", "helpful-rejection-sampled")


def questions(cfg: LessonConfig, wc: WriterConfig) -> dict[str, list[S.Question]]:
    """``{"train", "eval"}``: seeded generated questions, no text in both; the
    hand-checked facts are held out (eval only)."""
    ev = S.verifiable_questions(wc.eval_per_kind, seed=cfg.seed + 2)
    tr = S.verifiable_questions(wc.train_per_kind, seed=cfg.seed + 1, facts=False,
                                exclude={q.text for q in ev})
    return {"train": tr, "eval": ev}


def hh_questions(cfg: LessonConfig, wc: WriterConfig) -> pd.DataFrame:
    """Held-out single-turn helpful HH-RLHF prompts as plain user messages
    (columns ``question``, ``subset``), stratified across the helpful subsets, seeded."""
    table = ppo_prompt_table(cfg, "eval", course_tokenizer())
    table = table[table["subset"].isin(HELPFUL)].reset_index(drop=True)
    table = table.iloc[stratified_sample(table["subset"], wc.hh_prompts, cfg.seed)]
    text = table["prompt"].str.replace("Human:", "", regex=False)
    text = text.str.replace("Assistant:", "", regex=False).str.strip()
    return pd.DataFrame({"question": text.tolist(), "subset": table["subset"].tolist()})


def chosen_answers(cfg: LessonConfig, questions: list[str]) -> list[str]:
    """The HH raters' chosen answer to each held-out question of :func:`hh_questions`."""
    ds = load_all_hh("eval", source=cfg.source, max_rows_per_subset=cfg.max_rows_per_subset)
    by_q = {}
    for p, c in zip(ds["prompt"], ds["chosen_response"]):
        q = p.replace("Human:", "").replace("Assistant:", "").strip()
        by_q.setdefault(q, c.strip())
    return [by_q[q] for q in questions]


def hh_prompt(question: str) -> str:
    """A user message in HH's format, as the course judge reads it."""
    return f"\n\nHuman: {question}\n\nAssistant:"


def _settings(wc: WriterConfig, *parts: str) -> dict:
    d = dataclasses.asdict(wc)
    return {k: d[k] for k in parts}


def _held_out(model, tok, cfg: LessonConfig, wc: WriterConfig, seed: int, tag: str) -> list:
    """A writer's answers to the held-out questions (one per question, sampled with ``seed``)."""
    return S.ask(model, tok, [q.text for q in questions(cfg, wc)["eval"]], wc.grpo, seed,
                 desc=f"{tag}: held-out questions")


def _with_beliefs(cfg: LessonConfig, wc: WriterConfig, answers: dict, who: str,
                  settings: dict, get_model, seed: int, tag: str) -> dict:
    """``answers`` plus the belief probes of writer ``who``: ``belief`` (its answers
    to the numeric held-out questions asked with a user's wrong belief),
    ``belief_questions`` and ``beliefs``. A product of its own (``<who>-beliefs``),
    keyed by the writer's ``settings`` and ``belief_questions``, so resizing the
    probes never resamples the held-out answers. ``get_model()`` gives
    ``(model, tokenizer)`` and is called only when the probes are built."""
    def build():
        model, tok = get_model()
        bq, beliefs, bprompts = S.belief_questions(questions(cfg, wc)["eval"],
                                                   wc.belief_questions, seed=cfg.seed + 3)
        return {"belief": S.ask(model, tok, bprompts, wc.grpo, seed, desc=f"{tag}: with a belief"),
                "belief_questions": [q.text for q in bq], "beliefs": beliefs}
    probes = load_or_build(cfg, f"{who}-beliefs",
                           {**settings, **_settings(wc, "belief_questions")}, build,
                           f"{tag}: belief probes", notebook=NB)
    return {**answers, **probes}


def base_answers(cfg: LessonConfig, wc: WriterConfig, device="cpu") -> dict:
    """The writer as shipped: answers to held-out questions, belief probes and
    helpful HH prompts."""
    @functools.cache
    def writer():
        model, tok, _ = load_writer(cfg, device, verbose=False)
        return model, tok

    def build():
        model, tok = writer()
        out = {"eval": _held_out(model, tok, cfg, wc, cfg.seed + 10, "the writer")}
        hh = hh_questions(cfg, wc)
        out["hh"] = hh.assign(answer=S.ask(model, tok, hh["question"].tolist(), wc.grpo,
                                           cfg.seed + 12, desc="the writer: HH prompts"))
        return out
    settings = _settings(wc, "eval_per_kind", "hh_prompts", "grpo")
    out = load_or_build(cfg, "base-answers", settings, build, "the writer's answers",
                        notebook=NB)
    return _with_beliefs(cfg, wc, out, "base", _settings(wc, "eval_per_kind", "grpo"), writer,
                         cfg.seed + 11, "the writer")


def lora_cfg(wc: WriterConfig) -> LoRAGRPOConfig:
    """The SFT's adapter shape in the form :func:`add_lora` reads."""
    return dataclasses.replace(wc.grpo, lora_r=wc.sft.lora_r, lora_alpha=wc.sft.lora_alpha)


def sft_writer(cfg: LessonConfig, wc: WriterConfig, device="cpu", show_progress=True):
    """``(model, tokenizer, run)``: the writer after the hedge SFT, its adapters
    merged into the weights (so GRPO's reference is this model, not the base)."""
    model, tok, _ = load_writer(cfg, device, verbose=False)
    model = add_lora(model, lora_cfg(wc), seed=cfg.seed)
    pairs = S.sft_targets(questions(cfg, wc)["train"])
    # the training questions exclude the held-out ones, so both sizes name the run
    ck = keyed_path(cfg, NB, "sft", _settings(wc, "eval_per_kind", "train_per_kind", "sft"))
    run = train_chat_sft(model, tok, pairs, wc.sft, seed=cfg.seed, checkpoint=ck,
                         show_progress=show_progress)
    return model.merge_and_unload().eval(), tok, run


def sft_answers(cfg: LessonConfig, wc: WriterConfig, model, tok) -> dict:
    """The SFT writer's answers: held-out questions, beliefs, training questions (for
    the raters' pairs) and ``wc.bon_samples`` answers each to ``wc.bon_questions``."""
    def build():
        qs = questions(cfg, wc)
        out = {"eval": _held_out(model, tok, cfg, wc, cfg.seed + 20, "after SFT")}
        out["train"] = S.ask(model, tok, [q.text for q in qs["train"]], wc.grpo,
                             cfg.seed + 22, desc="after SFT: training questions")
        rng = np.random.default_rng(cfg.seed + 4)
        pick = sorted(rng.choice(len(qs["eval"]), wc.bon_questions, replace=False).tolist())
        out["bon_index"] = pick
        out["bon"] = S.ask(model, tok, [qs["eval"][i].text for i in pick], wc.grpo,
                           cfg.seed + 23, n_per_prompt=wc.bon_samples,
                           desc="after SFT: best-of-N pools")
        return out
    out = load_or_build(cfg, "sft-answers", _settings(wc, "eval_per_kind", "train_per_kind",
                                                      "bon_questions", "bon_samples", "sft",
                                                      "grpo"),
                        build, "the SFT writer's answers", notebook=NB)
    return _with_beliefs(cfg, wc, out, "sft", _settings(wc, "eval_per_kind", "train_per_kind",
                                                        "sft", "grpo"),
                         lambda: (model, tok), cfg.seed + 21, "after SFT")


def rater_judges(cfg: LessonConfig, wc: WriterConfig, train_answers, device="cpu") -> dict:
    """Head-only judges fitted to simulated raters' labels (a simulation, as 06's).

    Pairs: each training answer in two versions, plain and hedged (same content).
    The honest rater (b = 0) prefers the hedged version when the answer is wrong
    and the plain one when it is right; a rater with bias b picks the
    sure-sounding (plain) version with probability b whatever it says, else as the
    honest rater. One linear head on the course judge's frozen features per b.
    Returns ``{b: head}``, the judge's tokenizer-side settings and the pairs' count.
    """
    qs = questions(cfg, wc)["train"]

    def build():
        judge, jtok = _judge(cfg, str(device))
        plain = [S.unhedged(a) for a in train_answers]
        prompts = [hh_prompt(q.text) for q in qs]
        xa = embed_answers(judge, jtok, prompts, plain, device=device)["x"]
        xb = embed_answers(judge, jtok, prompts, [hedged(a) for a in plain],
                           device=device)["x"]
        honest = np.array([S.is_correct(q, a) for q, a in zip(qs, plain)])  # plain wins
        heads = {}
        for b in (0.0, wc.rater_bias):
            rng = np.random.default_rng(cfg.seed + 5)
            labels = biased_labels(honest, np.ones(len(qs), bool), np.zeros(len(qs), bool),
                                   b, rng)
            heads[b] = fit_linear_head(xa, xb, labels, seed=cfg.seed)
        return {"heads": heads, "n_pairs": len(qs), "honest_plain_wins": float(honest.mean())}
    return load_or_build(cfg, "rater-judges", _settings(wc, "eval_per_kind", "train_per_kind",
                                                        "rater_bias", "sft", "grpo"),
                         build, "the simulated raters' judges", notebook=NB)


@functools.lru_cache(maxsize=2)
def _judge(cfg: LessonConfig, device="cpu"):
    """The course judge's backbone, loaded once per config (every score below reads it)."""
    judge, jtok, _ = load_judge(cfg, device, verbose=False)
    return judge, jtok


def judge_fn(cfg: LessonConfig, head: dict, norm: tuple[float, float], device="cpu"):
    """A fitted head as ``reward(questions, answers)`` in reference-std units
    (``norm``: the mean and std of its scores on the SFT writer's answers)."""
    judge, jtok = _judge(cfg, str(device))
    mean, std = norm

    def reward(qs, answers):
        x = embed_answers(judge, jtok, [hh_prompt(q) for q in qs], list(answers),
                          device=device)["x"]
        return ((((x / head["scale"]) @ head["w"]) - mean) / std).tolist()

    return reward


def scores(cfg: LessonConfig, head: dict, qs: list[str], answers: list[str],
           device="cpu") -> np.ndarray:
    """Raw scores ``(n,)`` of a head on (question, answer) pairs."""
    judge, jtok = _judge(cfg, str(device))
    x = embed_answers(judge, jtok, [hh_prompt(q) for q in qs], list(answers),
                      device=device)["x"]
    return (x / head["scale"]) @ head["w"]


def hedge_share(update, prompts, answers, scores) -> dict:
    """GRPO's extra log column: the share of an update's answers that hedge."""
    return {"hedged": float(np.mean([S.hedges(a) for a in answers]))}


def grpo_writer(cfg: LessonConfig, wc: WriterConfig, sft_model, tok, reward,
                device="cpu", n_updates: int | None = None, show_progress=True,
                on_update=hedge_share):
    """``(model, run)``: GRPO with fresh LoRA adapters on the SFT writer against
    ``reward`` (the biased judge), logging each update's hedge share.
    ``n_updates`` < ``wc.grpo.n_updates`` trains a separate short live run (the
    notebook's demo) that is never saved."""
    model = add_lora(copy.deepcopy(sft_model), wc.grpo, seed=cfg.seed)
    qs = [q.text for q in questions(cfg, wc)["train"]]
    if n_updates is not None and n_updates < wc.grpo.n_updates:
        gcfg = dataclasses.replace(wc.grpo, n_updates=n_updates)
        run = train_lora_grpo(model, tok, reward, qs, gcfg, seed=cfg.seed + 99,
                              show_progress=show_progress, on_update=on_update,
                              desc="GRPO (LoRA), live")
        return model, run
    ck = keyed_path(cfg, NB, "grpo", _settings(wc, "eval_per_kind", "train_per_kind",
                                               "rater_bias", "sft", "grpo"))
    run = train_lora_grpo(model, tok, reward, qs, wc.grpo, seed=cfg.seed, checkpoint=ck,
                          save_every=1, show_progress=show_progress, on_update=on_update)
    return model, run


def grpo_answers(cfg: LessonConfig, wc: WriterConfig, model, tok) -> dict:
    """The optimised writer's answers to the held-out questions and belief probes."""
    settings = _settings(wc, "eval_per_kind", "train_per_kind", "rater_bias", "sft", "grpo")

    def build():
        return {"eval": _held_out(model, tok, cfg, wc, cfg.seed + 30, "after GRPO")}
    out = load_or_build(cfg, "grpo-answers", settings, build, "the optimised writer's answers",
                        notebook=NB)
    return _with_beliefs(cfg, wc, out, "grpo", settings, lambda: (model, tok), cfg.seed + 31,
                         "after GRPO")
