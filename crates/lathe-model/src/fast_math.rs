//! `exp`, `max` and `sum` over f32 slices written so the compiler vectorizes them: the
//! library `expf` is a scalar call per value, and an in-order float sum or maximum is bound
//! by the latency of one operation per value.

/// `exp(x)` within 3e-7 relative error for `x` ≥ -87 (smaller `x` gives about 1e-38
/// instead of 0): Cephes' `expf`, `eʳ · 2ⁿ` with `n` the nearest integer to `x·log₂e`
/// and `r = x − n·ln 2` in two parts, `|r| ≤ ln2 / 2`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    (p * r * r + r + 1.0) * two_n
}

/// `xᵢ ← exp(xᵢ − shift)` for every value.
pub(crate) fn exp_shifted(xs: &mut [f32], shift: f32) {
    xs.iter_mut().for_each(|x| *x = exp(*x - shift));
}

/// `xᵢ ← exp(xᵢ − shift)` for every value, in one pass that also returns their sum
/// (eight interleaved partial sums).
pub(crate) fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *x = exp(*x - shift);
            *lane += *x;
        }
    }
    let mut rest = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x - shift);
        rest += *x;
    }
    lanes.iter().sum::<f32>() + rest
}

/// The largest of `xs` (-∞ for none), in eight interleaved lanes.
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, x| m.max(*x));
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(*x);
        }
    }
    lanes.iter().fold(rest, |m, x| m.max(*x))
}

/// The sum of `xs`, in eight interleaved partial sums.
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_exp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp(f32::NEG_INFINITY) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn sum_adds_every_value() {
        let xs: Vec<f32> = (1..=21).map(|i| i as f32).collect();
        assert_eq!(sum(&xs), 231.0);
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(max(&xs), 21.0);
        assert_eq!(max(&xs[..3]), 3.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn exp_shifted_sum_is_exp_shifted_then_sum() {
        let xs: Vec<f32> = (0..21).map(|i| i as f32 * 0.37 - 3.0).collect();
        let (mut fused, mut plain) = (xs.clone(), xs);
        let total = exp_shifted_sum(&mut fused, 1.5);
        exp_shifted(&mut plain, 1.5);
        assert_eq!(fused, plain);
        assert!((total - sum(&plain)).abs() <= 1e-6 * total);
    }
}
