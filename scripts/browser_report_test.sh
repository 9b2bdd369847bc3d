#!/usr/bin/env bash
# Browser test of the HTML report (`defuse report`): writes a report from synthetic data
# (tests/browser/make_report.cpp), opens it from file:// in headless Chromium (Debian's
# `chromium`, driven by playwright-core from npm) with the network cut off, checks that it
# renders with no console error and no request at all, that its sections and plots are
# visible, and saves a full-page screenshot. Also opens the report of an empty workspace.
# Installs what it needs as scripts/browser_test.sh does (scripts/browser_setup.sh).
#
# Usage: scripts/browser_report_test.sh [--make-report PATH] [--out DIR] [--skip-code N]
#   --make-report  the test-support tool that writes the report
#                  (default build/release/tests/defuse_make_report)
#   --out DIR      where the report and the screenshot go (default build/browser; files
#                  report.html, report.png, report-empty.html, report-empty.png)
#   --skip-code N  exit status when the browser tools cannot be installed here (default 0,
#                  with a clear message; CTest passes 77, its "skipped" code)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
maker="$root/build/release/tests/defuse_make_report"
out="$root/build/browser"
skip_code=0
while [ $# -gt 0 ]; do
  case "$1" in
    --make-report) maker="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --skip-code) skip_code="$2"; shift 2 ;;
    *) echo "browser_report_test.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done

skip() {
  echo "browser_report_test: SKIPPED: $*" >&2
  exit "$skip_code"
}
[ -x "$maker" ] || { echo "browser_report_test: $maker is missing: build the project first" >&2; exit 1; }

# shellcheck source=scripts/browser_setup.sh
source "$root/scripts/browser_setup.sh"

mkdir -p "$out"
"$maker" "$out/report.html" >/dev/null
"$maker" "$out/report-empty.html" --empty >/dev/null
CHROMIUM="$chromium_bin" node "$browser_dir/report.spec.mjs" --report "$out/report.html" \
  --screenshot "$out/report.png" --scenarios 6
CHROMIUM="$chromium_bin" node "$browser_dir/report.spec.mjs" --report "$out/report-empty.html" \
  --screenshot "$out/report-empty.png" --scenarios 0
echo "browser_report_test: passed; screenshots $out/report.png, $out/report-empty.png" >&2
