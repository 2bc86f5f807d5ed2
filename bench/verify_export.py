"""Loads Lathe's exports outside Lathe and compares greedy continuations with Lathe's.

    python bench/verify_export.py EXPORT_DIR BASE_GGUF LATHE_JSON

EXPORT_DIR holds `hf/` (merged model), `peft/` (adapter) and `gguf/*.gguf`;
BASE_GGUF is the backbone the run started from (transformers dequantizes it, and the
adapter goes on top); LATHE_JSON maps each prompt to Lathe's own continuation
(`lathe generate --run`). Prints one line per format and prompt, then a JSON summary;
exits 1 when a continuation differs.
"""

import glob
import json
import os
import sys

import numpy as np
import torch
from llama_cpp import Llama
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def greedy_hf(model, tokenizer, prompt_ids, new_tokens):
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             do_sample=False, num_beams=1, repetition_penalty=1.0)
    return tokenizer.decode(out[0][len(prompt_ids):], skip_special_tokens=True)


def greedy_llama_cpp(llm, tokenizer, prompt_ids, new_tokens, eos_ids):
    llm.reset()
    llm.eval(prompt_ids)
    produced = []
    for _ in range(new_tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if token in eos_ids:
            break
        produced.append(token)
        llm.eval([token])
    return tokenizer.decode(produced, skip_special_tokens=True)


def teacher_forced_agreement(llm, prompt_ids, answer_ids):
    """Fraction of Lathe's answer tokens that are llama.cpp's top-1 choice given the
    tokens before them."""
    if not answer_ids:
        return 1.0
    llm.reset()
    llm.eval(prompt_ids + answer_ids)
    scores = np.asarray(llm.scores[: len(prompt_ids) + len(answer_ids)])
    predicted = scores[len(prompt_ids) - 1 : -1].argmax(axis=1)
    return float(np.mean(predicted == np.asarray(answer_ids)))


# Least mean teacher-forced top-1 agreement with the unquantized run, per GGUF type.
AGREEMENT_FLOOR = {"f16": 1.0, "q8_0": 0.9, "q4_k_m": 0.85, "q4_0": 0.7}


def main(export_dir, base_gguf, lathe_json):
    expected = json.load(open(lathe_json))
    new_tokens = expected["max_new_tokens"]
    prompts = expected["answers"]
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(export_dir, "hf"))
    eos_ids = {tokenizer.eos_token_id}

    def prompt_ids(prompt):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    runners = {}
    merged = AutoModelForCausalLM.from_pretrained(os.path.join(export_dir, "hf"), dtype=torch.float32)
    runners["transformers (merged)"] = lambda ids: greedy_hf(merged, tokenizer, ids, new_tokens)
    base_dir, base_file = os.path.split(os.path.abspath(base_gguf))
    base = AutoModelForCausalLM.from_pretrained(base_dir, gguf_file=base_file, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, os.path.join(export_dir, "peft"))
    runners["peft (adapter on base)"] = lambda ids: greedy_hf(adapted, tokenizer, ids, new_tokens)
    for path in sorted(glob.glob(os.path.join(export_dir, "gguf*", "*.gguf"))):
        llm = Llama(model_path=path, n_ctx=1024, n_threads=2, logits_all=True, verbose=False)
        name = f"llama.cpp ({os.path.basename(path)})"
        runners[name] = lambda ids, llm=llm: greedy_llama_cpp(llm, tokenizer, ids, new_tokens, eos_ids)

        runners[name].llm = llm

    summary, passed = {}, True
    for name, run in runners.items():
        same, agreement = 0, []
        for prompt, want in prompts.items():
            ids = prompt_ids(prompt)
            got = run(ids)
            ok = got.strip() == want.strip()
            same += ok
            print(f"{'same' if ok else 'DIFFERENT'} | {name} | {prompt!r}\n  lathe: {want!r}\n  other: {got!r}")
            if hasattr(run, "llm"):
                answer = tokenizer(want, add_special_tokens=False)["input_ids"]
                agreement.append(teacher_forced_agreement(run.llm, ids, answer))
        result = {"greedy identical": f"{same}/{len(prompts)}"}
        if agreement:
            quant = name.rsplit("-", 1)[-1].split(".")[0]
            result["teacher-forced top-1 agreement"] = round(float(np.mean(agreement)), 4)
            passed &= np.mean(agreement) >= AGREEMENT_FLOOR.get(quant, 1.0)
        else:
            passed &= same == len(prompts)
        summary[name] = result
    print(json.dumps(summary, indent=1))
    return passed


if __name__ == "__main__":
    sys.exit(0 if main(*sys.argv[1:4]) else 1)
