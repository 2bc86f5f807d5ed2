//! Frozen base weights stored compactly — bfloat16, float16, 8-bit or 4-bit NF4 (one
//! absmax scale per block of 64 values, as bitsandbytes' blockwise formats) — and expanded to f32 inside each
//! matmul. Values are kept in the matmul's `[in, out]` layout, row-major.

use rayon::prelude::*;

/// Storage of a frozen base weight (`architecture.backbone_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseDtype {
    /// Full precision, no expansion needed.
    F32,
    /// bfloat16 (upper half of an f32).
    Bf16,
    /// IEEE half precision.
    F16,
    /// Signed 8-bit with one absmax scale per block of 64 values.
    Int8,
    /// 4-bit NormalFloat codes with one absmax scale per block of 64 values.
    Int4,
}

impl BaseDtype {
    /// Reads H2O's `backbone_dtype` names.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "float32" => Self::F32,
            "bfloat16" => Self::Bf16,
            "float16" => Self::F16,
            "int8" => Self::Int8,
            "int4" => Self::Int4,
            _ => return None,
        })
    }
}

/// NF4 code book (bitsandbytes): quantiles of a unit normal, scaled to [-1, 1].
const NF4: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Values per scale (8-bit and 4-bit).
const BLOCK: usize = 64;

/// A packed `[rows, cols]` weight (rows = inputs, cols = outputs).
#[derive(Debug, Clone)]
pub struct PackedWeight {
    dtype: BaseDtype,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
    scales: Vec<f32>,
}

impl PackedWeight {
    /// Packs `values` (`[rows, cols]`, row-major) in `dtype` (not `F32`).
    pub fn pack(values: &[f32], rows: usize, cols: usize, dtype: BaseDtype) -> Self {
        assert_eq!(values.len(), rows * cols);
        let (bytes, scales) = match dtype {
            BaseDtype::F32 => (
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                vec![],
            ),
            BaseDtype::Bf16 => (
                values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                vec![],
            ),
            BaseDtype::F16 => (
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                vec![],
            ),
            BaseDtype::Int8 => {
                let scales: Vec<f32> = values
                    .chunks(BLOCK)
                    .map(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())))
                    .collect();
                let bytes = values
                    .chunks(BLOCK)
                    .zip(&scales)
                    .flat_map(|(block, s)| {
                        block.iter().map(move |v| {
                            let q = if *s > 0.0 {
                                (v / s * 127.0).round()
                            } else {
                                0.0
                            };
                            q.clamp(-127.0, 127.0) as i8 as u8
                        })
                    })
                    .collect();
                (bytes, scales)
            }
            BaseDtype::Int4 => {
                let scales: Vec<f32> = values
                    .chunks(BLOCK)
                    .map(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())))
                    .collect();
                let codes: Vec<u8> = values
                    .chunks(BLOCK)
                    .zip(&scales)
                    .flat_map(|(block, s)| block.iter().map(move |v| nearest_nf4(v / s.max(1e-30))))
                    .collect();
                let bytes = codes
                    .chunks(2)
                    .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4))
                    .collect();
                (bytes, scales)
            }
        };
        Self {
            dtype,
            rows,
            cols,
            bytes,
            scales,
        }
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Bytes held (codes and scales).
    pub fn stored_bytes(&self) -> usize {
        self.bytes.len() + 4 * self.scales.len()
    }

    /// The weight expanded to f32, row-major `[rows, cols]`, on all cores.
    pub fn unpack(&self) -> Vec<f32> {
        let n = self.rows * self.cols;
        let mut out = vec![0f32; n];
        const CHUNK: usize = 1 << 14; // a multiple of the NF4 block and of any row pair
        match self.dtype {
            BaseDtype::F32 => out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                let b = &self.bytes[c * CHUNK * 4..];
                for (i, v) in o.iter_mut().enumerate() {
                    *v = f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
                }
            }),
            BaseDtype::Bf16 | BaseDtype::F16 => {
                let bf16 = self.dtype == BaseDtype::Bf16;
                out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                    let b = &self.bytes[c * CHUNK * 2..];
                    for (i, v) in o.iter_mut().enumerate() {
                        let bits = u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
                        *v = if bf16 {
                            half::bf16::from_bits(bits).to_f32()
                        } else {
                            half::f16::from_bits(bits).to_f32()
                        };
                    }
                })
            }
            BaseDtype::Int8 => out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                let start = c * CHUNK;
                for (i, v) in o.iter_mut().enumerate() {
                    let at = start + i;
                    *v = (self.bytes[at] as i8) as f32 * (self.scales[at / BLOCK] / 127.0);
                }
            }),
            BaseDtype::Int4 => out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                let start = c * CHUNK;
                for (i, pair) in o.chunks_mut(2).enumerate() {
                    let byte = self.bytes[start / 2 + i];
                    let at = start + 2 * i;
                    pair[0] = NF4[(byte & 15) as usize] * self.scales[at / BLOCK];
                    if let Some(v) = pair.get_mut(1) {
                        *v = NF4[(byte >> 4) as usize] * self.scales[(at + 1) / BLOCK];
                    }
                }
            }),
        }
        out
    }
}

/// The NF4 code closest to `x` (in [-1, 1]).
fn nearest_nf4(x: f32) -> u8 {
    let mut best = 0;
    for (i, c) in NF4.iter().enumerate() {
        if (x - c).abs() < (x - NF4[best]).abs() {
            best = i;
        }
    }
    best as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_weights_round_trip_within_their_precision() {
        let (rows, cols) = (70, 130); // not multiples of the block or chunk sizes
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.05)
            .collect();
        for (dtype, tolerance) in [
            (BaseDtype::F32, 0.0),
            (BaseDtype::Bf16, 0.05 / 128.0),
            (BaseDtype::F16, 0.05 / 1024.0),
            (BaseDtype::Int8, 0.05 / 127.0),
            (BaseDtype::Int4, 0.05 * 0.16),
        ] {
            let packed = PackedWeight::pack(&values, rows, cols, dtype);
            let back = packed.unpack();
            let worst = values
                .iter()
                .zip(&back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= tolerance, "{dtype:?}: error {worst} > {tolerance}");
        }
        let int4 = PackedWeight::pack(&values, rows, cols, BaseDtype::Int4);
        assert!(int4.stored_bytes() < rows * cols * 4 / 6);
    }
}
