//! Tokenizers: a Hugging Face `tokenizer.json`, or one built from GGUF metadata
//! (`tokenizer.ggml.*`) in the same format and run by the `tokenizers` crate.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, MetaValue};

/// A tokenizer plus the special tokens a chat template and generation need.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Beginning-of-sequence token text, if the model has one.
    pub bos_token: Option<String>,
    /// End-of-sequence token text, if the model has one.
    pub eos_token: Option<String>,
}

/// GGUF `tokenizer.ggml.token_type` values.
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// GPT-2-style split patterns by `tokenizer.ggml.pre`, as llama.cpp defines them.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl Tokenizer {
    /// Loads `tokenizer.json`; special token texts come from the caller (usually
    /// `tokenizer_config.json`).
    pub fn from_file(
        path: &Path,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::format(path, format!("invalid tokenizer: {e}")))?;
        Ok(Self {
            inner,
            bos_token,
            eos_token,
        })
    }

    /// Builds the tokenizer stored in a GGUF file's metadata: `gpt2` byte-level BPE
    /// with merges, or `llama` SentencePiece (BPE with byte fallback, merges derived
    /// from the scores as transformers does).
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path();
        let tokens = string_array(gguf, "tokenizer.ggml.tokens")?;
        let types: Vec<i64> = match gguf.meta("tokenizer.ggml.token_type") {
            Some(MetaValue::Array(items)) => items
                .iter()
                .map(|v| v.as_f64().map_or(1, |f| f as i64))
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let special = |key: &str| -> Option<(u32, String)> {
            let id = gguf.meta(key)?.as_u64()? as u32;
            Some((id, tokens.get(id as usize)?.clone()))
        };
        let bos = special("tokenizer.ggml.bos_token_id");
        let eos = special("tokenizer.ggml.eos_token_id");
        let unk = special("tokenizer.ggml.unknown_token_id");
        let add_bos = gguf
            .meta("tokenizer.ggml.add_bos_token")
            .and_then(MetaValue::as_bool)
            .unwrap_or(false);
        let added_tokens: Vec<Value> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (_, t))| **t == TOKEN_CONTROL || **t == TOKEN_USER_DEFINED)
            .map(|(id, (content, t))| {
                json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": *t == TOKEN_CONTROL})
            })
            .collect();
        let vocab: serde_json::Map<String, Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        let kind = gguf.meta_str("tokenizer.ggml.model")?;
        let mut spec = match kind {
            "gpt2" => {
                let merges = string_array(gguf, "tokenizer.ggml.merges")?;
                let pre = gguf
                    .meta("tokenizer.ggml.pre")
                    .and_then(MetaValue::as_str)
                    .unwrap_or("default");
                json!({
                    "normalizer": null,
                    "pre_tokenizer": gpt2_pre_tokenizer(pre).ok_or_else(|| ModelError::format(path, format!(
                        "tokenizer.ggml.pre `{pre}` is not supported (default, gpt2, smollm, starcoder, llama-bpe, llama3, qwen2 are)")))?,
                    "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                              "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                              "ignore_merges": pre == "llama-bpe" || pre == "llama3", "vocab": vocab, "merges": merges},
                })
            }
            "llama" => {
                let add_space_prefix = gguf
                    .meta("tokenizer.ggml.add_space_prefix")
                    .and_then(MetaValue::as_bool)
                    .unwrap_or(true);
                let scores: Vec<f64> = match gguf.meta("tokenizer.ggml.scores") {
                    Some(MetaValue::Array(items)) => {
                        items.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect()
                    }
                    _ => {
                        return Err(ModelError::format(
                            path,
                            "metadata `tokenizer.ggml.scores` is missing",
                        ))
                    }
                };
                json!({
                    "normalizer": {"type": "Sequence", "normalizers": spm_normalizers(add_space_prefix)},
                    "pre_tokenizer": null,
                    "decoder": {"type": "Sequence", "decoders": spm_decoders(add_space_prefix)},
                    "model": {"type": "BPE", "dropout": null, "unk_token": unk.as_ref().map(|u| u.1.clone()),
                              "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
                              "byte_fallback": true, "ignore_merges": false, "vocab": vocab,
                              "merges": sentencepiece_merges(&tokens, &types, &scores)},
                })
            }
            other => {
                return Err(ModelError::format(
                    path,
                    format!("tokenizer.ggml.model `{other}` is not supported (gpt2, llama are)"),
                ))
            }
        };
        spec["version"] = json!("1.0");
        spec["truncation"] = Value::Null;
        spec["padding"] = Value::Null;
        spec["added_tokens"] = Value::Array(added_tokens);
        spec["post_processor"] = match (&bos, add_bos) {
            (Some((id, text)), true) => json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": text, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {text.clone(): {"id": text, "ids": [id], "tokens": [text]}}}),
            _ => Value::Null,
        };
        let bytes = serde_json::to_vec(&spec).expect("JSON values serialize");
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| {
            ModelError::format(
                path,
                format!("cannot build the tokenizer from metadata: {e}"),
            )
        })?;
        Ok(Self {
            inner,
            bos_token: bos.map(|b| b.1),
            eos_token: eos.map(|e| e.1),
        })
    }

    /// Token ids of `text`; `add_special_tokens` adds what the tokenizer's
    /// post-processor adds (a BOS for Llama 2, nothing for SmolLM2).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The id of a token's exact text.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Adds the `texts` the vocabulary lacks as new tokens, each matched whole before
    /// pre-tokenization (and kept when decoding); returns how many were new.
    pub fn add_tokens(&mut self, texts: &[&str]) -> usize {
        let tokens: Vec<tokenizers::AddedToken> = texts
            .iter()
            .filter(|t| !t.is_empty() && self.inner.token_to_id(t).is_none())
            .map(|t| tokenizers::AddedToken::from(t.to_string(), false))
            .collect();
        self.inner.add_tokens(&tokens)
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| ModelError::format(path, format!("cannot write the tokenizer: {e}")))
    }

    /// The tokenizer in `tokenizer.json` form.
    pub fn to_json(&self) -> Value {
        let text = self.inner.to_string(false).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// SentencePiece's normalization: spaces become `▁`, and a `▁` starts the text unless
/// the model was trained without that prefix.
fn spm_normalizers(add_space_prefix: bool) -> Vec<Value> {
    let prepend = json!({"type": "Prepend", "prepend": "\u{2581}"});
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    if add_space_prefix {
        vec![prepend, replace]
    } else {
        vec![replace]
    }
}

/// The inverse of [`spm_normalizers`], with byte-fallback tokens turned back into text.
fn spm_decoders(add_space_prefix: bool) -> Vec<Value> {
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    decoders
}

fn gpt2_pre_tokenizer(pre: &str) -> Option<Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Some(match pre {
        "default" | "gpt2" | "gpt-2" => byte_level(true),
        "smollm" | "starcoder" | "refact" | "codeshell" => {
            json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]})
        }
        "llama-bpe" | "llama3" => {
            json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(false)]})
        }
        "qwen2" => {
            json!({"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(false)]})
        }
        _ => return None,
    })
}

/// Merges for a SentencePiece BPE vocabulary, ordered by the score of the merged piece
/// (transformers' `generate_merges`): every split of a piece into two known pieces.
fn sentencepiece_merges(tokens: &[String], types: &[i64], scores: &[f64]) -> Vec<Value> {
    let index: std::collections::HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(usize, usize, f64)> = Vec::new();
    for (i, piece) in tokens.iter().enumerate() {
        if types.get(i).copied().unwrap_or(1) != 1 {
            continue;
        }
        let mut local: Vec<(usize, usize, f64)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                Some((
                    *index.get(l)?,
                    *index.get(r)?,
                    scores.get(i).copied().unwrap_or(0.0),
                ))
            })
            .collect();
        local.sort_by_key(|m| (m.0, m.1));
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges
        .into_iter()
        .map(|(l, r, _)| json!([tokens[l], tokens[r]]))
        .collect()
}

fn string_array(gguf: &GgufFile, key: &str) -> Result<Vec<String>> {
    gguf.meta(key)
        .and_then(MetaValue::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| ModelError::format(gguf.path(), format!("metadata `{key}` is missing")))
}
