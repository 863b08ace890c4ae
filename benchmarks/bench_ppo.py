"""Our PPO against TRL 1.12.0's PPOTrainer on EXACTLY the shared PPO workload.

Everything that defines the work (tokenizer, the 64 prompts, the four tiny GPT-2s
and their seeds, rollout batch, tokens per answer, temperature, PPO epochs and
minibatches, updates, lr, KL coefficient and estimator, clip ranges, vf_coef, gamma,
lambda, missing-EOS penalty) comes from the peer's ``workload.py``; only the loop is
ours (:func:`rlhf_lessons.train.ppo.train_ppo`: a lean GPT-2 forward with a preallocated KV
cache, inverse-CDF sampling, logits only at answer positions). The optimiser is the
peer's: AdamW (eps 1e-8, no weight decay), linear lr decay stepped once per update,
and no gradient clipping (TRL's PPOTrainer does not clip).

    .venv/bin/python benchmarks/bench_ppo.py [--peer-dir benchmarks/peer]

prints two JSON lines in the peer's schema: ours (``"impl": "rlhf_lessons"``) and
TRL's, both measured in this run. Our side runs in its own process so that its
peak RSS is its own; TRL runs in ``.bench-venvs/trl-1.12.0`` (made once).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import around_peer, ensure_venv, load_workload, peer_dir, run_script  # noqa: E402

TRL_VERSION = "1.12.0"


def workload_config(W):
    """Our PPOConfig holding exactly the workload's numbers."""
    from rlhf_lessons.core.config import PPOConfig

    if W.PPO_STOP_TOKEN != "eos":
        raise SystemExit(f"workload stop token {W.PPO_STOP_TOKEN!r}: only 'eos' is supported")
    return PPOConfig(
        n_updates=W.PPO_UPDATES, rollout_batch=W.PPO_ROLLOUT_BATCH,
        mini_batches=W.PPO_NUM_MINI_BATCHES, ppo_epochs=W.PPO_EPOCHS,
        max_new_tokens=W.PPO_MAX_NEW_TOKENS, temperature=W.PPO_TEMPERATURE, lr=W.PPO_LR,
        kl_coef=W.PPO_KL_COEF, kl_estimator=W.PPO_KL_ESTIMATOR, adaptive_kl_target=0.0,
        cliprange=W.PPO_CLIPRANGE, cliprange_value=W.PPO_CLIPRANGE_VALUE,
        vf_coef=W.PPO_VF_COEF, gamma=W.PPO_GAMMA, lam=W.PPO_LAM,
        missing_eos_penalty=W.PPO_MISSING_EOS_PENALTY, whiten_rewards=W.PPO_WHITEN_REWARDS,
        normalize_scores=False, max_grad_norm=0.0, lr_schedule="linear", adam_eps=1e-8,
        weight_decay=0.0, max_prompt_tokens=0,
    )


def run_ours(peer: Path, threads: int = 2) -> dict:
    """Our PPO on the workload, in THIS process. Returns the peer-schema dict."""
    W = load_workload(peer)
    W.quiet()
    import torch

    torch.set_num_threads(threads)
    from rlhf_lessons.train.ppo import train_ppo

    W.set_seed(W.SEED)
    tok = W.build_tokenizer("left")
    prompt_ids = W.ppo_prompts(tok)
    prompts = [tok.decode(p) for p in prompt_ids]
    policy, ref_policy, value_model, reward_model = W.build_ppo_models(tok)
    cfg = workload_config(W)
    t0 = time.perf_counter()
    result = train_ppo(policy, ref_policy, value_model, reward_model, tok, prompts, cfg,
                       seed=W.SEED, prompt_ids=prompt_ids, show_progress=False)
    train_s = time.perf_counter() - t0
    m = result.metrics
    episodes = int(m["episodes"].iloc[-1])
    tokens = int(m["tokens_generated"].sum())
    gen_s = float(m["gen_s"].sum())
    upd = m["elapsed_s"].diff().fillna(m["elapsed_s"].iloc[0]).tolist()
    steady = upd[1:] if len(upd) > 1 else upd
    keys = ["objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward",
            "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg",
            "loss/value_avg", "val/ratio", "val/num_eos_tokens"]
    last = {k: round(float(m[k].iloc[-1]), 5) for k in keys}
    return {
        "impl": "rlhf_lessons",
        "task": "ppo",
        "episodes_per_s": round(episodes / train_s, 3),
        "tokens_generated_per_s": round(tokens / train_s, 1),
        "peak_rss_mb": round(W.peak_rss_mb(), 1),
        "train_s": round(train_s, 3),
        "updates": len(m),
        "episodes": episodes,
        "tokens_generated": tokens,
        "rows_with_eos": int(m["val/num_eos_tokens"].sum()),
        "gen_s": round(gen_s, 3),
        "gen_tokens_per_s": round(tokens / gen_s, 1) if gen_s else None,
        "update_s": [round(x, 3) for x in upd],
        "steady_episodes_per_s": round(cfg.rollout_batch * len(steady) / sum(steady), 3),
        "last_log": last,
        "phase_s": result.phases,  # where the time went (rlhf_lessons.core.phases)
        "mode": "fp32",
        "n_params_each": W.n_params(policy),
        "versions": W.versions(),
    }


def run(peer_dir_path: str | Path | None = None, python_for_peer: str | Path | None = None,
        threads: int = 2) -> dict:
    """Both sides in one run: {"ours": {...}, "peer": {...}, "ppo_episodes_per_s_ratio"}.

    Ours runs in a fresh subprocess (clean peak RSS) before and after TRL with
    ``python_for_peer`` (default: the cached ``trl==1.12.0`` venv), pooled
    (``peers.around_peer``). fp32 on both
    sides: our loop does not use bf16 autocast, so the peer runs without ``--bf16``.
    """
    peer = peer_dir(peer_dir_path)
    python = python_for_peer or ensure_venv(TRL_VERSION)
    ours, theirs = around_peer(
        lambda: run_script(sys.executable, Path(__file__).resolve(),
                           ["--ours-only", "--peer-dir", str(peer), "--threads", str(threads)],
                           threads=threads),
        lambda first: run_script(python, peer / "trl_ppo.py", [], threads=threads),
        "episodes_per_s")
    ratio = ours["episodes_per_s"] / theirs["episodes_per_s"]
    # On a shared machine one starved update can dominate a total; the ratio of
    # median update times is the robust companion figure (same work per update).
    med = _median(theirs["update_s"]) / _median(ours["update_s"])
    return {"ours": ours, "peer": theirs, "ppo_episodes_per_s_ratio": round(ratio, 3),
            "ppo_median_update_speedup": round(med, 3),
            "ppo_peak_rss_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3)}


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ours-only", action="store_true", help="only our side, in this process")
    o = ap.parse_args()
    if o.ours_only:
        print(json.dumps(run_ours(peer_dir(o.peer_dir), o.threads)), flush=True)
        return
    res = run(o.peer_dir, threads=o.threads)
    print(json.dumps(res["ours"]), flush=True)
    print(json.dumps(res["peer"]), flush=True)
    print(json.dumps({k: res[k] for k in ("ppo_episodes_per_s_ratio",
                                          "ppo_median_update_speedup",
                                          "ppo_peak_rss_ratio")}), flush=True)


if __name__ == "__main__":
    main()
