"""`make findings`: rewrite the measured claims of docs/findings.md from the last `make run`.

Reads ``outputs/<stem>/metrics.json`` (RLHF_LESSONS_OUTPUTS is honoured): each notebook
from 03 on saves its closing claims (``claims``: claim, number, 95% interval, n, the
null and side it is judged against, verdict; :mod:`rlhf_lessons.measure.verdicts`).
Between the markers

    <!-- findings:begin -->  ...  <!-- findings:end -->

it writes one table per notebook, then a line naming the machine, the precision
(bf16 autocast or fp32, as the trainers choose on it), the preset and the date, so a
reader knows which run the numbers are from. A verdict whose words do not follow its
numbers stops the rewrite (it would be a bug in the notebook). Usage:

    python scripts/findings_table.py [--doc docs/findings.md] [--outputs DIR] [--check]

--check exits 1 (and changes nothing) when the document is not what it would write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from runtime_table import machine  # noqa: E402

from rlhf_lessons.measure.verdicts import check_claims, claims_table  # noqa: E402

BEGIN, END = "<!-- findings:begin -->", "<!-- findings:end -->"


def collect(outputs: Path) -> dict[str, dict]:
    """{stem: metrics} of every ``outputs/NN_*/metrics.json`` that has claims; raises
    ``ValueError`` naming a file that is not valid JSON or whose verdicts break the rule."""
    runs = {}
    for path in sorted(Path(outputs).glob("[0-9][0-9]_*/metrics.json")):
        try:
            m = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if m.get("claims"):
            bad = check_claims(m["claims"])
            if bad:
                raise ValueError(f"{path}: verdicts that do not follow their numbers: {bad}")
            runs[path.parent.name] = {**m, "_mtime": path.stat().st_mtime}
    return runs


def tables(runs: dict[str, dict], where: str) -> str:
    """The markdown between the markers: each notebook's closing table
    (:func:`rlhf_lessons.measure.verdicts.claims_table`) and where it was measured."""
    out = []
    for stem, m in sorted(runs.items()):
        table = claims_table(m["claims"])
        out += [f"**{stem}**", "", "| " + " | ".join(table.columns) + " |",
                "|" + "---|" * len(table.columns)]
        out += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row)
                + " |" for row in table.itertuples(index=False)]
        out.append("")
    if runs:
        presets = sorted({str(m.get("preset", "default")) for m in runs.values()})
        day = dt.datetime.fromtimestamp(max(m["_mtime"] for m in runs.values()),
                                        dt.timezone.utc).date().isoformat()
        out.append(f"Written by `make findings` from the last {', '.join(presets)}-preset run "
                   f"of each notebook (`make run`), newest on {day}: {where}.")
        spread = seed_spread(runs)
        if spread:
            out += ["", spread]
    return "\n".join(out)


def seed_spread(runs: dict[str, dict]) -> str:
    """One sentence on how far a trained number moves between two seeds of one run:
    notebook 04's judge gain (``score_gain_in_ref_std``) against its second seed's
    (``second_seed_gain``), each with its interval; "" when that run is missing."""
    m = next((m for stem, m in runs.items() if stem.startswith("04_")), None)
    keys = ("score_gain_in_ref_std", "score_gain_ci95", "second_seed_gain",
            "second_seed_gain_ci95")
    if m is None or any(k not in m for k in keys):
        return ""
    a, (alo, ahi), b, (blo, bhi) = (m[k] for k in keys)
    half = ((ahi - alo) + (bhi - blo)) / 4
    return (f"How much a trained number moves between seeds, in this run: notebook 04's PPO "
            f"raised the judge's held-out score by {a:+.2f} [{alo:.2f}, {ahi:.2f}] reference "
            f"std with seed 1 and {b:+.2f} [{blo:.2f}, {bhi:.2f}] with seed 2, "
            f"{abs(a - b):.2f} apart, against intervals ±{half:.2f} wide: read a single "
            f"run's size within about its own interval, its sign with more trust."
            + precision_gap(a))


# Notebook 04's judge gain on another machine, in bf16 autocast (a CPU with native
# bf16): the third-run review's fresh run of the series (reference std, 95% interval).
BF16_RUN = {"gain": 1.05, "ci95": (0.85, 1.23), "kl": 4.6}


def precision_gap(gain: float, bf16: dict = BF16_RUN) -> str:
    """One sentence: how far this run's gain lies from the bf16 run's."""
    lo, hi = bf16["ci95"]
    gap = gain - bf16["gain"]
    inside = lo <= gain <= hi
    return (f" Across precision and machine: on a CPU with native bf16 (bf16 autocast; the "
            f"third-run review's run) the same notebook gave {bf16['gain']:+.2f} [{lo:.2f}, "
            f"{hi:.2f}] at KL {bf16['kl']}, and this run's seed 1 lies {gap:+.2f} from it, "
            + ("inside" if inside else "outside") + " that interval. Those two runs differ "
            "in machine as well as precision; both precisions on one machine is the run "
            "that would separate the two.")


def rewrite(doc: str, runs: dict[str, dict], where: str) -> str:
    """``doc`` with the text between the markers replaced by :func:`tables`."""
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        raise ValueError(f"the document needs one {BEGIN} ... {END} pair")
    head, rest = doc.split(BEGIN)
    _, tail = rest.split(END)
    return head + BEGIN + "\n" + tables(runs, where) + "\n" + END + tail


def precision() -> str:
    import torch

    from rlhf_lessons.core.utils import precision_name
    return precision_name(torch.device("cpu"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--doc", default=str(REPO / "docs" / "findings.md"))
    ap.add_argument("--outputs", default=os.environ.get("RLHF_LESSONS_OUTPUTS",
                                                        str(REPO / "outputs")))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    runs = collect(Path(args.outputs))
    if not runs:
        print(f"{args.outputs}: no metrics.json with claims; run `make run` first",
              file=sys.stderr)
        return 1
    doc_path = Path(args.doc)
    new = rewrite(doc_path.read_text(), runs, f"{machine()}, {precision()}")
    if args.check:
        same = new == doc_path.read_text()
        print("up to date" if same else f"{doc_path} differs from the last run")
        return 0 if same else 1
    doc_path.write_text(new)
    print(f"{doc_path}: claims of {len(runs)} notebooks written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
