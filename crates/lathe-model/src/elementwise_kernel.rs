//! RMSNorm and the SwiGLU gate on the host, forward and backward, each in one pass
//! over its inputs (flex runs every step of them as its own pass and buffer: the
//! SwiGLU backward alone is nine). Work is split into fixed chunks across rayon's
//! threads; partial sums are added in chunk order, so results do not depend on how
//! the threads were scheduled (resume stays exact).

use rayon::prelude::*;

use crate::fast_math::{exp, sum};

/// Values per parallel task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `1 / (1 + e⁻ˣ)` with the vectorizable `exp`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `silu(gate) ⊙ up`.
pub(crate) fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; gate.len()];
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| {
            for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                *o = g * sigmoid(g) * u;
            }
        });
    out
}

/// `(dgate, dup)` of [`swiglu`] for the output gradient `dy`, with `s = sigmoid(gate)`:
/// `dup = dy·gate·s`, `dgate = dy·up·s·(1 + gate·(1 − s))`.
pub(crate) fn swiglu_backward(gate: &[f32], up: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dgate = vec![0f32; gate.len()];
    let mut dup = vec![0f32; gate.len()];
    dgate
        .par_chunks_mut(CHUNK)
        .zip(dup.par_chunks_mut(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(((dgate, dup), (gate, up)), dy)| {
            for i in 0..gate.len() {
                let (g, s) = (gate[i], sigmoid(gate[i]));
                dup[i] = dy[i] * g * s;
                dgate[i] = dy[i] * up[i] * s * (1.0 + g * (1.0 - s));
            }
        });
    (dgate, dup)
}

/// Rows of width `d` per parallel task.
fn rows_per_task(d: usize) -> usize {
    (CHUNK / d).max(1)
}

/// `1 / √(mean(row²) + eps)`.
fn inverse_rms(row: &[f32], scratch: &mut [f32], eps: f64) -> f32 {
    for (s, x) in scratch.iter_mut().zip(row) {
        *s = x * x;
    }
    let mean = sum(&scratch[..row.len()]) / row.len() as f32;
    1.0 / (mean + eps as f32).sqrt()
}

/// RMSNorm of rows `x [n, d]`: `x / √(mean(x²) + eps) ⊙ gamma`.
pub(crate) fn rms_norm(x: &[f32], gamma: &[f32], eps: f64) -> Vec<f32> {
    let d = gamma.len();
    let mut out = vec![0f32; x.len()];
    let task = rows_per_task(d) * d;
    out.par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .for_each(|(out, x)| {
            let mut scratch = vec![0f32; d];
            for (out, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let r = inverse_rms(row, &mut scratch, eps);
                for ((o, x), g) in out.iter_mut().zip(row).zip(gamma) {
                    *o = x * r * g;
                }
            }
        });
    out
}

/// `(dx, dgamma)` of [`rms_norm`] for the output gradient `dy`. With `r = 1/rms`,
/// `x̂ = x·r` and `g = dy ⊙ gamma`: `dx = r·(g − x̂·mean(g ⊙ x̂))`,
/// `dgamma = Σ dy ⊙ x̂` over the rows.
pub(crate) fn rms_norm_backward(
    x: &[f32],
    gamma: &[f32],
    eps: f64,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0f32; x.len()];
    let task = rows_per_task(d) * d;
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(task)
        .zip(x.par_chunks(task).zip(dy.par_chunks(task)))
        .map(|(dx, (x, dy))| {
            let mut dgamma = vec![0f32; d];
            let mut scratch = vec![0f32; d];
            for ((dx, x), dy) in dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(dy.chunks_exact(d))
            {
                let r = inverse_rms(x, &mut scratch, eps);
                // scratch ← g ⊙ x̂, for the mean.
                for j in 0..d {
                    let normed = x[j] * r;
                    dgamma[j] += dy[j] * normed;
                    scratch[j] = dy[j] * gamma[j] * normed;
                }
                let mean = sum(&scratch) / d as f32;
                for j in 0..d {
                    dx[j] = r * (dy[j] * gamma[j] - x[j] * r * mean);
                }
            }
            dgamma
        })
        .collect();
    let mut dgamma = vec![0f32; d];
    for partial in partials {
        dgamma.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
    }
    (dx, dgamma)
}
