"""Exercises: each lesson stub has exactly one solution (and each solution a stub),
raises NotImplementedError until solved, and has a check and a hint under it."""

import jupytext
import nbformat
import pytest

from rlhf_lessons.course.runner import fill_exercises, notebook_paths, solutions_for, tagged

# 00 checks the setup; 09 hands the course to TRL: its ✏️ prompts are TRL runs, not
# functions to write, so it has no exercises (and no solutions notebook).
NO_EXERCISES = ("00_", "09_")
LESSONS = [p for p in notebook_paths() if not p.name.startswith(NO_EXERCISES)]


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_exercise_has_one_solution_and_vice_versa(path):
    exercises = tagged(jupytext.read(path).cells, "exercise")
    assert len(exercises) >= 2, f"{path.name}: {len(exercises)} exercises, expected >= 2"
    sol = solutions_for(path)
    assert sol.exists(), f"{path.name} has exercises but no {sol.name}"
    solutions = tagged(jupytext.read(sol).cells, "solution")
    assert set(exercises) == set(solutions), (
        f"{path.name}: exercises without solution {sorted(set(exercises) - set(solutions))}, "
        f"solutions without exercise {sorted(set(solutions) - set(exercises))}")


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_stubs_raise_and_are_followed_by_a_check_and_a_hint(path):
    cells = jupytext.read(path).cells
    for i, cell in enumerate(cells):
        if "exercise" not in cell.metadata.get("tags", []):
            continue
        assert "raise NotImplementedError" in cell.source, f"{path.name} cell {i}: no stub"
        assert "✏️ Exercise" in cell.source, f"{path.name} cell {i}: no friendly message"
        after = cells[i + 1: i + 3]
        assert after[0].cell_type == "code" and "checks.check_" in after[0].source, (
            f"{path.name} cell {i}: the next cell must run the check")
        assert after[1].cell_type == "markdown" and "<details><summary>Hint" in after[1].source, (
            f"{path.name} cell {i}: a collapsible hint must follow the check")


def _nb(*cells):
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells])


def test_fill_exercises_replaces_stubs_and_fails_loudly():
    lesson = _nb(("raise NotImplementedError", ["exercise", "ex-a"]), ("x = 1", []))
    sols = _nb(("a = 1", ["solution", "ex-a"]), ("b = 2", ["solution", "ex-b"]))
    assert fill_exercises(lesson, sols) == ["ex-a"]
    assert lesson.cells[0].source == "a = 1"
    with pytest.raises(ValueError, match="ex-c"):
        fill_exercises(_nb(("raise", ["exercise", "ex-c"])), sols)
    with pytest.raises(ValueError, match="two cells"):
        tagged(_nb(("1", ["solution", "ex-a"]), ("2", ["solution", "ex-a"])).cells,
               "solution")
