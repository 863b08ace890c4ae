"""README's "Benchmarks" table, rewritten from one ``make bench``.

``benchmarks/run.py`` keeps every JSON line of its run in ``outputs/bench.jsonl`` and
then calls :func:`write`, which replaces what sits between

    <!-- bench-table:begin -->  ...  <!-- bench-table:end -->

in README.md with one row per workload (ours, TRL, the ratio, our achieved GFLOP/s as
a fraction of the machine's peak at the model's own shapes where the flops are
counted, both sides' peak RSS), a second table of where our trainers' time went
(sampling, reference pass, judge, forward, backward, optimiser: ``phase_s``), and one
line naming the machine, its peak before and after, and the targets that run met. A
workload the run skipped keeps no row.

    .venv/bin/python benchmarks/table.py [outputs/bench.jsonl]
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINES = ROOT / "outputs" / "bench.jsonl"
BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"

# (task, unit, speed key, label, the summary's ratio key, result formatter)
WORKLOADS = [
    ("reward", "pairs/s", "pairs_per_s", "reward model", "reward_pairs_per_s_ratio",
     lambda o, p: f"held-out acc {o['heldout_acc']:.3f} vs {p['heldout_acc']:.3f}"),
    ("ppo", "episodes/s", "episodes_per_s", "PPO", "ppo_episodes_per_s_ratio",
     lambda o, p: f"last score {o['last_log'].get('objective/scores', float('nan')):.3f} vs "
                  f"{p['last_log'].get('objective/scores', float('nan')):.3f}"),
    ("dpo", "pairs/s", "pairs_per_s", "DPO", "dpo_pairs_per_s_ratio",
     lambda o, p: f"held-out implicit acc {o['heldout_implicit_acc']:.3f} vs "
                  f"{p['heldout_implicit_acc']:.3f}"),
    ("grpo", "episodes/s", "episodes_per_s", "GRPO", "grpo_episodes_per_s_ratio",
     lambda o, p: f"reward rise {o['reward_rise']:+.3f} ± {o['reward_rise_se']:.3f} vs "
                  f"{p['reward_rise']:+.3f} ± {p['reward_rise_se']:.3f}"),
    ("writer_grpo", "episodes/s", "episodes_per_s", "writer GRPO + LoRA (SmolLM2-135M)",
     "writer_episodes_per_s_ratio",
     lambda o, p: f"reward rise {o['reward_rise']:+.3f} ± {o['reward_rise_se']:.3f} vs "
                  f"{p['reward_rise']:+.3f} ± {p['reward_rise_se']:.3f}"),
]
FRACTION = {"reward": "reward_fraction_of_peak", "dpo": "dpo_fraction_of_peak"}


def read(path: Path) -> tuple[dict, dict, dict]:
    """``(ours by task, TRL's by task, summary)`` from a run's JSON lines."""
    ours, peer, summary = {}, {}, None
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {i}: not JSON ({err})") from None
        task = rec.get("task")
        if task == "summary":
            summary = rec
        elif task and task != "machine_peak":
            (ours if rec.get("impl") == "rlhf_lessons" else peer)[task] = rec
    if summary is None:
        raise ValueError(f"{path}: no summary line (did `make bench` finish?)")
    return ours, peer, summary


def speed(x: float) -> str:
    """Three significant digits, thousands separated: 56.1, 0.707, 1,250."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def table(ours: dict, peer: dict, summary: dict) -> list[str]:
    """The markdown rows (header included) of the workloads both sides ran."""
    rows = ["| workload | rlhf_lessons | TRL | ratio | fraction of peak | result (ours vs TRL) "
            "| peak RSS (ours / TRL) |", "|---|---|---|---|---|---|---|"]
    for task, unit, key, label, ratio_key, result in WORKLOADS:
        if task not in ours or task not in peer or summary.get(ratio_key) is None:
            continue
        o, p = ours[task], peer[task]
        frac = summary.get(FRACTION.get(task, ""), None)
        # each workload's own precision: on a CPU with native bf16 the reward model and
        # DPO train under bf16 autocast on both sides, PPO and GRPO stay in fp32
        name = f"{label}, {o['mode']}" if o.get("mode") else label
        # our side pooled over a run before and one after the peer's: both shown
        runs = o.get(f"{key}_runs")
        each = f" (runs {', '.join(speed(r) for r in runs)})" if runs else ""
        rows.append(
            f"| {name} | {speed(o[key])} {unit}{each} | {speed(p[key])} {unit} | "
            f"{summary[ratio_key]:.2f}x | {f'{frac:.0%}' if frac is not None else 'not counted'} | "
            f"{result(o, p)} | {o['peak_rss_mb']:,.0f} / {p['peak_rss_mb']:,.0f} MB |")
    return rows


def phase_table(ours: dict) -> list[str]:
    """Where our trainers' time went (``phase_s``, :mod:`rlhf_lessons.core.phases`):
    one row per workload that recorded it, each phase as a share of the training
    time, only the columns some workload used; [] when none did."""
    from rlhf_lessons.core.phases import PHASE_NAMES

    runs = {label: ours[task]["phase_s"] for task, _, _, label, _, _ in WORKLOADS
            if task in ours and ours[task].get("phase_s", {}).get("total")}
    if not runs:
        return []
    used = [k for k in (*PHASE_NAMES, "other") if any(ph.get(k) for ph in runs.values())]
    rows = ["| where our time goes | " + " | ".join(used) + " | seconds |",
            "|---" * (len(used) + 2) + "|"]
    for label, ph in runs.items():
        cells = [f"{ph.get(k, 0.0) / ph['total']:.0%}" if k in ph else "" for k in used]
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {ph['total']:.1f} |")
    return rows


def footer(summary: dict, machine: str, day: str = "", pooled: bool = False) -> str:
    """The table's closing line; ``pooled``: some of our speeds pool two runs."""
    pk, after = summary.get("peak_gflop_per_s", {}), summary.get("peak_gflop_per_s_after", {})
    met = summary.get("targets_met", {})
    missed = [k for k, v in met.items() if not v]
    return (f"One `make bench`{' on ' + day if day else ''} (each workload in the precision its "
            "row names, the same on both sides"
            + ("; where our side shows two runs, one ran before TRL's and one after, and its "
               "speed is their work over their time" if pooled else "") + "), "
            f"on {machine}. The machine's {summary.get('mode')} peak in "
            f"the same run, before / after: a 2048² matmul {pk.get('square_2048')} / "
            f"{after.get('square_2048')} GFLOP/s, the benchmark model's own matmul shapes "
            f"{pk.get('model_shapes')} / {after.get('model_shapes')} GFLOP/s (the "
            "fraction of peak is against the latter). Targets met: "
            f"{sum(met.values())} of {len(met)}"
            + (f"; not met: {', '.join(missed)}." if missed else "."))


def rewrite(readme: str, rows: list[str], foot: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"README needs one {BEGIN} ... {END} pair")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return head + BEGIN + "\n" + "\n".join(rows) + "\n\n" + foot + "\n" + END + tail


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def write(path: Path = LINES, readme: Path = README) -> None:
    ours, peer, summary = read(path)
    day = dt.datetime.fromtimestamp(Path(path).stat().st_mtime, dt.timezone.utc).date()
    phases = phase_table(ours)
    rows = table(ours, peer, summary) + ([""] + phases if phases else [])
    readme.write_text(rewrite(readme.read_text(), rows,
                              footer(summary, machine(), day.isoformat(),
                                     pooled=any(k.endswith("_runs") for o in ours.values()
                                                for k in o))))
    print(f"rewrote the benchmark table in {readme.name} from {path}", flush=True)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else LINES)
