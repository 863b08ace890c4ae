"""Peer baseline: TRL 1.16.0 GRPOTrainer on the shared GRPO workload (workload_beyond.py).

Run with a virtual environment that has trl 1.16.0 (plus torch, transformers, datasets):
    <venv>/bin/python trl_grpo.py [--bf16] [--quick]

Prints one JSON line: {"impl":"trl","task":"grpo","episodes_per_s":..,"reward_rise":..,
"peak_rss_mb":.., ...}. episodes_per_s = answers sampled and trained on / wall time of
trainer.train() pooled over 3 training seeds; reward_rise = the mean over those runs of the
held-out reward after minus before (workload_beyond.grpo_heldout_reward, untimed). The PPO workload's 64 prompts, policy
and reward model; 4 answers per prompt, 4 prompts per step, 32 new tokens at
temperature 1.0, 48 steps, lr 1e-2 (workload_beyond.py says why not 1e-6). TRL's
defaults otherwise (beta 0, epsilon 0.2, "dapo" loss, group-std scaling), fp32 (or bf16
autocast with --bf16) without gradient checkpointing. --quick: 2 steps, only to check
the script runs (not a measurement).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as W  # noqa: E402
import workload_beyond as WB  # noqa: E402

W.quiet()

from datasets import Dataset  # noqa: E402
from transformers import PrinterCallback, ProgressCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    tok = W.build_tokenizer("left")
    prompts = WB.grpo_prompt_texts(tok)
    prompt_ids = W.ppo_prompts(tok)
    updates = WB.GRPO_QUICK_UPDATES if opts.quick else WB.GRPO_UPDATES
    per_step = WB.GRPO_PROMPTS_PER_UPDATE * WB.GRPO_GROUP_SIZE
    runs = []
    for seed in WB.GRPO_TRAIN_SEEDS[:1] if opts.quick else WB.GRPO_TRAIN_SEEDS:
        W.set_seed(W.SEED)
        policy, _, _, reward_model = W.build_ppo_models(tok)  # the workload's weights
        before = WB.grpo_heldout_reward(policy, reward_model, tok, prompt_ids)
        args = GRPOConfig(
            output_dir=tempfile.mkdtemp(prefix="trl_grpo_"),
            per_device_train_batch_size=per_step,
            num_generations=WB.GRPO_GROUP_SIZE,
            max_completion_length=WB.GRPO_MAX_NEW_TOKENS,
            temperature=WB.GRPO_TEMPERATURE,
            max_steps=updates,
            learning_rate=WB.GRPO_LR,
            beta=WB.GRPO_BETA,
            epsilon=WB.GRPO_EPSILON,
            max_grad_norm=WB.GRPO_MAX_GRAD_NORM,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.0,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
            seed=W.SEED + seed,
            data_seed=W.SEED + seed,
            disable_tqdm=True,
            bf16=opts.bf16,
            gradient_checkpointing=False,
        )
        trainer = GRPOTrainer(model=policy, reward_funcs=reward_model, args=args,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                              processing_class=tok,
                              reward_processing_classes=W.build_tokenizer("right"))
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        after = WB.grpo_heldout_reward(trainer.model, reward_model, tok, prompt_ids)
        logs = [h for h in trainer.state.log_history if "reward" in h]
        runs.append({"seed": seed, "train_s": round(train_s, 3),
                     "episodes": trainer.state.global_step * per_step,
                     "before": before, "after": after,
                     "reward_rise": round(after["mean"] - before["mean"], 5),
                     "frac_reward_zero_std": round(sum(
                         float(h.get("frac_reward_zero_std", 0)) for h in logs)
                         / max(1, len(logs)), 4)})
    W.emit({
        "impl": "trl", "task": "grpo", **WB.summarise_grpo_runs(runs), "runs": runs,
        "peak_rss_mb": round(W.peak_rss_mb(), 1), "updates": updates,
        "group_size": WB.GRPO_GROUP_SIZE,
        "mode": "bf16" if opts.bf16 else "fp32", "quick": opts.quick,
        "n_params_each": W.n_params(policy), "versions": W.versions(),
    })


if __name__ == "__main__":
    main()
