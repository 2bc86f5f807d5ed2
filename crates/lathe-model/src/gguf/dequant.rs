//! Dequantization of ggml block formats to f32, following ggml's reference
//! `dequantize_row_*` functions value for value.

use half::{bf16, f16};

use super::GgmlType;

/// Values per K-quant super-block.
const QK_K: usize = 256;

/// Dequantizes `len` values stored as `ty` in `bytes` (which holds exactly those blocks).
pub fn dequantize(ty: GgmlType, bytes: &[u8], len: usize) -> Vec<f32> {
    let mut out = vec![0f32; len];
    let blocks = bytes.chunks_exact(ty.block_bytes());
    let rows = out.chunks_exact_mut(ty.block_len());
    for (b, y) in blocks.zip(rows) {
        match ty {
            GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => y[0] = f16_at(b, 0),
            GgmlType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q4_0 => q4_0(b, y),
            GgmlType::Q4_1 => q4_1(b, y),
            GgmlType::Q5_0 => q5_0(b, y),
            GgmlType::Q5_1 => q5_1(b, y),
            GgmlType::Q8_0 => q8_0(b, y),
            GgmlType::Q4_K => q4_k(b, y),
            GgmlType::Q5_K => q5_k(b, y),
            GgmlType::Q6_K => q6_k(b, y),
        }
    }
    out
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `{d: f16, qs: [u8; 16]}`: x = (nibble - 8) · d; low nibbles first.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// `{d: f16, m: f16, qs: [u8; 16]}`: x = nibble · d + m.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// `{d: f16, qh: u32, qs: [u8; 16]}`: 5-bit values, x = (q - 16) · d.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (((q as u32 & 0x0F) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = (((q as u32 >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// `{d: f16, m: f16, qh: u32, qs: [u8; 16]}`: 5-bit values, x = q · d + m.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = ((q as u32 & 0x0F) | h0) as f32 * d + m;
        y[j + 16] = ((q as u32 >> 4) | h1) as f32 * d + m;
    }
}

/// `{d: f16, qs: [i8; 32]}`: x = q · d.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..34].iter().enumerate() {
        y[j] = q as i8 as f32 * d;
    }
}

/// The 6-bit scale and min of sub-block `j` from the packed 12-byte K-quant scales.
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Scale and min of the two 32-value sub-blocks that 64-value chunk `chunk` holds.
fn sub_block_scales(chunk: usize, scales: &[u8], d: f32, min: f32) -> ((f32, f32), (f32, f32)) {
    let (sc1, m1) = scale_min_k4(2 * chunk, scales);
    let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
    (
        (d * sc1 as f32, min * m1 as f32),
        (d * sc2 as f32, min * m2 as f32),
    )
}

/// `{d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]}`: 8 sub-blocks of 32.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let ((d1, m1), (d2, m2)) = sub_block_scales(chunk, scales, d, min);
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// `{d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]}`.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, min) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for (chunk, (ql, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let ((d1, m1), (d2, m2)) = sub_block_scales(chunk, scales, d, min);
        let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// `{ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16}`: 6-bit values, 16 scales.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for half in 0..QK_K / 128 {
        let ql = &b[64 * half..64 * half + 64];
        let qh = &b[128 + 32 * half..128 + 32 * half + 32];
        let sc = &b[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}
