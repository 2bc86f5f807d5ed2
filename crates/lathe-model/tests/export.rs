//! Exports of a tiny random Llama with trained adapters: the Hugging Face folder and the
//! GGUF file load back and compute what the adapted model computes.

mod common;

use common::{Arch, StDtype};
use lathe_model::export::{write_gguf, write_hf, GgufExport, GgufQuant, HfExport, SaveDtype};
use lathe_model::loader::{load_folder, load_for_training, load_gguf};
use lathe_model::quant::BaseDtype;
use lathe_model::train::{LoraPlan, TrainableModel};
use lathe_model::{Engine, GenerationConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The tiny model with adapters (DoRA when `dora`) whose values are random, so that
/// merging them changes every projection.
fn adapted(dir: &std::path::Path, arch: Arch, tie: bool, dora: bool) -> Engine {
    common::write_hf_folder_arch(dir, tie, 21, StDtype::F32, 1, arch);
    let engine = load_for_training(dir.to_str().unwrap(), BaseDtype::F32).unwrap();
    let mut model = TrainableModel::new(engine);
    model
        .add_lora(&LoraPlan {
            r: 4,
            alpha: 8.0,
            rslora: false,
            dropout: 0.0,
            targets: vec![],
            seed: 3,
            dora,
        })
        .unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let values: Vec<Vec<f32>> = model
        .params()
        .iter()
        .map(|p| {
            let n = p.shape.iter().product();
            let base = if p.name.ends_with("magnitude_vector") {
                1.0
            } else {
                0.0
            };
            (0..n).map(|_| base + rng.random_range(-0.3..0.3)).collect()
        })
        .collect();
    model.set_values(&values);
    model.into_engine()
}

const PROMPT: [u32; 6] = [104, 101, 108, 108, 111, 32];

fn logits(engine: &Engine) -> Vec<f32> {
    engine.logits(&PROMPT).unwrap().concat()
}

fn greedy(engine: &Engine) -> Vec<u32> {
    let config = GenerationConfig {
        max_new_tokens: 16,
        eos_token_ids: vec![u32::MAX],
        ..Default::default()
    };
    let out = engine.generate(&[PROMPT.to_vec()], &config, &mut |_, _| true);
    out.unwrap().remove(0).tokens
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Cosine similarity of the centred vectors.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let centred = |v: &[f32]| {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        v.iter().map(|x| x - mean).collect::<Vec<_>>()
    };
    let (a, b) = (centred(a), centred(b));
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
    dot(&a, &b) / (dot(&a, &a) * dot(&b, &b)).sqrt()
}

fn hf_export(dtype: SaveDtype, max_shard_bytes: usize) -> HfExport {
    HfExport {
        dtype,
        max_shard_bytes,
        chat_template: Some(common::CHATML.into()),
        generation: serde_json::Map::new(),
    }
}

/// LoRA and DoRA merged into f32 safetensors give the adapted model's logits and greedy
/// tokens; a small shard limit splits the weights with an index.
#[test]
fn merged_folder_computes_what_the_adapted_model_computes() {
    for (arch, tie, dora) in [
        (Arch::Llama, true, false),
        (Arch::Llama, false, true),
        (Arch::Qwen2, false, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let engine = adapted(&tmp.path().join("base"), arch, tie, dora);
        let out = tmp.path().join("merged");
        std::fs::create_dir(&out).unwrap();
        write_hf(&engine, &out, &hf_export(SaveDtype::F32, 64 * 1024)).unwrap();
        assert!(out.join("model.safetensors.index.json").is_file());
        assert!(
            out.join("model-00001-of-00006.safetensors").is_file() || {
                let shards = std::fs::read_dir(&out)
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .file_name()
                            .to_string_lossy()
                            .starts_with("model-")
                    })
                    .count();
                shards > 1
            }
        );
        let merged = load_folder(&out).unwrap();
        let (want, got) = (logits(&engine), logits(&merged));
        assert!(
            max_diff(&want, &got) < 1e-4,
            "{arch:?} tie={tie} dora={dora}: {}",
            max_diff(&want, &got)
        );
        assert_eq!(greedy(&engine), greedy(&merged));
        let template = merged.chat_template.as_ref().expect("chat template kept");
        assert_eq!(template.source(), common::CHATML);
    }
}

/// bf16 weights: the logits move by bf16 rounding only (here 1.5 % of their range).
#[test]
fn bf16_folder_stays_close() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = adapted(&tmp.path().join("base"), Arch::Llama, true, false);
    let out = tmp.path().join("merged");
    std::fs::create_dir(&out).unwrap();
    write_hf(&engine, &out, &hf_export(SaveDtype::BF16, usize::MAX)).unwrap();
    assert!(out.join("model.safetensors").is_file());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let merged = load_folder(&out).unwrap();
    let diff = max_diff(&logits(&engine), &logits(&merged));
    let want = logits(&engine);
    let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        diff < 0.03 * spread,
        "bf16 logits moved by {diff} of {spread}"
    );
}

/// GGUF exports: F32 computes the same logits and F16 the same greedy tokens. Random
/// weights have no margins to spare, so the quantized files are held to the cosine of
/// their logits with the adapted model's (measured: Q8_0 0.9998, Q4_0 0.95); greedy
/// agreement of the quantized files is checked on the demo run
/// (`lathe-cli/tests/train.rs::exports_answer_as_the_run_does`).
#[test]
fn gguf_export_loads_back() {
    for arch in [Arch::Llama, Arch::Qwen2] {
        let tmp = tempfile::tempdir().unwrap();
        let engine = adapted(&tmp.path().join("base"), arch, false, false);
        let want = logits(&engine);
        let spread = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for quant in [
            GgufQuant::F32,
            GgufQuant::F16,
            GgufQuant::Q8_0,
            GgufQuant::Q4_0,
            GgufQuant::Q4KM,
        ] {
            let path = tmp.path().join(format!("model-{quant:?}.gguf"));
            let export = GgufExport {
                quant,
                name: "tiny".into(),
                chat_template: Some(common::CHATML.into()),
            };
            write_gguf(&engine, &path, &export, None).unwrap();
            let loaded = load_gguf(&path).unwrap();
            assert_eq!(
                loaded.tokenizer.encode("the cat in", false).unwrap(),
                engine.tokenizer.encode("the cat in", false).unwrap()
            );
            let diff = max_diff(&want, &logits(&loaded));
            let cos = cosine(&want, &logits(&loaded));
            eprintln!("{arch:?} {quant:?}: max diff {diff} of {spread}, cosine {cos}");
            match quant {
                GgufQuant::F32 => assert!(diff < 1e-4, "{arch:?} F32: {diff}"),
                GgufQuant::F16 => assert_eq!(greedy(&loaded), greedy(&engine), "{arch:?} F16"),
                GgufQuant::Q8_0 => assert!(cos > 0.999, "{arch:?} Q8_0: cosine {cos}"),
                GgufQuant::Q4_0 | GgufQuant::Q4KM => {
                    assert!(cos > 0.9, "{arch:?} {quant:?}: cosine {cos}")
                }
            }
            let template = loaded.chat_template.as_ref().expect("chat template kept");
            assert_eq!(template.source(), common::CHATML);
        }
    }
}
