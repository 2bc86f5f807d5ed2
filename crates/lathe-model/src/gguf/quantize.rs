//! Quantization of f32 rows to ggml block formats, following ggml's reference
//! `quantize_row_*_ref` functions value for value.

use half::f16;

use super::GgmlType;

/// Encodes `values` (a whole number of blocks) as `ty`; `None` for a type Lathe does
/// not write.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(ty.bytes_for(values.len())?);
    match ty {
        GgmlType::F32 => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|v| out.extend(f16::from_f32(*v).to_le_bytes())),
        GgmlType::BF16 => values
            .iter()
            .for_each(|v| out.extend(half::bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => values.chunks_exact(32).for_each(|x| q8_0(x, &mut out)),
        GgmlType::Q4_0 => values.chunks_exact(32).for_each(|x| q4_0(x, &mut out)),
        _ => return None,
    }
    Some(out)
}

/// `{d: f16, qs: [i8; 32]}` with `d = max|x| / 127`.
fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// `{d: f16, qs: [u8; 16]}` with `d = −x_max / 8` (`x_max` the value of largest
/// magnitude, sign kept); nibble `j` holds `x[j]`, the high nibble `x[j + 16]`.
fn q4_0(x: &[f32], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend(f16::from_f32(d).to_le_bytes());
    let nibble = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    out.extend((0..16).map(|j| nibble(x[j]) | (nibble(x[j + 16]) << 4)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::dequantize;

    /// Quantizing and dequantizing stays within half a step of each block's scale (a
    /// whole step for Q4_0, whose grid stops one short on the side opposite the
    /// largest magnitude).
    #[test]
    fn round_trips_within_half_a_step() {
        let values: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        for (ty, steps, tolerance) in [(GgmlType::Q8_0, 127.0, 0.5), (GgmlType::Q4_0, 8.0, 1.0)] {
            let bytes = quantize(ty, &values).expect("writable type");
            assert_eq!(bytes.len(), ty.bytes_for(values.len()).unwrap());
            let back = dequantize(ty, &bytes, values.len());
            for (block, restored) in values.chunks(32).zip(back.chunks(32)) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let step = amax / steps;
                for (v, r) in block.iter().zip(restored) {
                    assert!(
                        (v - r).abs() <= tolerance * step + 1e-3 * amax,
                        "{ty:?}: {v} → {r}"
                    );
                }
            }
        }
    }
}
