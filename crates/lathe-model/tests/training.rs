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
        dora: false,
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
            if j >= 1 && j < len {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Batch {
        b,
        t,
        ids,
        weights,
        hidden: None,
    }
}

/// One row of `ids` with loss on every position but the first.
fn one_row(ids: Vec<u32>) -> Batch {
    let t = ids.len();
    Batch {
        b: 1,
        t,
        weights: (0..t).map(|j| if j == 0 { 0.0 } else { 1.0 }).collect(),
        ids,
        hidden: None,
    }
}

const STEP: TrainStep = TrainStep {
    seed: 1,
    step: 0,
    hidden_dropout: 0.0,
    neftune_alpha: 0.0,
};

/// Random non-zero adapters (B starts at zero, which would leave A without gradient):
/// `lora_B` uniform in ±`b_scale`, everything else in ±0.3 unless `keep_a`.
fn randomize(model: &mut TrainableModel, seed: u64, b_scale: f32, keep_a: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let current = model.values();
    let values: Vec<Vec<f32>> = model
        .params()
        .iter()
        .zip(current)
        .map(|(p, now)| {
            let scale = if p.name.contains("lora_B") {
                b_scale
            } else if keep_a {
                return now;
            } else {
                0.3
            };
            (0..p.shape.iter().product())
                .map(|_| rng.random_range(-scale..scale))
                .collect()
        })
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
    let measured = model.evaluator().loss(&batch);
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
    check_gradients(&batch());
}

/// The same with tokens hidden (token masking), through the fused attention's mask.
#[test]
fn gradients_with_hidden_tokens_match_finite_differences() {
    let mut hidden = batch();
    hidden.hidden = Some((0..hidden.b * hidden.t).map(|i| i % 5 == 2).collect());
    check_gradients(&hidden);
}

fn check_gradients(batch: &Batch) {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), false);
    let mut model = trainable(dir.path(), BaseDtype::F32);
    model.add_lora(&lora_plan(0.0)).unwrap();
    model.unfreeze(&["norm", "lm_head"], &[]).unwrap();
    randomize(&mut model, 9, 0.3, false);
    let (loss, grads) = model.train_batch(batch, &STEP);
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
                model.evaluator().loss(batch).loss
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
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Lowest per-tensor cosine between adapter gradients of `dtype` and of f32.
fn lowest_cosine(
    names: &[String],
    reference: &[Vec<f32>],
    quantized: &[Vec<f32>],
) -> (f64, String) {
    let mut worst = (1.0f64, String::new());
    for ((name, r), q) in names.iter().zip(reference).zip(quantized) {
        assert!(r.iter().any(|v| *v != 0.0), "{name}: no gradient in f32");
        let c = cosine(r, q);
        if c < worst.0 {
            worst = (c, name.clone());
        }
    }
    worst
}

const PASSAGE: &str = "Call me Ishmael. Some years ago, never mind how long precisely, having \
little or no money in my purse, and nothing particular to interest me on shore, I thought I \
would sail about a little and see the watery part of the world. It is a way I have of driving \
off the spleen and regulating the circulation. Whenever I find myself growing grim about the \
mouth; whenever it is a damp, drizzly November in my soul, then, I account it high time to get \
to sea as soon as I can.";

/// Cosine per layer over all its adapter gradients together.
fn layer_cosines(names: &[String], reference: &[Vec<f32>], other: &[Vec<f32>]) -> Vec<f64> {
    (0..30)
        .map(|layer| {
            let prefix = format!("model.layers.{layer}.");
            let pick = |g: &[Vec<f32>]| -> Vec<f32> {
                names
                    .iter()
                    .zip(g)
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .flat_map(|(_, v)| v.iter().copied())
                    .collect()
            };
            cosine(&pick(reference), &pick(other))
        })
        .collect()
}

/// The demo model (SmolLM2-135M) with bf16, 8-bit and 4-bit NF4 base weights: every
/// adapter of all 30 layers gets a gradient, pointing where the f32 run's does (cosine
/// per layer: bf16 ≥ 0.999, int8 ≥ 0.98; NF4 changes the function more, ≥ 0.3).
#[test]
fn quantized_demo_model_gradients_match_f32() {
    let path = lathe_model::loader::demo_model_path();
    assert!(path.is_file(), "run scripts/fetch-demo-model.sh first");
    let spec = path.to_str().unwrap();
    let engine = lathe_model::loader::load(spec).unwrap();
    let ids = engine.tokenizer.encode(PASSAGE, false).unwrap();
    let batch = one_row(ids);
    let grads = |dtype: BaseDtype| {
        let mut model = TrainableModel::new(load_for_training(spec, dtype).unwrap());
        model.add_lora(&lora_plan(0.0)).unwrap();
        // Trained-adapter magnitudes: A from its initialisation, B small.
        randomize(&mut model, 9, 0.01, true);
        let names: Vec<String> = model.params().iter().map(|p| p.name.clone()).collect();
        (names, model.train_batch(&batch, &STEP).1)
    };
    let (names, reference) = grads(BaseDtype::F32);
    assert_eq!(names.len(), 2 * 7 * 30);
    for (dtype, floor) in [
        (BaseDtype::Bf16, 0.999),
        (BaseDtype::Int8, 0.98),
        (BaseDtype::Int4, 0.3),
    ] {
        let (_, quantized) = grads(dtype);
        let worst = lowest_cosine(&names, &reference, &quantized);
        let layers = layer_cosines(&names, &reference, &quantized);
        eprintln!(
            "{dtype:?}: lowest adapter-gradient cosine {:.5} ({})",
            worst.0, worst.1
        );
        eprintln!(
            "{dtype:?}: per layer {:?}",
            layers.iter().map(|c| format!("{c:.4}")).collect::<Vec<_>>()
        );
        // Per layer: the quantized model is a slightly different function, and single
        // attention-adapter tensors are the most sensitive part of it.
        for (layer, c) in layers.iter().enumerate() {
            assert!(*c >= floor, "{dtype:?}: layer {layer} cosine {c}");
        }
        assert!(quantized.iter().all(|g| g.iter().any(|v| *v != 0.0)));
    }
}

/// Names and gradients of randomized adapters on the tiny model in `dir`.
fn tiny_adapter_gradients(dir: &std::path::Path, dtype: BaseDtype) -> (Vec<String>, Vec<Vec<f32>>) {
    let mut model = trainable(dir, dtype);
    model.add_lora(&lora_plan(0.0)).unwrap();
    randomize(&mut model, 9, 0.3, false);
    let names: Vec<String> = model.params().iter().map(|p| p.name.clone()).collect();
    (names, model.train_batch(&batch(), &STEP).1)
}

#[test]
fn adapter_gradients_flow_through_quantized_base_weights() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), true);
    let grads = |dtype| tiny_adapter_gradients(dir.path(), dtype);
    let (names, reference) = grads(BaseDtype::F32);
    assert_eq!(names.len(), 2 * 7 * common::LAYERS);
    for (dtype, floor) in [
        (BaseDtype::Bf16, 0.99),
        (BaseDtype::F16, 0.99),
        (BaseDtype::Int8, 0.99),
    ] {
        let (_, quantized) = grads(dtype);
        let worst = lowest_cosine(&names, &reference, &quantized);
        eprintln!(
            "{dtype:?}: lowest adapter-gradient cosine {:.5} ({})",
            worst.0, worst.1
        );
        assert!(
            worst.0 >= floor,
            "{dtype:?}: cosine {} at {}",
            worst.0,
            worst.1
        );
    }
}

/// Rewrites the tiny folder's projection weights as values the packed format holds
/// exactly (packed in Lathe's `[in, out]` layout, expanded back).
fn snap_to(dir: &std::path::Path, dtype: BaseDtype) {
    use lathe_model::linear::transpose;
    use lathe_model::quant::PackedWeight;
    use safetensors::tensor::{Dtype, TensorView};
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let values = if name.ends_with("_proj.weight") {
            let (out, inp) = (shape[0], shape[1]);
            let packed = PackedWeight::pack(&transpose(&values, out, inp), inp, out, dtype);
            transpose(&packed.unpack(), inp, out)
        } else {
            values
        };
        tensors.push((
            name,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

/// On weights that 8-bit and NF4 hold exactly, the quantized runs compute the f32 run's
/// function, so their adapter gradients must match it (cosine ≥ 0.99 for every
/// tensor): the gradient path through packed weights loses nothing of its own.
#[test]
fn quantized_adapter_gradients_equal_f32_on_exactly_held_weights() {
    for dtype in [BaseDtype::Int8, BaseDtype::Int4] {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path(), true);
        snap_to(dir.path(), dtype);
        let (names, reference) = tiny_adapter_gradients(dir.path(), BaseDtype::F32);
        let (_, quantized) = tiny_adapter_gradients(dir.path(), dtype);
        let worst = lowest_cosine(&names, &reference, &quantized);
        eprintln!(
            "{dtype:?} on exactly held weights: lowest cosine {:.6}",
            worst.0
        );
        assert!(
            worst.0 >= 0.99,
            "{dtype:?}: cosine {} at {}",
            worst.0,
            worst.1
        );
    }
}

/// Token masking: a hidden token changes nothing at the positions after the next one
/// (they cannot see it), in the evaluator and in the training pass alike.
#[test]
fn hidden_tokens_are_invisible_to_later_positions() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), false);
    let mut model = trainable(dir.path(), BaseDtype::F32);
    model.add_lora(&lora_plan(0.0)).unwrap();
    randomize(&mut model, 9, 0.3, false);
    let j = 4;
    let with_token = |id: u32, hide: bool| {
        let mut b = batch();
        b.ids[j] = id;
        b.hidden = hide.then(|| (0..b.b * b.t).map(|i| i == j).collect());
        b
    };
    let nll = |b: &Batch| model.evaluator().loss(b).nll;
    let (a, b) = (nll(&with_token(3, true)), nll(&with_token(7, true)));
    let t = batch().t;
    for i in j + 2..t {
        assert!(
            (a[i] - b[i]).abs() < 1e-5,
            "position {i}: {} vs {}",
            a[i],
            b[i]
        );
    }
    assert!(
        (a[j + 1] - b[j + 1]).abs() > 1e-6,
        "the token still sees itself"
    );
    let (c, d) = (nll(&with_token(3, false)), nll(&with_token(7, false)));
    assert!(
        (j + 2..t).any(|i| (c[i] - d[i]).abs() > 1e-4),
        "visible, it matters"
    );
    // The second row is untouched by the first row's hidden token.
    assert_eq!(a[t..], c[t..]);
    // The training pass sees the same function.
    let hidden = with_token(3, true);
    let (loss, _) = model.train_batch(&hidden, &STEP);
    let expected = model.evaluator().loss(&hidden).loss;
    assert!((loss.loss - expected).abs() < 1e-4 * expected.abs().max(1.0));
}

/// `add_prompt_answer_tokens`: markers become single new tokens, the embeddings and
/// head grow by their mean, and the grown model trains them when unfrozen.
#[test]
fn added_tokens_grow_the_vocabulary_with_mean_rows() {
    let dir = tempfile::tempdir().unwrap();
    tiny(dir.path(), false);
    let mut model = trainable(dir.path(), BaseDtype::F32);
    let before = model.engine().config().vocab_size;
    assert_eq!(model.add_tokens(&["<|prompt|>", "<|answer|>", ""]), 2);
    assert_eq!(model.add_tokens(&["<|prompt|>"]), 0, "already known");
    let vocab = model.engine().config().vocab_size;
    assert_eq!(vocab, model.engine().tokenizer.vocab_size());
    assert_eq!(vocab, before + 2);
    let ids = model
        .engine()
        .tokenizer
        .encode("<|prompt|>the hat<|answer|>", false)
        .unwrap();
    assert_eq!(ids[0] as usize, before);
    assert_eq!(*ids.last().unwrap() as usize, before + 1);
    assert_eq!(
        model.engine().tokenizer.decode(&ids, true).unwrap(),
        "<|prompt|>the hat<|answer|>"
    );
    model.unfreeze(&["embed_tokens", "lm_head"], &[]).unwrap();
    let shapes: Vec<Vec<usize>> = model.params().iter().map(|p| p.shape.clone()).collect();
    assert!(shapes.contains(&vec![vocab, common::HIDDEN]), "{shapes:?}");
    let values = model.values();
    let embed = values
        .iter()
        .find(|v| v.len() == vocab * common::HIDDEN)
        .unwrap();
    let mean0 = (0..before).map(|i| embed[i * common::HIDDEN]).sum::<f32>() / before as f32;
    assert!((embed[before * common::HIDDEN] - mean0).abs() < 1e-5);
    let batch = one_row(ids);
    let (loss, grads) = model.train_batch(&batch, &STEP);
    assert!(loss.loss.is_finite());
    // The new tokens' embedding rows get gradient.
    let k = shapes
        .iter()
        .position(|s| *s == vec![vocab, common::HIDDEN])
        .unwrap();
    let row = &grads[k][before * common::HIDDEN..(before + 1) * common::HIDDEN];
    assert!(row.iter().any(|g| *g != 0.0));
}

/// Per-layer gradient checkpointing gives the plain pass's loss and gradients, with
/// every source of training randomness on (LoRA dropout, intermediate dropout, NEFTune,
/// hidden tokens), for adapters on a packed base, full fine-tuning with tied
/// embeddings, and a model whose lower layers are frozen.
#[test]
fn checkpointed_pass_equals_the_plain_pass() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), true, 11, StDtype::F32, 1);
    let mut noisy = batch();
    noisy.hidden = Some((0..noisy.b * noisy.t).map(|i| i % 5 == 2).collect());
    let step = TrainStep {
        seed: 4,
        step: 3,
        hidden_dropout: 0.1,
        neftune_alpha: 5.0,
    };
    type Setup = fn(&mut TrainableModel);
    let setups: [(&str, BaseDtype, Setup); 3] = [
        ("lora, int8 base", BaseDtype::Int8, |m| {
            m.add_lora(&lora_plan(0.1)).unwrap();
            randomize(m, 9, 0.3, true);
        }),
        ("full, tied", BaseDtype::F32, |m| {
            m.unfreeze(&[""], &[]).unwrap()
        }),
        ("top layer and final norm", BaseDtype::F32, |m| {
            let top = format!("layers.{}.", common::LAYERS - 1);
            m.unfreeze(&[top.as_str(), "model.norm"], &[]).unwrap()
        }),
    ];
    for (name, dtype, setup) in setups {
        let run = |checkpointing: bool| {
            let mut model = trainable(dir.path(), dtype);
            setup(&mut model);
            model.set_gradient_checkpointing(checkpointing);
            model.train_batch(&noisy, &step)
        };
        let (plain_loss, plain) = run(false);
        let (loss, grads) = run(true);
        assert!(
            (loss.loss - plain_loss.loss).abs() <= 1e-5 * plain_loss.loss.abs(),
            "{name}: loss {} vs {}",
            loss.loss,
            plain_loss.loss
        );
        assert_eq!(grads.len(), plain.len());
        for (k, (g, p)) in grads.iter().zip(&plain).enumerate() {
            let scale = p.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
            let diff = g.iter().zip(p).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-4 * scale,
                "{name}: tensor {k} differs by {diff} (scale {scale})"
            );
            assert!(
                p.iter().any(|x| *x != 0.0),
                "{name}: tensor {k} got no gradient"
            );
        }
    }
}
