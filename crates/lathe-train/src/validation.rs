//! Validation passes: loss and perplexity from a forward pass, and — for the BLEU
//! metric — an answer generated for every validation sample with the prediction
//! settings, scored and written to `validation_predictions.csv`.

use std::path::Path;
use std::time::Duration;

use lathe_config::Config;
use lathe_data::{Encoded, Sample};
use lathe_model::train::TrainableModel;
use lathe_model::GenerationConfig;

use crate::error::{Result, TrainError};
use crate::metrics::sentence_bleu;
use crate::run::write_atomic;
use crate::trainer::make_batch;

/// What one validation pass measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Token-averaged cross-entropy.
    pub loss: f64,
    /// Mean over samples of exp(mean token nll).
    pub perplexity: f64,
    /// Mean sentence BLEU of generated answers (BLEU metric only).
    pub bleu: Option<f64>,
}

impl Validation {
    /// The configured metric's value, and whether lower is better.
    pub fn metric(&self) -> (f64, bool) {
        match self.bleu {
            Some(bleu) => (bleu, false),
            None => (self.perplexity, true),
        }
    }
}

/// Validation data: the encoded samples and their texts.
pub struct ValidationSet<'a> {
    /// Token ids and loss masks.
    pub encoded: &'a [Encoded],
    /// The samples the ids came from (same order).
    pub samples: &'a [Sample],
    /// Each sample's prompt tokens, what generation answers (with `generation`).
    pub prompts: &'a [Vec<u32>],
    /// Generation settings when answers are generated (BLEU).
    pub generation: Option<GenerationConfig>,
    /// Samples per batch.
    pub batch_size: usize,
    /// Padding token.
    pub pad: u32,
}

/// Generation settings from the prediction group, with the prompt format's stop strings.
pub fn generation_config(
    config: &Config,
    stop_strings: Vec<String>,
    eos: Vec<u32>,
) -> GenerationConfig {
    let p = &config.prediction;
    let mut stops = stop_strings;
    stops.extend(
        p.stop_tokens
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    GenerationConfig {
        max_new_tokens: p.max_length_inference as usize,
        min_new_tokens: p.min_length_inference as usize,
        temperature: if p.do_sample {
            p.temperature as f32
        } else {
            0.0
        },
        top_k: p.top_k as usize,
        top_p: p.top_p as f32,
        repetition_penalty: p.repetition_penalty as f32,
        num_beams: p.num_beams as usize,
        seed: config.environment.seed.max(0) as u64,
        stop_strings: stops,
        eos_token_ids: eos,
        max_time: Duration::try_from_secs_f64(p.max_time)
            .ok()
            .filter(|d| !d.is_zero()),
    }
}

/// Runs one validation pass; with generation, writes `validation_predictions.csv` into
/// `run` (columns: row, prompt, target, prediction, BLEU).
pub fn validate(model: &TrainableModel, set: &ValidationSet, run: &Path) -> Result<Validation> {
    let evaluator = model.evaluator();
    let (mut nll_sum, mut tokens, mut ppl_sum) = (0f64, 0usize, 0f64);
    for chunk in set.encoded.chunks(set.batch_size.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        let batch = make_batch(&refs, None, set.pad, 1.0, usize::MAX, true, 1.0);
        let out = evaluator.loss(&batch);
        for r in 0..batch.b {
            let (mut s, mut n) = (0f64, 0usize);
            for j in r * batch.t..(r + 1) * batch.t {
                if batch.weights[j] > 0.0 {
                    s += out.nll[j] as f64;
                    n += 1;
                }
            }
            nll_sum += s;
            tokens += n;
            ppl_sum += (s / n.max(1) as f64).exp();
        }
    }
    let mut result = Validation {
        loss: nll_sum / tokens.max(1) as f64,
        perplexity: ppl_sum / set.encoded.len().max(1) as f64,
        bleu: None,
    };
    let Some(generation) = &set.generation else {
        return Ok(result);
    };
    let engine = evaluator.engine();
    let mut rows = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| TrainError::Invalid(format!("validation_predictions.csv: {e}"));
    rows.write_record(["row", "prompt", "target", "prediction", "BLEU"])
        .map_err(csv_error)?;
    let mut bleu_sum = 0f64;
    for (prompts, samples) in set
        .prompts
        .chunks(set.batch_size.max(1))
        .zip(set.samples.chunks(set.batch_size.max(1)))
    {
        let generated = engine.generate(prompts, generation, &mut |_, _| true)?;
        for (sample, g) in samples.iter().zip(generated) {
            let text = engine.tokenizer.decode(&g.tokens, true)?;
            let cut = generation
                .stop_strings
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
                .unwrap_or(text.len());
            let prediction = text[..cut].trim();
            let bleu = sentence_bleu(prediction, sample.answer());
            bleu_sum += bleu;
            rows.write_record([
                &sample.row.to_string(),
                sample.prompt(),
                sample.answer(),
                prediction,
                &format!("{bleu:.4}"),
            ])
            .map_err(csv_error)?;
        }
    }
    let bytes = rows
        .into_inner()
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    write_atomic(&run.join("validation_predictions.csv"), &bytes)?;
    result.bleu = Some(bleu_sum / set.samples.len().max(1) as f64);
    Ok(result)
}
