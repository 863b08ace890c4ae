"""scripts/gpu_check.py works before a GPU is at hand: its --smoke run on the CPU."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_smoke_runs_every_step(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--smoke", "--steps", "1"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    steps = [x["step"] for x in lines]
    assert steps == ["setup", "pretrain", "judge", "ppo", "dpo", "summary"], steps
    assert lines[-1]["ok"] is True
    dpo = lines[4]
    assert dpo["loss_at_start_is_log2"] is True and dpo["pairs"] == 4
    assert all(x["peak_mem_mb"] > 0 for x in lines[1:])
