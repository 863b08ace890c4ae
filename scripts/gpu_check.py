"""The gpu preset, checked in a few minutes: every training step of the course at GPT-2 size.

On a machine with a GPU (``scripts/gpu_check.sh``, or ``python scripts/gpu_check.py``):

1. the ``gpt2``-sized model (12 layers, 768 wide): the real ``gpt2`` when the Hugging Face
   Hub can be reached, else the same shape with random weights (said in one line);
2. a few pretraining steps (next-token loss on the bundled HH transcripts);
3. a few judge steps (Bradley-Terry loss, notebook 03's trainer);
4. one PPO update against that judge (notebook 04's loop);
5. one DPO step on the same pairs (``rlhf_lessons.train.dpo``);

each under bf16 autocast where the hardware has it, printing one JSON line with its
throughput and the peak memory, and a last summary line. ``--smoke`` runs the same
steps with a tiny model on the CPU in seconds (what the tests run), so the script is
known to work before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import resource
import time

import numpy as np
import torch

from rlhf_lessons.core import hub, models
from rlhf_lessons.core.config import ModelConfig, PPOConfig, RewardConfig, preset
from rlhf_lessons.core.data import load_all_hh
from rlhf_lessons.core.utils import autocast, get_device, precision_name, seed_everything
from rlhf_lessons.train import dpo, ppo, pretrain, reward
from rlhf_lessons.train import rollout as rl

TINY = ModelConfig(name="tiny", n_layer=2, n_embd=64, n_head=2, n_positions=256)


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch, or this process's peak RSS on the CPU."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def emit(step: str, device, t0: float, **fields) -> dict:
    sync(device)
    row = {"step": step, "wall_s": round(time.time() - t0, 3), **fields,
           "peak_mem_mb": peak_memory_mb(device)}
    print(json.dumps(row), flush=True)
    return row


def the_model(smoke: bool, device):
    """(policy, tokenizer, where): real gpt2 if the Hub answers, else random weights."""
    tok = models.load_gpt2_tokenizer()
    if not smoke and hub.hub_reachable():
        policy, tok = models.load_hub_gpt2("gpt2", device)
        return policy, tok, "the Hub's pretrained gpt2"
    mc = TINY if smoke else preset("gpu").model
    policy = models.build_gpt2(len(tok), mc, tok.eos_token_id).to(device)
    why = "smoke test" if smoke else "the Hub cannot be reached"
    return policy, tok, f"random weights of {mc.name} size ({why})"


def pretrain_steps(policy, stream, device, n_steps, batch, seq_len):
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    t0 = time.time()
    for _ in range(n_steps):
        x = pretrain.batch_from_stream(stream, batch, seq_len + 1, gen).to(device)
        with autocast(device):
            logits = policy(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return emit("pretrain", device, t0, steps=n_steps, tokens_per_s=round(
        n_steps * batch * seq_len / max(time.time() - t0, 1e-9), 1), loss=round(loss.item(), 3))


def judge_steps(policy, pairs, tok, device, n_steps, batch):
    judge = reward.build_reward_model(policy, tok.pad_token_id).to(device)
    rc = RewardConfig(max_len=max(len(s) for s in pairs.chosen_ids + pairs.rejected_ids),
                      batch_size=batch, lr=1e-5)
    t0 = time.time()
    metrics = reward.train_reward_model(judge, pairs, rc, device, pad_id=tok.pad_token_id,
                                        show_progress=False, max_steps=n_steps).metrics
    row = emit("judge", device, t0, steps=n_steps, pairs_per_s=round(
        n_steps * batch / max(time.time() - t0, 1e-9), 1),
        loss=round(float(metrics["loss"].iloc[-1]), 3))
    return judge.eval(), row


def ppo_update(policy, judge, tok, prompts, device, cfg: PPOConfig):
    ref = copy.deepcopy(policy).eval()
    value_model = rl.make_value_model(reward_model=judge)
    t0 = time.time()
    run = ppo.train_ppo(policy, ref, value_model, judge, tok, prompts, cfg, n_updates=1,
                        show_progress=False)
    row = run.metrics.iloc[-1]
    return emit("ppo", device, t0, episodes=cfg.rollout_batch, episodes_per_s=round(
        cfg.rollout_batch / max(time.time() - t0, 1e-9), 2),
        kl=round(float(row["objective/kl"]), 4), score=round(float(row["objective/scores"]), 3))


def dpo_step(policy, pairs, tok, device, batch, beta=0.1):
    ref = copy.deepcopy(policy).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    idx = list(range(min(batch, len(pairs))))
    t0 = time.time()
    with autocast(device):
        pi_c, pi_r = dpo.pair_logprobs(policy, pairs, idx, tok.pad_token_id, device)
        with torch.no_grad():
            ref_c, ref_r = dpo.pair_logprobs(ref, pairs, idx, tok.pad_token_id, device)
    n = len(idx)
    loss, rc, rr = dpo.dpo_loss(pi_c, pi_r, ref_c, ref_r, beta)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    # At the first step the policy IS the reference: the loss must be log 2.
    return emit("dpo", device, t0, pairs=n, pairs_per_s=round(n / max(time.time() - t0, 1e-9), 1),
                loss=round(loss.item(), 4), loss_at_start_is_log2=bool(abs(loss.item() - np.log(2))
                < 1e-3))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model, CPU, seconds")
    ap.add_argument("--steps", type=int, default=None, help="pretrain and judge steps")
    o = ap.parse_args(argv)
    if o.steps is not None and o.steps < 1:
        ap.error(f"--steps must be >= 1, got {o.steps}")
    seed_everything(0)
    cfg = preset("fast" if o.smoke else "gpu")
    device = torch.device("cpu") if o.smoke else get_device(cfg)
    steps = o.steps or (2 if o.smoke else 20)
    batch, seq_len = (4, 64) if o.smoke else (16, 512)
    policy, tok, where = the_model(o.smoke, device)
    head = {"step": "setup", "device": str(device), "precision": precision_name(device),
            "torch": torch.__version__, "python": platform.python_version(), "model": where,
            "parameters": models.n_params(policy)}
    if device.type == "cuda":
        head["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(head), flush=True)

    rows = load_all_hh("train", "local", 64 if o.smoke else 512)
    texts = rows["chosen"][:256]
    stream = np.concatenate([np.asarray(tok(t)["input_ids"] + [tok.eos_token_id])
                             for t in texts])
    out = [pretrain_steps(policy, stream, device, steps, batch, seq_len)]
    max_len = 128 if o.smoke else cfg.reward.max_len
    pairs = reward.prepare_pairs(rows.select(range(batch * steps)), tok, max_len)
    judge, row = judge_steps(policy, pairs, tok, device, steps, batch)
    out.append(row)
    prompts = rows["prompt"][:64]
    pcfg = cfg.ppo if o.smoke else dataclasses.replace(cfg.ppo, rollout_batch=32,
                                                        max_new_tokens=48)
    out.append(ppo_update(policy, judge, tok, prompts, device, pcfg))
    dpo_pairs = dpo.policy_pairs(rows.select(range(batch * steps)), tok, max_len)
    out.append(dpo_step(policy, dpo_pairs, tok, device, batch))
    summary = {"step": "summary", "device": head["device"], "model": where,
               "ok": all(r.get("loss_at_start_is_log2", True) for r in out),
               "peak_mem_mb": peak_memory_mb(device)}
    print(json.dumps(summary), flush=True)
    return out


if __name__ == "__main__":
    main()
