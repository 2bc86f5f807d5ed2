//! A tiny random Llama saved by the test as a Hugging Face folder and as GGUF:
//! both sources must agree, and generation must be consistent with the forward pass.

mod common;

use common::{StDtype, CONTEXT};
use lathe_model::loader::{load_folder, load_gguf};
use lathe_model::{ChatMessage, Engine, Generated, GenerationConfig};

fn folder(tie: bool, dtype: StDtype, shards: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), tie, 7, dtype, shards);
    let engine = load_folder(dir.path()).unwrap();
    (dir, engine)
}

fn gguf(tie: bool) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    common::write_gguf(&path, tie, 7);
    let engine = load_gguf(&path).unwrap();
    (dir, engine)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TEXT: &str = "the cat sat in the hat, then ate 42 apples";

/// Generation for one prompt, wrapped in a one-element batch as `generate` returns it.
fn generate_one(engine: &Engine, prompt: &[u32], config: &GenerationConfig) -> Vec<Generated> {
    engine
        .generate(&[prompt.to_vec()], config, &mut |_, _| true)
        .unwrap()
}

fn greedy(n: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: n,
        eos_token_ids: vec![u32::MAX],
        ..Default::default()
    }
}

#[test]
fn hf_folder_and_gguf_give_identical_logits() {
    for tie in [false, true] {
        let (_a, hf) = folder(tie, StDtype::F32, 1);
        let (_b, gg) = gguf(tie);
        let ids = hf.tokenizer.encode(TEXT, true).unwrap();
        assert_eq!(
            ids,
            gg.tokenizer.encode(TEXT, true).unwrap(),
            "tokenizers agree"
        );
        assert!(ids.len() > 10);
        let (x, y) = (hf.logits(&ids).unwrap(), gg.logits(&ids).unwrap());
        assert_eq!(x[0].len(), common::vocab().tokens.len());
        assert_eq!(max_diff(&x, &y), 0.0, "tie_word_embeddings={tie}");
        let messages = [ChatMessage::new("user", "hi")];
        assert_eq!(
            hf.apply_chat_template(&messages, true).unwrap(),
            gg.apply_chat_template(&messages, true).unwrap()
        );
    }
}

#[test]
fn sharded_and_half_precision_checkpoints_load() {
    let (_a, f32_engine) = folder(false, StDtype::F32, 1);
    let (_b, sharded) = folder(false, StDtype::F32, 3);
    let ids = f32_engine.tokenizer.encode(TEXT, true).unwrap();
    let reference = f32_engine.logits(&ids).unwrap();
    assert_eq!(max_diff(&reference, &sharded.logits(&ids).unwrap()), 0.0);
    for (dtype, tolerance) in [(StDtype::F16, 0.05), (StDtype::BF16, 0.3)] {
        let (_c, half) = folder(false, dtype, 1);
        let diff = max_diff(&reference, &half.logits(&ids).unwrap());
        assert!(diff > 0.0 && diff < tolerance, "difference {diff}");
    }
}

#[test]
fn cached_decoding_matches_the_full_forward_pass() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = engine.tokenizer.encode(TEXT, true).unwrap();
    let out = generate_one(&engine, &prompt, &greedy(12));
    assert_eq!(out[0].tokens.len(), 12);
    let mut full = prompt.clone();
    full.extend(&out[0].tokens);
    let logits = engine.logits(&full).unwrap();
    for (i, token) in out[0].tokens.iter().enumerate() {
        let row = &logits[prompt.len() - 1 + i];
        assert_eq!(lathe_model::sampling::argmax(row), *token, "step {i}");
    }
}

#[test]
fn left_padded_batches_generate_what_single_prompts_do() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompts: Vec<Vec<u32>> = ["the hat", "in the cat sat on 7 mats, then", "a"]
        .iter()
        .map(|p| engine.tokenizer.encode(p, true).unwrap())
        .collect();
    let batch = engine
        .generate(&prompts, &greedy(8), &mut |_, _| true)
        .unwrap();
    for (prompt, batched) in prompts.iter().zip(&batch) {
        let single = generate_one(&engine, prompt, &greedy(8));
        assert_eq!(batched, &single[0]);
    }
}

#[test]
fn eos_min_tokens_and_streaming_callbacks() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = engine.tokenizer.encode(TEXT, true).unwrap();
    let first = generate_one(&engine, &prompt, &greedy(3));
    // Make the model's own third greedy token the EOS: generation ends before it.
    let eos = first[0].tokens[2];
    let config = GenerationConfig {
        eos_token_ids: vec![eos],
        ..greedy(10)
    };
    let mut streamed = Vec::new();
    let out = engine
        .generate(std::slice::from_ref(&prompt), &config, &mut |row, id| {
            streamed.push((row, id));
            true
        })
        .unwrap();
    assert!(out[0].hit_eos);
    assert_eq!(out[0].tokens, first[0].tokens[..2]);
    assert_eq!(
        streamed,
        vec![(0, first[0].tokens[0]), (0, first[0].tokens[1])]
    );
    let at_least = GenerationConfig {
        min_new_tokens: 5,
        ..config
    };
    let out = generate_one(&engine, &prompt, &at_least);
    assert!(out[0].tokens.len() >= 5 && !out[0].tokens[..5].contains(&eos));
}

#[test]
fn sampling_is_seeded_and_top_k_one_is_greedy() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = vec![engine.tokenizer.encode(TEXT, true).unwrap()];
    let sample = |seed: u64, top_k: usize| {
        let config = GenerationConfig {
            temperature: 1.5,
            top_k,
            seed,
            ..greedy(16)
        };
        engine.generate(&prompt, &config, &mut |_, _| true).unwrap()[0]
            .tokens
            .clone()
    };
    assert_eq!(sample(1, 0), sample(1, 0));
    assert_ne!(sample(1, 0), sample(2, 0));
    let greedy_tokens = engine
        .generate(&prompt, &greedy(16), &mut |_, _| true)
        .unwrap()[0]
        .tokens
        .clone();
    assert_eq!(sample(3, 1), greedy_tokens);
}

/// Sum of log-probabilities of `continuation` after `prompt`, from one forward pass.
fn log_prob(engine: &Engine, prompt: &[u32], continuation: &[u32]) -> f64 {
    let mut full = prompt.to_vec();
    full.extend(continuation);
    let logits = engine.logits(&full).unwrap();
    continuation
        .iter()
        .enumerate()
        .map(|(i, t)| {
            lathe_model::sampling::log_softmax(&logits[prompt.len() - 1 + i])[*t as usize]
        })
        .sum()
}

#[test]
fn beam_search_finds_a_likelier_sequence_than_greedy() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = engine.tokenizer.encode("the", true).unwrap();
    let greedy_out = generate_one(&engine, &prompt, &greedy(6));
    let beam = GenerationConfig {
        num_beams: 4,
        ..greedy(6)
    };
    let beam_out = generate_one(&engine, &prompt, &beam);
    assert_eq!(beam_out[0].tokens.len(), 6);
    let (g, b) = (
        log_prob(&engine, &prompt, &greedy_out[0].tokens),
        log_prob(&engine, &prompt, &beam_out[0].tokens),
    );
    assert!(b >= g - 1e-4, "beam log-prob {b} < greedy {g}");
}

#[test]
fn stop_strings_cut_the_text() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let full = engine
        .generate_text(TEXT, true, &greedy(20), &mut |_| true)
        .unwrap()
        .text;
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() > 6, "{full:?}");
    let stop: String = chars[4..6].iter().collect();
    let cut = full.find(&stop).unwrap();
    let config = GenerationConfig {
        stop_strings: vec![stop.clone()],
        ..greedy(20)
    };
    let mut streamed = String::new();
    let text = engine
        .generate_text(TEXT, true, &config, &mut |piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap()
        .text;
    assert_eq!(text, full[..cut]);
    assert_eq!(streamed, text);
}

#[test]
fn generation_stops_at_the_context_window() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = vec![5u32; CONTEXT - 3];
    let out = engine
        .generate(&[prompt], &greedy(50), &mut |_, _| true)
        .unwrap();
    assert_eq!(out[0].tokens.len(), 3);
}

#[test]
fn attention_biases_load_from_both_sources() {
    use common::Arch;
    for arch in [Arch::LlamaBias, Arch::Qwen2] {
        let dir = tempfile::tempdir().unwrap();
        common::write_hf_folder_arch(dir.path(), false, 11, StDtype::F32, 1, arch);
        let gguf_path = dir.path().join("tiny.gguf");
        common::write_gguf_arch(&gguf_path, false, 11, arch);
        let (hf, gg) = (
            load_folder(dir.path()).unwrap(),
            load_gguf(&gguf_path).unwrap(),
        );
        assert!(hf.config().qkv_bias && gg.config().qkv_bias, "{arch:?}");
        assert_eq!(hf.config().o_bias, arch == Arch::LlamaBias, "{arch:?}");
        assert_eq!(gg.config().o_bias, arch == Arch::LlamaBias, "{arch:?}");
        let ids = hf.tokenizer.encode(TEXT, true).unwrap();
        let (x, y) = (hf.logits(&ids).unwrap(), gg.logits(&ids).unwrap());
        assert_eq!(max_diff(&x, &y), 0.0, "{arch:?}");
    }
}

#[test]
fn mistral_sliding_window_limits_attention() {
    let (dir, full) = folder(false, StDtype::F32, 1);
    common::edit_config(dir.path(), |config| {
        config["architectures"] = serde_json::json!(["MistralForCausalLM"]);
        config["sliding_window"] = serde_json::json!(6);
    });
    let windowed = load_folder(dir.path()).unwrap();
    assert_eq!(windowed.config().sliding_window, Some(6));
    let ids = full.tokenizer.encode(TEXT, true).unwrap();
    // Up to the window, nothing changes; beyond it the logits differ.
    let (a, b) = (full.logits(&ids).unwrap(), windowed.logits(&ids).unwrap());
    assert_eq!(max_diff(&a[..6], &b[..6]), 0.0);
    assert!(max_diff(&a[6..], &b[6..]) > 1e-3);
    // Cached decoding honours the window as the full pass does.
    let out = generate_one(&windowed, &ids, &greedy(8));
    let mut all = ids.clone();
    all.extend(&out[0].tokens);
    let logits = windowed.logits(&all).unwrap();
    for (i, token) in out[0].tokens.iter().enumerate() {
        assert_eq!(
            lathe_model::sampling::argmax(&logits[ids.len() - 1 + i]),
            *token
        );
    }
}

#[test]
fn llama3_rope_scaling_from_config_and_gguf_rope_freqs_agree() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), false, 5, StDtype::F32, 1);
    common::edit_config(dir.path(), |config| {
        config["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
    });
    let hf = load_folder(dir.path()).unwrap();
    // llama.cpp writes Llama 3.1 scaling as one divisor per frequency.
    let unscaled = lathe_model::LlamaConfig {
        rope_scaling: None,
        ..hf.config().clone()
    };
    let factors: Vec<f32> = unscaled
        .rope_inv_freq()
        .iter()
        .zip(hf.config().rope_inv_freq())
        .map(|(base, scaled)| (base / scaled) as f32)
        .collect();
    assert!(factors.contains(&1.0) && factors.contains(&8.0));
    let mut writer = common::gguf_writer(false, 5, common::Arch::Llama);
    writer.tensor(lathe_model::gguf::WriteTensor {
        name: "rope_freqs.weight".into(),
        shape: vec![factors.len()],
        ty: lathe_model::gguf::GgmlType::F32,
        values: factors,
    });
    let path = dir.path().join("tiny.gguf");
    writer.write(&path).unwrap();
    let gg = load_gguf(&path).unwrap();
    let ids = hf.tokenizer.encode(TEXT, true).unwrap();
    let (a, b) = (hf.logits(&ids).unwrap(), gg.logits(&ids).unwrap());
    assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    // Without the factors the same weights give other logits.
    let unscaled_path = dir.path().join("unscaled.gguf");
    common::write_gguf(&unscaled_path, false, 5);
    let unscaled = load_gguf(&unscaled_path).unwrap();
    assert!(max_diff(&a, &unscaled.logits(&ids).unwrap()) > 1e-3);
}

#[test]
fn max_time_ends_generation() {
    let (_a, engine) = folder(false, StDtype::F32, 1);
    let prompt = engine.tokenizer.encode(TEXT, true).unwrap();
    let unlimited = generate_one(&engine, &prompt, &greedy(20));
    assert_eq!(unlimited[0].tokens.len(), 20);
    for num_beams in [1, 2] {
        // A limit already reached: the step under way finishes, no further one starts.
        let config = GenerationConfig {
            max_time: Some(std::time::Duration::ZERO),
            num_beams,
            ..greedy(20)
        };
        let out = generate_one(&engine, &prompt, &config);
        assert_eq!(out[0].tokens.len(), 1, "num_beams {num_beams}");
    }
}
