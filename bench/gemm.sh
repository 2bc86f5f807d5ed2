#!/usr/bin/env bash
# Matrix-product speed on a training step's shapes: the `gemm` crate (under burn-flex)
# and PyTorch's torch.mm, THREADS threads (default 2). Half of a training step is these
# products. PyTorch comes from the training benchmark's scratch virtualenv (VENV=…, or
# run bench/train.sh once). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

threads="${THREADS:-2}"
venv="${VENV:-${LATHE_HOME:-$HOME/.cache/lathe}/train-bench-venv}"
cargo build --release -q --example gemm_bench -p lathe-model
shapes="$(target/release/examples/gemm_bench "$threads")"
echo "$shapes"
if [ -x "$venv/bin/python" ]; then
  echo "$shapes" | "$venv/bin/python" bench/gemm_torch.py "$threads"
else
  echo "no PyTorch virtualenv at $venv: run bench/train.sh once" >&2
fi
