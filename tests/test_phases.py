"""Where a training run's time goes (rlhf_lessons.core.phases): seconds per phase,
counted on a fake clock so every figure is known by hand."""

import pytest

from rlhf_lessons.core import phases as P


class FakeClock:
    """perf_counter that moves only when told to."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(P.time, "perf_counter", c)
    return c


class Run:  # what a trainer returns, as far as records_phases cares
    phases: dict = {}


def test_summarise_adds_what_no_phase_claimed_and_orders_known_phases_first():
    got = P.summarise({"zeta": 0.5, "backward": 2.0, "sample": 1.0}, total=4.0)
    assert list(got) == ["sample", "backward", "zeta", "other", "total"]
    assert got["other"] == 0.5 and got["total"] == 4.0
    # rounding can make the parts exceed the total: "other" is never negative
    assert P.summarise({"sample": 1.0004}, total=1.0)["other"] == 0.0


def test_a_recording_trainer_sums_each_phase_over_its_blocks(clock):
    @P.records_phases
    def trainer():
        for _ in range(2):
            with P.phase("sample"):
                clock.t += 1.5
            with P.phase("backward"):
                clock.t += 0.25
            clock.t += 0.1  # between the blocks: "other"
        return Run()

    run = trainer()
    assert run.phases == {"sample": 3.0, "backward": 0.5, "other": 0.2, "total": 3.7}


def test_outside_a_recording_trainer_phase_records_nothing(clock):
    with P.phase("sample"):
        clock.t += 1.0
    assert P._CURRENT.get() is None


def test_a_trainer_that_raises_leaves_no_recording_behind(clock):
    @P.records_phases
    def broken():
        with P.phase("sample"):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        broken()
    assert P._CURRENT.get() is None


def test_an_inner_trainer_records_its_own_and_the_outer_keeps_its_blocks(clock):
    @P.records_phases
    def inner():
        with P.phase("forward"):
            clock.t += 2.0
        return Run()

    @P.records_phases
    def outer():
        with P.phase("sample"):
            clock.t += 1.0
        outer.inner_run = inner()
        return Run()

    run = outer()
    assert outer.inner_run.phases == {"forward": 2.0, "other": 0.0, "total": 2.0}
    assert run.phases == {"sample": 1.0, "other": 2.0, "total": 3.0}
