"""Nothing lost, nothing silent: bad values, damaged artefacts, resume settings,
shared outputs, environment variables. One test per defect, on tiny inputs."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
import torch

from rlhf_lessons.core.config import REPO_ROOT, LessonConfig, OptimisationConfig, RewardConfig
from rlhf_lessons.core.models import ArtefactError, load_card, load_model, save_model
from rlhf_lessons.core.utils import file_mode, load_checkpoint, remove_leftovers
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.train import ppo
from rlhf_lessons.train import rollout as rl

CFG = LessonConfig.from_env()


@pytest.fixture(scope="module")
def tiny():
    model, tok = A.load_policy(CFG, "sft")
    return model, tok


# ---------------------------------------------------------------- silent corruption
def test_a_nan_reward_stops_ppo_with_the_offending_answer(tiny, tmp_path):
    policy, tok = tiny
    prompts = [f"\n\nHuman: hi {i}\n\nAssistant:" for i in range(8)]

    def broken_reward(prompts, answers):
        return [float("nan")] + [1.0] * (len(answers) - 1)

    pol = copy.deepcopy(policy)
    ck = tmp_path / "ppo.pt"
    with pytest.raises(ValueError, match=r"reward 'broken_reward' returned nan for 1 of 8 "
                                         r"answers, e\.g\. prompt"):
        ppo.train_ppo(pol, copy.deepcopy(policy), rl.make_value_model(policy=pol),
                      broken_reward, tok, prompts, CFG.ppo, n_updates=1,
                      show_progress=False, checkpoint=ck)
    assert not ck.exists(), "nothing broken may be saved"
    assert all(torch.isfinite(p).all() for p in pol.parameters())


@pytest.mark.parametrize("field,value,message", [
    ("kl_coef", -0.1, r"PPOConfig\.kl_coef=-0\.1: must be >= 0"),
    ("lr_schedule", "cosine", r"lr_schedule='cosine': must be one of \('linear', 'constant'\)"),
    ("mini_batches", 0, r"mini_batches=0: must be a whole number >= 1"),
    ("mini_batches", 3, r"mini_batches=3: must be a divisor of rollout_batch"),
    ("n_updates", 0, r"n_updates=0: must be a whole number >= 1"),
    ("kl_estimator", "k2", r"kl_estimator='k2'"),
    ("gamma", 1.5, r"gamma=1\.5: must be in \[0, 1\]"),
])
def test_configs_refuse_bad_values_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CFG.ppo, **{field: value})


def test_every_config_validates():
    with pytest.raises(ValueError, match="RewardConfig.backbone='large'"):
        RewardConfig(backbone="large")
    with pytest.raises(ValueError, match="OptimisationConfig.proxy_labels='robot'"):
        OptimisationConfig(proxy_labels="robot")
    with pytest.raises(ValueError, match="n_embd=100: must be a multiple of n_head=3"):
        dataclasses.replace(CFG.model, n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="LessonConfig.source='web'"):
        dataclasses.replace(CFG, source="web")
    for name in ("fast", "default", "gpu"):  # the presets themselves are valid
        OptimisationConfig.for_preset(dataclasses.replace(CFG, preset=name))


def test_train_ppo_refuses_a_string_of_prompts_and_zero_updates(tiny):
    policy, tok = tiny
    args = (policy, copy.deepcopy(policy), rl.make_value_model(policy=policy),
            lambda p, a: [0.0] * len(a), tok)
    with pytest.raises(TypeError, match="not one string"):
        ppo.train_ppo(*args, "\n\nHuman: hi\n\nAssistant:", CFG.ppo, show_progress=False)
    with pytest.raises(ValueError, match="n_updates=0"):
        ppo.train_ppo(*args, ["a"] * 8, CFG.ppo, n_updates=0, show_progress=False)


# ---------------------------------------------------------------- damaged artefacts
def _saved(tmp_path, tiny, name="m"):
    model, tok = tiny
    return save_model(model, tok, tmp_path / name, card={"key": "k"})


def test_save_model_is_atomic_keeps_files_and_gives_usual_permissions(tmp_path, tiny):
    path = _saved(tmp_path, tiny)
    (path / "metrics.csv").write_text("step\n1\n")
    save_model(*tiny, path, card={"key": "k2"}, keep=("metrics.csv",))
    assert (path / "metrics.csv").read_text() == "step\n1\n"
    assert json.loads((path / "training.json").read_text()) == {"key": "k2"}
    assert [p.name for p in tmp_path.iterdir()] == ["m"], "no temporary folder left"
    assert (path.stat().st_mode & 0o777) == file_mode(folder=True)
    load_model(path)  # and it loads


def test_a_truncated_weights_file_is_named(tmp_path, tiny):
    path = _saved(tmp_path, tiny)
    (path / "SHA256SUMS").unlink()  # without sums the loader itself must fail clearly
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ArtefactError, match=r"m: cannot load this saved model .*delete the "
                                            r"folder"):
        load_model(path)


def test_garbled_weights_fail_the_checksum(tmp_path, tiny):
    path = _saved(tmp_path, tiny)
    w = path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-200:-100] = b"\xff" * 100  # inside the tensors: it would still load
    w.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match=r"model\.safetensors: its SHA-256 differs"):
        load_model(path)


def test_non_finite_weights_are_refused(tmp_path, tiny):
    model, tok = tiny
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    path = save_model(bad, tok, tmp_path / "nan")
    with pytest.raises(ArtefactError, match=r"weights with NaN or infinite values "
                                            r"\(transformer\.h\.0\.mlp\.c_fc\.weight\)"):
        load_model(path)


def test_the_shipped_models_carry_checksums_that_hold():
    for folder in (A.PRETRAINED_DIR, A.SFT_DIR, A.SHIPPED_JUDGE_DIR):
        assert (folder / "SHA256SUMS").read_text().count("model.safetensors") == 1
        load_model(folder, kind="judge" if folder == A.SHIPPED_JUDGE_DIR else "lm")


def test_a_broken_card_or_metrics_file_is_named(tmp_path, tiny):
    path = _saved(tmp_path, tiny)
    (path / "training.json").write_text('{"key": ')
    with pytest.raises(ArtefactError, match=r"training\.json: not valid JSON"):
        load_card(path)
    cfg = dataclasses.replace(CFG, outputs=tmp_path / "out")
    A.update_metrics("nb", cfg, a=1)
    (tmp_path / "out" / "nb" / "metrics.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"metrics\.json: not valid JSON .* delete it"):
        A.update_metrics("nb", cfg, b=2)


def test_leftovers_of_a_killed_save_are_removed_but_fresh_ones_kept(tmp_path):
    run = tmp_path / "04_ppo"
    run.mkdir()
    old = run / ".ppo-judge.pt.abcd1234"
    old.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    stale_dir = tmp_path / ".judge-aa.ab12cd34"
    stale_dir.mkdir()
    os.utime(stale_dir, (time.time() - 3600, time.time() - 3600))
    fresh = run / ".metrics.json.zz99yy88"  # another run is writing it right now
    fresh.write_bytes(b"y")
    keep = run / ".hidden_notes"
    keep.write_text("mine")
    assert remove_leftovers(tmp_path) == 2
    assert not old.exists() and not stale_dir.exists() and fresh.exists() and keep.exists()


# ---------------------------------------------------------------- resume settings
def test_sft_resumes_only_its_own_settings(tmp_path, tiny, capsys):
    from rlhf_lessons.train.sft import train_sft

    model, tok = tiny
    first = train_sft(CFG, copy.deepcopy(model), tok, tmp_path, max_steps=2,
                      show_progress=False)
    capsys.readouterr()
    stamp = (tmp_path / "checkpoint.pt").stat().st_mtime_ns
    again = train_sft(CFG, copy.deepcopy(model), tok, tmp_path, max_steps=2,
                      show_progress=False)
    said = capsys.readouterr().out
    # A finished run of the same settings just loads: no "resuming" line, no new steps.
    assert "other settings" not in said and "resuming" not in said
    assert again.metrics.equals(first.metrics) and not again.trained_now
    assert (tmp_path / "checkpoint.pt").stat().st_mtime_ns == stamp  # not trained again
    out = train_sft(CFG, copy.deepcopy(model), tok, tmp_path, max_steps=3,
                    show_progress=False)
    said = capsys.readouterr().out
    assert "SFT checkpoint with other settings" in said and "resuming" not in said
    assert out.metrics["step"].tolist() == [1, 2, 3]


def test_pretraining_does_not_resume_another_model(tmp_path, capsys):
    from rlhf_lessons.train.pretrain import pretrain

    def cfg(steps, n_embd=64):
        return dataclasses.replace(CFG, pretrain=dataclasses.replace(CFG.pretrain, steps=steps),
                                   model=dataclasses.replace(CFG.model, n_embd=n_embd))

    pretrain(cfg(2), tmp_path, show_progress=False)
    pretrain(cfg(3, n_embd=32), tmp_path, show_progress=False)
    said = capsys.readouterr().out
    assert "pretraining checkpoint with other settings" in said


def test_a_ppo_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    ck = tmp_path / "ppo.pt"
    torch.save({"settings": {"seed": 1}}, ck)
    assert load_checkpoint(ck, {"seed": 2}, what="PPO") is None


# ---------------------------------------------------------------- shared outputs
def _write_metrics(args):
    root, worker = args
    cfg = dataclasses.replace(LessonConfig.from_env(), outputs=Path(root))
    for i in range(40):
        A.update_metrics("shared", cfg, **{f"w{worker}_{i}": i})


def test_two_processes_writing_one_metrics_file_lose_nothing(tmp_path):
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_write_metrics, [(str(tmp_path), 0), (str(tmp_path), 1)])
    metrics = json.loads((tmp_path / "shared" / "metrics.json").read_text())
    assert sum(k.startswith("w") for k in metrics) == 80


def test_an_unwritable_outputs_folder_gets_one_clear_error(tmp_path):
    blocker = tmp_path / "a-file"  # a folder cannot be made under a file, even by root
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot write to the outputs folder .*a-file/out"):
        A.output_dir("nb", dataclasses.replace(CFG, outputs=blocker / "out"))


# ---------------------------------------------------------------- environment variables
@pytest.mark.parametrize("env,expect", [
    ({"RLHF_LESSONS_FAST": "false"}, "default"),
    ({"RLHF_LESSONS_FAST": "no"}, "default"),
    ({"RLHF_LESSONS_FAST": "Yes"}, "fast"),
    ({"RLHF_LESSONS_FAST": "1", "RLHF_LESSONS_PRESET": "fast"}, "fast"),
    ({"RLHF_LESSONS_PRESET": "gpu"}, "gpu"),
])
def test_presets_from_the_environment(monkeypatch, env, expect):
    for k in ("RLHF_LESSONS_FAST", "RLHF_LESSONS_PRESET"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert LessonConfig.from_env().preset == expect


@pytest.mark.parametrize("env,message", [
    ({"RLHF_LESSONS_FAST": "maybe"}, "RLHF_LESSONS_FAST='maybe'"),
    ({"RLHF_LESSONS_FAST": "1", "RLHF_LESSONS_PRESET": "gpu"}, "disagree"),
    ({"RLHF_LESSONS_FAST": "1", "RLHF_LESSONS_PRESET": "big"}, "RLHF_LESSONS_PRESET='big'"),
    ({"RLHF_LESSONS_DEVICE": "tpu"}, "RLHF_LESSONS_DEVICE='tpu'"),
    ({"RLHF_LESSONS_DEVICE": "gpu"}, "write cuda"),
    ({"RLHF_LESSONS_DEVICE": "meta"}, "RLHF_LESSONS_DEVICE='meta'"),
])
def test_bad_environment_variables_are_named(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        LessonConfig.from_env()


def test_device_case_and_relative_outputs(monkeypatch, tmp_path):
    monkeypatch.setenv("RLHF_LESSONS_DEVICE", "CPU")
    monkeypatch.setenv("RLHF_LESSONS_OUTPUTS", "runs/out")
    monkeypatch.chdir(tmp_path)
    cfg = LessonConfig.from_env()
    assert cfg.device == "cpu" and cfg.outputs == tmp_path / "runs" / "out"


# ---------------------------------------------------------------- the judge command
def test_ship_judge_without_shipping_keeps_its_metrics(monkeypatch):
    spec = importlib.util.spec_from_file_location("ship", REPO_ROOT / "scripts" / "ship.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    shipped = (A.SHIPPED_JUDGE_DIR / "SHA256SUMS").read_text()
    ship.main(["judge", "--no-ship"])
    here = A.judge_dir(LessonConfig.from_env())
    assert (here / "metrics.csv").exists(), "the second save deleted metrics.csv"
    assert "eval_accuracy" in json.loads((here / "training.json").read_text())
    assert (A.SHIPPED_JUDGE_DIR / "SHA256SUMS").read_text() == shipped



# ---------------------------------------------------------------- the Hub, for models
def test_the_gpu_preset_without_the_hub_fails_at_once_with_what_to_do(monkeypatch):
    from rlhf_lessons.core import hub

    monkeypatch.setattr(hub, "_HUB_CACHE", [(False, "no route to host (test)")])
    gpu = dataclasses.replace(CFG, preset="gpu", model=dataclasses.replace(
        CFG.model, name="gpt2", n_layer=12, n_embd=768, n_head=12, n_positions=1024))
    t0 = time.perf_counter()
    with pytest.raises(hub.HubUnreachableError, match=r"gpu preset's pretrained 'gpt2'.*"
                                                      r"unset RLHF_LESSONS_PRESET"):
        A.load_policy(gpu, "sft")
    assert time.perf_counter() - t0 < 1.0


def test_release_freed_memory_runs_where_glibc_does():
    import platform

    from rlhf_lessons.core.memory import release_freed_memory

    # which C library this is, found another way than the function's own (libc.so.6)
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert release_freed_memory() is glibc
