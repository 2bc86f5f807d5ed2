//! Causal attention on the host, forward and backward, with grouped key/value heads.
//!
//! Queries go in blocks of [`BLOCK`] rows; a block only meets the keys up to its last
//! row, so the masked half of the score matrix is never computed. Forward keeps the
//! row log-sum-exp; backward rebuilds each block's probabilities from it in one pass
//! (`P = exp(S − lse)`), FlashAttention-2 style, with a `[BLOCK, t]` scratch per task.
//! Products run on the `gemm` crate, one thread per task (tasks run in parallel).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::fast_math::{exp_shifted, max, sum};

/// Query rows per block.
const BLOCK: usize = 64;

/// Shapes: queries `[b, heads, t, d]`, keys and values `[b, kv_heads, t, d]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub b: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub t: usize,
    pub d: usize,
}

impl Dims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn head(&self) -> usize {
        self.t * self.d
    }

    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// The key/value head serving query head `p` (`p` counts batch × heads).
    fn kv_of(&self, p: usize) -> usize {
        let (batch, head) = (p / self.heads, p % self.heads);
        batch * self.kv_heads + head / self.group()
    }
}

/// `dst [m, n] (row stride dst_rs) (+)= lhs [m, k] · rhs [k, n]`, strides in elements.
///
/// # Safety
/// Every index the strides reach must lie inside the slices behind the pointers.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        beta,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// Query blocks: `(first row, rows)`; a block sees keys `0..first + rows`.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(BLOCK).map(move |q0| (q0, BLOCK.min(t - q0)))
}

/// For each score row of the block starting at query `q0`: `f(query, seen)` on the
/// keys that query may see; the later keys are set to 0.
fn causal_rows(s: &mut [f32], q0: usize, rows: usize, mut f: impl FnMut(usize, &mut [f32])) {
    let keys = q0 + rows;
    for (r, row) in s[..rows * keys].chunks_exact_mut(keys).enumerate() {
        let (seen, future) = row.split_at_mut(q0 + r + 1);
        f(q0 + r, seen);
        future.fill(0.0);
    }
}

/// `scores [rows, keys] = scale · q_block · k[0..keys]ᵀ`.
fn scores(q: &[f32], k: &[f32], d: usize, rows: usize, keys: usize, scale: f32, s: &mut [f32]) {
    assert!(q.len() >= rows * d && k.len() >= keys * d && s.len() >= rows * keys);
    // SAFETY: the assert bounds every row and column reached.
    unsafe {
        product(
            (rows, keys, d),
            s.as_mut_ptr(),
            keys,
            false,
            q.as_ptr(),
            (d, 1),
            k.as_ptr(),
            (1, d),
            scale,
        );
    }
}

/// Hides from query `i` the keys `j < i` that `hidden` (a batch row's `[t]`) marks:
/// their scores become `-inf` before the softmax.
fn hide(seen: &mut [f32], i: usize, hidden: Option<&[bool]>) {
    if let Some(hidden) = hidden {
        for (x, _) in seen[..i].iter_mut().zip(hidden).filter(|(_, h)| **h) {
            *x = f32::NEG_INFINITY;
        }
    }
}

/// Zeroes the probabilities of hidden keys (`exp` of a clamped `-inf` is tiny, not 0).
fn unhide(seen: &mut [f32], i: usize, hidden: Option<&[bool]>) {
    if let Some(hidden) = hidden {
        for (x, _) in seen[..i].iter_mut().zip(hidden).filter(|(_, h)| **h) {
            *x = 0.0;
        }
    }
}

/// Softmax of causal attention: `out [b, heads, t, d]` and the row log-sum-exp
/// `[b, heads, t]`. `hidden` (`[b·t]`) marks keys hidden from the queries after them.
pub(crate) fn forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    hidden: Option<&[bool]>,
    dims: Dims,
) -> (Vec<f32>, Vec<f32>) {
    let (t, d, head) = (dims.t, dims.d, dims.head());
    let mut out = vec![0f32; q.len()];
    let mut lse = vec![0f32; dims.b * dims.heads * t];
    out.par_chunks_mut(head)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .for_each(|(p, (out, lse))| {
            let q = &q[p * head..(p + 1) * head];
            let kv = dims.kv_of(p) * head;
            let (k, v) = (&k[kv..kv + head], &v[kv..kv + head]);
            let batch = p / dims.heads;
            let hidden = hidden.map(|h| &h[batch * t..(batch + 1) * t]);
            let mut s = vec![0f32; BLOCK * t];
            for (q0, rows) in blocks(t) {
                let keys = q0 + rows;
                scores(&q[q0 * d..], k, d, rows, keys, dims.scale(), &mut s);
                causal_rows(&mut s, q0, rows, |i, seen| {
                    hide(seen, i, hidden);
                    let max = max(seen);
                    exp_shifted(seen, max);
                    unhide(seen, i, hidden);
                    let sum = sum(seen);
                    let inv = 1.0 / sum;
                    seen.iter_mut().for_each(|x| *x *= inv);
                    lse[i] = max + sum.ln();
                });
                assert!(out.len() >= (q0 + rows) * d && v.len() >= keys * d);
                // SAFETY: bounded by the assert and by `s` holding `rows × keys`.
                unsafe {
                    product(
                        (rows, d, keys),
                        out[q0 * d..].as_mut_ptr(),
                        d,
                        false,
                        s.as_ptr(),
                        (keys, 1),
                        v.as_ptr(),
                        (d, 1),
                        1.0,
                    );
                }
            }
        });
    (out, lse)
}

/// Gradients `(dq, dk, dv)` of causal attention from the forward's `out` and `lse` and
/// the output gradient `dout`; `hidden` as in [`forward`].
pub(crate) fn backward(
    (q, k, v): (&[f32], &[f32], &[f32]),
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    hidden: Option<&[bool]>,
    dims: Dims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (t, d, head, group) = (dims.t, dims.d, dims.head(), dims.group());
    let scale = dims.scale();
    let mut dq = vec![0f32; q.len()];
    let mut dk = vec![0f32; k.len()];
    let mut dv = vec![0f32; v.len()];
    // One task per key/value head: it owns dk, dv and its group's dq rows.
    dq.par_chunks_mut(group * head)
        .zip(dk.par_chunks_mut(head).zip(dv.par_chunks_mut(head)))
        .enumerate()
        .for_each(|(kv, (dq, (dk, dv)))| {
            let (k, v) = (
                &k[kv * head..(kv + 1) * head],
                &v[kv * head..(kv + 1) * head],
            );
            let batch = kv / dims.kv_heads;
            let hidden = hidden.map(|h| &h[batch * t..(batch + 1) * t]);
            let mut s = vec![0f32; BLOCK * t];
            let mut dp = vec![0f32; BLOCK * t];
            for j in 0..group {
                let p = kv * group + j; // query head, counting batch × heads
                let at = p * head;
                let (q, o, dout) = (&q[at..at + head], &out[at..at + head], &dout[at..at + head]);
                let lse = &lse[p * t..(p + 1) * t];
                let dq = &mut dq[j * head..(j + 1) * head];
                // rowsum(dO ⊙ O) = rowsum(P ⊙ dP)
                let delta: Vec<f32> = o
                    .chunks_exact(d)
                    .zip(dout.chunks_exact(d))
                    .map(|(o, g)| o.iter().zip(g).map(|(a, b)| a * b).sum())
                    .collect();
                for (q0, rows) in blocks(t) {
                    let keys = q0 + rows;
                    scores(&q[q0 * d..], k, d, rows, keys, scale, &mut s);
                    causal_rows(&mut s, q0, rows, |i, seen| {
                        hide(seen, i, hidden);
                        exp_shifted(seen, lse[i]);
                        unhide(seen, i, hidden);
                    });
                    assert!(dv.len() >= keys * d && dout.len() >= (q0 + rows) * d);
                    // SAFETY (all four products): every operand is bounded by the
                    // asserts here and in `scores`; `s` and `dp` hold `rows × keys`.
                    unsafe {
                        // dV[0..keys] += Pᵀ · dO_block
                        product(
                            (keys, d, rows),
                            dv.as_mut_ptr(),
                            d,
                            true,
                            s.as_ptr(),
                            (1, keys),
                            dout[q0 * d..].as_ptr(),
                            (d, 1),
                            1.0,
                        );
                        // dP = dO_block · V[0..keys]ᵀ
                        product(
                            (rows, keys, d),
                            dp.as_mut_ptr(),
                            keys,
                            false,
                            dout[q0 * d..].as_ptr(),
                            (d, 1),
                            v.as_ptr(),
                            (1, d),
                            1.0,
                        );
                    }
                    // dS = P ⊙ (dP − delta) · scale, in place of P.
                    for r in 0..rows {
                        let delta = delta[q0 + r];
                        let (p, g) = (&mut s[r * keys..(r + 1) * keys], &dp[r * keys..]);
                        p.iter_mut()
                            .zip(g)
                            .for_each(|(p, g)| *p *= (g - delta) * scale);
                    }
                    assert!(dq.len() >= (q0 + rows) * d && dk.len() >= keys * d);
                    unsafe {
                        // dQ_block = dS · K[0..keys]
                        product(
                            (rows, d, keys),
                            dq[q0 * d..].as_mut_ptr(),
                            d,
                            false,
                            s.as_ptr(),
                            (keys, 1),
                            k.as_ptr(),
                            (d, 1),
                            1.0,
                        );
                        // dK[0..keys] += dSᵀ · Q_block
                        product(
                            (keys, d, rows),
                            dk.as_mut_ptr(),
                            d,
                            true,
                            s.as_ptr(),
                            (1, keys),
                            q[q0 * d..].as_ptr(),
                            (d, 1),
                            1.0,
                        );
                    }
                }
            }
        });
    (dq, dk, dv)
}
