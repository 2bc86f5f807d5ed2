//! A tiny random Llama written by the test itself as a Hugging Face folder and as a
//! GGUF file, with a byte-level BPE tokenizer and a ChatML template.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use lathe_model::gguf::{GgmlType, GgufWriter, MetaValue, WriteTensor};
use lathe_model::weights::{hf_to_gguf_name, rope_rows_hf_to_gguf};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 16;
pub const INTERMEDIATE: usize = 128;
pub const LAYERS: usize = 2;
pub const CONTEXT: usize = 128;

pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Which flavour of the family the tiny model is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    /// Llama without biases.
    Llama,
    /// Llama with `attention_bias`: q, k, v and o projections have biases.
    LlamaBias,
    /// Qwen2: q, k, v biases; GGUF `qwen2` stores q/k unpermuted.
    Qwen2,
}

/// GPT-2's byte → printable character map.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut map = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            map[b as usize] = char::from_u32(256 + extra).unwrap();
            extra += 1;
        } else {
            map[b as usize] = char::from_u32(b).unwrap();
        }
    }
    map
}

/// Vocabulary (bytes, merged pieces, then `<|im_start|>`, `<|im_end|>`) and merges.
pub struct Vocab {
    pub tokens: Vec<String>,
    pub merges: Vec<(String, String)>,
    pub specials: Vec<String>,
}

pub fn vocab() -> Vocab {
    let chars = byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let space = chars[b' ' as usize];
    let pairs = [
        (format!("{space}"), "t".to_string()),
        ("h".into(), "e".into()),
        (format!("{space}t"), "he".into()),
        ("i".into(), "n".into()),
        (format!("{space}"), "a".into()),
    ];
    let mut merges = Vec::new();
    for (a, b) in pairs {
        tokens.push(format!("{a}{b}"));
        merges.push((a, b));
    }
    let specials = vec!["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    tokens.extend(specials.iter().cloned());
    Vocab {
        tokens,
        merges,
        specials,
    }
}

pub fn eos_id() -> u32 {
    vocab().tokens.len() as u32 - 1
}

/// Random weights under Hugging Face names, `[out, in]` layout.
pub fn weights(
    vocab_size: usize,
    tie: bool,
    seed: u64,
    arch: Arch,
) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = BTreeMap::new();
    let mut add = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| offset + scale * (rng.random::<f32>() * 2.0 - 1.0))
            .collect();
        w.insert(name, (shape, values));
    };
    add(
        "model.embed_tokens.weight".into(),
        vec![vocab_size, HIDDEN],
        1.0,
        0.0,
    );
    add("model.norm.weight".into(), vec![HIDDEN], 0.2, 1.0);
    if !tie {
        add("lm_head.weight".into(), vec![vocab_size, HIDDEN], 0.3, 0.0);
    }
    for i in 0..LAYERS {
        let p = |n: &str| format!("model.layers.{i}.{n}");
        if arch != Arch::Llama {
            add(p("self_attn.q_proj.bias"), vec![HEADS * HEAD_DIM], 0.5, 0.0);
            add(
                p("self_attn.k_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
                0.5,
                0.0,
            );
            add(
                p("self_attn.v_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
                0.5,
                0.0,
            );
        }
        if arch == Arch::LlamaBias {
            add(p("self_attn.o_proj.bias"), vec![HIDDEN], 0.5, 0.0);
        }
        add(p("input_layernorm.weight"), vec![HIDDEN], 0.2, 1.0);
        add(p("post_attention_layernorm.weight"), vec![HIDDEN], 0.2, 1.0);
        add(
            p("self_attn.q_proj.weight"),
            vec![HEADS * HEAD_DIM, HIDDEN],
            0.3,
            0.0,
        );
        add(
            p("self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            0.3,
            0.0,
        );
        add(
            p("self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
            0.3,
            0.0,
        );
        add(
            p("self_attn.o_proj.weight"),
            vec![HIDDEN, HEADS * HEAD_DIM],
            0.2,
            0.0,
        );
        add(
            p("mlp.gate_proj.weight"),
            vec![INTERMEDIATE, HIDDEN],
            0.2,
            0.0,
        );
        add(
            p("mlp.up_proj.weight"),
            vec![INTERMEDIATE, HIDDEN],
            0.2,
            0.0,
        );
        add(
            p("mlp.down_proj.weight"),
            vec![HIDDEN, INTERMEDIATE],
            0.2,
            0.0,
        );
    }
    w
}

pub fn config_json(vocab_size: usize, tie: bool) -> serde_json::Value {
    config_json_arch(vocab_size, tie, Arch::Llama)
}

pub fn config_json_arch(vocab_size: usize, tie: bool, arch: Arch) -> serde_json::Value {
    json!({
        "architectures": [if arch == Arch::Qwen2 { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "attention_bias": arch == Arch::LlamaBias,
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": tie,
        "max_position_embeddings": CONTEXT,
        "bos_token_id": null,
        "eos_token_id": vocab_size - 1,
    })
}

fn tokenizer_json(v: &Vocab) -> serde_json::Value {
    let base = v.tokens.len() - v.specials.len();
    let vocab: serde_json::Map<String, serde_json::Value> = v
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = v
        .specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": base + i, "content": s, "single_word": false, "lstrip": false,
                             "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let merges: Vec<String> = v.merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// Rewrites the `config.json` of a model folder through `edit`.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    write_json(&path, &config);
}

/// Which float type the safetensors file stores.
#[derive(Clone, Copy)]
pub enum StDtype {
    F32,
    F16,
    BF16,
}

/// Writes a Hugging Face folder: config, tokenizer files, weights (one file, or
/// `shards` files with an index).
pub fn write_hf_folder(dir: &Path, tie: bool, seed: u64, dtype: StDtype, shards: usize) {
    write_hf_folder_arch(dir, tie, seed, dtype, shards, Arch::Llama)
}

pub fn write_hf_folder_arch(
    dir: &Path,
    tie: bool,
    seed: u64,
    dtype: StDtype,
    shards: usize,
    arch: Arch,
) {
    std::fs::create_dir_all(dir).unwrap();
    let v = vocab();
    write_json(
        &dir.join("config.json"),
        &config_json_arch(v.tokens.len(), tie, arch),
    );
    write_json(&dir.join("tokenizer.json"), &tokenizer_json(&v));
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({"chat_template": CHATML, "eos_token": "<|im_end|>", "bos_token": null}),
    );
    write_json(
        &dir.join("generation_config.json"),
        &json!({"eos_token_id": [eos_id()]}),
    );
    let w = weights(v.tokens.len(), tie, seed, arch);
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = w
        .iter()
        .map(|(name, (shape, values))| {
            let bytes: Vec<u8> = match dtype {
                StDtype::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
                StDtype::F16 => values
                    .iter()
                    .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                    .collect(),
                StDtype::BF16 => values
                    .iter()
                    .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                    .collect(),
            };
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let st_dtype = match dtype {
        StDtype::F32 => safetensors::Dtype::F32,
        StDtype::F16 => safetensors::Dtype::F16,
        StDtype::BF16 => safetensors::Dtype::BF16,
    };
    let chunk = encoded.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (s, part) in encoded.chunks(chunk).enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", s + 1, shards)
        };
        let views: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|(name, shape, bytes)| {
                weight_map.insert(name.clone(), json!(file));
                (
                    name.clone(),
                    safetensors::tensor::TensorView::new(st_dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    if shards > 1 {
        write_json(
            &dir.join("model.safetensors.index.json"),
            &json!({"metadata": {}, "weight_map": weight_map}),
        );
    }
}

/// Writes the same model as a GGUF file, q/k rows permuted as llama.cpp stores them.
pub fn write_gguf(path: &Path, tie: bool, seed: u64) {
    write_gguf_arch(path, tie, seed, Arch::Llama)
}

/// As [`write_gguf`]; `qwen2` files keep q/k rows in Hugging Face order.
pub fn write_gguf_arch(path: &Path, tie: bool, seed: u64, arch: Arch) {
    gguf_writer(tie, seed, arch).write(path).unwrap();
}

/// The metadata and tensors of [`write_gguf_arch`], for tests that add more.
pub fn gguf_writer(tie: bool, seed: u64, arch: Arch) -> GgufWriter {
    let name = if arch == Arch::Qwen2 {
        "qwen2"
    } else {
        "llama"
    };
    let key = |k: &str| format!("{name}.{k}");
    let v = vocab();
    let n = v.tokens.len();
    let mut g = GgufWriter::new();
    let u32v = |x: usize| MetaValue::U32(x as u32);
    g.meta("general.architecture", MetaValue::String(name.into()))
        .meta(&key("context_length"), u32v(CONTEXT))
        .meta(&key("embedding_length"), u32v(HIDDEN))
        .meta(&key("block_count"), u32v(LAYERS))
        .meta(&key("feed_forward_length"), u32v(INTERMEDIATE))
        .meta(&key("attention.head_count"), u32v(HEADS))
        .meta(&key("attention.head_count_kv"), u32v(KV_HEADS))
        .meta(&key("rope.dimension_count"), u32v(HEAD_DIM))
        .meta(&key("rope.freq_base"), MetaValue::F32(10000.0))
        .meta(
            "llama.attention.layer_norm_rms_epsilon",
            MetaValue::F32(1e-5),
        )
        .meta("tokenizer.ggml.model", MetaValue::String("gpt2".into()))
        .meta("tokenizer.ggml.pre", MetaValue::String("default".into()))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(
                v.tokens
                    .iter()
                    .map(|t| MetaValue::String(t.clone()))
                    .collect(),
            ),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(
                (0..n)
                    .map(|i| MetaValue::I32(if i >= n - v.specials.len() { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .meta(
            "tokenizer.ggml.merges",
            MetaValue::Array(
                v.merges
                    .iter()
                    .map(|(a, b)| MetaValue::String(format!("{a} {b}")))
                    .collect(),
            ),
        )
        .meta("tokenizer.ggml.eos_token_id", u32v(n - 1))
        .meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(false))
        .meta("tokenizer.chat_template", MetaValue::String(CHATML.into()));
    for (name, (shape, values)) in weights(n, tie, seed, arch) {
        let cols = shape.get(1).copied().unwrap_or(1);
        let values = if arch == Arch::Qwen2 {
            values
        } else if name.contains("q_proj") {
            rope_rows_hf_to_gguf(&values, HEADS, shape[0], cols)
        } else if name.contains("k_proj") {
            rope_rows_hf_to_gguf(&values, KV_HEADS, shape[0], cols)
        } else {
            values
        };
        g.tensor(WriteTensor {
            name: hf_to_gguf_name(&name).unwrap(),
            shape,
            ty: GgmlType::F32,
            values,
        });
    }
    g
}
