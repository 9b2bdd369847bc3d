#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install, build, and run the pipeline on the
# default dataset (Fashion-MNIST from the Debian package dataset-fashion-mnist):
# train-classifier, train-vae, identify, distill, annotate --auto (labels are automatic: each
# scenario gets its dominant seed label; label them yourself with `defuse annotate`).
# usage: scripts/run.sh [WORKSPACE]   (default runs/default)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ws=${1:-runs/default}
defuse=build/release/defuse
"$defuse" train-classifier -w "$ws"
"$defuse" train-vae -w "$ws"
"$defuse" identify -w "$ws"
"$defuse" distill -w "$ws"
"$defuse" annotate -w "$ws" --auto seed
echo "notice: scenarios were labelled automatically with their dominant seed label;" \
     "review them with: $defuse annotate -w $ws" >&2
"$defuse" status -w "$ws"
