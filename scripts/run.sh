#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is missing, build, and run the
# whole loop on the default dataset (Fashion-MNIST from the Debian package
# dataset-fashion-mnist) with `defuse run`: classifier, judges, VAE, identify (genuine
# failures only), distill, automatic annotation from the judges' reading (label them
# yourself with `--annotate web`), correction with the λ sweep and the baseline, evaluation,
# report.
# Re-running skips what is up to date; a killed run resumes where it stopped.
# usage: scripts/run.sh [WORKSPACE] [more `defuse run` options]   (default runs/default)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ws=runs/default
if [[ $# -gt 0 && $1 != -* ]]; then ws=$1; shift; fi
exec build/release/defuse run --workspace "$ws" "$@"
