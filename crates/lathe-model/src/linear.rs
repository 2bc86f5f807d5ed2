//! The linear layer of the backbones: `y = x·Wᵀ + b` with `W` kept transposed as
//! `[in, out]` in column blocks, one per worker thread.
//!
//! Why blocks: burn-flex hands a matmul to the `gemm` crate with threading only above
//! about 7 M multiply-adds, so a decode step (one row) runs every layer on one core.
//! Multiplying the blocks in parallel and concatenating uses all cores; for a long
//! prompt each block's matmul is large enough to be threaded by `gemm` itself.
//! Why transposed: flex copies a transposed view to contiguous memory on each matmul.

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// A linear layer with its weight in `[in, out_k]` column blocks.
#[derive(Module, Debug)]
pub struct Linear {
    blocks: Vec<Param<Tensor<2>>>,
    bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// Builds the layer from a PyTorch-layout weight (`[out, in]`, row-major values),
    /// split into as many blocks as rayon has threads.
    pub fn from_torch_layout(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Tensor<1>>,
        device: &Device,
    ) -> Self {
        let threads = rayon::current_num_threads().clamp(1, out.max(1));
        let rows_per_block = out.div_ceil(threads);
        let blocks = weight
            .chunks(rows_per_block * inp)
            .map(|rows| {
                let n = rows.len() / inp;
                let transposed = transpose(rows, n, inp);
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(transposed, [inp, n]),
                    device,
                ))
            })
            .collect();
        Self {
            blocks,
            bias: bias.map(Param::from_tensor),
        }
    }

    /// `[.., in]` → `[.., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let y = match self.blocks.as_slice() {
            [single] => linear(x, single.val(), None),
            blocks => {
                let parts: Vec<Tensor<D>> = blocks
                    .par_iter()
                    .map(|w| linear(x.clone(), w.val(), None))
                    .collect();
                Tensor::cat(parts, D - 1)
            }
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze(),
            None => y,
        }
    }
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major, in cache-sized tiles.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0f32; values.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = values[r * cols + c];
                }
            }
        }
    }
    out
}
