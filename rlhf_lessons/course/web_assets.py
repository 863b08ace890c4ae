"""What the offline pages load: reveal.js and MathJax, pinned, from the npm registry.

The handouts (:mod:`rlhf_lessons.course.handouts`) and slide decks
(:mod:`rlhf_lessons.course.slides`) open from disk with no network. What they run
in the browser comes from one place: an npm package at a pinned version, fetched
once into a cache folder outside git (``npm pack``, or the registry over HTTPS
where there is no npm) and checked against the sha512 that npm publishes for it
(``npm view <name>@<version> dist.integrity``). A later run reads the cache.

- **reveal.js** draws the decks; its files are copied beside them.
- **MathJax** draws the formulas: ``MATHJAX_FILE``, its one-file build of TeX
  input and SVG output with every extension (no fonts to load, nothing fetched
  later). A handout carries it inline (one file that opens anywhere); a deck
  links the copy beside it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package: ``sha512`` is npm's ``dist.integrity`` without
    its ``sha512-`` prefix."""

    name: str
    version: str
    sha512: str

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    @property
    def url(self) -> str:
        return f"https://registry.npmjs.org/{self.name}/-/{self.tarball}"


REVEAL = NpmPackage("reveal.js", "4.6.1", "1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbP"
                    "F32Dn7aiu/LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw==")
MATHJAX = NpmPackage("mathjax", "3.2.2", "Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9"
                     "NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
MATHJAX_FILE = "es5/tex-svg-full.js"

# MathJax 3's settings for notebook markdown: nbconvert's MathJax 2 settings
# ($...$ and \(...\) inline, $$...$$ and \[...\] displayed, \$ for a dollar).
MATHJAX_CONFIG = """<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]],
        displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  svg: {fontCache: "global"}
};
</script>"""

_FAILED: dict[str, str] = {}  # tarball -> why it could not be fetched (once a process)


def npm_tarball(pkg: NpmPackage, cache: Path) -> bytes:
    """``pkg``'s npm tarball: from ``cache``, else ``npm pack``, else the registry
    over HTTPS. Raises ``RuntimeError`` saying how to get it when all fail (then
    again at once, for the rest of the process) or the bytes do not match
    ``pkg.sha512``."""
    path = Path(cache) / pkg.tarball
    if not path.exists():
        if pkg.tarball in _FAILED:
            raise RuntimeError(_FAILED[pkg.tarball])
        path.parent.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        try:
            if npm:
                subprocess.run([npm, "pack", f"{pkg.name}@{pkg.version}", "--silent",
                                "--fetch-retries=1", "--pack-destination", str(path.parent)],
                               check=True, capture_output=True, timeout=300)
            else:
                with urllib.request.urlopen(pkg.url, timeout=120) as r:
                    path.write_bytes(r.read())
        except (OSError, subprocess.SubprocessError) as err:
            _FAILED[pkg.tarball] = (
                f"could not fetch {pkg.name} {pkg.version} ({type(err).__name__}: {err}); "
                f"on a machine with network run `make run` or `make slides` once, or put "
                f"{pkg.url} at {path}")
            raise RuntimeError(_FAILED[pkg.tarball]) from err
    blob = path.read_bytes()
    got = base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if got != pkg.sha512:
        raise RuntimeError(f"{path} does not match {pkg.name} {pkg.version}'s sha512 "
                           "published by npm: delete it and run again")
    return blob


def npm_files(pkg: NpmPackage, cache: Path, wanted) -> dict[str, bytes]:
    """{path inside the package: bytes} of the files of ``pkg`` for which
    ``wanted(path)`` is true (``RuntimeError`` as :func:`npm_tarball`)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(npm_tarball(pkg, cache)), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix("package/")
            if member.isfile() and wanted(rel):
                files[rel] = tar.extractfile(member).read()
    return files


@functools.lru_cache(maxsize=4)
def mathjax_js(cache: Path) -> str:
    """The text of ``MATHJAX_FILE`` (``RuntimeError`` as :func:`npm_tarball`)."""
    files = npm_files(MATHJAX, cache, lambda rel: rel == MATHJAX_FILE)
    return files[MATHJAX_FILE].decode("utf-8")


def mathjax_inline(cache: Path) -> str:
    """HTML that draws a page's formulas with no file beside it: the settings,
    then MathJax itself in a ``<script>`` (``RuntimeError`` as :func:`npm_tarball`)."""
    js = mathjax_js(cache).replace("</script", "<\\/script")
    return f"{MATHJAX_CONFIG}\n<script>{js}</script>"
