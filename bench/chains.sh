#!/usr/bin/env bash
# Data-path speed and peak memory: building conversation chains and rendering the
# samples of 400,000 generated chat rows (H2O LLM Studio's own test asks for under
# 10 s), and rendering + tokenizing the 20,090-row chat file with the demo tokenizer.
# Peak RSS by /usr/bin/time. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

rows="${ROWS:-400000}"
scripts/fetch-demo-model.sh
cargo build --release --example data_bench -p lathe-cli
bin=target/release/examples/data_bench
chat="$(mktemp -d)"
trap 'rm -rf "$chat"' EXIT
unzip -q -o examples/data/chitchat_1000conv.zip -d "$chat"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
measure() {
  local out rss
  out="$(/usr/bin/time -f 'RSS %M' "$@" 2>"$chat/time.err")" || { cat "$chat/time.err" >&2; return 1; }
  rss="$(grep -o 'RSS [0-9]*' "$chat/time.err" | tail -1 | cut -d' ' -f2)"
  echo "${out%\}}, \"peak_rss_mib\": $((rss / 1024))}"
}
measure "$bin" chains "$rows"
measure "$bin" tokenize "$chat/chitchat_1000conv_oasst_style.csv"
