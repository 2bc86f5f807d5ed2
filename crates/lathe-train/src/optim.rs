//! Optimizers on host copies of the trainable tensors, with their state kept as named
//! tensors so that a checkpoint restores them bit for bit.

use std::collections::BTreeMap;

/// Hyperparameters shared by the optimizers.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSettings {
    /// `AdamW`, `Adam`, `SGD`, `RMSprop` or `Adadelta`.
    pub kind: String,
    /// Decoupled (AdamW) or L2 (others) weight decay.
    pub weight_decay: f32,
}

/// Per-tensor optimizer state (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, …).
pub type State = BTreeMap<String, Vec<f32>>;

/// One optimizer over a list of tensors.
#[derive(Debug, Clone)]
pub struct Optimizer {
    settings: OptimizerSettings,
    /// State per tensor, in parameter order.
    pub state: Vec<State>,
    /// Optimizer steps taken.
    pub steps: u64,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
/// PyTorch's epsilon (burn's default differs: see burn-notes).
const EPS: f32 = 1e-8;

impl Optimizer {
    /// A fresh optimizer for `count` tensors.
    pub fn new(settings: OptimizerSettings, count: usize) -> Self {
        Self {
            settings,
            state: vec![State::new(); count],
            steps: 0,
        }
    }

    /// Updates `values[k]` with `grads[k]` at learning rate `lrs[k]`; tensors with
    /// `no_decay[k]` get no weight decay.
    pub fn step(
        &mut self,
        values: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lrs: &[f32],
        no_decay: &[bool],
    ) {
        self.steps += 1;
        let t = self.steps as i32;
        let kind = self.settings.kind.clone();
        for k in 0..values.len() {
            let wd = if no_decay[k] {
                0.0
            } else {
                self.settings.weight_decay
            };
            let (lr, p, g) = (lrs[k], &mut values[k], &grads[k]);
            let n = p.len();
            let state = &mut self.state[k];
            let mut buffer = |name: &str| state.remove(name).unwrap_or_else(|| vec![0.0; n]);
            match kind.as_str() {
                "Adam" | "AdamW" => {
                    let (mut m, mut v) = (buffer("exp_avg"), buffer("exp_avg_sq"));
                    let bc1 = 1.0 - BETA1.powi(t);
                    let bc2 = 1.0 - BETA2.powi(t);
                    let decoupled = kind == "AdamW";
                    for i in 0..n {
                        let mut gi = g[i];
                        if decoupled {
                            p[i] *= 1.0 - lr * wd;
                        } else {
                            gi += wd * p[i];
                        }
                        m[i] = BETA1 * m[i] + (1.0 - BETA1) * gi;
                        v[i] = BETA2 * v[i] + (1.0 - BETA2) * gi * gi;
                        let denom = (v[i] / bc2).sqrt() + EPS;
                        p[i] -= lr * (m[i] / bc1) / denom;
                    }
                    state.insert("exp_avg".into(), m);
                    state.insert("exp_avg_sq".into(), v);
                }
                "SGD" => {
                    // Nesterov momentum 0.9, as H2O configures torch.optim.SGD.
                    let mut buf = buffer("momentum_buffer");
                    for i in 0..n {
                        let gi = g[i] + wd * p[i];
                        buf[i] = if t == 1 { gi } else { 0.9 * buf[i] + gi };
                        p[i] -= lr * (gi + 0.9 * buf[i]);
                    }
                    state.insert("momentum_buffer".into(), buf);
                }
                "RMSprop" => {
                    // alpha 0.9, momentum 0.9, eps 1e-8 (H2O's settings).
                    let (mut sq, mut buf) = (buffer("square_avg"), buffer("momentum_buffer"));
                    for i in 0..n {
                        let gi = g[i] + wd * p[i];
                        sq[i] = 0.9 * sq[i] + 0.1 * gi * gi;
                        buf[i] = 0.9 * buf[i] + gi / (sq[i].sqrt() + EPS);
                        p[i] -= lr * buf[i];
                    }
                    state.insert("square_avg".into(), sq);
                    state.insert("momentum_buffer".into(), buf);
                }
                _ => {
                    // Adadelta: rho 0.9, eps 1e-6, as torch's defaults.
                    let (mut sq, mut acc) = (buffer("square_avg"), buffer("acc_delta"));
                    for i in 0..n {
                        let gi = g[i] + wd * p[i];
                        sq[i] = 0.9 * sq[i] + 0.1 * gi * gi;
                        let delta = (acc[i] + 1e-6).sqrt() / (sq[i] + 1e-6).sqrt() * gi;
                        acc[i] = 0.9 * acc[i] + 0.1 * delta * delta;
                        p[i] -= lr * delta;
                    }
                    state.insert("square_avg".into(), sq);
                    state.insert("acc_delta".into(), acc);
                }
            }
        }
    }
}

/// Scales gradients so that their global L2 norm is at most `max_norm`; returns the
/// norm before clipping.
pub fn clip_global_norm(grads: &mut [Vec<f32>], max_norm: f32) -> f32 {
    let norm = grads
        .iter()
        .flatten()
        .map(|g| (*g as f64) * (*g as f64))
        .sum::<f64>()
        .sqrt() as f32;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        grads.iter_mut().flatten().for_each(|g| *g *= scale);
    }
    norm
}

/// Learning rate at optimizer step `step` (0-based) of `total`: linear warmup over
/// `warmup` steps, then Constant, Cosine or Linear decay to `min_ratio · peak`.
pub fn learning_rate(
    schedule: &str,
    peak: f64,
    step: u64,
    total: u64,
    warmup: u64,
    min_ratio: f64,
) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let floor = peak * min_ratio;
    match schedule {
        "Cosine" => floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        "Linear" => floor + (peak - floor) * (1.0 - progress),
        _ => peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One AdamW step from zero state moves each weight by `lr` against the gradient's
    /// sign (bias-corrected m/√v = ±1), after decoupled decay.
    #[test]
    fn adamw_first_step_matches_pytorch() {
        let mut opt = Optimizer::new(
            OptimizerSettings {
                kind: "AdamW".into(),
                weight_decay: 0.01,
            },
            2,
        );
        let mut values = vec![vec![1.0, -2.0], vec![0.5]];
        let grads = vec![vec![0.3, -4.0], vec![2.0]];
        opt.step(&mut values, &grads, &[0.1, 0.1], &[false, true]);
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01): p*(1-lr*wd) - lr*sign(g)
        assert!((values[0][0] - (1.0 * 0.999 - 0.1)).abs() < 1e-6);
        assert!((values[0][1] - (-2.0 * 0.999 + 0.1)).abs() < 1e-6);
        assert!(
            (values[1][0] - (0.5 - 0.1)).abs() < 1e-6,
            "no decay on this one"
        );
    }

    #[test]
    fn schedules_warm_up_then_decay_to_the_floor() {
        let lr = |s: &str, step| learning_rate(s, 1.0, step, 100, 10, 0.1);
        assert_eq!(lr("Cosine", 0), 0.0);
        assert!((lr("Cosine", 5) - 0.5).abs() < 1e-12);
        assert!((lr("Cosine", 10) - 1.0).abs() < 1e-12);
        assert!((lr("Cosine", 55) - 0.55).abs() < 1e-12);
        assert!((lr("Cosine", 100) - 0.1).abs() < 1e-12);
        assert!((lr("Linear", 55) - 0.55).abs() < 1e-12);
        assert_eq!(lr("Constant", 90), 1.0);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut g = vec![vec![3.0], vec![4.0]];
        assert_eq!(clip_global_norm(&mut g, 1.0), 5.0);
        let norm = (g[0][0] * g[0][0] + g[1][0] * g[1][0]).sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
