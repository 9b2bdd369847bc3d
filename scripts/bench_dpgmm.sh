#!/usr/bin/env bash
# Parity, quality and speed of `defuse cluster` against scikit-learn's
# BayesianGaussianMixture (scripts/bench_dpgmm.py explains the three parts).
# Usage: scripts/bench_dpgmm.sh [--quick] [--sklearn-1m] [--json FILE] [...]
# Builds build/release/defuse if needed (DEFUSE=path to use another executable).
# OPENBLAS_CORETYPE=SkylakeX is set for both sides: OpenBLAS 0.3.21 does not know Zen 5
# (docs/DESIGN.md §5); defuse would set it itself, scikit-learn's numpy would not.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DEFUSE:-}" ]; then
  DEFUSE=build/release/defuse
  cmake --preset release >/dev/null
  cmake --build --preset release --target defuse >/dev/null
fi
# Forced: some environments export OPENBLAS_CORETYPE=Haswell; BENCH_OPENBLAS_CORETYPE overrides.
export OPENBLAS_CORETYPE="${BENCH_OPENBLAS_CORETYPE:-SkylakeX}"
# OpenMP threads sleep at barriers instead of spinning: on a shared machine a spinning
# thread that waits for a core costs far more than a wake-up (defuse has a handful of
# barriers per iteration; scikit-learn's fastest run is single-threaded anyway).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec /usr/bin/python3 scripts/bench_dpgmm.py --defuse "$DEFUSE" "$@"
