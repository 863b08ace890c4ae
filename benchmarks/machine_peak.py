"""The machine's peak, measured in the same run as the benchmarks it judges.

A trainer's speed only means something beside what the machine can do at that moment
(the same 2 cores have run a 2048² fp32 matmul at 184 GFLOP/s on one day and 68 on
another). Two yardsticks, each the best of 5 timings after a warm-up, on the
benchmark's threads:

- ``square``: one 2048 × 2048 matmul, the usual headline peak;
- ``model_shapes``: every matmul of one GPT-2 block's training step at the model's
  own width ``d`` over ``tokens`` rows: forward (x·W for the qkv, output, and two MLP
  projections), and backward (dX = dY·Wᵀ and dW = Xᵀ·dY for each): 12 matmuls, their
  flops summed over their best times summed. Skinny shapes (k = d = 128) run far
  below the square peak, so this is the peak a trainer of that model can approach;
  attention's per-head products and the embedding are left out (a few % of the
  flops at these lengths).

fp32 always; bf16 too where the CPU has native bf16 (elsewhere torch emulates it and
a bf16 "peak" would only measure the emulation).

    .venv/bin/python benchmarks/machine_peak.py [--d 128] [--tokens 8192]
"""

from __future__ import annotations

import argparse
import json


def block_gemms(d: int, tokens: int) -> list[tuple[int, int, int]]:
    """The ``(m, k, n)`` of every matmul in one GPT-2 block's forward and backward at
    width ``d`` over ``tokens`` rows: 4 forward, 4 for dX, 4 for dW (hand-checkable:
    their flops sum to 3 × 2·tokens·(3d² + d² + 4d² + 4d²) = 72·tokens·d²)."""
    if d < 1 or tokens < 1:
        raise ValueError(f"d={d}, tokens={tokens}: both must be >= 1")
    layers = [(d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)]  # (in, out) of each Linear
    fwd = [(tokens, i, o) for i, o in layers]
    dx = [(tokens, o, i) for i, o in layers]
    dw = [(i, tokens, o) for i, o in layers]
    return fwd + dx + dw


def gflops_of(gemms, seconds_of) -> float:
    """Summed flops over summed seconds: ``seconds_of(m, k, n)`` times one matmul."""
    flops = sum(2 * m * k * n for m, k, n in gemms)
    return flops / sum(seconds_of(m, k, n) for m, k, n in gemms) / 1e9


def measure(d: int = 128, tokens: int = 8192, threads: int = 2) -> dict:
    """``{"square_2048": {dtype: GFLOP/s}, "model_shapes": {dtype: GFLOP/s}, ...}``."""
    import torch

    from rlhf_lessons.core.utils import cpu_has_native_bf16
    from rlhf_lessons.course.runner import gemm_seconds

    torch.set_num_threads(threads)
    dtypes = {"fp32": torch.float32}
    if cpu_has_native_bf16():
        dtypes["bf16"] = torch.bfloat16
    out = {"task": "machine_peak", "d": d, "tokens": tokens, "threads": threads,
           "square_2048": {}, "model_shapes": {}}
    for name, dt in dtypes.items():
        def seconds(m, k, n, dt=dt):
            return gemm_seconds(m, k, n, dt)

        out["square_2048"][name] = round(gflops_of([(2048, 2048, 2048)], seconds), 1)
        out["model_shapes"][name] = round(gflops_of(block_gemms(d, tokens), seconds), 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    o = ap.parse_args()
    print(json.dumps(measure(o.d, o.tokens, o.threads)), flush=True)


if __name__ == "__main__":
    main()
