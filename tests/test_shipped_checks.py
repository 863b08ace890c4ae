"""Shipped runs are checked before they are copied (issue 28).

For each kind that travels in data/runs/ (a finished run, a cached result, a judge
folder), a truncated, a garbled and a missing shipped file, through the public
loading path, on a tiny data/runs/ whose README and SHA256SUMS are written by
``scripts/ship.py``'s own writer. A damaged file never reaches outputs/, and the
advice in each error works when it is followed.
"""

import dataclasses
import importlib.util
import shutil

import pytest
import torch

from rlhf_lessons.core.config import REPO_ROOT, LessonConfig, OptimisationConfig
from rlhf_lessons.core.models import (
    ArtefactError,
    build_gpt2,
    load_tokenizer,
    read_checksums,
    save_model,
    sha256_of,
)
from rlhf_lessons.core.utils import load_checkpoint
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.train.reward import build_reward_model

KINDS = ("run", "cached", "judge")
SETTINGS = {"beta": 0.1, "steps": 3}


class TrainsLive(Exception):
    """Raised where the proxy judge would start training: it was not loaded."""


def _ship():
    spec = importlib.util.spec_from_file_location("ship", REPO_ROOT / "scripts" / "ship.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A tiny data/runs/ with one of each kind, and an empty outputs/."""
    monkeypatch.setattr(A, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(A, "load_all_hh", lambda *a, **k: (_ for _ in ()).throw(TrainsLive()))
    cfg = LessonConfig.from_env(outputs=tmp_path / "outputs")
    oc = dataclasses.replace(OptimisationConfig.for_preset(cfg), proxy_labels="human")
    outs = {"run": A.beyond_checkpoint(cfg, "dpo", SETTINGS),  # nothing shipped yet
            "cached": A.keyed_path(cfg, "optimisation", "pool-scores", SETTINGS),
            "judge": A.output_dir(A.NOTEBOOKS["optimisation"], cfg)
            / f"proxy-{A.proxy_key(cfg, oc)}"}
    src = {k: A.RUNS_DIR / p.parent.name / p.name for k, p in outs.items()}
    for p in src.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"key": SETTINGS, "step": 3, "total": 3, "weights_only": True,
                "metrics": [{"loss": 1.0, "elapsed_s": 12.3}] * 3, "extra": {},
                "model": {"w": torch.ones(4, dtype=torch.float16)}}, src["run"])
    torch.save({"scores": torch.arange(4.0)}, src["cached"])
    tok = load_tokenizer(A.PRETRAINED_DIR, padding_side="right")
    backbone = build_gpt2(len(tok), cfg.model, tok.eos_token_id, seed=0)
    save_model(build_reward_model(backbone, tok.pad_token_id), tok, src["judge"],
               card={"key": A.proxy_key(cfg, oc), "role": "proxy", "train_pairs": 4,
                     "train_wall_s": 7.0})
    _ship().write_runs_index(A.RUNS_DIR)
    return cfg, oc, outs, src


def _load(kind, cfg, oc):
    """What a notebook does to get ``kind``: the loaded thing, or None if trained live."""
    if kind == "run":  # a trainer reads its checkpoint (None: it trains)
        return load_checkpoint(A.beyond_checkpoint(cfg, "dpo", SETTINGS), what="DPO")
    if kind == "cached":
        return A.load_or_build(cfg, "pool-scores", SETTINGS, lambda: None, "the scores")
    try:
        return A.load_proxy_judge(cfg, oc, show_progress=False)
    except TrainsLive:
        return None


def _damaged(kind, src):
    """The one shipped file that the damage hits (the judge: its weights)."""
    return src[kind] / "model.safetensors" if kind == "judge" else src[kind]


def _damage(f, how):
    data = f.read_bytes()
    if how == "truncated":  # an interrupted copy
        f.write_bytes(data[: len(data) // 2])
    else:  # garbled: same size, 64 bytes in the middle flipped
        mid = len(data) // 2
        f.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64])
                      + data[mid + 64:])


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_manifest_is_written_with_the_readme_and_covers_every_file(course):
    cfg, oc, outs, src = course
    listed = read_checksums(A.RUNS_DIR)
    assert set(listed) == set(_files(A.RUNS_DIR)) - {"README.md", "SHA256SUMS"}
    assert "06_what_optimisation_does_with_it/" + src["judge"].name + "/config.json" in listed
    readme = (A.RUNS_DIR / "README.md").read_text()
    assert "trained in 12 s" in readme and "proxy judge, 4 pairs, trained in 7 s" in readme
    assert "SHA256SUMS" in readme and "git checkout" in readme


@pytest.mark.parametrize("how", ["truncated", "garbled"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_shipped_file_is_named_not_copied_and_its_fix_works(course, kind, how):
    cfg, oc, outs, src = course
    f = _damaged(kind, src)
    good = f.read_bytes()
    _damage(f, how)
    for _ in range(2):  # the same error again: no loop through a damaged copy
        with pytest.raises(A.ShippedRunError) as err:
            _load(kind, cfg, oc)
        msg = str(err.value)
        assert isinstance(err.value, RuntimeError)
        assert f"{f}: this shipped file is damaged" in msg
        assert f"git checkout -- {src[kind]}`" in msg
        assert "RLHF_LESSONS_RETRAIN=1" in msg and "RETRAIN = True" in msg
        assert _files(cfg.outputs) == []  # nothing of it reached outputs/, not even a temp
    # the fix "train it live": the retrain switch never reads data/runs/
    assert _load(kind, dataclasses.replace(cfg, retrain=True), oc) is None  # made live
    shutil.rmtree(cfg.outputs)
    # the fix "git checkout -- data/runs/...": the restored file is copied and loads
    f.write_bytes(good)
    assert _load(kind, cfg, oc) is not None
    copy = outs[kind] / "model.safetensors" if kind == "judge" else outs[kind]
    assert sha256_of(copy) == sha256_of(f)


@pytest.mark.parametrize("kind", KINDS)
def test_a_shipped_run_deleted_whole_is_made_live_with_one_line(course, kind, capsys):
    cfg, oc, outs, src = course
    shutil.rmtree(src[kind]) if src[kind].is_dir() else src[kind].unlink()
    assert _load(kind, cfg, oc) is None  # trained (or computed) live, no error
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "data/runs" in line]
    assert len(lines) == 1, out
    assert f"{outs[kind].name}: listed in data/runs/SHA256SUMS but not in" in lines[0]
    assert f"git checkout -- {src[kind]}` restores it" in lines[0]
    took = {"run": "it took 12 s when", "judge": "it took 7 s when", "cached": "now (`"}
    assert took[kind] in lines[0]


def test_a_file_missing_from_a_shipped_folder_is_named(course):
    cfg, oc, outs, src = course
    (src["judge"] / "model.safetensors").unlink()
    with pytest.raises(A.ShippedRunError, match="model.safetensors: missing, though"):
        _load("judge", cfg, oc)
    assert _files(cfg.outputs) == []


def test_a_shipped_file_the_manifest_does_not_list_is_not_copied(course):
    cfg, oc, outs, src = course
    (A.RUNS_DIR / "SHA256SUMS").unlink()
    with pytest.raises(A.ShippedRunError, match="not listed in .*SHA256SUMS"):
        _load("run", cfg, oc)
    assert _files(cfg.outputs) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_copy_in_outputs_names_its_origin_and_deleting_it_works(course, kind):
    cfg, oc, outs, src = course
    assert _load(kind, cfg, oc) is not None  # copied from data/runs/
    copy = outs[kind] / "model.safetensors" if kind == "judge" else outs[kind]
    _damage(copy, "truncated")
    with pytest.raises(RuntimeError) as err:
        _load(kind, cfg, oc)
    msg = str(err.value)
    assert str(copy if kind != "judge" else outs[kind]) in msg
    assert f"as shipped in {src[kind]}" in msg and "delete it" in msg
    # follow the advice: delete it; the next run copies the (intact) shipped file again
    shutil.rmtree(outs[kind]) if outs[kind].is_dir() else outs[kind].unlink()
    assert _load(kind, cfg, oc) is not None
    assert sha256_of(copy) == sha256_of(_damaged(kind, src))


def test_a_damaged_file_made_here_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "RUNS_DIR", tmp_path / "runs")  # nothing shipped
    cfg = LessonConfig.from_env(outputs=tmp_path / "outputs")
    path = A.beyond_checkpoint(cfg, "dpo", SETTINGS)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="made here, not copied from data/runs/: delete"):
        load_checkpoint(path, what="DPO")
    path.unlink()  # the advice: nothing shipped, so the trainer starts afresh
    assert load_checkpoint(A.beyond_checkpoint(cfg, "dpo", SETTINGS), what="DPO") is None


def test_loading_is_refused_with_an_artefact_error_not_a_torch_error(course):
    cfg, oc, outs, src = course
    _load("cached", cfg, oc)
    outs["cached"].write_bytes(b"garbled")
    with pytest.raises(ArtefactError, match="cannot read this saved result"):
        _load("cached", cfg, oc)


def test_the_loop_of_the_issue_ends_each_advice_followed_leads_on(course):
    """Issue 28 as reported: a truncated shipped DPO run already copied into outputs/
    (by a version that did not check). Each error's advice, followed, leads on."""
    cfg, oc, outs, src = course
    good = src["run"].read_bytes()
    _damage(src["run"], "truncated")
    shutil.copyfile(src["run"], outs["run"])  # the unchecked copy of before
    with pytest.raises(RuntimeError, match="as shipped in .*: delete it"):
        _load("run", cfg, oc)
    outs["run"].unlink()  # advice 1: delete it
    with pytest.raises(A.ShippedRunError, match=f"git checkout -- {src['run']}"):
        _load("run", cfg, oc)  # now the damaged shipped file is named, not copied
    assert not outs["run"].exists()
    src["run"].write_bytes(good)  # advice 2: git checkout -- data/runs/...
    assert _load("run", cfg, oc)["step"] == 3
