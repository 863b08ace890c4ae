"""The DPO / GRPO benchmark workload (benchmarks/peer/workload_beyond.py) on hand cases."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benchmarks" / "peer"


def _beyond():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_dpo import load_beyond

    return load_beyond(PEER)


def test_split_pair_and_sizes_come_from_the_shared_workload():
    W, WB = _beyond()
    assert WB.split_pair([5, 6, 7, 0], [5, 6, 9, 9, 0]) == {
        "prompt_ids": [5, 6], "chosen_ids": [7, 0], "rejected_ids": [9, 9, 0]}
    assert WB.DPO_TRAIN_ROWS == W.RM_TRAIN_ROWS and WB.DPO_BATCH_SIZE == W.BATCH_SIZE
    assert WB.GRPO_GROUP_SIZE * WB.GRPO_PROMPTS_PER_UPDATE == W.PPO_ROLLOUT_BATCH
    assert WB.GRPO_UPDATES % W.PPO_UPDATES == 0  # whole passes over the PPO prompts
    for name in ("trl_dpo.py", "trl_grpo.py", "workload_beyond.py"):
        assert (PEER / name).is_file()


def test_implicit_reward_is_zero_at_the_reference_and_pairs_have_answers():
    import copy

    import torch

    W, WB = _beyond()
    tok = W.build_tokenizer("right")
    pairs = WB.dpo_pairs(tok, (0, 8))
    assert pairs and all(p["chosen_ids"] and p["rejected_ids"] for p in pairs)
    full = WB.full_pairs(pairs)
    assert full[0]["chosen_ids"][:len(pairs[0]["prompt_ids"])] == pairs[0]["prompt_ids"]
    policy = W.build_policy(tok)
    fn = WB.implicit_reward_fn(policy, copy.deepcopy(policy))
    ids, mask = W.pad_right([f["chosen_ids"] for f in full[:2]], tok.pad_token_id)
    assert torch.allclose(fn(ids, mask), torch.zeros(2), atol=1e-5)


def test_heldout_reward_is_seeded_and_reads_the_reward_model():
    """The GRPO quality figure: the same number twice for one policy, and the mean of
    the reward model's scores (a constant-score head gives that constant)."""
    import torch

    W, WB = _beyond()
    tok = W.build_tokenizer("left")
    policy, _, _, rm = W.build_ppo_models(tok)
    prompts = W.ppo_prompts(tok)[:3]
    a = WB.grpo_heldout_reward(policy, rm, tok, prompts, samples=2)
    b = WB.grpo_heldout_reward(policy, rm, tok, prompts, samples=2)
    assert a == b and a["n"] == 6 and a["se"] >= 0
    assert rm.score.bias is None  # GPT2ForSequenceClassification: a bias-free head
    with torch.no_grad():
        rm.score.weight.zero_()
    assert WB.grpo_heldout_reward(policy, rm, tok, prompts, samples=2) == {
        "mean": 0.0, "se": 0.0, "n": 6}
