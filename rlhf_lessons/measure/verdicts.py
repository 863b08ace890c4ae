"""The course's one verdict vocabulary, each word with its rule, and power before running.

Every section that measures something ends with a verdict computed here, never
typed by hand:

- **holds**: the 95% interval excludes the null on the side the claim names,
  and, when the claim rests on a training run, that run's curve moved the way
  the claim needs (``curve_moved``).
- **does not hold**: the interval excludes the null on the other side (the
  opposite holds), or the training run the claim rests on did not move, or the
  claim names the effect its theory predicts and the interval covers the null
  but lies wholly short of that prediction (an experiment sized to see the
  predicted effect saw less: "does not hold (below the predicted +x)").
- **cannot tell with n = …, would need n ≈ …**: the interval covers the null
  (and, for a claim with a prediction, the predicted effect too).

For two effects on one feature (the raters' and the judge's, the judge's and the
policy's): **exaggerates** (the second is larger, beyond the first's interval),
**follows** (within it), **reverses** (the opposite sign, beyond noise).

Power before running: :func:`n_per_arm` and :func:`min_detectable_rate` say,
before an experiment runs, the smallest effect its n can detect (two-sided
α = 0.05, power 0.8), so an experiment that cannot decide is resized, not run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
CANNOT_TELL = "cannot tell"
Z_ALPHA = 1.959963984540054  # two-sided 95%
Z_POWER = 0.8416212335729143  # power 0.8


def _two_rates(p0: float, p1: float) -> None:
    """Refuse rates outside [0, 1], or two equal ones (nothing to detect)."""
    for name, p in (("p0", p0), ("p1", p1)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name}={p}: a rate in [0, 1]")
    if p0 == p1:
        raise ValueError(f"p0 = p1 = {p0}: no difference to detect")


def n_per_arm(p0: float, p1: float, alpha_z: float = Z_ALPHA,
              power_z: float = Z_POWER) -> int:
    """Answers per policy needed to tell rate ``p0`` from ``p1`` (two-proportion z
    test, pooled variance under the null): ``n = (z_a·√(2p̄q̄) + z_b·√(p0q0 + p1q1))² / (p1 − p0)²``.

    >>> n_per_arm(0.5, 0.6)
    388
    """
    _two_rates(p0, p1)
    pbar = (p0 + p1) / 2
    num = (alpha_z * math.sqrt(2 * pbar * (1 - pbar))
           + power_z * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2
    return math.ceil(num / (p1 - p0) ** 2)


def n_one_sample(p0: float, p1: float, alpha_z: float = Z_ALPHA,
                 power_z: float = Z_POWER) -> int:
    """Trials needed to tell a rate ``p1`` from a fixed ``p0`` (a judge's accuracy
    against a coin's 0.5): ``n = (z_a·√(p0q0) + z_b·√(p1q1))² / (p1 − p0)²``.

    >>> n_one_sample(0.5, 0.6)
    194
    """
    _two_rates(p0, p1)
    num = (alpha_z * math.sqrt(p0 * (1 - p0)) + power_z * math.sqrt(p1 * (1 - p1))) ** 2
    return math.ceil(num / (p1 - p0) ** 2)


def min_detectable_rate(p0: float, n: int, upward: bool = True,
                        one_sample: bool = False) -> float:
    """The smallest rate ``p1`` (above ``p0``, or below it with ``upward=False``)
    that ``n`` answers per policy detect: the first p1 on a 0.001 grid with
    :func:`n_per_arm` ≤ n (1.0 or 0.0 when none does). ``one_sample``: against a
    fixed ``p0`` instead (:func:`n_one_sample`; ``n`` trials in all)."""
    if n < 1:
        raise ValueError(f"n={n}: need at least one answer per policy")
    needed = n_one_sample if one_sample else n_per_arm
    step = 0.001 if upward else -0.001
    p1 = p0 + step
    while 0 <= p1 <= 1:
        if abs(p1 - p0) > 1e-12 and needed(p0, p1) <= n:
            return round(p1, 3)
        p1 += step
    return 1.0 if upward else 0.0


def power_line(what: str, n: int, smallest: float, unit: str = "",
               expected: float | None = None) -> str:
    """The line an experiment prints before it runs: the smallest effect its ``n``
    detects (two-sided 95%, power 0.8) and, given the effect expected, whether it
    can decide.

    >>> power_line("accuracy", 256, 0.588, expected=0.6)
    'power: with n = 256, the smallest accuracy this can tell from its null is 0.588 (expected about 0.6: it can decide)'
    """
    line = (f"power: with n = {n:,}, the smallest {what} this can tell from its null is "
            f"{smallest:.3g}{unit}")
    if expected is not None:
        ok = abs(expected) >= abs(smallest)
        line += (f" (expected about {expected:.3g}{unit}: "
                 + ("it can decide)" if ok else "it may not decide: resize it)"))
    return line


def min_detectable_mean(sd: float, n: int, paired: bool = True) -> float:
    """The smallest mean difference ``n`` observations detect: (z_a + z_b)·sd/√n
    for a paired difference of spread ``sd`` (√2 times that for two groups)."""
    if n < 1 or sd < 0:
        raise ValueError(f"n={n}, sd={sd}: need n >= 1 and sd >= 0")
    base = (Z_ALPHA + Z_POWER) * sd / math.sqrt(n)
    return base if paired else base * math.sqrt(2)


def verdict(ci_low: float, ci_high: float, *, n: int, null: float = 0.0,
            larger: bool = True, curve_moved: bool | None = None,
            n_needed: int | None = None, predicted: float | None = None,
            predicted_name: str = "predicted") -> str:
    """The verdict of a claim "the effect is above ``null``" (``larger=False``:
    below it), from its 95% interval ``[ci_low, ci_high]`` over ``n``.

    ``curve_moved``: for a claim that rests on a training run, did its curve move
    the right way (a loss that fell, a score that rose)? False makes the claim
    "does not hold (training did not move)" whatever the interval says.
    ``n_needed``: the n the effect would need (said when it cannot tell).
    ``predicted``: the effect a theory predicts (beyond ``null`` on the claim's
    side); an interval that covers the null but stops short of it says "does not
    hold (below the predicted …)": the experiment could have seen that effect and
    did not. ``predicted_name`` names where that effect comes from ("target" for
    the smallest effect a lesson counts as success, such as a DPO loss of 0.65).
    """
    if math.isnan(ci_low) or math.isnan(ci_high):
        return f"{CANNOT_TELL}: no interval (n = {n})"
    if ci_low > ci_high:
        raise ValueError(f"ci_low={ci_low} > ci_high={ci_high}")
    if curve_moved is False:
        return f"{DOES_NOT_HOLD} (the training run it rests on did not move)"
    above, below = ci_low > null, ci_high < null
    if (above and larger) or (below and not larger):
        return HOLDS
    if above or below:
        return f"{DOES_NOT_HOLD} (the opposite holds)"
    if predicted is not None and (predicted > null if larger else predicted < null):
        short = ci_high < predicted if larger else ci_low > predicted
        if short:
            side = "below" if larger else "above"
            return f"{DOES_NOT_HOLD} ({side} the {predicted_name} {predicted:+.3g})"
    need = f", would need n ≈ {n_needed:,}" if n_needed else ""
    return f"{CANNOT_TELL} with n = {n:,}{need}"


def compare_effects(first: float, first_ci: Sequence[float], second: float,
                    second_ci: Sequence[float]) -> str:
    """Two effects of one feature, the second after the first in the chain:
    "exaggerates" (the second is larger in size and beyond the first's
    interval), "reverses" (opposite signs, both intervals excluding 0),
    "follows" (otherwise: the second within the first's interval, or either
    cannot be told from 0)."""
    lo1, hi1 = first_ci
    lo2, hi2 = second_ci
    if (lo1 > 0 and hi2 < 0) or (hi1 < 0 and lo2 > 0):
        return "reverses"
    same_side = (lo2 > 0 and second > 0) or (hi2 < 0 and second < 0)
    if same_side and abs(second) > abs(first) and not lo1 <= second <= hi1:
        return "exaggerates"
    return "follows"


def curve_moved(values: Sequence[float], rises: bool = True) -> bool:
    """Did a training curve move the way a claim needs: the mean of its last quarter
    above (``rises``) or below (``rises=False``) the mean of its first quarter? One
    noisy step at either end does not decide it.

    >>> curve_moved([1.0, 0.9, 0.5, 0.4], rises=False)
    True
    """
    v = [float(x) for x in values]
    if len(v) < 2:
        raise ValueError(f"a curve of {len(v)} point(s) cannot have moved: need two or more")
    q = max(1, len(v) // 4)
    first, last = sum(v[:q]) / q, sum(v[-q:]) / q
    return last > first if rises else last < first


def claim(name: str, number: float, ci: Sequence[float], n: int, *, null: float = 0.0,
          larger: bool = True, curve_moved: bool | None = None,
          n_needed: int | None = None, predicted: float | None = None,
          predicted_name: str = "predicted") -> dict:
    """One row of a closing table: the claim "``number`` is above ``null``" (below it
    with ``larger=False``), its 95% interval ``ci`` over ``n`` and the
    :func:`verdict` its numbers give. Everything the verdict rests on travels in
    the row, so :func:`check_claims` can recompute it from a saved metrics.json."""
    # six decimals: readable in metrics.json, and the verdict is computed from the
    # same rounded numbers that check_claims will read back
    lo, hi = (round(float(x), 6) for x in ci)
    row = {"claim": name, "number": round(float(number), 6), "ci": [lo, hi], "n": int(n),
           "null": float(null), "larger": bool(larger), "curve_moved": curve_moved,
           "n_needed": n_needed,
           "verdict": verdict(lo, hi, n=int(n), null=null, larger=larger,
                              curve_moved=curve_moved, n_needed=n_needed,
                              predicted=predicted, predicted_name=predicted_name)}
    if predicted is not None:
        row["predicted"] = float(predicted)
        row["predicted_name"] = predicted_name
    return row


CLAIM_KEYS = ("claim", "number", "ci", "n", "null", "larger", "curve_moved", "n_needed",
              "predicted", "predicted_name", "verdict")


def saved_claim(row: dict) -> dict:
    """The fields of a :func:`claim` row that metrics.json keeps (a row a notebook has
    widened with its own numbers loses those, and keeps all the verdict rests on)."""
    return {k: row[k] for k in CLAIM_KEYS if k in row}


def check_claims(rows: Sequence[dict]) -> list[str]:
    """The claims whose saved verdict is not the one their numbers give (the
    rule of :func:`verdict`), each as "claim: says X, its numbers give Y"; [] when
    every verdict follows its rule."""
    bad = []
    for r in rows:
        lo, hi = r["ci"]
        want = verdict(lo, hi, n=r["n"], null=r.get("null", 0.0), larger=r.get("larger", True),
                       curve_moved=r.get("curve_moved"), n_needed=r.get("n_needed"),
                       predicted=r.get("predicted"),
                       predicted_name=r.get("predicted_name", "predicted"))
        if r["verdict"] != want:
            bad.append(f"{r['claim']}: says {r['verdict']!r}, its numbers give {want!r}")
    return bad


def claims_table(rows: Sequence[dict]) -> pd.DataFrame:
    """A notebook's closing table: one row per claim, ``claim``, ``number``,
    ``interval``, ``n``, ``verdict``; numbers rounded for reading."""
    out = []
    for r in rows:
        missing = {"claim", "number", "ci", "n", "verdict"} - set(r)
        if missing:
            raise ValueError(f"claim {r.get('claim', '?')!r}: missing {sorted(missing)}")
        lo, hi = r["ci"]
        side = "<" if not r.get("larger", True) else ">"
        out.append({"claim": r["claim"], "number": _fmt(r["number"]),
                    "interval": f"[{_fmt(lo)}, {_fmt(hi)}]", "n": int(r["n"]),
                    "holds if": f"{side} {r.get('null', 0.0):.3g}" + (
                        f" ({r.get('predicted_name', 'predicted')} {r['predicted']:+.3g})"
                        if r.get("predicted") is not None else ""),
                    "verdict": r["verdict"]})
    return pd.DataFrame(out, columns=["claim", "number", "interval", "n", "holds if",
                                      "verdict"])


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if abs(x) < 10 else f"{x:+.1f}"
