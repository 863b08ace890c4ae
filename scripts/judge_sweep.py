"""Choose the judge's training settings on a validation split carved from TRAIN.

The eval split is what notebook 03 reports, so it must not pick the settings: every
10th train pair (index % 10 == 5) is held out here as validation, the judge is
trained on the rest with each candidate setting, and each result is one JSON line
in ``outputs/judge_sweep/results-<preset>.jsonl`` (a rerun skips the settings already done).
The winner is then trained on the whole train split by
``python scripts/ship.py judge`` and scored once on eval.

    .venv/bin/python scripts/judge_sweep.py                 # the default grid
    .venv/bin/python scripts/judge_sweep.py --lr 2e-4 --epochs 2 --center-coef 0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device
from rlhf_lessons.course.artefacts import hh_pairs, load_policy, output_dir
from rlhf_lessons.measure.evaluate import judge_accuracy
from rlhf_lessons.train import reward as R

GRID = [  # (lr, epochs, center_coef)
    (2e-5, 1.0, 0.0), (5e-5, 1.0, 0.0), (1e-4, 1.0, 0.0), (2e-4, 1.0, 0.0), (3e-4, 1.0, 0.0),
    (5e-5, 2.0, 0.0), (1e-4, 2.0, 0.0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float)
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--center-coef", type=float, default=0.0)
    o = ap.parse_args()
    if (o.lr is None) != (o.epochs is None):
        ap.error("give --lr and --epochs together (one setting), or neither (the grid)")
    grid = [(o.lr, o.epochs, o.center_coef)] if o.lr is not None else GRID
    cfg = LessonConfig.from_env()
    device = get_device(cfg)
    # one file per preset: a fast run's rows must never count as a default run's
    out = output_dir("judge_sweep", cfg) / f"results-{cfg.preset}.jsonl"
    done = {json.loads(line)["name"] for line in out.read_text().splitlines()} \
        if out.exists() else set()
    backbone0, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
    tok.padding_side = "right"
    train = hh_pairs(cfg, tok, "train")
    is_val = np.arange(len(train)) % 10 == 5
    fit = train.select(np.flatnonzero(~is_val))
    val = train.select(np.flatnonzero(is_val))
    print(f"fit {len(fit)} pairs, validation {len(val)} pairs (both from TRAIN)")
    for lr, epochs, cc in grid:
        name = f"lr={lr:g},epochs={epochs:g},center={cc:g}"
        if name in done:
            print(f"{name}: done already")
            continue
        rc = dataclasses.replace(cfg.reward, lr=lr, epochs=epochs, center_coef=cc,
                                 eval_every=0)
        model = R.build_reward_model(backbone0, tok.pad_token_id, seed=cfg.seed)
        t0 = time.perf_counter()
        m = R.train_reward_model(model, fit, rc, device, seed=cfg.seed,
                                 pad_id=tok.pad_token_id).metrics
        ev = judge_accuracy(model, val, device, tok.pad_token_id)
        row = {"name": name, "lr": lr, "epochs": epochs, "center_coef": cc,
               "val_accuracy": round(ev["accuracy"], 4),
               "val_ci95": [round(x, 4) for x in ev["ci95"]],
               "val_loss": round(ev["loss"], 4),
               "train_loss_last50": round(float(m["loss"].tail(50).mean()), 4),
               "wall_s": round(time.perf_counter() - t0, 1), "n_fit": len(fit),
               "n_val": len(val)}
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        del model
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    print("best on validation:", json.dumps(best))


if __name__ == "__main__":
    main()
