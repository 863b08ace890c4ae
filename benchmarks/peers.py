"""Run the TRL peer scripts of ``benchmarks/peer/`` in their own cached virtual envs.

Each TRL version gets one venv under ``.bench-venvs/trl-<version>/`` (git-ignored),
created on first use with ``torch==2.13.0`` pinned (a bare ``torch`` would pull a
multi-GB CUDA build) and the same transformers as the project, so that the only
difference between the two sides is the trainer. Later runs reuse it.

Used by ``benchmarks/run.py`` and ``benchmarks/bench_reward.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENVS_DIR = REPO_ROOT / ".bench-venvs"
# The peer workload travels with the repository (benchmarks/peer/PROVENANCE.md), so
# `make bench` runs from a fresh clone; --peer-dir still points at another copy.
DEFAULT_PEER_DIR = REPO_ROOT / "benchmarks" / "peer"
TORCH_PIN = "torch==2.13.0"
TRANSFORMERS_PIN = "transformers==5.23.0"
# Pinned so that a later clone measures TRL with the same libraries (see PROVENANCE.md).
PEER_PINS = ["datasets==5.2.0", "numpy==2.4.6"]


def peer_dir(path: str | Path | None = None) -> Path:
    """The peer folder (default ``benchmarks/peer``), checked to hold ``workload.py``."""
    p = Path(path).expanduser().resolve() if path else DEFAULT_PEER_DIR
    if not (p / "workload.py").exists():
        raise SystemExit(
            f"peer dir {p} has no workload.py. Pass --peer-dir pointing at a folder "
            "with workload.py, trl_reward.py and trl_ppo.py (default: benchmarks/peer)."
        )
    return p


def venv_name(trl_version: str, extra_pins: tuple[str, ...] | list[str] = ()) -> str:
    """``trl-<version>``, plus ``-<package>`` for each extra pin (``peft==0.21.2`` ->
    ``trl-1.16.0-peft``): a venv with more packages is a venv of its own, so the
    venvs the other benchmarks measure in never change under them."""
    names = [pin.split("==")[0].split(">")[0].split("<")[0].strip() for pin in extra_pins]
    return "-".join([f"trl-{trl_version}", *names])


def ensure_venv(trl_version: str, log=sys.stderr,
                extra_pins: tuple[str, ...] | list[str] = ()) -> Path:
    """Path to the python of a venv with ``trl==trl_version`` (created if missing).

    ``extra_pins`` (e.g. ``("peft==0.21.2",)`` for the writer benchmark) are installed
    beside the usual pins, in the venv :func:`venv_name` names."""
    venv = VENVS_DIR / venv_name(trl_version, extra_pins)
    python = venv / "bin" / "python"
    stamp = venv / ".ready"
    pkgs = [TORCH_PIN, TRANSFORMERS_PIN, f"trl=={trl_version}", *PEER_PINS, *extra_pins]
    # A venv made with other pins (e.g. by an older checkout) is rebuilt, not reused.
    if stamp.exists() and python.exists() and stamp.read_text().split() == pkgs:
        return python
    print(f"[peers] creating {venv} (trl=={trl_version}, {TORCH_PIN}"
          + "".join(f", {p}" for p in extra_pins) + "); this happens once",
          file=log, flush=True)
    VENVS_DIR.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pkgs], check=True,
                   stdout=log, stderr=log)
    stamp.write_text(" ".join(pkgs) + "\n")
    return python


def parse_json_line(stdout: str, what: str) -> dict:
    """The last line of ``stdout`` that parses as a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise RuntimeError(f"{what}: no JSON result line in its output:\n{stdout[-2000:]}")


def run_script(python: str | Path, script: Path, args: list[str] | None = None,
               threads: int = 2, timeout: float = 3600) -> dict:
    """Run ``python script args`` in a fresh process and return its JSON line."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.setdefault("MKL_NUM_THREADS", str(threads))
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([str(python), str(script), *(args or [])], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=str(script.parent))
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return parse_json_line(proc.stdout, script.name)


def around_peer(run_ours, run_peer, rate_key: str) -> tuple[dict, dict]:
    """Our side, the peer, our side again (A-B-A): ``(ours pooled, peer)``.

    The machines are shared: their speed drifts by 10-25% over minutes, and our side
    runs for seconds where the peer runs for a minute or more, so one short run of
    ours can land in a slow or a fast moment that the peer's long run averages out.
    Running ours on both sides of the peer cancels a steady drift and halves the
    weight of a passing one. ``run_ours()`` returns our record; ``run_peer(first)``
    the peer's, given our first record (e.g. to read its precision); ``rate_key``
    names the speed both records carry. Pooled by :func:`pool_two_runs`.
    """
    first = run_ours()
    theirs = run_peer(first)
    second = run_ours()
    return pool_two_runs(first, second, rate_key), theirs


def pool_two_runs(a: dict, b: dict, rate_key: str) -> dict:
    """One record for two runs of the same seeded work.

    ``rate_key``: the work of both over the time of both, i.e. the harmonic mean of the
    two rates (rates 100 and 300 over the same work pool to 150, not 200), each run's
    own under ``<rate_key>_runs``; FLOP/s figures scaled with it; ``train_s`` and each
    ``phase_s`` entry the mean of the two; ``peak_rss_mb`` and ``train_peak_rss_mb``
    the higher; ``update_s`` (per
    update times) both runs' together; everything else (the results, which repeat
    because the work is seeded) from the first run.
    """
    ra, rb = a[rate_key], b[rate_key]
    if ra <= 0 or rb <= 0:
        raise ValueError(f"{rate_key}: rates must be positive, got {ra} and {rb}")
    pooled = 2 / (1 / ra + 1 / rb)
    out = dict(a)
    out[rate_key] = round(pooled, 3)
    out[f"{rate_key}_runs"] = [ra, rb]
    for k in ("gflop_per_s_6nt", "gflop_per_s_8nt"):
        if a.get(k) is not None:
            out[k] = round(a[k] * pooled / ra, 1)
    for k in ("peak_rss_mb", "train_peak_rss_mb"):
        if k in a and k in b:
            out[k] = max(a[k], b[k])
    if a.get("train_s") is not None and b.get("train_s") is not None:
        out["train_s"] = round((a["train_s"] + b["train_s"]) / 2, 3)
    if isinstance(a.get("phase_s"), dict) and isinstance(b.get("phase_s"), dict):
        out["phase_s"] = {k: round((v + b["phase_s"].get(k, v)) / 2, 3)
                          for k, v in a["phase_s"].items()}
    if "update_s" in a and "update_s" in b:
        out["update_s"] = list(a["update_s"]) + list(b["update_s"])
    return out


def run_trl_reward(peer: Path, bf16: bool = False, trl_version: str = "1.16.0") -> dict:
    """The TRL RewardTrainer peer (``trl_reward.py``), fp32 unless ``bf16``."""
    python = ensure_venv(trl_version)
    return run_script(python, peer / "trl_reward.py", ["--bf16"] if bf16 else [])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="set up a TRL venv and/or run the reward peer")
    ap.add_argument("--trl", default="1.16.0")
    ap.add_argument("--setup-only", action="store_true")
    ap.add_argument("--peer-dir", default=None)
    o = ap.parse_args()
    py = ensure_venv(o.trl)
    if not o.setup_only:
        print(json.dumps(run_trl_reward(peer_dir(o.peer_dir), trl_version=o.trl)))
    else:
        print(py)


def load_workload(peer: Path, name: str = "workload"):
    """Import the peer's ``<name>.py`` (default workload.py, the one definition of the
    shared benchmark work; ``workload_writer`` for the writer's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, peer / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def two_sided_main(doc: str, run_ours, run, quick_help: str) -> None:
    """The command line of a two-sided benchmark (``bench_dpo.py``, ``bench_grpo.py``).

    ``run_ours(peer, threads, quick)`` times our side in this process;
    ``run(peer_dir, peer_python, threads, quick)`` both sides and returns
    ``{"ours", "peer", <ratios>}``. Prints each side's JSON line, then the ratios.
    """
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--ours-only", action="store_true", help="only our side, in this process")
    ap.add_argument("--peer-python", default=None, help="default: .bench-venvs/trl-1.16.0")
    o = ap.parse_args()
    if o.ours_only:
        print(json.dumps(run_ours(peer_dir(o.peer_dir), o.threads, o.quick)), flush=True)
        return
    res = run(o.peer_dir, o.peer_python, o.threads, o.quick)
    print(json.dumps(res["ours"]), flush=True)
    print(json.dumps(res["peer"]), flush=True)
    print(json.dumps({k: v for k, v in res.items() if k not in ("ours", "peer")}), flush=True)
