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
    tokens at temperature 1.0, 16 updates. TRL defaults: beta 0 (no KL term),
    epsilon 0.2, one iteration per batch, rewards scaled by the group's std, the
    "dapo" token-level loss, lr 1e-6 linear to 0, grad clip 1.0.
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
GRPO_UPDATES = W.PPO_UPDATES
GRPO_MAX_NEW_TOKENS = W.PPO_MAX_NEW_TOKENS
GRPO_TEMPERATURE = W.PPO_TEMPERATURE
GRPO_LR = 1e-6  # TRL GRPOConfig default
GRPO_BETA = 0.0  # TRL GRPOConfig default: no KL term
GRPO_EPSILON = 0.2
GRPO_MAX_GRAD_NORM = 1.0
GRPO_QUICK_UPDATES = 2


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
