"""Rerunning a notebook: what is loaded, what is retrained, and what the learner sees.

The retrain switch (``RLHF_LESSONS_RETRAIN=1`` -> ``cfg.retrain``), the standard
"loaded ... / trained ... now" line, the stratified PPO prompts, the plot palette
and the counter of stderr outputs and progress bars in an executed notebook.
"""

import dataclasses
import os

import pytest

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.course import plots
from rlhf_lessons.course.runner import output_noise
from rlhf_lessons.measure.evaluate import subset_counts
from rlhf_lessons.train import prompts


@pytest.mark.parametrize("value, expect", [("1", True), ("yes", True), ("0", False),
                                           ("", False)])
def test_retrain_switch_is_read_from_the_environment(monkeypatch, value, expect):
    monkeypatch.setenv("RLHF_LESSONS_RETRAIN", value)
    assert LessonConfig.from_env().retrain is expect


def test_retrain_switch_refuses_other_values(monkeypatch):
    monkeypatch.setenv("RLHF_LESSONS_RETRAIN", "please")
    with pytest.raises(ValueError, match="RLHF_LESSONS_RETRAIN"):
        LessonConfig.from_env()
    with pytest.raises(ValueError, match="retrain"):
        LessonConfig(retrain="yes")


def test_retrain_does_not_change_artefact_keys():
    cfg = LessonConfig.from_env()
    again = dataclasses.replace(cfg, retrain=True)
    assert A.judge_key(cfg) == A.judge_key(again)
    assert cfg.short_hash("model", "ppo") == again.short_hash("model", "ppo")


def test_retrain_path_clears_once_per_process(tmp_path):
    cfg = dataclasses.replace(LessonConfig.from_env(), retrain=True)
    ck = tmp_path / "run.pt"
    ck.write_text("old")
    assert A.retrain_path(cfg, ck) == ck and not ck.exists()
    ck.write_text("written by this run")
    A.retrain_path(cfg, ck)  # a second call keeps what this run wrote
    assert ck.read_text() == "written by this run"
    folder = tmp_path / "judge"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    A.retrain_path(cfg, folder)
    assert not folder.exists()


def test_without_retrain_nothing_is_touched(tmp_path):
    cfg = dataclasses.replace(LessonConfig.from_env(), retrain=False)
    ck = tmp_path / "run.pt"
    ck.write_text("old")
    A.retrain_path(cfg, ck)
    assert ck.read_text() == "old"


def test_ppo_checkpoint_honours_retrain(monkeypatch):
    monkeypatch.setenv("RLHF_LESSONS_RETRAIN", "1")
    cfg = LessonConfig.from_env()
    path = A.output_dir(A.NOTEBOOKS["ppo"], cfg) / f"ppo-x-{cfg.short_hash('model', 'ppo')}.pt"
    path.write_text("finished run")
    assert A.ppo_checkpoint(cfg, "x") == path and not path.exists()


def test_loaded_or_trained_says_which(tmp_path, capsys):
    ck = tmp_path / "ppo.pt"
    ck.write_text("x")
    os.utime(ck, (0, 0))  # 1970
    line = A.loaded_or_trained("the PPO policy", ck, False)
    assert line.startswith("📦 loaded the PPO policy from ")
    assert "1970-01-01" in line and "RLHF_LESSONS_RETRAIN=1" in line
    assert A.loaded_or_trained("the judge", ck, True, 12.4) == "🛠️ trained the judge now (12 s)"
    assert capsys.readouterr().out.count("\n") == 2


def test_ppo_prompts_are_stratified_and_seeded():
    cfg = LessonConfig.from_env()
    tok = A.course_tokenizer()
    every = prompts.ppo_prompt_table(cfg, "eval", tok)
    table = prompts.ppo_prompt_table(cfg, "eval", tok, n=16)
    assert len(table) == 16 and table["subset"].nunique() == every["subset"].nunique()
    assert table["prompt"].tolist() == prompts.ppo_prompts(cfg, "eval", tok, n=16)
    counts = subset_counts(table["subset"])
    assert sum(counts.values()) == 16 and list(counts) == sorted(counts)
    # never the head of the file: the first prompts are all one subset
    assert every["subset"].nunique() > 1
    skip = set(table["prompt"][:3])
    assert not skip & set(prompts.ppo_prompts(cfg, "eval", tok, exclude=skip))


def test_color_matches_whole_words():
    assert plots._color_for("feat/refusal") == plots.POLICY_COLOR
    assert plots._color_for("objective/kl") == plots.ACCENT_COLOR
    assert plots._color_for("ref_score") == plots.REFERENCE_COLOR
    assert plots._color_for("r_rejected") == plots.REJECTED_COLOR
    assert plots._color_for("skill") == plots.POLICY_COLOR  # "kl" inside a word


def test_metric_titles_are_words():
    assert plots.metric_label("objective/kl") == ("KL from the reference",
                                                  "KL (nats per answer)")
    assert plots.metric_label("feat/hedge_rate") == ("Hedge rate", "hedge rate")


def test_output_noise_counts_stderr_and_bars():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "x"},
        {"cell_type": "code", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "fine\n"},
            {"output_type": "stream", "name": "stderr", "text": "a warning\n"}]},
        {"cell_type": "code", "outputs": [
            {"output_type": "display_data",
             "data": {"text/plain": "PPO:  40%|####      | 2/5 [00:01<00:02]"}},
            {"output_type": "stream", "name": "stdout", "text": "accuracy 40% | n 5\n"}]},
        {"cell_type": "code", "outputs": [  # a finished bar is fine
            {"output_type": "display_data",
             "data": {"text/plain": "PPO: 100%|##########| 5/5 [00:02<00:00]"}}]},
    ]}
    assert output_noise(nb) == {"stderr": [1], "progress_bars": [2]}
