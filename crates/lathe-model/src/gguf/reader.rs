//! Reading GGUF files: header, metadata and tensor infos parsed with bounds checks;
//! tensor data memory-mapped and dequantized on request.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{dequantize, GgmlType, MetaValue, Metadata, DEFAULT_ALIGNMENT, MAGIC, SUPPORTED_TYPES};
use crate::error::{ModelError, Result};

/// One tensor's entry in the GGUF tensor table.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost first (ggml order).
    pub ggml_dims: Vec<usize>,
    /// The storage type.
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// Dimensions outermost first, as PyTorch and safetensors order them.
    pub fn shape(&self) -> Vec<usize> {
        self.ggml_dims.iter().rev().copied().collect()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.ggml_dims.iter().product()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An open GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    /// GGUF format version (2 or 3).
    pub version: u32,
    /// All metadata key/values.
    pub metadata: Metadata,
    tensors: Vec<TensorInfo>,
    /// Tensor name → index into `tensors`.
    by_name: HashMap<String, usize>,
    data_start: usize,
}

impl GgufFile {
    /// Opens and parses `path`; every tensor's bytes are checked to lie inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the map is read-only; a file truncated under us while mapped is outside
        // what any reader can guard against, as with every mmap-based loader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let mut cur = Cursor {
            buf: &map,
            pos: 0,
            path,
        };
        let magic = cur.u32("magic")?;
        if magic != MAGIC {
            return Err(ModelError::format(path, "not a GGUF file (bad magic)"));
        }
        let version = cur.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(ModelError::format(
                path,
                format!("GGUF version {version} is not supported (2 and 3 are)"),
            ));
        }
        let tensor_count = cur.count("tensor count", 24)?;
        let kv_count = cur.count("metadata count", 12)?;
        let mut metadata = Metadata::new();
        for _ in 0..kv_count {
            let key = cur.string("metadata key")?;
            let ty = cur.u32("metadata type")?;
            let value = cur.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = cur.string("tensor name")?;
            let n_dims = cur.u32("tensor rank")? as usize;
            if n_dims == 0 || n_dims > 4 {
                return Err(ModelError::format(
                    path,
                    format!("tensor `{name}` has rank {n_dims} (1 to 4 allowed)"),
                ));
            }
            let mut ggml_dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = cur.u64("tensor dimension")?;
                ggml_dims.push(usize::try_from(d).map_err(|_| {
                    ModelError::format(path, format!("tensor `{name}`: dimension {d} too large"))
                })?);
            }
            let type_id = cur.u32("tensor type")?;
            let ty = GgmlType::from_id(type_id).ok_or_else(|| ModelError::Tensor {
                path: path.to_path_buf(),
                tensor: name.clone(),
                message: format!(
                    "unknown or unsupported GGUF tensor type id {type_id} (supported: {SUPPORTED_TYPES})"
                ),
            })?;
            let offset = cur.u64("tensor offset")? as usize;
            tensors.push(TensorInfo {
                name,
                ggml_dims,
                ty,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two())
                .ok_or_else(|| {
                    ModelError::format(path, "general.alignment is not a power of two")
                })? as usize,
            None => DEFAULT_ALIGNMENT,
        };
        let data_start = cur.pos.div_ceil(alignment) * alignment;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let gguf = Self {
            path: path.to_path_buf(),
            map,
            version,
            metadata,
            tensors,
            by_name,
            data_start,
        };
        for t in &gguf.tensors {
            gguf.tensor_bytes(t)?;
        }
        Ok(gguf)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// A metadata string, or an error naming the key.
    pub fn meta_str(&self, key: &str) -> Result<&str> {
        self.meta(key)
            .and_then(MetaValue::as_str)
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// A metadata unsigned integer, or an error naming the key.
    pub fn meta_usize(&self, key: &str) -> Result<usize> {
        self.meta(key)
            .and_then(MetaValue::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| self.missing(key, "an unsigned integer"))
    }

    /// A metadata float, or an error naming the key.
    pub fn meta_f64(&self, key: &str) -> Result<f64> {
        self.meta(key)
            .and_then(MetaValue::as_f64)
            .ok_or_else(|| self.missing(key, "a number"))
    }

    /// A metadata unsigned integer if the key is present (an error if it is not one).
    pub fn meta_usize_opt(&self, key: &str) -> Result<Option<usize>> {
        self.meta(key).map(|_| self.meta_usize(key)).transpose()
    }

    /// A metadata number if the key is present (an error if it is not one).
    pub fn meta_f64_opt(&self, key: &str) -> Result<Option<f64>> {
        self.meta(key).map(|_| self.meta_f64(key)).transpose()
    }

    fn missing(&self, key: &str, what: &str) -> ModelError {
        ModelError::format(
            &self.path,
            format!("metadata `{key}` is missing or not {what}"),
        )
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let bad = |message: String| ModelError::Tensor {
            path: self.path.clone(),
            tensor: info.name.clone(),
            message,
        };
        let size = info.ty.bytes_for(info.len()).ok_or_else(|| {
            bad(format!(
                "{} values is not a whole number of {:?} blocks",
                info.len(),
                info.ty
            ))
        })?;
        let start = self.data_start.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.map.len() => Ok(&self.map[s..e]),
            _ => Err(bad(format!(
                "data at offset {} + {size} bytes lies past the end of the file ({} bytes): the file is truncated",
                info.offset,
                self.map.len()
            ))),
        }
    }

    /// Tensor `name` dequantized to f32, with its shape outermost first.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.tensor_info(name).ok_or_else(|| ModelError::Tensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            message: "missing from the file".into(),
        })?;
        Ok((info.shape(), self.dequantized(info)?))
    }

    /// The values of a tensor of this file, dequantized to f32.
    pub fn dequantized(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        Ok(dequantize(info.ty, self.tensor_bytes(info)?, info.len()))
    }
}

/// A bounds-checked little-endian reader over the mapped header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            _ => Err(ModelError::format(
                self.path,
                format!(
                    "truncated GGUF header: reading {what} at byte {} needs {n} bytes, the file has {}",
                    self.pos,
                    self.buf.len()
                ),
            )),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items each at least `min_item_bytes` long, checked against what is left.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_item_bytes as u64) > left {
            return Err(ModelError::format(
                self.path,
                format!(
                    "{what} {n} at byte {} cannot fit in the file: it is truncated or corrupt",
                    self.pos - 8
                ),
            ));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(what, 1)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            ModelError::format(
                self.path,
                format!("{what} at byte {} is not UTF-8", self.pos),
            )
        })
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(key)?[0]),
            1 => MetaValue::I8(self.array::<1>(key)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetaValue::U32(self.u32(key)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => MetaValue::Bool(self.array::<1>(key)?[0] != 0),
            8 => MetaValue::String(self.string(key)?),
            9 if depth < 2 => {
                let item_ty = self.u32(key)?;
                let n = self.count(key, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64(key)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            _ => {
                return Err(ModelError::format(
                    self.path,
                    format!("metadata `{key}` has unknown value type {ty}"),
                ))
            }
        })
    }
}
