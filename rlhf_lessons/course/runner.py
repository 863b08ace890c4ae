"""Run notebooks headless (``make run`` and the notebook tests).

Each notebook runs in a fresh kernel with ``notebooks/`` as its working folder. The
executed copy is written as ``.ipynb`` and an offline ``.html`` handout
(:mod:`rlhf_lessons.course.handouts`) next to the notebook's
``metrics.json`` in ``outputs/<notebook stem>/``.

The outputs folder
------------------
One folder per run, decided once by :func:`outputs_root`: ``RLHF_LESSONS_OUTPUTS``
from the ``env`` given to the kernel, else from this process's environment, else the
repository's ``outputs/``. A relative path is resolved against the caller's working
folder (not ``notebooks/``, where the kernel runs), and the kernel is given the
absolute path, so the notebooks' artefacts, their ``metrics.json`` and the summary all
use the same folder. :func:`check_outputs_writable` says in one line when it can't be
written.

Exercises: a lesson's stub cell is tagged ``["exercise", "ex-<name>"]`` and raises
``NotImplementedError`` until the learner solves it. Its solution is the cell tagged
``["solution", "ex-<name>"]`` in ``notebooks/solutions/<stem>_solutions.ipynb``.
Headless runs put each solution in place of its stub first, so every check's
success path runs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lessons.core.config import REPO_ROOT
from rlhf_lessons.core.utils import progress
from rlhf_lessons.course.handouts import handout_html

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"

# The figures the summary shows for each notebook, when its metrics.json has them.
HEADLINE_KEYS = (
    "longer_wins_rate_overall", "n_pairs_total",
    "pretrain_eval_ppl", "sft_eval_ppl", "unigram_eval_ppl", "sft_eos_rate",
    "eval_accuracy", "length_rule_accuracy",
    "score_gain_in_ref_std", "final_kl", "rule_reward_initial", "rule_reward_final",
)


@dataclass
class NotebookRun:
    name: str
    seconds: float
    ok: bool
    error: str
    metrics: dict
    noise: dict = field(default_factory=dict)  # output_noise of the executed notebook


def notebook_paths(pattern: str = "") -> list[Path]:
    """Every ``notebooks/NN_*.ipynb`` in number order (optionally filtered by a substring)."""
    paths = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if pattern in p.name]


def outputs_root(env: dict | None = None) -> Path:
    """The absolute outputs folder of a run (see the module docstring for the rule)."""
    raw = (env or {}).get("RLHF_LESSONS_OUTPUTS") or os.environ.get("RLHF_LESSONS_OUTPUTS")
    root = Path(raw).expanduser() if raw else REPO_ROOT / "outputs"
    return root.absolute()


def check_outputs_writable(root: Path) -> str:
    """``""`` when ``root`` can be created and written, else one line saying what to do."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as err:
        return (f"The outputs folder {root} can't be written ({type(err).__name__}: "
                f"{err.strerror or err}). Make it writable, or point RLHF_LESSONS_OUTPUTS "
                "at a folder you can write, e.g. RLHF_LESSONS_OUTPUTS=~/rlhf-outputs make run")
    return ""


def solution_paths(pattern: str = "") -> list[Path]:
    """Every ``notebooks/solutions/NN_*_solutions.ipynb`` in number order."""
    paths = sorted(SOLUTIONS_DIR.glob("[0-9][0-9]_*_solutions.ipynb"))
    return [p for p in paths if pattern in p.name]


def solutions_for(path: Path) -> Path:
    """The solutions notebook of lesson ``path`` (which may not exist)."""
    return SOLUTIONS_DIR / f"{Path(path).stem}_solutions.ipynb"


def tagged(cells, role: str) -> dict[str, object]:
    """``{"ex-<name>": cell}`` for the cells tagged ``role`` ("exercise" or
    "solution"); raises ``ValueError`` when a name appears twice."""
    out: dict[str, object] = {}
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if role not in tags:
            continue
        names = [t for t in tags if t.startswith("ex-")]
        if len(names) != 1:
            raise ValueError(f"a cell tagged {role!r} needs one 'ex-<name>' tag, has {names}")
        if names[0] in out:
            raise ValueError(f"two cells tagged {role!r} and {names[0]!r}")
        out[names[0]] = cell
    return out


def fill_exercises(nb, solutions_nb) -> list[str]:
    """Replace each exercise cell's source by its solution's; return their names.

    Raises ``ValueError`` naming any exercise that has no solution.
    """
    exercises = tagged(nb.cells, "exercise")
    solutions = tagged(solutions_nb.cells, "solution") if exercises else {}
    missing = sorted(set(exercises) - set(solutions))
    if missing:
        raise ValueError(f"exercises with no solution cell: {missing}")
    for name, cell in exercises.items():
        cell["source"] = solutions[name]["source"]
    return sorted(exercises)


def execute_notebook(path: Path, out_dir: Path | None = None, timeout: int = 900,
                     env: dict | None = None, solve: bool = True,
                     show_progress: bool = False) -> NotebookRun:
    """Execute ``path`` top to bottom in a fresh kernel; never raises on a cell error.

    ``env`` entries are set for the kernel (e.g. ``RLHF_LESSONS_FAST=1``), plus the
    absolute :func:`outputs_root`, where ``metrics.json`` is then read from. When
    ``out_dir`` is given the executed ``.ipynb`` and ``.html`` are written there; a
    failure to write them fails the run with a one-line reason (it never raises).
    With ``solve`` every exercise stub runs its solution (``fill_exercises``); an
    exercise without a solution raises ``ValueError`` before anything runs.
    ``show_progress``: a bar over the code cells whose label names the cell now
    running (``make run``), so a cell that hangs is seen, and where.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    root = outputs_root(env)
    if solve and tagged(nb.cells, "exercise"):
        fill_exercises(nb, nbformat.read(solutions_for(path), as_version=4))
    old_env = dict(os.environ)
    os.environ.update(env or {})
    os.environ["RLHF_LESSONS_OUTPUTS"] = str(root)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    start = time.perf_counter()
    ok, error = True, ""
    try:
        bar, hooks = _progress_hooks(nb, path.stem) if show_progress else (None, {})
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}}, **hooks)
        try:
            client.execute()
        finally:
            if bar is not None:
                bar.close()
    except CellExecutionError as err:
        ok, error = False, _short_error(str(err))
    except Exception as err:  # noqa: BLE001 - a kernel death must still be reported
        ok, error = False, f"{type(err).__name__}: {err}"
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    seconds = time.perf_counter() - start
    metrics = {}
    metrics_path = root / path.stem / "metrics.json"
    try:
        if metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
    except (OSError, ValueError) as err:
        error = (error + "\n" if error else "") + f"unreadable {metrics_path}: {err}"
        ok = False
    if out_dir is not None:
        try:
            _write_copies(nb, Path(out_dir), path.stem, cache=root / ".cache")
        except OSError as err:
            error = (error + "\n" if error else "") + (
                f"could not write the executed copy to {out_dir} ({type(err).__name__}: "
                f"{err.strerror or err})")
            ok = False
    return NotebookRun(path.name, seconds, ok, error, metrics, output_noise(nb))


def _progress_hooks(nb, stem: str):
    """``(bar, hooks)``: one bar over the code cells of ``nb`` and nbclient's
    ``on_cell_start`` / ``on_cell_complete`` hooks that drive it; the bar's label is
    the running cell's index and first line."""
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    bar = progress(total=len(code), desc=stem[:2], unit="cell", delay=0, leave=False)

    def start(cell, cell_index, **kw):
        if cell.cell_type != "code":
            return
        first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
        bar.set_postfix_str(f"cell {cell_index}: {first[:40]}", refresh=True)

    def complete(cell, cell_index, **kw):
        bar.update(1)

    return bar, {"on_cell_start": start, "on_cell_complete": complete}


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's speed now: GFLOP/s of an ``n × n`` fp32 matmul (2·n³ flops each),
    the best of ``repeats`` after one warm-up, on torch's threads.

    A run's wall times mean little without it: the same code ran 2-3× slower on a
    2-core machine that did 40 GFLOP/s here than on one that did 180.
    """
    return 2 * n ** 3 / gemm_seconds(n, n, n, repeats=repeats) / 1e9


def gemm_seconds(m: int, k: int, n: int, dtype=None, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds of one ``(m, k) @ (k, n)`` matmul in ``dtype``
    (default fp32) after one warm-up, on torch's threads: ``2·m·k·n`` flops.
    ``benchmarks/machine_peak.py`` times a model's own shapes with it."""
    import torch

    if min(m, k, n) < 1 or repeats < 1:
        raise ValueError(f"m={m}, k={k}, n={n}, repeats={repeats}: all must be >= 1")
    dtype = dtype or torch.float32
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return max(best, 1e-9)


def _write_copies(nb, out_dir: Path, stem: str, cache: Path) -> None:
    import nbformat

    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / f"{stem}.ipynb")
    # the handout draws widgets from their stored state and carries MathJax
    # (fetched once into ``cache``, as `make slides` does): it opens offline
    (out_dir / f"{stem}.html").write_text(handout_html(nb, cache), encoding="utf-8")


def _short_error(text: str, limit: int = 1500) -> str:
    """The end of a cell error (the traceback's last lines carry the message)."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


_BAR = re.compile(r"(?<!\d)\d{1,2}%\|")  # 0% to 99%: a bar that did not finish


def output_noise(nb) -> dict[str, list[int]]:
    """Where an executed notebook shows what a learner should not read past.

    ``nb`` is a notebook dict (``json.load`` of an executed ``.ipynb``). Returns
    ``{"stderr": [cell indices], "progress_bars": [cell indices]}``, one entry per
    output: a ``stderr`` stream, or a partial progress bar in text (a tqdm bar's
    text, or a widget bar's saved text form, ``" 40%|####  |"``; a finished bar,
    100%, is fine: :func:`rlhf_lessons.core.utils.progress` leaves one). ``make
    run``'s executed copies should have neither.
    """
    found: dict[str, list[int]] = {"stderr": [], "progress_bars": []}
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "stream":
                text = "".join(out.get("text", ""))
                if out.get("name") == "stderr":
                    found["stderr"].append(i)
                elif _BAR.search(text):
                    found["progress_bars"].append(i)
                continue
            plain = "".join((out.get("data") or {}).get("text/plain", ""))
            if _BAR.search(plain):
                found["progress_bars"].append(i)
    return found


def headline(metrics: dict, max_items: int = 4) -> str:
    items = []
    for key in HEADLINE_KEYS:
        if key in metrics and isinstance(metrics[key], (int, float)):
            v = metrics[key]
            items.append(f"{key}={v:.3g}" if isinstance(v, float) else f"{key}={v}")
    return ", ".join(items[:max_items])
