#!/usr/bin/env bash
# Distribution on one machine (docs/benchmarks.md, "Distribution"): the heavy stages as one
# process with T threads against --nproc-per-node P with T/P threads each, on the same data
# and options. Prints each stage's wall time for both, the ratio, and the training stages'
# allreduce time and bytes per step (rank 0's share, from the stage's metrics).
# Usage: bench/distributed_bench.sh [--data SPEC] [--ranks P] [--threads T] [--vae-epochs N]
#                                   [--classifier-epochs N] [--seeds N] [--defuse PATH]
set -euo pipefail
data="mnist:$(cd "$(dirname "$0")/.." && pwd)/../shared/data/mnist"
ranks=2 threads=2 vae_epochs=2 cls_epochs=1 seeds=1000
defuse="$(cd "$(dirname "$0")/.." && pwd)/build/release/defuse"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --vae-epochs) vae_epochs="$2"; shift 2 ;;
    --classifier-epochs) cls_epochs="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --defuse) defuse="$2"; shift 2 ;;
    *) echo "distributed_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
per_rank=$(( threads / ranks )); [ "$per_rank" -ge 1 ] || per_rank=1

stage() {  # stage NAME WORKSPACE EXTRA... -> seconds (wall) on stdout, metrics in $work/NAME-WORKSPACE.json
  local name="$1" ws="$2"; shift 2
  local start end
  start=$(date +%s.%N)
  "$defuse" "$name" --workspace "$work/$ws" --data "$data" --json --quiet "$@" > "$work/$name-$ws.json"
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

declare -A one two
run_all() {  # run_all WORKSPACE ARRAY EXTRA...
  local ws="$1"
  local -n out="$2"
  shift 2
  out[classifier]=$(stage train-classifier "$ws" --epochs "$cls_epochs" "$@")
  out[vae]=$(stage train-vae "$ws" --epochs "$vae_epochs" "$@")
  out[identify]=$(stage identify "$ws" --max-seeds "$seeds" --gate none "$@")
}
run_all one one --threads "$threads"
run_all two two --threads "$per_rank" --nproc-per-node "$ranks"

echo "$(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); data $data"
printf "%-18s %14s %18s %7s\n" stage "1 x $threads thr (s)" "$ranks ranks x $per_rank thr (s)" ratio
for s in classifier vae identify; do
  printf "%-18s %14.1f %18.1f %7.2f\n" "$s" "${one[$s]}" "${two[$s]}" "$(echo "${two[$s]} / ${one[$s]}" | bc -l)"
done
for s in train-classifier train-vae; do
  /usr/bin/python3 - "$work/$s-two.json" "$s" <<'PY'
import json, sys
import sqlite3, os
# the stage's stored metrics carry the communication figures
ws = os.path.dirname(sys.argv[1]) + "/two"
row = sqlite3.connect(ws + "/defuse.db").execute(
    "SELECT metrics FROM stage_runs WHERE stage = ? AND status = 'complete' ORDER BY id DESC LIMIT 1", (sys.argv[2],)).fetchone()
d = json.loads(row[0]).get("distributed", {})
print(f"{sys.argv[2]:18s} allreduce {d.get('comm_ms_per_step', 0):.2f} ms/step, "
      f"{d.get('comm_bytes_per_step', 0) / 2**20:.2f} MiB/step, {d.get('comm_seconds', 0):.1f} s in all")
PY
done
