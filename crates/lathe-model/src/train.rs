//! Training on top of the backbone: which weights train (LoRA adapters, unfrozen base
//! weights), the forward and backward pass of a batch, and the cross-entropy over the
//! vocabulary computed in chunks with its own gradient, so that the `b × t × v` logits
//! are never held at once and only answer positions are projected.
//!
//! Randomness (dropout, NEFTune) comes from a counter-based hash of
//! `(seed, step, site, index)`: it has no state, so a resumed run draws exactly what
//! an uninterrupted one would.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rayon::prelude::*;

use crate::engine::Engine;
use crate::error::{ModelError, Result};
use crate::fast_math::{exp_shifted_sum, max};
use crate::linear::{Linear, LoraShape};
use crate::llama::{KvCache, StepInputs, PROJECTIONS};

/// Training-time randomness of one optimizer micro-step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainStep {
    /// The run's seed.
    pub seed: u64,
    /// Micro-step counter (distinct per forward pass).
    pub step: u64,
    /// `intermediate_dropout` on each block's residual branches.
    pub hidden_dropout: f32,
    /// NEFTune noise scale (0: off).
    pub neftune_alpha: f32,
}

/// SplitMix64 finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` uniform values in [0, 1) for `(step, site)`.
fn uniforms(step: &TrainStep, site: u64, n: usize, map: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let base = mix(mix(step.seed ^ mix(step.step)) ^ site);
    let mut out = vec![0f32; n];
    out.par_chunks_mut(1 << 14)
        .enumerate()
        .for_each(|(c, chunk)| {
            let start = (c << 14) as u64;
            for (i, v) in chunk.iter_mut().enumerate() {
                let u = (mix(base ^ (start + i as u64)) >> 40) as f32 / (1u64 << 24) as f32;
                *v = map(u);
            }
        });
    out
}

/// A dropout mask with keep-scaling: 0 with probability `p`, else `1 / (1 - p)`.
pub fn dropout_mask(step: &TrainStep, site: u64, n: usize, p: f32) -> Vec<f32> {
    let keep = 1.0 / (1.0 - p);
    uniforms(step, site, n, |u| if u < p { 0.0 } else { keep })
}

/// Uniform noise in `[-magnitude, magnitude)`.
pub fn uniform_noise(step: &TrainStep, site: u64, n: usize, magnitude: f32) -> Vec<f32> {
    uniforms(step, site, n, |u| (2.0 * u - 1.0) * magnitude)
}

/// LoRA settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPlan {
    /// Rank.
    pub r: usize,
    /// Scale numerator.
    pub alpha: f32,
    /// Scale `alpha / √r` instead of `alpha / r`.
    pub rslora: bool,
    /// Dropout on the adapters' input.
    pub dropout: f32,
    /// Projection names that get adapters (empty: all).
    pub targets: Vec<String>,
    /// Seed of the `A` initialisation.
    pub seed: u64,
    /// Weight-decomposed LoRA (DoRA): also learn each output's magnitude.
    pub dora: bool,
}

impl LoraPlan {
    /// The adapter scale.
    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha / self.r as f32
        }
    }
}

/// Where a trainable tensor lives in the model.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    LoraA(usize, &'static str),
    LoraB(usize, &'static str),
    Magnitude(usize, &'static str),
    Weight(usize, &'static str),
    Bias(usize, &'static str),
    Norm(Option<usize>, usize),
    Embed,
    Head,
}

/// A trainable tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Hugging Face name (PEFT name for adapters, without the `base_model.model.` prefix).
    pub name: String,
    /// Shape in Lathe's layout.
    pub shape: Vec<usize>,
    /// Whether the Hugging Face tensor is the transpose of Lathe's (linear weights).
    pub transposed: bool,
    /// Biases and norm weights get no weight decay.
    pub no_decay: bool,
}

/// A batch: `b` rows of `t` token ids, right-padded, and per-position loss weights
/// (`weights[j]` weighs the prediction of `ids[j]` from the positions before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Rows.
    pub b: usize,
    /// Positions per row.
    pub t: usize,
    /// `[b·t]` token ids.
    pub ids: Vec<u32>,
    /// `[b·t]` loss weights (0: no loss).
    pub weights: Vec<f32>,
    /// `[b·t]` true where a token is hidden from the positions after it (token
    /// masking); `None`: nothing hidden.
    pub hidden: Option<Vec<bool>>,
}

/// What a forward pass measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLoss {
    /// `Σ weight · nll` over the batch.
    pub loss: f64,
    /// Per-position negative log-likelihood (0 where the weight is 0), `[b·t]`.
    pub nll: Vec<f32>,
}

/// A backbone prepared for training.
pub struct TrainableModel {
    engine: Engine,
    slots: Vec<Slot>,
    params: Vec<ParamInfo>,
    tied: bool,
    /// Per-layer gradient checkpointing: keep only each decoder layer's input and
    /// recompute the layer's activations in backward, one layer at a time.
    checkpointing: bool,
}

/// Largest logits chunk held at once (values): just under 32 MiB, glibc's largest mmap
/// threshold (set by [`crate::allocator::reuse_freed_buffers`]), so the chunk buffers
/// are reused from the heap instead of being mapped, faulted in and unmapped every
/// time. That is 170 rows of a 49k vocabulary: the head's products need that many to
/// run near full speed (at 85 rows the logits product ran at a third of it).
const LOGITS_CHUNK: usize = (1 << 23) - (1 << 12);
/// The same when the head trains: each chunk then makes a head-sized gradient to add
/// up, so fewer, larger chunks cost less.
const LOGITS_CHUNK_HEAD_GRAD: usize = 1 << 24;

impl TrainableModel {
    /// Wraps an engine loaded with [`crate::loader::load_for_training`]; every weight
    /// starts frozen.
    pub fn new(mut engine: Engine) -> Self {
        let tied = engine.config().tie_word_embeddings;
        engine.llama = engine.llama.clone().no_grad();
        engine.llama.assign_sites();
        Self {
            engine,
            slots: Vec::new(),
            params: Vec::new(),
            tied,
            checkpointing: false,
        }
    }

    /// Turns per-layer gradient checkpointing on or off (`gradient_checkpointing`):
    /// memory for activations drops to one layer's, for a second forward pass per layer.
    pub fn set_gradient_checkpointing(&mut self, on: bool) {
        self.checkpointing = on;
    }

    /// The engine (tokenizer, chat template, configuration).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Adds `texts` the tokenizer lacks as new tokens and grows the embeddings and
    /// head to match (H2O's `add_prompt_answer_tokens`); call it before choosing what
    /// trains. Returns how many tokens were new.
    pub fn add_tokens(&mut self, texts: &[&str]) -> usize {
        let added = self.engine.tokenizer.add_tokens(texts);
        let vocab = self.engine.tokenizer.vocab_size();
        self.engine.llama.grow_vocab(vocab);
        added
    }

    /// Trainable tensors, in a fixed order.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// Adds LoRA adapters to the target projections of every layer.
    pub fn add_lora(&mut self, plan: &LoraPlan) -> Result<()> {
        let targets: Vec<&'static str> = if plan.targets.is_empty() {
            PROJECTIONS.to_vec()
        } else {
            plan.targets
                .iter()
                .map(|t| {
                    PROJECTIONS.iter().copied().find(|p| p == t).ok_or_else(|| {
                        ModelError::Training(format!(
                            "training.lora_target_modules: no layer `{t}`; the model has {}",
                            PROJECTIONS.join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?
        };
        let device = self.engine.device.clone();
        for i in 0..self.engine.llama.layer_count() {
            for name in &targets {
                let linear = self
                    .engine
                    .llama
                    .projection_mut(i, name)
                    .expect("known name");
                let shape = LoraShape {
                    r: plan.r,
                    scale: plan.scale(),
                    dropout: plan.dropout,
                    dora: plan.dora,
                };
                linear.attach_lora(shape, plan.seed, &device);
                let [inp, out] = linear.shape();
                let prefix = format!("model.layers.{i}.{}.{name}", block_of(name));
                self.push(
                    Slot::LoraA(i, name),
                    format!("{prefix}.lora_A.weight"),
                    vec![inp, plan.r],
                    true,
                    false,
                );
                self.push(
                    Slot::LoraB(i, name),
                    format!("{prefix}.lora_B.weight"),
                    vec![plan.r, out],
                    true,
                    false,
                );
                if plan.dora {
                    self.push(
                        Slot::Magnitude(i, name),
                        format!("{prefix}.lora_magnitude_vector"),
                        vec![out],
                        false,
                        false,
                    );
                }
            }
        }
        Ok(())
    }

    /// Makes base weights trainable: every tensor whose name contains one of
    /// `patterns` (`""` matches all), except those containing one of `frozen`
    /// (H2O's `freeze_layers`: `embed`, `layer`, `head` or any other text).
    pub fn unfreeze(&mut self, patterns: &[&str], frozen: &[String]) -> Result<()> {
        let mut candidates: Vec<(Slot, String, bool)> =
            vec![(Slot::Embed, "model.embed_tokens.weight".into(), false)];
        let llama = &mut self.engine.llama;
        for i in 0..llama.layer_count() {
            let p = format!("model.layers.{i}");
            candidates.push((
                Slot::Norm(Some(i), 0),
                format!("{p}.input_layernorm.weight"),
                true,
            ));
            for name in PROJECTIONS {
                let linear = llama.projection_mut(i, name).expect("known name");
                if linear.weight_param().is_none() {
                    return Err(ModelError::Training(
                        "training base weights needs architecture.backbone_dtype float32".into(),
                    ));
                }
                let prefix = format!("{p}.{}.{name}", block_of(name));
                candidates.push((Slot::Weight(i, name), format!("{prefix}.weight"), false));
                if linear.bias_param().is_some() {
                    candidates.push((Slot::Bias(i, name), format!("{prefix}.bias"), true));
                }
            }
            candidates.push((
                Slot::Norm(Some(i), 1),
                format!("{p}.post_attention_layernorm.weight"),
                true,
            ));
        }
        candidates.push((Slot::Norm(None, 0), "model.norm.weight".into(), true));
        if !self.tied {
            candidates.push((Slot::Head, "lm_head.weight".into(), false));
        }
        for (slot, name, no_decay) in candidates {
            let wanted = patterns.iter().any(|p| name.contains(p))
                && !frozen.iter().any(|f| name.contains(f.as_str()));
            if !wanted || self.slots.contains(&slot) {
                continue;
            }
            let mut param = self.param_mut(&slot);
            let shape = param.shape();
            param.set_trainable(true);
            let transposed = matches!(slot, Slot::Weight(..) | Slot::Head);
            self.push(slot, name, shape, transposed, no_decay);
        }
        Ok(())
    }

    fn push(
        &mut self,
        slot: Slot,
        name: String,
        shape: Vec<usize>,
        transposed: bool,
        no_decay: bool,
    ) {
        self.slots.push(slot);
        self.params.push(ParamInfo {
            name,
            shape,
            transposed,
            no_decay,
        });
    }

    fn param_mut(&mut self, slot: &Slot) -> ParamMut<'_> {
        let llama = &mut self.engine.llama;
        match *slot {
            Slot::LoraA(i, n) => ParamMut::D2(&mut lora_of(llama.projection_mut(i, n)).a),
            Slot::LoraB(i, n) => ParamMut::D2(&mut lora_of(llama.projection_mut(i, n)).b),
            Slot::Magnitude(i, n) => ParamMut::D1(
                lora_of(llama.projection_mut(i, n))
                    .magnitude
                    .as_mut()
                    .expect("DoRA adapter"),
            ),
            Slot::Weight(i, n) => ParamMut::D2(
                llama
                    .projection_mut(i, n)
                    .and_then(Linear::weight_param)
                    .expect("dense"),
            ),
            Slot::Bias(i, n) => ParamMut::D1(
                llama
                    .projection_mut(i, n)
                    .and_then(Linear::bias_param)
                    .expect("bias"),
            ),
            Slot::Norm(layer, which) => ParamMut::D1(llama.norm_mut(layer, which)),
            Slot::Embed => ParamMut::D2(llama.embed_mut()),
            Slot::Head => ParamMut::D2(llama.head_mut().weight_param().expect("dense head")),
        }
    }

    /// Current values of the trainable tensors (Lathe's layout).
    pub fn values(&mut self) -> Vec<Vec<f32>> {
        let slots = self.slots.clone();
        slots.iter().map(|s| self.param_mut(s).values()).collect()
    }

    /// Replaces the trainable tensors' values (Lathe's layout, in [`Self::params`] order).
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        let device = self.engine.device.clone();
        let slots = self.slots.clone();
        for (slot, v) in slots.iter().zip(values) {
            self.param_mut(slot).set(v.clone(), &device);
        }
        if self.tied {
            if let Some(i) = slots.iter().position(|s| *s == Slot::Embed) {
                self.copy_embeddings_to_head(&values[i]);
            }
        }
    }

    /// A tied head is a transposed copy of the embeddings `[v, d]`.
    fn copy_embeddings_to_head(&mut self, embed: &[f32]) {
        let device = self.engine.device.clone();
        let [v, d] = [
            self.engine.config().vocab_size,
            self.engine.config().hidden_size,
        ];
        let head = crate::linear::transpose(embed, v, d);
        let param = self
            .engine
            .llama
            .head_mut()
            .weight_param()
            .expect("dense head");
        *param = Param::from_tensor(Tensor::from_data(TensorData::new(head, [d, v]), &device))
            .set_require_grad(false);
    }

    /// Forward and backward pass of one batch: the loss and the gradient of every
    /// trainable tensor (in [`Self::params`] order).
    pub fn train_batch(&mut self, batch: &Batch, step: &TrainStep) -> (BatchLoss, Vec<Vec<f32>>) {
        let mut grads_by_slot = vec![None; self.slots.len()];
        let out = if self.checkpointing {
            self.checkpointed_pass(batch, step, &mut grads_by_slot)
        } else {
            let device = self.engine.device.clone();
            let hidden = self.hidden(batch, Some(*step), &device);
            let out = self.training_head_loss(&hidden, batch);
            if hidden.is_tracked() {
                let grads = backward_from(hidden, &out.dh);
                self.collect_grads(&grads, &mut grads_by_slot);
            }
            out
        };
        if let Some(head_grad) = out.head_grad {
            // `[d, v]`: the head's own layout; a tied head adds to the embeddings `[v, d]`.
            let (slot, grad) = if self.tied {
                let config = self.engine.config();
                let [v, d] = [config.vocab_size, config.hidden_size];
                (Slot::Embed, crate::linear::transpose(&head_grad, d, v))
            } else {
                (Slot::Head, head_grad)
            };
            if let Some(k) = self.slots.iter().position(|s| *s == slot) {
                accumulate(&mut grads_by_slot[k], grad);
            }
        }
        let grads = grads_by_slot
            .into_iter()
            .zip(&self.params)
            .map(|(g, p)| g.unwrap_or_else(|| vec![0.0; p.shape.iter().product()]))
            .collect();
        (out.loss, grads)
    }

    /// The forward and backward pass with per-layer gradient checkpointing. A first,
    /// untracked pass keeps each layer's input `[b, t, d]`; backward then reruns one
    /// layer at a time under autodiff, from the last down to the lowest that anything
    /// below or in it trains, and hands the input's gradient to the layer before.
    fn checkpointed_pass(
        &mut self,
        batch: &Batch,
        step: &TrainStep,
        grads_by_slot: &mut [Option<Vec<f32>>],
    ) -> HeadOutput {
        let device = self.engine.device.clone();
        let llama = &self.engine.llama;
        let (ids, tracked) = step_inputs(llama, batch, Some(*step), &device);
        let untracked = StepInputs {
            cos: tracked.cos.clone().inner(),
            sin: tracked.sin.clone().inner(),
            mask: None,
            hidden: tracked.hidden.clone(),
            train: tracked.train,
        };
        let embedded = llama.embed(ids, &tracked);
        let layers = llama.layer_count();
        let mut inputs = Vec::with_capacity(layers);
        let mut x = embedded.clone().inner();
        for i in 0..layers {
            inputs.push(x.clone());
            x = llama.layer_forward(i, x, &untracked, true);
        }
        let last = Tensor::from_inner(x).require_grad();
        let hidden = llama.final_norm(last.clone());
        let out = self.training_head_loss(&hidden, batch);
        let lowest = self.lowest_trained_layer();
        let norm_trains = self.slots.iter().any(|s| matches!(s, Slot::Norm(None, _)));
        if lowest == layers && !norm_trains {
            return out;
        }
        let grads = backward_from(hidden, &out.dh);
        let mut dx = last
            .grad(&grads)
            .expect("gradient of the last layer's output");
        self.collect_grads(&grads, grads_by_slot);
        for (i, input) in inputs.into_iter().enumerate().skip(lowest).rev() {
            let input = Tensor::from_inner(input).require_grad();
            let llama = &self.engine.llama;
            let y = llama.layer_forward(i, input.clone(), &tracked, false);
            let grads = (y * Tensor::from_inner(dx)).sum().backward();
            dx = input.grad(&grads).expect("gradient of a layer's input");
            self.collect_grads(&grads, grads_by_slot);
        }
        if embedded.is_tracked() {
            let grads = (embedded * Tensor::from_inner(dx)).sum().backward();
            self.collect_grads(&grads, grads_by_slot);
        }
        out
    }

    /// The loss of the final hidden states `[b, t, d]` with its gradient (and the
    /// head's when the head trains).
    fn training_head_loss(&self, hidden: &Tensor<3>, batch: &Batch) -> HeadOutput {
        let head_trains = self.slots.iter().any(|s| matches!(s, Slot::Head))
            || (self.tied && self.slots.contains(&Slot::Embed));
        let hidden = hidden.clone().inner();
        head_loss(
            hidden,
            &self.engine.llama.head_by_token(),
            batch,
            true,
            head_trains,
        )
    }

    /// The lowest decoder layer backward has to rerun: the lowest holding a trained
    /// tensor (0 when the embeddings train); the layer count when no layer does.
    fn lowest_trained_layer(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|slot| match *slot {
                Slot::LoraA(i, _)
                | Slot::LoraB(i, _)
                | Slot::Magnitude(i, _)
                | Slot::Weight(i, _)
                | Slot::Bias(i, _)
                | Slot::Norm(Some(i), _) => Some(i),
                Slot::Embed => Some(0),
                Slot::Norm(None, _) | Slot::Head => None,
            })
            .min()
            .unwrap_or(self.engine.llama.layer_count())
    }

    /// Adds the gradients `grads` holds for trainable tensors to `into` (slot order).
    fn collect_grads(&mut self, grads: &burn::tensor::Gradients, into: &mut [Option<Vec<f32>>]) {
        let slots = self.slots.clone();
        for (k, slot) in slots.iter().enumerate() {
            if let Some(grad) = self.param_mut(slot).grad(grads) {
                accumulate(&mut into[k], grad);
            }
        }
    }

    /// A frozen inference copy of the current weights (no autodiff), for validation:
    /// made once per validation pass, not per batch.
    pub fn evaluator(&self) -> Evaluator {
        let e = &self.engine;
        Evaluator {
            engine: Engine {
                llama: e.llama.valid(),
                tokenizer: e.tokenizer.clone(),
                chat_template: e.chat_template.clone(),
                generation_defaults: e.generation_defaults.clone(),
                source: e.source.clone(),
                device: e.device.clone().inner(),
            },
        }
    }

    /// The trained model as an inference engine.
    pub fn into_engine(mut self) -> Engine {
        self.engine.llama = self.engine.llama.valid();
        self.engine.device = Device::flex();
        self.engine
    }

    fn hidden(&self, batch: &Batch, train: Option<TrainStep>, device: &Device) -> Tensor<3> {
        hidden_of(&self.engine.llama, batch, train, device)
    }
}

/// An inference copy of a [`TrainableModel`]: losses without gradients, and
/// generation of validation answers.
pub struct Evaluator {
    engine: Engine,
}

impl Evaluator {
    /// Loss of a batch.
    pub fn loss(&self, batch: &Batch) -> BatchLoss {
        let llama = &self.engine.llama;
        let hidden = hidden_of(llama, batch, None, &self.engine.device);
        head_loss(hidden, &llama.head_by_token(), batch, false, false).loss
    }

    /// The model as an inference engine (for generation).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn hidden_of(
    llama: &crate::llama::Llama,
    batch: &Batch,
    train: Option<TrainStep>,
    device: &Device,
) -> Tensor<3> {
    let (ids, step) = step_inputs(llama, batch, train, device);
    llama.forward_hidden(ids, &step, &mut KvCache::default())
}

/// The token ids `[b, t]` of a batch and its per-call inputs.
fn step_inputs(
    llama: &crate::llama::Llama,
    batch: &Batch,
    train: Option<TrainStep>,
    device: &Device,
) -> (Tensor<2, Int>, StepInputs) {
    let ids: Vec<i64> = batch.ids.iter().map(|&i| i as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch.b, batch.t]), device);
    // Right padding: every row's positions start at 0 and causality hides the padding.
    let positions = vec![(0..batch.t).collect::<Vec<_>>(); batch.b];
    let (cos, sin) = llama.rope_tables(&positions, device);
    let step = StepInputs {
        cos,
        sin,
        mask: None,
        hidden: batch.hidden.clone().map(Arc::new),
        train,
    };
    (ids, step)
}

/// Backward from `hidden` `[b, t, d]` given `d loss / d hidden` (`dh`, row-major).
fn backward_from(hidden: Tensor<3>, dh: &[f32]) -> burn::tensor::Gradients {
    let dims = hidden.dims();
    let dh = Tensor::<3>::from_data(TensorData::new(dh.to_vec(), dims), &hidden.device());
    (hidden * dh).sum().backward()
}

/// `slot += grad`, or `grad` when the slot is still empty.
fn accumulate(slot: &mut Option<Vec<f32>>, grad: Vec<f32>) {
    match slot {
        Some(g) => g.iter_mut().zip(&grad).for_each(|(a, b)| *a += b),
        none => *none = Some(grad),
    }
}

fn lora_of(linear: Option<&mut Linear>) -> &mut crate::linear::Lora {
    linear
        .and_then(|l| l.lora.as_mut())
        .expect("adapter attached")
}

/// `self_attn` or `mlp`: the block a projection belongs to.
fn block_of(name: &str) -> &'static str {
    if ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&name) {
        "self_attn"
    } else {
        "mlp"
    }
}

/// A trainable tensor of either rank.
enum ParamMut<'a> {
    D1(&'a mut Param<Tensor<1>>),
    D2(&'a mut Param<Tensor<2>>),
}

impl ParamMut<'_> {
    fn shape(&self) -> Vec<usize> {
        match self {
            Self::D1(p) => p.val().dims().to_vec(),
            Self::D2(p) => p.val().dims().to_vec(),
        }
    }

    fn values(&self) -> Vec<f32> {
        let data = match self {
            Self::D1(p) => p.val().into_data(),
            Self::D2(p) => p.val().into_data(),
        };
        data.convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 values")
    }

    fn grad(&self, grads: &burn::tensor::Gradients) -> Option<Vec<f32>> {
        let data = match self {
            Self::D1(p) => p.val().grad(grads)?.into_data(),
            Self::D2(p) => p.val().grad(grads)?.into_data(),
        };
        Some(
            data.convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32 values"),
        )
    }

    fn set_trainable(&mut self, trainable: bool) {
        match self {
            Self::D1(p) => **p = Param::from_tensor(p.val().detach()).set_require_grad(trainable),
            Self::D2(p) => **p = Param::from_tensor(p.val().detach()).set_require_grad(trainable),
        }
    }

    fn set(&mut self, values: Vec<f32>, device: &Device) {
        let shape = self.shape();
        match self {
            Self::D1(p) => {
                **p = Param::from_tensor(Tensor::from_data(
                    TensorData::new(values, [shape[0]]),
                    device,
                ))
            }
            Self::D2(p) => {
                **p = Param::from_tensor(Tensor::from_data(
                    TensorData::new(values, [shape[0], shape[1]]),
                    device,
                ))
            }
        }
    }
}

/// What the chunked cross-entropy returns.
struct HeadOutput {
    loss: BatchLoss,
    /// `d loss / d hidden`, `[b·t·d]` (empty without gradients).
    dh: Vec<f32>,
    /// `d loss / d head`, `[d, v]`.
    head_grad: Option<Vec<f32>>,
}

/// Cross-entropy of next-token predictions from `hidden` `[b, t, d]` (plain tensor)
/// through the head `[v, d]` (any strides), only at positions whose next token carries
/// weight, in chunks; with its analytic gradient `w · (softmax − onehot)`.
fn head_loss(
    hidden: Tensor<3>,
    head: &Tensor<2>,
    batch: &Batch,
    grads: bool,
    head_grad: bool,
) -> HeadOutput {
    let [b, t, d] = hidden.dims();
    let head = head.clone().inner(); // [v, d]
    let v = head.dims()[0];
    let device = head.device();
    let h: Vec<f32> = hidden
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32");
    // (source position, target token, weight, target position)
    let active: Vec<(usize, u32, f32, usize)> = (0..b)
        .flat_map(|r| (1..t).map(move |j| (r, j)))
        .filter_map(|(r, j)| {
            let at = r * t + j;
            let w = batch.weights[at];
            (w > 0.0).then(|| (at - 1, batch.ids[at], w, at))
        })
        .collect();
    let mut nll = vec![0f32; b * t];
    let mut loss = 0f64;
    let mut dh = if grads {
        vec![0f32; b * t * d]
    } else {
        Vec::new()
    };
    let mut head_acc: Option<Tensor<2>> = None;
    let head_t = head.clone().transpose(); // [d, v]
    let chunk_values = if head_grad {
        LOGITS_CHUNK_HEAD_GRAD
    } else {
        LOGITS_CHUNK
    };
    let rows_per_chunk = (chunk_values / v).max(1);
    for chunk in active.chunks(rows_per_chunk) {
        let c = chunk.len();
        let mut hc = Vec::with_capacity(c * d);
        for &(src, ..) in chunk {
            hc.extend_from_slice(&h[src * d..(src + 1) * d]);
        }
        let hc = Tensor::<2>::from_data(TensorData::new(hc, [c, d]), &device);
        let mut logits: Vec<f32> = hc
            .clone()
            .matmul(head_t.clone())
            .into_data()
            .try_to_vec()
            .expect("f32");
        // Per row: (w·nll, nll, row scale of the gradient). The gradient of the logits,
        // `w·(softmax − onehot)`, is `scale·e'` with `e' = exp(logits − max)` less the
        // row's sum at the target: `e'` stays in `logits`, and the scale goes on the
        // `d`-wide rows of the products instead of the vocabulary-wide row.
        let rows: Vec<(f64, f32, f32)> = logits
            .par_chunks_mut(v)
            .zip(chunk.par_iter())
            .map(|(row, &(_, target, w, _))| {
                let max = max(row);
                let target_logit = row[target as usize];
                // One exponential per logit, kept for the gradient.
                let sum = exp_shifted_sum(row, max);
                let nll = max as f64 + (sum as f64).ln() - target_logit as f64;
                row[target as usize] -= sum;
                (nll * w as f64, nll as f32, (w as f64 / sum as f64) as f32)
            })
            .collect();
        for (&(_, _, _, at), (weighted, n, _)) in chunk.iter().zip(&rows) {
            loss += weighted;
            nll[at] = *n;
        }
        if grads {
            let dl = Tensor::<2>::from_data(TensorData::new(logits, [c, v]), &device);
            let dhc: Vec<f32> = dl
                .clone()
                .matmul(head.clone())
                .into_data()
                .try_to_vec()
                .expect("f32");
            for (k, (&(src, ..), &(.., scale))) in chunk.iter().zip(&rows).enumerate() {
                let out = &mut dh[src * d..(src + 1) * d];
                for (o, x) in out.iter_mut().zip(&dhc[k * d..(k + 1) * d]) {
                    *o = x * scale;
                }
            }
            if head_grad {
                let scales: Vec<f32> = rows.iter().map(|r| r.2).collect();
                let scales = Tensor::<2>::from_data(TensorData::new(scales, [c, 1]), &device);
                let g = (hc * scales).transpose().matmul(dl);
                head_acc = Some(match head_acc {
                    Some(acc) => acc + g,
                    None => g,
                });
            }
        }
    }
    let head_grad = head_grad.then(|| match head_acc {
        Some(g) => g.into_data().try_to_vec().expect("f32"),
        None => vec![0.0; d * v],
    });
    HeadOutput {
        loss: BatchLoss { loss, nll },
        dh,
        head_grad,
    }
}
