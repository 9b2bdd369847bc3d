# shellcheck shell=bash disable=SC2034,SC2154  # $root comes from, $chromium_bin goes to, the caller
# Sourced by the browser tests (scripts/browser_test.sh, scripts/browser_report_test.sh):
# makes sure Chromium, Node.js and npm (scripts/setup.sh --with-browser) and playwright-core
# (npm ci in tests/browser, as locked in its package-lock.json) are installed. Expects $root
# (the repository) and a function `skip MESSAGE` that exits with the caller's skip code; sets
# $chromium_bin and $browser_dir.

# ctest runs both browser tests at once: on a fresh machine both would run apt-get and
# `npm ci` together, and the one that lost the apt or npm lock skipped. One at a time.
exec {browser_setup_lock}>"${TMPDIR:-/tmp}/defuse-browser-setup.lock"
flock "$browser_setup_lock"

# 1. Chromium, Node.js, npm.
if ! command -v chromium >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if ! "$root/scripts/setup.sh" --with-browser >&2; then
    skip "Chromium, Node.js or npm is missing and could not be installed (scripts/setup.sh --with-browser failed)"
  fi
  if ! command -v chromium >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    skip "Chromium, Node.js or npm is still missing after scripts/setup.sh --with-browser"
  fi
fi
chromium_bin="$(command -v chromium)"

# 2. playwright-core, as locked in tests/browser/package-lock.json.
browser_dir="$root/tests/browser"
installed_lock="$browser_dir/node_modules/.package-lock.json"
if [ ! -f "$browser_dir/node_modules/playwright-core/package.json" ] ||
   [ "$browser_dir/package-lock.json" -nt "$installed_lock" ]; then
  if ! (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
    skip "playwright-core could not be installed from npm (offline?): run 'npm ci' in tests/browser"
  fi
fi

flock -u "$browser_setup_lock"
exec {browser_setup_lock}>&-
