"""Reference dequantization of ggml block formats, made with the `gguf` package
(llama.cpp's own Python reader), for Lathe's dequantization tests.

    /tmp/refenv/bin/python bench/reference/make_quant_fixtures.py \
        crates/lathe-model/tests/reference/quant_blocks.json

For each type: two blocks of random bytes whose f16 scale fields are set to small
finite values, and the f32 values `gguf.quants.dequantize` gives for them.
"""

import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

# Byte offsets of f16 scale fields inside one block.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def main(out_path: str) -> None:
    rng = np.random.default_rng(1234)
    fixtures = []
    for ty, fields in F16_FIELDS.items():
        block_len, block_bytes = GGML_QUANT_SIZES[ty]
        raw = rng.integers(0, 256, size=(2, block_bytes), dtype=np.uint8)
        for b in range(2):
            for off in fields:
                raw[b, off:off + 2] = np.frombuffer(
                    np.float16(rng.uniform(0.001, 0.05)).tobytes(), dtype=np.uint8)
        values = dequantize(raw.reshape(-1), ty).reshape(-1)
        fixtures.append({
            "type": ty.name,
            "bytes": raw.reshape(-1).tolist(),
            "values": [float(v) for v in values],
        })
    with open(out_path, "w") as f:
        json.dump(fixtures, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
