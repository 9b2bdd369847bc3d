#!/usr/bin/env bash
# Installs, builds, and runs the whole test suite; ends with CTest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --with-tests
cd build/release
ctest --output-on-failure -j2 --timeout 900
