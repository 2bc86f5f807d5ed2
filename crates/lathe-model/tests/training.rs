//! Training passes on a tiny random Llama: the chunked cross-entropy matches the
//! inference logits, gradients match finite differences, and LoRA gradients reach every
//! layer through quantized base weights.

mod common;

use common::StDtype;
use lathe_model::loader::{load_folder, load_for_training};
use lathe_model::quant::BaseDtype;
use lathe_model::sampling::log_softmax;
use lathe_model::train::{Batch, LoraPlan, TrainStep, TrainableModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tiny(dir: &std::path::Path, tie: bool) {
    common::write_hf_folder(dir, tie, 11, StDtype::F32, 1);
}

fn trainable(dir: &std::path::Path, dtype: BaseDtype) -> TrainableModel {
    TrainableModel::new(load_for_training(dir.to_str().unwrap(), dtype).unwrap())
}

fn lora_plan(dropout: f32) -> LoraPlan {
    LoraPlan {
        r: 4,
        alpha: 16.0,
        rslora: false,
        dropout,
        targets: vec![],
        seed: 5,
    }
}

/// Two rows, the second right-padded; loss on every real position but the first.
fn batch() -> Batch {
    let (b, t) = (2, 12);
    let mut rng = StdRng::seed_from_u64(3);
    let vocab = common::vocab().tokens.len() as u32;
    let ids: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..vocab)).collect();
    let weights = (0..b * t)
        .map(|i| {
            let (r, j) = (i / t, i % t);
            let len = if r == 0 { t } else { 8 };
            if j >= 1 && j < len { 1.0 } else { 0.0 }
        })
        .collect();
    Batch { b, t, ids, weights }
}

const STEP: TrainStep = TrainStep {
    seed: 1,
    step: 0,
    hidden_dropout: 0.0,
    neftune_alpha: 0.0,
};

/// Random non-zero adapters (B starts at zero, which would leave A without gradient).
fn randomize(model: &mut TrainableModel, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<Vec<f32>> = model
        .params()
        .iter()
        .map(|p| (0..p.shape.iter().product()).map(|_| rng.random_range(-0.3..0.3)).collect())
        .collect();
    model.set_values(&values);
}

#[test]
fn chunked_loss_matches_the_inference_logits() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), true);
    let engine = load_folder(dir.path()).unwrap();
    let model = trainable(dir.path(), BaseDtype::F32);
    let batch = batch();
    let measured = model.eval_batch(&batch);
    let mut expected = 0f64;
    for r in 0..batch.b {
        let row = &batch.ids[r * batch.t..(r + 1) * batch.t];
        let logits = engine.logits(row).unwrap();
        for j in 1..batch.t {
            let w = batch.weights[r * batch.t + j];
            if w > 0.0 {
                let nll = -log_softmax(&logits[j - 1])[row[j] as usize];
                expected += nll;
                let got = measured.nll[r * batch.t + j] as f64;
                assert!((got - nll).abs() < 1e-3, "row {r} pos {j}: {got} vs {nll}");
            }
        }
    }
    assert!((measured.loss - expected).abs() < 1e-2 * expected.abs().max(1.0));
}

#[test]
fn gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), false);
    let mut model = trainable(dir.path(), BaseDtype::F32);
    model.add_lora(&lora_plan(0.0)).unwrap();
    model.unfreeze(&["norm", "lm_head"], &[]).unwrap();
    randomize(&mut model, 9);
    let batch = batch();
    let (loss, grads) = model.train_batch(&batch, &STEP);
    let base = model.values();
    let mut checked = 0;
    let eps = 1e-2f32;
    for (k, info) in model.params().to_vec().iter().enumerate() {
        if !(k % 9 == 0 || info.name.contains("norm") || info.name == "lm_head.weight") {
            continue;
        }
        for idx in [0, info.shape.iter().product::<usize>() / 2] {
            let mut at = |delta: f32| {
                let mut v = base.clone();
                v[k][idx] += delta;
                model.set_values(&v);
                model.eval_batch(&batch).loss
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            let analytic = grads[k][idx] as f64;
            let tolerance = 2e-2 * numeric.abs().max(analytic.abs()).max(0.05);
            assert!(
                (numeric - analytic).abs() <= tolerance,
                "{}[{idx}]: numeric {numeric} analytic {analytic}",
                info.name
            );
            checked += 1;
        }
    }
    model.set_values(&base);
    assert!(checked >= 10);
    assert!(loss.loss.is_finite());
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn adapter_gradients_flow_through_quantized_base_weights() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), true);
    let batch = batch();
    let grads = |dtype: BaseDtype| {
        let mut model = trainable(dir.path(), dtype);
        model.add_lora(&lora_plan(0.0)).unwrap();
        randomize(&mut model, 9);
        let names: Vec<String> = model.params().iter().map(|p| p.name.clone()).collect();
        (names, model.train_batch(&batch, &STEP).1)
    };
    let (names, reference) = grads(BaseDtype::F32);
    assert_eq!(names.len(), 2 * 7 * common::LAYERS);
    for (dtype, floor) in [
        (BaseDtype::Bf16, 0.99),
        (BaseDtype::F16, 0.99),
        (BaseDtype::Int8, 0.99),
        (BaseDtype::Int4, 0.99),
    ] {
        let (_, quantized) = grads(dtype);
        let mut worst = (1.0f64, String::new());
        for ((name, r), q) in names.iter().zip(&reference).zip(&quantized) {
            assert!(r.iter().any(|v| *v != 0.0), "{name}: no gradient in f32");
            let c = cosine(r, q);
            if c < worst.0 {
                worst = (c, name.clone());
            }
        }
        eprintln!("{dtype:?}: lowest adapter-gradient cosine {:.5} ({})", worst.0, worst.1);
        assert!(worst.0 >= floor, "{dtype:?}: cosine {} at {}", worst.0, worst.1);
    }
}
