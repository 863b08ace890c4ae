#!/usr/bin/env bash
# The gpu preset, checked on a GPU machine in a few minutes (see scripts/gpu_check.py).
#   scripts/gpu_check.sh            gpt2 size on the GPU; JSON lines to the screen and to
#                                   outputs/gpu_check.jsonl
#   scripts/gpu_check.sh --smoke    tiny model on the CPU, seconds
# For a CUDA build of torch, install it into .venv first (docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s .venv/.installed >/dev/null
mkdir -p outputs
.venv/bin/python scripts/gpu_check.py "$@" | tee outputs/gpu_check.jsonl
