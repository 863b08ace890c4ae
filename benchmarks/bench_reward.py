"""Our reward-model trainer on EXACTLY the shared reward workload (``workload.py``).

Everything that defines the work (tokenizer, model, training and held-out pairs,
batch size, steps, optimiser settings, the accuracy function) comes from the peer's
``workload.py``; only the trainer is ours (:func:`rlhf_lessons.train.reward.train_reward_model`:
length-bucketed batches, chosen + rejected in one forward, causal attention without
a padding mask, no LM head). Prints ONE JSON line in the peer's schema with
``"impl": "rlhf_lessons"``.

    .venv/bin/python benchmarks/bench_reward.py [--peer-dir benchmarks/peer]

Run it in its own process (``benchmarks/run.py`` does) so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import load_workload, peer_dir  # noqa: E402


def run(peer: Path, threads: int = 2) -> dict:
    W = load_workload(peer)
    W.quiet()
    import torch

    torch.set_num_threads(threads)
    from rlhf_lessons.core.config import RewardConfig
    from rlhf_lessons.core.utils import use_bf16
    from rlhf_lessons.train import reward as R

    device = torch.device("cpu")
    W.set_seed(W.SEED)
    tok = W.build_tokenizer("right")
    train_pairs = W.reward_pairs(tok, W.RM_TRAIN_ROWS)
    heldout_pairs = W.reward_pairs(tok, W.RM_HELDOUT_ROWS)
    model = W.build_reward_model(tok, W.SEED)
    # The workload's pairs, as they are: TRL trains on all of them (no identical-pair
    # drop here, so the step count is the peer's).
    train = R.pairset_from_ids([p["chosen_ids"] for p in train_pairs],
                               [p["rejected_ids"] for p in train_pairs])
    if W.RM_WEIGHT_DECAY != 0.0 or W.RM_SCHEDULE != "linear":
        raise SystemExit("bench_reward.py implements AdamW without weight decay and a "
                         "linear schedule; the workload asks for something else")
    steps = -(-len(train) * W.RM_EPOCHS // W.BATCH_SIZE)
    rc = dataclasses.replace(RewardConfig(), batch_size=W.BATCH_SIZE, lr=W.RM_LR,
                             epochs=W.RM_EPOCHS, max_grad_norm=W.RM_MAX_GRAD_NORM,
                             max_len=W.MAX_LENGTH, eval_every=0, max_steps=steps)
    t0 = time.perf_counter()
    result = R.train_reward_model(model, train, rc, device, seed=W.SEED,
                                  pad_id=tok.pad_token_id, show_progress=False,
                                  log_every=16)
    metrics = result.metrics
    train_s = time.perf_counter() - t0
    model.eval()

    def reward_fn(ids, mask):
        return R.score(model, ids, mask)

    # The peer README's compute-limit yardstick: 6·N·T, N = non-embedding parameters,
    # T = real (unpadded) training tokens.
    n_body = W.n_params(model) - model.transformer.wte.weight.numel() - \
        model.transformer.wpe.weight.numel()
    n_tokens = sum(len(p["chosen_ids"]) + len(p["rejected_ids"]) for p in train_pairs)
    train_acc = W.pairwise_accuracy(reward_fn, train_pairs, tok.pad_token_id)
    heldout_acc = W.pairwise_accuracy(reward_fn, heldout_pairs, tok.pad_token_id)
    return {
        "impl": "rlhf_lessons",
        "task": "reward",
        "pairs_per_s": round(len(train) * W.RM_EPOCHS / train_s, 2),
        "peak_rss_mb": round(W.peak_rss_mb(), 1),
        "final_train_acc": round(train_acc, 4),
        "heldout_acc": round(heldout_acc, 4),
        "train_s": round(train_s, 3),
        "n_train_pairs": len(train),
        "phase_s": result.phases,  # where the time went (rlhf_lessons.core.phases)
        "epochs": W.RM_EPOCHS,
        "steps": int(metrics["step"].max()),
        "final_train_loss": round(float(metrics["loss"].dropna().mean()), 4),
        "mode": "bf16" if use_bf16(device) else "fp32",
        "gflop_per_s_6nt": round(6 * n_body * n_tokens * W.RM_EPOCHS / train_s / 1e9, 1),
        "n_params": W.n_params(model),
        "versions": W.versions(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    o = ap.parse_args()
    import json

    print(json.dumps(run(peer_dir(o.peer_dir), o.threads)), flush=True)


if __name__ == "__main__":
    main()
