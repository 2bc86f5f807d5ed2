//! The linear layer of the backbones: `y = x·Wᵀ + b [+ s·dropout(x)·Aᵀ·Bᵀ]`.
//!
//! The base weight `W` is kept transposed as `[in, out]`, the layout of burn's
//! `linear`. For inference it is split into column blocks, one per worker
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

/// A LoRA adapter: `scale · (dropout(x)·A)·B`, optionally weight-decomposed (DoRA).
#[derive(Module, Debug)]
pub struct Lora {
    /// `[in, r]`.
    pub(crate) a: Param<Tensor<2>>,
    /// `[r, out]`.
    pub(crate) b: Param<Tensor<2>>,
    /// DoRA's magnitude `m` `[out]` (PEFT's `lora_magnitude_vector`).
    pub(crate) magnitude: Option<Param<Tensor<1>>>,
    /// `‖W[:, j]‖²` of the frozen base weight, for DoRA's norms.
    #[module(skip)]
    base_norms_sq: Vec<f32>,
    #[module(skip)]
    scale: f32,
    #[module(skip)]
    dropout: f32,
}

/// How an adapter is shaped (`training.lora_*` settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraShape {
    /// Rank.
    pub r: usize,
    /// `alpha / r` or `alpha / √r`.
    pub scale: f32,
    /// Dropout on the adapter's input while training.
    pub dropout: f32,
    /// Weight-decomposed LoRA: `m ⊙ (W + s·A·B) / ‖W + s·A·B‖` per output.
    pub dora: bool,
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

    /// Adds a LoRA adapter: `A` uniform in ±1/√in (PEFT's Kaiming init), `B` zero and,
    /// for DoRA, `m = ‖W[:, j]‖`, so the layer starts unchanged.
    pub fn attach_lora(&mut self, shape: LoraShape, seed: u64, device: &Device) {
        let [inp, out] = self.shape();
        let r = shape.r;
        let bound = 1.0 / (inp as f32).sqrt();
        let mut rng = StdRng::seed_from_u64(seed ^ self.site.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let a: Vec<f32> = (0..inp * r)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let base_norms_sq = if shape.dora {
            let w = self.base_weight(device).detach();
            let norms = w.clone().mul(w).sum_dim(0).reshape([out]);
            norms.into_data().try_to_vec::<f32>().expect("f32")
        } else {
            Vec::new()
        };
        let magnitude = shape.dora.then(|| {
            let m: Vec<f32> = base_norms_sq.iter().map(|n| n.sqrt()).collect();
            Param::from_tensor(Tensor::from_data(TensorData::new(m, [out]), device))
        });
        self.lora = Some(Lora {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [inp, r]), device)),
            b: Param::from_tensor(Tensor::zeros([r, out], device)),
            magnitude,
            base_norms_sq,
            scale: shape.scale,
            dropout: shape.dropout,
        });
    }

    /// The base weight `[in, out]` as one dense tensor.
    fn base_weight(&self, device: &Device) -> Tensor<2> {
        match &self.packed {
            Some(p) => Tensor::from_data(TensorData::new(p.unpack(), p.shape()), device),
            None => Tensor::cat(self.blocks.iter().map(|w| w.val()).collect(), 1),
        }
    }

    /// The weight in PyTorch layout `[out, in]` with the adapter merged in:
    /// `W + s·(A·B)ᵀ`, or for DoRA `m ⊙ (W + s·A·B) / ‖W + s·A·B‖` per output.
    pub fn merged_torch_weight(&self) -> Vec<f32> {
        let device = Device::flex();
        let host = |t: Tensor<2>| -> Vec<f32> {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        };
        let [inp, out] = self.shape();
        let base = Tensor::<2>::from_data(
            TensorData::new(host(self.base_weight(&device)), [inp, out]),
            &device,
        );
        let merged = match &self.lora {
            None => base,
            Some(lora) => {
                let a = Tensor::<2>::from_data(lora.a.val().to_data(), &device);
                let b = Tensor::<2>::from_data(lora.b.val().to_data(), &device);
                let updated = base + a.matmul(b).mul_scalar(lora.scale); // [in, out]
                match &lora.magnitude {
                    None => updated,
                    Some(m) => {
                        let m = Tensor::<1>::from_data(m.val().to_data(), &device);
                        let norm = updated.clone().powi_scalar(2).sum_dim(0).sqrt(); // [1, out]
                        updated * (m.unsqueeze::<2>() / norm)
                    }
                }
            }
        };
        transpose(&host(merged), inp, out)
    }

    /// The bias values, if the layer has one.
    pub fn bias_values(&self) -> Option<Vec<f32>> {
        self.bias.as_ref().map(|b| {
            b.val()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        })
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
        let base = self.base_product(x.clone());
        let y = match &self.lora {
            Some(lora) => {
                let dropped = match train {
                    Some(step) if lora.dropout > 0.0 => {
                        let dims = x.dims();
                        let n = dims.iter().product();
                        let mask = dropout_mask(step, self.site, n, lora.dropout);
                        Some(
                            x.clone() * Tensor::from_data(TensorData::new(mask, dims), &x.device()),
                        )
                    }
                    _ => None,
                };
                let device = x.device();
                // The scale goes on the rank-r intermediate, the smallest tensor.
                let low = linear(dropped.clone().unwrap_or(x), lora.a.val(), None);
                let update = linear(low.mul_scalar(lora.scale), lora.b.val(), None);
                match &lora.magnitude {
                    None => base + update,
                    Some(m) => {
                        // PEFT's DoRA: `(m/n − 1)·x'W + (m/n)·update` with the norm `n`
                        // held constant and `x'` the adapter's (dropped-out) input.
                        let factor = (m.val() / self.dora_norms(lora, &device)).unsqueeze::<D>();
                        let adapter_base = match dropped {
                            Some(x) => self.base_product(x),
                            None => base.clone(),
                        };
                        base + factor.clone().sub_scalar(1.0) * adapter_base + factor * update
                    }
                }
            }
            None => base,
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze(),
            None => y,
        }
    }

    /// `x · W` without bias or adapter.
    fn base_product<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match (&self.packed, self.blocks.as_slice()) {
            (Some(packed), _) => packed_matmul(x, packed.clone()),
            (None, [single]) => linear(x, single.val(), None),
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
        }
    }

    /// DoRA's `‖W[:, j] + s·A·B[:, j]‖` `[out]`, without forming `A·B`:
    /// `‖w‖² + 2s·(AᵀW)ⱼ·bⱼ + s²·bⱼᵀ(AᵀA)bⱼ`. A constant for autodiff.
    fn dora_norms(&self, lora: &Lora, device: &Device) -> Tensor<1> {
        let a = lora.a.val().detach(); // [in, r]
        let b = lora.b.val().detach(); // [r, out]
        let out = lora.base_norms_sq.len();
        let at = a.clone().transpose(); // [r, in]
        let cross = (self.base_product(at.clone()).detach() * b.clone()).sum_dim(0); // [1, out]
        let quad = (at.matmul(a).matmul(b.clone()) * b).sum_dim(0); // [1, out]
        let base = Tensor::<2>::from_data(
            TensorData::new(lora.base_norms_sq.clone(), [1, out]),
            device,
        );
        let s = lora.scale;
        (base + cross.mul_scalar(2.0 * s) + quad.mul_scalar(s * s))
            .sqrt()
            .reshape([out])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::autodiff(Device::flex())
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn close(what: &str, got: &[f32], want: &[f32]) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    /// DoRA against PEFT's definition written out with the weight delta formed:
    /// `y = x·(W + s·A·B) ⊙ m / ‖W + s·A·B‖` (norm held constant), on dense and
    /// packed base weights; values and the gradients of `A`, `B` and `m`.
    #[test]
    fn dora_matches_the_formed_weight() {
        let (inp, out, r, rows) = (64, 6, 2, 3);
        let torch_weight = random(out * inp, 1); // [out, in]
        for dtype in [BaseDtype::F32, BaseDtype::Int8] {
            let dev = device();
            let mut layer = Linear::for_training(&torch_weight, out, inp, None, dtype, &dev);
            let shape = LoraShape {
                r,
                scale: 2.0,
                dropout: 0.0,
                dora: true,
            };
            layer.attach_lora(shape, 3, &dev);
            let w = layer.base_weight(&dev); // [in, out], as the layer sees it
            let x =
                Tensor::<2>::from_data(TensorData::new(random(rows * inp, 4), [rows, inp]), &dev);
            let start = values(layer.forward(x.clone(), None));
            close(
                "initial output",
                &start,
                &values(x.clone().matmul(w.clone())),
            );

            let lora = layer.lora.as_mut().expect("adapter");
            lora.b = Param::from_tensor(
                Tensor::from_data(TensorData::new(random(r * out, 5), [r, out]), &dev)
                    .mul_scalar(0.1),
            );
            lora.magnitude = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(random(out, 6), [out]),
                &dev,
            )));
            let lora = layer.lora.as_ref().expect("adapter");
            let (a, b, m) = (
                lora.a.val(),
                lora.b.val(),
                lora.magnitude.as_ref().expect("DoRA").val(),
            );
            let y = layer.forward(x.clone(), None);
            let grads = y.clone().sum().backward();
            let got: Vec<Vec<f32>> = [a.grad(&grads), b.grad(&grads)]
                .into_iter()
                .map(|g| values(g.expect("gradient")))
                .chain([values(m.grad(&grads).expect("gradient"))])
                .collect();

            let (a2, b2, m2) = (
                Tensor::<2>::from_data(a.to_data(), &dev).require_grad(),
                Tensor::<2>::from_data(b.to_data(), &dev).require_grad(),
                Tensor::<1>::from_data(m.to_data(), &dev).require_grad(),
            );
            let merged = w.detach() + a2.clone().matmul(b2.clone()).mul_scalar(2.0);
            let norm = merged.clone().powi_scalar(2).sum_dim(0).sqrt().detach(); // [1, out]
            let want = x.matmul(merged) * (m2.clone().unsqueeze::<2>() / norm);
            close("output", &values(y), &values(want.clone()));
            let grads = want.sum().backward();
            close("dA", &got[0], &values(a2.grad(&grads).expect("gradient")));
            close("dB", &got[1], &values(b2.grad(&grads).expect("gradient")));
            close("dm", &got[2], &values(m2.grad(&grads).expect("gradient")));
        }
    }
}
