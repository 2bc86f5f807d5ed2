//! Loading a model from what the user names: a Hugging Face folder, a GGUF file, or
//! a Hub id.

use std::path::Path;

use burn::tensor::Device;
use serde_json::Value;

use crate::chat_template::ChatTemplate;
use crate::config::LlamaConfig;
use crate::engine::Engine;
use crate::error::{ModelError, Result};
use crate::export::SaveDtype;
use crate::gguf::{GgmlType, GgufFile};
use crate::hub;
use crate::llama::Llama;
use crate::quant::BaseDtype;
use crate::sampling::GenerationConfig;
use crate::tokenizer::Tokenizer;
use crate::weights::{GgufWeights, SafetensorsWeights};

/// Loads `spec`: a `.gguf` file, a folder with `config.json`, or a Hub id
/// (`HuggingFaceTB/SmolLM2-135M-Instruct`), or `demo` for the demo model.
/// Computation runs in f32 on the CPU.
pub fn load(spec: &str) -> Result<Engine> {
    load_with(spec, None)
}

/// Loads a model for training: on the autodiff device, linear weights in one block,
/// or packed in `dtype` (the head and embeddings stay f32).
pub fn load_for_training(spec: &str, dtype: BaseDtype) -> Result<Engine> {
    load_with(spec, Some(dtype))
}

/// Where a model named by the user lives.
enum Located {
    Gguf(std::path::PathBuf),
    Folder(std::path::PathBuf),
}

/// Finds `spec`: `demo`, a GGUF file, a model folder, or a Hub id (downloaded or
/// taken from the Hub cache).
fn locate(spec: &str) -> Result<Located> {
    let path = Path::new(spec);
    // `demo` is the demo model unless a model of that name is right here.
    let local_model = path.is_file() || path.join("config.json").is_file();
    if spec == "demo" && !local_model {
        let demo = demo_model_path();
        if !demo.is_file() {
            return Err(ModelError::Resolve(format!(
                "the demo model is not at {}: run scripts/fetch-demo-model.sh",
                demo.display()
            )));
        }
        return Ok(Located::Gguf(demo));
    }
    if path.is_file() {
        return Ok(Located::Gguf(path.to_path_buf()));
    }
    if path.is_dir() {
        return Ok(Located::Folder(path.to_path_buf()));
    }
    if !spec.ends_with(".gguf") && hub::looks_like_hub_id(spec) {
        return Ok(Located::Folder(hub::resolve(spec)?));
    }
    Err(ModelError::Resolve(format!(
        "model `{spec}`: no such file or folder, and not a Hub id of the form org/name"
    )))
}

fn load_with(spec: &str, training: Option<BaseDtype>) -> Result<Engine> {
    match locate(spec)? {
        Located::Gguf(path) => load_gguf_with(&path, training),
        Located::Folder(dir) => {
            let mut engine = load_folder_with(&dir, training)?;
            if !Path::new(spec).is_dir() {
                engine.source = spec.to_string();
            }
            Ok(engine)
        }
    }
}

/// Reads only the hyperparameters of the model `spec` names (as [`load`] names models).
pub fn load_config(spec: &str) -> Result<LlamaConfig> {
    match locate(spec)? {
        Located::Gguf(path) => LlamaConfig::from_gguf(&GgufFile::open(&path)?),
        Located::Folder(dir) => LlamaConfig::from_json_file(&dir.join("config.json")),
    }
}

/// Loads only the text side of the model `spec` names (as [`load`] names models):
/// its tokenizer and its chat template, if it has one.
pub fn load_text(spec: &str) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    match locate(spec)? {
        Located::Gguf(path) => gguf_text(&GgufFile::open(&path)?),
        Located::Folder(dir) => folder_text(&dir),
    }
}

/// The GGUF file `spec` names (as [`load`] names models), or `None` for a folder.
pub fn source_gguf(spec: &str) -> Result<Option<GgufFile>> {
    match locate(spec)? {
        Located::Gguf(path) => GgufFile::open(&path).map(Some),
        Located::Folder(_) => Ok(None),
    }
}

/// The float type the weights of `spec` are stored in: a folder's `torch_dtype`, a
/// GGUF file's embedding type when it is a float type, else f32 (quantized weights
/// have no exact lower-precision form).
pub fn stored_dtype(spec: &str) -> Result<SaveDtype> {
    Ok(match locate(spec)? {
        Located::Gguf(path) => {
            let file = GgufFile::open(&path)?;
            match file.tensor_info("token_embd.weight").map(|t| t.ty) {
                Some(GgmlType::F16) => SaveDtype::F16,
                Some(GgmlType::BF16) => SaveDtype::BF16,
                _ => SaveDtype::F32,
            }
        }
        Located::Folder(dir) => {
            let config = read_json_opt(&dir.join("config.json"))?.unwrap_or_default();
            ["torch_dtype", "dtype"]
                .iter()
                .find_map(|k| config.get(*k)?.as_str().and_then(SaveDtype::parse))
                .unwrap_or(SaveDtype::F32)
        }
    })
}

/// A GGUF file's tokenizer and chat template, from its metadata.
fn gguf_text(file: &GgufFile) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tokenizer = Tokenizer::from_gguf(file)?;
    let template = file
        .meta("tokenizer.chat_template")
        .and_then(|v| v.as_str())
        .map(|source| {
            ChatTemplate::new(
                source,
                tokenizer.bos_token.as_deref(),
                tokenizer.eos_token.as_deref(),
            )
        })
        .transpose()?;
    Ok((tokenizer, template))
}

/// A folder's tokenizer (`tokenizer.json`, special tokens from
/// `tokenizer_config.json`) and chat template (`tokenizer_config.json` or
/// `chat_template.jinja`).
fn folder_text(dir: &Path) -> Result<(Tokenizer, Option<ChatTemplate>)> {
    let tokenizer_config = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let special = |key: &str| -> Option<String> {
        match tokenizer_config.as_ref()?.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        }
    };
    let tokenizer_path = dir.join("tokenizer.json");
    if !tokenizer_path.exists() {
        return Err(ModelError::Resolve(format!(
            "{}: no tokenizer.json",
            dir.display()
        )));
    }
    let tokenizer =
        Tokenizer::from_file(&tokenizer_path, special("bos_token"), special("eos_token"))?;
    let template_source = tokenizer_config
        .as_ref()
        .and_then(|c| c.get("chat_template"))
        .and_then(|t| match t {
            Value::String(s) => Some(s.clone()),
            // A list of named templates: the `default` one.
            Value::Array(list) => list
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|e| e.get("template")?.as_str().map(str::to_string)),
            _ => None,
        })
        .or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok());
    let template = template_source
        .map(|s| {
            ChatTemplate::new(
                &s,
                tokenizer.bos_token.as_deref(),
                tokenizer.eos_token.as_deref(),
            )
        })
        .transpose()?;
    Ok((tokenizer, template))
}

/// File name of the demo model (SmolLM2-135M-Instruct, GGUF Q4_1).
pub const DEMO_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The Hub id of the model the demo model was converted from.
pub const DEMO_MODEL_ID: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// The name to publish for a backbone: the demo model's Hub id for `demo`, else `spec`.
pub fn published_name(spec: &str) -> &str {
    if spec == "demo" && !Path::new(spec).exists() {
        DEMO_MODEL_ID
    } else {
        spec
    }
}

/// Lathe's home folder: `$LATHE_HOME`, else `~/.cache/lathe`.
pub fn lathe_home() -> std::path::PathBuf {
    match std::env::var_os("LATHE_HOME") {
        Some(home) => home.into(),
        None => std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_default()
            .join(".cache/lathe"),
    }
}

/// Where `scripts/fetch-demo-model.sh` puts the demo model.
pub fn demo_model_path() -> std::path::PathBuf {
    lathe_home().join("models").join(DEMO_MODEL_FILE)
}

/// The CPU device; with autodiff when loading for training.
fn device(training: Option<BaseDtype>) -> Device {
    match training {
        Some(_) => Device::autodiff(Device::flex()),
        None => Device::flex(),
    }
}

/// Loads a GGUF file: weights dequantized to f32, tokenizer and chat template from
/// its metadata.
pub fn load_gguf(path: &Path) -> Result<Engine> {
    load_gguf_with(path, None)
}

fn load_gguf_with(path: &Path, training: Option<BaseDtype>) -> Result<Engine> {
    let file = GgufFile::open(path)?;
    let config = LlamaConfig::from_gguf(&file)?;
    let (tokenizer, chat_template) = gguf_text(&file)?;
    let device = device(training);
    let weights = GgufWeights::new(file, &config);
    let llama = Llama::load(&config, &weights, &device, training)?;
    Ok(Engine {
        generation_defaults: GenerationConfig {
            eos_token_ids: config.eos_token_ids.clone(),
            ..Default::default()
        },
        llama,
        tokenizer,
        chat_template,
        source: path.display().to_string(),
        device,
    })
}

/// Loads a Hugging Face model folder (`config.json`, safetensors, `tokenizer.json`,
/// optional `tokenizer_config.json` and `generation_config.json`).
pub fn load_folder(dir: &Path) -> Result<Engine> {
    load_folder_with(dir, None)
}

fn load_folder_with(dir: &Path, training: Option<BaseDtype>) -> Result<Engine> {
    let config_path = dir.join("config.json");
    if !config_path.exists() {
        return Err(ModelError::Resolve(format!(
            "{}: not a model folder (no config.json)",
            dir.display()
        )));
    }
    let config = LlamaConfig::from_json_file(&config_path)?;
    let (tokenizer, chat_template) = folder_text(dir)?;
    let generation = read_json_opt(&dir.join("generation_config.json"))?;
    let eos_token_ids = generation
        .as_ref()
        .and_then(|g| g.get("eos_token_id"))
        .map(|v| match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_u64().map(|i| i as u32))
                .collect(),
            other => other.as_u64().map(|i| i as u32).into_iter().collect(),
        })
        .filter(|ids: &Vec<u32>| !ids.is_empty())
        .unwrap_or_else(|| config.eos_token_ids.clone());
    let device = device(training);
    let weights = SafetensorsWeights::open_folder(dir)?;
    let llama = Llama::load(&config, &weights, &device, training)?;
    Ok(Engine {
        llama,
        tokenizer,
        chat_template,
        generation_defaults: GenerationConfig {
            eos_token_ids,
            ..Default::default()
        },
        source: dir.display().to_string(),
        device,
    })
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ModelError::format(path, format!("invalid JSON: {e}")))
}
