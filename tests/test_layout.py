"""The package's layers and its one numbering, checked on the source itself.

- ``rlhf_lessons/`` holds only ``__init__.py`` and the four layer subpackages, in
  this order: ``core`` < ``train`` < ``measure`` < ``course``. A module imports
  only its own layer and the layers below it, so there is no cycle between layers
  (and none inside one: every import is at the top of a module).
- Only the course layer imports plotting or widget libraries.
- Only ``course.artefacts`` knows ``outputs/`` and ``data/models/``.
- Every numbered banner of a module (``# 4.3.2 Score``) is the start of a heading of
  the notebook that teaches it (``### 4.3.2 Score``), so "go to 4.3.2" lands on the
  same content in both.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

from rlhf_lessons.core.config import REPO_ROOT

PKG = REPO_ROOT / "rlhf_lessons"
LAYERS = ("core", "train", "measure", "course")  # each imports only those before it
MODULES = sorted(p for p in PKG.glob("*/*.py") if p.name != "__init__.py")
PRESENTATION = ("matplotlib", "ipywidgets", "IPython")
BANNER = re.compile(r"^# (\d+(?:\.\d+)+) (.+)$")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)+) (.+)$")


def _layer(path: Path) -> str:
    return path.parent.name


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
                mods = [child.module]
                if child.module in {f"rlhf_lessons.{x}" for x in LAYERS}:
                    mods = [f"{child.module}.{a.name}" for a in child.names]
                out.extend((m, in_fn) for m in mods)
            visit(child, fn)

    visit(tree, False)
    return out


def _package_imports(path: Path) -> list[str]:
    """The package's modules that ``path`` imports, as ``layer.module``."""
    return [m.removeprefix("rlhf_lessons.") for m, _ in _imports(path)
            if m.startswith("rlhf_lessons.")]


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


def test_the_package_top_holds_only_the_layers():
    top = sorted(p.name for p in PKG.iterdir() if p.name not in ("__pycache__",))
    assert top == sorted(["__init__.py", *LAYERS]), (
        f"rlhf_lessons/ holds {top}: every module lives in a layer subpackage")
    for layer in LAYERS:
        assert (PKG / layer / "__init__.py").exists(), f"{layer}/ is not a package"


@pytest.mark.parametrize("path", MODULES, ids=[f"{_layer(p)}.{p.stem}" for p in MODULES])
def test_imports_run_down_the_layers_only(path):
    mine = LAYERS.index(_layer(path))
    for mod in _package_imports(path):
        layer = mod.split(".")[0]
        assert layer in LAYERS, f"{path.name} imports rlhf_lessons.{mod}: not in a layer"
        assert LAYERS.index(layer) <= mine, (
            f"{_layer(path)}/{path.name} imports rlhf_lessons.{mod}, a higher layer: "
            f"layers import only {LAYERS[:mine + 1]}")


@pytest.mark.parametrize("path", MODULES, ids=[f"{_layer(p)}.{p.stem}" for p in MODULES])
def test_only_the_course_layer_presents(path):
    if _layer(path) == "course":
        return
    bad = [m for m, _ in _imports(path) if m.split(".")[0] in PRESENTATION]
    assert not bad, f"{path.name} imports {bad}: only the course layer presents"


@pytest.mark.parametrize("path", MODULES, ids=[f"{_layer(p)}.{p.stem}" for p in MODULES])
def test_only_artefacts_knows_the_artefact_folders(path):
    if path.stem in ("artefacts", "runner", "config", "handouts", "slides"):
        return  # config holds the outputs setting; runner writes executed notebooks;
        # handouts and slides read the notebook JSON's "outputs" key
    text = path.read_text(encoding="utf-8")
    for needle in ('"outputs"', '"models"', "output_dir(", "MODELS_DIR"):
        assert needle not in text, f"{path.name} mentions {needle}: ask course.artefacts"


@pytest.mark.parametrize("path", MODULES, ids=[f"{_layer(p)}.{p.stem}" for p in MODULES])
def test_modules_import_the_package_at_the_top(path):
    late = [m for m, in_fn in _imports(path) if in_fn and m.startswith("rlhf_lessons")]
    assert not late, f"{path.name} imports {late} inside a function: import at the top"


def test_no_cycle_inside_a_layer():
    graph = {f"{_layer(p)}.{p.stem}": set(_package_imports(p)) for p in MODULES}
    done, stack = set(), []

    def visit(node):
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        stack.append(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in graph:
        visit(node)


def test_module_names_name_a_concept():
    bad = [p.name for p in MODULES
           if re.search(r"_(findings|extra|misc)$|utils\d", p.stem)]
    assert not bad, f"{bad}: name a module for its concept"


def test_configs_live_in_the_core_layer():
    for path in MODULES:
        if path.parent.name == "core":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                raise AssertionError(f"{path.parent.name}/{path.name} defines {node.name}:"
                                     " configs live in core/config.py")


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
