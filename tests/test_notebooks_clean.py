"""Notebooks are jupytext pairs, committed without outputs.

Each ``notebooks/NN_topic.ipynb`` has a percent-format twin ``NN_topic.py``; either
can be edited (JupyterLab with jupytext, or an editor) and ``make sync`` brings the
other up to date. Executed copies live in ``outputs/`` only.
"""

import json
import re

import jupytext
import pytest

from rlhf_lessons.core.config import REPO_ROOT

NOTEBOOKS = (sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             + sorted((REPO_ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb")))


def _cells(nb) -> list[tuple[str, str]]:
    return [(c["cell_type"], c["source"].strip()) for c in nb["cells"]]


def test_notebooks_exist():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb files"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts; "
                       "run `make sync` (it strips them) before committing")
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_pair_in_sync(path):
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{path.name} has no jupytext twin {twin.name}: run `make sync`"
    ipynb = jupytext.read(path)
    py = jupytext.read(twin)
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{path.name}: not paired (jupytext formats metadata missing)")
    a, b = _cells(ipynb), _cells(py)
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        pytest.fail(f"{path.name} and {twin.name} differ (first at cell {first}; "
                    f"{len(a)} vs {len(b)} cells): edit one, then run `make sync`")


# A formula: $$...$$, or $...$ within a paragraph. Inside one, ``\\alpha`` is TeX
# for "line break, then the word alpha": jupytext keeps a markdown cell's text as
# written in the .py twin, so a backslash doubled as in a Python string stays doubled.
FORMULA = re.compile(r"\$\$.+?\$\$|\$(?:[^$\n]|\n(?!\n))+?\$", re.S)
DOUBLED = re.compile(r"\\\\[a-zA-Z]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_formulas_have_single_backslash_commands(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    bad = [(i, f) for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "markdown"
           for f in FORMULA.findall("".join(cell["source"])) if DOUBLED.search(f)]
    assert not bad, (f"{path.name}: formulas with a doubled backslash command (TeX "
                     f"shows them raw): {bad[:3]}; write one backslash in the .py twin")


LIST_ITEM = re.compile(r"\n\s*(?:[-+*]|\d+[.)])\s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_formulas_do_not_wrap_onto_a_list_marker(path):
    """The handouts' markdown reads an inline formula's next line that starts with
    "- " as a list item, which cuts the formula in two: both halves show as TeX
    (a $$ block is kept whole)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    bad = [(i, f) for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "markdown"
           for f in FORMULA.findall("".join(cell["source"]))
           if not f.startswith("$$") and LIST_ITEM.search(f)]
    assert not bad, (f"{path.name}: formulas wrapped onto a line that starts like a "
                     f"list item: {bad[:3]}; end the line before with the operator")
