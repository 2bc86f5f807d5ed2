//! Training-step speed for `bench/train.sh`:
//! `train_bench MODEL MODE TEXT_FILE STEPS` runs STEPS optimizer steps (AdamW, lr 1e-4)
//! on one batch of 2 × 512 tokens of TEXT_FILE and prints one JSON line with the
//! steady-state tokens/s (the first step, which warms up, is left out). MODE: `lora`
//! (r 4, α 16, all linear layers, f32 base), `lora-int8`, `lora-int4`, or `full`; a
//! `-gc` suffix (`lora-gc`, `full-gc`) turns on per-layer gradient checkpointing.

use std::time::Instant;

use lathe_model::loader::load_for_training;
use lathe_model::quant::BaseDtype;
use lathe_model::train::{Batch, LoraPlan, TrainStep, TrainableModel};
use lathe_train::optim::{Optimizer, OptimizerSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    lathe_model::allocator::reuse_freed_buffers();
    lathe_model::allocator::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let [_, model, mode, text, steps] = args.as_slice() else {
        return Err(
            "usage: train_bench MODEL lora|lora-int8|lora-int4|full[-gc] TEXT_FILE STEPS".into(),
        );
    };
    let steps: usize = steps.parse()?;
    let (base_mode, checkpointing) = match mode.strip_suffix("-gc") {
        Some(base) => (base, true),
        None => (mode.as_str(), false),
    };
    let dtype = match base_mode {
        "lora-int8" => BaseDtype::Int8,
        "lora-int4" => BaseDtype::Int4,
        _ => BaseDtype::F32,
    };
    let mut trainable = TrainableModel::new(load_for_training(model, dtype)?);
    trainable.set_gradient_checkpointing(checkpointing);
    if base_mode == "full" {
        trainable.unfreeze(&[""], &[])?;
    } else {
        trainable.add_lora(&LoraPlan {
            r: 4,
            alpha: 16.0,
            rslora: false,
            dropout: 0.05,
            targets: vec![],
            seed: 0,
            dora: false,
        })?;
    }
    let (b, t) = (2, 512);
    let ids = trainable
        .engine()
        .tokenizer
        .encode(&std::fs::read_to_string(text)?, false)?;
    let ids: Vec<u32> = ids.into_iter().take(b * t).collect();
    let n = (b * (t - 1)) as f32;
    let weights = (0..b * t)
        .map(|i| if i % t == 0 { 0.0 } else { 1.0 / n })
        .collect();
    let batch = Batch {
        b,
        t,
        ids,
        weights,
        hidden: None,
    };
    let params = trainable.params().to_vec();
    let no_decay: Vec<bool> = params.iter().map(|p| p.no_decay).collect();
    let mut optimizer = Optimizer::new(
        OptimizerSettings {
            kind: "AdamW".into(),
            weight_decay: 0.0,
        },
        params.len(),
    );
    let mut values = trainable.values();
    let lrs = vec![1e-4f32; params.len()];
    let mut timed = 0f64;
    let mut losses = Vec::new();
    for step in 0..steps {
        let start = Instant::now();
        let train_step = TrainStep {
            seed: 0,
            step: step as u64,
            hidden_dropout: 0.0,
            neftune_alpha: 0.0,
        };
        let (loss, grads) = trainable.train_batch(&batch, &train_step);
        optimizer.step(&mut values, &grads, &lrs, &no_decay);
        trainable.set_values(&values);
        if step > 0 {
            timed += start.elapsed().as_secs_f64();
        }
        losses.push(format!("{:.4}", loss.loss));
    }
    let tokens_per_s = ((steps - 1) * b * t) as f64 / timed;
    println!(
        "{{\"engine\": \"lathe\", \"mode\": \"{mode}\", \"tokens_per_s\": {tokens_per_s:.1}, \"losses\": [{}]}}",
        losses.join(", ")
    );
    Ok(())
}
