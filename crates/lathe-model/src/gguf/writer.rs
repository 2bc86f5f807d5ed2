//! Writing GGUF files (version 3) with F32, F16, BF16, Q8_0, Q5_0, Q4_0, Q4_K and Q6_K
//! tensors.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::{quantize, GgmlType, MetaValue, DEFAULT_ALIGNMENT, MAGIC};
use crate::error::{ModelError, Result};

/// A tensor to write: its shape outermost first and its values row-major.
pub struct WriteTensor {
    /// The GGUF tensor name.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Storage type: F32, F16, BF16, Q8_0, Q5_0 or Q4_0 (the last dimension a multiple
    /// of 32), Q4_K or Q6_K (of 256).
    pub ty: GgmlType,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// Collects metadata and tensors, then writes one GGUF file.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<WriteTensor>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key/value (kept in insertion order).
    pub fn meta(&mut self, key: &str, value: MetaValue) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, tensor: WriteTensor) -> &mut Self {
        self.tensors.push(tensor);
        self
    }

    /// Writes the file to `path`; tensors of a type the writer cannot encode (or whose
    /// rows are not whole blocks) are refused before anything is written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let blobs = self
            .tensors
            .iter()
            .map(|t| {
                let row = t.shape.last().copied().unwrap_or(1);
                row.is_multiple_of(t.ty.block_len())
                    .then(|| quantize(t.ty, &t.values))
                    .flatten()
                    .ok_or_else(|| ModelError::Tensor {
                        path: path.to_path_buf(),
                        tensor: t.name.clone(),
                        message: format!(
                            "cannot write rows of {row} values as {:?} (F32, F16, BF16; Q8_0, \
                             Q5_0, Q4_0 for rows of whole 32-value blocks; Q4_K, Q6_K of 256)",
                            t.ty
                        ),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let file = std::fs::File::create(path).map_err(|e| ModelError::io(path, e))?;
        let mut w = BufWriter::new(file);
        self.write_to(&mut w, &blobs)
            .and_then(|_| w.flush())
            .map_err(|e| ModelError::io(path, e))
    }

    fn write_to(&self, w: &mut impl Write, blobs: &[Vec<u8>]) -> std::io::Result<()> {
        let mut header = Vec::new();
        header.extend(MAGIC.to_le_bytes());
        header.extend(3u32.to_le_bytes());
        header.extend((self.tensors.len() as u64).to_le_bytes());
        header.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            header.extend(encode_string(key));
            header.extend(type_id(value).to_le_bytes());
            header.extend(encode_value(value));
        }
        let mut offset = 0usize;
        for (t, blob) in self.tensors.iter().zip(blobs) {
            header.extend(encode_string(&t.name));
            header.extend((t.shape.len() as u32).to_le_bytes());
            for d in t.shape.iter().rev() {
                header.extend((*d as u64).to_le_bytes());
            }
            header.extend(t.ty.id().to_le_bytes());
            header.extend((offset as u64).to_le_bytes());
            offset += padded(blob.len());
        }
        header.resize(padded(header.len()), 0);
        w.write_all(&header)?;
        for blob in blobs {
            w.write_all(blob)?;
            w.write_all(&vec![0u8; padded(blob.len()) - blob.len()])?;
        }
        Ok(())
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
}

fn encode_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn type_id(value: &MetaValue) -> u32 {
    match value {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn encode_value(value: &MetaValue) -> Vec<u8> {
    match value {
        MetaValue::U8(v) => vec![*v],
        MetaValue::I8(v) => vec![*v as u8],
        MetaValue::U16(v) => v.to_le_bytes().to_vec(),
        MetaValue::I16(v) => v.to_le_bytes().to_vec(),
        MetaValue::U32(v) => v.to_le_bytes().to_vec(),
        MetaValue::I32(v) => v.to_le_bytes().to_vec(),
        MetaValue::F32(v) => v.to_le_bytes().to_vec(),
        MetaValue::Bool(v) => vec![u8::from(*v)],
        MetaValue::String(s) => encode_string(s),
        MetaValue::Array(items) => {
            let item_ty = items.first().map_or(8, type_id);
            let mut out = item_ty.to_le_bytes().to_vec();
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                out.extend(encode_value(item));
            }
            out
        }
        MetaValue::U64(v) => v.to_le_bytes().to_vec(),
        MetaValue::I64(v) => v.to_le_bytes().to_vec(),
        MetaValue::F64(v) => v.to_le_bytes().to_vec(),
    }
}
