"""Tier 2: every notebook runs top to bottom in the fast preset and writes its metrics."""

import json
import os

import nbformat
import pytest

from rlhf_lessons.course.runner import execute_notebook, notebook_paths, solution_paths
from rlhf_lessons.measure.verdicts import check_claims

NOTEBOOKS = notebook_paths()
SOLUTIONS = solution_paths()


def _run_fast(path, timeout):
    """Execute ``path`` in the fast preset, writing into the tests' outputs folder."""
    env = {"RLHF_LESSONS_FAST": "1", "RLHF_LESSONS_OUTPUTS": os.environ["RLHF_LESSONS_OUTPUTS"]}
    run = execute_notebook(path, timeout=timeout, env=env)
    assert run.ok, f"{path.name} failed:\n{run.error}"
    return run


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2, "notebooks/ should hold the numbered lessons"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_preset(path):
    run = _run_fast(path, timeout=600)
    assert run.metrics.get("preset") == "fast", f"{path.stem}/metrics.json lacks preset=fast"
    assert run.metrics.get("wall_s", 0) > 0, f"{path.stem}/metrics.json lacks wall_s"
    # Nothing a learner must read past: transformers' warnings and text progress
    # bars land on stderr (issue 13).
    assert not run.noise["stderr"], (f"{path.name}: stderr output in cells "
                                     f"{run.noise['stderr']}")
    # ... nor a bar frozen part-way ("PPO:  0%| 0/16") in the saved text (issue 27)
    assert not run.noise["progress_bars"], (f"{path.name}: partial progress bars in "
                                            f"cells {run.noise['progress_bars']}")
    # From 03 on, each notebook closes with its claims; every verdict in them follows
    # the one rule of rlhf_lessons.measure.verdicts (issue 27)
    if path.stem[:2] >= "03":
        assert run.metrics.get("claims"), f"{path.stem}/metrics.json has no closing claims"
        assert not check_claims(run.metrics["claims"]), check_claims(run.metrics["claims"])


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_notebook_runs_in_fast_preset(path):
    _run_fast(path, timeout=300)


BARS = [  # slower than progress()'s one-second delay, so each bar is shown
    "import time\nfrom rlhf_lessons.core.utils import progress\n"
    "for i in progress(range(3), desc='kept'):\n    time.sleep(0.6)",
    "for i in progress(range(3), desc='gone', leave=False):\n    time.sleep(0.6)",
    "bar = progress(total=3, desc='by hand')\nfor i in range(3):\n"
    "    time.sleep(0.6)\n    bar.update(1)\nbar.close()",
]


@pytest.mark.notebook
def test_headless_run_saves_finished_progress_bars(tmp_path):
    """A widget bar's saved text is the finished bar, not the one at its first
    display; a bar with leave=False leaves no text."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in BARS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "bars.ipynb"
    nbformat.write(nb, path)
    run = execute_notebook(path, out_dir=tmp_path / "out", timeout=120,
                           env={"RLHF_LESSONS_OUTPUTS": os.environ["RLHF_LESSONS_OUTPUTS"]})
    assert run.ok, run.error
    assert run.noise == {"stderr": [], "progress_bars": []}, run.noise
    cells = json.loads((tmp_path / "out" / "bars.ipynb").read_text())["cells"]
    text = ["".join(o.get("data", {}).get("text/plain", "")) for c in cells
            for o in c["outputs"]]
    assert text[0].startswith("kept: 100%|") and text[2].startswith("by hand: 100%|"), text
    assert text[1] == "", text
