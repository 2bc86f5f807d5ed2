//! Exporting a run: the merged Hugging Face model, the PEFT adapter, or a GGUF file,
//! each with a model card. Everything is written into a temporary sibling folder and
//! moved into place at the end, so a failure (a full disk) leaves no half export.

use std::path::Path;

use lathe_config::Config;
use lathe_model::export::{write_gguf, write_hf, write_tokenizer_files, GgufExport, HfExport};
pub use lathe_model::export::{GgufQuant, SaveDtype};
use lathe_model::hub_upload::{upload_folder, HubTarget, Uploaded};
use lathe_model::loader::{load_text, published_name, source_gguf, stored_dtype};
use lathe_model::{ChatTemplate, Tokenizer};
use safetensors::SafeTensors;
use serde_json::{json, Map, Value};

use crate::checkpoint;
use crate::error::{Result, TrainError};
use crate::run::read_status;
use crate::text::TextFormat;
use crate::trainer::TrainedModel;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The merged model as a Hugging Face folder.
    Hf,
    /// The LoRA adapter as PEFT saves it.
    Peft,
    /// The merged model as one GGUF file.
    Gguf,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The format.
    pub format: ExportFormat,
    /// GGUF matrix storage (default F16).
    pub quant: Option<GgufQuant>,
    /// Safetensors type of the merged model (default: the backbone's).
    pub dtype: Option<SaveDtype>,
    /// Largest safetensors shard in bytes.
    pub max_shard_bytes: usize,
    /// Replace a non-empty output folder.
    pub force: bool,
}

impl ExportOptions {
    /// Defaults for `format`: F16 GGUF, the backbone's dtype, 5 GB shards.
    pub fn new(format: ExportFormat) -> Self {
        Self {
            format,
            quant: None,
            dtype: None,
            max_shard_bytes: 5_000_000_000,
            force: false,
        }
    }
}

/// Exports the last checkpoint of the run folder `run` into the folder `out`; returns
/// the files written (relative to `out`).
pub fn export_run(run: &Path, out: &Path, options: &ExportOptions) -> Result<Vec<String>> {
    check_exportable(run)?;
    if out.exists() {
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| TrainError::io(out, e))?
            .next()
            .is_some();
        if non_empty && !options.force {
            return Err(TrainError::Invalid(format!(
                "{}: the folder exists and is not empty (use --force to replace it)",
                out.display()
            )));
        }
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let written = write_export(run, &tmp, options).and_then(|files| {
        if out.exists() {
            std::fs::remove_dir_all(out).map_err(|e| TrainError::io(out, e))?;
        }
        std::fs::rename(&tmp, out).map_err(|e| TrainError::io(out, e))?;
        Ok(files)
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written
}

/// Exports the run as `options` say into a temporary folder inside the run and uploads
/// it to the Hub repository `target.repo` in one commit; the folder is removed after.
pub fn push_run(run: &Path, options: &ExportOptions, target: &HubTarget) -> Result<Uploaded> {
    let staging = run.join(format!(".push-{}", std::process::id()));
    let pushed = export_run(
        run,
        &staging,
        &ExportOptions {
            force: true,
            ..options.clone()
        },
    )
    .and_then(|_| {
        let message = format!(
            "Upload {} from Lathe",
            run_name(run, &Config::from_yaml_file(&run.join("cfg.yaml"))?.config)
        );
        Ok(upload_folder(&staging, target, &message)?)
    });
    let _ = std::fs::remove_dir_all(&staging);
    pushed
}

/// Refuses a run that is still training or has no checkpoint.
fn check_exportable(run: &Path) -> Result<()> {
    if !run.join("cfg.yaml").is_file() {
        return Err(TrainError::Invalid(format!(
            "{}: not a run folder (no cfg.yaml)",
            run.display()
        )));
    }
    if let Some(status) = read_status(run) {
        let state = status["status"].as_str().unwrap_or_default();
        let pid = status["pid"].as_u64().unwrap_or(0);
        let alive = pid > 0 && Path::new(&format!("/proc/{pid}")).exists();
        if (state == "running" && alive) || state == "queued" {
            return Err(TrainError::Invalid(format!(
                "{}: the run is {state}; stop it or wait until it ends before exporting",
                run.display()
            )));
        }
    }
    if checkpoint::latest(run).is_none() {
        return Err(TrainError::Invalid(format!(
            "{}: the run has no checkpoint to export (it saved none: training.save_checkpoint \
             is `disable`, or it stopped before its first checkpoint)",
            run.display()
        )));
    }
    Ok(())
}

fn write_export(run: &Path, dir: &Path, options: &ExportOptions) -> Result<Vec<String>> {
    let mut files = match options.format {
        ExportFormat::Peft => write_adapter(run, dir)?,
        ExportFormat::Hf => {
            let model = TrainedModel::load(run)?;
            let backbone = &model.config.general.llm_backbone;
            let dtype = match options.dtype {
                Some(d) => d,
                None => stored_dtype(backbone)?,
            };
            let export = HfExport {
                dtype,
                max_shard_bytes: options.max_shard_bytes,
                chat_template: model.chat_template()?,
                generation: generation_settings(&model.config),
            };
            write_hf(&model.engine, dir, &export)?;
            list_files(dir)?
        }
        ExportFormat::Gguf => {
            let model = TrainedModel::load(run)?;
            let quant = options.quant.unwrap_or(GgufQuant::F16);
            let name = run_name(run, &model.config);
            let file = format!("{name}-{}.gguf", quant.name());
            let export = GgufExport {
                quant,
                name: name.clone(),
                chat_template: model.chat_template()?,
            };
            let source = source_gguf(&model.config.general.llm_backbone)?;
            write_gguf(&model.engine, &dir.join(&file), &export, source.as_ref())?;
            vec![file]
        }
    };
    let card = model_card(run, options)?;
    let path = dir.join("README.md");
    std::fs::write(&path, card).map_err(|e| TrainError::io(&path, e))?;
    files.push("README.md".into());
    Ok(files)
}

fn list_files(dir: &Path) -> Result<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    Ok(files)
}

fn run_name(run: &Path, config: &Config) -> String {
    match config.general.experiment_name.as_str() {
        "" => run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
        name => name.to_string(),
    }
}

/// The adapter of a LoRA run in PEFT's layout: its `lora_A`/`lora_B` (and DoRA
/// magnitude) tensors and `adapter_config.json`.
fn write_adapter(run: &Path, dir: &Path) -> Result<Vec<String>> {
    let checkpoint = checkpoint::latest(run).expect("checked before");
    let config_path = checkpoint.join("adapter_config.json");
    if !config_path.is_file() {
        return Err(TrainError::Invalid(format!(
            "{}: the run trained without LoRA (training.lora is off), so it has no adapter; \
             export the whole model with --format hf or gguf",
            run.display()
        )));
    }
    let weights_path = checkpoint.join("adapter_model.safetensors");
    let bytes = std::fs::read(&weights_path).map_err(|e| TrainError::io(&weights_path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", weights_path.display())))?;
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| name.contains(".lora_"))
        .collect();
    let out = dir.join("adapter_model.safetensors");
    let metadata = Some([("format".to_string(), "pt".to_string())].into());
    safetensors::serialize_to_file(tensors, metadata, &out)
        .map_err(|e| TrainError::Invalid(format!("{}: cannot write: {e}", out.display())))?;
    // The base is named as the Hub knows it, so that PEFT can find it.
    let config = Config::from_yaml_file(&run.join("cfg.yaml"))?.config;
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
    let mut adapter_config: Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", config_path.display())))?;
    adapter_config["base_model_name_or_path"] = json!(published_name(&config.general.llm_backbone));
    let target = dir.join("adapter_config.json");
    let text = serde_json::to_string_pretty(&adapter_config).expect("JSON values serialize");
    std::fs::write(&target, text).map_err(|e| TrainError::io(&target, e))?;
    // The tokenizer with the chat template of the trained prompt format, as PEFT keeps
    // a tokenizer beside an adapter.
    let (tokenizer, template) = load_text(&config.general.llm_backbone)?;
    let chat_template = trained_chat_template(&config, &tokenizer, template.as_ref())?;
    write_tokenizer_files(&tokenizer, chat_template.as_deref(), None, None, dir)?;
    list_files(dir)
}

/// `generation_config.json` keys from the run's prediction settings.
fn generation_settings(config: &Config) -> Map<String, Value> {
    let p = &config.prediction;
    let mut g = json!({
        "max_new_tokens": p.max_length_inference,
        "min_new_tokens": p.min_length_inference,
        "do_sample": p.do_sample,
        "num_beams": p.num_beams,
        "repetition_penalty": p.repetition_penalty,
    });
    if p.do_sample {
        g["temperature"] = json!(p.temperature);
        g["top_p"] = json!(p.top_p);
        g["top_k"] = json!(p.top_k);
    }
    match g {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl TrainedModel {
    /// The chat template that renders conversations as the run was trained on them.
    pub fn chat_template(&self) -> Result<Option<String>> {
        let e = &self.engine;
        trained_chat_template(&self.config, &e.tokenizer, e.chat_template.as_ref())
    }
}

/// The chat template of a run's prompt format: the backbone's own `template` with
/// `dataset.use_chat_template`, else one written from the text markers.
fn trained_chat_template(
    config: &Config,
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
) -> Result<Option<String>> {
    let d = &config.dataset;
    if d.use_chat_template {
        return Ok(template.map(|t| t.source().to_string()));
    }
    let text = TextFormat::new(tokenizer.clone(), template.cloned(), d)?;
    Ok(text.renderer(d, 1).marker_template())
}

/// The best and last validation of a run's `events.jsonl`.
fn validations(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "validation")
        .collect()
}

/// `README.md`: what the model is, how it was made, how well it did, how to load it.
fn model_card(run: &Path, options: &ExportOptions) -> Result<String> {
    let config = Config::from_yaml_file(&run.join("cfg.yaml"))?.config;
    let name = run_name(run, &config);
    let (g, d, t) = (&config.general, &config.dataset, &config.training);
    let base = published_name(&g.llm_backbone);
    let library = match options.format {
        ExportFormat::Peft => "peft",
        ExportFormat::Hf => "transformers",
        ExportFormat::Gguf => "gguf",
    };
    let mut card = format!(
        "---\nbase_model: {base}\nlibrary_name: {library}\npipeline_tag: text-generation\ntags:\n- lathe\n- fine-tuned\n{}---\n\n# {name}\n\n",
        if t.lora { "- lora\n" } else { "" },
    );
    card += &format!(
        "A fine-tune of `{base}` made with Lathe (problem type `{}`).\n\n",
        g.problem_type
    );
    card += "## Data\n\n";
    card += &format!("- training data: `{}`\n", d.train_dataframe);
    let columns = [
        ("system", d.system_column.as_deref().unwrap_or_default()),
        ("prompt", &d.prompt_column.join(", ")),
        ("answer", d.answer_column.as_str()),
        (
            "parent id",
            d.parent_id_column.as_deref().unwrap_or_default(),
        ),
    ];
    for (role, column) in columns {
        if !column.is_empty() && column != "None" {
            card += &format!("- {role} column: `{column}`\n");
        }
    }
    card += &format!(
        "- prompt format: {}\n\n",
        if d.use_chat_template {
            "the backbone's chat template".to_string()
        } else {
            format!(
                "`{}` prompt `{}` answer (the `chat_template` in `tokenizer_config.json` renders it)",
                d.text_prompt_start.escape_debug(),
                d.text_answer_separator.escape_debug()
            )
        }
    );
    card += "## Training\n\n| setting | value |\n|---|---|\n";
    let mut settings = vec![
        ("epochs", t.epochs.to_string()),
        ("learning rate", t.learning_rate.to_string()),
        ("batch size", t.batch_size.to_string()),
        ("optimizer", t.optimizer.clone()),
        ("schedule", t.schedule.clone()),
        ("max length", config.tokenizer.max_length.to_string()),
        ("backbone dtype", config.architecture.backbone_dtype.clone()),
    ];
    if t.lora {
        settings.extend([
            ("LoRA r", t.lora_r.to_string()),
            ("LoRA alpha", t.lora_alpha.to_string()),
            ("LoRA dropout", t.lora_dropout.to_string()),
            (
                "LoRA targets",
                match t.lora_target_modules.as_str() {
                    "" => "all linear layers".to_string(),
                    list => list.to_string(),
                },
            ),
            ("DoRA", t.use_dora.to_string()),
            ("rsLoRA", t.use_rslora.to_string()),
        ]);
    }
    for (k, v) in settings {
        card += &format!("| {k} | {v} |\n");
    }
    let vals = validations(run);
    if let (Some(first), Some(last)) = (vals.first(), vals.last()) {
        card += "\n## Validation\n\n| | step | loss | perplexity | BLEU |\n|---|---|---|---|---|\n";
        for (label, v) in [("first", first), ("last", last)] {
            let num = |k: &str| v[k].as_f64().map_or("–".into(), |x| format!("{x:.4}"));
            card += &format!(
                "| {label} | {} | {} | {} | {} |\n",
                v["step"],
                num("loss"),
                num("perplexity"),
                num("bleu")
            );
        }
    }
    card += "\n## Use\n\n";
    card += &match options.format {
        ExportFormat::Hf => "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n\
model = AutoModelForCausalLM.from_pretrained(\"path/to/this/folder\")\n\
tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")\n\
messages = [{\"role\": \"user\", \"content\": \"Hello!\"}]\n\
ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")\n\
print(tokenizer.decode(model.generate(ids, max_new_tokens=64)[0][ids.shape[1]:]))\n```\n"
            .to_string(),
        ExportFormat::Peft => format!(
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForCausalLM\n\n\
base = AutoModelForCausalLM.from_pretrained(\"{base}\")\n\
model = PeftModel.from_pretrained(base, \"path/to/this/folder\")\n```\n\n\
The adapter holds the LoRA weights only{only}. Or in Lathe: `lathe chat --model {} --adapter path/to/this/folder`.\n",
            g.llm_backbone,
            only = if t.lora_unfreeze_layers.is_empty() && !config.tokenizer.add_prompt_answer_tokens {
                ""
            } else {
                "; layers trained in full (`lora_unfreeze_layers`, added tokens) are only in the merged export"
            }
        ),
        ExportFormat::Gguf => "```sh\nllama-cli -m MODEL.gguf -cnv\n```\n\nOr in Lathe: `lathe chat --model MODEL.gguf`.\n"
            .to_string(),
    };
    Ok(card)
}
