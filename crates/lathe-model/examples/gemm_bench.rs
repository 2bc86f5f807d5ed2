//! GFLOP/s of the `gemm` crate (the matrix product under burn-flex) on the products of
//! a SmolLM2-135M training step, batch 2 × 512, weights read transposed as in the
//! linear layers, one JSON line per shape. `bench/gemm.sh` feeds the lines to
//! `bench/gemm_torch.py`, which times PyTorch's `torch.mm` on the same shapes.
//!
//! `cargo run --release -p lathe-model --example gemm_bench [THREADS]` (default 2).

use std::time::Instant;

/// `(name, m, k, n)`: projections, the tied head's chunk and its input gradient, and
/// a weight gradient.
const SHAPES: [(&str, usize, usize, usize); 7] = [
    ("q/o_proj", 1024, 576, 576),
    ("k/v_proj", 1024, 576, 192),
    ("gate/up_proj", 1024, 576, 1536),
    ("down_proj", 1024, 1536, 576),
    ("head chunk", 1024, 576, 12288),
    ("head input grad", 1024, 12288, 576),
    ("weight grad", 576, 1024, 1536),
];

/// The fastest of seven runs after one warm-up, in seconds.
fn best_seconds(mut run: impl FnMut()) -> f64 {
    run();
    (0..7)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|t| t.parse().expect("THREADS is a number"))
        .unwrap_or(2);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    for (name, m, k, n) in SHAPES {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        // The weight as PyTorch stores it, `[n, k]`.
        let w: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
        let mut y = vec![0f32; m * n];
        let seconds = best_seconds(|| {
            // SAFETY: `x` is `[m, k]` and `w` `[n, k]`, both row-major, and `y` holds
            // `[m, n]`; the strides below stay inside them.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    y.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        });
        let gflops = 2.0 * (m * k * n) as f64 / seconds / 1e9;
        println!(
            "{{\"shape\": \"{name}\", \"m\": {m}, \"k\": {k}, \"n\": {n}, \"gemm_crate_gflops\": {gflops:.1}}}"
        );
    }
}
