#!/usr/bin/env bash
# How cost grows (issue 16; docs/benchmarks.md, "How cost grows"): wall time and peak RSS of
# one stage against its size, every other setting at its default, each measurement a fresh
# process under /usr/bin/time -v, one after the other:
#   identify    over N seeds     (`defuse identify --max-seeds N` on a copy of a finished workspace)
#   distill     over N failures  (`defuse cluster`, the stage's DP-GMM, on N synthetic 16-D points
#                                 from 20 anisotropic Gaussians: the stage's own input is far smaller)
#   train-vae   at three shapes  (`defuse train-vae --epochs 1` in an empty workspace)
#   correct     with L λ values  (`defuse correct --lambda ...` on a copy of a finished workspace)
#
#   scripts/bench_cost_growth.sh --workspace W [--gtsrb DIR] [--out DIR] [--only STAGE,...]
#                                [--seeds "2000 20000 60000"] [--points "10000 100000 1000000"]
#
#   --workspace W  a workspace `defuse run` finished in (the main job's: Fashion-MNIST); read only
#   --gtsrb DIR    GTSRB's training split (tar xJf ../shared/data/gtsrb-train.tar.xz -C DIR) for
#                  train-vae at 32x32 and 64x64 colour; without it only 28x28 grey is measured
#   --only LIST    identify, distill, train-vae, correct (default: all four)
#   --defuse PATH  the binary (default: build/release/defuse), copied first
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-bench  # time, python3-numpy (idempotent, silent)

ws="" gtsrb="" out="" only="identify,distill,train-vae,correct" defuse_src=build/release/defuse
seeds="2000 20000 60000" points="10000 100000 1000000"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workspace) ws="$2"; shift 2 ;;
    --gtsrb) gtsrb="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --defuse) defuse_src="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --points) points="$2"; shift 2 ;;
    *) echo "bench_cost_growth.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$ws" && -f "$ws/defuse.db" ]] || {
  echo "bench_cost_growth.sh: --workspace must name a workspace defuse run finished in" >&2; exit 2; }
[[ -n "$out" ]] || out=$(mktemp -d)
mkdir -p "$out"
cp "$defuse_src" "$out/defuse"
defuse="$out/defuse"
results="$out/results.tsv"
: > "$results"
wants() { [[ ",$only," == *",$1,"* ]]; }

# measure STAGE SIZE UNIT COMMAND...: runs it under time -v, appends a row to results.tsv.
measure() {
  local stage=$1 size=$2 unit=$3; shift 3
  local tag="$stage-$size"
  echo "== $stage, $size $unit: $*" >&2
  /usr/bin/time -v -o "$out/$tag.time" "$@" > "$out/$tag.out" 2> "$out/$tag.err" || {
    echo "bench_cost_growth.sh: $tag failed (see $out/$tag.err)" >&2; tail -3 "$out/$tag.err" >&2; return 1; }
  local wall rss
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$out/$tag.time")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/$tag.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$stage" "$size" "$unit" "$wall" "$rss" "$out/$tag.out" >> "$results"
}

if wants identify; then
  for n in $seeds; do
    rm -rf "$out/ws-identify" && cp -r "$ws" "$out/ws-identify"
    measure identify "$n" seeds "$defuse" identify -w "$out/ws-identify" --max-seeds "$n" --json
  done
  rm -rf "$out/ws-identify"
fi

if wants distill; then
  for n in $points; do
    /usr/bin/python3 - "$n" "$out/points-$n.npy" <<'PY'
import sys
import numpy as np
n, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
centres = rng.normal(0, 8, (20, 16))
mix = rng.normal(0, 1, (20, 16, 16)) / 4
which = rng.integers(0, 20, n)
x = centres[which] + np.einsum("nd,nde->ne", rng.normal(0, 1, (n, 16)), mix[which])
np.save(path, x.astype(np.float32))
PY
    measure distill "$n" failures "$defuse" cluster -i "$out/points-$n.npy" -o "$out/labels-$n.csv" --json
    rm -f "$out/points-$n.npy" "$out/labels-$n.csv"
  done
fi

if wants train-vae; then
  shapes=("fashion-mnist 28x28x1")
  [[ -n "$gtsrb" ]] && shapes+=("gtsrb:$gtsrb 32x32x3" "gtsrb:$gtsrb,size=64 64x64x3")
  for s in "${shapes[@]}"; do
    data=${s% *} shape=${s#* }
    rm -rf "$out/ws-vae"
    measure train-vae "$shape" "image shape" "$defuse" train-vae -w "$out/ws-vae" --data "$data" --epochs 1 --json
  done
  rm -rf "$out/ws-vae"
fi

if wants correct; then
  for lambdas in 0.03 0.01,0.03,0.1,0.3,1 0.003,0.01,0.02,0.03,0.05,0.1,0.2,0.3,0.5,1; do
    n=$(echo "$lambdas" | tr ',' '\n' | wc -l)
    rm -rf "$out/ws-correct" && cp -r "$ws" "$out/ws-correct"
    measure correct "$n" "λ values" "$defuse" correct -w "$out/ws-correct" --lambda "$lambdas" --json
  done
  rm -rf "$out/ws-correct"
fi

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]

def seconds(wall):
    parts = [float(p) for p in wall.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))

def detail(stage, path):
    try:
        j = json.load(open(path))
    except Exception:
        return ""
    m = j.get("metrics", j)
    if stage == "identify":
        return f"{m.get('seeds_checked', '?')} seeds checked, {m.get('failures', '?')} kept failures"
    if stage == "distill":
        return f"{m.get('components_used', '?')} components used, {m.get('iterations', '?')} iterations"
    if stage == "train-vae":
        return f"{m.get('architecture', '?')}: {m.get('seconds_per_epoch', 0):.1f} s training"
    if stage == "correct":
        return f"{len(m.get('models', [])) or '?'} models"
    return ""

print("| stage | size | wall | peak RSS | wall ÷ previous row | size ÷ previous row | |")
print("| --- | --- | --- | --- | --- | --- | --- |")
prev = {}
for stage, size, unit, wall, rss, out in rows:
    s = seconds(wall)
    ratio = size_ratio = "-"
    if stage in prev:
        ps, psize = prev[stage]
        ratio = f"{s / ps:.2f}×"
        try:
            size_ratio = f"{float(size) / float(psize):.2f}×"
        except ValueError:  # image shapes: pixels × channels
            a = [int(v) for v in size.split("x")]
            b = [int(v) for v in psize.split("x")]
            size_ratio = f"{(a[0] * a[1] * a[2]) / (b[0] * b[1] * b[2]):.2f}× values"
    prev[stage] = (s, size)
    print(f"| {stage} | {size} {unit} | {s:.1f} s | {int(rss) / 1024:.0f} MiB | {ratio} | {size_ratio} | {detail(stage, out)} |")
PY
echo "logs: $out" >&2
