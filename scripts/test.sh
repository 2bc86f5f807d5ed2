#!/usr/bin/env bash
# Runs Lathe's tests: fetches the demo model the reference tests need, then the
# whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-demo-model.sh
cargo test --workspace
