#!/usr/bin/env bash
# Training-step speed and peak memory of Lathe on the demo model, with PyTorch + PEFT
# side by side: batch 2 × 512 tokens of Moby Dick, AdamW, f32, THREADS threads
# (default 2), STEPS steps (default 6; the first is left out of tokens/s). Lathe runs
# LoRA (r 4, α 16, all linear layers) on f32, int8 and int4 base weights, and full
# fine-tuning, with and without gradient checkpointing (`-gc`); PyTorch runs LoRA and
# full fine-tuning. Peak RSS by /usr/bin/time.
#
# PyTorch comes from PyPI into a scratch virtualenv, $LATHE_HOME/train-bench-venv
# (torch CPU, transformers, peft, gguf; about 1 GB the first time), or VENV=… to use
# another one. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

threads="${THREADS:-2}"
steps="${STEPS:-6}"
home="${LATHE_HOME:-$HOME/.cache/lathe}"
model="$home/models/SmolLM2-135M-Instruct.Q4_1.gguf"
text="${TEXT:-../shared/data/text/moby_dick.txt}"
venv="${VENV:-$home/train-bench-venv}"

scripts/fetch-demo-model.sh
cargo build --release --example train_bench -p lathe-train
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, transformers, peft, gguf" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch ||
    "$venv/bin/pip" install -q torch
  "$venv/bin/pip" install -q transformers peft gguf accelerate
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "workload: 2 x 512 tokens, AdamW, f32, $threads threads, $steps steps"

# Runs a command; prints its JSON line with the peak RSS (MiB) added.
measure() {
  local out rss
  out="$(/usr/bin/time -f 'RSS %M' "$@" 2>/tmp/lathe-train-bench.err)" || { cat /tmp/lathe-train-bench.err >&2; return 1; }
  rss="$(grep -o 'RSS [0-9]*' /tmp/lathe-train-bench.err | tail -1 | cut -d' ' -f2)"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["peak_rss_mib"]=round(int(sys.argv[2])/1024); print(json.dumps(d))' "$out" "$rss"
}

results=()
for mode in lora lora-gc lora-int8 lora-int4 full full-gc; do
  echo "\$ RAYON_NUM_THREADS=$threads target/release/examples/train_bench $model $mode $text $steps" >&2
  results+=("$(measure env RAYON_NUM_THREADS="$threads" target/release/examples/train_bench "$model" "$mode" "$text" "$steps")")
  echo "${results[-1]}"
done
for mode in lora full; do
  echo "\$ $venv/bin/python bench/train_peft.py $model $mode $text $steps $threads" >&2
  results+=("$(measure "$venv/bin/python" bench/train_peft.py "$model" "$mode" "$text" "$steps" "$threads")")
  echo "${results[-1]}"
done

python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(r) for r in sys.argv[1:]]
by = {(r["engine"], r["mode"]): r for r in rows}
for mode in ["lora", "full"]:
    l, p = by[("lathe", mode)], by[("pytorch+peft", mode)]
    print(f"{mode}: Lathe {l['tokens_per_s']} tokens/s, {l['peak_rss_mib']} MiB; "
          f"PyTorch {p['tokens_per_s']} tokens/s, {p['peak_rss_mib']} MiB; "
          f"speed ratio {l['tokens_per_s'] / p['tokens_per_s']:.2f}, memory ratio {l['peak_rss_mib'] / p['peak_rss_mib']:.2f}")
PY
