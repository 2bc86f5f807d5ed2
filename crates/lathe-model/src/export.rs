//! Writing a model out: a Hugging Face folder (`config.json`, sharded safetensors,
//! tokenizer files) that transformers loads unchanged, or one GGUF file that
//! llama.cpp runs. Adapters are merged into their base weights first.

use std::collections::BTreeMap;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Map, Value};

use crate::config::{LlamaConfig, RopeScaling};
use crate::engine::Engine;
use crate::error::{ModelError, Result};
use crate::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue, WriteTensor};
use crate::tokenizer::Tokenizer;
use crate::weights::{hf_to_gguf_name, rope_rows_hf_to_gguf, HostTensor};

/// The floating-point type of exported safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    /// 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
}

impl SaveDtype {
    /// Parses `float32`, `float16` or `bfloat16` (transformers' `torch_dtype` names).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "float32" | "f32" => Some(Self::F32),
            "float16" | "f16" => Some(Self::F16),
            "bfloat16" | "bf16" => Some(Self::BF16),
            _ => None,
        }
    }

    /// The `torch_dtype` name.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }

    fn safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::F16 => Dtype::F16,
            Self::BF16 => Dtype::BF16,
        }
    }

    fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Self::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::F16 => values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
            Self::BF16 => values
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }
}

/// What goes into a Hugging Face folder besides the weights.
#[derive(Debug, Clone)]
pub struct HfExport {
    /// Weight type.
    pub dtype: SaveDtype,
    /// Largest shard in bytes; above it the weights are split with an index.
    pub max_shard_bytes: usize,
    /// The chat template for `tokenizer_config.json`.
    pub chat_template: Option<String>,
    /// Keys for `generation_config.json` besides the special token ids.
    pub generation: Map<String, Value>,
}

/// Writes `engine` as a Hugging Face model folder into `dir` (which must exist).
pub fn write_hf(engine: &Engine, dir: &Path, export: &HfExport) -> Result<()> {
    let config = engine.config();
    write_json(dir, "config.json", &hf_config(config, export.dtype)?)?;
    let mut generation = json!({
        "bos_token_id": config.bos_token_id,
        "eos_token_id": match config.eos_token_ids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
        "pad_token_id": config.pad_token_id,
    });
    for (k, v) in &export.generation {
        generation[k] = v.clone();
    }
    write_json(dir, "generation_config.json", &generation)?;
    write_safetensors(
        &engine.llama.hf_tensors(),
        dir,
        export.dtype,
        export.max_shard_bytes,
    )?;
    let pad = config.pad_token_id;
    write_tokenizer_files(
        &engine.tokenizer,
        export.chat_template.as_deref(),
        Some(config.max_position_embeddings),
        pad,
        dir,
    )
}

/// Writes `tokenizer.json`, `tokenizer_config.json` (with `chat_template`, the
/// context length and the padding token when known) and `special_tokens_map.json`
/// into `dir`.
pub fn write_tokenizer_files(
    tokenizer: &Tokenizer,
    chat_template: Option<&str>,
    model_max_length: Option<usize>,
    pad_token_id: Option<u32>,
    dir: &Path,
) -> Result<()> {
    tokenizer.save(&dir.join("tokenizer.json"))?;
    let mut tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(length) = model_max_length {
        tokenizer_config["model_max_length"] = json!(length);
    }
    if let Some(pad) = pad_token_id.and_then(|id| tokenizer.decode(&[id], false).ok()) {
        tokenizer_config["pad_token"] = json!(pad);
    }
    if let Some(template) = chat_template {
        tokenizer_config["chat_template"] = json!(template);
    }
    write_json(dir, "tokenizer_config.json", &tokenizer_config)?;
    let special: Map<String, Value> = [
        ("bos_token", &tokenizer.bos_token),
        ("eos_token", &tokenizer.eos_token),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), json!(v.as_ref()?))))
    .collect();
    write_json(dir, "special_tokens_map.json", &Value::Object(special))
}

fn write_json(dir: &Path, name: &str, value: &Value) -> Result<()> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(&path, text + "\n").map_err(|e| write_error(&path, e))
}

fn write_error(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::format(path, format!("cannot write: {e}"))
}

/// `config.json` for `config`, as transformers writes it.
pub fn hf_config(config: &LlamaConfig, dtype: SaveDtype) -> Result<Value> {
    let model_type = match config.architecture.as_str() {
        "MistralForCausalLM" => "mistral",
        "Qwen2ForCausalLM" => "qwen2",
        _ => "llama",
    };
    let rope_scaling = match &config.rope_scaling {
        None => Value::Null,
        Some(RopeScaling::Linear { factor }) => json!({"rope_type": "linear", "factor": factor}),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": *original_max_position_embeddings as u64,
        }),
        Some(RopeScaling::Factors(_)) => {
            return Err(ModelError::Training(
                "the model's RoPE scaling comes as per-frequency factors (a GGUF `rope_freqs` \
                 tensor), which config.json cannot express; export it as GGUF instead"
                    .into(),
            ))
        }
    };
    let mut json = json!({
        "architectures": [config.architecture],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": rope_scaling,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": config.tie_word_embeddings,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": match config.eos_token_ids.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
        "pad_token_id": config.pad_token_id,
        "torch_dtype": dtype.torch_name(),
        "use_cache": true,
    });
    match model_type {
        "qwen2" => {
            json["use_sliding_window"] = json!(config.sliding_window.is_some());
            json["sliding_window"] = json!(config.sliding_window);
        }
        "mistral" => json["sliding_window"] = json!(config.sliding_window),
        _ => {
            if config.qkv_bias != config.o_bias {
                return Err(ModelError::Training(
                    "a Llama model with biases on q/k/v but not on o_proj has no config.json form"
                        .into(),
                ));
            }
            json["attention_bias"] = json!(config.qkv_bias);
            json["mlp_bias"] = json!(false);
        }
    }
    Ok(json)
}

/// Writes `model.safetensors`, or shards of at most `max_shard_bytes` with
/// `model.safetensors.index.json`.
fn write_safetensors(
    tensors: &[(String, HostTensor)],
    dir: &Path,
    dtype: SaveDtype,
    max_shard_bytes: usize,
) -> Result<()> {
    let element = match dtype {
        SaveDtype::F32 => 4,
        SaveDtype::F16 | SaveDtype::BF16 => 2,
    };
    let mut shards: Vec<Vec<&(String, HostTensor)>> = vec![Vec::new()];
    let mut size = 0;
    for t in tensors {
        let bytes = t.1.values.len() * element;
        let current = shards.last_mut().expect("one shard");
        if !current.is_empty() && size + bytes > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        shards.last_mut().expect("one shard").push(t);
        size += bytes;
    }
    let count = shards.len();
    let name = |i: usize| match count {
        1 => "model.safetensors".to_string(),
        n => format!("model-{:05}-of-{n:05}.safetensors", i + 1),
    };
    let metadata = Some([("format".to_string(), "pt".to_string())].into());
    let mut weight_map = BTreeMap::new();
    let mut total = 0;
    for (i, shard) in shards.iter().enumerate() {
        let encoded: Vec<(&str, Vec<usize>, Vec<u8>)> = shard
            .iter()
            .map(|(name, t)| (name.as_str(), t.shape.clone(), dtype.encode(&t.values)))
            .collect();
        let views = encoded.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(dtype.safetensors(), shape.clone(), bytes)
                .expect("shape matches the values");
            (*name, view)
        });
        let path = dir.join(name(i));
        safetensors::serialize_to_file(views, metadata.clone(), &path)
            .map_err(|e| ModelError::format(&path, format!("cannot write: {e}")))?;
        for (tensor, _, bytes) in &encoded {
            weight_map.insert(tensor.to_string(), name(i));
            total += bytes.len();
        }
    }
    if count > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path = dir.join("model.safetensors.index.json");
        let text = serde_json::to_string_pretty(&index).expect("JSON values serialize");
        std::fs::write(&path, text).map_err(|e| write_error(&path, e))?;
    }
    Ok(())
}

/// How the matrices of a GGUF export are stored (vectors stay F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufQuant {
    /// 32-bit floats.
    F32,
    /// Half precision.
    F16,
    /// 8-bit blocks of 32.
    Q8_0,
    /// 4-bit blocks of 32.
    Q4_0,
    /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the head and for the value and
    /// down projections of some layers (rows that are not whole 256-value blocks fall
    /// back to Q5_0 and Q8_0, as llama.cpp does).
    Q4KM,
}

impl GgufQuant {
    /// Parses `f32`, `f16`, `q8_0`, `q4_0` or `q4_k_m`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Some(Self::F32),
            "f16" => Some(Self::F16),
            "q8_0" => Some(Self::Q8_0),
            "q4_0" => Some(Self::Q4_0),
            "q4_k_m" => Some(Self::Q4KM),
            _ => None,
        }
    }

    /// The lower-case name (`q4_k_m` …).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4KM => "q4_k_m",
        }
    }

    /// The type of the matrix `name` (GGUF name) with rows of `row` values in a model
    /// of `layers` layers, as llama.cpp's quantizer picks it.
    fn matrix_type(self, name: &str, row: usize, layers: usize) -> GgmlType {
        let ty = match self {
            Self::F32 => GgmlType::F32,
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4KM => {
                let layer = name
                    .strip_prefix("blk.")
                    .and_then(|r| r.split('.').next())
                    .and_then(|n| n.parse::<usize>().ok());
                let more_bits =
                    |i: usize| i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2;
                let wide = name == "output.weight"
                    || ((name.contains(".attn_v.") || name.contains(".ffn_down."))
                        && layer.is_some_and(more_bits));
                if wide {
                    GgmlType::Q6_K
                } else {
                    GgmlType::Q4_K
                }
            }
        };
        match ty {
            _ if row.is_multiple_of(ty.block_len()) => ty,
            GgmlType::Q4_K => GgmlType::Q5_0,
            GgmlType::Q6_K => GgmlType::Q8_0,
            _ => GgmlType::F16,
        }
    }

    /// llama.cpp's `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q8_0 => 7,
            Self::Q4KM => 15,
        }
    }
}

/// What goes into a GGUF file besides the weights.
#[derive(Debug, Clone)]
pub struct GgufExport {
    /// Matrix storage.
    pub quant: GgufQuant,
    /// `general.name`.
    pub name: String,
    /// The chat template for `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// GGUF token types.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;
const TOKEN_BYTE: i32 = 6;

/// Writes `engine` as one GGUF file at `path`, architecture `llama` (or `qwen2`), with
/// the tokenizer and chat template in its metadata. `source` is the GGUF file the
/// model was loaded from, if any: its tokenizer pre-type and scores are kept.
pub fn write_gguf(
    engine: &Engine,
    path: &Path,
    export: &GgufExport,
    source: Option<&GgufFile>,
) -> Result<()> {
    let config = engine.config();
    let arch = match config.architecture.as_str() {
        "Qwen2ForCausalLM" => "qwen2",
        _ => "llama",
    };
    let mut w = GgufWriter::new();
    let key = |k: &str| format!("{arch}.{k}");
    let u32_of = |v: usize| MetaValue::U32(v as u32);
    w.meta("general.architecture", MetaValue::String(arch.into()))
        .meta("general.name", MetaValue::String(export.name.clone()))
        .meta(
            "general.file_type",
            MetaValue::U32(export.quant.file_type()),
        )
        .meta("general.quantization_version", MetaValue::U32(2))
        .meta(&key("vocab_size"), u32_of(config.vocab_size))
        .meta(
            &key("context_length"),
            u32_of(config.max_position_embeddings),
        )
        .meta(&key("embedding_length"), u32_of(config.hidden_size))
        .meta(&key("block_count"), u32_of(config.num_hidden_layers))
        .meta(
            &key("feed_forward_length"),
            u32_of(config.intermediate_size),
        )
        .meta(&key("rope.dimension_count"), u32_of(config.head_dim))
        .meta(
            &key("attention.head_count"),
            u32_of(config.num_attention_heads),
        )
        .meta(
            &key("attention.head_count_kv"),
            u32_of(config.num_key_value_heads),
        )
        .meta(&key("attention.key_length"), u32_of(config.head_dim))
        .meta(&key("attention.value_length"), u32_of(config.head_dim))
        .meta(
            &key("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(config.rms_norm_eps as f32),
        )
        .meta(
            &key("rope.freq_base"),
            MetaValue::F32(config.rope_theta as f32),
        );
    match &config.rope_scaling {
        None => {}
        Some(RopeScaling::Linear { factor }) => {
            w.meta(
                &key("rope.scaling.type"),
                MetaValue::String("linear".into()),
            )
            .meta(&key("rope.scaling.factor"), MetaValue::F32(*factor as f32));
        }
        // llama.cpp takes Llama 3 scaling as one divisor per frequency.
        Some(_) => {
            let unscaled = LlamaConfig {
                rope_scaling: None,
                ..config.clone()
            }
            .rope_inv_freq();
            let factors = unscaled
                .iter()
                .zip(config.rope_inv_freq())
                .map(|(base, scaled)| (base / scaled) as f32)
                .collect();
            w.tensor(WriteTensor {
                name: "rope_freqs.weight".into(),
                shape: vec![config.head_dim / 2],
                ty: GgmlType::F32,
                values: factors,
            });
        }
    }
    tokenizer_metadata(engine, source, &mut w)?;
    if let Some(template) = &export.chat_template {
        w.meta(
            "tokenizer.chat_template",
            MetaValue::String(template.clone()),
        );
    }
    for (name, t) in engine.llama.hf_tensors() {
        let gguf_name = hf_to_gguf_name(&name).ok_or_else(|| ModelError::Tensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            message: "has no GGUF name".into(),
        })?;
        let heads = if name.contains("q_proj.") {
            Some(config.num_attention_heads)
        } else if name.contains("k_proj.") {
            Some(config.num_key_value_heads)
        } else {
            None
        };
        let values = match heads {
            Some(h) if arch == "llama" => {
                let cols = t.shape[1..].iter().product();
                rope_rows_hf_to_gguf(&t.values, h, t.shape[0], cols)
            }
            _ => t.values,
        };
        let row = *t.shape.last().expect("tensors have a shape");
        let ty = match t.shape.len() {
            1 => GgmlType::F32,
            _ => export
                .quant
                .matrix_type(&gguf_name, row, config.num_hidden_layers),
        };
        w.tensor(WriteTensor {
            name: gguf_name,
            shape: t.shape,
            ty,
            values,
        });
    }
    w.write(path)
}

/// `tokenizer.ggml.*` from the engine's tokenizer: `gpt2` byte-level BPE, or `llama`
/// SentencePiece (BPE with byte fallback). Tokens beyond the tokenizer up to the
/// model's vocabulary are padding, as llama.cpp's converter writes them.
fn tokenizer_metadata(
    engine: &Engine,
    source: Option<&GgufFile>,
    w: &mut GgufWriter,
) -> Result<()> {
    let json = engine.tokenizer.to_json();
    let unsupported = |what: &str| {
        ModelError::Tokenizer(format!(
            "cannot write this tokenizer to GGUF: {what} (BPE tokenizers can be written)"
        ))
    };
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(unsupported(&format!("model type {}", model["type"])));
    }
    let vocab_size = engine.config().vocab_size;
    let mut tokens = vec![None; vocab_size];
    let mut types = vec![TOKEN_UNUSED; vocab_size];
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| unsupported("no vocab"))?;
    let byte_fallback = model["byte_fallback"].as_bool().unwrap_or(false);
    for (text, id) in vocab {
        let id = id.as_u64().unwrap_or(u64::MAX) as usize;
        if id < vocab_size {
            let is_byte = byte_fallback && text.len() == 6 && text.starts_with("<0x");
            types[id] = if is_byte { TOKEN_BYTE } else { TOKEN_NORMAL };
            tokens[id] = Some(text.clone());
        }
    }
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let id = added["id"].as_u64().unwrap_or(u64::MAX) as usize;
        if id < vocab_size {
            let special = added["special"].as_bool().unwrap_or(false);
            types[id] = if special {
                TOKEN_CONTROL
            } else {
                TOKEN_USER_DEFINED
            };
            tokens[id] = added["content"].as_str().map(str::to_string);
        }
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();
    let merges: Vec<String> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(pair) => Some(format!(
                "{} {}",
                pair.first()?.as_str()?,
                pair.get(1)?.as_str()?
            )),
            _ => None,
        })
        .collect();
    let strings = |items: &[String]| {
        MetaValue::Array(items.iter().map(|s| MetaValue::String(s.clone())).collect())
    };
    let source_meta = |k: &str| source.and_then(|f| f.meta(k));
    if byte_fallback {
        // SentencePiece: merge order as scores, the piece made by merge `r` scoring −r.
        let rank: std::collections::HashMap<String, usize> = merges
            .iter()
            .enumerate()
            .map(|(r, m)| (m.replacen(' ', "", 1), r))
            .collect();
        let scores = match source_meta("tokenizer.ggml.scores") {
            Some(MetaValue::Array(s)) if s.len() == tokens.len() => MetaValue::Array(s.clone()),
            _ => MetaValue::Array(
                tokens
                    .iter()
                    .map(|t| MetaValue::F32(rank.get(t).map_or(0.0, |r| -(*r as f32) - 1.0)))
                    .collect(),
            ),
        };
        let prepends = json["normalizer"].to_string().contains("Prepend");
        w.meta("tokenizer.ggml.model", MetaValue::String("llama".into()))
            .meta("tokenizer.ggml.scores", scores)
            .meta("tokenizer.ggml.add_space_prefix", MetaValue::Bool(prepends));
    } else {
        let pre = match source_meta("tokenizer.ggml.pre").and_then(MetaValue::as_str) {
            Some(pre) => pre.to_string(),
            None => gpt2_pre_name(&json["pre_tokenizer"]).to_string(),
        };
        w.meta("tokenizer.ggml.model", MetaValue::String("gpt2".into()))
            .meta("tokenizer.ggml.pre", MetaValue::String(pre))
            .meta("tokenizer.ggml.merges", strings(&merges));
    }
    w.meta("tokenizer.ggml.tokens", strings(&tokens)).meta(
        "tokenizer.ggml.token_type",
        MetaValue::Array(types.into_iter().map(MetaValue::I32).collect()),
    );
    let id_of = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| engine.tokenizer.token_to_id(t))
    };
    let config = engine.config();
    let bos = config
        .bos_token_id
        .or_else(|| id_of(&engine.tokenizer.bos_token));
    let eos = config
        .eos_token_ids
        .first()
        .copied()
        .or_else(|| id_of(&engine.tokenizer.eos_token));
    for (k, id) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("padding_token_id", config.pad_token_id),
    ] {
        if let Some(id) = id {
            w.meta(&format!("tokenizer.ggml.{k}"), MetaValue::U32(id));
        }
    }
    // Whether the tokenizer puts a BOS before every text.
    let adds_bos = bos.is_some() && engine.tokenizer.encode("a", true)?.first() == bos.as_ref();
    w.meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(adds_bos));
    Ok(())
}

/// llama.cpp's pre-tokenizer name for a `tokenizer.json` pre-tokenizer.
fn gpt2_pre_name(pre: &Value) -> &'static str {
    let text = pre.to_string();
    if text.contains("Digits") {
        "smollm"
    } else if text.contains(r"\\p{N}{1,3}") {
        "llama-bpe"
    } else if text.contains("Split") {
        "qwen2"
    } else {
        "gpt2"
    }
}
