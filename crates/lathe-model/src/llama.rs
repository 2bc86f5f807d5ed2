//! The Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM, TinyLlama, h2o-danube):
//! pre-norm blocks of grouped-query attention with rotate-half RoPE and a SwiGLU MLP.
//!
//! Shapes: `b` batch, `t` new tokens, `p` cached tokens, `h`/`kvh` query/key-value
//! heads, `hd` head width, `d` model width, `v` vocabulary.

use burn::module::{Module, Param};
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::linear::Linear;
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
}

impl Llama {
    /// Builds the model from a checkpoint, checking every tensor's shape.
    pub fn load(config: &LlamaConfig, source: &dyn WeightSource, device: &Device) -> Result<Self> {
        let loader = Loader { source, device };
        let (d, hd) = (config.hidden_size, config.head_dim);
        let (h, kvh) = (config.num_attention_heads, config.num_key_value_heads);
        let embed = loader.host("model.embed_tokens.weight", &[config.vocab_size, d])?;
        // A tied head keeps its own copy of the embeddings, in `Linear`'s layout.
        let lm_head = if config.tie_word_embeddings {
            Linear::from_torch_layout(&embed.values, config.vocab_size, d, None, device)
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
        let mut x = self.embed_tokens.forward(ids);
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(x, step, slot);
        }
        self.norm.forward(x)
    }

    /// Output logits `[b, t, v]` for hidden states `[b, t, d]`.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.lm_head.forward(hidden)
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

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        step: &StepInputs,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), step, cache);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
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
        let q = heads(self.q_proj.forward(x.clone()), self.heads); // [b, h, t, hd]
        let k = heads(self.k_proj.forward(x.clone()), self.kv_heads); // [b, kvh, t, hd]
        let v = heads(self.v_proj.forward(x), self.kv_heads);
        let q = rope(q, &step.cos, &step.sin);
        let k = rope(k, &step.cos, &step.sin);
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let out = attention(q, k, v, step.mask.clone(), None, options); // [b, h, t, hd]
        let out = out
            .swap_dims(1, 2)
            .reshape([b, t, self.heads * self.head_dim]);
        self.o_proj.forward(out)
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
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

/// Reads tensors by name and checks their shapes.
struct Loader<'a> {
    source: &'a dyn WeightSource,
    device: &'a Device,
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
        Ok(Linear::from_torch_layout(
            &weight.values,
            out,
            inp,
            bias,
            self.device,
        ))
    }

    fn rms_norm(&self, prefix: &str, d: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            gamma: Param::from_tensor(self.get(&format!("{prefix}.weight"), &[d])?),
            epsilon: eps,
        })
    }
}
