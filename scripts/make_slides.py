"""`make slides`: a reveal.js deck per notebook in outputs/slides/, opening offline.

Each deck is built from the executed copy of a `make run` (outputs/<stem>/<stem>.ipynb,
with its plots) when there is one, else from the unexecuted notebooks/<stem>.ipynb.
Which cell becomes a slide, a sub-slide or is skipped: see rlhf_lessons/course/slides.py
(a cell's own `slideshow.slide_type` metadata always wins). Usage:

    python scripts/make_slides.py [--only 03]
"""

from __future__ import annotations

import argparse
import sys

import nbformat

from rlhf_lessons.course.runner import check_outputs_writable, notebook_paths, outputs_root
from rlhf_lessons.course.slides import write_deck


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="decks for notebooks whose name contains this")
    args = ap.parse_args()
    root = outputs_root()
    problem = check_outputs_writable(root)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    deck_dir = root / "slides"
    for path in notebook_paths(args.only):
        executed = root / path.stem / f"{path.stem}.ipynb"
        source = executed if executed.exists() else path
        nb = nbformat.read(source, as_version=4)
        try:
            deck = write_deck(nb, deck_dir, path.stem, cache=root / ".cache")
        except RuntimeError as err:
            print(err, file=sys.stderr)
            return 1
        kind = "executed" if source == executed else "unexecuted (no make run yet)"
        print(f"{deck} ({deck.stat().st_size / 1e3:.0f} kB, from the {kind} notebook)")
    print(f"open {deck_dir}/<notebook>.slides.html in a browser: → next slide, ↓ sub-slide")
    return 0


if __name__ == "__main__":
    sys.exit(main())
