//! The training loop of the causal language modeling problem type.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lathe_config::Config;
use lathe_data::{read_samples, split, Encoded, ParentAugmentation, Table};
use lathe_model::loader::load_for_training;
use lathe_model::quant::BaseDtype;
use lathe_model::train::{Batch, LoraPlan, TrainStep, TrainableModel};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::checkpoint::{self, AdapterConfig, Position};
use crate::error::{Result, TrainError};
use crate::optim::{clip_global_norm, learning_rate, Optimizer, OptimizerSettings};
use crate::run::{now, RunDir};
use crate::text::TextFormat;
use crate::validation::{generation_config, validate, Validation, ValidationSet};

/// What a finished run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Optimizer steps done.
    pub steps: u64,
    /// Validation before the first step (when measured).
    pub before: Option<Validation>,
    /// The last validation.
    pub after: Option<Validation>,
    /// The last training loss.
    pub last_loss: Option<f64>,
}

/// Settings checks that end a run before it starts, and warnings for settings that
/// have no effect here.
fn preflight(config: &Config, log: &mut dyn FnMut(&str)) -> Result<()> {
    let c = config;
    let refuse = |what: &str| Err(TrainError::Invalid(format!("{what} is not supported yet")));
    if c.general.problem_type != "text_causal_language_modeling" {
        return refuse(&format!("problem_type {}", c.general.problem_type));
    }
    for (path, value) in c.gpu_only_settings_in_use() {
        log(&format!(
            "note: {path} = {value} applies to GPUs only; not applicable on this CPU"
        ));
    }
    if c.prediction.metric == "GPT" {
        log("note: prediction.metric GPT (an LLM judge) is not available; validating with BLEU, as H2O does without an OpenAI key");
    }
    if c.training.optimizer == "AdamW8bit" {
        log("note: training.optimizer AdamW8bit (bitsandbytes, GPU) runs as AdamW here");
    }
    if c.logging.logger != "None" {
        log(&format!(
            "note: logging.logger {} is not available; metrics are in events.jsonl",
            c.logging.logger
        ));
    }
    Ok(())
}

/// How many evaluation boundaries lie at or before micro-step `micro`, with one every
/// `interval` micro-steps (`steps_per_epoch × evaluation_epochs`, maybe fractional):
/// 165 steps at 0.5 epochs validate after steps 83 and 165. (H2O's interval,
/// `int(steps_per_epoch × evaluation_epochs)`, gives 82 and 164; with the validation a
/// run always gets at its end, 164 and 165 would both validate.) The tolerance keeps a
/// product such as `100 × 0.1` from landing just past its boundary.
fn evaluation_bucket(micro: u64, interval: f64) -> u64 {
    (micro as f64 / interval + 1e-9).floor() as u64
}

/// Micro-batches of sample indices for one epoch, shuffled by `(seed, epoch)`.
fn epoch_batches(
    n: usize,
    batch: usize,
    drop_last: bool,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    let mut batches: Vec<Vec<usize>> = order.chunks(batch).map(<[usize]>::to_vec).collect();
    if drop_last && n >= batch && batches.last().is_some_and(|b| b.len() < batch) {
        batches.pop();
    }
    batches
}

/// Pads samples on the right to a common length (the `quantile` of their lengths; longer
/// samples keep their end) and weighs the loss per the loss function. `hidden` marks,
/// per sample, the tokens that token masking hides.
pub(crate) fn make_batch(
    samples: &[&Encoded],
    hidden: Option<&[Vec<bool>]>,
    pad: u32,
    quantile: f64,
    max_length: usize,
    per_sample: bool,
    scale: f32,
) -> Batch {
    let mut lengths: Vec<usize> = samples.iter().map(|s| s.input_ids.len()).collect();
    lengths.sort_unstable();
    let t = if quantile <= 0.0 {
        max_length
    } else {
        let at = ((lengths.len() as f64 - 1.0) * quantile).round() as usize;
        lengths[at.min(lengths.len() - 1)]
    }
    .max(2);
    let b = samples.len();
    let mut ids = vec![pad; b * t];
    let mut weights = vec![0f32; b * t];
    let mut hidden_out = hidden.map(|_| vec![false; b * t]);
    let tokens: usize = samples
        .iter()
        .map(|s| {
            let cut = s.input_ids.len().saturating_sub(t);
            s.loss_mask[cut..].iter().skip(1).filter(|m| **m).count()
        })
        .sum();
    for (r, s) in samples.iter().enumerate() {
        let cut = s.input_ids.len().saturating_sub(t);
        let (row_ids, row_mask) = (&s.input_ids[cut..], &s.loss_mask[cut..]);
        if let (Some(out), Some(hidden)) = (&mut hidden_out, hidden) {
            out[r * t..r * t + row_ids.len()].copy_from_slice(&hidden[r][cut..]);
        }
        let n_loss = row_mask.iter().skip(1).filter(|m| **m).count().max(1);
        for (j, (&id, &m)) in row_ids.iter().zip(row_mask).enumerate() {
            ids[r * t + j] = id;
            if m && j > 0 {
                weights[r * t + j] = scale
                    * if per_sample {
                        1.0 / (n_loss * b) as f32
                    } else {
                        1.0 / tokens.max(1) as f32
                    };
            }
        }
    }
    Batch {
        b,
        t,
        ids,
        weights,
        hidden: hidden_out,
    }
}

/// Token masking: each token after the first is, with probability `p`, replaced by
/// `pad`, hidden from the tokens after it and not a target. Returns the masked
/// sample and which tokens are hidden.
fn mask_tokens(sample: &Encoded, p: f64, pad: u32, rng: &mut StdRng) -> (Encoded, Vec<bool>) {
    let mut out = sample.clone();
    let hidden: Vec<bool> = (0..out.input_ids.len())
        .map(|j| j > 0 && rng.random_bool(p))
        .collect();
    for (j, _) in hidden.iter().enumerate().filter(|(_, h)| **h) {
        out.input_ids[j] = pad;
        out.loss_mask[j] = false;
    }
    (out, hidden)
}

/// Trains per `config` into `run` (a fresh folder, or one to resume when `resume`).
/// `stop` ends the run cleanly (checkpoint, status `stopped`) at the next step.
pub fn train(config: &Config, run_path: &Path, resume: bool, stop: &AtomicBool) -> Result<Summary> {
    let mut run = RunDir::open(run_path)?;
    run.status("running", "")?;
    let started = Instant::now();
    let result = run_loop(config, &mut run, resume, stop);
    let elapsed = started.elapsed().as_secs();
    let runtime = format!(
        "Runtime: {:02}:{:02}:{:02}",
        elapsed / 3600,
        elapsed / 60 % 60,
        elapsed % 60
    );
    match &result {
        Ok((summary, true)) => {
            run.log(&format!("stopped after step {}", summary.steps));
            run.status("stopped", &format!("stopped by the user; {runtime}"))?;
        }
        Ok((_, false)) => run.status("finished", &runtime)?,
        Err(e) => {
            run.log_file(&format!("error: {e}"));
            run.status("failed", &e.to_string())?;
        }
    }
    result.map(|(summary, _)| summary)
}

fn read_split(
    config: &Config,
    run: &mut RunDir,
) -> Result<(Vec<lathe_data::Sample>, Vec<lathe_data::Sample>)> {
    let d = &config.dataset;
    let table = Table::read(Path::new(&d.train_dataframe))?;
    let set = read_samples(&table, d)?;
    if set.dropped_without_prompt > 0 {
        run.log(&format!(
            "warning: {} rows of {} have no prompt and were left out",
            set.dropped_without_prompt,
            table.path.display()
        ));
    }
    if set.unanswered_ends > 0 {
        run.log(&format!(
            "warning: {} conversations of {} end with a prompt nobody answered; those last rows were left out",
            set.unanswered_ends,
            table.path.display()
        ));
    }
    let validation = match (&d.validation_strategy[..], &d.validation_dataframe) {
        ("custom", Some(path)) => Some(read_samples(&Table::read(Path::new(path))?, d)?.samples),
        _ => None,
    };
    Ok(split(
        set.samples,
        validation,
        d,
        config.training.train_validation_data,
    )?)
}

/// The loop; returns the summary and whether it was stopped early.
fn run_loop(
    config: &Config,
    run: &mut RunDir,
    resume: bool,
    stop: &AtomicBool,
) -> Result<(Summary, bool)> {
    let t = &config.training;
    preflight(config, &mut |line| run.log(line))?;
    let dtype = BaseDtype::parse(&config.architecture.backbone_dtype).expect("validated choice");
    let restored_position = if resume {
        Some(checkpoint::latest(&run.path).ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: no checkpoint to resume from",
                run.path.display()
            ))
        })?)
    } else {
        None
    };
    let seed = config.environment.seed as u64;
    let (train_samples, valid_samples) = read_split(config, run)?;
    run.log(&format!(
        "data: {} training and {} validation samples from {}",
        train_samples.len(),
        valid_samples.len(),
        config.dataset.train_dataframe
    ));
    run.log(&format!(
        "model: loading {} ({})",
        config.general.llm_backbone, config.architecture.backbone_dtype
    ));
    let (mut model, adapter) = build_model(config, dtype, seed)?;
    let params = model.params().to_vec();
    let trainable: usize = params
        .iter()
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    run.log(&format!(
        "trainable: {} tensors, {trainable} values",
        params.len()
    ));
    let differential: Vec<&str> = t
        .differential_learning_rate_layers
        .iter()
        .map(|l| layer_pattern(l))
        .collect();
    let lr_scale: Vec<f64> = params
        .iter()
        .map(|p| {
            if differential.iter().any(|d| p.name.contains(d)) {
                t.differential_learning_rate / t.learning_rate
            } else {
                1.0
            }
        })
        .collect();
    let no_decay: Vec<bool> = params.iter().map(|p| p.no_decay).collect();

    let text = text_format(model.engine(), config)?;
    let max_length = config.tokenizer.max_length as usize;
    let renderer = text.renderer(&config.dataset, max_length);
    let encode = |samples: &[lathe_data::Sample]| -> Result<Vec<Encoded>> {
        samples
            .iter()
            .map(|s| Ok(renderer.encode_sample(s)?))
            .collect()
    };
    let train_set = encode(&train_samples)?;
    let token_mask = config.augmentation.token_mask_probability;
    let augmentation = ParentAugmentation {
        skip_parent: config.augmentation.skip_parent_probability,
        random_parent: config.augmentation.random_parent_probability,
    };
    let valid_set = encode(&valid_samples)?;
    let truncated = train_set.iter().filter(|e| e.truncated).count();
    if truncated > 0 {
        run.log(&format!(
            "warning: {truncated} training samples were longer than tokenizer.max_length = {max_length} and were cut (prompts keep their end, answers their start)"
        ));
    }
    let pad = model
        .engine()
        .generation_defaults
        .eos_token_ids
        .first()
        .copied()
        .unwrap_or(0);

    let batch_size = t.batch_size as usize;
    let accumulation = t.grad_accumulation as u64;
    let steps_per_epoch =
        epoch_batches(train_set.len(), batch_size, t.drop_last_batch, seed, 0).len() as u64;
    let total_micro = steps_per_epoch * t.epochs as u64;
    let total_steps = (total_micro / accumulation).max(1);
    let warmup = (t.warmup_epochs * steps_per_epoch as f64 / accumulation as f64) as u64;
    let eval_interval = (steps_per_epoch as f64 * t.evaluation_epochs).max(1.0);
    let per_sample = t.loss_function == "SampleAveragedCrossEntropy";
    let mut optimizer = Optimizer::new(
        OptimizerSettings {
            kind: t.optimizer.replace("AdamW8bit", "AdamW"),
            weight_decay: t.weight_decay as f32,
        },
        params.len(),
    );
    let mut values = model.values();
    let mut position = Position {
        step: 0,
        micro_step: 0,
        seed,
        best_metric: None,
    };
    if !resume && !config.architecture.pretrained_weights.is_empty() {
        let source = Path::new(&config.architecture.pretrained_weights);
        let dir = checkpoint::latest(source).unwrap_or_else(|| source.to_path_buf());
        values = if checkpoint::is_peft_adapter(&dir) {
            checkpoint::load_adapter_values(&dir, &params)?
        } else {
            checkpoint::load(&dir, &params)?.values
        };
        model.set_values(&values);
        run.log(&format!("weights: starting from {}", dir.display()));
    }
    if let Some(dir) = restored_position {
        let restored = checkpoint::load(&dir, &params)?;
        values = restored.values;
        optimizer.state = restored.state;
        optimizer.steps = restored.optimizer_steps;
        position = restored.position;
        model.set_values(&values);
        run.log(&format!(
            "resumed from {} at step {}",
            dir.display(),
            position.step
        ));
    }
    run.log(&format!(
        "training: {} epochs × {steps_per_epoch} micro-batches of {batch_size}, {total_steps} optimizer steps",
        t.epochs
    ));
    run.event(
        json!({"type": "start", "step": position.step, "time": now(),
        "total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "epochs": t.epochs,
        "train_samples": train_set.len(), "validation_samples": valid_set.len()}),
    );

    let save = |run: &RunDir,
                name: &str,
                values: &[Vec<f32>],
                optimizer: &Optimizer,
                position: &Position| {
        checkpoint::save(
            &run.path.join(name),
            &params,
            values,
            optimizer,
            position,
            adapter.as_ref(),
        )
    };
    let mut summary = Summary {
        steps: position.step,
        before: None,
        after: None,
        last_loss: None,
    };
    let stop_strings = renderer.stop_strings();
    let eos = model.engine().generation_defaults.eos_token_ids.clone();
    let generates = config.prediction.metric != "Perplexity";
    let valid_prompts = if generates {
        valid_samples
            .iter()
            .map(|s| renderer.encode_prompt(s))
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let valid = ValidationSet {
        encoded: &valid_set,
        samples: &valid_samples,
        prompts: &valid_prompts,
        generation: generates.then(|| generation_config(config, stop_strings, eos)),
        batch_size: match config.prediction.batch_size_inference {
            0 => batch_size,
            n => n as usize,
        },
        pad,
    };
    let validation =
        |run: &mut RunDir, model: &TrainableModel, position: &Position| -> Result<Validation> {
            let v = validate(model, &valid, &run.path)?;
            run.event(
                json!({"type": "validation", "step": position.step, "time": now(),
            "epoch": position.micro_step as f64 / steps_per_epoch.max(1) as f64,
            "loss": v.loss, "perplexity": v.perplexity, "bleu": v.bleu}),
            );
            let bleu = v.bleu.map(|b| format!(", BLEU {b:.2}")).unwrap_or_default();
            run.log(&format!(
                "validation at step {}: loss {:.4}, perplexity {:.3}{bleu}",
                position.step, v.loss, v.perplexity
            ));
            Ok(v)
        };
    if position.micro_step == 0
        && (t.evaluate_before_training || t.epochs == 0)
        && !valid_set.is_empty()
    {
        summary.before = Some(validation(run, &model, &position)?);
    }

    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total_steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps · {msg} · ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_position(position.step);
        bar
    });
    let mut grads_acc: Option<Vec<Vec<f32>>> = None;
    let mut window = (Instant::now(), 0usize);
    let mut stopped = false;
    let mut evaluated_bucket = evaluation_bucket(position.micro_step, eval_interval);
    while position.micro_step < total_micro {
        let epoch = position.micro_step / steps_per_epoch;
        let batches = epoch_batches(train_set.len(), batch_size, t.drop_last_batch, seed, epoch);
        let index = (position.micro_step % steps_per_epoch) as usize;
        // Augmentations are drawn afresh for every micro-step, reproducibly (so that
        // resume is exact).
        let mut rng =
            StdRng::seed_from_u64(seed ^ position.micro_step.wrapping_mul(0xA24B_AED4_963E_E407));
        // The encoded samples as they are, unless an augmentation changes them.
        let mut drawn: Vec<Cow<Encoded>> = if augmentation.is_active() {
            batches[index]
                .iter()
                .map(|&i| {
                    let sample = augmentation.apply(&train_samples[i], &train_samples, &mut rng);
                    renderer.encode_sample(&sample).map(Cow::Owned)
                })
                .collect::<std::result::Result<_, _>>()?
        } else {
            batches[index]
                .iter()
                .map(|&i| Cow::Borrowed(&train_set[i]))
                .collect()
        };
        let mut hidden = None;
        if token_mask > 0.0 {
            let (masked, h): (Vec<_>, Vec<_>) = drawn
                .iter()
                .map(|e| {
                    let (masked, h) = mask_tokens(e, token_mask, pad, &mut rng);
                    (Cow::Owned(masked), h)
                })
                .unzip();
            drawn = masked;
            hidden = Some(h);
        }
        let refs: Vec<&Encoded> = drawn.iter().map(|e| e.as_ref()).collect();
        let batch = make_batch(
            &refs,
            hidden.as_deref(),
            pad,
            config.tokenizer.padding_quantile,
            max_length,
            per_sample,
            1.0 / accumulation as f32,
        );
        let step = TrainStep {
            seed,
            step: position.micro_step,
            hidden_dropout: config.architecture.intermediate_dropout as f32,
            neftune_alpha: config.augmentation.neftune_noise_alpha as f32,
        };
        let (loss, grads) = model.train_batch(&batch, &step);
        let batch_loss = loss.loss * accumulation as f64;
        if !batch_loss.is_finite() {
            return Err(TrainError::Diverged(position.step + 1));
        }
        window.1 += batch.b * batch.t;
        grads_acc = Some(match grads_acc.take() {
            None => grads,
            Some(mut acc) => {
                acc.iter_mut()
                    .zip(&grads)
                    .for_each(|(a, g)| a.iter_mut().zip(g).for_each(|(x, y)| *x += y));
                acc
            }
        });
        position.micro_step += 1;
        if !position.micro_step.is_multiple_of(accumulation) && position.micro_step < total_micro {
            continue;
        }
        let mut grads = grads_acc.take().expect("accumulated");
        let grad_norm = clip_global_norm(&mut grads, t.gradient_clip as f32);
        let lr = learning_rate(
            &t.schedule,
            t.learning_rate,
            position.step,
            total_steps,
            warmup,
            t.min_learning_rate_ratio,
        );
        let lrs: Vec<f32> = lr_scale.iter().map(|s| (lr * s) as f32).collect();
        optimizer.step(&mut values, &grads, &lrs, &no_decay);
        model.set_values(&values);
        position.step += 1;
        let tokens_per_s = window.1 as f64 / window.0.elapsed().as_secs_f64();
        window = (Instant::now(), 0);
        summary.last_loss = Some(batch_loss);
        run.event(
            json!({"type": "train", "step": position.step, "time": now(),
            "epoch": position.micro_step as f64 / steps_per_epoch as f64,
            "loss": batch_loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens_per_s}),
        );
        match &progress {
            Some(bar) => {
                bar.set_position(position.step);
                bar.set_message(format!("loss {batch_loss:.4} · {tokens_per_s:.0} tokens/s"));
            }
            None => run.log(&format!(
                "step {}/{total_steps}: loss {batch_loss:.4}, lr {lr:.3e}, {tokens_per_s:.0} tokens/s",
                position.step
            )),
        }
        // Validate each time an evaluation boundary was passed, and at the end.
        let bucket = evaluation_bucket(position.micro_step, eval_interval);
        if bucket > evaluated_bucket || position.micro_step == total_micro {
            evaluated_bucket = bucket;
            let mode = t.save_checkpoint.as_str();
            if mode == "last" || mode == "each_evaluation_epoch" {
                save(run, "checkpoint", &values, &optimizer, &position)?;
            }
            if !valid_set.is_empty() {
                let v = validation(run, &model, &position)?;
                let (metric, lower_is_better) = v.metric();
                summary.after = Some(v);
                let improved = position.best_metric.is_none_or(|best| {
                    if lower_is_better {
                        metric < best
                    } else {
                        metric > best
                    }
                });
                if mode == "best" && improved {
                    position.best_metric = Some(metric);
                    save(run, "checkpoint", &values, &optimizer, &position)?;
                }
            }
            if mode == "each_evaluation_epoch" {
                save(
                    run,
                    &format!("epoch_{epoch}_step_{}", position.step),
                    &values,
                    &optimizer,
                    &position,
                )?;
            }
        }
        if stop.load(Ordering::SeqCst) {
            if t.save_checkpoint != "disable" {
                save(run, "checkpoint", &values, &optimizer, &position)?;
            }
            stopped = true;
            break;
        }
    }
    if let Some(bar) = progress {
        bar.finish();
    }
    if t.epochs == 0 && t.save_checkpoint != "disable" {
        save(run, "checkpoint", &values, &optimizer, &position)?;
    }
    summary.steps = position.step;
    Ok((summary, stopped))
}

/// Loads the backbone and marks what trains: LoRA adapters (plus `lora_unfreeze_layers`)
/// or, without LoRA, every base tensor except `freeze_layers`. When
/// `architecture.pretrained_weights` is a PEFT adapter, the adapters take its shape
/// (rank, alpha, targets, rsLoRA, DoRA) instead of the `training.lora_*` settings.
fn build_model(
    config: &Config,
    dtype: BaseDtype,
    seed: u64,
) -> Result<(TrainableModel, Option<AdapterConfig>)> {
    let t = &config.training;
    let engine = load_for_training(&config.general.llm_backbone, dtype)?;
    let mut model = TrainableModel::new(engine);
    model.set_gradient_checkpointing(config.architecture.gradient_checkpointing);
    if config.tokenizer.add_prompt_answer_tokens {
        let d = &config.dataset;
        model.add_tokens(&[&d.text_prompt_start, &d.text_answer_separator]);
    }
    // A PEFT adapter to start from brings its own shape.
    let pretrained = Path::new(&config.architecture.pretrained_weights);
    let adapter = if checkpoint::is_peft_adapter(pretrained) {
        Some(checkpoint::read_adapter_config(pretrained)?)
    } else if t.lora {
        Some(AdapterConfig {
            base_model: config.general.llm_backbone.clone(),
            r: t.lora_r as usize,
            alpha: t.lora_alpha as f32,
            dropout: t.lora_dropout as f32,
            targets: t
                .lora_target_modules
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            rslora: t.use_rslora,
            dora: t.use_dora,
        })
    } else {
        None
    };
    let Some(mut adapter) = adapter else {
        let frozen: Vec<String> = t
            .freeze_layers
            .iter()
            .map(|l| layer_pattern(l).to_string())
            .collect();
        model.unfreeze(&[""], &frozen)?;
        return Ok((model, None));
    };
    model.add_lora(&LoraPlan {
        r: adapter.r,
        alpha: adapter.alpha,
        rslora: adapter.rslora,
        dropout: adapter.dropout,
        targets: adapter.targets.clone(),
        seed,
        dora: adapter.dora,
    })?;
    let unfreeze: Vec<&str> = t
        .lora_unfreeze_layers
        .iter()
        .map(|l| layer_pattern(l))
        .collect();
    if !unfreeze.is_empty() {
        model.unfreeze(&unfreeze, &[])?;
    }
    adapter.base_model = config.general.llm_backbone.clone();
    if adapter.targets.is_empty() {
        adapter.targets = lathe_model::llama::PROJECTIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    Ok((model, Some(adapter)))
}

/// The backbone `base` with the PEFT adapter in `adapter` applied, ready to answer;
/// with the adapter folder's chat template when it has tokenizer files.
pub fn load_with_adapter(base: &str, adapter: &Path) -> Result<lathe_model::Engine> {
    if !checkpoint::is_peft_adapter(adapter) {
        return Err(TrainError::Invalid(format!(
            "{}: not a PEFT adapter folder (no adapter_config.json)",
            adapter.display()
        )));
    }
    let mut config = Config::default();
    config.general.llm_backbone = base.to_string();
    config.architecture.pretrained_weights = adapter.display().to_string();
    let (mut model, _) = build_model(&config, BaseDtype::F32, 0)?;
    let params = model.params().to_vec();
    model.set_values(&checkpoint::load_adapter_values(adapter, &params)?);
    let mut engine = model.into_engine();
    // A chat template saved with the adapter is the prompt format it was trained on.
    if adapter.join("tokenizer.json").is_file() {
        let (_, template) = lathe_model::loader::load_text(&adapter.display().to_string())?;
        engine.chat_template = template.or(engine.chat_template);
    }
    Ok(engine)
}

/// A trained run ready to answer: the backbone with the run's trained weights, and the
/// run's settings (its prompt format).
pub struct TrainedModel {
    /// The model.
    pub engine: lathe_model::Engine,
    /// The run's `cfg.yaml`.
    pub config: Config,
}

impl TrainedModel {
    /// Loads the last checkpoint of the run folder `run` (base weights in f32).
    pub fn load(run: &Path) -> Result<Self> {
        let cfg = run.join("cfg.yaml");
        let config = Config::from_yaml_file(&cfg)?.config;
        let dir = checkpoint::latest(run).ok_or_else(|| {
            TrainError::Invalid(format!(
                "{}: the run has no checkpoint (yet)",
                run.display()
            ))
        })?;
        let seed = config.environment.seed.max(0) as u64;
        let (mut model, _) = build_model(&config, BaseDtype::F32, seed)?;
        let params = model.params().to_vec();
        model.set_values(&checkpoint::load(&dir, &params)?.values);
        Ok(Self {
            engine: model.into_engine(),
            config,
        })
    }

    /// The prompt text for a conversation in the run's format: earlier `(prompt,
    /// answer)` turns, then `user`, ending where the answer starts.
    pub fn prompt(
        &self,
        system: Option<&str>,
        history: &[(String, String)],
        user: &str,
    ) -> Result<String> {
        let text = text_format(&self.engine, &self.config)?;
        let d = &self.config.dataset;
        let renderer = text.renderer(d, self.config.tokenizer.max_length as usize);
        Ok(renderer.conversation_text(system, history, user)?)
    }

    /// Stop strings of the run's prompt format.
    pub fn stop_strings(&self) -> Result<Vec<String>> {
        let text = text_format(&self.engine, &self.config)?;
        Ok(text.renderer(&self.config.dataset, 1).stop_strings())
    }
}

/// H2O's layer names for freezing and differential learning rates, as name texts.
fn layer_pattern(layer: &str) -> &str {
    match layer {
        "embed" => "embed_tokens",
        "head" => "lm_head",
        "layer" => "layers.",
        "backbone" => "model.",
        other => other,
    }
}

/// A run folder for `config`: `output_directory`, else `output/<experiment_name>`.
pub fn run_folder(config: &Config) -> PathBuf {
    if config.general.output_directory.is_empty() {
        PathBuf::from("output").join(&config.general.experiment_name)
    } else {
        PathBuf::from(&config.general.output_directory)
    }
}

/// The text handling a run uses: the backbone's tokenizer, and its chat template when
/// the settings ask for it.
pub(crate) fn text_format(engine: &lathe_model::Engine, config: &Config) -> Result<TextFormat> {
    TextFormat::new(
        engine.tokenizer.clone(),
        engine.chat_template.clone(),
        &config.dataset,
    )
}

#[cfg(test)]
mod tests {
    use super::evaluation_bucket;

    /// The micro-steps after which a run of `steps` validates, every `interval`.
    fn evaluations(steps: u64, interval: f64) -> Vec<u64> {
        (1..=steps)
            .filter(|&m| evaluation_bucket(m, interval) > evaluation_bucket(m - 1, interval))
            .collect()
    }

    #[test]
    fn evaluation_boundaries_follow_fractional_epochs() {
        assert_eq!(evaluations(165, 165.0 * 0.5), [83, 165]);
        assert_eq!(
            evaluations(100, 100.0 * 0.1),
            (1..=10).map(|k| 10 * k).collect::<Vec<_>>()
        );
        // The last boundary (10.2) lies past the end, where the run validates anyway.
        assert_eq!(evaluations(10, 10.0 * 0.34), [4, 7]);
        assert_eq!(evaluations(3, 1.0), [1, 2, 3]);
    }
}
