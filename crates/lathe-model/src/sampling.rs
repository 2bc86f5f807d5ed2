//! Generation settings and the per-step choice of the next token: repetition penalty,
//! EOS suppression, temperature, top-k, top-p, then argmax or a seeded draw.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::{ModelError, Result};

/// How to generate. `temperature == 0` means greedy decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to add.
    pub max_new_tokens: usize,
    /// EOS is forbidden until this many tokens were added.
    pub min_new_tokens: usize,
    /// Softmax temperature; 0 for greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// CTRL-style penalty on tokens already in the sequence (1 = off).
    pub repetition_penalty: f32,
    /// Beam width (1 = no beam search; at most 4).
    pub num_beams: usize,
    /// Seed of the sampler.
    pub seed: u64,
    /// Generation ends when the text contains one of these; it is cut before it.
    pub stop_strings: Vec<String>,
    /// Tokens that end generation; empty means the model's own.
    pub eos_token_ids: Vec<u32>,
    /// Generation stops after this long, prompt included (H2O's `max_time`).
    pub max_time: Option<Duration>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            min_new_tokens: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            num_beams: 1,
            seed: 0,
            stop_strings: Vec::new(),
            eos_token_ids: Vec::new(),
            max_time: None,
        }
    }
}

impl GenerationConfig {
    /// Checks every setting's range, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(ModelError::Setting { name, message });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", format!("{} is not ≥ 0", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(
                "repetition_penalty",
                format!("{} is not > 0", self.repetition_penalty),
            );
        }
        if !(1..=4).contains(&self.num_beams) {
            return bad("num_beams", format!("{} is not in 1..=4", self.num_beams));
        }
        if self.num_beams > 1 && self.temperature > 0.0 {
            return bad(
                "num_beams",
                "beam search is greedy: set temperature 0".into(),
            );
        }
        if self.min_new_tokens > self.max_new_tokens {
            return bad(
                "min_new_tokens",
                format!(
                    "{} exceeds max_new_tokens {}",
                    self.min_new_tokens, self.max_new_tokens
                ),
            );
        }
        if self.stop_strings.iter().any(String::is_empty) {
            return bad("stop_strings", "a stop string is empty".into());
        }
        Ok(())
    }

    /// Whether tokens are drawn at random rather than chosen greedily.
    pub fn is_sampling(&self) -> bool {
        self.temperature > 0.0
    }
}

/// Applies the logits processors that precede the choice, in transformers' order:
/// repetition penalty over `seen`, then EOS suppression while `suppress_eos`.
pub fn process_logits(
    logits: &mut [f32],
    seen: &[u32],
    config: &GenerationConfig,
    eos: &[u32],
    suppress_eos: bool,
) {
    if config.repetition_penalty != 1.0 {
        // Each distinct token is penalised once, however often it occurs.
        let distinct: std::collections::BTreeSet<u32> = seen.iter().copied().collect();
        for id in distinct {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l < 0.0 {
                    *l * config.repetition_penalty
                } else {
                    *l / config.repetition_penalty
                };
            }
        }
    }
    if suppress_eos {
        for &id in eos {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// Picks the next token from processed logits: argmax when greedy, else a draw after
/// temperature, top-k and top-p.
pub fn choose(logits: &[f32], config: &GenerationConfig, rng: &mut StdRng) -> u32 {
    if !config.is_sampling() {
        return argmax(logits);
    }
    let mut candidates: Vec<(u32, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, l)| (i as u32, l / config.temperature))
        .collect();
    if candidates.is_empty() {
        return argmax(logits);
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    if config.top_k > 0 {
        candidates.truncate(config.top_k);
    }
    let max = candidates[0].1;
    let mut probs: Vec<f32> = candidates.iter().map(|(_, l)| (l - max).exp()).collect();
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if config.top_p < 1.0 {
        let mut cumulative = 0.0;
        let keep = probs
            .iter()
            .position(|p| {
                cumulative += p;
                cumulative >= config.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut draw: f32 = rng.random();
    for (p, (id, _)) in probs.iter().zip(&candidates) {
        if draw < *p {
            return *id;
        }
        draw -= p;
    }
    candidates[probs.len() - 1].0
}

/// Index of the largest value (the first one on ties, as torch.argmax).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// `log_softmax` of one row, in f64 for stable beam scores.
pub fn log_softmax(values: &[f32]) -> Vec<f64> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = values.iter().map(|v| (*v as f64 - max).exp()).sum();
    let log_sum = sum.ln() + max;
    values.iter().map(|v| *v as f64 - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn repetition_penalty_follows_ctrl() {
        let mut logits = vec![2.0, -2.0, 1.0];
        let config = GenerationConfig {
            repetition_penalty: 2.0,
            ..Default::default()
        };
        process_logits(&mut logits, &[0, 1, 1], &config, &[], false);
        assert_eq!(logits, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let logits = vec![0.1, 3.0, 2.9, -1.0];
        let mut rng = StdRng::seed_from_u64(7);
        let k1 = GenerationConfig {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        for _ in 0..20 {
            assert_eq!(choose(&logits, &k1, &mut rng), 1);
        }
        let p = GenerationConfig {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        let picks: std::collections::BTreeSet<u32> =
            (0..200).map(|_| choose(&logits, &p, &mut rng)).collect();
        assert_eq!(picks, [1].into_iter().collect());
        let p2 = GenerationConfig {
            temperature: 1.0,
            top_p: 0.9,
            ..Default::default()
        };
        let picks: std::collections::BTreeSet<u32> =
            (0..400).map(|_| choose(&logits, &p2, &mut rng)).collect();
        assert_eq!(picks, [1, 2].into_iter().collect());
    }

    #[test]
    fn eos_is_suppressed_and_settings_are_checked() {
        let mut logits = vec![1.0, 5.0];
        process_logits(&mut logits, &[], &GenerationConfig::default(), &[1], true);
        assert_eq!(argmax(&logits), 0);
        let bad = GenerationConfig {
            top_p: 1.5,
            ..Default::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("top_p"), "{err}");
        let beams = GenerationConfig {
            num_beams: 5,
            ..Default::default()
        };
        assert!(beams
            .validate()
            .unwrap_err()
            .to_string()
            .contains("num_beams"));
    }
}
