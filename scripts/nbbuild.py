"""Tiny helpers to write a notebook from Python: ``md(...)``, ``code(...)``, ``save(path)``.

The notebooks are committed without outputs; scripts/make_nb*.py use this to keep the
source of a lesson readable as plain Python (and diffable) while we write it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat

_cells: list = []

# The setup cell every notebook starts with (CONVENTIONS.md: nothing else hard-codes sizes).
SETUP = """
import time
t0 = time.time()

from rlhf_lessons.config import LessonConfig
from rlhf_lessons.utils import get_device, seed_everything

cfg = LessonConfig.from_env()
device = get_device(cfg)
seed_everything(cfg.seed)
"""


def setup_cell(show: str) -> None:
    """The standard setup cell, ending with a print of the config parts this lesson uses."""
    code(SETUP + show + "\n")


def md(text: str) -> None:
    _cells.append(nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n")))


def code(text: str) -> None:
    src = textwrap.dedent(text).strip("\n")
    too_long = [line for line in src.splitlines() if len(line) > 79]
    if too_long:
        raise ValueError(f"code lines over 79 characters: {too_long}")
    _cells.append(nbformat.v4.new_code_cell(src))


def save(path: str) -> None:
    """Write the cells to ``path`` (relative paths are taken from the repo root)."""
    path = Path(path) if Path(path).is_absolute() else Path(__file__).resolve().parent.parent / path
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(_cells):
        cell["id"] = f"cell-{i:02d}"
    nb.cells = list(_cells)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    _cells.clear()
    print(f"wrote {path} ({len(nb.cells)} cells)")
