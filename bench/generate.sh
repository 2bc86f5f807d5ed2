#!/usr/bin/env bash
# Generation speed of Lathe on the demo GGUF, with llama.cpp side by side on the same
# file: prefill tokens/s (512-token prompt), decode tokens/s (128 new tokens, greedy,
# batch 1) and peak RSS, with THREADS threads (default 2).
#
# llama.cpp comes from PyPI's llama-cpp-python, built from source once into
# $LATHE_HOME/bench-venv (several minutes the first time; LLAMA_AVX512=OFF builds it
# without AVX-512). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

threads="${THREADS:-2}"
prompt_tokens=512
new_tokens=128
home="${LATHE_HOME:-$HOME/.cache/lathe}"
model="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
venv="$home/bench-venv"

scripts/fetch-demo-model.sh
cargo build --release --example generate_bench -p lathe-model

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "workload: $prompt_tokens-token prompt, $new_tokens new tokens, greedy, batch 1, $threads threads"

cmd=(env RAYON_NUM_THREADS="$threads" ./target/release/examples/generate_bench "$model" "$prompt_tokens" "$new_tokens")
echo "\$ ${cmd[*]}"
lathe_json="$("${cmd[@]}")"
echo "$lathe_json"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    echo "building llama-cpp-python into $venv ..." >&2
    python3 -m venv "$venv"
    # GGML_NATIVE would also enable AMX on CPUs that advertise it; where the kernel does
    # not grant AMX state that dies with SIGILL, so the SIMD levels are set explicitly.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=${LLAMA_AVX512:-ON}" \
        "$venv/bin/pip" install --quiet --no-cache-dir --force-reinstall llama-cpp-python numpy
fi
cmd=("$venv/bin/python" bench/llama_cpp_generate.py "$model" "$prompt_tokens" "$new_tokens" "$threads")
echo "\$ ${cmd[*]}"
llama_json="$("${cmd[@]}")"
echo "$llama_json"

python3 - "$lathe_json" "$llama_json" <<'PY'
import json, sys
lathe, llama = (json.loads(a) for a in sys.argv[1:])
for key, label in [("prefill_tok_s", "prefill tokens/s"), ("decode_tok_s", "decode tokens/s"), ("peak_rss_mib", "peak RSS MiB")]:
    print(f"{label:17} lathe {lathe[key]:>8}   llama.cpp {llama[key]:>8}   lathe/llama.cpp {lathe[key] / llama[key]:.2f}")
PY
