"""Tier 2: every notebook runs top to bottom in the fast preset and writes its metrics."""

import os

import pytest

from rlhf_lessons.course.runner import execute_notebook, notebook_paths, solution_paths

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


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solutions_notebook_runs_in_fast_preset(path):
    _run_fast(path, timeout=300)
