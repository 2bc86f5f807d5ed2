"""GFLOP/s of torch.mm on the shapes of crates/lathe-model/examples/gemm_bench.rs."""
import json
import sys
import time

import torch

SHAPES = [
    ("q/o_proj", 1024, 576, 576),
    ("k/v_proj", 1024, 576, 192),
    ("gate/up_proj", 1024, 576, 1536),
    ("down_proj", 1024, 1536, 576),
    ("head chunk", 1024, 576, 12288),
    ("head input grad", 1024, 12288, 576),
    ("weight grad", 576, 1024, 1536),
]


def best_seconds(run):
    run()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
for name, m, k, n in SHAPES:
    x, w = torch.rand(m, k), torch.rand(n, k)  # the weight as stored, [n, k]
    seconds = best_seconds(lambda: x @ w.T)
    gflops = 2 * m * k * n / seconds / 1e9
    print(json.dumps({"shape": f"{name} {m}x{k}x{n}", "torch_gflops": round(gflops, 1)}))
