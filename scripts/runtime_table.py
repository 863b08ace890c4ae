"""`make runtime-table`: rewrite README's notebook run-time table from the last `make run`.

Reads outputs/<stem>/metrics.json (`wall_s`, `preset`; RLHF_LESSONS_OUTPUTS is honoured)
and rewrites, between the README's markers

    <!-- runtime-table:begin -->  ...  <!-- runtime-table:end -->

the column of that preset ("fast preset", "default preset" or "GPU") for every notebook
that has a metrics.json, plus one line saying on which machine (CPU model, cores) and on
which date (of the newest metrics.json) it was measured, and the total. Other columns
(topic, GPU need) and notebooks without metrics keep what the README says; a notebook
missing from the table gets a row (fill in its topic), and the row of a notebook no
longer in notebooks/ is dropped. Run it on the machine that ran `make run`. Usage:

    python scripts/runtime_table.py [--readme README.md] [--outputs DIR] [--check]

--check exits 1 (and changes nothing) when the README is not what it would write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- runtime-table:begin -->", "<!-- runtime-table:end -->"
# The header words that name each preset's column.
PRESET_COLUMN = {"fast": "fast preset", "default": "default preset", "gpu": "gpu"}
MEASURED = re.compile(r"^Measured by `make runtime-table`.*$", re.M)


def format_seconds(s: float) -> str:
    """``12 s`` under a minute, else ``1.8 min``."""
    if s < 0:
        raise ValueError(f"s={s}: a wall time cannot be negative")
    return f"{s:.0f} s" if s < 59.5 else f"{s / 60:.1f} min"


def collect(outputs: Path) -> dict[str, tuple[float, str, float]]:
    """{stem: (wall_s, preset, mtime)} of every ``outputs/NN_*/metrics.json`` with a
    ``wall_s``; raises ``ValueError`` naming a file that is not valid JSON."""
    runs = {}
    for path in sorted(Path(outputs).glob("[0-9][0-9]_*/metrics.json")):
        try:
            m = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if isinstance(m.get("wall_s"), (int, float)):
            runs[path.parent.name] = (float(m["wall_s"]), str(m.get("preset", "default")),
                                      path.stat().st_mtime)
    return runs


def machine() -> str:
    """``Intel(R) Xeon(R) ..., 2 cores`` for this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def speed(outputs: Path) -> str:
    """``; a 2048² fp32 matmul at 41-44 GFLOP/s`` from the ``run.json`` that
    ``make run`` leaves in ``outputs`` (its speed before and after the series), or
    "" when there is none (a run by hand, notebook by notebook)."""
    try:
        run = json.loads((Path(outputs) / "run.json").read_text())
        lo, hi = sorted((float(run["matmul_fp32_gflops_before"]),
                         float(run["matmul_fp32_gflops_after"])))
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    span = f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}"
    return f"; a 2048² fp32 matmul at {span} GFLOP/s"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def rewrite(readme: str, runs: dict, where: str, existing: set[str] | None = None) -> str:
    """``readme`` with the table between the markers updated from ``runs``.

    With ``existing`` (the stems in notebooks/), rows of notebooks that are gone
    are dropped.

    Raises ``ValueError`` when the markers or the table are missing, or when a run's
    preset has no column.
    """
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"README needs one {BEGIN} ... {END} pair around the table")
    head, rest = readme.split(BEGIN)
    block, tail = rest.split(END)
    lines = block.strip("\n").splitlines()
    table = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("|")]
    if len(table) < 2:
        raise ValueError("no markdown table between the runtime-table markers")
    header = _cells(lines[table[0]])
    col_of = {}
    for preset, word in PRESET_COLUMN.items():
        hits = [i for i, h in enumerate(header) if word in h.lower()]
        if hits:
            col_of[preset] = hits[0]
    nb_col = next(i for i, h in enumerate(header) if h.lower() == "notebook")
    rows = {}
    for i in table[2:]:
        cells = _cells(lines[i])
        rows[cells[nb_col].strip("`")] = (i, cells)
    if existing is not None:
        gone = {rows[stem][0] for stem in rows if stem not in existing}
        keep = [ln for i, ln in enumerate(lines) if i not in gone]
        return rewrite(head + BEGIN + "\n" + "\n".join(keep) + "\n" + END + tail, runs, where)
    total, newest = 0.0, 0.0
    for stem, (wall, preset, mtime) in sorted(runs.items()):
        if preset not in col_of:
            raise ValueError(f"{stem}: preset {preset!r} has no column in {header}")
        total, newest = total + wall, max(newest, mtime)
        if stem not in rows:
            cells = [""] * len(header)
            cells[0], cells[nb_col] = stem[:2], f"`{stem}`"
            lines.insert(table[-1] + 1, _row(cells))
            table.append(table[-1] + 1)
            rows[stem] = (table[-1], cells)
        i, cells = rows[stem]
        cells[col_of[preset]] = format_seconds(wall)
        lines[i] = _row(cells)
    body = [ln for ln in lines if not MEASURED.match(ln)]
    while body and not body[-1].strip():
        body.pop()
    if runs:
        presets = sorted({p for _, p, _ in runs.values()})
        day = dt.datetime.fromtimestamp(newest, dt.timezone.utc).date().isoformat()
        body += ["", f"Measured by `make runtime-table` from one `make run` "
                     f"({', '.join(presets)} preset) on {day}: {where}; "
                     f"{format_seconds(total)} for the {len(runs)} notebooks."]
    return head + BEGIN + "\n" + "\n".join(body) + "\n" + END + tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    ap.add_argument("--outputs", default=os.environ.get("RLHF_LESSONS_OUTPUTS") or
                    str(Path(__file__).resolve().parents[1] / "outputs"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = ap.parse_args()
    runs = collect(Path(args.outputs))
    if not runs:
        print(f"no {args.outputs}/NN_*/metrics.json with wall_s: run `make run` first",
              file=sys.stderr)
        return 2
    path = Path(args.readme)
    old = path.read_text(encoding="utf-8")
    stems = {p.stem for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    new = rewrite(old, runs, machine() + speed(Path(args.outputs)), existing=stems)
    if args.check:
        return 0 if new == old else 1
    path.write_text(new, encoding="utf-8")
    print(f"{path}: {len(runs)} notebooks, {'changed' if new != old else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
