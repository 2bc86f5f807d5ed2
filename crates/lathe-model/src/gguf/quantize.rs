//! Quantization of f32 rows to ggml block formats, following ggml's reference
//! `quantize_row_*_ref` functions value for value.

use half::f16;

use super::dequant::scale_min_k4;
use super::GgmlType;

/// Values per K-quant super-block.
const QK_K: usize = 256;

/// ggml's `nearest_int`: round half to even.
fn nearest(v: f32) -> i32 {
    v.round_ties_even() as i32
}

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
        GgmlType::Q5_0 => values.chunks_exact(32).for_each(|x| q5_0(x, &mut out)),
        GgmlType::Q4_K => values.chunks_exact(QK_K).for_each(|x| q4_k(x, &mut out)),
        GgmlType::Q6_K => values.chunks_exact(QK_K).for_each(|x| q6_k(x, &mut out)),
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

/// `{d: f16, qh: u32, qs: [u8; 16]}`: 5-bit values, `d = −x_max / 16`.
fn q5_0(x: &[f32], out: &mut Vec<u8>) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (a, b) = (q(x[j]), q(x[j + 16]));
        qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    out.extend(f16::from_f32(d).to_le_bytes());
    out.extend(qh.to_le_bytes());
    out.extend(qs);
}

/// ggml's `make_qkx2_quants`: levels `0..=nmax` with a scale and a (negated) minimum
/// for `x`, refined by a weighted least-squares search; returns `(scale, min)`.
fn make_qkx2_quants(x: &[f32], weights: &[f32], nmax: i32, levels: &mut [u8]) -> (f32, f32) {
    let (rmin, rdelta, nstep) = (-1.0f32, 0.1f32, 20);
    let mut min = x.iter().copied().fold(x[0], f32::min);
    let max = x.iter().copied().fold(x[0], f32::max);
    let sum_w: f32 = weights.iter().sum();
    let sum_x: f32 = weights.iter().zip(x).map(|(w, v)| w * v).sum();
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0;
    for ((l, &v), &w) in levels.iter_mut().zip(x).zip(weights) {
        *l = nearest(iscale * (v - min)).clamp(0, nmax) as u8;
        let diff = scale * *l as f32 + min - v;
        best_error += w * diff * diff;
    }
    let mut aux = vec![0u8; x.len()];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for ((a, &v), &w) in aux.iter_mut().zip(x).zip(weights) {
            let l = nearest(iscale * (v - min)).clamp(0, nmax);
            *a = l as u8;
            let l = l as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let error: f32 = aux
                .iter()
                .zip(x)
                .zip(weights)
                .map(|((&a, &v), &w)| {
                    let diff = this_scale * a as f32 + this_min - v;
                    w * diff * diff
                })
                .sum();
            if error < best_error {
                levels.copy_from_slice(&aux);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `{d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]}`: eight sub-blocks of 32 with
/// 6-bit scales and minimums.
fn q4_k(x: &[f32], out: &mut Vec<u8>) {
    let mut levels = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    for j in 0..8 {
        let sub = &x[32 * j..32 * j + 32];
        let av = (sub.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        let weights: Vec<f32> = sub.iter().map(|v| av + v.abs()).collect();
        (scales[j], mins[j]) =
            make_qkx2_quants(sub, &weights, 15, &mut levels[32 * j..32 * j + 32]);
    }
    let max_scale = scales.iter().copied().fold(0f32, f32::max);
    let max_min = mins.iter().copied().fold(0f32, f32::max);
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = nearest(inv_scale * scales[j]).min(63) as u8;
        let lm = nearest(inv_min * mins[j]).min(63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &packed);
        let scale = d.to_f32() * sc as f32;
        if scale == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 0..32 {
            levels[32 * j + i] = nearest((x[32 * j + i] + dm) / scale).clamp(0, 15) as u8;
        }
    }
    out.extend(d.to_le_bytes());
    out.extend(dmin.to_le_bytes());
    out.extend(packed);
    for chunk in levels.chunks_exact(64) {
        out.extend((0..32).map(|l| chunk[l] | (chunk[l + 32] << 4)));
    }
}

/// ggml's `make_qx_quants` with `rmse_type` 1: signed levels in `-nmax..nmax` for `x`
/// (stored `+ nmax`), the scale refined over 18 nearby grids; returns the scale.
fn make_qx_quants(x: &[f32], nmax: i32, levels: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < 1e-15 {
        levels.fill(0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = nearest(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let assign = |iscale: f32, levels: &mut [u8]| {
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = (nmax + nearest(iscale * v).clamp(-nmax, nmax - 1)) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    assign(iscale, levels);
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            assign(iscale, levels);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}`: 6-bit values in
/// sixteen sub-blocks of 16 with 8-bit scales.
fn q6_k(x: &[f32], out: &mut Vec<u8>) {
    let mut levels = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0f32, 0f32);
    for (ib, scale) in scales.iter_mut().enumerate() {
        *scale = make_qx_quants(
            &x[16 * ib..16 * ib + 16],
            32,
            &mut levels[16 * ib..16 * ib + 16],
        );
        if scale.abs() > max_abs {
            max_abs = scale.abs();
            max_scale = *scale;
        }
    }
    if max_abs < 1e-15 {
        out.extend([0u8; 210]);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    let sc: Vec<i8> = scales
        .iter()
        .map(|s| nearest(iscale * s).min(127) as i8)
        .collect();
    for j in 0..16 {
        let scale = d.to_f32() * sc[j] as f32;
        if scale == 0.0 {
            continue;
        }
        for i in 0..16 {
            levels[16 * j + i] = (nearest(x[16 * j + i] / scale).clamp(-32, 31) + 32) as u8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for half in 0..2 {
        let l8 = &levels[128 * half..128 * half + 128];
        for l in 0..32 {
            ql[64 * half + l] = (l8[l] & 0x0F) | ((l8[l + 64] & 0x0F) << 4);
            ql[64 * half + l + 32] = (l8[l + 32] & 0x0F) | ((l8[l + 96] & 0x0F) << 4);
            qh[32 * half + l] = (l8[l] >> 4)
                | ((l8[l + 32] >> 4) << 2)
                | ((l8[l + 64] >> 4) << 4)
                | ((l8[l + 96] >> 4) << 6);
        }
    }
    out.extend(ql);
    out.extend(qh);
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend(d.to_le_bytes());
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
        for (ty, steps, tolerance) in [
            (GgmlType::Q8_0, 127.0, 0.5),
            (GgmlType::Q4_0, 8.0, 1.0),
            (GgmlType::Q5_0, 16.0, 1.0),
            (GgmlType::Q6_K, 32.0, 1.0),
            (GgmlType::Q4_K, 8.0, 1.0),
        ] {
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
