#!/usr/bin/env bash
# `defuse check` figures for docs/benchmarks.md ("Suites"): on a workspace that has been
# through `defuse run` (default runs/default, the main job's),
#  1. export-suite's time and what the suite holds;
#  2. check, process start to verdict (what a CI loop waits for), for the original classifier
#     (which must fail: the suite holds its failures) and for evaluate's chosen model, median
#     of 5, against the same scoring in Python (bench/check_suite.py: torch.jit.load, PIL);
#  3. scoring throughput per 1,000 images on a larger suite (every confirmed draw, 1,000 per
#     scenario).
# usage: scripts/bench_check.sh [WORKSPACE] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
ws=${1:-runs/default}
threads=${2:-1}
scripts/build.sh --with-bench >/dev/null
defuse=build/release/defuse
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# time_runs N CMD...: the median wall seconds of N runs (exit codes 0 and 9 are both verdicts)
time_runs() {
  local n=$1; shift
  for _ in $(seq "$n"); do
    local t0; t0=$(now)
    "$@" >/dev/null 2>&1 || [ $? -eq 9 ]
    echo "$(now) - $t0" | bc
  done | median
}

"$defuse" export -w "$ws" --model original -o "$out/original.pt" -q
"$defuse" export -w "$ws" --model chosen -o "$out/chosen.pt" -q
t0=$(now)
"$defuse" export-suite -w "$ws" -o "$out/suite" --threads "$threads" --json -q >"$out/export.json"
t1=$(now)
echo "== export-suite: $(echo "$t1 - $t0" | bc) s wall; $(cat "$out/export.json")"
small=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['images'])" "$out/export.json")

for m in original chosen; do
  code=0
  "$defuse" check --suite "$out/suite" --model "$out/$m.pt" --threads "$threads" --json -q >"$out/$m.json" || code=$?
  echo "== check $m: exit $code; $(/usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('passed', j['passed'], [(s['id'], s['correct'], s['images'], round(s['ci_low'],3), round(s['ci_high'],3)) for s in j['scenarios']])" "$out/$m.json")"
  d=$(time_runs 5 "$defuse" check --suite "$out/suite" --model "$out/$m.pt" --threads "$threads" -q)
  [ "$m" = chosen ] && d_chosen=$d  # the small suite's time, for the marginal cost below
  p=$(time_runs 5 /usr/bin/python3 bench/check_suite.py "$out/suite" "$out/$m.pt" "$threads")
  echo "   start to verdict, median of 5: defuse $d s, Python $p s, ratio $(echo "scale=2; $p / $d" | bc)x"
done

"$defuse" export-suite -w "$ws" -o "$out/big" --all-confirmed --images 1000 --max-draws 20000 --threads "$threads" -q --json >"$out/big.json"
images=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['images'])" "$out/big.json")
d=$(time_runs 5 "$defuse" check --suite "$out/big" --model "$out/chosen.pt" --threads "$threads" -q)
p=$(time_runs 5 /usr/bin/python3 bench/check_suite.py "$out/big" "$out/chosen.pt" "$threads")
echo "== check on $images images (chosen model): defuse $d s, Python $p s start to verdict (ratio" \
  "$(echo "scale=2; $p / $d" | bc)x); defuse's marginal cost $(echo "scale=3; ($d - $d_chosen) * 1000 / ($images - $small)" | bc) s" \
  "per 1,000 images (the two suites' difference)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
