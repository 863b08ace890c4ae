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
else from ``notebooks/``. reveal.js (pinned ``REVEAL_VERSION``, from the npm registry,
checked against ``REVEAL_SHA512``) is copied once into ``<deck folder>/reveal.js/``;
decks link it relatively, so the folder opens from disk with no network.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import jinja2

from rlhf_lessons.course.handouts import static_widgets

LONG_CODE = 15      # lines of code
LONG_OUTPUT = 20    # lines of printed output
SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")

REVEAL_VERSION = "4.6.1"
REVEAL_URL = f"https://registry.npmjs.org/reveal.js/-/reveal.js-{REVEAL_VERSION}.tgz"
REVEAL_SHA512 = ("1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/LKWDOGjMbaDwKQiG"
                 "mfqcoGQ74HUHCMw==")
# The files a deck uses, relative to the package's root in the tarball.
REVEAL_FILES = ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css",
                "dist/theme/fonts/source-sans-pro/source-sans-pro.css", "LICENSE")
REVEAL_FONTS = "dist/theme/fonts/source-sans-pro/"

DECK_TEMPLATE = """{%- extends 'reveal/index.html.j2' -%}
{# no jQuery, require.js or mermaid from a CDN: reveal.js is loaded from beside the deck #}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
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
# reveal.js, fetched once and checked
# --------------------------------------------------------------------------
def _fetch_tarball(cache: Path) -> bytes:
    """reveal.js's npm tarball: from ``cache``, else ``npm pack``, else the registry
    over HTTPS. Raises ``RuntimeError`` saying how to get it when all fail or the
    bytes do not match ``REVEAL_SHA512``."""
    path = cache / f"reveal.js-{REVEAL_VERSION}.tgz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        try:
            if npm:
                subprocess.run([npm, "pack", f"reveal.js@{REVEAL_VERSION}", "--silent",
                                "--pack-destination", str(cache)], check=True,
                               capture_output=True, timeout=300)
            else:
                with urllib.request.urlopen(REVEAL_URL, timeout=120) as r:
                    path.write_bytes(r.read())
        except (OSError, subprocess.SubprocessError) as err:
            raise RuntimeError(
                f"could not fetch reveal.js {REVEAL_VERSION} ({type(err).__name__}: {err}); "
                f"on a machine with network run `make slides` once, or put {REVEAL_URL} "
                f"at {path}") from err
    blob = path.read_bytes()
    got = base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if got != REVEAL_SHA512:
        raise RuntimeError(f"{path} does not match reveal.js {REVEAL_VERSION}'s sha512 "
                           "published by npm: delete it and run again")
    return blob


def install_reveal(deck_dir: Path, cache: Path) -> Path:
    """Copy the reveal.js files a deck needs into ``deck_dir/reveal.js``; return it."""
    target = Path(deck_dir) / "reveal.js"
    if (target / "dist" / "reveal.js").exists():
        return target
    with tarfile.open(fileobj=io.BytesIO(_fetch_tarball(Path(cache))), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix("package/")
            wanted = rel in REVEAL_FILES or (rel.startswith(REVEAL_FONTS)
                                             and rel.endswith(".woff"))
            if member.isfile() and wanted:
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
    return target


# --------------------------------------------------------------------------
# A deck
# --------------------------------------------------------------------------
def deck_html(nb) -> str:
    """The reveal.js deck of ``nb`` (not changed), linking ``reveal.js/`` beside it."""
    from nbconvert import SlidesExporter

    nb = copy.deepcopy(nb)
    static_widgets(nb)
    assign_slide_types(nb)
    exporter = SlidesExporter(
        extra_loaders=[jinja2.DictLoader({"rl_deck.html.j2": DECK_TEMPLATE})],
        template_file="rl_deck.html.j2", reveal_url_prefix="reveal.js",
        reveal_theme="white", reveal_scroll=True)
    body, _ = exporter.from_notebook_node(nb)
    return body


def write_deck(nb, deck_dir: Path, stem: str, cache: Path) -> Path:
    """Write ``deck_dir/<stem>.slides.html`` and reveal.js beside it; return the deck."""
    deck_dir = Path(deck_dir)
    deck_dir.mkdir(parents=True, exist_ok=True)
    install_reveal(deck_dir, cache)
    path = deck_dir / f"{stem}.slides.html"
    path.write_text(deck_html(nb), encoding="utf-8")
    return path
