//! The `lathe` binary end to end on the demo model and on bad input.

use std::io::Write;
use std::process::{Command, Stdio};

fn lathe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lathe"))
}

fn demo_present() {
    let path = lathe_model::loader::demo_model_path();
    assert!(
        path.is_file(),
        "the demo model is missing at {}: run scripts/fetch-demo-model.sh",
        path.display()
    );
}

#[test]
fn generate_prints_the_greedy_continuation_of_transformers() {
    demo_present();
    let reference: serde_json::Value = serde_json::from_str(include_str!(
        "../../lathe-model/tests/reference/smollm2_q4_1.json"
    ))
    .unwrap();
    let case = &reference["cases"][0];
    assert_eq!(case["prompt"], "The capital of France is");
    let out = lathe()
        .args([
            "generate",
            "--model",
            "demo",
            "--prompt",
            "The capital of France is",
        ])
        .args(["--max-new-tokens", "20"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let engine_ids: Vec<u32> = case["continuation_32"].as_array().unwrap()[..20]
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let engine = lathe_model::loader::load_gguf(&lathe_model::loader::demo_model_path()).unwrap();
    let expected = engine.tokenizer.decode(&engine_ids, true).unwrap();
    assert!(stdout.starts_with(" Paris."), "{stdout:?}");
    assert_eq!(
        stdout.trim_end_matches('\n'),
        expected.trim_end_matches('\n')
    );
}

#[test]
fn chat_reads_prompts_from_a_pipe() {
    demo_present();
    let mut child = lathe()
        .args(["chat", "--model", "demo", "--max-new-tokens", "24"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\n/clear\nSay hello.\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Paris"), "{stdout:?}");
    assert!(
        stdout.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "{stdout:?}"
    );
}

#[test]
fn bad_input_is_an_error_message_not_a_panic() {
    let cases: [&[&str]; 3] = [
        &[
            "generate",
            "--model",
            "/no/such/model.gguf",
            "--prompt",
            "hi",
        ],
        &[
            "generate", "--model", "demo", "--prompt", "hi", "--top-p", "2",
        ],
        &[
            "generate",
            "--model",
            "demo",
            "--prompt",
            "hi",
            "--num-beams",
            "2",
            "--temperature",
            "0.7",
        ],
    ];
    for args in cases {
        let out = lathe().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error:") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
