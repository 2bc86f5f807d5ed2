//! `lathe train` end to end on the demo model: a killed run resumes exactly, and bad
//! settings or data fail with messages that name what is wrong.

#[path = "../../lathe-model/tests/hub_standin/mod.rs"]
mod hub_standin;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lathe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lathe"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `lathe` to completion; it must succeed. Returns its stderr.
fn succeed(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// A small LoRA run: 13 training rows (14 minus one held out) of the Alpaca demo, 6 steps, a checkpoint every
/// 2 steps, dropout on (so the random streams must resume too).
fn write_config(dir: &Path, name: &str) -> std::path::PathBuf {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/alpaca_en_demo.json");
    let rows: Vec<serde_json::Value> =
        serde_json::from_str::<Vec<serde_json::Value>>(&std::fs::read_to_string(data).unwrap())
            .unwrap()
            .into_iter()
            .filter(|r| r["output"].as_str().unwrap().len() < 200 && r["input"] == "")
            .take(14)
            .collect();
    let data = dir.join("data.json");
    std::fs::write(&data, serde_json::to_string(&rows).unwrap()).unwrap();
    let run = dir.join(name);
    let cfg = format!(
        "llm_backbone: demo\noutput_directory: {}\ndataset:\n  train_dataframe: {}\n  validation_size: 0.1\n  system_column: None\ntokenizer:\n  max_length: 64\narchitecture:\n  backbone_dtype: float32\n  gradient_checkpointing: false\ntraining:\n  batch_size: 2\n  epochs: 1\n  learning_rate: 0.001\n  lora_dropout: 0.1\n  evaluation_epochs: 0.33\nprediction:\n  metric: Perplexity\nenvironment:\n  seed: 7\n",
        run.display(),
        data.display()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

/// What `lathe generate --run` answers to `prompt` in up to 8 tokens; it must succeed.
fn answer(run: &Path, prompt: &str) -> String {
    let out = lathe()
        .args(["generate", "--run"])
        .arg(run)
        .args(["--prompt", prompt, "--max-new-tokens", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn train_losses(run: &Path) -> Vec<(u64, String)> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "train")
        .map(|e| (e["step"].as_u64().unwrap(), e["loss"].to_string()))
        .collect()
}

#[test]
fn a_killed_run_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_config(dir.path(), "full");
    succeed(lathe().args(["train", "-Y"]).arg(&full));
    let reference = train_losses(&dir.path().join("full"));
    assert_eq!(reference.len(), 6, "{reference:?}");

    let killed = write_config(dir.path(), "killed");
    let run = dir.path().join("killed");
    let mut child = lathe()
        .args(["train", "-Y"])
        .arg(&killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while train_losses(&run).len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let status = std::fs::read_to_string(run.join("status.json")).unwrap();
    assert!(status.contains("running"), "{status}");

    let stderr = succeed(lathe().args(["train", "--resume"]).arg(&run));
    assert!(stderr.contains("resumed from"), "{stderr}");
    // Events after the kill repeat steps the checkpoint did not hold; the last value of
    // each step is what the resumed run computed.
    let mut resumed = std::collections::BTreeMap::new();
    for (step, loss) in train_losses(&run) {
        resumed.insert(step, loss);
    }
    let reference: std::collections::BTreeMap<u64, String> = reference.into_iter().collect();
    assert_eq!(resumed, reference);
    assert!(std::fs::read_to_string(run.join("status.json"))
        .unwrap()
        .contains("finished"));
    assert!(run.join("checkpoint/adapter_model.safetensors").is_file());
}

#[test]
fn bad_settings_and_data_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "bad");
    let fail = |extra: &[&str]| {
        let out = lathe()
            .args(["train", "-Y"])
            .arg(&cfg)
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let _ = std::fs::remove_dir_all(dir.path().join("bad"));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = fail(&["--training.lora_r", "0"]);
    assert!(
        e.contains("training.lora_r") && e.contains("from 1 to 256"),
        "{e}"
    );
    let e = fail(&["--dataset.answer_column", "reply"]);
    assert!(
        e.contains("no column `reply`") && e.contains("input, instruction, output"),
        "{e}"
    );
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "instruction,output\n").unwrap();
    let e = fail(&["--dataset.train_dataframe", empty.to_str().unwrap()]);
    assert!(e.contains("empty.csv") && e.contains("no data rows"), "{e}");
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"instruction,output\ncaf\xe9,ok\n").unwrap();
    let e = fail(&["--dataset.train_dataframe", latin1.to_str().unwrap()]);
    assert!(e.contains("latin1.csv") && e.contains("UTF-8"), "{e}");
    let e = fail(&["--training.epoch", "2"]);
    assert!(e.contains("unknown setting `training.epoch`"), "{e}");
}

#[test]
fn bleu_validation_generates_and_writes_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "bleu");
    let stderr = succeed(
        lathe()
            .args(["train", "-Y"])
            .arg(&cfg)
            .args([
                "--prediction.metric",
                "BLEU",
                "--prediction.max_length_inference",
                "16",
            ])
            .args(["--training.evaluation_epochs", "1"]),
    );
    assert!(stderr.contains("BLEU"), "{stderr}");
    let run = dir.path().join("bleu");
    let csv = std::fs::read_to_string(run.join("validation_predictions.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("row,prompt,target,prediction,BLEU"));
    assert!(lines.next().is_some(), "one validation row");
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let validation: serde_json::Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "validation")
        .unwrap();
    let bleu = validation["bleu"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&bleu), "{validation}");
}

fn checkpoint_step(run: &Path) -> u64 {
    let state = std::fs::read_to_string(run.join("checkpoint/trainer_state.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&state).unwrap()["step"]
        .as_u64()
        .unwrap()
}

/// A checkpoint that cannot be written (here: a file in the way of its temporary
/// folder, as a full disk would fail it) ends the run `failed` with the path named,
/// and the previous checkpoint survives intact.
#[test]
fn a_failed_checkpoint_write_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "blocked");
    let run = dir.path().join("blocked");
    succeed(lathe().args(["train", "-Y"]).arg(&cfg));
    let before = checkpoint_step(&run);
    std::fs::write(run.join("checkpoint.tmp"), "in the way").unwrap();
    let out = lathe()
        .args(["train", "--resume"])
        .arg(&run)
        .args(["--training.epochs", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("checkpoint.tmp"), "{stderr}");
    let status = std::fs::read_to_string(run.join("status.json")).unwrap();
    assert!(status.contains("failed"), "{status}");
    assert_eq!(checkpoint_step(&run), before);
}

/// A learning rate that overflows the weights ends the run `failed` with the step.
#[test]
fn a_diverging_run_fails_with_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "diverge");
    let out = lathe()
        .args(["train", "-Y"])
        .arg(&cfg)
        .args([
            "--training.optimizer",
            "SGD",
            "--training.learning_rate",
            "1e38",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("training diverged at step"), "{stderr}");
    let status = std::fs::read_to_string(dir.path().join("diverge/status.json")).unwrap();
    assert!(status.contains("diverged"), "{status}");
}

/// Tensor names and shapes of a safetensors file (its JSON header).
fn safetensors_shapes(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v["shape"].clone()))
        .collect()
}

#[test]
fn a_dora_run_saves_peft_magnitudes_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "dora");
    succeed(
        lathe()
            .args(["train", "-Y"])
            .arg(&cfg)
            .args(["--training.use_dora", "true"]),
    );
    let run = dir.path().join("dora");
    let checkpoint = run.join("checkpoint");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["use_dora"], true);
    let shapes = safetensors_shapes(&checkpoint.join("adapter_model.safetensors"));
    let magnitudes: Vec<_> = shapes
        .iter()
        .filter(|(k, _)| k.ends_with(".lora_magnitude_vector"))
        .collect();
    // One per adapted projection (7 in each of 30 layers), PEFT's names and shapes.
    assert_eq!(magnitudes.len(), 7 * 30);
    assert_eq!(
        shapes["base_model.model.model.layers.0.mlp.up_proj.lora_magnitude_vector"],
        serde_json::json!([1536])
    );
    assert!(train_losses(&run)
        .iter()
        .all(|(_, l)| l.parse::<f64>().unwrap().is_finite()));
    assert!(!answer(&run, "Name a colour.").trim().is_empty());
}

/// A run on 10 conversations of the real chat file, chained by `parent_id`; with
/// `augment`, parents skipped and replaced and tokens masked at random, without it
/// rendered with the backbone's chat template.
fn write_chat_config(dir: &Path, name: &str, augment: bool) -> std::path::PathBuf {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/chitchat_1000conv.zip");
    let run = dir.join(name);
    let probability = if augment { 0.5 } else { 0.0 };
    let cfg = format!(
        "llm_backbone: demo\noutput_directory: {}\ndataset:\n  train_dataframe: {}\n  prompt_column: [instruction]\n  answer_column: output\n  parent_id_column: parent_id\n  id_column: id\n  system_column: None\n  limit_chained_samples: true\n  validation_size: 0.2\n  data_sample: 0.01\n  use_chat_template: {}\ntokenizer:\n  max_length: 96\narchitecture:\n  backbone_dtype: int8\n  gradient_checkpointing: false\ntraining:\n  batch_size: 2\n  epochs: 1\n  learning_rate: 0.001\n  evaluation_epochs: 1\naugmentation:\n  skip_parent_probability: {probability}\n  random_parent_probability: {probability}\n  token_mask_probability: {probability}\nprediction:\n  metric: Perplexity\nenvironment:\n  seed: 11\n",
        run.display(),
        data.display(),
        !augment
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn conversations_train_with_reproducible_augmentations() {
    let dir = tempfile::tempdir().unwrap();
    let mut losses = Vec::new();
    for (name, augment) in [("a", true), ("b", true), ("plain", false)] {
        let cfg = write_chat_config(dir.path(), name, augment);
        let stderr = succeed(lathe().args(["train", "-Y"]).arg(&cfg));
        assert!(
            stderr.contains("data: 10 training and 10 validation samples"),
            "{stderr}"
        );
        losses.push(train_losses(&dir.path().join(name)));
    }
    assert_eq!(losses[0].len(), 5);
    assert_eq!(
        losses[0], losses[1],
        "the same seed draws the same augmentations"
    );
    assert_ne!(losses[0], losses[2], "augmentation changes the samples");
    // The template-rendered run chats in its template.
    answer(&dir.path().join("plain"), "Hi, how are you?");
}

#[test]
fn prompt_and_answer_markers_train_as_new_tokens_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "tokens");
    let stderr = succeed(lathe().args(["train", "-Y"]).arg(&cfg).args([
        "--tokenizer.add_prompt_answer_tokens",
        "true",
        "--training.lora_unfreeze_layers",
        "embed",
    ]));
    assert!(stderr.contains("done"), "{stderr}");
    let run = dir.path().join("tokens");
    // The checkpoint holds the grown embeddings (49152 + 2 rows of 576).
    let shapes = safetensors_shapes(&run.join("checkpoint/adapter_model.safetensors"));
    let embed: Vec<_> = shapes
        .iter()
        .filter(|(k, _)| k.contains("embed_tokens"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(embed, [serde_json::json!([49154, 576])], "{shapes:?}");
    answer(&run, "Name a colour.");
}

/// What `lathe generate` answers in the chat format with `model_args`, 16 tokens.
fn chat_answer(model_args: &[&std::ffi::OsStr], prompt: &str) -> String {
    let out = lathe()
        .arg("generate")
        .args(model_args)
        .args(["--chat", "--prompt", prompt, "--max-new-tokens", "16"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The demo run exported as a merged folder, an adapter and an F16 GGUF answers as the
/// run does, through `lathe generate` on each.
#[test]
fn exports_answer_as_the_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "exported");
    let run = dir.path().join("exported");
    succeed(lathe().args(["train", "-Y"]).arg(&cfg));
    let export = |format: &str, extra: &[&str]| {
        let out = dir.path().join(format!("{format}{}", extra.join("")));
        let mut command = lathe();
        command
            .args(["export", "--format", format, "--run"])
            .arg(&run);
        succeed(command.arg("--out").arg(&out).args(extra));
        out
    };
    let hf = export("hf", &[]);
    let peft = export("peft", &[]);
    let gguf = export("gguf", &["--quant", "f16"]);
    let gguf_file = gguf_in(&gguf);
    for prompt in [
        "Give three tips for staying healthy.",
        "Name a primary color.",
    ] {
        let want = chat_answer(&["--run".as_ref(), run.as_os_str()], prompt);
        assert!(!want.trim().is_empty());
        let merged = chat_answer(&["--model".as_ref(), hf.as_os_str()], prompt);
        assert_eq!(merged, want, "merged folder");
        let adapter = [
            "--model".as_ref(),
            "demo".as_ref(),
            "--adapter".as_ref(),
            peft.as_os_str(),
        ];
        assert_eq!(
            chat_answer(&adapter, prompt),
            want,
            "adapter on the demo model"
        );
        let gguf = chat_answer(&["--model".as_ref(), gguf_file.as_os_str()], prompt);
        assert_eq!(gguf, want, "F16 GGUF");
    }
    quantized_gguf_agrees_with_the_run(&run, &export);
    let card = std::fs::read_to_string(hf.join("README.md")).unwrap();
    assert!(
        card.contains("base_model: HuggingFaceTB/SmolLM2-135M-Instruct"),
        "{card}"
    );
    assert!(card.contains("| LoRA r | 4 |"), "{card}");
}

/// The `.gguf` file of a GGUF export folder.
fn gguf_in(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .unwrap()
}

/// Quantized GGUF exports of `run` within their stated tolerance: given the run's own
/// greedy answers (up to 32 tokens), the Q8_0 file's top-1 choice agrees on at least
/// 90 % of the answer positions and the Q4_K_M file's on at least 85 % (the floors
/// `bench/verify_export.py` applies to llama.cpp on the same files).
fn quantized_gguf_agrees_with_the_run(
    run: &Path,
    export: &dyn Fn(&str, &[&str]) -> std::path::PathBuf,
) {
    let trained = lathe_train::TrainedModel::load(run).unwrap();
    let config = lathe_model::GenerationConfig {
        max_new_tokens: 32,
        ..Default::default()
    };
    let sequences: Vec<(usize, Vec<u32>)> = [
        "Give three tips for staying healthy.",
        "Name a primary color.",
        "Write a haiku about autumn.",
    ]
    .iter()
    .map(|prompt| {
        let text = trained.prompt(None, &[], prompt).unwrap();
        let mut ids = trained.engine.tokenizer.encode(&text, false).unwrap();
        let answer = trained
            .engine
            .generate(&[ids.clone()], &config, &mut |_, _| true)
            .unwrap()
            .remove(0)
            .tokens;
        let prompt_len = ids.len();
        ids.extend(answer);
        (prompt_len, ids)
    })
    .collect();
    for (quant, floor) in [("q8_0", 0.90), ("q4_k_m", 0.85)] {
        let file = gguf_in(&export("gguf", &["--quant", quant]));
        let engine = lathe_model::load(file.to_str().unwrap()).unwrap();
        let (mut same, mut total) = (0, 0);
        for (prompt_len, ids) in &sequences {
            let rows = engine.logits(ids).unwrap();
            for (position, want) in ids.iter().enumerate().skip(*prompt_len) {
                let row = &rows[position - 1];
                let top =
                    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best });
                same += usize::from(top == *want as usize);
                total += 1;
            }
        }
        let agreement = same as f64 / total as f64;
        eprintln!("{quant}: top-1 agreement {agreement:.4} over {total} answer tokens");
        assert!(
            agreement >= floor,
            "{quant}: agreement {agreement} < {floor}"
        );
    }
}

/// An export that runs out of space (a file-size limit makes the writes fail as a full
/// disk does) fails with the file named and leaves no folder and no partial files.
#[test]
fn an_export_that_runs_out_of_space_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "full-disk");
    let run = dir.path().join("full-disk");
    succeed(lathe().args(["train", "-Y"]).arg(&cfg));
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    let out = exports.join("hf");
    let mut command = lathe();
    command
        .args(["export", "--format", "hf", "--run"])
        .arg(&run);
    command.arg("--out").arg(&out);
    unsafe {
        command.pre_exec(|| {
            // 20 MB per file; the merged weights are 540 MB. SIGXFSZ ignored, so the
            // write returns an error (EFBIG) instead of killing the process.
            let limit = libc::rlimit {
                rlim_cur: 20 << 20,
                rlim_max: 20 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let result = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(&exports).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
