"""Our LoRA GRPO against TRL 1.16.0's GRPOTrainer with peft, at the writer's scale (issue 29).

The work is notebook 08's GRPO (``WriterConfig.grpo``) on SmolLM2-135M-Instruct in fp32
through LoRA (r 16, alpha 32 on q/k/v/o_proj): 4 of the notebook's training questions
per update, 4 answers each, 32 new tokens at temperature 0.7 and top-p 0.9, lr 3e-4,
beta 0.05. Every number, the questions, the reward and the held-out score come from
``peer/workload_writer.py`` (its docstring says why the reward is the notebook's
correctness check minus 0.02 per word rather than the notebook's learned judge). Our
side is :func:`rlhf_lessons.train.lora_grpo.train_lora_grpo` on :func:`add_lora`'s
adapters, called as the notebook calls it; TRL's is ``peer/trl_writer_grpo.py`` in the
``trl-1.16.0-peft`` venv (``peers.ensure_venv`` with ``PEER_EXTRA_PINS``), both on the
same weights folder (the course's cache, ``rlhf_lessons.core.writer.writer_dir``,
checked against its SHA256SUMS here first).

Matched on both sides: the updates, answers per update, group size, lengths, sampling,
lr (linear to 0, no warm-up), AdamW without weight decay, grad clip 1.0, epsilon 0.2,
one optimiser step per batch, group-std advantages (eps 1e-4), the k3 KL to the
adapter-free model at beta 0.05, and the loss normalisation: ours is the mean over all
real answer tokens of the batch (``group_pg.group_pg_loss``), which is TRL's "dapo"
for one process without accumulation. TRL's default ``use_bias_correction_kl`` (the KL
term times the differentiable importance ratio) is turned off, as ours has no such
factor. What still differs: the prompt order (TRL's RepeatSampler vs our seeded
permutation), LoRA A's random draw, TRL steps the optimiser on the KL gradient alone
when every group ties (ours skips that step), TRL computes the log-probs through its
fused, tiled LM head and also the entropy (a cost of its own), and the optimisers'
rounding.

Three training seeds per side (``TRAIN_SEEDS``): episodes/s pools the runs (wall time of
training only); ``reward_rise`` is the mean held-out reward after minus before, with its
seed-to-seed standard error; the held-out score (``workload_writer.heldout_reward``, 2
seeded answers to each of 16 held-out questions) is untimed. The model starts each seed
from the cache, so "before" is the same for every seed: it is measured once per side.

    .venv/bin/python benchmarks/bench_writer.py [--quick] [--ours-only] [--writer-dir DIR]

prints ours, TRL's and the ratios as JSON lines. ``--quick``: 2 updates of 2 prompts x
2 answers x 8 tokens and 2 held-out questions, only to check both scripts run (not a
measurement). ``--write-questions`` rewrites ``peer/assets/writer_questions.json`` from
the course.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from peers import ensure_venv, load_workload, peer_dir, run_script  # noqa: E402

TRL_VERSION = "1.16.0"
# peft as requirements.txt pins it; a venv of its own (peers.venv_name: trl-1.16.0-peft),
# so the trl-1.16.0 venv the other peers measure in stays as it was
PEER_EXTRA_PINS = ("peft==0.21.2",)


def default_writer_dir() -> Path:
    """The course's converted writer (RLHF_LESSONS_CACHE), checked against its
    SHA256SUMS; converted first if the cache has none (as the notebook does)."""
    from rlhf_lessons.core.config import LessonConfig
    from rlhf_lessons.core.writer import check_cache, convert, writer_dir

    cfg = LessonConfig.from_env(preset="default", source="local")
    folder = writer_dir(cfg)
    if not folder.exists():
        convert(cfg)
    check_cache(folder)
    return folder


def course_questions(pick_seed: int, per_kind: int = 4) -> dict:
    """The writer notebook's training questions and ``per_kind`` held-out ones of each
    generated kind (seeded pick from its held-out questions), as plain dicts."""
    from rlhf_lessons.core.config import LessonConfig, WriterConfig
    from rlhf_lessons.course.writer_runs import questions

    qs = questions(LessonConfig(preset="default", source="local"), WriterConfig())
    rng = random.Random(pick_seed)
    kinds = list(dict.fromkeys(q.kind for q in qs["train"]))
    held = [q for k in kinds
            for q in rng.sample([q for q in qs["eval"] if q.kind == k], per_kind)]

    def row(q):
        return {"text": q.text, "answer": q.answer, "kind": q.kind}
    return {"train": [row(q) for q in qs["train"]], "heldout": [row(q) for q in held]}


def write_questions(peer: Path) -> Path:
    WW = load_workload(peer, "workload_writer")
    data = course_questions(WW.HELDOUT_PICK_SEED)
    WW.QUESTIONS_FILE.parent.mkdir(parents=True, exist_ok=True)
    WW.QUESTIONS_FILE.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return WW.QUESTIONS_FILE


def run_ours(peer: Path, threads: int = 2, quick: bool = False,
             writer_dir: str | Path | None = None, updates: int | None = None) -> dict:
    WW = load_workload(peer, "workload_writer")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    from rlhf_lessons.core.config import LoRAGRPOConfig
    from rlhf_lessons.train.lora_grpo import add_lora, train_lora_grpo

    folder = Path(writer_dir) if writer_dir else default_writer_dir()
    S = WW.sizes(quick)
    if updates:
        S["updates"] = updates
    qs = WW.load_questions()
    train = qs["train"]
    heldout = qs["heldout"][:S["heldout_questions"]]
    expected = {q["text"]: q for q in train}

    def reward(prompts, answers):  # the notebook's reward(prompts, answers) contract
        return WW.score_answers([expected[p] for p in prompts], answers)

    cfg = LoRAGRPOConfig(
        group_size=S["group_size"], prompts_per_update=S["prompts_per_update"],
        n_updates=S["updates"], lr=WW.LR, kl_coef=WW.BETA, cliprange=WW.EPSILON,
        weight_decay=WW.WEIGHT_DECAY, max_grad_norm=WW.MAX_GRAD_NORM, lora_r=WW.LORA_R,
        lora_alpha=WW.LORA_ALPHA, lora_targets=WW.LORA_TARGETS,
        max_new_tokens=S["max_new_tokens"], temperature=WW.TEMPERATURE, top_p=WW.TOP_P)
    model, tok = WW.load_writer(folder)
    # the adapters start at B = 0, so every seed starts from this very score
    before = WW.heldout_reward(model, tok, heldout, S["eval_samples"],
                               max_new_tokens=S["max_new_tokens"])
    runs = []
    for seed in WW.TRAIN_SEEDS[:1] if quick else WW.TRAIN_SEEDS:
        if runs:  # a fresh writer for each seed, as the peer loads one
            del model
            gc.collect()
            model, tok = WW.load_writer(folder)
        model = add_lora(model, cfg, seed=seed)
        t0 = time.perf_counter()
        m = train_lora_grpo(model, tok, reward, [q["text"] for q in train], cfg, seed=seed,
                            show_progress=False).metrics
        train_s = time.perf_counter() - t0
        after = WW.heldout_reward(model, tok, heldout, S["eval_samples"],
                                  max_new_tokens=S["max_new_tokens"])
        runs.append({"seed": seed, "train_s": round(train_s, 3),
                     "episodes": int(m["episodes"].iloc[-1]), "after": after,
                     "reward_rise": round(after["mean"] - before["mean"], 5),
                     "gen_s": round(float(m["gen_s"].sum()), 3),
                     "train_reward_first": round(float(m["objective/scores"].iloc[0]), 4),
                     "train_reward_last": round(float(m["objective/scores"].iloc[-1]), 4),
                     "frac_reward_zero_std": round(float(m["frac_reward_zero_std"].mean()),
                                                   4)})
    return {
        "impl": "rlhf_lessons", "task": "writer_grpo", **WW.summarise_runs(runs),
        "before": before, "runs": runs, "peak_rss_mb": round(_peak_rss_mb(), 1),
        "updates": S["updates"], "group_size": S["group_size"],
        "prompts_per_update": S["prompts_per_update"], "mode": "fp32", "quick": quick,
        "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "versions": _versions(),
    }


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _versions() -> dict:
    import platform

    import peft
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "transformers": transformers.__version__,
            "peft": peft.__version__}


def run(peer_dir_path=None, python_for_peer=None, threads: int = 2, quick: bool = False,
        writer_dir: str | Path | None = None, updates: int | None = None) -> dict:
    """Both sides, each in a fresh process (its own peak RSS): {"ours", "peer",
    "writer_episodes_per_s_ratio", "writer_reward_rise_delta", "writer_reward_rise_se",
    "writer_peak_rss_ratio"}. fp32 on both sides."""
    peer = peer_dir(peer_dir_path)
    folder = str(Path(writer_dir) if writer_dir else default_writer_dir())
    extra = (["--quick"] if quick else []) + (["--updates", str(updates)] if updates else [])
    ours = run_script(sys.executable, Path(__file__).resolve(),
                      ["--ours-only", "--peer-dir", str(peer), "--threads", str(threads),
                       "--writer-dir", folder, *extra], threads=threads, timeout=7200)
    python = python_for_peer or ensure_venv(TRL_VERSION, extra_pins=PEER_EXTRA_PINS)
    theirs = run_script(python, peer / "trl_writer_grpo.py",
                        ["--writer-dir", folder, "--threads", str(threads), *extra],
                        threads=threads, timeout=7200)
    return {"ours": ours, "peer": theirs,
            "writer_episodes_per_s_ratio": round(ours["episodes_per_s"]
                                                 / theirs["episodes_per_s"], 3),
            "writer_reward_rise_delta": round(ours["reward_rise"] - theirs["reward_rise"],
                                              5),
            # the standard error of that difference, from the seed-to-seed spread
            "writer_reward_rise_se": round(math.hypot(ours["reward_rise_se"],
                                                      theirs["reward_rise_se"]), 5),
            "writer_peak_rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3)}


def targets(res: dict) -> dict:
    """Issue 29's targets on one run's numbers."""
    return {"speed_1.5x": res["writer_episodes_per_s_ratio"] >= 1.5,
            # not smaller beyond noise: two standard errors of the difference
            "reward_rise_not_smaller": (res["writer_reward_rise_delta"]
                                        >= -2 * res["writer_reward_rise_se"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="2 tiny updates: runs, not timings")
    ap.add_argument("--ours-only", action="store_true", help="only our side, in this process")
    ap.add_argument("--peer-python", default=None, help="default: .bench-venvs/trl-1.16.0-peft")
    ap.add_argument("--updates", type=int, default=None,
                    help="updates per seed on both sides (default: workload_writer.UPDATES)")
    ap.add_argument("--writer-dir", default=None,
                    help="the converted writer (default: the course's cache)")
    ap.add_argument("--write-questions", action="store_true",
                    help="rewrite peer/assets/writer_questions.json from the course, then stop")
    o = ap.parse_args()
    if o.write_questions:
        print(write_questions(peer_dir(o.peer_dir)))
        return
    if o.ours_only:
        print(json.dumps(run_ours(peer_dir(o.peer_dir), o.threads, o.quick, o.writer_dir,
                                  o.updates)),
              flush=True)
        return
    res = run(o.peer_dir, o.peer_python, o.threads, o.quick, o.writer_dir, o.updates)
    print(json.dumps(res["ours"]), flush=True)
    print(json.dumps(res["peer"]), flush=True)
    rest = {k: v for k, v in res.items() if k not in ("ours", "peer")}
    print(json.dumps({**rest, "writer_targets_met": targets(res)}), flush=True)


if __name__ == "__main__":
    main()
