"""rlhf_lessons.core.memory: freed memory reused inside a training block, returned after.

Measured by page faults: a tensor the kernel supplies afresh costs one minor fault per
4 KB page; one made from memory the heap kept costs none. A "step" here makes what a
training step makes, two 64 MB tensors and an 8 MB one, and frees them."""

import os
import platform
import resource

import pytest
import torch

from rlhf_lessons.core import memory

BIG = (64 << 20) // 4096  # pages of a 64 MB tensor
glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def step_faults() -> int:
    """Minor page faults of one step: 2 x 64 MB and 8 MB made, written, freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.ones(BIG * 1024)  # float32: 4 bytes each
    b = a * 2
    c = torch.ones(BIG * 128)
    assert float(b[0] + c[0]) == 3.0
    del a, b, c
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not glibc, reason="the settings are glibc's (Linux)")
def test_steps_reuse_freed_memory_inside_and_it_goes_back_after():
    with memory.reuse_freed_memory():
        faults = [step_faults() for _ in range(12)]
        held = resident_mb()
    # within 12 steps the heap has grown to the steps' working set: three steps in a
    # row then take (almost) no fresh pages
    assert any(sum(faults[i:i + 3]) < BIG // 10 for i in range(10)), faults
    # closed: the 100+ MB the heap held is returned
    assert held - resident_mb() > 100, (held, resident_mb())


class FakeLibc:
    """Records mallopt and malloc_trim calls."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))


@pytest.fixture
def fake(monkeypatch):
    lib = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: lib)
    return lib


def test_only_the_outer_block_sets_and_restores(fake):
    @memory.reuse_freed_memory()
    def inner():  # the decorator form: a trainer that calls a trainer
        return list(fake.calls)

    with memory.reuse_freed_memory():
        assert inner() == list(memory.HOLD.items())
    assert fake.calls == [*memory.HOLD.items(), *memory.AFTER.items(), ("trim", 0)]
    assert memory.HOLD[memory.M_MMAP_MAX] == 0 and memory.AFTER[memory.M_MMAP_MAX] > 0


def test_a_block_that_raises_still_restores(fake):
    with pytest.raises(KeyError), memory.reuse_freed_memory():
        raise KeyError("stop")
    assert fake.calls[-4:] == [*memory.AFTER.items(), ("trim", 0)]
    assert memory._depth == 0


def test_a_refused_setting_is_an_error(fake, monkeypatch):
    monkeypatch.setattr(fake, "mallopt", lambda param, value: 0)
    with pytest.raises(RuntimeError, match="mallopt"), memory.reuse_freed_memory():
        pass
    assert memory._depth == 0
