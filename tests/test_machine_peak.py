"""benchmarks/machine_peak.py: the model-shape yardstick on hand-computable cases."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import machine_peak as MP  # noqa: E402


def test_block_gemms_count_the_flops_of_a_block_forward_and_backward():
    d, t = 4, 10
    gemms = MP.block_gemms(d, t)
    assert len(gemms) == 12
    # forward: (t, d) @ (d, 3d) for the qkv projection; its dW: (d, t) @ (t, 3d)
    assert gemms[0] == (t, d, 3 * d) and gemms[8] == (d, t, 3 * d)
    # 3 passes × 2·t·(3 + 1 + 4 + 4)·d² = 72·t·d² = 11,520
    assert sum(2 * m * k * n for m, k, n in gemms) == 72 * t * d * d == 11520
    with pytest.raises(ValueError, match="d=0"):
        MP.block_gemms(0, 10)


def test_gflops_of_is_summed_flops_over_summed_seconds():
    # two matmuls of 2e9 and 6e9 flops taking 1 s and 3 s: 8e9 / 4 s = 2 GFLOP/s
    seconds = {(1000, 1000, 1000): 1.0, (1000, 1000, 3000): 3.0}
    assert MP.gflops_of(list(seconds), lambda m, k, n: seconds[(m, k, n)]) == 2.0
