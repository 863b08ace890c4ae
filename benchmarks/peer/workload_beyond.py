"""The DPO and GRPO workloads of the TRL comparison (issue 14), on top of workload.py.

New in this repository (not in the shared bench folder): every size comes from
``workload.py`` where one exists there; the rest are TRL 1.16.0's defaults, named here
once, so that both sides import them. Only the standard library, torch and
transformers are imported.

  * DPO: the reward workload's 1,024 train pairs and 312 held-out pairs (harmless-base
    rows [0, 1024) and [2000, 2312)), each side tokens(text) + [eos] left-truncated to
    256 tokens; the prompt is the two sides' common token prefix, the answers the
    rest. Batch 16 pairs, 1 epoch, the policy GPT-2 of workload.py, a frozen copy as
    the reference. TRL defaults: beta 0.1, sigmoid loss, lr 1e-6 linear to 0, AdamW,
    grad clip 1.0. Held-out figure: the implicit reward's pairwise accuracy
    (workload.pairwise_accuracy on beta * (log pi - log pi_ref) of each sequence; the
    shared prefix cancels in the comparison).
  * GRPO: the PPO workload's 64 prompts, policy and reward model; groups of 4 answers
    per prompt, 4 prompts per update (16 episodes, the PPO rollout batch), 32 new
    tokens at temperature 1.0, 48 updates (768 episodes: 3 passes over the prompts).
    TRL defaults: beta 0 (no KL term), epsilon 0.2, one iteration per batch, rewards
    scaled by the group's std, the "dapo" token-level loss, linear decay to 0, grad
    clip 1.0; except the learning rate: 1e-2, not TRL's 1e-6, because at 1e-6 (and
    16 updates) neither side's reward moved (ours -0.063, TRL's -0.062 between the
    first and last updates: prompt-to-prompt noise), and at 1e-3 the held-out rise
    (+0.004 ours, +0.009 TRL's) stayed below its standard error (0.013), so the
    quality check compared noise. The 1M-parameter random policy needs a large step
    to move a random reward model's score within 768 episodes. Quality: :func:`grpo_heldout_reward`, the reward model's mean score on 4
    seeded samples of each of the 64 prompts, before and after training, by the
    same code on both sides.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as W  # noqa: E402

# --- DPO ---------------------------------------------------------------------------
DPO_TRAIN_ROWS = W.RM_TRAIN_ROWS
DPO_HELDOUT_ROWS = W.RM_HELDOUT_ROWS
DPO_BATCH_SIZE = W.BATCH_SIZE
DPO_EPOCHS = 1
DPO_BETA = 0.1  # TRL DPOConfig default
DPO_LR = 1e-6  # TRL DPOConfig default
DPO_MAX_GRAD_NORM = 1.0  # transformers default
# --quick: a reduced size that only checks a script runs end to end (never timed)
DPO_QUICK_TRAIN_ROWS = (0, 48)
DPO_QUICK_HELDOUT_ROWS = (2000, 2032)

# --- GRPO --------------------------------------------------------------------------
GRPO_GROUP_SIZE = 4
GRPO_PROMPTS_PER_UPDATE = W.PPO_ROLLOUT_BATCH // GRPO_GROUP_SIZE  # 16 episodes / update
GRPO_UPDATES = 3 * W.PPO_UPDATES  # 48 updates: 768 episodes, 3 passes over the prompts
GRPO_MAX_NEW_TOKENS = W.PPO_MAX_NEW_TOKENS
GRPO_TEMPERATURE = W.PPO_TEMPERATURE
GRPO_LR = 1e-2  # not TRL's 1e-6 default: there the reward cannot move (module docstring)
GRPO_BETA = 0.0  # TRL GRPOConfig default: no KL term
GRPO_EPSILON = 0.2
GRPO_MAX_GRAD_NORM = 1.0
GRPO_QUICK_UPDATES = 2
GRPO_EVAL_SAMPLES = 4  # seeded samples per prompt for the held-out reward
GRPO_EVAL_SEED = 1234
# Training seeds (sampling and prompt order; the models' initial weights stay the
# workload's). At lr 1e-2 a run is chaotic: one rounding difference (a fused
# AdamW) moved our rise from +0.163 to +0.015, so the rise is the mean of 3 runs
# per side, with the seed-to-seed standard error, and speed pools the 3 runs.
GRPO_TRAIN_SEEDS = (0, 1, 2)


def summarise_grpo_runs(runs: list[dict]) -> dict:
    """Pool the runs of one side: episodes/s over all of them, the mean held-out
    reward rise and its standard error across seeds (each run: "episodes",
    "train_s", "reward_rise")."""
    rises = [r["reward_rise"] for r in runs]
    n = len(rises)
    mean = sum(rises) / n
    sd = (sum((x - mean) ** 2 for x in rises) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"episodes_per_s": round(sum(r["episodes"] for r in runs)
                                    / sum(r["train_s"] for r in runs), 3),
            "reward_rise": round(mean, 5), "reward_rise_se": round(sd / n ** 0.5, 5),
            "reward_rises": [round(x, 5) for x in rises], "n_runs": n}


def split_pair(chosen_ids: list[int], rejected_ids: list[int]) -> dict:
    """prompt = the common token prefix; chosen / rejected = the rest of each side."""
    n = 0
    for a, b in zip(chosen_ids, rejected_ids):
        if a != b:
            break
        n += 1
    return {"prompt_ids": chosen_ids[:n], "chosen_ids": chosen_ids[n:],
            "rejected_ids": rejected_ids[n:]}


def dpo_pairs(tok, rows_range: tuple[int, int]) -> list[dict]:
    """The reward workload's encoded pairs, split into prompt / chosen / rejected ids.

    Pairs whose two sides are identical (no answer) are dropped, as TRL cannot train
    on an empty completion either."""
    out = []
    for p in W.reward_pairs(tok, rows_range):
        s = split_pair(p["chosen_ids"], p["rejected_ids"])
        if s["chosen_ids"] and s["rejected_ids"]:
            out.append(s)
    return out


def full_pairs(pairs: list[dict]) -> list[dict]:
    """prompt + answer of each side, the shape workload.pairwise_accuracy takes."""
    return [{"chosen_ids": p["prompt_ids"] + p["chosen_ids"],
             "rejected_ids": p["prompt_ids"] + p["rejected_ids"]} for p in pairs]


def _sequence_logps(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logp * mask[:, 1:]).sum(-1)


def implicit_reward_fn(policy, ref_policy, beta: float = DPO_BETA):
    """reward_fn(ids, mask) -> beta * (log pi(seq) - log pi_ref(seq)), right-padded
    inputs: DPO's implicit reward for workload.pairwise_accuracy."""

    @torch.no_grad()
    def fn(ids, mask):
        return beta * (_sequence_logps(policy, ids, mask) - _sequence_logps(ref_policy, ids, mask))

    return fn


def grpo_prompt_texts(tok) -> list[str]:
    """The PPO workload's 64 prompts as text (TRL's GRPOTrainer takes text prompts)."""
    return [tok.decode(p) for p in W.ppo_prompts(tok)]


@torch.no_grad()
def grpo_heldout_reward(policy, reward_model, tok, prompt_ids: list[list[int]],
                        samples: int = GRPO_EVAL_SAMPLES, seed: int = GRPO_EVAL_SEED) -> dict:
    """The reward model's score of ``samples`` answers per prompt, sampled with
    ``model.generate`` at the workload's temperature and new tokens (the same code
    for both sides, outside the timed region). Answers end at their first EOS; the
    score is read at the last real token, as in training.

    Returns {"mean", "se", "n"}: the mean score and its standard error over the
    ``len(prompt_ids) * samples`` answers.
    """
    was_training = policy.training
    policy.eval()
    eos, pad = tok.eos_token_id, tok.pad_token_id
    rows = [p for p in prompt_ids for _ in range(samples)]
    torch.manual_seed(seed)
    scores = []
    for i in range(0, len(rows), 64):  # chunks: the peak memory stays the training's
        chunk = rows[i:i + 64]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        out = policy.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                              temperature=GRPO_TEMPERATURE, top_k=0, top_p=1.0,
                              max_new_tokens=GRPO_MAX_NEW_TOKENS, pad_token_id=pad,
                              eos_token_id=eos)[:, width:].tolist()
        seqs = []
        for p, answer in zip(chunk, out):
            cut = answer.index(eos) + 1 if eos in answer else len(answer)
            seqs.append(p + answer[:cut])
        x, m = W.pad_right(seqs, pad)
        scores.append(reward_model(input_ids=x, attention_mask=m).logits[:, 0].float())
    scores = torch.cat(scores)
    policy.train(was_training)
    return {"mean": round(float(scores.mean()), 5),
            "se": round(float(scores.std() / len(scores) ** 0.5), 5), "n": len(scores)}
