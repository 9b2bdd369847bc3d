#!/usr/bin/env bash
# Parity, quality and speed of `defuse cluster` against scikit-learn's
# BayesianGaussianMixture (scripts/bench_dpgmm.py explains the three parts).
# Usage: scripts/bench_dpgmm.sh [--quick] [--sklearn-1m] [--json FILE] [...]
# Builds build/release/defuse if needed (DEFUSE=path to use another executable).
# OPENBLAS_CORETYPE=SkylakeX is set for both sides: OpenBLAS 0.3.21 does not know Zen 5
# (docs/DESIGN.md §5); defuse would set it itself, scikit-learn's numpy would not.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-bench  # python3-torch, scikit-learn, time, bc (idempotent, silent)
if [ -z "${DEFUSE:-}" ]; then
  DEFUSE=build/release/defuse
  cmake --preset release >/dev/null
  cmake --build --preset release --target defuse >/dev/null
fi
# Forced: some environments export OPENBLAS_CORETYPE=Haswell; BENCH_OPENBLAS_CORETYPE overrides.
# (SkylakeX only where the CPU has AVX-512: its kernels are illegal instructions elsewhere.)
if grep -qw avx512f /proc/cpuinfo; then default_coretype=SkylakeX; else default_coretype=Haswell; fi
export OPENBLAS_CORETYPE="${BENCH_OPENBLAS_CORETYPE:-$default_coretype}"
# OpenMP waits: defuse sets its own short spin (GOMP_SPINCOUNT=10000, src/defuse/base/system.h)
# unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is exported; scikit-learn's fastest run is
# single-threaded anyway.
exec /usr/bin/python3 scripts/bench_dpgmm.py --defuse "$DEFUSE" "$@"
