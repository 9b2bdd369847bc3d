#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install, build, and run defuse on the
# default dataset (Fashion-MNIST from the Debian package dataset-fashion-mnist).
# Arguments are passed to `defuse run`, e.g. scripts/run.sh --workspace runs/demo
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec build/release/defuse train-classifier "$@"
