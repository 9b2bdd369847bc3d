#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) in build/fuzz and
# runs each for SECONDS seconds, printing how many inputs ran clean. Exits 1 if a target
# crashes; the crashing input is kept as build/fuzz/crashes/<target>-crash-* and the log as
# build/fuzz/<target>.log. The corpus grows across runs in build/fuzz/corpus/<target>/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 60 seconds; targets idx gtsrb_csv ppm)
# Needs clang and libFuzzer: scripts/setup.sh --with-fuzz
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx gtsrb_csv ppm)
build=build/fuzz

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DDEFUSE_BUILD_FUZZ=ON -DDEFUSE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}"

# One valid input per target starts the corpus, so the fuzzer begins past the magic checks.
seed() {
  local dir=$build/corpus/$1
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] || printf "$2" >"$dir/seed"
}
seed idx '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x01\x01\x02\x03\x04'
seed gtsrb_csv 'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n00000_00000.ppm;29;30;5;6;24;25;0\r\n'
seed ppm 'P6\n# seed\n2 1\n255\n\x01\x02\x03\x04\x05\x06'

mkdir -p "$build/crashes"
status=0
for target in "${targets[@]}"; do
  log=$build/$target.log
  # -malloc_limit_mb: a single allocation this large means a size was trusted from a header.
  if "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 \
      -artifact_prefix="$build/crashes/$target-" "$build/corpus/$target" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz_$target: $runs inputs in ${seconds} s, no crash (corpus: $(ls "$build/corpus/$target" | wc -l) files)"
  else
    echo "fuzz_$target: FAILED, see $log" >&2
    tail -n 40 "$log" >&2
    status=1
  fi
done
exit $status
