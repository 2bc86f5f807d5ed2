#!/usr/bin/env bash
# Exports a trained run in every format and checks, outside Lathe, that transformers
# (merged model), PEFT (adapter on the base) and llama.cpp (GGUF F16, Q8_0, Q4_K_M, Q4_0)
# continue a few prompts greedily exactly as Lathe does.
#
#   bench/verify_export.sh RUN_DIR [NEW_TOKENS]
#
# RUN_DIR: a finished LoRA run on the demo model (`scripts/demo.sh` makes one).
# Python packages come from PyPI into a scratch virtualenv, $LATHE_HOME/bench-venv
# (not CI: several minutes and a few GB the first time). LATHE_BIN=path skips the
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."

run=${1:?usage: bench/verify_export.sh RUN_DIR [NEW_TOKENS]}
new_tokens=${2:-32}
home=${LATHE_HOME:-$HOME/.cache/lathe}
venv="$home/bench-venv"
base="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp, torch, transformers, peft, gguf" 2>/dev/null; then
  echo "installing llama-cpp-python, torch, transformers, peft, gguf into $venv ..." >&2
  python3 -m venv "$venv"
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install -q llama-cpp-python numpy
  "$venv/bin/pip" install -q torch transformers peft gguf accelerate
fi

lathe=${LATHE_BIN:-target/release/lathe}
[ -n "${LATHE_BIN:-}" ] || cargo build --release -q -p lathe-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

$lathe export --run "$run" --format hf --out "$out/hf" >/dev/null
$lathe export --run "$run" --format peft --out "$out/peft" >/dev/null
for q in f16 q8_0 q4_k_m q4_0; do
  $lathe export --run "$run" --format gguf --quant $q --out "$out/gguf-$q" >/dev/null
done

prompts=(
  "Give three tips for staying healthy."
  "What is the capital of France?"
  "Write a haiku about autumn."
  "Explain what a neural network is in one sentence."
)
{
  echo "{\"max_new_tokens\": $new_tokens, \"answers\": {"
  for i in "${!prompts[@]}"; do
    p=${prompts[$i]}
    answer=$($lathe generate --run "$run" --chat --prompt "$p" --max-new-tokens "$new_tokens" 2>/dev/null)
    sep=$([ "$i" -lt $((${#prompts[@]} - 1)) ] && echo , || true)
    printf '%s: %s%s\n' "$(jq -Rn --arg s "$p" '$s')" "$(jq -Rn --arg s "$answer" '$s')" "$sep"
  done
  echo "}}"
} >"$out/lathe.json"

# Inside Lathe: each GGUF file against the run's own continuations.
for file in "$out"/gguf-*/*.gguf; do
  same=0
  for p in "${prompts[@]}"; do
    want=$($lathe generate --run "$run" --chat --prompt "$p" --max-new-tokens "$new_tokens" 2>/dev/null)
    got=$($lathe generate --model "$file" --chat --prompt "$p" --max-new-tokens "$new_tokens" 2>/dev/null)
    [ "$got" = "$want" ] && same=$((same + 1))
  done
  echo "lathe ($(basename "$file")): greedy identical to the run $same/${#prompts[@]}"
done

"$venv/bin/python" bench/verify_export.py "$out" "$base" "$out/lathe.json"
