//! Tokenizers built from GGUF metadata: llama SentencePiece (BPE with byte fallback,
//! merges from scores) on a small hand-made vocabulary.

use lathe_model::gguf::{GgufFile, GgufWriter, MetaValue};
use lathe_model::Tokenizer;

fn spm_gguf(dir: &std::path::Path, add_space_prefix: bool) -> std::path::PathBuf {
    let mut tokens: Vec<(String, f32, i32)> = vec![
        ("<unk>".into(), 0.0, 2),
        ("<s>".into(), 0.0, 3),
        ("</s>".into(), 0.0, 3),
    ];
    tokens.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0, 6)));
    // Normal pieces; a higher score merges first.
    for (piece, score) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("▁h", -3.0),
        ("▁he", -4.0),
        ("ll", -3.5),
        ("llo", -5.0),
        ("▁hello", -6.0),
        ("▁w", -3.0),
    ] {
        tokens.push((piece.into(), score, 1));
    }
    let mut g = GgufWriter::new();
    g.meta("general.architecture", MetaValue::String("llama".into()))
        .meta("tokenizer.ggml.model", MetaValue::String("llama".into()))
        .meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(
                tokens
                    .iter()
                    .map(|t| MetaValue::String(t.0.clone()))
                    .collect(),
            ),
        )
        .meta(
            "tokenizer.ggml.scores",
            MetaValue::Array(tokens.iter().map(|t| MetaValue::F32(t.1)).collect()),
        )
        .meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(tokens.iter().map(|t| MetaValue::I32(t.2)).collect()),
        )
        .meta("tokenizer.ggml.bos_token_id", MetaValue::U32(1))
        .meta("tokenizer.ggml.eos_token_id", MetaValue::U32(2))
        .meta("tokenizer.ggml.unknown_token_id", MetaValue::U32(0))
        .meta("tokenizer.ggml.add_bos_token", MetaValue::Bool(true))
        .meta(
            "tokenizer.ggml.add_space_prefix",
            MetaValue::Bool(add_space_prefix),
        );
    let path = dir.join("spm.gguf");
    g.write(&path).unwrap();
    path
}

/// The tokenizer of [`spm_gguf`], read back from the written file.
fn spm_tokenizer(add_space_prefix: bool) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&spm_gguf(dir.path(), add_space_prefix)).unwrap();
    Tokenizer::from_gguf(&file).unwrap()
}

#[test]
fn sentencepiece_vocabulary_from_gguf() {
    let t = spm_tokenizer(true);
    let id = |s: &str| t.token_to_id(s).unwrap();
    assert_eq!(t.bos_token.as_deref(), Some("<s>"));
    assert_eq!(t.eos_token.as_deref(), Some("</s>"));
    // "hello" → "▁hello" through the merge chain; BOS added as the metadata asks.
    assert_eq!(t.encode("hello", true).unwrap(), vec![1, id("▁hello")]);
    // Unknown characters fall back to bytes: "é" is 0xC3 0xA9.
    assert_eq!(
        t.encode("hello wé", false).unwrap(),
        vec![id("▁hello"), id("▁w"), id("<0xC3>"), id("<0xA9>")]
    );
    let ids = t.encode("hello wé", true).unwrap();
    assert_eq!(t.decode(&ids, true).unwrap(), "hello wé");
}

#[test]
fn sentencepiece_without_a_space_prefix() {
    let t = spm_tokenizer(false);
    let id = |s: &str| t.token_to_id(s).unwrap();
    let ids = t.encode("hello world", false).unwrap();
    assert_eq!(ids[..3], [id("h"), id("e"), id("llo")]);
    assert_eq!(ids[3], id("▁w"));
    assert_eq!(t.decode(&ids, true).unwrap(), "hello world");
}
