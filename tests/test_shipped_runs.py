"""Finished runs that travel in data/runs/: slimmed to fp16 weights, copied into
outputs/ only when it has none (never with the retrain switch), loaded by the
trainers without training, and never used to resume an unfinished run."""

import copy
import dataclasses
import math

import pytest
import torch

from rlhf_lessons.core.config import LessonConfig, ModelConfig
from rlhf_lessons.core.models import build_gpt2, write_checksums
from rlhf_lessons.course import artefacts as A
from rlhf_lessons.train.run import slim_for_shipping


def test_slim_for_shipping_drops_optimiser_and_keeps_tied_tensors_tied():
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    state = {"key": {"a": 1}, "step": 3, "total": 3, "metrics": [{"loss": 1.0}],
             "model": {"wte": w, "lm_head": w, "steps": torch.tensor(5)},
             "optimizer": {"m": 1}, "extra": {"beta": 0.1},
             "resume": {"value_model": {"v": w}}}
    slim = slim_for_shipping(state)
    assert set(slim) == {"key", "step", "total", "metrics", "model", "extra", "weights_only"}
    assert slim["model"]["wte"].dtype == torch.float16
    assert slim["model"]["wte"] is slim["model"]["lm_head"]  # stored once
    assert slim["model"]["steps"].dtype == torch.int64  # integers untouched
    assert state["model"]["wte"].dtype == torch.float32  # the input is not changed
    with pytest.raises(ValueError, match="only a finished run ships"):
        slim_for_shipping(dict(state, step=2))


def test_from_shipped_copies_once_and_never_with_retrain(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "RUNS_DIR", tmp_path / "runs")
    shipped = tmp_path / "runs" / "07_beyond_ppo" / "dpo-abc.pt"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(b"finished")
    write_checksums(tmp_path / "runs", ("**/*",))
    cfg = LessonConfig.from_env()
    target = tmp_path / "outputs" / "07_beyond_ppo" / "dpo-abc.pt"
    target.parent.mkdir(parents=True)
    retrain = dataclasses.replace(cfg, retrain=True)
    assert A.from_shipped(retrain, target) == target and not target.exists()
    assert A.from_shipped(cfg, target) == target and target.read_bytes() == b"finished"
    target.write_bytes(b"trained here")  # outputs/ wins over data/runs/
    A.from_shipped(cfg, target)
    assert target.read_bytes() == b"trained here"
    other = target.with_name("dpo-other-key.pt")  # another key: nothing shipped
    assert not A.from_shipped(cfg, other).exists()
    folder = tmp_path / "runs" / "07_beyond_ppo" / "proxy-k"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    write_checksums(tmp_path / "runs", ("**/*",))  # what ship.py runs writes
    assert (A.from_shipped(cfg, target.with_name("proxy-k")) / "config.json").exists()


def _dpo_case():
    from rlhf_lessons.core.config import DPOConfig
    from rlhf_lessons.train.reward import pairset_from_ids

    torch.manual_seed(0)
    mc = ModelConfig(name="tiny", n_layer=1, n_embd=16, n_head=2, n_positions=32)
    policy = build_gpt2(20, mc, eos_id=0)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 20, (5,), generator=g).tolist() for _ in range(8)]
    pairs = pairset_from_ids([p + [1, 1, 0] for p in prompts], [p + [2, 0] for p in prompts])
    return policy, pairs, DPOConfig(beta=0.5, lr=1e-2, batch_size=4, max_steps=4)


def test_a_slim_finished_dpo_run_loads_without_training(tmp_path, capsys):
    from rlhf_lessons.train.dpo import train_dpo

    policy, pairs, cfg = _dpo_case()
    ref = copy.deepcopy(policy)
    ck = tmp_path / "dpo.pt"
    log = train_dpo(policy, ref, pairs, cfg, pad_id=0, checkpoint=ck,
                    show_progress=False).metrics
    torch.save(slim_for_shipping(torch.load(ck, weights_only=False)), ck)
    fresh = copy.deepcopy(ref)
    again = train_dpo(fresh, ref, pairs, cfg, pad_id=0, checkpoint=ck, show_progress=False)
    assert not again.trained_now and again.metrics.equals(log)
    assert "resuming" not in capsys.readouterr().out
    for a, b in zip(fresh.parameters(), policy.parameters()):
        assert a.dtype == torch.float32
        assert torch.equal(a, b.half().float())  # the fp16 copy of the trained weights
    # weights only cannot continue a run that did not finish
    state = torch.load(ck, weights_only=False)
    state["step"] = 2
    torch.save(state, ck)
    with pytest.raises(RuntimeError, match="cannot resume"):
        train_dpo(copy.deepcopy(ref), ref, pairs, cfg, pad_id=0, checkpoint=ck,
                  show_progress=False)


def test_a_slim_finished_ppo_run_loads_whatever_its_score_norm(tmp_path):
    from rlhf_lessons.core.config import preset
    from rlhf_lessons.core.models import load_tokenizer
    from rlhf_lessons.course.artefacts import PRETRAINED_DIR
    from rlhf_lessons.train import ppo
    from rlhf_lessons.train import rollout as rl

    fast = preset("fast")
    tok = load_tokenizer(PRETRAINED_DIR)
    cfg = dataclasses.replace(fast.ppo, n_updates=2, rollout_batch=4, mini_batches=1,
                              max_new_tokens=4)
    prompts = [f"Human: question {i}?\n\nAssistant:" for i in range(4)]
    policy = build_gpt2(len(tok), fast.model, tok.eos_token_id, seed=0)
    ref = copy.deepcopy(policy)
    reward = lambda p, r: [float(len(x)) for x in r]  # noqa: E731
    ck = tmp_path / "ppo.pt"
    run = ppo.train_ppo(policy, ref, rl.make_value_model(policy=ref), reward, tok, prompts,
                        cfg, score_norm=(0.123456789, 2.0), checkpoint=ck,
                        show_progress=False)
    state = torch.load(ck, weights_only=False)
    assert state["key"]["normalised"] is True and "score_norm" not in state["key"]
    torch.save(slim_for_shipping(state), ck)
    fresh = copy.deepcopy(ref)
    # norms from answers sampled on another CPU differ a little: the run still loads
    again = ppo.train_ppo(fresh, ref, rl.make_value_model(policy=ref), reward, tok,
                          prompts, cfg, score_norm=(0.13, 2.01), checkpoint=ck,
                          show_progress=False)
    assert again.resumed_from == 2 and len(again.metrics) == len(run.metrics)
    assert again["beta"] == run["beta"]
    assert all(torch.equal(a, b.half().float())
               for a, b in zip(fresh.parameters(), policy.parameters()))
    assert not math.isnan(again.metrics["objective/kl"].iloc[-1])


def test_every_shipped_run_is_listed_with_its_sha256():
    """data/runs/README.md names each shipped file with the first 16 hex digits of its
    sha256 (a model folder: of its model.safetensors); nothing travels unlisted."""
    import hashlib
    import re

    readme = (A.RUNS_DIR / "README.md").read_text()
    listed = dict(re.findall(r"\| `([^`]+)` \|[^|]+\|[^|]+\| `([0-9a-f]{16})` \|", readme))
    found = {}
    for nb in sorted(p for p in A.RUNS_DIR.iterdir() if p.is_dir()):
        for item in nb.iterdir():
            f = item / "model.safetensors" if item.is_dir() else item
            found[f"{nb.name}/{item.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    assert found and found == listed


def test_every_shipped_file_is_in_the_manifest_and_passes_its_check():
    """data/runs/SHA256SUMS lists every file (a folder's too) with its full sha256,
    agreeing with the README's table; each shipped item passes the check that runs
    before it is copied."""
    from rlhf_lessons.core.models import read_checksums, sha256_of

    sums = read_checksums(A.RUNS_DIR)
    files = {p.relative_to(A.RUNS_DIR).as_posix() for p in A.RUNS_DIR.rglob("*")
             if p.is_file()} - {"README.md", "SHA256SUMS"}
    assert files and set(sums) == files
    readme = (A.RUNS_DIR / "README.md").read_text()
    for name, digest in sums.items():
        assert sha256_of(A.RUNS_DIR / name) == digest, name
        if name.endswith((".pt", "/model.safetensors")):
            assert f"`{digest[:16]}`" in readme, name
    for item in {n.split("/")[0] + "/" + n.split("/")[1] for n in sums}:
        assert A.check_shipped(A.RUNS_DIR / item)


def test_weights_digest_follows_the_weights_not_the_object():
    """A cached result keyed by weights_digest is reused by a copy of the same weights
    and never by a model whose weights changed in one place."""
    mc = ModelConfig(n_layer=1, n_embd=8, n_head=2, n_positions=16)
    a = build_gpt2(11, mc, eos_id=0, seed=0)
    b = copy.deepcopy(a)
    assert A.weights_digest(a) == A.weights_digest(b) and len(A.weights_digest(a)) == 12
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-3
    assert A.weights_digest(a) != A.weights_digest(b)


def test_source_digest_follows_the_functions_text():
    """A checkpoint named with source_digest belongs to that rule: an edited rule
    gets another name (and trains afresh), the same text the same name."""
    def rule(prompts, answers):
        return [a.count("you") for a in answers]

    def same(prompts, answers):
        return [a.count("you") for a in answers]

    def edited(prompts, answers):
        return [a.count("please") for a in answers]

    d = A.source_digest(rule)
    assert len(d) == 8 and d != A.source_digest(edited)
    # only the name differs between rule and same: the digest reads the text
    assert A.source_digest(same) != d
    assert A.source_digest(rule) == d and A.source_digest(len) == A.source_digest(len)
