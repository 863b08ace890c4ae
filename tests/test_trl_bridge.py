"""Notebook 09: HH pairs in TRL's formats, rewards in TRL's signature, DPO's implicit
accuracy, the metric-name map, the accelerate configs and the training script."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import trl
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf_lessons.core import hub
from rlhf_lessons.core.config import REPO_ROOT, GraduateConfig, preset
from rlhf_lessons.core.preference_formats import (
    HH_CHAT_TEMPLATE,
    RowFormatError,
    hh_messages,
    row_transcripts,
    split_pair,
    trl_row,
)
from rlhf_lessons.train.reward import PairSet
from rlhf_lessons.train.trl_bridge import (
    METRIC_NAMES,
    fitting_rows,
    implicit_reward_accuracy,
    metric_names,
    rule_reward,
    train_seconds,
    trl_reward,
)

C = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tea?\n\nAssistant: Yes, green."
R = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tea?\n\nAssistant: Go away."


# --- formats -----------------------------------------------------------------------
def test_trl_row_in_each_format_by_hand():
    assert trl_row(C, R, "implicit") == {"chosen": C, "rejected": R}
    assert trl_row(C, R, "explicit") == {
        "prompt": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tea?\n\nAssistant:",
        "chosen": " Yes, green.", "rejected": " Go away."}
    assert trl_row(C, R, "conversational") == {
        "prompt": [{"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": "Hello!"},
                   {"role": "user", "content": "Tea?"}],
        "chosen": [{"role": "assistant", "content": "Yes, green."}],
        "rejected": [{"role": "assistant", "content": "Go away."}]}


@pytest.mark.parametrize("fmt", ["implicit", "explicit", "conversational"])
def test_each_format_reads_back_to_the_same_transcripts(fmt):
    assert row_transcripts(trl_row(C, R, fmt)) == (C, R)


def test_answers_sharing_their_first_words_split_after_the_assistant_turn():
    c, r = "\n\nHuman: Q\n\nAssistant: I think yes", "\n\nHuman: Q\n\nAssistant: I think no"
    assert split_pair(c, r) == ("\n\nHuman: Q\n\nAssistant:", "I think yes", "I think no")


def test_bad_format_and_rows_without_turns_are_refused():
    with pytest.raises(ValueError, match="fmt="):
        trl_row(C, R, "chat")
    with pytest.raises(RowFormatError, match="Assistant"):
        split_pair("plain a", "plain b")
    with pytest.raises(RowFormatError, match="transcript"):
        hh_messages("no turns here")


def test_an_open_assistant_turn_adds_no_message():
    assert hh_messages("\n\nHuman: Hi\n\nAssistant:") == [{"role": "user", "content": "Hi"}]


def test_the_hh_chat_template_renders_messages_as_the_transcript():
    from rlhf_lessons.course.artefacts import course_tokenizer

    tok = course_tokenizer()
    tok.chat_template = HH_CHAT_TEMPLATE
    row = trl_row(C, R, "conversational")
    assert tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False) == C
    assert tok.apply_chat_template(row["prompt"], tokenize=False,
                                   add_generation_prompt=True) == split_pair(C, R)[0]


class WordTok:
    """A tokenizer with one token per word (to count by hand)."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}


def test_fitting_rows_keeps_pairs_that_differ_and_fit_with_their_eos():
    chosen = ["a b", "a b c", "same", "a"]
    rejected = ["a c", "a b", "same", "a b c d"]
    # pair 0: 2 words + EOS = 3 <= 3; pair 1: 3 + 1 = 4 > 3; pair 2 is a tie; 3: too long
    assert fitting_rows(chosen, rejected, WordTok(), max_len=3).tolist() == [0]
    assert fitting_rows(chosen, rejected, WordTok(), max_len=4).tolist() == [0, 1]
    with pytest.raises(ValueError, match="rejected"):
        fitting_rows(["a"], [], WordTok(), 4)


# --- rewards -----------------------------------------------------------------------
def test_rule_reward_by_hand():
    got = rule_reward(["p"] * 5, ["Sure, that works fine.", "ok", "Human: hi.", "",
                                  "Yes it does work"])
    assert got == [1.0, 0.0, 0.0, 0.0, 0.5]


def test_trl_reward_wraps_a_course_reward_with_a_name():
    fn = trl_reward(lambda prompts, answers: [len(a) for a in answers], "judge")
    assert fn.__name__ == "judge"
    assert fn(["p", "q"], ["ab", "abc"], completion_ids=None) == [2.0, 3.0]
    with pytest.raises(ValueError, match="completions"):
        fn(["p"], ["a", "b"])


# --- DPO's implicit reward ---------------------------------------------------------
def _tiny_lm(seed):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=11, n_positions=16, n_embd=8, n_layer=1,
                                      n_head=2)).eval()


def _pairs(chosen, rejected):
    n = len(chosen)
    return PairSet(chosen, rejected, ["helpful-base"] * n, [""] * n, [""] * n, [""] * n,
                   torch.zeros(n).numpy(), torch.zeros(n).numpy(), torch.zeros(n).numpy())


def test_an_untrained_policy_ties_every_pair_so_scores_zero():
    m = _tiny_lm(0)
    pairs = _pairs([[1, 2, 3, 4], [1, 5, 6]], [[1, 2, 7, 8], [1, 9, 6]])
    out = implicit_reward_accuracy(m, m, pairs, beta=0.1, pad_id=0)
    assert out["n"] == 2 and out["k"] == 0 and out["accuracy"] == 0.0
    assert abs(out["margin"]).max() == 0.0


def test_swapping_chosen_and_rejected_flips_every_margin():
    pol, ref = _tiny_lm(0), _tiny_lm(1)
    a, b = [[1, 2, 3, 4], [1, 5, 6]], [[1, 2, 7, 8], [1, 9, 6]]
    m1 = implicit_reward_accuracy(pol, ref, _pairs(a, b), 0.5, 0)["margin"]
    m2 = implicit_reward_accuracy(pol, ref, _pairs(b, a), 0.5, 0)["margin"]
    assert abs(m1).min() > 0 and (abs(m1 + m2) < 1e-5).all()


def test_kept_policy_logprobs_give_what_the_policy_gives():
    pol, ref = _tiny_lm(0), _tiny_lm(1)
    pairs = _pairs([[1, 2, 3, 4], [1, 5, 6]], [[1, 2, 7, 8], [1, 9, 6]])
    from rlhf_lessons.train.dpo import all_pair_logprobs

    live = implicit_reward_accuracy(pol, ref, pairs, 0.5, 0)
    kept = implicit_reward_accuracy(None, ref, pairs, 0.5, 0,
                                    policy_logps=all_pair_logprobs(pol, pairs, 0))
    assert kept["k"] == live["k"] and (abs(kept["margin"] - live["margin"]) < 1e-6).all()


def test_train_seconds_reads_the_summary_row_and_refuses_an_unfinished_run():
    class State:
        log_history = [{"loss": 0.7, "step": 1}, {"train_runtime": 12.5, "step": 1}]

    class Trainer:
        state = State()

    assert train_seconds(Trainer()) == 12.5
    Trainer.state.log_history = [{"loss": 0.7}]
    with pytest.raises(ValueError, match="train_runtime"):
        train_seconds(Trainer())


def test_trl_run_settings_key_what_the_run_computes_not_where_it_writes(tmp_path):
    from datasets import Dataset
    from trl import RewardConfig

    from rlhf_lessons.course.artefacts import trl_run_settings
    from rlhf_lessons.train.trl_bridge import common_args

    def args(out, lr=1e-4):
        return RewardConfig(**common_args(tmp_path / out, 0, True), learning_rate=lr)

    rows = Dataset.from_list([{"chosen": C, "rejected": R}])
    m = _tiny_lm(0)
    base = trl_run_settings(args("a"), rows, m)
    assert base == trl_run_settings(args("b"), rows, m)  # another folder: same run
    assert base["trl"] == trl.__version__
    assert base != trl_run_settings(args("a", lr=2e-4), rows, m)
    assert base != trl_run_settings(args("a"), Dataset.from_list([{"chosen": R, "rejected": C}]), m)
    assert base != trl_run_settings(args("a"), rows, _tiny_lm(1))
    assert base != trl_run_settings(args("a"), rows, m, eval="other pairs")


# --- the metric-name map -----------------------------------------------------------
def _source(*files):
    root = Path(trl.__file__).parent / "trainer"
    return "".join((root / f).read_text() for f in files)


def test_every_trl_name_in_the_map_is_one_trl_logs():
    src = {"reward": _source("reward_trainer.py"), "dpo": _source("dpo_trainer.py"),
           "ppo/grpo": _source("grpo_trainer.py")}
    for trainer, _, trl_keys, _ in METRIC_NAMES:
        for key in trl_keys.split(","):
            key = key.strip()
            if key == "loss":  # logged by transformers.Trainer itself
                continue
            probe = key.split("<fn>")[-1] if "<fn>" in key else key
            parts = [p for p in probe.split("/") if p]
            assert all(f'{p}"' in src[trainer] or f"{p}'" in src[trainer]
                       or f"/{p}" in src[trainer] or f"{p}/" in src[trainer]
                       for p in parts), f"{trainer}: TRL logs no {key!r}"


def test_our_ppo_names_in_the_map_are_the_course_ppo_keys():
    ppo = (REPO_ROOT / "rlhf_lessons" / "train" / "ppo.py").read_text()
    ours = [o for t, o, _, _ in METRIC_NAMES if t == "ppo/grpo" and "/" in o]
    assert ours and all(f'"{o}"' in ppo for o in ours), ours
    assert list(metric_names().columns) == ["trainer", "ours", "TRL", "meaning"]


# --- config, accelerate files, training script -----------------------------------------
def test_graduate_config_validates_and_shrinks_for_the_fast_preset():
    with pytest.raises(ValueError, match="grpo_batch"):
        GraduateConfig(grpo_batch=6, grpo_generations=4)
    with pytest.raises(ValueError, match="grpo_generations"):
        GraduateConfig(grpo_generations=1, grpo_batch=4)
    fast, full = GraduateConfig.for_preset(preset("fast")), GraduateConfig()
    assert fast.n_train_pairs < full.n_train_pairs and fast.grpo_steps < full.grpo_steps


def test_the_accelerate_configs_parse_and_zero2_points_at_its_deepspeed_file():
    from accelerate.commands.config.config_args import load_config_from_file

    ddp = load_config_from_file(str(REPO_ROOT / "configs/accelerate_multi_gpu.yaml"))
    zero = load_config_from_file(str(REPO_ROOT / "configs/accelerate_zero2.yaml"))
    assert ddp.distributed_type == "MULTI_GPU" and zero.distributed_type == "DEEPSPEED"
    ds_file = REPO_ROOT / zero.deepspeed_config["deepspeed_config_file"]
    assert json.loads(ds_file.read_text())["zero_optimization"]["stage"] == 2


SCRIPT = REPO_ROOT / "scripts" / "train_trl_gpt2.py"


def test_the_training_script_runs_every_stage_in_smoke_mode(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--output-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=600,
                         cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(x) for x in run.stdout.splitlines() if x.startswith("{")]
    assert [x["stage"] for x in lines] == ["reward", "dpo", "grpo"]
    assert all(x["steps"] == 2 for x in lines)
    assert "rewards/accuracies" in lines[1]["logged"]


def test_the_training_script_stops_at_once_offline(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("train_trl_gpt2", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(hub, "hub_status", lambda *a, **k: (False, "no network (test)"))
    assert mod.main(["--stage", "reward"]) == 2
    err = capsys.readouterr().err
    assert "needs the Hugging Face Hub" in err and "no network (test)" in err
