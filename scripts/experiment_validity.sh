#!/usr/bin/env bash
# The validity benchmark (docs/benchmarks.md, "Validity"): `defuse run` with its defaults
# (judges, the validity gate, --annotate judges, correction confirmed by the judges), then an
# independent reader that the pipeline never uses (bench/independent_reader.py: other
# architectures, seeds, augmentation and optimiser than defuse's judges) reads the kept
# failures and the held-out scenario draws. Prints the run's summary, the reader's shares
# (kept failures read as their seed label / as the classifier's prediction) and each model's
# accuracy on the draws the reader confirms.
#
#   scripts/experiment_validity.sh [--data SPEC] [--workspace DIR] [--reader DIR]
#                                  [--reader-epochs N] [--threads N] [--build-dir DIR]
#                                  [--no-build] [-- extra `defuse run` options]
#
# The reader is trained once per dataset (DIR/reader.json) and reused; `defuse run` skips
# stages that are up to date, so a rerun with other options after `--` is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

data="mnist:../shared/data/mnist"
workspace="runs/experiment-validity-mnist"
reader=""
reader_epochs=2
threads=2
build_dir=""
build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --workspace) workspace="$2"; shift 2 ;;
    --reader) reader="$2"; shift 2 ;;
    --reader-epochs) reader_epochs="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --) shift; break ;;
    *) echo "experiment_validity: unknown argument $1" >&2; exit 2 ;;
  esac
done
reader=${reader:-runs/reader-${data%%:*}}
if [[ $build == 1 && -z $build_dir ]]; then
  scripts/setup.sh --with-bench
  cmake --preset release >/dev/null
  cmake --build --preset release --target defuse
fi
build_dir=${build_dir:-build/release}
defuse="$build_dir/defuse"
py=/usr/bin/python3

if [[ ! -f $reader/reader.json ]]; then
  echo "experiment_validity: training the independent reader in $reader ($reader_epochs epochs)" >&2
  $py bench/independent_reader.py train --data "$data" --out "$reader" --epochs "$reader_epochs" --threads "$threads"
fi
start=$(date +%s)
"$defuse" run --data "$data" --workspace "$workspace" --threads "$threads" "$@"
echo "experiment_validity: defuse run took $(( $(date +%s) - start )) s" >&2
echo "== the independent reader on the kept failures"
$py bench/independent_reader.py read --reader "$reader" --workspace "$workspace" --threads "$threads"
echo "== the independent reader on the held-out scenario draws"
$py bench/independent_reader.py heldout --reader "$reader" --workspace "$workspace" --threads "$threads"
