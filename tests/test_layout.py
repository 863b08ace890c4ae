"""The package's layers and its one numbering, checked on the source itself.

- Algorithm modules import no plotting, no widgets and no artefact paths.
- Only ``artefacts`` knows ``outputs/`` and ``data/models/``.
- Every numbered banner of a module (``# 4.3.2 Score``) is the start of a heading of
  the notebook that teaches it (``### 4.3.2 Score``), so "go to 4.3.2" lands on the
  same content in both.
- No module grows past about 500 lines; no module imports another of the package
  inside a function (there is no cycle to break).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

from rlhf_lessons.config import REPO_ROOT

PKG = REPO_ROOT / "rlhf_lessons"
MODULES = sorted(p for p in PKG.glob("*.py") if p.name != "__init__.py")
ALGORITHM = ("config", "hub", "preference_formats", "data", "batching", "models", "lean_gpt2", "generation", "pretrain",
             "sft", "reward", "rollout", "ppo", "dpo", "group_pg", "overoptimisation", "raters",
             "sycophancy", "selection", "calibration", "biased_raters", "analysis", "rewrites",
             "evaluate", "budgets", "utils", "checks", "checks_findings", "trl_bridge")
PRESENTATION = ("matplotlib", "ipywidgets", "IPython")
BANNER = re.compile(r"^# (\d+(?:\.\d+)+) (.+)$")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)+) (.+)$")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, inside a function?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node, in_fn):
        for child in ast.iter_child_nodes(node):
            fn = in_fn or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, in_fn) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                out.append((child.module, in_fn))
            visit(child, fn)

    visit(tree, False)
    return out


def banners(path: Path) -> list[tuple[str, str]]:
    """The numbered banners of a module: ``# N.M Title`` between two rules of dashes."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i in range(1, len(lines) - 1):
        m = BANNER.match(lines[i])
        if m and lines[i - 1].startswith("# ---") and lines[i + 1].startswith("# ---"):
            out.append((m.group(1), m.group(2).strip()))
    return out


def notebook_headings(number: str) -> dict[str, str]:
    """{section number: heading title} of the notebook whose number starts ``number``."""
    nb = f"{int(number.split('.')[0]):02d}"
    (path,) = sorted((REPO_ROOT / "notebooks").glob(f"{nb}_*.py"))
    heads = {}
    for cell in jupytext.read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            m = HEADING.match(line.strip())
            if m:
                heads[m.group(1)] = m.group(2).strip()
    return heads


@pytest.mark.parametrize("name", ALGORITHM)
def test_algorithm_modules_import_no_presentation_and_no_artefacts(name):
    imported = [m for m, _ in _imports(PKG / f"{name}.py")]
    bad = [m for m in imported
           if m.split(".")[0] in PRESENTATION or m in ("rlhf_lessons.artefacts",
                                                      "rlhf_lessons.plots",
                                                      "rlhf_lessons.plots_findings",
                                                      "rlhf_lessons.widgets")]
    assert not bad, f"{name}.py imports {bad}: algorithm modules present nothing"


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_only_artefacts_knows_the_artefact_folders(path):
    if path.stem in ("artefacts", "runner", "config", "handouts", "slides"):
        return  # config holds the outputs setting; runner writes executed notebooks;
        # handouts and slides read the notebook JSON's "outputs" key
    text = path.read_text(encoding="utf-8")
    for needle in ('"outputs"', '"models"', "output_dir(", "MODELS_DIR"):
        assert needle not in text, f"{path.name} mentions {needle}: ask rlhf_lessons.artefacts"


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_modules_stay_small_and_import_at_the_top(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 520, f"{path.name} has {n} lines: split it by concept"
    late = [m for m, in_fn in _imports(path) if in_fn and m.startswith("rlhf_lessons")]
    assert not late, f"{path.name} imports {late} inside a function: import at the top"


def test_banner_parser_reads_numbers_and_titles(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("# ----\n# 4.3.2 Score\n# ----\nx = 1\n# 9.9 not a banner\n")
    assert banners(f) == [("4.3.2", "Score")]


@pytest.mark.parametrize("path", MODULES, ids=[p.stem for p in MODULES])
def test_banners_are_the_notebook_sections(path):
    for number, title in banners(path):
        heads = notebook_headings(number)
        assert number in heads, (f"{path.name}: banner {number} {title!r} has no section "
                                 f"{number} in its notebook")
        assert heads[number].lower().startswith(title.lower()), (
            f"{path.name}: banner {number} {title!r} but the notebook's {number} is "
            f"{heads[number]!r}")


def test_the_algorithm_modules_carry_banners():
    numbered = {p.stem for p in MODULES if banners(p)}
    for name in ("pretrain", "sft", "reward", "ppo", "overoptimisation", "evaluate"):
        assert name in numbered, f"{name}.py has no numbered banners"
