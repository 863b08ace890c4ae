"""The course's recipe in TRL at ``gpt2`` scale: a reward model, then DPO or GRPO.

Notebook 08 runs each step on the course's 4M-parameter GPT-2 on a CPU; this script
runs the same steps on the real ``gpt2`` (124M) and the Hub's full
``Anthropic/hh-rlhf`` (160,800 train pairs), on as many GPUs as accelerate gives it:

    accelerate launch --config_file configs/accelerate_multi_gpu.yaml \\
        scripts/train_trl_gpt2.py --stage all
    accelerate launch --config_file configs/accelerate_zero2.yaml \\
        scripts/train_trl_gpt2.py --stage all      # DeepSpeed ZeRO-2

Stages: ``reward`` (RewardTrainer, gpt2 + a score head), ``dpo`` (DPOTrainer from
``--policy``, gpt2 by default: pass an SFT checkpoint for the proper recipe),
``grpo`` (GRPOTrainer with the reward model of stage ``reward`` plus a rule reward),
``all`` = reward, dpo, grpo. Offline, it stops at once with the reason.

``--smoke``: the same code path on the bundled HH-RLHF rows and a tiny random GPT-2
on the course tokenizer, a few steps per stage on the CPU (seconds; the tests run it).
It prints one JSON line per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlhf_lessons.train.trl_bridge import quiet, rule_reward  # noqa: E402

quiet()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer  # noqa: E402

from rlhf_lessons.core.config import preset  # noqa: E402
from rlhf_lessons.core.data import load_all_hh  # noqa: E402
from rlhf_lessons.core.hub import HubUnreachableError, require_hub  # noqa: E402
from rlhf_lessons.core.preference_formats import trl_row  # noqa: E402
from rlhf_lessons.course import artefacts  # noqa: E402
from rlhf_lessons.train.reward import build_reward_model  # noqa: E402
from rlhf_lessons.train.trl_bridge import common_args, drop_printing, fitting_rows  # noqa: E402

STAGES = ("reward", "dpo", "grpo")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stage", choices=(*STAGES, "all"), default="all")
    ap.add_argument("--smoke", "--dry-run", action="store_true", dest="smoke",
                    help="bundled data, a tiny random model, a few CPU steps")
    ap.add_argument("--model", default="gpt2", help="Hub model for the reward model")
    ap.add_argument("--policy", default="gpt2", help="Hub model or folder for DPO/GRPO")
    ap.add_argument("--output-dir", default=None)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--max-steps", type=int, default=-1, help="-1: one epoch")
    ap.add_argument("--batch-size", type=int, default=8, help="per GPU")
    return ap.parse_args(argv)


def load_data(opts):
    """(tokenizer, policy loader, reward-model loader, train rows, prompts)."""
    if opts.smoke:
        cfg = preset("fast")
        tok = artefacts.course_tokenizer()
        ds = load_all_hh("train", "local", max_rows_per_subset=16)

        def policy():
            return artefacts.load_policy(cfg, "sft", "cpu")[0].train()

        def reward_model():
            return build_reward_model(policy(), tok.pad_token_id, cfg.seed)
        return tok, policy, reward_model, ds

    require_hub(f"scripts/train_trl_gpt2.py ({opts.model} and Anthropic/hh-rlhf)")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(opts.model)
    tok.pad_token = tok.eos_token  # gpt2 has no pad token: TRL masks by attention
    ds = load_dataset("Anthropic/hh-rlhf", split="train")

    def policy():
        return AutoModelForCausalLM.from_pretrained(opts.policy)

    def reward_model():
        m = AutoModelForSequenceClassification.from_pretrained(opts.model, num_labels=1)
        m.config.pad_token_id = tok.pad_token_id
        return m
    return tok, policy, reward_model, ds


def train_args(opts, out: Path, kind, **extra):
    base = common_args(out, seed=0, use_cpu=opts.smoke or not torch.cuda.is_available(),
                       log_every=1 if opts.smoke else 50)
    base.update(bf16=torch.cuda.is_available() and not opts.smoke,
                per_device_train_batch_size=opts.batch_size, max_steps=opts.max_steps)
    if opts.smoke:
        base.update(max_steps=2, per_device_train_batch_size=4)
    base.update(extra)
    return kind(**base)


def main(argv=None) -> int:
    opts = parse_args(argv)
    try:
        tok, policy, reward_model, ds = load_data(opts)
    except HubUnreachableError as err:
        print(f"train_trl_gpt2: {err}", file=sys.stderr)
        return 2
    max_len = 96 if opts.smoke else opts.max_length
    out = Path(opts.output_dir or artefacts.output_dir("09_graduate_to_trl") / "trl-gpt2")
    keep = fitting_rows(ds["chosen"], ds["rejected"], tok, max_len)
    pairs = [trl_row(ds[int(i)]["chosen"], ds[int(i)]["rejected"], "explicit")
             for i in keep]
    stages = STAGES if opts.stage == "all" else (opts.stage,)
    for stage in stages:
        t0 = time.perf_counter()
        if stage == "reward":
            rows = [{"chosen": p["prompt"] + p["chosen"],
                     "rejected": p["prompt"] + p["rejected"]} for p in pairs]
            args = train_args(opts, out / "reward", RewardConfig, max_length=max_len,
                              learning_rate=1e-5 if not opts.smoke else 1e-4)
            trainer = RewardTrainer(model=reward_model(), args=args, processing_class=tok,
                                    train_dataset=Dataset.from_list(rows))
        elif stage == "dpo":
            args = train_args(opts, out / "dpo", DPOConfig, max_length=max_len, beta=0.1,
                              learning_rate=5e-7 if not opts.smoke else 5e-5)
            trainer = DPOTrainer(model=policy(), ref_model=policy(), args=args, processing_class=tok,
                                 train_dataset=Dataset.from_list(pairs))
        else:
            rm_dir = out / "reward"
            judge = (str(rm_dir) if (rm_dir / "config.json").exists() and not opts.smoke
                     else reward_model())
            prompts = [{"prompt": p["prompt"]} for p in pairs]
            args = train_args(opts, out / "grpo", GRPOConfig, num_generations=4,
                              max_completion_length=8 if opts.smoke else 64,
                              learning_rate=1e-6 if not opts.smoke else 1e-5)
            trainer = GRPOTrainer(model=policy(), reward_funcs=[judge, rule_reward],
                                  reward_processing_classes=[tok, None], args=args, processing_class=tok,
                                  train_dataset=Dataset.from_list(prompts))
        drop_printing(trainer)
        result = trainer.train()
        if not opts.smoke:
            trainer.save_model(str(out / stage))
        last = trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else {}
        print(json.dumps({"stage": stage, "pairs": len(pairs), "steps": trainer.state.global_step,
                          "loss": round(result.training_loss, 4),
                          "logged": sorted(last)[:12],
                          "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
