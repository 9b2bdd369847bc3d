#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then configures and builds with the
# `release` preset (CMake + Ninja, Release, ccache, 2 jobs). Extra arguments go to setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
cmake --preset release >/dev/null
cmake --build --preset release
