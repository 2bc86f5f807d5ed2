//! The Llama-family configuration, read from a Hugging Face `config.json` or from
//! GGUF metadata.

use std::path::Path;

use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// The `architectures` values of `config.json` that Lathe runs.
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

/// RoPE frequency scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor` (`"linear"`).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3.1's wavelength-dependent scaling (`"llama3"`).
    Llama3 {
        /// Scale of low frequencies.
        factor: f64,
        /// Wavelength bound below which frequencies are scaled.
        low_freq_factor: f64,
        /// Wavelength bound above which frequencies are kept.
        high_freq_factor: f64,
        /// The context length the base model was trained on.
        original_max_position_embeddings: f64,
    },
    /// One divisor per frequency, as llama.cpp stores Llama 3.1 scaling in GGUF files
    /// (the `rope_freqs.weight` tensor).
    Factors(Vec<f64>),
}

/// Hyperparameters of a Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM, TinyLlama).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// The `architectures` entry, or `LlamaForCausalLM` for GGUF files.
    pub architecture: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Optional RoPE scaling.
    pub rope_scaling: Option<RopeScaling>,
    /// Whether the output head shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections have a bias (Qwen2, or Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// Whether the output projection has a bias (Llama with `attention_bias`).
    pub o_bias: bool,
    /// Context length.
    pub max_position_embeddings: usize,
    /// Mistral-style sliding-window attention: a token sees at most this many
    /// positions back (itself included).
    pub sliding_window: Option<usize>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (several for Llama 3).
    pub eos_token_ids: Vec<u32>,
    /// Padding token.
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// Reads `config.json`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::format(path, format!("invalid JSON: {e}")))?;
        Self::from_json(&json, path)
    }

    /// Reads a parsed `config.json`; `path` names it in errors.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self> {
        let field = Fields { json, path };
        let architecture = match json.get("architectures").and_then(Value::as_array) {
            Some(list) => list
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::format(path, "`architectures` is empty"))?
                .to_string(),
            None => match json.get("model_type").and_then(Value::as_str) {
                Some("llama") => "LlamaForCausalLM".into(),
                Some("mistral") => "MistralForCausalLM".into(),
                Some("qwen2") => "Qwen2ForCausalLM".into(),
                other => other.unwrap_or("<none>").to_string(),
            },
        };
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(ModelError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                name: architecture,
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        let hidden_size = field.usize("hidden_size")?;
        let num_attention_heads = field.usize("num_attention_heads")?;
        let num_key_value_heads = field
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        let head_dim = field
            .opt_usize("head_dim")?
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let rope = json.get("rope_parameters");
        let rope_theta = json
            .get("rope_theta")
            .or_else(|| rope.and_then(|r| r.get("rope_theta")))
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| field.bad("rope_theta", "a number"))
            })
            .transpose()?
            .unwrap_or(10_000.0);
        let scaling = json.get("rope_scaling").filter(|v| !v.is_null()).or(rope);
        let rope_scaling = scaling
            .map(|s| rope_scaling(s, path))
            .transpose()?
            .flatten();
        let attention_bias = field.opt_bool("attention_bias")?.unwrap_or(false);
        let is_qwen2 = architecture == "Qwen2ForCausalLM";
        let config = Self {
            vocab_size: field.usize("vocab_size")?,
            hidden_size,
            intermediate_size: field.usize("intermediate_size")?,
            num_hidden_layers: field.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: field.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            tie_word_embeddings: field.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias: attention_bias || is_qwen2,
            o_bias: attention_bias && !is_qwen2,
            max_position_embeddings: field.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            // Qwen2 configs carry a window that applies only with `use_sliding_window`.
            sliding_window: match (is_qwen2, field.opt_bool("use_sliding_window")?) {
                (true, Some(true)) | (false, _) => field.opt_usize("sliding_window")?,
                (true, _) => None,
            },
            bos_token_id: token_ids(json.get("bos_token_id")).first().copied(),
            eos_token_ids: token_ids(json.get("eos_token_id")),
            pad_token_id: token_ids(json.get("pad_token_id")).first().copied(),
            architecture,
        };
        config.validate(path)?;
        Ok(config)
    }

    /// Reads the hyperparameters of a GGUF file (`general.architecture` llama or qwen2).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path();
        let arch = gguf.meta_str("general.architecture")?;
        let architecture = match arch {
            "llama" => "LlamaForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    path: path.to_path_buf(),
                    name: other.to_string(),
                    supported: "llama, qwen2 (GGUF general.architecture)".into(),
                })
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let hidden_size = gguf.meta_usize(&key("embedding_length"))?;
        let num_attention_heads = gguf.meta_usize(&key("attention.head_count"))?;
        let num_key_value_heads = gguf
            .meta_usize_opt(&key("attention.head_count_kv"))?
            .unwrap_or(num_attention_heads);
        let head_dim = gguf
            .meta_usize_opt(&key("rope.dimension_count"))?
            .unwrap_or(hidden_size / num_attention_heads.max(1));
        let vocab_size = match gguf.meta_usize_opt(&key("vocab_size"))? {
            Some(v) => v,
            None => gguf
                .tensor_info("token_embd.weight")
                .map(|t| t.shape()[0])
                .ok_or_else(|| ModelError::format(path, "no token_embd.weight tensor"))?,
        };
        let meta_f64 = |k: &str, default: f64| -> Result<f64> {
            Ok(gguf.meta_f64_opt(&key(k))?.unwrap_or(default))
        };
        let rope_scaling = if gguf.tensor_info("rope_freqs.weight").is_some() {
            let (shape, factors) = gguf.tensor_f32("rope_freqs.weight")?;
            if shape != [head_dim / 2] {
                return Err(ModelError::Tensor {
                    path: path.to_path_buf(),
                    tensor: "rope_freqs.weight".into(),
                    message: format!("shape {shape:?}, expected [{}]", head_dim / 2),
                });
            }
            Some(RopeScaling::Factors(
                factors.into_iter().map(f64::from).collect(),
            ))
        } else {
            match gguf
                .meta(&key("rope.scaling.type"))
                .and_then(|v| v.as_str())
            {
                Some("linear") => Some(RopeScaling::Linear {
                    factor: meta_f64("rope.scaling.factor", 1.0)?,
                }),
                _ => None,
            }
        };
        let token = |k: &str| gguf.meta(k).and_then(|v| v.as_u64()).map(|v| v as u32);
        let config = Self {
            architecture: architecture.to_string(),
            vocab_size,
            hidden_size,
            intermediate_size: gguf.meta_usize(&key("feed_forward_length"))?,
            num_hidden_layers: gguf.meta_usize(&key("block_count"))?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: meta_f64("attention.layer_norm_rms_epsilon", 1e-5)?,
            rope_theta: meta_f64("rope.freq_base", 10_000.0)?,
            rope_scaling,
            tie_word_embeddings: gguf.tensor_info("output.weight").is_none(),
            qkv_bias: gguf.tensor_info("blk.0.attn_q.bias").is_some(),
            o_bias: gguf.tensor_info("blk.0.attn_output.bias").is_some(),
            sliding_window: None,
            max_position_embeddings: gguf.meta_usize_opt(&key("context_length"))?.unwrap_or(2048),
            bos_token_id: token("tokenizer.ggml.bos_token_id"),
            eos_token_ids: token("tokenizer.ggml.eos_token_id").into_iter().collect(),
            pad_token_id: token("tokenizer.ggml.padding_token_id"),
        };
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let fail = |m: String| Err(ModelError::format(path, m));
        if self.num_attention_heads == 0 || self.num_key_value_heads == 0 {
            return fail("attention head counts must be positive".into());
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return fail(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return fail(format!(
                "head_dim {} must be even and positive",
                self.head_dim
            ));
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_hidden_layers == 0 {
            return fail("vocab_size, hidden_size and num_hidden_layers must be positive".into());
        }
        Ok(())
    }

    /// Number of weights: embeddings, decoder layers (projections, biases, norms), the
    /// final norm and an untied head.
    pub fn parameter_count(&self) -> u64 {
        let (d, v, i) = (
            self.hidden_size as u64,
            self.vocab_size as u64,
            self.intermediate_size as u64,
        );
        let (q, kv) = (
            (self.num_attention_heads * self.head_dim) as u64,
            (self.num_key_value_heads * self.head_dim) as u64,
        );
        let biases = if self.qkv_bias { q + 2 * kv } else { 0 } + if self.o_bias { d } else { 0 };
        let layer = d * q + 2 * d * kv + q * d + 3 * d * i + biases + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers as u64 * layer + d + head
    }

    /// RoPE inverse frequencies, one per pair of head dimensions, with scaling applied.
    pub fn rope_inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim as f64;
        let base: Vec<f64> = (0..self.head_dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d))
            .collect();
        match &self.rope_scaling {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Factors(factors)) => {
                base.iter().zip(factors).map(|(f, d)| f / d).collect()
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            }) => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

fn rope_scaling(s: &Value, path: &Path) -> Result<Option<RopeScaling>> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |k: &str| -> Result<f64> {
        s.get(k).and_then(Value::as_f64).ok_or_else(|| {
            ModelError::format(path, format!("rope_scaling `{kind}` needs a number `{k}`"))
        })
    };
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }),
        other => {
            return Err(ModelError::format(
                path,
                format!("rope_scaling type `{other}` is not supported (linear, llama3 are)"),
            ))
        }
    })
}

/// Token ids from a JSON int, list of ints or null.
fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| v as u32).into_iter().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as u32)
            .collect(),
        _ => Vec::new(),
    }
}

/// Typed access to `config.json` fields with errors naming the field.
struct Fields<'a> {
    json: &'a Value,
    path: &'a Path,
}

impl Fields<'_> {
    fn bad(&self, key: &str, what: &str) -> ModelError {
        ModelError::format(self.path, format!("`{key}` must be {what}"))
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|v| Some(v as usize))
                .ok_or_else(|| self.bad(key, "a non-negative integer")),
        }
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| ModelError::format(self.path, format!("`{key}` is missing")))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a number")),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.json.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, "true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<LlamaConfig> {
        LlamaConfig::from_json(&json, Path::new("config.json"))
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 2048,
            "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "max_position_embeddings": 131072, "tie_word_embeddings": true,
            "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        })
    }

    /// transformers' `ROPE_INIT_FUNCTIONS["llama3"]` for Llama 3.2 1B (head_dim 64).
    const LLAMA3_INV_FREQ: [f64; 32] = [
        1.0,
        0.663601279258728,
        0.44036662578582764,
        0.2922278344631195,
        0.193922758102417,
        0.12868738174438477,
        0.08539710193872452,
        0.05666961893439293,
        0.03760603070259094,
        0.02495540864765644,
        0.016560440883040428,
        0.010989529080688953,
        0.00729266507551074,
        0.00483942124992609,
        0.0032114461064338684,
        0.0013718936825171113,
        0.0005248460220173001,
        0.0001785077911335975,
        7.784655463183299e-05,
        5.165906986803748e-05,
        3.428102354519069e-05,
        2.2748929040972143e-05,
        1.5096217794052791e-05,
        1.0017868589784484e-05,
        6.647869668086059e-06,
        4.411534519022098e-06,
        2.927499735960737e-06,
        1.9426925064180978e-06,
        1.289173155782919e-06,
        8.554969213037111e-07,
        5.677088097399974e-07,
        3.76732259610435e-07,
    ];

    #[test]
    fn llama3_config_and_rope_scaling_match_transformers() {
        let c = parse(base()).unwrap();
        assert_eq!((c.head_dim, c.num_key_value_heads), (64, 8));
        assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
        assert!(c.tie_word_embeddings && !c.qkv_bias);
        for (got, want) in c.rope_inv_freq().iter().zip(LLAMA3_INV_FREQ) {
            assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        }
    }

    #[test]
    fn linear_scaling_v5_rope_parameters_and_qwen2_biases() {
        let mut j = base();
        j["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 4.0});
        j["rope_theta"] = serde_json::json!(10000.0);
        let inv = parse(j).unwrap().rope_inv_freq();
        // transformers' ROPE_INIT_FUNCTIONS["linear"], head_dim 64, θ 10000, factor 4.
        for (got, want) in inv
            .iter()
            .zip([0.25, 0.18747355043888092, 0.14058533310890198])
        {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
        let mut j = base();
        j.as_object_mut().unwrap().remove("rope_theta");
        j.as_object_mut().unwrap().remove("rope_scaling");
        j["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 1e6});
        j["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
        let c = parse(j).unwrap();
        assert_eq!(c.rope_theta, 1e6);
        assert!(c.rope_scaling.is_none() && c.qkv_bias && !c.o_bias);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut j = base();
        j["num_key_value_heads"] = serde_json::json!(5);
        assert!(parse(j)
            .unwrap_err()
            .to_string()
            .contains("num_key_value_heads 5"));
        let mut j = base();
        j["hidden_size"] = serde_json::json!("wide");
        assert!(parse(j).unwrap_err().to_string().contains("`hidden_size`"));
        let mut j = base();
        j["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 2.0});
        assert!(parse(j).unwrap_err().to_string().contains("yarn"));
    }
}
