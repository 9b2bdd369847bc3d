#!/usr/bin/env bash
# Identify benchmark (docs/benchmarks.md ("Identify")): builds defuse, prepares an MNIST
# workspace (classifier + VAE, trained once and reused), runs `defuse identify` and the
# Python PyTorch patterns (bench/identify_bench.py) on the same architectures with the same
# thread count, and prints decodes/s, the ratios and GFLOP/s as a share of SGEMM.
#
#   scripts/bench_identify.sh [--data SPEC] [--workspace DIR] [--threads N] [--seeds N]
#                             [--build-dir DIR] [--no-build] [--precision fp32|bf16|auto]
#
# defuse re-executes itself with OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs that OpenBLAS
# 0.3.21 does not know (Zen 5); the Python side gets the same variable so both use the
# same BLAS kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-bench  # python3-torch, scikit-learn, time, bc (idempotent, silent)

data="mnist:../shared/data/mnist"
workspace="runs/bench-identify-mnist"
threads=2
seeds=1000
build_dir="build/release"
build=1
precision=fp32
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --workspace) workspace="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --precision) precision="$2"; shift 2 ;;
    *) echo "bench_identify: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [[ $build == 1 ]]; then
  if [[ $build_dir == build/release ]]; then
    cmake --preset release >/dev/null
    cmake --build --preset release --target defuse
  else
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build_dir" -j2 --target defuse
  fi
fi
defuse="$build_dir/defuse"
# Only where the CPU has AVX-512: OpenBLAS's SkylakeX kernels are illegal instructions
# (SIGILL) on a CPU without it.
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi

has_stage() {
  "$defuse" status --workspace "$workspace" --json 2>/dev/null |
    /usr/bin/python3 -c "import json,sys; r=json.load(sys.stdin)['runs']; sys.exit(0 if any(x['stage']=='$1' and x['status']=='complete' for x in r) else 1)"
}
if ! has_stage train-classifier; then
  echo "== train-classifier (once)"
  "$defuse" train-classifier --data "$data" --workspace "$workspace" --threads "$threads" --quiet
fi
if ! has_stage train-vae; then
  echo "== train-vae (once)"
  "$defuse" train-vae --workspace "$workspace" --threads "$threads"
fi

echo "== defuse identify ($seeds seeds, Q = 100, $threads threads, precision $precision)"
summary=$("$defuse" identify --workspace "$workspace" --max-seeds "$seeds" --threads "$threads" \
  --precision "$precision" --json --quiet)
echo "$summary" | /usr/bin/python3 -c "
import json, sys
s = json.load(sys.stdin)
print(f\"seeds {s['seeds']}, decodes {s['decodes']}, failures kept {s['failures']} \"
      f\"({1000 * s['failures'] / s['seeds']:.0f} per 1,000 seeds; {s['failing_decodes']} failing decodes, \"
      f\"rate {100 * s['failure_rate']:.2f}%), {s['distinct_pairs']} distinct seed->predicted pairs, \"
      f\"{s['decodes_per_second']:.0f} decodes/s\")"
rate=$(echo "$summary" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['decodes_per_second'])")

echo "== Python PyTorch patterns (/usr/bin/python3, torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), $threads threads, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)"
/usr/bin/python3 bench/identify_bench.py --workspace "$workspace" --threads "$threads" --defuse-rate "$rate"
