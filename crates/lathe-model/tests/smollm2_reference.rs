//! The demo GGUF against transformers on the same file (reference numbers made by
//! `bench/reference/make_reference.py`): tokenization, greedy tokens, teacher-forced
//! logits and the chat template.

use lathe_model::{ChatMessage, Engine, GenerationConfig};
use serde_json::Value;

fn engine() -> Engine {
    let path = lathe_model::loader::demo_model_path();
    assert!(
        path.is_file(),
        "the demo model is missing at {}: run scripts/fetch-demo-model.sh",
        path.display()
    );
    lathe_model::loader::load_gguf(&path).expect("the demo model loads")
}

fn reference() -> Value {
    let text = include_str!("reference/smollm2_q4_1.json");
    serde_json::from_str(text).expect("reference JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn matches_transformers_on_the_demo_gguf() {
    let engine = engine();
    let reference = reference();
    let stride = reference["vocab_stride"].as_u64().unwrap() as usize;
    let mut worst = 0f64;
    for case in reference["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = engine.tokenizer.encode(prompt, true).unwrap();
        assert_eq!(
            prompt_ids,
            ids(&case["prompt_ids"]),
            "token ids of {prompt:?}"
        );

        let greedy = GenerationConfig {
            max_new_tokens: 16,
            eos_token_ids: vec![u32::MAX],
            ..Default::default()
        };
        let out = engine
            .generate(std::slice::from_ref(&prompt_ids), &greedy, &mut |_, _| true)
            .unwrap();
        assert_eq!(
            out[0].tokens,
            ids(&case["greedy_16"]),
            "greedy tokens of {prompt:?}"
        );

        let mut full = prompt_ids.clone();
        full.extend(ids(&case["continuation_32"]));
        let logits = engine.logits(&full).unwrap();
        let expected = case["logits"].as_array().unwrap();
        assert_eq!(logits.len(), expected.len());
        for (pos, (row, want)) in logits.iter().zip(expected).enumerate() {
            let subset = floats(&want["subset"]);
            for (j, w) in subset.iter().enumerate() {
                worst = worst.max((row[j * stride] as f64 - w).abs());
            }
            for (id, w) in ids(&want["top_ids"])
                .iter()
                .zip(floats(&want["top_values"]))
            {
                worst = worst.max((row[*id as usize] as f64 - w).abs());
            }
            let sum: f64 = row.iter().map(|v| *v as f64).sum();
            let sum_sq: f64 = row.iter().map(|v| (*v as f64).powi(2)).sum();
            let n = row.len() as f64;
            let (ref_sum, ref_sq) = (
                want["sum"].as_f64().unwrap(),
                want["sum_sq"].as_f64().unwrap(),
            );
            assert!(
                ((sum - ref_sum) / n).abs() < 1e-3 && ((sum_sq - ref_sq) / ref_sq).abs() < 1e-4,
                "{prompt:?} position {pos}: sum {sum} vs {ref_sum}, sum of squares {sum_sq} vs {ref_sq}"
            );
        }
        assert!(
            worst <= 1e-3,
            "{prompt:?}: max |logit difference| {worst} > 1e-3"
        );
    }
    eprintln!("max |logit difference| against transformers: {worst:.2e}");
}

#[test]
fn chat_template_renders_as_transformers() {
    let engine = engine();
    let reference = reference();
    let chat = &reference["chat_template"];
    let messages: Vec<ChatMessage> = serde_json::from_value(chat["messages"].clone()).unwrap();
    let no_system: Vec<ChatMessage> =
        serde_json::from_value(chat["messages_no_system"].clone()).unwrap();
    assert_eq!(
        engine.apply_chat_template(&messages, false).unwrap(),
        chat["rendered"].as_str().unwrap()
    );
    assert_eq!(
        engine.apply_chat_template(&messages, true).unwrap(),
        chat["rendered_generation_prompt"].as_str().unwrap()
    );
    assert_eq!(
        engine.apply_chat_template(&no_system, true).unwrap(),
        chat["rendered_no_system"].as_str().unwrap()
    );
}

#[test]
fn gguf_tokenizer_splits_digits_and_keeps_special_tokens() {
    let engine = engine();
    let t = &engine.tokenizer;
    // SmolLM2's pre-tokenizer (`smollm`) isolates every digit and adds no prefix space.
    let ids = t.encode("in 2024", false).unwrap();
    let pieces: Vec<String> = ids
        .iter()
        .map(|i| t.decode(&[*i], false).unwrap())
        .collect();
    assert_eq!(pieces, ["in", " ", "2", "0", "2", "4"]);
    let im_start = t.token_to_id("<|im_start|>").expect("ChatML token");
    let ids = t.encode("<|im_start|>user", false).unwrap();
    assert_eq!(ids[0], im_start);
    assert_eq!(t.decode(&ids, false).unwrap(), "<|im_start|>user");
}

/// The hyperparameters read without the weights, and the parameter count transformers
/// reports for SmolLM2-135M (`model.num_parameters()`, tied head counted once).
#[test]
fn config_alone_counts_the_parameters() {
    let config = lathe_model::loader::load_config("demo").unwrap();
    assert_eq!(config.num_hidden_layers, 30);
    assert_eq!(config.parameter_count(), 134_515_008);
}
