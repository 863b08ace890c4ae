"""The one shared tiny RLHF workload used by every benchmark that compares against TRL.

Both the TRL peer baselines (trl_reward.py, trl_ppo.py) and the project's own
implementation must build their inputs, models and accuracy figures from this
module, so that throughput and accuracy are measured on identical work.

Only the standard library, torch and transformers are imported here (no TRL,
no datasets), so the module works in the TRL 1.16 and TRL 1.12 environments and in
the project's own environment alike.

Workload summary (all fixed here, nowhere else):
  * tokenizer: byte-level BPE, vocab 4096, assets/tinytok, eos == pad == id 0
  * model: GPT-2, n_layer=2, n_embd=128, n_head=4, n_positions=512,
    dropout 0 everywhere (TRL disables dropout anyway), fp32, CPU
  * reward model: rows [0, 1024) of ../data/hh-rlhf/harmless-base/test.jsonl.gz as training
    pairs, rows [2000, 2312) as held-out pairs; each side = tokens(text) + [eos],
    left-truncated to the last 256 tokens; batch 16 pairs; 1 epoch; AdamW
    lr 1e-4, linear decay to 0, no warmup, no weight decay, grad clip 1.0
  * PPO: 64 prompts = first human turn of rows [0, 64) + "\\n\\nAssistant:",
    left-padded; rollout batch 16; 32 new tokens sampled at temperature 1.0
    (top_k 0, top_p 1); 1 PPO epoch per rollout batch, 1 minibatch; 16 updates
    (= 4 passes over the 64 prompts = 256 episodes); separate policy, frozen
    reference (same init as policy), value model and reward model, all with the
    tiny config above (random init; value model starts as a copy of the reward
    model, as TRL's PPO example does).
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import platform
import random
import resource
import sys
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
ASSETS_DIR = BENCH_DIR / "assets"
TOKENIZER_DIR = ASSETS_DIR / "tinytok"
# The repository's bundled copy of the real Anthropic file (sha256 ebfaaed2...; data/hh-rlhf/SOURCES.md).
DATA_PATH = BENCH_DIR.parent.parent / "data" / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"

SEED = 0

# --- model -----------------------------------------------------------------
N_LAYER = 2
N_EMBD = 128
N_HEAD = 4
N_POSITIONS = 512

# --- reward model workload ---------------------------------------------------
RM_TRAIN_ROWS = (0, 1024)  # the 1024 first pairs
RM_HELDOUT_ROWS = (2000, 2312)  # 312 held-out pairs
MAX_LENGTH = 256
TRUNCATION_SIDE = "left"  # keep the END of the transcript (see README)
BATCH_SIZE = 16  # pairs per optimiser step (32 sequences per forward)
RM_EPOCHS = 1
RM_LR = 1e-4  # TRL RewardConfig default
RM_WEIGHT_DECAY = 0.0
RM_MAX_GRAD_NORM = 1.0
RM_SCHEDULE = "linear"  # linear decay to 0 over all steps, no warmup

# --- PPO workload --------------------------------------------------------------
PPO_PROMPT_ROWS = (0, 64)
PPO_ROLLOUT_BATCH = 16
PPO_MAX_NEW_TOKENS = 32
PPO_EPOCHS = 1  # PPO epochs per rollout batch
PPO_NUM_MINI_BATCHES = 1
PPO_UPDATES = 16  # rollout+optimise iterations (4 passes over the 64 prompts = 256 episodes)
PPO_TEMPERATURE = 1.0
PPO_LR = 3e-6  # TRL PPOConfig default
PPO_KL_COEF = 0.05  # TRL default
PPO_KL_ESTIMATOR = "k1"  # TRL default: kl_t = logp_policy - logp_ref
PPO_CLIPRANGE = 0.2
PPO_CLIPRANGE_VALUE = 0.2
PPO_VF_COEF = 0.1
PPO_GAMMA = 1.0
PPO_LAM = 0.95
PPO_WHITEN_REWARDS = False
PPO_MISSING_EOS_PENALTY = 1.0  # subtracted from the RM score when no EOS was sampled
PPO_STOP_TOKEN = "eos"  # responses are truncated after the first EOS
PROMPT_SEPARATOR = "\n\nAssistant:"

PPO_SEEDS = {"policy": SEED, "reward": SEED + 1}


# ---------------------------------------------------------------------------
def set_seed(seed: int = SEED) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    torch.manual_seed(seed)


def load_rows(start: int, end: int, path: Path = DATA_PATH) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= end:
                break
            if i >= start:
                rows.append(json.loads(line))
    if len(rows) != end - start:
        raise ValueError(f"{path} has fewer than {end} rows")
    return rows


def build_tokenizer(padding_side: str = "right"):
    """The tiny BPE tokenizer (vocab 4096, eos == pad == '<|endoftext|>' == id 0)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(TOKENIZER_DIR))
    tok.padding_side = padding_side
    assert len(tok) == 4096 and tok.eos_token_id == tok.pad_token_id == 0, (len(tok), tok.eos_token_id)
    return tok


def gpt2_config(tok, num_labels: int | None = None):
    from transformers import GPT2Config

    kw = dict(
        vocab_size=len(tok),
        n_positions=N_POSITIONS,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_head=N_HEAD,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if num_labels is not None:
        kw["num_labels"] = num_labels
    return GPT2Config(**kw)


def build_reward_model(tok, seed: int = SEED):
    """GPT-2 backbone + linear score head (1 output); reward read at the last non-pad token."""
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(seed)
    return GPT2ForSequenceClassification(gpt2_config(tok, num_labels=1))


def build_policy(tok, seed: int = SEED):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(gpt2_config(tok))
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.eos_token_id
    return model


def build_ppo_models(tok):
    """(policy, ref_policy, value_model, reward_model), random init, fixed seeds."""
    policy = build_policy(tok, PPO_SEEDS["policy"])
    ref_policy = copy.deepcopy(policy)
    reward_model = build_reward_model(tok, PPO_SEEDS["reward"])
    value_model = copy.deepcopy(reward_model)
    return policy, ref_policy, value_model, reward_model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# --- reward-model data ----------------------------------------------------------
def encode_sequence(tok, text: str, max_length: int = MAX_LENGTH) -> list[int]:
    """tokens(text) + [eos], keeping the LAST max_length tokens if too long.

    Left truncation keeps the final assistant turn (where chosen and rejected
    differ) and the EOS; right truncation would make 146 of the 1024 training
    pairs identical. With pad == eos, a GPT-2 sequence-classification head reads
    the reward at the last token that is not eos/pad, i.e. the last text token.
    """
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    if len(ids) > max_length:
        ids = ids[-max_length:] if TRUNCATION_SIDE == "left" else ids[:max_length]
    return ids


def reward_pairs(tok, rows_range: tuple[int, int]) -> list[dict]:
    rows = load_rows(*rows_range)
    return [
        {"chosen_ids": encode_sequence(tok, r["chosen"]), "rejected_ids": encode_sequence(tok, r["rejected"])}
        for r in rows
    ]


def pad_right(seqs: list[list[int]], pad_id: int):
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


@torch.no_grad()
def pairwise_accuracy(reward_fn, pairs: list[dict], pad_id: int = 0, batch_size: int = 64) -> float:
    """Fraction of pairs with r(chosen) > r(rejected) (ties count as wrong, as in TRL).

    reward_fn(input_ids[B, L], attention_mask[B, L]) -> rewards[B]; inputs are right-padded.
    """
    correct = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        ids, mask = pad_right([p["chosen_ids"] for p in chunk] + [p["rejected_ids"] for p in chunk], pad_id)
        r = reward_fn(ids, mask).reshape(-1).float()
        rc, rr = r[: len(chunk)], r[len(chunk) :]
        correct += int((rc > rr).sum())
    return correct / len(pairs)


def hf_reward_fn(model):
    """Adapter: a transformers *ForSequenceClassification model -> reward_fn for pairwise_accuracy."""

    def fn(ids, mask):
        return model(input_ids=ids, attention_mask=mask).logits.squeeze(-1)

    return fn


# --- PPO data ---------------------------------------------------------------------
def prompt_text(transcript: str) -> str:
    """First human turn of the transcript, ending with '\\n\\nAssistant:'."""
    head = transcript.split(PROMPT_SEPARATOR, 1)[0]
    return head + PROMPT_SEPARATOR


def ppo_prompts(tok) -> list[list[int]]:
    rows = load_rows(*PPO_PROMPT_ROWS)
    return [tok(prompt_text(r["chosen"]), add_special_tokens=False)["input_ids"] for r in rows]


# --- measurement helpers ----------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    for name in ("transformers", "trl", "datasets", "accelerate"):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = __import__(name)
            except ImportError:
                continue
        out[name] = getattr(mod, "__version__", "?")
    return out


def emit(record: dict) -> None:
    """Print the single JSON result line (flushed, on stdout)."""
    print(json.dumps(record), flush=True)


def quiet() -> None:
    """Silence progress bars / info logs that would clutter stdout."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
