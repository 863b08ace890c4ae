"""Where a training run's time goes: seconds per phase of its steps.

A trainer decorated with :func:`records_phases` collects, while it runs, the seconds
spent in each block marked ``with phase("sample"):`` anywhere below it (the
rollout's sampling, the reference pass, the judge, the forward passes of the loss,
``backward``, the optimiser step), and hands them back as ``run.phases``
(:class:`rlhf_lessons.train.run.TrainRun`): ``{"sample": 3.1, ..., "other": 0.4,
"total": 9.8}``, where ``other`` is what no block claimed (batching, logging,
checkpoints, Python between the blocks). ``benchmarks/run.py`` prints them beside
each trainer's speed, so a speed-up starts from where the time actually goes.

Phases do not nest: a block inside another counts in both, so mark leaves only.
Outside a recording trainer ``phase`` costs one context-variable read. Timing is
wall-clock (``time.perf_counter``); on a CPU every kernel is synchronous, so a
phase's seconds are its kernels' seconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time

# The phases the course's trainers mark, in the order a step runs them.
PHASE_NAMES = ("sample", "decode", "reference", "values", "reward", "forward", "backward",
               "optimizer")

_CURRENT: contextvars.ContextVar[dict | None] = contextvars.ContextVar("phases",
                                                                       default=None)


@contextlib.contextmanager
def phase(name: str):
    """Count this block's seconds under ``name`` in the run being recorded (if any)."""
    acc = _CURRENT.get()
    if acc is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        acc[name] = acc.get(name, 0.0) + time.perf_counter() - t0


def summarise(acc: dict[str, float], total: float) -> dict[str, float]:
    """``acc`` (seconds per phase) plus ``other`` (``total`` minus their sum, not
    below 0) and ``total``, rounded to milliseconds; known phases first."""
    known = [k for k in PHASE_NAMES if k in acc] + sorted(k for k in acc
                                                          if k not in PHASE_NAMES)
    out = {k: round(acc[k], 3) for k in known}
    out["other"] = round(max(total - sum(acc.values()), 0.0), 3)
    out["total"] = round(total, 3)
    return out


def records_phases(trainer):
    """Decorate a trainer that returns a ``TrainRun``: set its ``phases`` to the
    seconds of each phase marked while it ran (:func:`summarise`). A trainer called
    inside another one's recording records into its own, and its caller's blocks
    around it still count for the caller."""

    @functools.wraps(trainer)
    def wrapped(*args, **kwargs):
        acc: dict[str, float] = {}
        token = _CURRENT.set(acc)
        t0 = time.perf_counter()
        try:
            run = trainer(*args, **kwargs)
        finally:
            _CURRENT.reset(token)
        run.phases = summarise(acc, time.perf_counter() - t0)
        return run

    return wrapped
