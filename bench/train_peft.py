"""The PyTorch + PEFT side of bench/train.sh: the same training step as
crates/lathe-train/examples/train_bench.rs (2 × 512 tokens, AdamW lr 1e-4, weight
decay 0; LoRA r 4, α 16, dropout 0.05 on all linear layers, or full fine-tuning),
on the same GGUF loaded by transformers. Prints one JSON line.

usage: python bench/train_peft.py GGUF_FILE MODE TEXT_FILE STEPS THREADS
"""
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path, mode, text_file, steps, threads = sys.argv[1:6]
steps, threads = int(steps), int(threads)
torch.set_num_threads(threads)
folder, name = os.path.split(path)
tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
if mode == "lora":
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(
        r=4, lora_alpha=16, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ))
model.train()
ids = tokenizer(open(text_file).read(), add_special_tokens=False)["input_ids"][: 2 * 512]
ids = torch.tensor(ids).reshape(2, 512)
params = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
timed, losses = 0.0, []
for step in range(steps):
    start = time.perf_counter()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if step > 0:
        timed += time.perf_counter() - start
    losses.append(round(loss.item(), 4))
print(json.dumps({"engine": "pytorch+peft", "mode": mode, "torch": torch.__version__,
                  "tokens_per_s": round((steps - 1) * 2 * 512 / timed, 1), "losses": losses}))
