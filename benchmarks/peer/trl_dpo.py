"""Peer baseline: TRL 1.16.0 DPOTrainer on the shared DPO workload (workload_beyond.py).

Run with a virtual environment that has trl 1.16.0 (plus torch, transformers, datasets):
    <venv>/bin/python trl_dpo.py [--bf16] [--quick]

Prints one JSON line: {"impl":"trl","task":"dpo","pairs_per_s":..,"heldout_implicit_acc":..,
"peak_rss_mb":.., ...}. pairs_per_s = training pairs / wall time of trainer.train().
The dataset is given already tokenised (prompt_ids, chosen_ids, rejected_ids), so TRL
trains on exactly the sequences the project does. TRL's defaults otherwise (beta 0.1,
sigmoid loss, lr 1e-6, reference forward at every step), except precision: fp32 (or
bf16 autocast with --bf16) without gradient checkpointing. --quick: a reduced size that
only checks the script runs (not a measurement).
"""

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as W  # noqa: E402
import workload_beyond as WB  # noqa: E402

W.quiet()

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import PrinterCallback, ProgressCallback  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402


class PreTokenizedDPOTrainer(DPOTrainer):
    """DPOTrainer on a dataset that already holds prompt_ids / chosen_ids / rejected_ids
    (the columns TRL's own preparation produces), so both sides see the same tokens."""

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    W.set_seed(W.SEED)
    tok = W.build_tokenizer("right")
    train_rows = WB.DPO_QUICK_TRAIN_ROWS if opts.quick else WB.DPO_TRAIN_ROWS
    held_rows = WB.DPO_QUICK_HELDOUT_ROWS if opts.quick else WB.DPO_HELDOUT_ROWS
    train_pairs = WB.dpo_pairs(tok, train_rows)
    held_pairs = WB.full_pairs(WB.dpo_pairs(tok, held_rows))
    model = W.build_policy(tok, W.SEED)
    ref = copy.deepcopy(model).eval()
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl_dpo_"),
        per_device_train_batch_size=WB.DPO_BATCH_SIZE,
        num_train_epochs=WB.DPO_EPOCHS,
        max_length=W.MAX_LENGTH,
        learning_rate=WB.DPO_LR,
        beta=WB.DPO_BETA,
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=WB.DPO_MAX_GRAD_NORM,
        logging_steps=8,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=W.SEED,
        data_seed=W.SEED,
        disable_tqdm=True,
        bf16=opts.bf16,
        gradient_checkpointing=False,
    )
    trainer = PreTokenizedDPOTrainer(model=model, ref_model=copy.deepcopy(ref), args=args,
                                     train_dataset=Dataset.from_list(train_pairs), processing_class=tok)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    n_train = len(trainer.train_dataset)
    t0 = time.perf_counter()
    out = trainer.train()
    train_s = time.perf_counter() - t0
    train_peak_rss_mb = W.peak_rss_mb()  # before the held-out evaluation (same code both sides)
    policy = trainer.model.eval()
    acc = W.pairwise_accuracy(WB.implicit_reward_fn(policy, ref), held_pairs, tok.pad_token_id)
    logs = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
    W.emit({
        "impl": "trl", "task": "dpo",
        "pairs_per_s": round(n_train * WB.DPO_EPOCHS / train_s, 2),
        "heldout_implicit_acc": round(acc, 4),
        "peak_rss_mb": round(W.peak_rss_mb(), 1),
        "train_peak_rss_mb": round(train_peak_rss_mb, 1),
        "train_s": round(train_s, 3), "n_train_pairs": n_train,
        "n_heldout_pairs": len(held_pairs), "steps": trainer.state.global_step,
        "final_train_loss": round(out.training_loss, 4),
        "last_logged": {k: round(float(logs[-1][k]), 4) for k in
                        ("rewards/accuracies", "rewards/margins")} if logs else None,
        "mode": "bf16" if opts.bf16 else "fp32", "quick": opts.quick,
        "n_params": W.n_params(policy), "versions": W.versions(),
    })


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
