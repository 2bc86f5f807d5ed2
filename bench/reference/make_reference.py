"""Produce the transformers reference numbers for Lathe's engine tests.

Runs in a scratch virtualenv (torch, transformers, gguf), never in CI:

    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch transformers gguf accelerate
    /tmp/refenv/bin/python bench/reference/make_reference.py \
        ~/.cache/lathe/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        crates/lathe-model/tests/reference/smollm2_q4_1.json

transformers dequantizes the same GGUF to float32. For each prompt it records the
prompt's token ids, the first 16 greedy tokens, a 32-token greedy continuation, and
logits at every position of prompt + continuation (teacher-forced), restricted to a
fixed subset of the vocabulary plus each position's top 16 (the full logits would be
megabytes), together with the sum and sum of squares over the whole vocabulary.
It also records the chat template rendering of a 3-turn conversation.
"""

import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little fox who",
    "def fibonacci(n):\n    \"\"\"Return the nth Fibonacci number.\"\"\"\n",
    "Photosynthesis is the process by which plants",
]
CONVERSATION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
    {"role": "user", "content": "Thanks! Which one is bigger?"},
]
CONVERSATION_NO_SYSTEM = CONVERSATION[1:]
VOCAB_STRIDE = 251
TOP = 16


def main(gguf_path: str, out_path: str) -> None:
    torch.manual_seed(0)
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    subset = list(range(0, vocab, VOCAB_STRIDE))
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=32,
                                 do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=0)
        cont = out[0, len(ids):].tolist()
        full = torch.tensor([ids + cont])
        with torch.no_grad():
            logits = model(full).logits[0]
        positions = []
        for row in logits:
            top = torch.topk(row, TOP)
            positions.append({
                "subset": [round(float(row[i]), 6) for i in subset],
                "top_ids": top.indices.tolist(),
                "top_values": [round(float(v), 6) for v in top.values],
                "sum": float(row.double().sum()),
                "sum_sq": float((row.double() ** 2).sum()),
            })
        cases.append({
            "prompt": prompt,
            "prompt_ids": ids,
            "greedy_16": cont[:16],
            "continuation_32": cont,
            "continuation_text": tok.decode(cont),
            "logits": positions,
        })
    chat = {
        "messages": CONVERSATION,
        "rendered": tok.apply_chat_template(CONVERSATION, tokenize=False),
        "rendered_generation_prompt": tok.apply_chat_template(
            CONVERSATION, tokenize=False, add_generation_prompt=True),
        "messages_no_system": CONVERSATION_NO_SYSTEM,
        "rendered_no_system": tok.apply_chat_template(
            CONVERSATION_NO_SYSTEM, tokenize=False, add_generation_prompt=True),
    }
    ref = {
        "model": name,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "vocab_size": vocab,
        "vocab_stride": VOCAB_STRIDE,
        "cases": cases,
        "chat_template": chat,
    }
    with open(out_path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    for c in cases:
        print(repr(c["prompt"]), "->", repr(c["continuation_text"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
