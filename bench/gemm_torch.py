"""GFLOP/s of torch.mm on the shapes that examples/gemm_bench.rs printed (read from stdin)."""
import json
import sys
import time

import torch


def best_seconds(run):
    run()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
for line in sys.stdin:
    shape = json.loads(line)
    m, k, n = shape["m"], shape["k"], shape["n"]
    x, w = torch.rand(m, k), torch.rand(n, k)  # the weight as stored, [n, k]
    seconds = best_seconds(lambda: x @ w.T)
    gflops = 2 * m * k * n / seconds / 1e9
    print(json.dumps({"shape": shape["shape"], "m": m, "k": k, "n": n, "torch_gflops": round(gflops, 1)}))
