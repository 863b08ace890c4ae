"""Our GRPO against TRL 1.16.0's GRPOTrainer on EXACTLY the shared GRPO workload.

The work (tokenizer, the PPO workload's 64 prompts, policy and reward model and their
seeds, group size, prompts per update, new tokens, temperature, updates, lr, epsilon,
beta) comes from ``peer/workload_beyond.py`` (over ``workload.py``); only the loop is
ours (:func:`rlhf_lessons.train.group_pg.train_group_pg`: the package's one rollout with its
KV-cache sampler, logits only at answer positions). Like TRL: no missing-EOS penalty,
raw reward-model scores, AdamW with linear decay and grad clip 1.0, and at beta 0 no
reference model. Three training seeds per side (``GRPO_TRAIN_SEEDS``):
``reward_rise`` is the mean change of the held-out reward
(``workload_beyond.grpo_heldout_reward``, the same code on both sides, untimed) with its
seed-to-seed standard error; episodes/s pools the three runs.

    .venv/bin/python benchmarks/bench_grpo.py [--peer-dir benchmarks/peer] [--quick]

prints ours, TRL's and the ratio as JSON lines. ``--quick``: 2 updates, only to check
both scripts run (not a measurement). ``--ours-only``: our side only.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dpo import load_beyond  # noqa: E402
from peers import around_peer, ensure_venv, peer_dir, run_script, two_sided_main  # noqa: E402

TRL_VERSION = "1.16.0"


def run_ours(peer: Path, threads: int = 2, quick: bool = False) -> dict:
    W, WB = load_beyond(peer)
    W.quiet()
    import torch

    torch.set_num_threads(threads)
    from rlhf_lessons.core.config import GroupPGConfig, PPOConfig
    from rlhf_lessons.train.group_pg import train_group_pg

    tok = W.build_tokenizer("left")
    prompt_ids = W.ppo_prompts(tok)
    prompts = [tok.decode(p) for p in prompt_ids]
    updates = WB.GRPO_QUICK_UPDATES if quick else WB.GRPO_UPDATES
    g = GroupPGConfig(advantage="grpo", group_size=WB.GRPO_GROUP_SIZE,
                      prompts_per_update=WB.GRPO_PROMPTS_PER_UPDATE, n_updates=updates,
                      inner_epochs=1, lr=WB.GRPO_LR, kl_coef=WB.GRPO_BETA,
                      cliprange=WB.GRPO_EPSILON, max_grad_norm=WB.GRPO_MAX_GRAD_NORM)
    cfg = PPOConfig(max_new_tokens=WB.GRPO_MAX_NEW_TOKENS, temperature=WB.GRPO_TEMPERATURE,
                    missing_eos_penalty=0.0, max_prompt_tokens=0)
    runs = []
    for seed in WB.GRPO_TRAIN_SEEDS[:1] if quick else WB.GRPO_TRAIN_SEEDS:
        W.set_seed(W.SEED)
        policy, _, _, reward_model = W.build_ppo_models(tok)  # the workload's weights
        before = WB.grpo_heldout_reward(policy, reward_model, tok, prompt_ids)
        t0 = time.perf_counter()
        # beta 0: no reference model, as TRL (ref_policy=None skips its forward pass)
        result = train_group_pg(policy, None, reward_model, tok, prompts, g, cfg,
                                seed=W.SEED + seed, prompt_ids=prompt_ids,
                                show_progress=False)
        m = result.metrics
        train_s = time.perf_counter() - t0
        after = WB.grpo_heldout_reward(policy, reward_model, tok, prompt_ids)
        runs.append({"seed": seed, "train_s": round(train_s, 3),
                     "episodes": int(m["episodes"].iloc[-1]),
                     "before": before, "after": after,
                     "reward_rise": round(after["mean"] - before["mean"], 5),
                     "gen_s": round(float(m["gen_s"].sum()), 3),
                     "phase_s": result.phases,
                     "frac_reward_zero_std": round(float(m["frac_reward_zero_std"].mean()),
                                                   4)})
    return {
        "impl": "rlhf_lessons", "task": "grpo", **WB.summarise_grpo_runs(runs),
        "runs": runs, "peak_rss_mb": round(W.peak_rss_mb(), 1),
        # where the time went, summed over the seeds (rlhf_lessons.core.phases)
        "phase_s": {k: round(sum(r["phase_s"].get(k, 0.0) for r in runs), 3)
                    for k in runs[0]["phase_s"]},
        "updates": updates, "group_size": g.group_size, "mode": "fp32", "quick": quick,
        "n_params_each": W.n_params(policy), "versions": W.versions(),
    }


def run(peer_dir_path=None, python_for_peer=None, threads: int = 2,
        quick: bool = False) -> dict:
    """Both sides, ours in a fresh process before and after the peer's (pooled:
    ``peers.around_peer``): {"ours", "peer", "grpo_episodes_per_s_ratio", ...}.

    fp32 on both sides: the rollout does not use bf16 autocast (as for PPO)."""
    peer = peer_dir(peer_dir_path)
    extra = ["--quick"] if quick else []
    python = python_for_peer or ensure_venv(TRL_VERSION)
    ours, theirs = around_peer(
        lambda: run_script(sys.executable, Path(__file__).resolve(),
                           ["--ours-only", "--peer-dir", str(peer), "--threads", str(threads),
                            *extra], threads=threads),
        lambda first: run_script(python, peer / "trl_grpo.py", extra, threads=threads),
        "episodes_per_s")
    return {"ours": ours, "peer": theirs,
            "grpo_episodes_per_s_ratio": round(ours["episodes_per_s"]
                                               / theirs["episodes_per_s"], 3),
            "grpo_reward_rise_delta": round(ours["reward_rise"] - theirs["reward_rise"], 5),
            # the standard error of that difference, from the seed-to-seed spread
            "grpo_reward_rise_se": round(math.hypot(ours["reward_rise_se"],
                                                    theirs["reward_rise_se"]), 5),
            "grpo_peak_rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3)}


if __name__ == "__main__":
    two_sided_main(__doc__, run_ours, run, "2 updates: runs, not timings")
