"""llama.cpp (through llama-cpp-python) on the same GGUF and workload as Lathe's
`generate_bench`: prefill of a PROMPT_TOKENS prompt, then NEW_TOKENS greedy decode
steps, with THREADS threads. Prints one JSON line."""

import json
import resource
import sys
import time

import numpy as np
from llama_cpp import Llama

TEXT = ("The history of the printing press begins in the fifteenth century, when movable "
        "type changed how knowledge travelled across Europe. ") * 64


def main(model: str, prompt_tokens: int, new_tokens: int, threads: int) -> None:
    start = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=prompt_tokens + new_tokens + 8, n_threads=threads,
                n_threads_batch=threads, n_batch=512, verbose=False)
    load_s = time.perf_counter() - start
    prompt = llm.tokenize(TEXT.encode(), add_bos=False, special=False)[:prompt_tokens]

    def last_logits():
        # Without logits_all, llama.cpp computes logits for the batch's last token only.
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))

    start = time.perf_counter()
    llm.eval(prompt)
    token = int(np.argmax(last_logits()))
    first = time.perf_counter()
    generated = [token]
    for _ in range(new_tokens - 1):
        llm.eval([token])
        token = int(np.argmax(last_logits()))
        generated.append(token)
    end = time.perf_counter()
    print(json.dumps({
        "engine": "llama.cpp",
        "load_s": round(load_s, 2),
        "prefill_tokens": len(prompt),
        "prefill_tok_s": round(len(prompt) / (first - start), 1),
        "decode_tokens": new_tokens - 1,
        "decode_tok_s": round((new_tokens - 1) / (end - first), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))
    print("llama.cpp greedy text:", repr(llm.detokenize(generated[:24]).decode(errors="replace")),
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
