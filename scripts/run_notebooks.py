"""`make run`: execute every notebook in order, headless, and print a one-screen summary.

Executed copies (.ipynb, .html) and each notebook's metrics.json go to outputs/<stem>/
(or RLHF_LESSONS_OUTPUTS/<stem>/; a relative path is taken from where you run this).
Exits non-zero if any cell of any notebook fails, or, in one line before any notebook
runs, if the outputs folder can't be written. The machine's speed (a 2048² fp32
matmul, before and after the series) and each notebook's seconds go to
outputs/run.json (whole-series runs only), where `make runtime-table` reads them. Usage:

    python scripts/run_notebooks.py [--only 03] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import sys
import time

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import write_json
from rlhf_lessons.course.runner import (
    check_outputs_writable,
    execute_notebook,
    headline,
    matmul_gflops,
    notebook_paths,
    outputs_root,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="run notebooks whose name contains this")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args()
    cfg = LessonConfig.from_env()
    paths = notebook_paths(args.only)
    if not paths:
        print(f"no notebook matches {args.only!r}", file=sys.stderr)
        return 2
    root = outputs_root()  # resolved once, here; every kernel gets this absolute path
    problem = check_outputs_writable(root)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    env = {"RLHF_LESSONS_OUTPUTS": str(root)}
    print(f"running {len(paths)} notebooks in the {cfg.preset!r} preset -> {root}/")
    speed_before = matmul_gflops()
    print(f"this machine: a 2048² fp32 matmul at {speed_before:.0f} GFLOP/s", flush=True)
    runs = []
    t0 = time.perf_counter()
    for path in paths:
        print(f"▶ {path.name} ...", flush=True)
        run = execute_notebook(path, out_dir=root / path.stem, timeout=args.timeout,
                               env=env, show_progress=True)
        runs.append(run)
        status = "ok" if run.ok else "FAILED"
        print(f"  {status} in {run.seconds:.0f} s", flush=True)
        if not run.ok:
            print("  " + run.error.replace("\n", "\n  "), flush=True)
    width = max(len(r.name) for r in runs)
    print(f"\n{'notebook'.ljust(width)}  status  seconds  stderr  bars  headline figures")
    for r in runs:
        status = "ok" if r.ok else "FAILED"
        n_err, n_bar = len(r.noise.get("stderr", [])), len(r.noise.get("progress_bars", []))
        print(f"{r.name.ljust(width)}  {status:6}  {r.seconds:7.0f}  {n_err:6}  {n_bar:4}  "
              f"{headline(r.metrics)}")
    failed = [r.name for r in runs if not r.ok]
    total = time.perf_counter() - t0
    speed_after = matmul_gflops()
    print(f"total {total / 60:.1f} min; {len(runs) - len(failed)} passed, {len(failed)} failed; "
          f"matmul {speed_before:.0f} GFLOP/s before, {speed_after:.0f} after")
    if not args.only:  # the series' summary; a partial run leaves the last one be
        write_json(root / "run.json", {
            "preset": cfg.preset, "total_s": round(total, 1),
            "matmul_fp32_gflops_before": round(speed_before, 1),
            "matmul_fp32_gflops_after": round(speed_after, 1),
            "notebooks": {r.name: {"seconds": round(r.seconds, 1), "ok": r.ok} for r in runs}})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
