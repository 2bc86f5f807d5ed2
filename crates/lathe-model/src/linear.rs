//! The linear layer of the backbones: `y = x·Wᵀ + b [+ s·dropout(x)·Aᵀ·Bᵀ]`.
//!
//! The base weight `W` is kept transposed as `[in, out]` (flex copies a transposed view
//! on every matmul). For inference it is split into column blocks, one per worker
//! thread: burn-flex threads a matmul only above about 7 M multiply-adds, so a decode
//! step (one row) would otherwise run every layer on one core. For training it is one
//! block, or packed (bf16/f16/int8/int4) and expanded inside each forward pass.
//!
//! LoRA adds `s·(dropout(x)·A)·B` with `A` `[in, r]` and `B` `[r, out]` (PEFT's
//! `lora_A.weight` and `lora_B.weight` transposed); the weight delta is never formed.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::fused::packed_matmul;
use crate::quant::{BaseDtype, PackedWeight};
use crate::train::{dropout_mask, TrainStep};

/// A linear layer.
#[derive(Module, Debug)]
pub struct Linear {
    /// Dense base weight in `[in, out_k]` column blocks; empty when packed.
    blocks: Vec<Param<Tensor<2>>>,
    /// Packed frozen base weight `[in, out]`.
    #[module(skip)]
    packed: Option<Arc<PackedWeight>>,
    bias: Option<Param<Tensor<1>>>,
    /// Low-rank adapter.
    pub(crate) lora: Option<Lora>,
    /// Identifies the layer in dropout streams.
    #[module(skip)]
    site: u64,
}

/// A LoRA adapter: `scale · (dropout(x)·A)·B`.
#[derive(Module, Debug)]
pub struct Lora {
    /// `[in, r]`.
    pub(crate) a: Param<Tensor<2>>,
    /// `[r, out]`.
    pub(crate) b: Param<Tensor<2>>,
    #[module(skip)]
    scale: f32,
    #[module(skip)]
    dropout: f32,
}

impl Linear {
    /// Builds an inference layer from a PyTorch-layout weight (`[out, in]`, row-major),
    /// split into as many blocks as rayon has threads.
    pub fn from_torch_layout(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Tensor<1>>,
        device: &Device,
    ) -> Self {
        let threads = rayon::current_num_threads().clamp(1, out.max(1));
        Self::dense(weight, out, inp, bias, threads, device)
    }

    /// Builds a training layer: one dense block for `F32`, else a packed frozen weight.
    pub fn for_training(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Tensor<1>>,
        dtype: BaseDtype,
        device: &Device,
    ) -> Self {
        if dtype == BaseDtype::F32 {
            return Self::dense(weight, out, inp, bias, 1, device);
        }
        let transposed = transpose(weight, out, inp);
        Self {
            blocks: Vec::new(),
            packed: Some(Arc::new(PackedWeight::pack(&transposed, inp, out, dtype))),
            bias: bias.map(Param::from_tensor),
            lora: None,
            site: 0,
        }
    }

    fn dense(
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Tensor<1>>,
        blocks: usize,
        device: &Device,
    ) -> Self {
        let rows_per_block = out.div_ceil(blocks);
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
            packed: None,
            bias: bias.map(Param::from_tensor),
            lora: None,
            site: 0,
        }
    }

    /// `[in, out]`.
    pub fn shape(&self) -> [usize; 2] {
        match &self.packed {
            Some(p) => p.shape(),
            None => {
                let [inp, _] = self.blocks[0].shape().dims();
                let out = self.blocks.iter().map(|b| b.shape().dims::<2>()[1]).sum();
                [inp, out]
            }
        }
    }

    /// Adds a LoRA adapter of rank `r`: `A` uniform in ±1/√in (PEFT's Kaiming init),
    /// `B` zero, so the layer starts unchanged.
    pub fn attach_lora(&mut self, r: usize, scale: f32, dropout: f32, seed: u64, device: &Device) {
        let [inp, out] = self.shape();
        let bound = 1.0 / (inp as f32).sqrt();
        let mut rng = StdRng::seed_from_u64(seed ^ self.site.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let a: Vec<f32> = (0..inp * r)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        self.lora = Some(Lora {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [inp, r]), device)),
            b: Param::from_tensor(Tensor::zeros([r, out], device)),
            scale,
            dropout,
        });
    }

    /// Sets the layer's identity in dropout streams.
    pub(crate) fn set_site(&mut self, site: u64) {
        self.site = site;
    }

    /// The trainable base weight (one dense block, as in training).
    pub(crate) fn weight_param(&mut self) -> Option<&mut Param<Tensor<2>>> {
        match self.blocks.as_mut_slice() {
            [single] => Some(single),
            _ => None,
        }
    }

    /// The dense weight `[in, out]` when it is one block.
    pub(crate) fn dense_weight(&self) -> Option<Tensor<2>> {
        match self.blocks.as_slice() {
            [single] => Some(single.val()),
            _ => None,
        }
    }

    /// The bias, if any.
    pub(crate) fn bias_param(&mut self) -> Option<&mut Param<Tensor<1>>> {
        self.bias.as_mut()
    }

    /// `[.., in]` → `[.., out]`; `train` adds adapter dropout.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, train: Option<&TrainStep>) -> Tensor<D> {
        let base = match (&self.packed, self.blocks.as_slice()) {
            (Some(packed), _) => packed_matmul(x.clone(), packed.clone()),
            (None, [single]) => linear(x.clone(), single.val(), None),
            // Autodiff graphs are built on one thread; plain tensors use every core.
            (None, blocks) if x.is_autodiff() => Tensor::cat(
                blocks
                    .iter()
                    .map(|w| linear(x.clone(), w.val(), None))
                    .collect(),
                D - 1,
            ),
            (None, blocks) => Tensor::cat(
                blocks
                    .par_iter()
                    .map(|w| linear(x.clone(), w.val(), None))
                    .collect(),
                D - 1,
            ),
        };
        let y = match &self.bias {
            Some(b) => base + b.val().unsqueeze(),
            None => base,
        };
        match &self.lora {
            Some(lora) => {
                let x = match train {
                    Some(step) if lora.dropout > 0.0 => {
                        let dims = x.dims();
                        let n = dims.iter().product();
                        let mask = dropout_mask(step, self.site, n, lora.dropout);
                        x * Tensor::from_data(TensorData::new(mask, dims), &y.device())
                    }
                    _ => x,
                };
                let low = linear(x, lora.a.val(), None);
                y + linear(low, lora.b.val(), None).mul_scalar(lora.scale)
            }
            None => y,
        }
    }
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major, in cache-sized tiles.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
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
