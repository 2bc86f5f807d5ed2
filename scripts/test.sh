#!/usr/bin/env bash
# Runs Lathe's tests: fetches the demo model the reference tests need, sets up the
# browser test (Playwright from npm into tests/ui, Debian's chromium), then the whole
# workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-demo-model.sh
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  else
    echo "the UI test needs Chromium: install Debian's chromium package (or set CHROMIUM)" >&2
    exit 1
  fi
fi
npm ci --prefix tests/ui --no-audit --no-fund --silent
cargo test --workspace
