"""Peer baseline: TRL 1.16.0 GRPOTrainer with peft LoRA on the writer (workload_writer.py).

Run with a virtual environment that has trl 1.16.0 and peft 0.21.2 (plus torch,
transformers, datasets; ``peers.ensure_venv("1.16.0", extra_pins=("peft==0.21.2",))``):
    <venv>/bin/python trl_writer_grpo.py --writer-dir DIR [--quick] [--updates N]

DIR: the converted SmolLM2-135M-Instruct (the course's cache folder; bench_writer.py
passes it). Does not import rlhf_lessons. Prints one JSON line: {"impl":"trl",
"task":"writer_grpo","episodes_per_s":..,"reward_rise":..,"peak_rss_mb":.., ...}.
episodes_per_s = answers sampled and trained on / wall time of trainer.train(), pooled
over 3 training seeds; reward_rise = the mean over those runs of the held-out reward
after minus before (workload_writer.heldout_reward, untimed; "before" is the writer
without adapters, the same for every seed, so it is measured once).

The notebook's GRPO: LoRA r 16, alpha 32, dropout 0 on q/k/v/o_proj through
``peft_config``; 4 questions x 4 answers per step, 32 new tokens at temperature 0.7,
top-p 0.9, top-k off; lr 3e-4 linear to 0, no warm-up, no weight decay, grad clip 1.0;
beta 0.05 (TRL's k3 KL to the adapter-free model), epsilon 0.2, one iteration,
group-std scaling, the "dapo" loss (the mean over the batch's answer tokens, as ours),
``use_bias_correction_kl=False`` (ours has no importance weight on the KL); fp32,
no gradient checkpointing. --quick: workload_writer.QUICK's tiny sizes, only to check
the script runs (not a measurement).
"""

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as W  # noqa: E402
import workload_writer as WW  # noqa: E402

W.quiet()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import PrinterCallback, ProgressCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--writer-dir", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--updates", type=int, default=None, help="default: workload_writer's")
    ap.add_argument("--threads", type=int, default=WW.THREADS)
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    S = WW.sizes(opts.quick)
    if opts.updates:
        S["updates"] = opts.updates
    qs = WW.load_questions()
    heldout = qs["heldout"][:S["heldout_questions"]]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": q["text"]}],
                               "question": q["text"], "answer": q["answer"]}
                              for q in qs["train"]])

    def writer_reward(prompts, completions, question, answer, **_):
        return WW.score_answers([{"text": q, "answer": a} for q, a in zip(question, answer)],
                                [c[-1]["content"] for c in completions])

    per_step = S["prompts_per_update"] * S["group_size"]
    model, tok = WW.load_writer(opts.writer_dir)
    before = WW.heldout_reward(model, tok, heldout, S["eval_samples"],
                               max_new_tokens=S["max_new_tokens"])
    runs, trainer = [], None
    for seed in WW.TRAIN_SEEDS[:1] if opts.quick else WW.TRAIN_SEEDS:
        if runs:  # a fresh writer for each seed
            del model, trainer
            gc.collect()
            model, tok = WW.load_writer(opts.writer_dir)
        args = GRPOConfig(
            output_dir=tempfile.mkdtemp(prefix="trl_writer_grpo_"),
            per_device_train_batch_size=per_step,
            num_generations=S["group_size"],
            generation_batch_size=per_step,  # one generation batch per optimiser step
            num_iterations=1,
            max_completion_length=S["max_new_tokens"],
            temperature=WW.TEMPERATURE,
            top_p=WW.TOP_P,
            top_k=0,
            max_steps=S["updates"],
            learning_rate=WW.LR,
            beta=WW.BETA,
            epsilon=WW.EPSILON,
            loss_type="dapo",
            scale_rewards="group",
            use_bias_correction_kl=False,
            mask_truncated_completions=False,
            max_grad_norm=WW.MAX_GRAD_NORM,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=WW.WEIGHT_DECAY,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            bf16=False,
            dataloader_num_workers=0,
            seed=seed,
            data_seed=seed,
            disable_tqdm=True,
            gradient_checkpointing=False,
        )
        torch.manual_seed(seed)  # LoRA A's draw, as add_lora(seed=seed) on our side
        lora = LoraConfig(r=WW.LORA_R, lora_alpha=WW.LORA_ALPHA, lora_dropout=WW.LORA_DROPOUT,
                          target_modules=list(WW.LORA_TARGETS), bias="none")
        trainer = GRPOTrainer(model=model, reward_funcs=writer_reward, args=args,
                              train_dataset=data, processing_class=tok, peft_config=lora)
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
        after = WW.heldout_reward(trainer.model, tok, heldout, S["eval_samples"],
                                  max_new_tokens=S["max_new_tokens"])
        logs = [h for h in trainer.state.log_history if "reward" in h]
        runs.append({"seed": seed, "train_s": round(train_s, 3),
                     "episodes": trainer.state.global_step * per_step, "after": after,
                     "reward_rise": round(after["mean"] - before["mean"], 5),
                     "train_reward_first": round(float(logs[0]["reward"]), 4) if logs else None,
                     "train_reward_last": round(float(logs[-1]["reward"]), 4) if logs else None,
                     "frac_reward_zero_std": round(sum(
                         float(h.get("frac_reward_zero_std", 0)) for h in logs)
                         / max(1, len(logs)), 4)})
    W.emit({
        "impl": "trl", "task": "writer_grpo", **WW.summarise_runs(runs), "before": before,
        "runs": runs, "peak_rss_mb": round(W.peak_rss_mb(), 1), "updates": S["updates"],
        "group_size": S["group_size"], "prompts_per_update": S["prompts_per_update"],
        "mode": "fp32", "quick": opts.quick,
        "n_trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "versions": {**W.versions(), "peft": __import__("peft").__version__},
    })


if __name__ == "__main__":
    main()
