#!/usr/bin/env bash
# Sets up Lathe on a fresh machine and runs the built-in demo: fetches the demo model,
# builds the `lathe` binary, generates text with and without the chat template, then
# fine-tunes the demo model with LoRA on Alpaca demo data, answers with the result, and
# exports it as a GGUF file that answers too.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-demo-model.sh
cargo build --release --bin lathe
lathe=./target/release/lathe

echo "== lathe generate --model demo --prompt 'The capital of France is'" >&2
$lathe generate --model demo --prompt "The capital of France is" --max-new-tokens 20
echo "== lathe generate --model demo --chat --prompt 'Give me three tips for a good night of sleep.'" >&2
$lathe generate --model demo --chat --prompt "Give me three tips for a good night of sleep." --max-new-tokens 120

echo "== lathe train -Y examples/alpaca_lora.yaml (LoRA on 10% of the Alpaca demo data)" >&2
rm -rf output/alpaca-lora-demo
$lathe train -Y examples/alpaca_lora.yaml --experiment_name alpaca-lora-demo \
  --output_directory output/alpaca-lora-demo --dataset.data_sample 0.1
echo "== lathe generate --run output/alpaca-lora-demo --prompt 'Give three tips for staying healthy.'" >&2
$lathe generate --run output/alpaca-lora-demo --prompt "Give three tips for staying healthy." --max-new-tokens 80
echo "== lathe export --run output/alpaca-lora-demo --format gguf --quant q8_0 (then answer with the file)" >&2
$lathe export --run output/alpaca-lora-demo --format gguf --quant q8_0 --out output/alpaca-lora-demo-gguf --force
$lathe generate --model output/alpaca-lora-demo-gguf/alpaca-lora-demo-q8_0.gguf --chat \
  --prompt "Give three tips for staying healthy." --max-new-tokens 80
