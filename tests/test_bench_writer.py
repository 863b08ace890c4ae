"""The writer-scale GRPO benchmark (benchmarks/bench_writer.py, issue 29) on hand cases:
its workload is the notebook's GRPO, its reward checker is the notebook's, its questions
are the course's, and its summary and targets are hand-checked. No writer weights."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benchmarks" / "peer"


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_writer

    return bench_writer, bench_writer.load_workload(PEER, "workload_writer")


def test_the_workload_is_the_writer_notebooks_grpo():
    from rlhf_lessons.core.config import WriterConfig

    _, WW = _bench()
    g = WriterConfig().grpo
    assert (WW.GROUP_SIZE, WW.PROMPTS_PER_UPDATE, WW.MAX_NEW_TOKENS) == (
        g.group_size, g.prompts_per_update, g.max_new_tokens)
    assert (WW.LR, WW.BETA, WW.EPSILON, WW.WEIGHT_DECAY, WW.MAX_GRAD_NORM) == (
        g.lr, g.kl_coef, g.cliprange, g.weight_decay, g.max_grad_norm)
    assert (WW.LORA_R, WW.LORA_ALPHA, WW.LORA_TARGETS) == (g.lora_r, g.lora_alpha,
                                                           g.lora_targets)
    assert (WW.TEMPERATURE, WW.TOP_P) == (g.temperature, g.top_p)
    assert len(WW.TRAIN_SEEDS) == 3 and WW.QUICK["updates"] == 2
    for name in ("trl_writer_grpo.py", "workload_writer.py"):
        assert (PEER / name).is_file()


@pytest.mark.parametrize("question, expected, answer, right", [
    ("What is 7 + 5?", "12", "It is 12.", True),
    ("What is 7 + 5?", "12", "7 + 5 = 13", False),  # restated numbers are set aside
    ("What is 7 + 5?", "12", "7 + 5 = 12", True),
    ("What is 40 times 30?", "1200", "That is 1,200.", True),  # thousands separator
    ("Which number is larger, 23 or 42?", "42", "42 is larger than 23.", True),
    ("What is the capital of France?", "Paris", "I think it is Paris.", True),
    ("What is the capital of France?", "Paris", "Parisian food.", False),
    ("What is 7 + 5?", "12", "", False),
])
def test_the_checker_is_the_notebooks(question, expected, answer, right):
    from rlhf_lessons.measure.sounding_sure import Question, is_correct

    _, WW = _bench()
    assert WW.is_correct(question, expected, answer) is right
    assert is_correct(Question(question, expected, "x", False), answer) is right


def test_reward_is_one_for_right_minus_a_fiftieth_per_word():
    _, WW = _bench()
    assert WW.writer_reward("What is 7 + 5?", "12", "It is 12.") == pytest.approx(0.94)
    assert WW.writer_reward("What is 7 + 5?", "12", " 7 + 5 = 13 ") == pytest.approx(-0.1)
    assert WW.writer_reward("What is 7 + 5?", "12", "") == 0.0
    # 32 new tokens are at most 32 words: a right answer always beats a wrong one
    assert WW.writer_reward("What is 7 + 5?", "12", "12" + " x" * 31) > 0
    q = [{"text": "What is 7 + 5?", "answer": "12"}] * 2
    assert WW.score_answers(q, ["12", "no"]) == pytest.approx([0.98, -0.02])


def test_questions_are_the_courses_and_the_heldout_ones_unseen():
    bench, WW = _bench()
    qs = WW.load_questions()
    assert qs == bench.course_questions(WW.HELDOUT_PICK_SEED)
    assert len(qs["train"]) == 128 and len(qs["heldout"]) == 16
    kinds = [q["kind"] for q in qs["heldout"]]
    assert sorted(set(kinds)) == ["compare", "convert", "product", "sum"]
    assert all(kinds.count(k) == 4 for k in set(kinds))
    assert not {q["text"] for q in qs["train"]} & {q["text"] for q in qs["heldout"]}


def test_summary_and_targets_by_hand():
    bench, WW = _bench()
    runs = [{"episodes": 16, "train_s": 4.0, "reward_rise": 0.1},
            {"episodes": 16, "train_s": 4.0, "reward_rise": 0.3}]
    s = WW.summarise_runs(runs)
    assert s["episodes_per_s"] == 4.0 and s["reward_rise"] == pytest.approx(0.2)
    assert s["reward_rise_se"] == pytest.approx(0.1)  # sd 0.1414 / sqrt(2)
    assert bench.targets({"writer_episodes_per_s_ratio": 1.5, "writer_reward_rise_delta": -0.2,
                          "writer_reward_rise_se": 0.1}) == {
        "speed_1.5x": True, "reward_rise_not_smaller": True}
    assert bench.targets({"writer_episodes_per_s_ratio": 1.49, "writer_reward_rise_delta": -0.21,
                          "writer_reward_rise_se": 0.1}) == {
        "speed_1.5x": False, "reward_rise_not_smaller": False}


def test_the_writers_peer_venv_is_its_own():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers

    assert peers.venv_name("1.16.0") == "trl-1.16.0"
    assert peers.venv_name("1.16.0", ("peft==0.21.2",)) == "trl-1.16.0-peft"
