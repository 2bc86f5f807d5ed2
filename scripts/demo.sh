#!/usr/bin/env bash
# Sets up Lathe on a fresh machine and runs the built-in demo: fetches the demo model,
# builds the `lathe` binary, then generates text with and without the chat template.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-demo-model.sh
cargo build --release --bin lathe
lathe=./target/release/lathe

echo "== lathe generate --model demo --prompt 'The capital of France is'" >&2
$lathe generate --model demo --prompt "The capital of France is" --max-new-tokens 20
echo "== lathe generate --model demo --chat --prompt 'Give me three tips for a good night of sleep.'" >&2
$lathe generate --model demo --chat --prompt "Give me three tips for a good night of sleep." --max-new-tokens 120
