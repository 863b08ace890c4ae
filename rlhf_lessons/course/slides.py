"""Slide decks: each notebook as a reveal.js deck that opens offline (``make slides``).

Which cell goes where
---------------------
A cell that carries ``slideshow.slide_type`` in its metadata keeps it: that is how
an author overrides the rule below for one cell (in the ``.py`` twin:
``# %% [markdown] slideshow={"slide_type": "skip"}``; values ``slide``,
``subslide``, ``fragment``, ``-`` (continue the current slide), ``skip``,
``notes``). Every other cell gets a type from :func:`slide_type`:

- the title cell (``# ...``) and each ``## `` section heading start a **slide**;
  ``###``/``####`` headings start a **sub-slide** (reveal.js: press ↓);
- exercise stubs, solutions (tags ``exercise``/``solution``) and hint cells
  (``<details>``) are **skipped**; so are empty cells;
- a code cell over ``LONG_CODE`` lines is **skipped** when it shows nothing, and
  otherwise gets its own **sub-slide**; so does any cell whose output holds a plot
  or more than ``LONG_OUTPUT`` lines;
- everything else continues the current slide (``-``).

Decks are built from the executed copies in ``<outputs>/<stem>/<stem>.ipynb`` when a
``make run`` left them (with plots and static widgets, :mod:`rlhf_lessons.course.handouts`),
else from ``notebooks/``. reveal.js and MathJax (pinned, from the npm registry,
checked against npm's sha512: :mod:`rlhf_lessons.course.web_assets`) are copied once
into ``<deck folder>/reveal.js/`` and ``<deck folder>/mathjax/``; decks link them
relatively, so the folder opens from disk with no network, formulas drawn.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jinja2

from rlhf_lessons.course.handouts import static_widgets
from rlhf_lessons.course.web_assets import (
    MATHJAX,
    MATHJAX_CONFIG,
    MATHJAX_FILE,
    REVEAL,
    npm_files,
)

LONG_CODE = 15      # lines of code
LONG_OUTPUT = 20    # lines of printed output
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")

MATHJAX_SRC = f"mathjax/{Path(MATHJAX_FILE).name}"  # beside the deck, like reveal.js/
# The files a deck uses, relative to the package's root in the tarball.
REVEAL_FILES = ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css",
                "dist/theme/fonts/source-sans-pro/source-sans-pro.css", "LICENSE")
REVEAL_FONTS = "dist/theme/fonts/source-sans-pro/"

DECK_TEMPLATE = """{%- extends 'reveal/index.html.j2' -%}
{# no jQuery, require.js or mermaid from a CDN: reveal.js is loaded from beside the deck #}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{# MathJax from beside the deck, not from a CDN #}
{%- block html_head_js_mathjax -%}{{ resources.rl_mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block footer_js -%}
<style>/* a slide longer than the screen scrolls instead of running off it */
.reveal .slides > section, .reveal .slides > section > section {
  height: 100%; overflow-y: auto; }</style>
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script>
Reveal.initialize({controls: true, progress: true, history: true, hash: true,
                   slideNumber: "c/t", transition: "slide", width: 1100, height: 760});
</script>
{%- endblock footer_js -%}
"""


# --------------------------------------------------------------------------
# Which cell goes where
# --------------------------------------------------------------------------
def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _output_lines_and_plot(cell) -> tuple[int, bool]:
    lines, plot = 0, False
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if any(k.startswith("image/") for k in data):
            plot = True
        text = out.get("text") or data.get("text/plain") or ""
        lines += len(("".join(text) if isinstance(text, list) else text).splitlines())
        html_ = data.get("text/html", "")
        plot |= "<img" in ("".join(html_) if isinstance(html_, list) else html_)
    return lines, plot


def slide_type(cell, first: bool = False) -> str:
    """The reveal.js slide type of ``cell`` by the rule of the module docstring."""
    meta = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    if meta:
        if meta not in SLIDE_TYPES:
            raise ValueError(f"slideshow.slide_type={meta!r}: expected one of {SLIDE_TYPES}")
        return meta
    src = _source(cell).strip()
    tags = cell.get("metadata", {}).get("tags", [])
    if not src or "exercise" in tags or "solution" in tags or src.startswith("<details"):
        return "skip"
    if cell.get("cell_type") == "markdown":
        head = src.splitlines()[0]
        if first or head.startswith(("# ", "## ")):
            return "slide"
        if head.startswith(("### ", "#### ")):
            return "subslide"
        return "-"
    if cell.get("cell_type") != "code":
        return "skip"
    out_lines, plot = _output_lines_and_plot(cell)
    if len(src.splitlines()) > LONG_CODE:
        return "subslide" if (out_lines or plot) else "skip"
    if plot or out_lines > LONG_OUTPUT:
        return "subslide"
    return "-"


def assign_slide_types(nb) -> dict[str, int]:
    """Set ``slideshow.slide_type`` on every cell of ``nb`` in place (existing values
    are kept); returns how many cells got each type."""
    for i, cell in enumerate(nb.cells):
        kind = slide_type(cell, first=(i == 0))
        cell.setdefault("metadata", {}).setdefault("slideshow", {})["slide_type"] = kind
    shown = [c for c in nb.cells if c["metadata"]["slideshow"]["slide_type"] != "skip"]
    if shown and shown[0]["metadata"]["slideshow"]["slide_type"] != "slide":
        shown[0]["metadata"]["slideshow"]["slide_type"] = "slide"  # reveal.js starts on one
    counts: dict[str, int] = {}
    for cell in nb.cells:
        kind = cell["metadata"]["slideshow"]["slide_type"]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


# --------------------------------------------------------------------------
# reveal.js and MathJax beside the decks
# --------------------------------------------------------------------------
def _wanted_reveal(rel: str) -> bool:
    return rel in REVEAL_FILES or (rel.startswith(REVEAL_FONTS) and rel.endswith(".woff"))


def _wanted_mathjax(rel: str) -> bool:
    return rel in (MATHJAX_FILE, "LICENSE")


def install_reveal(deck_dir: Path, cache: Path) -> Path:
    """Copy the reveal.js files a deck needs into ``deck_dir/reveal.js``, and
    MathJax's ``MATHJAX_FILE`` and licence into ``deck_dir/mathjax``; return the first.
    Raises ``RuntimeError`` (:func:`web_assets.npm_tarball`) when either can't be had."""
    target = Path(deck_dir) / "reveal.js"
    if not (target / "dist" / "reveal.js").exists():
        for rel, blob in npm_files(REVEAL, Path(cache), _wanted_reveal).items():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(blob)
    mathjax = Path(deck_dir) / MATHJAX_SRC
    if not mathjax.exists():
        mathjax.parent.mkdir(parents=True, exist_ok=True)
        for rel, blob in npm_files(MATHJAX, Path(cache), _wanted_mathjax).items():
            (mathjax.parent / Path(rel).name).write_bytes(blob)
    return target


# --------------------------------------------------------------------------
# A deck
# --------------------------------------------------------------------------
def deck_html(nb) -> str:
    """The reveal.js deck of ``nb`` (not changed), linking ``reveal.js/`` and
    ``mathjax/`` beside it."""
    from nbconvert import SlidesExporter

    nb = copy.deepcopy(nb)
    static_widgets(nb)
    assign_slide_types(nb)
    exporter = SlidesExporter(
        extra_loaders=[jinja2.DictLoader({"rl_deck.html.j2": DECK_TEMPLATE})],
        template_file="rl_deck.html.j2", reveal_url_prefix="reveal.js",
        reveal_theme="white", reveal_scroll=True)
    mathjax = f'{MATHJAX_CONFIG}\n<script src="{MATHJAX_SRC}"></script>'
    body, _ = exporter.from_notebook_node(nb, resources={"rl_mathjax": mathjax})
    return body


def write_deck(nb, deck_dir: Path, stem: str, cache: Path) -> Path:
    """Write ``deck_dir/<stem>.slides.html`` and reveal.js beside it; return the deck."""
    deck_dir = Path(deck_dir)
    deck_dir.mkdir(parents=True, exist_ok=True)
    install_reveal(deck_dir, cache)
    path = deck_dir / f"{stem}.slides.html"
    path.write_text(deck_html(nb), encoding="utf-8")
    return path
