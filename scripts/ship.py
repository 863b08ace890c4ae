"""Rebuild the course's shipped models in data/models/, with their model cards.

    python scripts/ship.py pretrain [--steps N] [--minutes M] [--seed S]
    python scripts/ship.py sft [--steps N]
    python scripts/ship.py judge [--backbone sft] [--lr 1e-4] [--epochs 1]
    python scripts/ship.py judge --recard     # re-score the shipped judge, rewrite its card
    python scripts/ship.py runs [--from-outputs]  # the finished runs of 02-09 -> data/runs/

Each command trains with the package's own code in the default preset (or the one
RLHF_LESSONS_* selects), resumes from its checkpoint in outputs/ when interrupted,
and with ``--no-ship`` stops before writing to data/models/. The fp16 copy that is
shipped is the one that is scored for its card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from rlhf_lessons.core.config import REPO_ROOT, LessonConfig
from rlhf_lessons.core.models import load_card, load_model, save_model, sha256_of, write_checksums
from rlhf_lessons.core.utils import atomic_torch_save, get_device, write_json
from rlhf_lessons.course.artefacts import (
    NOTEBOOKS,
    PRETRAINED_DIR,
    RUNS_DIR,
    SFT_DIR,
    SHIPPED_JUDGE_DIR,
    build_judge,
    hh_pairs,
    judge_dir,
    judge_key,
    load_policy,
    pretrain_run_dir,
    sft_run_dir,
)
from rlhf_lessons.measure.evaluate import accuracy_table, judge_accuracy, length_judge_directions
from rlhf_lessons.train.pretrain import pretrain
from rlhf_lessons.train.run import slim_for_shipping
from rlhf_lessons.train.sft import evaluate_sft, train_sft


# ---------------------------------------------------------------------------
# Model cards of the course GPT-2 (pretrained and SFT)
# ---------------------------------------------------------------------------
def write_model_card(path: Path, cfg: LessonConfig, figures: dict, stage: str,
                     extra: str = "", data: str = "") -> None:
    """MODEL_CARD.md for a shipped checkpoint: data, tokenizer, size, steps, time, quality."""
    mc = cfg.model
    lines = [
        f"# course-gpt2 ({stage})",
        "",
        "A small GPT-2 trained by this course's own code, offline, on 2 CPU cores.",
        "",
        "| field | value |",
        "|---|---|",
        "| architecture | transformers `GPT2LMHeadModel` |",
        f"| size | n_layer={mc.n_layer}, n_embd={mc.n_embd}, n_head={mc.n_head}, "
        f"n_positions={mc.n_positions}, {figures['n_params']:,} parameters |",
        f"| tokenizer | byte-level BPE, vocab {cfg.pretrain.vocab_size}, trained on the "
        "train split only; id 0 = `<|endoftext|>` = EOS = pad |",
        "| data | " + (data or "HH-RLHF test files bundled in data/hh-rlhf, TRAIN split only "
                         "(rows with i % 10 != 0), all four subsets, chosen and rejected "
                         "transcripts") + " |",
        "| weights | stored as float16 safetensors (loaded as float32) |",
    ]
    for k, v in figures.items():
        lines.append(f"| {k} | {v} |")
    lines += ["", extra, "",
              "Licence: the weights are derived from Anthropic HH-RLHF (MIT, (c) 2022 "
              "Anthropic); the code is this course's (MIT).", ""]
    (Path(path) / "MODEL_CARD.md").write_text("\n".join(lines))


SFT_CARD_DATA = ("the {n:,} chosen answers of the HH-RLHF TRAIN split (rows with i % 10 != 0) "
                 "that end within {k} tokens, each after its conversation so far")
SFT_CARD_EXTRA = """## How it was made
`python scripts/ship.py sft`: {steps} AdamW steps of {sc.batch_size} examples
({sc.epochs:g} epochs), peak lr {sc.lr:g} with {sc.warmup_steps} warm-up steps and linear decay
to 0, gradient clipping 1.0, starting from data/models/course-gpt2. The loss counts answer
tokens only (prompt tokens are masked with -100); every answer ends with EOS. `eval_answer_ppl`
is measured on the eval-split chosen answers that end within that many tokens; `eos_rate` is the
share of 200 eval prompts whose sampled answer (temperature 0.7) ends within
{sc.max_new_tokens} new tokens."""


def ship_pretrain(args, cfg: LessonConfig) -> None:
    """Pretrain the course GPT-2 (resumable) and ship it with its card."""
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain,
                                                                    steps=args.steps))
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    run = pretrain(cfg, run_dir=pretrain_run_dir(cfg), max_minutes=args.minutes)
    f = run["figures"]
    print(f"done: held-out ppl {f['eval_ppl']} vs unigram {f['unigram_eval_ppl']} "
          f"({f['unigram_eval_ppl'] / f['eval_ppl']:.1f}x lower), "
          f"{f['tokens_per_s']:.0f} tokens/s, {f['wall_s'] / 60:.1f} min")
    if args.no_ship:
        return
    save_model(run["model"], run["tokenizer"], PRETRAINED_DIR,
               card={"figures": f, "metrics": run.metrics.to_dict("records"),
                     "config": cfg.to_dict()},
               dtype=torch.float16)
    write_model_card(PRETRAINED_DIR, cfg, f, "pretrained",
                     extra="Made by `python scripts/ship.py pretrain` (resumable).")
    write_checksums(PRETRAINED_DIR)
    print(f"shipped to {PRETRAINED_DIR}")


def ship_sft(args, cfg: LessonConfig) -> None:
    """SFT from the shipped pretrained model (resumable) and ship it with its card."""
    device = get_device(cfg)
    model, tok = load_policy(cfg, "pretrained", device)
    run = train_sft(cfg, model, tok, run_dir=sft_run_dir(cfg), max_steps=args.steps)
    ev = evaluate_sft(cfg, model, tok)
    f = dict(run["figures"], eval_answer_loss=round(ev["answer_loss"], 4),
             eval_answer_ppl=round(ev["answer_ppl"], 2), eos_rate=round(ev["eos_rate"], 3),
             n_eos_prompts=ev["n_eos_prompts"])
    print(f"done: held-out answer ppl {f['eval_answer_ppl']}, EOS rate {f['eos_rate']:.2f} "
          f"on {f['n_eos_prompts']} held-out prompts, {f['wall_s'] / 60:.1f} min")
    for r in ev["samples"][:5]:
        print(repr(r["prompt"][-120:]), "->", repr(r["answer"]))
    log = run.metrics.to_dict("records")
    write_json(run["run_dir"] / "result.json", {"figures": f, "metrics": log,
                                                "samples": ev["samples"][:20]})
    if args.no_ship:
        return
    save_model(model, tok, SFT_DIR,
               card={"figures": f, "metrics": log, "config": cfg.to_dict()},
               dtype=torch.float16)
    table = {k: v for k, v in f.items() if k != "data"}  # "data" gets its own row
    write_model_card(SFT_DIR, cfg, table, "SFT", data=SFT_CARD_DATA.format(
        n=f["examples"], k=cfg.sft.max_answer_tokens), extra=SFT_CARD_EXTRA.format(
        steps=f["steps"], sc=cfg.sft))
    write_checksums(SFT_DIR)
    print(f"shipped to {SFT_DIR}")


# ---------------------------------------------------------------------------
# The judge
# ---------------------------------------------------------------------------
def _score_for_card(model, tok, cfg: LessonConfig, card: dict, device):
    """Held-out figures of ``model`` into ``card``; returns the accuracy table."""
    train = hh_pairs(cfg, tok, "train")
    ev_pairs = hh_pairs(cfg, tok, "eval")
    ev = judge_accuracy(model, ev_pairs, device, tok.pad_token_id, show_progress=True)
    table = accuracy_table(ev_pairs, ev["correct"], length_judge_directions(train))
    card.update({"eval_pairs": len(ev_pairs), "eval_accuracy": round(ev["accuracy"], 4),
                 "eval_accuracy_ci95": [round(x, 4) for x in ev["ci95"]],
                 "eval_accuracy_by_subset": {s: round(float(v), 4) for s, v in
                                             table["judge"].items() if s != "overall"},
                 "length_rule_accuracy": round(float(table.loc["overall", "length_judge"]), 4)})
    return table


def ship_judge(args, cfg: LessonConfig) -> None:
    """Train (or resume) and evaluate the judge; ship the fp16 copy, scored as shipped.

    ``--recard`` trains nothing: it re-scores the shipped judge and rewrites its card.
    """
    over = {k: v for k, v in (("backbone", args.backbone), ("lr", args.lr),
                              ("epochs", args.epochs)) if v is not None}
    if over:
        cfg = dataclasses.replace(cfg, reward=dataclasses.replace(cfg.reward, **over))
    device = get_device(cfg)
    if args.recard:
        model, tok = load_model(SHIPPED_JUDGE_DIR, device, kind="judge")
        card = load_card(SHIPPED_JUDGE_DIR)
        table = _score_for_card(model, tok, cfg, card, device)
        _write_shipped_card(card, table)
        write_checksums(SHIPPED_JUDGE_DIR)
        print(table.round(3).to_string())
        return
    print(f"judge key {judge_key(cfg)}; reward config {dataclasses.asdict(cfg.reward)}")
    model, tok, card, metrics = build_judge(cfg, device)
    here = judge_dir(cfg)
    save_model(model, tok, here, card)
    metrics.to_csv(here / "metrics.csv", index=False)
    table = _score_for_card(model, tok, cfg, card, device)
    print(table.round(3).to_string())
    save_model(model, tok, here, card, keep=("metrics.csv",))  # the card, now scored
    print(json.dumps({k: card[k] for k in ("key", "steps", "train_wall_s", "eval_accuracy",
                                           "eval_accuracy_ci95", "length_rule_accuracy")}))
    if args.no_ship:
        return
    save_model(model, tok, SHIPPED_JUDGE_DIR, card, dtype=torch.float16)
    shipped, _ = load_model(SHIPPED_JUDGE_DIR, device, kind="judge")
    table = _score_for_card(shipped, tok, cfg, card, device)  # the fp16 weights
    _write_shipped_card(card, table)
    cols = [c for c in ("step", "epoch", "loss", "accuracy", "margin", "learning_rate",
                        "eval_accuracy") if c in metrics]
    metrics[cols].round(5).to_csv(SHIPPED_JUDGE_DIR / "metrics.csv", index=False)
    write_checksums(SHIPPED_JUDGE_DIR)
    print(f"shipped to {SHIPPED_JUDGE_DIR}")


def _write_shipped_card(card: dict, table) -> None:
    (SHIPPED_JUDGE_DIR / "training.json").write_text(
        json.dumps(card, indent=2, default=str) + "\n")
    (SHIPPED_JUDGE_DIR / "MODEL_CARD.md").write_text(_model_card(card, table))


def _model_card(card: dict, table) -> str:
    return f"""# course-judge: the course's reward model (notebook 03)

A GPT-2 reward model ("judge"): the course's own {card['model']['n_layer']}-layer,
{card['model']['n_embd']}-wide GPT-2 ({card['backbone']} backbone) plus a linear score head
read at the last real token (the EOS after `prompt + " " + answer`, left-truncated to
{card['reward']['max_len']} tokens). Weights in fp16 safetensors, with the names of
transformers' `GPT2ForSequenceClassification` (num_labels=1, pad_token_id=0). Load it with
`rlhf_lessons.course.artefacts.load_judge(cfg)` and score with `rlhf_lessons.train.reward.score` (the plain
transformers `.logits` pool one token earlier, at the last non-pad token).

- Made by: `python scripts/ship.py judge` (resumable), settings key `{card['key']}`.
- Data: the TRAIN split (row % 10 != 0) of the four bundled Anthropic HH-RLHF test files
  (MIT licence): {card['train_summary']}.
- Training: {card['steps']} steps, batch {card['reward']['batch_size']} pairs,
  lr {card['reward']['lr']} linear to 0, {card['reward']['epochs']} epoch(s),
  {card['precision']}, {card['train_wall_s']} s wall on this machine's CPU.
- Held-out (eval split, {card['eval_pairs']} pairs, identical pairs count as wrong; the
  shipped fp16 weights, scored in fp32):
  accuracy {card['eval_accuracy']} (95% Wilson CI {card['eval_accuracy_ci95']});
  the length-only judge (direction per subset chosen on train) scores
  {card['length_rule_accuracy']}.

```
{table.round(3).to_string()}
```

Limits: a small model trained on about 7.7k pairs; it leans on surface features
(see notebook 03, "what the judge rewards"). Do not use it outside this course.
"""



# ---------------------------------------------------------------------------
# Finished runs of notebooks 02-09 (data/runs/)
# ---------------------------------------------------------------------------
# What travels, by notebook folder: name prefixes of keyed results in outputs/.
SHIPPED_RUNS = {
    # 02: the shipped models' EOS rates and perplexities (a minute of sampling)
    NOTEBOOKS["pretrain"]: ("sft-eval-", "pretrain-eval-"),
    # 03: the judge's reactions to rewritten answers
    NOTEBOOKS["judge"]: ("judge-effects-",),
    # 04: the rule-reward run (named with the rule's source), the judge run's
    # second seed and the KL explorer's default run; the judge run stays live
    NOTEBOOKS["ppo"]: ("ppo-rule-", "ppo-judge-seed2-", "kl-variant-"),
    NOTEBOOKS["raters"]: ("judge-scores-", "gold-effects-", "gold-probes-"),
    NOTEBOOKS["optimisation"]: ("pool-scores-", "bon-samples-", "ppo-b", "proxy-",
                                 "rater-embeddings-"),
    NOTEBOOKS["beyond"]: ("dpo-", "ppo-"),  # dpo-heldout-: its held-out passes
    # the writer: its answers and belief probes (about 2,600, ~45 min to sample on 2
    # cores), the hedge SFT's and GRPO's LoRA adapters (fp16), the simulated raters' heads
    NOTEBOOKS["writer"]: ("base-answers-", "base-beliefs-", "sft-", "rater-judges-", "grpo-"),
    # 09: the reference's log-probs of the held-out pairs; TRL's reward-model and DPO
    # runs (their logs and what 09 measures of them: no weights)
    NOTEBOOKS["graduate"]: ("ref-logprobs-", "trl-reward-", "trl-dpo-"),
}


def ship_runs(args, cfg: LessonConfig) -> None:
    """Retrain notebooks 02-09 headless (RLHF_LESSONS_RETRAIN=1), then copy their
    finished runs to data/runs/: trainer states slimmed to fp16 weights and their
    logs, the proxy judge in fp16, cached results as they are; a README lists them
    and SHA256SUMS records every file (:func:`write_runs_index`)."""
    if cfg.preset != "default":
        raise SystemExit("ship.py runs ships the default preset's runs only "
                         f"(RLHF_LESSONS_PRESET is {cfg.preset!r})")
    root = Path(os.environ.get("RLHF_LESSONS_OUTPUTS", REPO_ROOT / "outputs"))
    chosen = {nb: SHIPPED_RUNS[nb] for nb in (getattr(args, "only", None) or SHIPPED_RUNS)}
    if not args.from_outputs:
        for nb in chosen:
            subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "run_notebooks.py"),
                            "--only", nb], check=True,
                           env={**os.environ, "RLHF_LESSONS_RETRAIN": "1",
                                "RLHF_LESSONS_OUTPUTS": str(root)})
    for nb, prefixes in chosen.items():
        found = sorted(p for p in (root / nb).glob("*") if p.name.startswith(prefixes)
                       and not p.name.startswith("."))
        if not found:
            raise SystemExit(f"{root / nb}: no finished runs ({', '.join(prefixes)}): run "
                             "the notebook first or drop --from-outputs")
        dest = RUNS_DIR / nb
        shutil.rmtree(dest, ignore_errors=True)  # stale keys must not travel
        dest.mkdir(parents=True)
        for src in found:
            out = dest / src.name
            if src.is_dir():  # the proxy judge: a saved model folder, shipped in fp16
                model, tok = load_model(src, "cpu", kind="judge")
                save_model(model, tok, out, load_card(src), dtype=torch.float16)
            else:
                state = torch.load(src, map_location="cpu", weights_only=False)
                if isinstance(state, dict) and "model" in state and "key" in state:
                    atomic_torch_save(slim_for_shipping(state), out)
                else:
                    shutil.copyfile(src, out)
            print(f"shipped {out.relative_to(REPO_ROOT)}")
    write_runs_index()


def _describe_run(out: Path) -> tuple[str, int, str]:
    """(what, size in bytes, sha256) of one shipped run, for the README's table (a
    model folder: the sha256 of its model.safetensors)."""
    if out.is_dir():  # the proxy judge
        card = load_card(out)
        what = (f"proxy judge, {card.get('train_pairs')} pairs, trained in "
                f"{card.get('train_wall_s', 0):.0f} s")
        return (what, sum(f.stat().st_size for f in out.iterdir()),
                sha256_of(out / "model.safetensors"))
    state = torch.load(out, map_location="cpu", weights_only=False)
    what = "cached result"
    if isinstance(state, dict) and "model" in state and "key" in state:  # a TrainRun's state
        log = state.get("metrics") or []
        secs = log[-1].get("elapsed_s") if log else None
        what = f"finished run, {len(log)} steps" + (f", trained in {secs:.0f} s" if secs else "")
    elif isinstance(state, dict) and "log" in state and "train_s" in state:  # 09's TRL runs
        what = (f"finished TRL run, {len(state['log'])} logged steps, trained in "
                f"{state['train_s']:.0f} s")
    return what, out.stat().st_size, sha256_of(out)


def write_runs_index(runs_dir: Path = RUNS_DIR) -> None:
    """data/runs/README.md (a table: file, what, size, the first 16 hex of its sha256)
    and data/runs/SHA256SUMS (every file, in the format of data/models/*/SHA256SUMS),
    both from what ``runs_dir`` holds now. The course checks every file against
    SHA256SUMS before it copies it into outputs/ (``artefacts.check_shipped``)."""
    rows = []
    for nb in SHIPPED_RUNS:
        for out in sorted((runs_dir / nb).glob("*")):
            if out.name.startswith("."):
                continue
            what, size, digest = _describe_run(out)
            shown = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
            rows.append(f"| `{nb}/{out.name}` | {what} | {shown} | `{digest[:16]}` |")
    write_checksums(runs_dir, ("**/*",), skip=("README.md",))
    (runs_dir / "README.md").write_text("\n".join([
        "# data/runs/: finished runs of notebooks 02-09",
        "",
        "The default series must fit 15 minutes on 2 CPU cores, so these runs travel",
        "finished: a notebook copies one into `outputs/` when it has none for the same",
        "settings (`artefacts.from_shipped`; the key in the name is a hash of every",
        "setting) and says so in one line. `RLHF_LESSONS_RETRAIN=1` (or `RETRAIN = True`",
        "in a notebook's first cell) trains them live instead. Trainer states are",
        "slimmed to fp16 weights and their logs (`train.run.slim_for_shipping`): they load, they",
        "cannot resume. Rebuilt, from the code, by",
        "",
        "    python scripts/ship.py runs",
        "",
        f"(default preset, on {os.cpu_count()} CPU cores). Licence: MIT, derived from",
        "HH-RLHF (MIT) like `data/models/`; the writer's LoRA adapters (08) are",
        "derived from SmolLM2-135M-Instruct (Apache-2.0).",
        "",
        "Checked before use: `SHA256SUMS` here lists the sha256 of every file (those",
        "inside a folder too), and a file is checked against it before it is copied",
        "into `outputs/`. A truncated, changed or missing part stops the notebook with",
        "an error that names it (`artefacts.ShippedRunError`); nothing damaged is",
        "copied. Restore it with `git checkout -- data/runs/<file>`, or train it live",
        "as above. A run deleted from here whole is trained live, with one line that",
        "says so and how long it took when it was shipped.",
        "",
        "| file | what | size | sha256 (first 16) |",
        "|---|---|---|---|",
        *rows, ""]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("pretrain", help=f"pretrain the course GPT-2 -> {PRETRAINED_DIR}")
    p.add_argument("--steps", type=int, help="optimiser steps (default: the preset's)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes")
    p.add_argument("--seed", type=int)
    s = sub.add_parser("sft", help=f"SFT the shipped pretrained model -> {SFT_DIR}")
    s.add_argument("--steps", type=int, help="optimiser steps (default: the preset's epochs)")
    j = sub.add_parser("judge", help=f"train the judge -> {SHIPPED_JUDGE_DIR}")
    j.add_argument("--recard", action="store_true",
                   help="train nothing: re-score the shipped judge and rewrite its card")
    j.add_argument("--backbone", choices=("pretrained", "sft"))
    j.add_argument("--lr", type=float)
    j.add_argument("--epochs", type=float)
    r = sub.add_parser("runs", help=f"the finished runs of notebooks 02-09 -> {RUNS_DIR}")
    r.add_argument("--from-outputs", action="store_true",
                   help="ship what outputs/ holds instead of retraining first")
    r.add_argument("--only", metavar="NB", action="append", choices=sorted(SHIPPED_RUNS),
                   help="only this notebook's runs (repeatable; the others stay as shipped)")
    for q in (p, s, j):
        q.add_argument("--no-ship", action="store_true",
                       help="train and evaluate, but do not write to data/models/")
    args = ap.parse_args(argv)
    cfg = LessonConfig.from_env()
    {"pretrain": ship_pretrain, "sft": ship_sft, "judge": ship_judge,
     "runs": ship_runs}[args.what](args, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
