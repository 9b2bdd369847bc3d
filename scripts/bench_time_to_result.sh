#!/usr/bin/env bash
# Time to result (issue 16; docs/benchmarks.md, "Time to result"): the whole `defuse run`
# with today's defaults beside the same run with the settings of before
# (bench/time_to_result_before.toml), each from an empty workspace, one after the other in
# this script, on Fashion-MNIST (the main job) and on MNIST. Prints, per dataset, the wall
# time and peak RSS of each run, every stage's time, and the quality figures the speed-up must
# not cost: the chosen model's test accuracy, the number of genuine scenarios, the held-out
# genuine-scenario accuracy and the share of fresh failures fixed.
#
#   scripts/bench_time_to_result.sh [--data SPEC ...] [--defuse PATH] [--out DIR] [--only before|after]
#
#   --data SPEC   a dataset to run (repeatable; default: fashion-mnist, then
#                 mnist:../shared/data/mnist when that directory exists)
#   --defuse PATH the binary (default: build/release/defuse), copied first so a rebuild cannot
#                 swap it mid-run
#   --out DIR     keep the workspaces and logs here (default: a temporary directory)
#   --only WHICH  run only the before or only the after configuration
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-bench  # time, python3 (idempotent, silent)

datas=()
defuse_src=build/release/defuse
out=""
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) datas+=("$2"); shift 2 ;;
    --defuse) defuse_src="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "bench_time_to_result.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ ${#datas[@]} -eq 0 ]]; then
  datas=(fashion-mnist)
  [[ -d ../shared/data/mnist ]] && datas+=(mnist:../shared/data/mnist)
fi
[[ -n "$out" ]] || out=$(mktemp -d)
mkdir -p "$out"
cp "$defuse_src" "$out/defuse"
before_cfg=$(realpath bench/time_to_result_before.toml)

run_one() {  # name data config...
  local name=$1 data=$2; shift 2
  local ws="$out/$name"
  rm -rf "$ws"
  local dataopt=()
  [[ "$data" == fashion-mnist ]] || dataopt=(--data "$data")
  echo "== $name: defuse run ${dataopt[*]} $*" >&2
  /usr/bin/time -v -o "$ws.time" "$out/defuse" run -w "$ws" "${dataopt[@]}" "$@" > "$ws.out" 2> "$ws.err" || {
    echo "bench_time_to_result.sh: $name failed (see $ws.err)" >&2; tail -3 "$ws.err" >&2; return 1; }
  tail -6 "$ws.out" >&2
}

names=()
for data in "${datas[@]}"; do
  tag=$(echo "${data%%:*}" | tr -c 'a-z0-9\n' '-')
  if [[ "$only" != after ]]; then run_one "$tag-before" "$data" --config "$before_cfg"; names+=("$tag-before"); fi
  if [[ "$only" != before ]]; then run_one "$tag-after" "$data"; names+=("$tag-after"); fi
done

/usr/bin/python3 - "$out" "${names[@]}" <<'PY'
import json, re, sqlite3, sys
out, names = sys.argv[1], sys.argv[2:]
stages = ["train-classifier", "train-judges", "train-vae", "identify", "distill", "annotate", "correct",
          "evaluate", "report"]

def metrics(ws, stage):
    db = sqlite3.connect(f"{ws}/defuse.db")
    row = db.execute("select metrics from stage_runs where stage=? order by id desc limit 1", (stage,)).fetchone()
    return json.loads(row[0]) if row and row[0] else {}

rows = {}
for n in names:
    ws = f"{out}/{n}"
    s = json.load(open(f"{ws}/run/summary.json"))
    t = open(f"{ws}.time").read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", t).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    ev, idf, vae, clf = metrics(ws, "evaluate"), metrics(ws, "identify"), metrics(ws, "train-vae"), \
        metrics(ws, "train-classifier")
    chosen = s.get("chosen", {})
    rows[n] = dict(wall=secs, rss=rss, stage=s.get("stage_seconds", {}),
                   classifier=clf.get("test_accuracy"), fidelity=vae.get("fidelity"),
                   failing=idf.get("failing_decodes"), failures=s.get("failures"),
                   genuine=s.get("verdicts", {}).get("genuine"), model=chosen.get("model"),
                   test=chosen.get("test_accuracy"), gsa=chosen.get("genuine_scenario_accuracy"),
                   draws=ev.get("scenario_images"), fresh=chosen.get("heldout_failure_accuracy"),
                   fresh_n=ev.get("heldout_failures"))

def f(v, fmt):
    return "-" if v is None else fmt.format(v)

def dur(x):
    return f"{int(x // 60)} min {x % 60:04.1f} s" if x >= 60 else f"{x:.1f} s"

print("\n| | " + " | ".join(names) + " |")
print("|---" * (len(names) + 1) + "|")
for st in stages:
    print(f"| {st} | " + " | ".join(dur(rows[n]['stage'].get(st, 0)) for n in names) + " |")
print("| **wall** | " + " | ".join(f"**{dur(rows[n]['wall'])}**" for n in names) + " |")
print("| peak RSS | " + " | ".join(f"{rows[n]['rss']:.0f} MiB" for n in names) + " |")
for key, label, fmt in [("classifier", "classifier test accuracy", "{:.2%}"), ("fidelity", "VAE fidelity", "{:.3f}"),
                        ("failing", "failing decodes", "{:,}"), ("failures", "kept failures", "{}"),
                        ("genuine", "genuine scenarios", "{}"), ("model", "chosen", "{}"),
                        ("test", "chosen: test accuracy", "{:.2%}"),
                        ("gsa", "chosen: genuine-scenario accuracy", "{:.1%}"), ("draws", "  draws scored", "{}"),
                        ("fresh", "chosen: fresh failures fixed", "{:.1%}"), ("fresh_n", "  fresh failures", "{}")]:
    print(f"| {label} | " + " | ".join(f(rows[n][key], fmt) for n in names) + " |")
for n in names:
    if n.endswith("-after") and n.replace("-after", "-before") in rows:
        b = rows[n.replace("-after", "-before")]
        print(f"\n{n}: {rows[n]['wall'] / b['wall']:.2f}x the wall time of before "
              f"({dur(rows[n]['wall'])} against {dur(b['wall'])})")
PY
echo "workspaces and logs: $out" >&2
