#!/usr/bin/env bash
# Installs the Debian packages defuse needs to build, test and run. Idempotent: packages
# already present are skipped, and nothing is printed when everything is there.
# Usage: scripts/setup.sh [--with-bench] [--with-tests] [--with-browser] [--with-fuzz]
set -euo pipefail

packages=(
  cmake g++ ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev libopenblas0-openmp libblas-dev
  libsqlite3-dev libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libstb-dev
  libmatio-dev libfmt-dev zlib1g-dev libxxhash-dev libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
)
for arg in "$@"; do
  case "$arg" in
    # The benchmark scripts also time processes with /usr/bin/time -v and add up with bc.
    --with-bench) packages+=(python3-torch python3-sklearn python3-numpy python3-pil time bc) ;;
    # The test suite checks that exported models load in Python (torch.jit.load), that
    # torchvision's ImageFolder and NumPy read `export-scenarios`; python3-torch reuses the
    # libtorch1.13 that libtorch-dev already brings.
    --with-tests) packages+=(python3-torch python3-torchvision python3-numpy) ;;
    --with-browser)
      # A Node.js from elsewhere (NodeSource) ships its own npm and conflicts with Debian's
      # npm package: add nodejs and npm only when their commands are missing.
      packages+=(chromium)
      command -v node >/dev/null || packages+=(nodejs)
      command -v npm >/dev/null || packages+=(npm)
      ;;
    --with-fuzz) packages+=(clang libclang-rt-14-dev libomp-dev) ;;  # scripts/fuzz.sh
    *) echo "setup.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
