//! Broken or unsupported inputs give errors that name the file or value, never a panic.

mod common;

use std::path::Path;

use common::StDtype;
use lathe_model::gguf::GgufFile;
use lathe_model::loader::{load_folder, load_gguf};
use lathe_model::{load, GenerationConfig, ModelError};

fn message(r: Result<lathe_model::Engine, ModelError>) -> String {
    match r {
        Ok(_) => panic!("loading should fail"),
        Err(e) => e.to_string(),
    }
}

fn truncate(path: &Path, keep: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(keep).unwrap();
}

#[test]
fn missing_files_are_named() {
    let m = message(load("/no/such/model.gguf"));
    assert!(m.contains("/no/such/model.gguf"), "{m}");
    let dir = tempfile::tempdir().unwrap();
    let m = message(load_folder(dir.path()));
    assert!(m.contains("config.json"), "{m}");
    common::write_hf_folder(dir.path(), false, 1, StDtype::F32, 1);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let m = message(load_folder(dir.path()));
    assert!(m.contains("model.safetensors"), "{m}");
}

#[test]
fn unknown_architecture_is_named_with_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), false, 1, StDtype::F32, 1);
    common::edit_config(dir.path(), |config| {
        config["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    });
    let m = message(load_folder(dir.path()));
    assert!(
        m.contains("GPT2LMHeadModel")
            && m.contains("LlamaForCausalLM")
            && m.contains("config.json"),
        "{m}"
    );
}

#[test]
fn truncated_safetensors_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), false, 1, StDtype::F32, 1);
    let file = dir.path().join("model.safetensors");
    let len = std::fs::metadata(&file).unwrap().len();
    truncate(&file, len - 100);
    let m = message(load_folder(dir.path()));
    assert!(m.contains("model.safetensors"), "{m}");
    truncate(&file, 3);
    let m = message(load_folder(dir.path()));
    assert!(m.contains("model.safetensors"), "{m}");
}

#[test]
fn wrong_tensor_shape_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), false, 1, StDtype::F32, 1);
    common::edit_config(dir.path(), |config| {
        config["intermediate_size"] = serde_json::json!(96);
    });
    let m = message(load_folder(dir.path()));
    assert!(
        m.contains("mlp.gate_proj.weight") && m.contains("96"),
        "{m}"
    );
}

#[test]
fn truncated_or_corrupt_gguf_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    common::write_gguf(&path, false, 1);
    let len = std::fs::metadata(&path).unwrap().len();
    truncate(&path, len - 64);
    let m = message(load_gguf(&path));
    assert!(m.contains("tiny.gguf") && m.contains("truncated"), "{m}");
    truncate(&path, 40);
    let m = message(load_gguf(&path));
    assert!(m.contains("tiny.gguf") && m.contains("truncated"), "{m}");
    std::fs::write(&path, b"not a gguf file at all").unwrap();
    let m = message(load_gguf(&path));
    assert!(m.contains("not a GGUF file"), "{m}");
}

#[test]
fn unknown_gguf_tensor_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    common::write_gguf(&path, false, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    // The type id follows the name, the rank (u32) and two u64 dimensions.
    let name = b"output_norm.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let rank = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * rank;
    bytes[ty..ty + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = GgufFile::open(&path).err().expect("open fails").to_string();
    assert!(
        err.contains("output_norm.weight") && err.contains("99") && err.contains("Q4_K"),
        "{err}"
    );
}

#[test]
fn prompt_longer_than_the_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_hf_folder(dir.path(), false, 1, StDtype::F32, 1);
    let engine = load_folder(dir.path()).unwrap();
    let long = vec![3u32; common::CONTEXT + 1];
    let err = engine
        .generate(
            std::slice::from_ref(&long),
            &GenerationConfig::default(),
            &mut |_, _| true,
        )
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ContextOverflow { tokens, context } if tokens == common::CONTEXT + 1 && context == common::CONTEXT)
    );
    assert!(engine.logits(&long).is_err());
    let err = engine
        .generate(
            &[vec![3]],
            &GenerationConfig {
                num_beams: 9,
                ..Default::default()
            },
            &mut |_, _| true,
        )
        .unwrap_err();
    assert!(err.to_string().contains("num_beams"), "{err}");
}
