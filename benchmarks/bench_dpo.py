"""Our DPO against TRL 1.16.0's DPOTrainer on EXACTLY the shared DPO workload.

The work (tokenizer, the policy GPT-2, the 1,024 train and 312 held-out pairs split
into prompt / chosen / rejected, batch, epochs, beta, lr, clipping, the held-out
implicit-reward accuracy) comes from ``peer/workload_beyond.py`` (over ``workload.py``);
only the trainer is ours (:func:`rlhf_lessons.train.dpo.train_dpo`: the reference's
log-probs computed once, length-bucketed batches, chosen and rejected in one
forward, the LM head only at answer positions). Our timing includes the reference
pass.

    .venv/bin/python benchmarks/bench_dpo.py [--peer-dir benchmarks/peer] [--quick]

prints ours, TRL's and the ratio as JSON lines. ``--quick``: a reduced size that
checks both scripts run (not a measurement). ``--ours-only``: our side only.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402
    around_peer,
    ensure_venv,
    load_workload,
    peer_dir,
    run_script,
    two_sided_main,
)

TRL_VERSION = "1.16.0"


def load_beyond(peer: Path):
    """workload.py and workload_beyond.py of ``peer``: (W, WB)."""
    W = load_workload(peer)
    spec = importlib.util.spec_from_file_location("workload_beyond",
                                                  peer / "workload_beyond.py")
    WB = importlib.util.module_from_spec(spec)
    sys.modules["workload_beyond"] = WB
    spec.loader.exec_module(WB)
    return W, WB


def run_ours(peer: Path, threads: int = 2, quick: bool = False) -> dict:
    W, WB = load_beyond(peer)
    W.quiet()
    import torch

    torch.set_num_threads(threads)
    from rlhf_lessons.core.config import DPOConfig
    from rlhf_lessons.core.utils import use_bf16
    from rlhf_lessons.train.dpo import train_dpo
    from rlhf_lessons.train.reward import pairset_from_ids

    W.set_seed(W.SEED)
    tok = W.build_tokenizer("right")
    train = WB.full_pairs(WB.dpo_pairs(tok, WB.DPO_QUICK_TRAIN_ROWS if quick
                                       else WB.DPO_TRAIN_ROWS))
    held = WB.full_pairs(WB.dpo_pairs(tok, WB.DPO_QUICK_HELDOUT_ROWS if quick
                                      else WB.DPO_HELDOUT_ROWS))
    pairs = pairset_from_ids([p["chosen_ids"] for p in train],
                             [p["rejected_ids"] for p in train])
    policy = W.build_policy(tok, W.SEED)
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    cfg = DPOConfig(beta=WB.DPO_BETA, lr=WB.DPO_LR, batch_size=WB.DPO_BATCH_SIZE,
                    epochs=WB.DPO_EPOCHS, max_grad_norm=WB.DPO_MAX_GRAD_NORM)
    t0 = time.perf_counter()
    result = train_dpo(policy, ref, pairs, cfg, pad_id=tok.pad_token_id, seed=W.SEED,
                       show_progress=False)
    log = result.metrics
    train_s = time.perf_counter() - t0
    train_peak_rss_mb = W.peak_rss_mb()  # before the held-out evaluation (same code both sides)
    acc = W.pairwise_accuracy(WB.implicit_reward_fn(policy.eval(), ref), held,
                              tok.pad_token_id)
    # The yardstick of the reward benchmark, for DPO: the policy's forward and backward
    # (6·N·T) and the reference's forward (2·N·T) over every real token of both
    # sequences (prompt + answer); N without the position table, the LM head (tied to the
    # token table) included, since every position's logits are computed.
    n_lm = W.n_params(policy) - policy.transformer.wpe.weight.numel()
    n_tokens = sum(len(p["chosen_ids"]) + len(p["rejected_ids"]) for p in train)
    return {
        "impl": "rlhf_lessons", "task": "dpo",
        "gflop_per_s_8nt": round(8 * n_lm * n_tokens * WB.DPO_EPOCHS / train_s / 1e9, 1),
        "pairs_per_s": round(len(pairs) * WB.DPO_EPOCHS / train_s, 2),
        "heldout_implicit_acc": round(acc, 4),
        "peak_rss_mb": round(W.peak_rss_mb(), 1),
        "train_peak_rss_mb": round(train_peak_rss_mb, 1),
        "train_s": round(train_s, 3), "n_train_pairs": len(pairs),
        "n_heldout_pairs": len(held), "steps": len(log),
        "final_train_loss": round(float(log["loss"].iloc[-1]), 4),
        "phase_s": result.phases,  # where the time went (rlhf_lessons.core.phases)
        "mode": "bf16" if use_bf16(torch.device("cpu")) else "fp32", "quick": quick,
        "n_params": W.n_params(policy), "versions": W.versions(),
    }


def run(peer_dir_path=None, python_for_peer=None, threads: int = 2,
        quick: bool = False) -> dict:
    """Both sides, ours in a fresh process before and after the peer's (pooled:
    ``peers.around_peer``): {"ours", "peer", "dpo_pairs_per_s_ratio", ...}."""
    peer = peer_dir(peer_dir_path)
    extra = ["--quick"] if quick else []
    python = python_for_peer or ensure_venv(TRL_VERSION)
    ours, theirs = around_peer(
        lambda: run_script(sys.executable, Path(__file__).resolve(),
                           ["--ours-only", "--peer-dir", str(peer), "--threads", str(threads),
                            *extra], threads=threads),
        # the peer in our precision
        lambda first: run_script(python, peer / "trl_dpo.py",
                                 [*(["--bf16"] if first["mode"] == "bf16" else []), *extra],
                                 threads=threads),
        "pairs_per_s")
    return {"ours": ours, "peer": theirs,
            "dpo_pairs_per_s_ratio": round(ours["pairs_per_s"] / theirs["pairs_per_s"], 3),
            "dpo_heldout_acc_delta": round(ours["heldout_implicit_acc"]
                                           - theirs["heldout_implicit_acc"], 4),
            "dpo_peak_rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
            # the same up to the end of training: both processes' peaks are set by the
            # held-out evaluation, the workload's own code on both sides
            "dpo_train_peak_rss_ratio": round(ours["train_peak_rss_mb"]
                                              / theirs["train_peak_rss_mb"], 3),
            "dpo_ours_gflop_per_s_8nt": ours.get("gflop_per_s_8nt")}


if __name__ == "__main__":
    two_sided_main(__doc__, run_ours, run, "a reduced size: runs, not timings")
