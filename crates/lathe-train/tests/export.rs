//! Exports of a real (tiny) training run reproduce the run: the merged folder, the
//! PEFT adapter on its base and the GGUF file compute what the run computes, and the
//! exported chat template renders the trained prompt format.

#[path = "../../lathe-model/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use lathe_config::Config;
use lathe_model::export::GgufQuant;
use lathe_model::{ChatMessage, Engine, GenerationConfig};
use lathe_train::export::{export_run, ExportFormat, ExportOptions};
use lathe_train::{load_with_adapter, TrainedModel};

/// Trains the tiny random model for a few LoRA (or full) steps on a handful of rows;
/// returns the model folder and the run folder.
fn trained_run(dir: &Path, lora: bool, dora: bool) -> (PathBuf, PathBuf) {
    let model = dir.join("tiny-model");
    common::write_hf_folder(&model, true, 5, common::StDtype::F32, 1);
    let rows: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            serde_json::json!({"instruction": format!("say {i} then the end"), "input": "",
                               "output": format!("the {i} in the end")})
        })
        .collect();
    let data = dir.join("data.json");
    std::fs::write(&data, serde_json::to_string(&rows).unwrap()).unwrap();
    let run = dir.join(if lora { "lora-run" } else { "full-run" });
    let yaml = format!(
        "experiment_name: tiny\nllm_backbone: {}\noutput_directory: {}\ndataset:\n  train_dataframe: {}\n  validation_size: 0.25\n  system_column: None\ntokenizer:\n  max_length: 48\narchitecture:\n  backbone_dtype: float32\n  gradient_checkpointing: false\ntraining:\n  lora: {lora}\n  use_dora: {dora}\n  batch_size: 2\n  epochs: 1\n  learning_rate: 0.01\n  evaluation_epochs: 1.0\nprediction:\n  metric: Perplexity\nenvironment:\n  seed: 3\n",
        model.display(),
        run.display(),
        data.display()
    );
    let config = Config::from_yaml_str(&yaml, "test").unwrap().config;
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("cfg.yaml"), config.to_yaml()).unwrap();
    lathe_train::train(&config, &run, false, &AtomicBool::new(false)).unwrap();
    (model, run)
}

fn export(run: &Path, out: &Path, format: ExportFormat, quant: Option<GgufQuant>) -> Vec<String> {
    let options = ExportOptions {
        quant,
        max_shard_bytes: 100_000,
        ..ExportOptions::new(format)
    };
    export_run(run, out, &options).unwrap()
}

/// The prompt of a two-turn conversation in the run's format, as token ids.
fn prompt_ids(trained: &TrainedModel) -> Vec<u32> {
    let history = vec![(
        "say 1 then the end".to_string(),
        "the 1 in the end".to_string(),
    )];
    let text = trained
        .prompt(None, &history, "say 2 then the end")
        .unwrap();
    trained.engine.tokenizer.encode(&text, false).unwrap()
}

fn logits(engine: &Engine, ids: &[u32]) -> Vec<f32> {
    engine.logits(ids).unwrap().concat()
}

fn greedy(engine: &Engine, ids: &[u32]) -> Vec<u32> {
    let config = GenerationConfig {
        max_new_tokens: 12,
        eos_token_ids: vec![u32::MAX],
        ..Default::default()
    };
    let out = engine.generate(&[ids.to_vec()], &config, &mut |_, _| true);
    out.unwrap().remove(0).tokens
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn every_export_computes_what_the_run_computes() {
    for dora in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (model, run) = trained_run(tmp.path(), true, dora);
        let trained = TrainedModel::load(&run).unwrap();
        let ids = prompt_ids(&trained);
        let want = logits(&trained.engine, &ids);
        let want_tokens = greedy(&trained.engine, &ids);

        // Merged folder, sharded by the small limit.
        let hf = tmp.path().join("hf");
        let files = export(&run, &hf, ExportFormat::Hf, None);
        assert!(
            files.contains(&"model.safetensors.index.json".to_string()),
            "{files:?}"
        );
        assert!(files.contains(&"README.md".to_string()));
        let merged = lathe_model::load(hf.to_str().unwrap()).unwrap();
        assert!(
            max_diff(&want, &logits(&merged, &ids)) < 1e-4,
            "dora={dora}"
        );
        assert_eq!(greedy(&merged, &ids), want_tokens);
        // The exported template renders the conversation exactly as training did.
        let template = merged.chat_template.as_ref().expect("a chat template");
        let messages = [
            ChatMessage::new("user", "say 1 then the end"),
            ChatMessage::new("assistant", "the 1 in the end"),
            ChatMessage::new("user", "say 2 then the end"),
        ];
        let history = vec![(
            "say 1 then the end".to_string(),
            "the 1 in the end".to_string(),
        )];
        assert_eq!(
            template.render(&messages, true).unwrap(),
            trained
                .prompt(None, &history, "say 2 then the end")
                .unwrap()
        );

        // The adapter on its base.
        let peft = tmp.path().join("peft");
        let files = export(&run, &peft, ExportFormat::Peft, None);
        assert!(
            files.contains(&"adapter_model.safetensors".to_string()),
            "{files:?}"
        );
        let adapted = load_with_adapter(model.to_str().unwrap(), &peft).unwrap();
        assert!(
            max_diff(&want, &logits(&adapted, &ids)) < 1e-5,
            "dora={dora}"
        );
        let template = adapted
            .chat_template
            .as_ref()
            .expect("the adapter's chat template");
        assert_eq!(
            template.render(&messages, true).unwrap(),
            trained
                .prompt(None, &history, "say 2 then the end")
                .unwrap()
        );

        // GGUF: F32 exact, F16 the same greedy tokens.
        for quant in [GgufQuant::F32, GgufQuant::F16] {
            let out = tmp.path().join(format!("gguf-{quant:?}"));
            let files = export(&run, &out, ExportFormat::Gguf, Some(quant));
            let file = files
                .iter()
                .find(|f| f.ends_with(".gguf"))
                .expect("a GGUF file");
            let loaded = lathe_model::load(out.join(file).to_str().unwrap()).unwrap();
            match quant {
                GgufQuant::F32 => assert!(max_diff(&want, &logits(&loaded, &ids)) < 1e-4),
                _ => assert_eq!(greedy(&loaded, &ids), want_tokens),
            }
        }
    }
}

#[test]
fn exports_that_cannot_be_made_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = trained_run(tmp.path(), false, false);
    let fails = |run: &Path, out: &Path, options: &ExportOptions| {
        export_run(run, out, options).unwrap_err().to_string()
    };
    let hf = ExportOptions::new(ExportFormat::Hf);

    // Full fine-tuning has no adapter.
    let out = tmp.path().join("peft");
    let message = fails(&run, &out, &ExportOptions::new(ExportFormat::Peft));
    assert!(message.contains("without LoRA"), "{message}");
    assert!(!out.exists(), "nothing is left behind");

    // A non-empty folder is kept unless forced.
    let out = tmp.path().join("taken");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let message = fails(&run, &out, &hf);
    assert!(
        message.contains("not empty") && message.contains("--force"),
        "{message}"
    );
    assert!(out.join("keep.txt").is_file());
    let forced = ExportOptions {
        force: true,
        ..hf.clone()
    };
    export_run(&run, &out, &forced).unwrap();
    assert!(!out.join("keep.txt").exists() && out.join("config.json").is_file());

    // A run still training (its worker alive: here, this process).
    let status = run.join("status.json");
    let saved = std::fs::read_to_string(&status).unwrap();
    let running = serde_json::json!({"status": "running", "pid": std::process::id()});
    std::fs::write(&status, running.to_string()).unwrap();
    let message = fails(&run, &tmp.path().join("busy"), &hf);
    assert!(message.contains("is running"), "{message}");
    std::fs::write(&status, saved).unwrap();

    // A run without a checkpoint.
    std::fs::remove_dir_all(run.join("checkpoint")).unwrap();
    let message = fails(&run, &tmp.path().join("none"), &hf);
    assert!(message.contains("no checkpoint"), "{message}");

    // Not a run at all.
    let message = fails(tmp.path(), &tmp.path().join("none"), &hf);
    assert!(message.contains("not a run folder"), "{message}");
}
