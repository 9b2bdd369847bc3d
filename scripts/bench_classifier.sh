#!/usr/bin/env bash
# Classifier figures for docs/benchmarks.md:
#  1. MNIST: test accuracy and time to >= 99.0% with the default zoo cnn (1 epoch);
#  2. seconds per epoch against the same training in Python PyTorch (bench/classifier_train.py),
#     same architecture, settings and threads, one run each;
#  3. Fashion-MNIST test accuracy with the defaults `defuse run` uses.
# usage: scripts/bench_classifier.sh [MNIST_DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
mnist=${1:-../shared/data/mnist}
threads=${2:-2}
scripts/build.sh --with-bench >/dev/null
defuse=build/release/defuse
out=$(mktemp -d)
# defuse re-executes itself with OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs that OpenBLAS
# 0.3.21 does not know; give Python the same kernels.
# Only where the CPU has AVX-512: OpenBLAS's SkylakeX kernels are illegal instructions
# (SIGILL) on a CPU without it.
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi

wall() { local t0=$(date +%s.%N); "$@"; local t1=$(date +%s.%N); echo "$t0 $t1" >"$out/wall"; }

echo "== MNIST, defuse (1 epoch, cnn, batch 128, $threads threads)"
wall "$defuse" train-classifier --data "mnist:$mnist" --workspace "$out/mnist" --epochs 1 --threads "$threads" --json -q >"$out/defuse.json"
read t0 t1 <"$out/wall"
echo "== MNIST, Python PyTorch (same settings)"
/usr/bin/python3 bench/classifier_train.py "$mnist" --epochs 1 --threads "$threads" >"$out/python.json"
echo "== Fashion-MNIST, defuse defaults"
"$defuse" train-classifier --workspace "$out/fashion" --threads "$threads" --json -q >"$out/fashion.json"

/usr/bin/python3 - "$out" "$t0" "$t1" <<'PY'
import json, sys
out, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
d = json.load(open(f"{out}/defuse.json")); p = json.load(open(f"{out}/python.json")); f = json.load(open(f"{out}/fashion.json"))
print()
print(f"MNIST test accuracy (defuse, 1 epoch)      {100*d['test_accuracy']:.2f}%")
print(f"MNIST wall time, load+train+evaluate        {t1-t0:.1f} s")
print(f"seconds per epoch: defuse {d['seconds_per_epoch']:.1f}, Python PyTorch {p['seconds_per_epoch']:.1f}, "
      f"ratio {d['seconds_per_epoch']/p['seconds_per_epoch']:.2f} (Python accuracy {100*p['test_accuracy']:.2f}%)")
print(f"Fashion-MNIST test accuracy (defaults, {f['epochs']} epochs, {f['seconds']:.0f} s)  {100*f['test_accuracy']:.2f}%")
PY
rm -rf "$out"
