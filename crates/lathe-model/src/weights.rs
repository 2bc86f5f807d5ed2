//! Checkpoint readers behind one interface: tensors by their Hugging Face name, as f32.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// A tensor in host memory: shape outermost first, values row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// A checkpoint that yields tensors by their Hugging Face name.
pub trait WeightSource {
    /// Tensor `name` as f32, or `None` when the checkpoint lacks it.
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>>;
    /// The file that errors should name.
    fn path(&self) -> &Path;
}

/// `model.safetensors` or a sharded checkpoint (`model.safetensors.index.json`),
/// memory-mapped; each file's header is parsed once, at open.
pub struct SafetensorsWeights {
    files: Vec<(PathBuf, Mmap)>,
    index: BTreeMap<String, StoredTensor>,
    describe: PathBuf,
}

/// Where one tensor lies: its file (index into `files`), type, shape and byte range.
struct StoredTensor {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

impl SafetensorsWeights {
    /// Opens the checkpoint in a Hugging Face model folder.
    pub fn open_folder(dir: &Path) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.exists() {
            let shards = shard_files(&index_path)?;
            let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
            Self::open_files(&paths, index_path)
        } else if single.exists() {
            Self::open_files(std::slice::from_ref(&single), single.clone())
        } else {
            Err(ModelError::Resolve(format!(
                "{}: no model.safetensors or model.safetensors.index.json",
                dir.display()
            )))
        }
    }

    fn open_files(paths: &[PathBuf], describe: PathBuf) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
            // SAFETY: read-only map of a checkpoint file, not modified while loaded.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
            let (header_len, metadata) = SafeTensors::read_metadata(&map).map_err(|e| {
                ModelError::format(path, format!("not a valid safetensors file: {e}"))
            })?;
            // Data offsets count from the end of the 8-byte length and the header.
            let data_start = 8 + header_len;
            for (name, info) in metadata.tensors() {
                let (start, end) = info.data_offsets;
                index.insert(
                    name,
                    StoredTensor {
                        file: i,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        bytes: data_start + start..data_start + end,
                    },
                );
            }
            files.push((path.clone(), map));
        }
        Ok(Self {
            files,
            index,
            describe,
        })
    }
}

/// The shard file names listed in a `model.safetensors.index.json`, sorted, once each.
pub fn shard_files(index_path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| ModelError::io(index_path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::format(index_path, format!("invalid JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::format(index_path, "no `weight_map` object"))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

impl WeightSource for SafetensorsWeights {
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(stored) = self.index.get(name) else {
            return Ok(None);
        };
        let (path, map) = &self.files[stored.file];
        let bytes = &map[stored.bytes.clone()];
        let values = float_values(stored.dtype, bytes).ok_or_else(|| ModelError::Tensor {
            path: path.clone(),
            tensor: name.into(),
            message: format!(
                "dtype {:?} is not supported (F32, F16, BF16 are)",
                stored.dtype
            ),
        })?;
        Ok(Some(HostTensor {
            shape: stored.shape.clone(),
            values,
        }))
    }

    fn path(&self) -> &Path {
        &self.describe
    }
}

/// Little-endian F32, F16 or BF16 safetensors bytes as f32; `None` for other types.
pub fn float_values(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// A GGUF checkpoint read under Hugging Face names. llama.cpp stores the q/k
/// projections of `llama` models with rows permuted for its adjacent-pair RoPE; they
/// are permuted back here so one model code path serves both sources.
pub struct GgufWeights {
    file: GgufFile,
    heads: usize,
    kv_heads: usize,
    permuted_qk: bool,
}

impl GgufWeights {
    /// Wraps an open GGUF file whose hyperparameters are `config`.
    pub fn new(file: GgufFile, config: &LlamaConfig) -> Self {
        let permuted_qk = file.meta_str("general.architecture").ok() == Some("llama");
        Self {
            file,
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            permuted_qk,
        }
    }

    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

impl WeightSource for GgufWeights {
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(gguf_name) = hf_to_gguf_name(name) else {
            return Ok(None);
        };
        let Some(info) = self.file.tensor_info(&gguf_name) else {
            return Ok(None);
        };
        let (shape, values) = (info.shape(), self.file.dequantized(info)?);
        let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
            Some(self.heads)
        } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
            Some(self.kv_heads)
        } else {
            None
        };
        let values = match heads {
            Some(h) if self.permuted_qk => {
                let cols: usize = shape[1..].iter().product();
                rope_rows_gguf_to_hf(&values, h, shape[0], cols)
            }
            _ => values,
        };
        Ok(Some(HostTensor { shape, values }))
    }

    fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Maps a Hugging Face Llama tensor name to its GGUF name.
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, kind) = rest.rsplit_once('.')?;
    let gguf = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{gguf}.{kind}"))
}

/// Undoes llama.cpp's q/k row permutation: HF row (head, half, i) is GGUF row (head, i, half).
pub fn rope_rows_gguf_to_hf(values: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rope_rows(values, heads, rows, cols, false)
}

/// Applies llama.cpp's q/k row permutation, for writing GGUF files.
pub fn rope_rows_hf_to_gguf(values: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    permute_rope_rows(values, heads, rows, cols, true)
}

fn permute_rope_rows(
    values: &[f32],
    heads: usize,
    rows: usize,
    cols: usize,
    to_gguf: bool,
) -> Vec<f32> {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for hf_row in 0..rows {
        let (h, rem) = (hf_row / head_dim, hf_row % head_dim);
        let gguf_row = h * head_dim + (rem % half) * 2 + rem / half;
        let (src, dst) = if to_gguf {
            (hf_row, gguf_row)
        } else {
            (gguf_row, hf_row)
        };
        out[dst * cols..(dst + 1) * cols].copy_from_slice(&values[src * cols..(src + 1) * cols]);
    }
    out
}
