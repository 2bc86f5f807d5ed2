//! The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM, TinyLlama, h2o-danube):
//! pre-norm blocks of grouped-query attention with rotate-half RoPE and a SwiGLU MLP.
//!
//! Shapes: `b` batch, `t` new tokens, `p` cached tokens, `h`/`kvh` query/key-value
//! heads, `hd` head width, `d` model width, `v` vocabulary.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::Embedding;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::fused::{causal_attention, rms_norm, swiglu};
use crate::linear::Linear;
use crate::quant::BaseDtype;
use crate::train::{dropout_mask, uniform_noise, TrainStep};
use crate::weights::{HostTensor, WeightSource};

/// The decoder with its output head.
#[derive(Module, Debug)]
pub struct Llama {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// Output head; a copy of the embeddings when they are tied.
    lm_head: Linear,
    #[module(skip)]
    config: LlamaConfig,
    /// RoPE inverse frequencies (scaling applied), in f32 as transformers keeps them.
    #[module(skip)]
    inv_freq: Vec<f32>,
}

/// One pre-norm block: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
#[derive(Module, Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

#[derive(Module, Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

#[derive(Module, Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

/// Keys and values of the tokens seen so far, per layer: `[b, kvh, p, hd]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `rows` (in that order), as beam search needs.
    pub fn select_rows(&mut self, rows: Tensor<1, Int>) {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.clone().select(0, rows.clone());
            *v = v.clone().select(0, rows.clone());
        }
    }
}

/// Per-call inputs besides the token ids.
pub struct StepInputs {
    /// RoPE cosines `[b, 1, t, hd]` for each row's positions.
    pub cos: Tensor<4>,
    /// RoPE sines `[b, 1, t, hd]`.
    pub sin: Tensor<4>,
    /// `[b, 1, t, p + t]`, true where attention is forbidden beyond causality
    /// (left padding); `None` when no row is padded.
    pub mask: Option<Tensor<4, Bool>>,
    /// `[b·t]` tokens hidden from the positions after them (token masking); `None`
    /// when nothing is hidden.
    pub hidden: Option<Arc<Vec<bool>>>,
    /// Training-time randomness (dropout, NEFTune); `None` for inference.
    pub train: Option<TrainStep>,
}

impl Llama {
    /// Builds the model from a checkpoint, checking every tensor's shape. `training`
    /// stores linear weights for training (one block, or packed in that dtype).
    pub fn load(
        config: &LlamaConfig,
        source: &dyn WeightSource,
        device: &Device,
        training: Option<BaseDtype>,
    ) -> Result<Self> {
        let loader = Loader {
            source,
            device,
            training,
        };
        let (d, hd) = (config.hidden_size, config.head_dim);
        let (h, kvh) = (config.num_attention_heads, config.num_key_value_heads);
        let embed = loader.host("model.embed_tokens.weight", &[config.vocab_size, d])?;
        // A tied head keeps its own copy of the embeddings, in `Linear`'s layout.
        let lm_head = if config.tie_word_embeddings {
            loader.linear_from(&embed.values, config.vocab_size, d, None, BaseDtype::F32)
        } else {
            loader.linear("lm_head", config.vocab_size, d, false)?
        };
        let embed = Tensor::from_data(
            TensorData::new(embed.values, [config.vocab_size, d]),
            device,
        );
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = |n: &str| format!("model.layers.{i}.{n}");
            let linear =
                |n: &str, out: usize, inp: usize, bias: bool| loader.linear(&p(n), out, inp, bias);
            layers.push(DecoderLayer {
                input_layernorm: loader.rms_norm(&p("input_layernorm"), d, config.rms_norm_eps)?,
                self_attn: Attention {
                    q_proj: linear("self_attn.q_proj", h * hd, d, config.qkv_bias)?,
                    k_proj: linear("self_attn.k_proj", kvh * hd, d, config.qkv_bias)?,
                    v_proj: linear("self_attn.v_proj", kvh * hd, d, config.qkv_bias)?,
                    o_proj: linear("self_attn.o_proj", d, h * hd, config.o_bias)?,
                    heads: h,
                    kv_heads: kvh,
                    head_dim: hd,
                },
                post_attention_layernorm: loader.rms_norm(
                    &p("post_attention_layernorm"),
                    d,
                    config.rms_norm_eps,
                )?,
                mlp: Mlp {
                    gate_proj: linear("mlp.gate_proj", config.intermediate_size, d, false)?,
                    up_proj: linear("mlp.up_proj", config.intermediate_size, d, false)?,
                    down_proj: linear("mlp.down_proj", d, config.intermediate_size, false)?,
                },
            });
        }
        Ok(Self {
            embed_tokens: Embedding {
                weight: Param::from_tensor(embed),
            },
            layers,
            norm: loader.rms_norm("model.norm", d, config.rms_norm_eps)?,
            lm_head,
            config: config.clone(),
            inv_freq: config.rope_inv_freq().iter().map(|f| *f as f32).collect(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Runs `ids` `[b, t]` through the decoder, appending to `cache`; returns the final
    /// hidden states `[b, t, d]` (after the last norm).
    pub fn forward_hidden(
        &self,
        ids: Tensor<2, Int>,
        step: &StepInputs,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        if cache.layers.len() != self.layers.len() {
            cache.layers = vec![None; self.layers.len()];
        }
        let mut x = self.embed(ids, step);
        for (i, (layer, slot)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            x = layer.forward(x, step, slot, i as u64);
        }
        self.norm.forward(x)
    }

    /// Token embeddings `[b, t, d]` of `ids` `[b, t]`, with NEFTune's noise while training.
    pub(crate) fn embed(&self, ids: Tensor<2, Int>, step: &StepInputs) -> Tensor<3> {
        let x = self.embed_tokens.forward(ids);
        match step.train.as_ref().filter(|t| t.neftune_alpha > 0.0) {
            Some(train) => {
                // NEFTune: uniform noise of size alpha / sqrt(t·d) on the embeddings.
                let dims = x.dims();
                let magnitude = train.neftune_alpha / ((dims[1] * dims[2]) as f32).sqrt();
                let noise = uniform_noise(train, NEFTUNE_SITE, dims.iter().product(), magnitude);
                x + Tensor::from_data(TensorData::new(noise, dims), &self.device())
            }
            None => x,
        }
    }

    /// Decoder layer `i` on `x` `[b, t, d]`, without a cache. With `untracked` it runs
    /// an inference copy of the layer's weights on an inner-backend `x`: no autodiff
    /// graph, as the first pass of gradient checkpointing needs.
    pub(crate) fn layer_forward(
        &self,
        i: usize,
        x: Tensor<3>,
        step: &StepInputs,
        untracked: bool,
    ) -> Tensor<3> {
        let mut cache = None;
        if untracked {
            self.layers[i]
                .valid()
                .forward(x, step, &mut cache, i as u64)
        } else {
            self.layers[i].forward(x, step, &mut cache, i as u64)
        }
    }

    /// The norm after the last layer.
    pub(crate) fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.norm.forward(x)
    }

    /// Output logits `[b, t, v]` for hidden states `[b, t, d]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.lm_head.forward(hidden, None)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// RoPE tables for `positions` (`b` rows of `t` positions each), on `device`.
    pub fn rope_tables(&self, positions: &[Vec<usize>], device: &Device) -> (Tensor<4>, Tensor<4>) {
        let half = self.inv_freq.len();
        let (b, t) = (positions.len(), positions.first().map_or(0, Vec::len));
        let mut cos = Vec::with_capacity(b * t * 2 * half);
        let mut sin = Vec::with_capacity(b * t * 2 * half);
        for &pos in positions.iter().flatten() {
            // Angles in f32, as transformers computes them; both halves of a head share them.
            let start = cos.len();
            for f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
            cos.extend_from_within(start..);
            sin.extend_from_within(start..);
        }
        let shape = [b, 1, t, 2 * half];
        (
            Tensor::from_data(TensorData::new(cos, shape), device),
            Tensor::from_data(TensorData::new(sin, shape), device),
        )
    }
}

/// Dropout stream of NEFTune's noise (layer sites are `16·layer + k`).
const NEFTUNE_SITE: u64 = u64::MAX;

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        step: &StepInputs,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
        index: u64,
    ) -> Tensor<3> {
        let train = step.train.as_ref();
        let attn = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), step, cache);
        let x = x + hidden_dropout(attn, train, 16 * index + 8);
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()), train);
        x + hidden_dropout(mlp, train, 16 * index + 9)
    }
}

/// Root-mean-square layer norm (a fused op with its own backward).
#[derive(Module, Debug)]
struct RmsNorm {
    gamma: Param<Tensor<1>>,
    #[module(skip)]
    eps: f64,
}

impl RmsNorm {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        rms_norm(x, self.gamma.val(), self.eps)
    }
}

/// Hidden tokens as an attention mask `[b, 1, t, t]`: key `j` forbidden to every later
/// query (a token still sees itself).
fn hidden_mask(hidden: &[bool], b: usize, t: usize, device: &Device) -> Tensor<4, Bool> {
    let mut forbidden = vec![false; b * t * t];
    for r in 0..b {
        for j in (0..t).filter(|&j| hidden[r * t + j]) {
            for i in j + 1..t {
                forbidden[(r * t + i) * t + j] = true;
            }
        }
    }
    Tensor::from_data(TensorData::new(forbidden, [b, 1, t, t]), device)
}

/// `intermediate_dropout` on a residual branch while training.
fn hidden_dropout(y: Tensor<3>, train: Option<&TrainStep>, site: u64) -> Tensor<3> {
    match train {
        Some(t) if t.hidden_dropout > 0.0 => {
            let dims = y.dims();
            let mask = dropout_mask(t, site, dims.iter().product(), t.hidden_dropout);
            let device = y.device();
            y * Tensor::from_data(TensorData::new(mask, dims), &device)
        }
        _ => y,
    }
}

impl Attention {
    fn forward(
        &self,
        x: Tensor<3>,
        step: &StepInputs,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, self.head_dim]).swap_dims(1, 2);
        let train = step.train.as_ref();
        let q = heads(self.q_proj.forward(x.clone(), train), self.heads); // [b, h, t, hd]
        let k = heads(self.k_proj.forward(x.clone(), train), self.kv_heads); // [b, kvh, t, hd]
        let v = heads(self.v_proj.forward(x, train), self.kv_heads);
        let q = rope(q, &step.cos, &step.sin);
        let k = rope(k, &step.cos, &step.sin);
        let prefix = cache.take();
        // Training passes (tracked, or the untracked first pass of gradient
        // checkpointing) use the fused kernel; inference with a cache or padding does not.
        let training =
            (q.is_autodiff() || train.is_some()) && prefix.is_none() && step.mask.is_none();
        let (k, v) = match prefix {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        if training {
            // The fused op keeps its inputs, output and row log-sum-exp, not the scores.
            let hidden = step.hidden.clone();
            return self.project_out(causal_attention(q, k, v, hidden), train);
        }
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        // burn's autodiff attention (a decomposed fallback) does not broadcast grouped
        // key/value heads: repeat them, as transformers' `repeat_kv` does.
        let (k, v) = if q.is_autodiff() && self.kv_heads != self.heads {
            (self.repeat_kv(k), self.repeat_kv(v))
        } else {
            (k, v)
        };
        let mask = step.mask.clone().or_else(|| {
            let device = q.device();
            step.hidden.as_ref().map(|h| hidden_mask(h, b, t, &device))
        });
        let out = attention(q, k, v, mask, None, options);
        self.project_out(out, train)
    }

    /// `[b, h, t, hd]` → `[b, t, d]` through `o_proj`.
    fn project_out(&self, out: Tensor<4>, train: Option<&TrainStep>) -> Tensor<3> {
        let [b, _, t, _] = out.dims();
        let out = out
            .swap_dims(1, 2)
            .reshape([b, t, self.heads * self.head_dim]);
        self.o_proj.forward(out, train)
    }

    /// `[b, kvh, p, hd]` → `[b, h, p, hd]`, each key/value head serving its group.
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, kvh, p, hd] = x.dims();
        let group = self.heads / kvh;
        x.unsqueeze_dim::<5>(2)
            .expand([b, kvh, group, p, hd])
            .reshape([b, self.heads, p, hd])
    }
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`.
fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let hd = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, hd / 2);
    let x2 = x.clone().narrow(3, hd / 2, hd / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, train: Option<&TrainStep>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone(), train);
        let up = self.up_proj.forward(x, train);
        self.down_proj.forward(swiglu(gate, up), train)
    }
}

fn named(name: &str, shape: Vec<usize>, values: Vec<f32>) -> (String, HostTensor) {
    (name.to_string(), HostTensor { shape, values })
}

/// Reads tensors by name and checks their shapes.
struct Loader<'a> {
    source: &'a dyn WeightSource,
    device: &'a Device,
    training: Option<BaseDtype>,
}

impl Loader<'_> {
    fn host(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self
            .source
            .tensor(name)?
            .ok_or_else(|| ModelError::Tensor {
                path: self.source.path().to_path_buf(),
                tensor: name.to_string(),
                message: "missing from the checkpoint".into(),
            })?;
        if t.shape != shape {
            return Err(ModelError::Tensor {
                path: self.source.path().to_path_buf(),
                tensor: name.to_string(),
                message: format!("shape {:?}, expected {shape:?} from the config", t.shape),
            });
        }
        Ok(t)
    }

    fn get<const D: usize>(&self, name: &str, shape: &[usize; D]) -> Result<Tensor<D>> {
        let t = self.host(name, shape)?;
        Ok(Tensor::from_data(
            TensorData::new(t.values, *shape),
            self.device,
        ))
    }

    /// A linear layer from a PyTorch `[out, in]` weight.
    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let weight = self.host(&format!("{prefix}.weight"), &[out, inp])?;
        let bias = if bias {
            Some(self.get(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        // The head stays in full precision, as bitsandbytes leaves it.
        let dtype = match self.training {
            Some(dtype) if prefix != "lm_head" => dtype,
            _ => BaseDtype::F32,
        };
        Ok(self.linear_from(&weight.values, out, inp, bias, dtype))
    }

    fn linear_from(
        &self,
        weight: &[f32],
        out: usize,
        inp: usize,
        bias: Option<Tensor<1>>,
        dtype: BaseDtype,
    ) -> Linear {
        match self.training {
            Some(_) => Linear::for_training(weight, out, inp, bias, dtype, self.device),
            None => Linear::from_torch_layout(weight, out, inp, bias, self.device),
        }
    }

    fn rms_norm(&self, prefix: &str, d: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            gamma: Param::from_tensor(self.get(&format!("{prefix}.weight"), &[d])?),
            eps,
        })
    }
}

/// The projections of a decoder layer, by their Hugging Face names.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Llama {
    /// Number of decoder layers.
    pub(crate) fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// A projection of layer `i` by name (`q_proj` … `down_proj`).
    pub(crate) fn projection_mut(&mut self, i: usize, name: &str) -> Option<&mut Linear> {
        let l = self.layers.get_mut(i)?;
        Some(match name {
            "q_proj" => &mut l.self_attn.q_proj,
            "k_proj" => &mut l.self_attn.k_proj,
            "v_proj" => &mut l.self_attn.v_proj,
            "o_proj" => &mut l.self_attn.o_proj,
            "gate_proj" => &mut l.mlp.gate_proj,
            "up_proj" => &mut l.mlp.up_proj,
            "down_proj" => &mut l.mlp.down_proj,
            _ => return None,
        })
    }

    /// The norm weights of layer `i`: `input_layernorm` (0) or `post_attention_layernorm` (1);
    /// `None` for the final norm.
    pub(crate) fn norm_mut(&mut self, layer: Option<usize>, which: usize) -> &mut Param<Tensor<1>> {
        match layer {
            None => &mut self.norm.gamma,
            Some(i) if which == 0 => &mut self.layers[i].input_layernorm.gamma,
            Some(i) => &mut self.layers[i].post_attention_layernorm.gamma,
        }
    }

    /// Grows the vocabulary to `vocab` rows (a training model's single-block head):
    /// new embedding rows and head columns are the mean of the existing ones, as
    /// transformers' `resize_token_embeddings` starts them. New weights are frozen.
    pub(crate) fn grow_vocab(&mut self, vocab: usize) {
        let (v, d) = (self.config.vocab_size, self.config.hidden_size);
        if vocab <= v {
            return;
        }
        let device = self.device();
        let host = |t: Tensor<2>| {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        };
        // Embeddings `[v, d]`: rows appended.
        let mut embed = host(self.embed_tokens.weight.val());
        let mean: Vec<f32> = (0..d)
            .map(|j| (0..v).map(|i| embed[i * d + j]).sum::<f32>() / v as f32)
            .collect();
        for _ in v..vocab {
            embed.extend_from_slice(&mean);
        }
        self.embed_tokens.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(embed, [vocab, d]),
            &device,
        ))
        .set_require_grad(false);
        // Head `[d, v]`: a column appended to every row.
        let head = host(self.head_weight());
        let mut grown = Vec::with_capacity(d * vocab);
        for row in head.chunks(v) {
            let mean = row.iter().sum::<f32>() / v as f32;
            grown.extend_from_slice(row);
            grown.extend(std::iter::repeat_n(mean, vocab - v));
        }
        *self.lm_head.weight_param().expect("dense head") = Param::from_tensor(Tensor::from_data(
            TensorData::new(grown, [d, vocab]),
            &device,
        ))
        .set_require_grad(false);
        self.config.vocab_size = vocab;
    }

    /// The token embeddings `[v, d]`.
    pub(crate) fn embed_mut(&mut self) -> &mut Param<Tensor<2>> {
        &mut self.embed_tokens.weight
    }

    /// The head's weight `[d, v]` (a training model's single block).
    pub(crate) fn head_weight(&self) -> Tensor<2> {
        self.lm_head.dense_weight().expect("dense head")
    }

    /// The head's weight in `[v, d]` layout, in which the loss's products run faster
    /// (the vocabulary-wide operand is then read along its rows): the embeddings when
    /// tied, which the head copies, else a transposed view of the head.
    pub(crate) fn head_by_token(&self) -> Tensor<2> {
        if self.config.tie_word_embeddings {
            self.embed_tokens.weight.val()
        } else {
            self.head_weight().transpose()
        }
    }

    /// The output head.
    pub(crate) fn head_mut(&mut self) -> &mut Linear {
        &mut self.lm_head
    }

    /// Every tensor under its Hugging Face name, in PyTorch layout, adapters merged
    /// into their base weights; no `lm_head.weight` when the head is tied.
    pub fn hf_tensors(&self) -> Vec<(String, HostTensor)> {
        let host = |t: Tensor<1>| -> Vec<f32> {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 after convert")
        };
        let (v, d) = (self.config.vocab_size, self.config.hidden_size);
        let mut out = Vec::new();
        let embed = self.embed_tokens.weight.val().reshape([v * d]);
        out.push(named("model.embed_tokens.weight", vec![v, d], host(embed)));
        for (i, layer) in self.layers.iter().enumerate() {
            let p = |n: &str| format!("model.layers.{i}.{n}");
            let norm = |n: &RmsNorm| host(n.gamma.val());
            out.push(named(
                &p("input_layernorm.weight"),
                vec![d],
                norm(&layer.input_layernorm),
            ));
            let attn = &layer.self_attn;
            let mlp = &layer.mlp;
            for (name, linear) in [
                ("self_attn.q_proj", &attn.q_proj),
                ("self_attn.k_proj", &attn.k_proj),
                ("self_attn.v_proj", &attn.v_proj),
                ("self_attn.o_proj", &attn.o_proj),
                ("mlp.gate_proj", &mlp.gate_proj),
                ("mlp.up_proj", &mlp.up_proj),
                ("mlp.down_proj", &mlp.down_proj),
            ] {
                let [inp, outp] = linear.shape();
                let weight = linear.merged_torch_weight();
                out.push(named(
                    &p(&format!("{name}.weight")),
                    vec![outp, inp],
                    weight,
                ));
                if let Some(bias) = linear.bias_values() {
                    out.push(named(&p(&format!("{name}.bias")), vec![outp], bias));
                }
            }
            out.push(named(
                &p("post_attention_layernorm.weight"),
                vec![d],
                norm(&layer.post_attention_layernorm),
            ));
        }
        out.push(named(
            "model.norm.weight",
            vec![d],
            host(self.norm.gamma.val()),
        ));
        if !self.config.tie_word_embeddings {
            out.push(named(
                "lm_head.weight",
                vec![v, d],
                self.lm_head.merged_torch_weight(),
            ));
        }
        out
    }

    /// Numbers every projection for dropout streams (`16·layer + k`).
    pub(crate) fn assign_sites(&mut self) {
        for i in 0..self.layers.len() {
            for (k, name) in PROJECTIONS.iter().enumerate() {
                if let Some(linear) = self.projection_mut(i, name) {
                    linear.set_site((16 * i + k) as u64);
                }
            }
        }
    }
}
