//! A rough estimate of a run's peak memory and duration before it starts, from the
//! backbone's size, the settings and the data's size.

use lathe_config::Config;
use lathe_model::loader::load_config;
use serde::Serialize;

use crate::error::Result;

/// What a run will roughly take.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Weights of the backbone.
    pub parameters: u64,
    /// Peak resident memory, bytes.
    pub memory_bytes: u64,
    /// Tokens trained on over all epochs.
    pub train_tokens: u64,
    /// Training time on this machine's cores, seconds.
    pub seconds: f64,
    /// How the numbers are made.
    pub basis: String,
}

/// Training speed measured here (`bench/train.sh`): LoRA on SmolLM2-135M, 2 cores.
const MEASURED_TOKENS_PER_SECOND: f64 = 134.0;
const MEASURED_PARAMETERS: f64 = 134.5e6;
const MEASURED_CORES: f64 = 2.0;
/// Speed with gradient checkpointing relative to without (its second forward pass),
/// measured the same way: LoRA, full fine-tuning.
const CHECKPOINTING_SPEED: [f64; 2] = [0.64, 0.82];

/// Estimates a run of `config` on `samples` training samples of `mean_tokens` tokens
/// on average (before `tokenizer.max_length` cuts them), with `cores` CPU cores.
pub fn estimate(config: &Config, samples: u64, mean_tokens: f64, cores: usize) -> Result<Estimate> {
    let model = load_config(&config.general.llm_backbone)?;
    let p = model.parameter_count();
    let t = &config.training;
    let max_length = config.tokenizer.max_length as f64;
    let tokens_per_sample = mean_tokens.min(max_length).max(1.0);
    let d = &config.dataset;
    let held_out = if d.validation_strategy == "automatic" {
        d.validation_size
    } else {
        0.0
    };
    let used = (samples as f64 * d.data_sample * (1.0 - held_out)) as u64;
    let train_tokens = (used as f64 * tokens_per_sample * t.epochs as f64) as u64;
    // Weights as stored, plus (without LoRA) a gradient and two Adam moments each.
    let weight_bytes = match config.architecture.backbone_dtype.as_str() {
        "int8" => 1.0,
        "int4" => 0.5,
        "bfloat16" | "float16" => 2.0,
        _ => 4.0,
    };
    let state = if t.lora { 0.0 } else { 12.0 };
    // Activations kept for backward: about 16 values per model width and 3 per MLP
    // width per token and layer (matches the measured peak of the demo model).
    let batch_tokens = t.batch_size as f64 * max_length.min(tokens_per_sample * 1.5);
    let per_token = (16 * model.hidden_size + 3 * model.intermediate_size) as f64 * 4.0;
    let layers = model.num_hidden_layers as f64;
    let checkpointing = config.architecture.gradient_checkpointing;
    // Gradient checkpointing keeps each layer's input and one layer's activations.
    let activations = if checkpointing {
        batch_tokens * (per_token + layers * model.hidden_size as f64 * 4.0)
    } else {
        batch_tokens * per_token * layers
    };
    let overhead = 400.0 * 1024.0 * 1024.0;
    let memory = p as f64 * (weight_bytes + state) + activations + overhead;
    let speed = MEASURED_TOKENS_PER_SECOND
        * (MEASURED_PARAMETERS / p as f64)
        * (cores as f64 / MEASURED_CORES)
        * if t.lora { 1.0 } else { 0.75 }
        * match (checkpointing, t.lora) {
            (false, _) => 1.0,
            (true, lora) => CHECKPOINTING_SPEED[usize::from(!lora)],
        };
    Ok(Estimate {
        parameters: p,
        memory_bytes: memory as u64,
        train_tokens,
        seconds: train_tokens as f64 / speed,
        basis: format!(
            "rough: {} samples × ~{tokens_per_sample:.0} tokens × {} epochs, at the training speed measured on the demo model scaled to this model's size and {cores} cores",
            used, t.epochs
        ),
    })
}
