#!/usr/bin/env bash
# Pipeline benchmark (docs/benchmarks.md, "Pipeline"): the whole Defuse run on MNIST, stage by
# stage with the defuse binary, then the same pipeline written plainly in Python
# (bench/pipeline_bench.py: PyTorch + scikit-learn, /usr/bin/python3), same settings and
# threads, one run each. Prints wall seconds per stage, the total and the peak RSS of each side.
#
#   scripts/bench_pipeline.sh [--quick] [--data DIR] [--threads N] [--defuse PATH] [--out DIR]
#                             [--python-first] [--skip-python] [--skip-defuse] [--no-run]
#
#   --quick         smoke run: 1 VAE epoch, 200 seeds, λ sweep {0.1} + baseline
#   --defuse PATH   the binary (default: $DEFUSE, else build/release/defuse); it is copied to
#                   the output directory first, so a rebuild cannot swap it mid-run
#   --out DIR       keep the workspaces, logs and JSON here (default: a temporary directory)
#   --python-first  run the Python pipeline before defuse (to see order effects on a shared box)
#   --no-run        do not also time `defuse run` (the whole loop in one command; timed when the
#                   binary has it, with the same settings given as --set overrides)
#
# Wall time per stage: date +%s.%N around each defuse process (process start, dataset load and
# artifact writing included), the stage timer inside the Python process (its interpreter start,
# imports and one dataset load are a row of their own). Peak RSS: /usr/bin/time -v
# ("Maximum resident set size") of each process; for defuse the largest over its stages.
# Both sides get OPENBLAS_CORETYPE=SkylakeX (defuse would set it by re-executing itself).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-bench  # python3-torch, scikit-learn, time, bc (idempotent, silent)

data=../shared/data/mnist
threads=2
defuse_src=${DEFUSE:-build/release/defuse}
out=""
quick=0
python_first=0
run_python=1
run_defuse=1
with_run=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --data) data="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --defuse) defuse_src="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --python-first) python_first=1; shift ;;
    --skip-python) run_python=0; shift ;;
    --skip-defuse) run_defuse=0; shift ;;
    --no-run) with_run=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench_pipeline: unknown argument $1" >&2; exit 2 ;;
  esac
done

# The settings, passed explicitly to both sides (defuse's defaults but for the classifier's
# epochs, which the issue fixes at 1).
classifier_epochs=1
vae_epochs=6
max_seeds=2000
lambdas=0.01,0.03,0.1,0.3,1
correct_epochs=1
samples_per_scenario=512
held_out=256
if [[ $quick == 1 ]]; then
  vae_epochs=1
  max_seeds=200
  lambdas=0.1
fi

keep_out=1
if [[ -z $out ]]; then out=$(mktemp -d /tmp/bench-pipeline.XXXXXX); keep_out=0; fi
mkdir -p "$out"
# Only where the CPU has AVX-512: OpenBLAS's SkylakeX kernels are illegal instructions
# (SIGILL) on a CPU without it.
if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
python=/usr/bin/python3

echo "bench_pipeline: output in $out; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "settings: classifier $classifier_epochs epoch(s), VAE $vae_epochs epoch(s), $max_seeds seeds (Q 100, M 5)," \
     "λ {$lambdas} + failures-only baseline, $correct_epochs correction epoch(s), $samples_per_scenario samples" \
     "per scenario, $held_out held-out draws per scenario, $threads threads"

# runs NAME CMD... : wall seconds to $out/NAME.wall, /usr/bin/time -v to $out/NAME.time,
# stdout to $out/NAME.out, stderr to $out/NAME.err.
timed() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  if ! /usr/bin/time -v -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err"; then
    echo "bench_pipeline: $name failed:" >&2
    tail -20 "$out/$name.err" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l >"$out/$name.wall"
  printf '  %-18s %8.1f s  (load %s)\n' "$name" "$(cat "$out/$name.wall")" "$(cut -d' ' -f1 /proc/loadavg)"
}

run_defuse_side() {
  if [[ ! -x $defuse_src ]]; then echo "bench_pipeline: no defuse binary at $defuse_src" >&2; exit 1; fi
  cp "$defuse_src" "$out/defuse"
  local defuse="$out/defuse"
  for cmd in correct evaluate; do
    if ! "$defuse" --help 2>/dev/null | grep -qE "^ +$cmd +"; then
      echo "bench_pipeline: $defuse_src has no '$cmd' command (build it first)" >&2; exit 1
    fi
  done
  local ws="$out/ws-defuse"
  rm -rf "$ws"
  local common=(--workspace "$ws" --threads "$threads" --quiet)
  echo "== defuse ($defuse_src, $("$defuse" --version 2>/dev/null | head -1))"
  timed d.train-classifier "$defuse" train-classifier --data "mnist:$data" --epochs "$classifier_epochs" "${common[@]}"
  timed d.train-vae "$defuse" train-vae --epochs "$vae_epochs" "${common[@]}"
  timed d.identify "$defuse" identify --max-seeds "$max_seeds" --samples 100 --keep 5 "${common[@]}"
  timed d.distill "$defuse" distill --components 100 --samples 64 --neighbours 8 "${common[@]}"
  timed d.annotate "$defuse" annotate --auto seed "${common[@]}"
  timed d.correct "$defuse" correct --lambda "$lambdas" --baseline failures-only --epochs "$correct_epochs" \
    --batch-size 64 --scenario-batch-size 64 --optimizer sgd --lr 0.001 --momentum 0.9 \
    --samples-per-scenario "$samples_per_scenario" "${common[@]}"
  timed d.evaluate "$defuse" evaluate --samples-per-scenario "$held_out" "${common[@]}"
  "$defuse" status --workspace "$ws" --json >"$out/defuse-status.json" 2>/dev/null || true
}

run_python_side() {
  echo "== Python ($python, torch $($python -c 'import torch; print(torch.__version__)'), scikit-learn" \
       "$($python -c 'import sklearn; print(sklearn.__version__)'))"
  timed python "$python" bench/pipeline_bench.py "$data" --threads "$threads" \
    --classifier-epochs "$classifier_epochs" --vae-epochs "$vae_epochs" --max-seeds "$max_seeds" \
    --lambdas "$lambdas" --correct-epochs "$correct_epochs" --samples-per-scenario "$samples_per_scenario" \
    --held-out-per-scenario "$held_out" --out "$out/py-artifacts"
  cp "$out/python.out" "$out/python.json"
}

if [[ $python_first == 1 ]]; then
  [[ $run_python == 1 ]] && run_python_side
  [[ $run_defuse == 1 ]] && run_defuse_side
else
  [[ $run_defuse == 1 ]] && run_defuse_side
  [[ $run_python == 1 ]] && run_python_side
fi
# `defuse run` last, so that the stage-by-stage comparison is complete first.
if [[ $run_defuse == 1 ]]; then
  # `defuse run` (the whole loop in one process, its report stage included), when this
  # binary has it, with the same settings as --set overrides.
  if [[ $with_run == 1 ]] && "$out/defuse" --help 2>/dev/null | grep -qE '^ +run +'; then
    rm -rf "$out/ws-run"
    # A failure here (say, an option `run` does not pass on) leaves the table above intact.
    ( timed d.run "$out/defuse" run --data "mnist:$data" --workspace "$out/ws-run" --threads "$threads" --quiet \
      --set "train-classifier.epochs=$classifier_epochs" --set "train-vae.epochs=$vae_epochs" \
      --set "identify.max-seeds=$max_seeds" --set "identify.samples=100" --set "identify.keep=5" \
      --set "correct.lambda=$lambdas" --set "correct.epochs=$correct_epochs" \
      --set "correct.samples-per-scenario=$samples_per_scenario" --set "evaluate.samples-per-scenario=$held_out" ) ||
      echo "bench_pipeline: defuse run failed (see $out/d.run.err); its row is left out"
  fi
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

$python - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
stages = ["train-classifier", "train-vae", "identify", "distill", "annotate", "correct", "evaluate"]

def rss_mb(name):
    text = open(os.path.join(out, name + ".time")).read()
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024

def wall(name):
    return float(open(os.path.join(out, name + ".wall")).read())

have_d = os.path.exists(os.path.join(out, "d.evaluate.wall"))
have_p = os.path.exists(os.path.join(out, "python.json"))
d = {s: wall("d." + s) for s in stages} if have_d else {}
p = json.load(open(os.path.join(out, "python.json"))) if have_p else None
fmt = lambda v: "—" if v is None else f"{v:.1f}"
ratio = lambda a, b: "—" if a is None or b is None or a == 0 else f"{b / a:.2f}"
rows = []
for s in stages:
    dv = d.get(s)
    pv = p["stages"].get(s) if p else None
    rows.append((s, dv, pv))
if p:
    rows.append(("startup + data load", None, p["import_seconds"] + p["stages"].get("load data", 0)))
d_total = sum(d.values()) if have_d else None
p_total = wall("python") if have_p else None
print()
print("| stage | defuse s | Python s | Python / defuse |")
print("| --- | ---: | ---: | ---: |")
for s, dv, pv in rows:
    print(f"| {s} | {fmt(dv)} | {fmt(pv)} | {ratio(dv, pv) if (dv or 0) >= 1 else '—'} |")
print(f"| **total (wall)** | **{fmt(d_total)}** | **{fmt(p_total)}** | **{ratio(d_total, p_total)}** |")
d_rss = max(rss_mb("d." + s) for s in stages) if have_d else None
p_rss = rss_mb("python") if have_p else None
if os.path.exists(os.path.join(out, "d.run.wall")):
    print(f"| `defuse run` (one command, report included) | {fmt(wall('d.run'))} | {fmt(p_total)} | "
          f"{ratio(wall('d.run'), p_total)} |")
print(f"| peak RSS, MiB | {fmt(d_rss)} | {fmt(p_rss)} | {ratio(d_rss, p_rss)} |")
if os.path.exists(os.path.join(out, "d.run.wall")):
    print(f"defuse run peak RSS: {rss_mb('d.run'):.0f} MiB")
if have_d:
    print("defuse peak RSS per stage (MiB): " + ", ".join(f"{s} {rss_mb('d.' + s):.0f}" for s in stages))
if p:
    print(f"Python: classifier test accuracy {100 * p['test_accuracy']:.2f}%, identify {p['identify']}, "
          f"distill {p['distill']}, chosen {p['evaluate']['chosen']}")
if have_d:
    try:
        runs = json.load(open(os.path.join(out, "defuse-status.json")))["runs"]
        for r in runs:
            m = r.get("metrics") or {}
            keep = {k: m[k] for k in ("test_accuracy", "seeds", "failures", "scenarios", "iterations", "chosen")
                    if k in m}
            if keep:
                print(f"defuse {r['stage']}: {keep}")
    except Exception as e:  # the status format is informative only
        print(f"(defuse status unreadable: {e})")
json.dump({"defuse": d, "defuse_total": d_total, "defuse_peak_rss_mb": d_rss,
           "python": p["stages"] if p else None, "python_total": p_total, "python_peak_rss_mb": p_rss},
          open(os.path.join(out, "summary.json"), "w"))
PY
if [[ $keep_out == 0 ]]; then rm -rf "$out"; fi
