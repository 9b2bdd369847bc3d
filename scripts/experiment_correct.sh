#!/usr/bin/env bash
# Correction experiment on MNIST (docs/benchmarks.md, "Correction"): the zoo classifier,
# automatic annotation (each scenario labelled with its dominant seed label), the λ sweep
# and the failures-only baseline; prints the evaluation table (test and held-out scenario
# accuracy against λ) and writes it as JSON/CSV in the workspace (evaluate/results.*).
#
#   scripts/experiment_correct.sh [--data SPEC] [--workspace DIR] [--threads N]
#                                 [--build-dir DIR] [--no-build] [-- extra correct options]
#
# Stages already complete in the workspace with the same options are not run again
# (classifier, VAE, identify, distill), so the sweep can be re-run cheaply with other
# correct options after `--`.
set -euo pipefail
cd "$(dirname "$0")/.."

data="mnist:../shared/data/mnist"
workspace="runs/experiment-correct-mnist"
threads=2
build_dir=""
build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --workspace) workspace="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; break ;;
    *) echo "experiment_correct: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ $build == 1 && -z $build_dir ]]; then
  scripts/setup.sh --with-bench
  cmake --preset release >/dev/null
  cmake --build --preset release --target defuse
fi
build_dir=${build_dir:-build/release}
defuse="$build_dir/defuse"
export OPENBLAS_CORETYPE=SkylakeX

has_stage() {
  "$defuse" status --workspace "$workspace" --json 2>/dev/null |
    /usr/bin/python3 -c "import json,sys; r=json.load(sys.stdin)['runs']; sys.exit(0 if any(x['stage']=='$1' and x['status']=='complete' for x in r) else 1)"
}
common=(--workspace "$workspace" --threads "$threads")
start=$(date +%s)
has_stage train-classifier || "$defuse" train-classifier --data "$data" "${common[@]}"  # 4 epochs, the default
has_stage train-vae || "$defuse" train-vae "${common[@]}"
has_stage identify || "$defuse" identify "${common[@]}" --max-seeds 2000
has_stage distill || "$defuse" distill "${common[@]}"
"$defuse" annotate --workspace "$workspace" --auto seed
"$defuse" correct "${common[@]}" "$@"
"$defuse" evaluate "${common[@]}"
echo "experiment_correct: $(( $(date +%s) - start )) s in all; results in $workspace/evaluate/results.csv"
