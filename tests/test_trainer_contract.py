"""Every trainer keeps the one contract of ``rlhf_lessons.train.run``.

For each of the six trainers, on the fast preset and tiny inputs: it returns a
``TrainRun``; its metrics rows start with step, learning_rate, elapsed_s; its
checkpoint holds exactly the contract's keys; a second call with the same
checkpoint loads the finished run without training a step; a checkpoint of
other settings is not resumed. And, read from the source: every trainer takes
its weight decay from its config.
"""

from __future__ import annotations

import ast
import copy
import dataclasses

import pytest
import torch

from rlhf_lessons.core.config import (
    DPOConfig,
    GroupPGConfig,
    LessonConfig,
    ModelConfig,
    RewardConfig,
)
from rlhf_lessons.core.models import build_gpt2
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.train import dpo, group_pg, ppo, pretrain, reward, sft
from rlhf_lessons.train import rollout as rl
from rlhf_lessons.train.run import (
    CHECKPOINT_KEYS,
    METRIC_KEYS,
    TrainRun,
    resume_checkpoint,
    run_key,
    save_checkpoint,
    should_save,
)

CFG = LessonConfig.from_env()
PROMPTS = [f"\n\nHuman: question {i}?\n\nAssistant:" for i in range(8)]


def _tiny_policy(vocab: int = 20, seed: int = 0):
    mc = ModelConfig(name="tiny", n_layer=1, n_embd=16, n_head=2, n_positions=32)
    return build_gpt2(vocab, mc, eos_id=0, seed=seed)


def _pairs():
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 20, (4,), generator=g).tolist() for _ in range(8)]
    return reward.pairset_from_ids([p + [1, 0] for p in prompts], [p + [2, 0] for p in prompts])


def _run_pretrain(ck):
    cfg = dataclasses.replace(CFG, pretrain=dataclasses.replace(CFG.pretrain, steps=2,
                                                                eval_every=1))
    return pretrain.pretrain(cfg, ck.parent, show_progress=False), ck.parent / "checkpoint.pt"


def _run_sft(ck):
    model, tok = A.load_policy(CFG, "sft")
    return (sft.train_sft(CFG, copy.deepcopy(model), tok, ck.parent, max_steps=2,
                          show_progress=False), ck.parent / "checkpoint.pt")


def _run_reward(ck):
    model = reward.build_reward_model(_tiny_policy(), pad_token_id=0, seed=0)
    cfg = RewardConfig(batch_size=4, max_steps=2, eval_every=0, max_len=32)
    return reward.train_reward_model(model, _pairs(), cfg, checkpoint=ck,
                                     show_progress=False), ck


def _run_dpo(ck):
    policy = _tiny_policy()
    cfg = DPOConfig(batch_size=4, max_steps=2)
    return dpo.train_dpo(policy, copy.deepcopy(policy), _pairs(), cfg, pad_id=0,
                         checkpoint=ck, show_progress=False), ck


def _policy_and_tok():
    model, tok = A.load_policy(CFG, "sft")
    return model, tok


def _run_ppo(ck):
    policy, tok = _policy_and_tok()
    policy = copy.deepcopy(policy)
    cfg = dataclasses.replace(CFG.ppo, n_updates=2, rollout_batch=4, mini_batches=1,
                              max_new_tokens=4)
    return ppo.train_ppo(policy, copy.deepcopy(policy), rl.make_value_model(policy=policy),
                         lambda p, r: [float(len(x)) for x in r], tok, PROMPTS, cfg,
                         checkpoint=ck, show_progress=False), ck


def _run_group_pg(ck):
    policy, tok = _policy_and_tok()
    policy = copy.deepcopy(policy)
    cfg = dataclasses.replace(CFG.ppo, max_new_tokens=4)
    g = GroupPGConfig(group_size=2, prompts_per_update=2, n_updates=2)
    return group_pg.train_group_pg(policy, copy.deepcopy(policy),
                                   lambda p, r: [float(len(x)) for x in r], tok, PROMPTS,
                                   g, cfg, checkpoint=ck, show_progress=False), ck


TRAINERS = {"pretrain": _run_pretrain, "sft": _run_sft, "reward": _run_reward,
            "dpo": _run_dpo, "ppo": _run_ppo, "group_pg": _run_group_pg}


@pytest.mark.parametrize("name", list(TRAINERS))
def test_every_trainer_keeps_the_contract(name, tmp_path, capsys):
    run, ck = TRAINERS[name](tmp_path / "run.pt")
    assert isinstance(run, TrainRun) and run.trained_now and run.resumed_from == 0
    cols = list(run.metrics.columns)
    assert cols[:3] == list(METRIC_KEYS), f"{name} logs {cols[:3]} first"
    assert run.metrics["step"].max() == run.total
    for old in ("lr", "time_s", "update"):
        assert old not in cols, f"{name} still logs {old!r}"
    state = torch.load(ck, weights_only=False)
    assert set(state) == set(CHECKPOINT_KEYS), f"{name} saves {sorted(state)}"
    assert state["step"] == state["total"] == run.total
    assert state["optimizer"]["state"], f"{name} saved no optimiser moments"
    capsys.readouterr()
    again, _ = TRAINERS[name](tmp_path / "run.pt")
    said = capsys.readouterr().out
    assert not again.trained_now and "resuming" not in said and "other settings" not in said
    assert len(again.metrics) == len(run.metrics)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    model = _tiny_policy()
    opt = torch.optim.AdamW(model.parameters())
    key = run_key(DPOConfig(), seed=0, total=4)
    save_checkpoint(tmp_path / "c.pt", key=key, step=2, total=4, model=model,
                    optimizer=opt, metrics=[{"step": 1}, {"step": 2}])
    other = run_key(DPOConfig(beta=0.2), seed=0, total=4)
    assert resume_checkpoint(tmp_path / "c.pt", other, 4, model=model, what="DPO") is None
    assert "DPO checkpoint with other settings" in capsys.readouterr().out
    back = resume_checkpoint(tmp_path / "c.pt", key, 4, model=model, optimizer=opt,
                             what="DPO")
    assert back.step == 2 and len(back.metrics) == 2
    assert "resuming DPO from its checkpoint after step 2/4" in capsys.readouterr().out


def test_should_save_by_hand():
    assert [s for s in range(1, 26) if should_save(s, 25, 10)] == [10, 20, 25]
    assert [s for s in range(1, 4) if should_save(s, 3, 1)] == [1, 2, 3]
    assert [s for s in range(1, 4) if should_save(s, 3, 0)] == [3]


@pytest.mark.parametrize("module", [pretrain, sft, reward, dpo, ppo, group_pg])
def test_weight_decay_comes_from_the_config(module):
    """No trainer writes a literal weight decay: it is a setting of its config."""
    tree = ast.parse(open(module.__file__, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "weight_decay":
            assert not isinstance(node.value, ast.Constant), (
                f"{module.__name__}: weight_decay={ast.unparse(node.value)} is hard-coded")
