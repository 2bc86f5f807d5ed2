//! Checkpoints: the trainable weights (a PEFT adapter, or the trained base tensors under
//! Hugging Face names), the optimizer state and the loop position, written to a new
//! folder and swapped in with renames so that a crash at any moment leaves the previous
//! checkpoint intact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lathe_model::linear::transpose;
use lathe_model::train::ParamInfo;
use lathe_model::weights::float_values;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

/// Where the loop stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Optimizer steps done.
    pub step: u64,
    /// Micro-batches done (over all epochs).
    pub micro_step: u64,
    /// The run's seed.
    pub seed: u64,
    /// Best validation metric so far.
    pub best_metric: Option<f64>,
}

/// LoRA hyperparameters for `adapter_config.json`.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Base model reference.
    pub base_model: String,
    /// Rank.
    pub r: usize,
    /// Alpha.
    pub alpha: f32,
    /// Dropout.
    pub dropout: f32,
    /// Target module names.
    pub targets: Vec<String>,
    /// rsLoRA scaling.
    pub rslora: bool,
    /// DoRA magnitudes.
    pub dora: bool,
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) -> Result<()> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, (shape, bytes))| {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent tensor");
            (name.clone(), view)
        })
        .collect();
    let bytes =
        safetensors::serialize(views, None).map_err(|e| TrainError::Invalid(e.to_string()))?;
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect())
}

/// Whether `dir` is a PEFT adapter made outside Lathe: `adapter_config.json` without
/// Lathe's `trainer_state.json`.
pub fn is_peft_adapter(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file() && !dir.join("trainer_state.json").is_file()
}

/// Reads a PEFT `adapter_config.json`, refusing what Lathe's LoRA cannot represent.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
    let bad = |m: String| TrainError::Invalid(format!("{}: {m}", path.display()));
    if json["peft_type"] != "LORA" {
        return Err(bad(format!("peft_type {} is not LORA", json["peft_type"])));
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        if json[key].as_object().is_some_and(|m| !m.is_empty()) {
            return Err(bad(format!("`{key}` (per-layer ranks) is not supported")));
        }
    }
    for key in ["layers_to_transform", "modules_to_save"] {
        if !json[key].is_null() {
            return Err(bad(format!("`{key}` is not supported")));
        }
    }
    if json["bias"].as_str().is_some_and(|b| b != "none") {
        return Err(bad(
            "trained biases (`bias` other than none) are not supported".into(),
        ));
    }
    let targets = match &json["target_modules"] {
        serde_json::Value::String(s) if s == "all-linear" => Vec::new(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        other => {
            return Err(bad(format!(
                "target_modules {other} is not a list of layer names"
            )))
        }
    };
    let number = |key: &str| {
        json[key]
            .as_f64()
            .ok_or_else(|| bad(format!("`{key}` is missing or not a number")))
    };
    Ok(AdapterConfig {
        base_model: json["base_model_name_or_path"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        r: number("r")? as usize,
        alpha: number("lora_alpha")? as f32,
        dropout: json["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
        targets,
        rslora: json["use_rslora"].as_bool().unwrap_or(false),
        dora: json["use_dora"].as_bool().unwrap_or(false),
    })
}

/// The values of `params` (adapters, Lathe's layout) from a PEFT
/// `adapter_model.safetensors` in any float type.
pub fn load_adapter_values(dir: &Path, params: &[ParamInfo]) -> Result<Vec<Vec<f32>>> {
    let path = dir.join("adapter_model.safetensors");
    if !path.is_file() && dir.join("adapter_model.bin").is_file() {
        return Err(TrainError::Invalid(format!(
            "{}: the adapter is a pickled adapter_model.bin; save it as safetensors \
             (PEFT's `save_pretrained(..., safe_serialization=True)`)",
            dir.display()
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", path.display())))?;
    params
        .iter()
        .map(|info| {
            let key = format!("base_model.model.{}", info.name);
            let view = file
                .tensor(&key)
                .or_else(|_| file.tensor(&format!("{key}.weight")))
                .map_err(|_| {
                    TrainError::Invalid(format!(
                        "{}: no tensor {key}; the adapter does not match the model and settings",
                        path.display()
                    ))
                })?;
            let want: Vec<usize> = if info.transposed {
                vec![info.shape[1], info.shape[0]]
            } else {
                info.shape.clone()
            };
            if view.shape() != want.as_slice() {
                return Err(TrainError::Invalid(format!(
                    "{}: tensor {key} has shape {:?}, the model needs {want:?}",
                    path.display(),
                    view.shape()
                )));
            }
            let values = float_values(view.dtype(), view.data()).ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: tensor {key} is {:?}, not a float type",
                    path.display(),
                    view.dtype()
                ))
            })?;
            Ok(if info.transposed {
                transpose(&values, want[0], want[1])
            } else {
                values
            })
        })
        .collect()
}

/// The file a weight lives in, and its name there.
fn exported_name(info: &ParamInfo, lora: bool) -> String {
    if lora && info.name.contains(".lora_") {
        format!("base_model.model.{}", info.name)
    } else {
        info.name.clone()
    }
}

/// Writes a checkpoint folder `dir` (replacing an older one atomically).
pub fn save(
    dir: &Path,
    params: &[ParamInfo],
    values: &[Vec<f32>],
    optimizer: &Optimizer,
    position: &Position,
    adapter: Option<&AdapterConfig>,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let write = || -> Result<()> {
        let mut weights = BTreeMap::new();
        let mut state = BTreeMap::new();
        for (k, (info, v)) in params.iter().zip(values).enumerate() {
            let (shape, hf) = if info.transposed {
                let [rows, cols] = [info.shape[0], info.shape[1]];
                (vec![cols, rows], transpose(v, rows, cols))
            } else {
                (info.shape.clone(), v.clone())
            };
            weights.insert(
                exported_name(info, adapter.is_some()),
                (shape, to_bytes(&hf)),
            );
            // Exact training state, in Lathe's layout.
            state.insert(
                format!("{}#value", info.name),
                (info.shape.clone(), to_bytes(v)),
            );
            for (key, buffer) in &optimizer.state[k] {
                state.insert(
                    format!("{}#{key}", info.name),
                    (info.shape.clone(), to_bytes(buffer)),
                );
            }
        }
        let weights_file = if adapter.is_some() {
            "adapter_model.safetensors"
        } else {
            "model.safetensors"
        };
        write_safetensors(&tmp.join(weights_file), &weights)?;
        write_safetensors(&tmp.join("optimizer.safetensors"), &state)?;
        if let Some(a) = adapter {
            let config = json!({
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "base_model_name_or_path": a.base_model,
                "r": a.r,
                "lora_alpha": a.alpha,
                "lora_dropout": a.dropout,
                "target_modules": a.targets,
                "use_rslora": a.rslora,
                "use_dora": a.dora,
                "bias": "none",
                "fan_in_fan_out": false,
                "inference_mode": true,
            });
            std::fs::write(
                tmp.join("adapter_config.json"),
                serde_json::to_vec_pretty(&config).unwrap_or_default(),
            )
            .map_err(|e| TrainError::io(&tmp, e))?;
        }
        let mut pos = serde_json::to_value(position).unwrap_or_default();
        pos["optimizer_steps"] = json!(optimizer.steps);
        std::fs::write(tmp.join("trainer_state.json"), pos.to_string())
            .map_err(|e| TrainError::io(&tmp, e))?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Swap: the old checkpoint stays until the new one is in place.
    let old = dir.with_extension("old");
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// A checkpoint read back.
pub struct Restored {
    /// Trainable values in parameter order (Lathe's layout).
    pub values: Vec<Vec<f32>>,
    /// Optimizer state per parameter.
    pub state: Vec<BTreeMap<String, Vec<f32>>>,
    /// Optimizer steps.
    pub optimizer_steps: u64,
    /// Loop position.
    pub position: Position,
}

/// The newest complete checkpoint folder of a run: `checkpoint`, or `checkpoint.old`
/// when a crash happened between the two renames.
pub fn latest(run: &Path) -> Option<PathBuf> {
    ["checkpoint", "checkpoint.old"]
        .iter()
        .map(|n| run.join(n))
        .find(|d| d.join("trainer_state.json").is_file())
}

/// Reads a checkpoint for the given parameters.
pub fn load(dir: &Path, params: &[ParamInfo]) -> Result<Restored> {
    let state_path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", state_path.display())))?;
    let position: Position = serde_json::from_value(json.clone())
        .map_err(|e| TrainError::Invalid(format!("{}: {e}", state_path.display())))?;
    let mut tensors = read_safetensors(&dir.join("optimizer.safetensors"))?;
    let mut values = Vec::with_capacity(params.len());
    let mut state = Vec::with_capacity(params.len());
    for info in params {
        let value = tensors
            .remove(&format!("{}#value", info.name))
            .ok_or_else(|| {
                TrainError::Invalid(format!(
                    "{}: no tensor {} (the checkpoint was made with other settings)",
                    dir.display(),
                    info.name
                ))
            })?;
        values.push(value);
        let prefix = format!("{}#", info.name);
        let keys: Vec<String> = tensors
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        state.push(
            keys.into_iter()
                .filter_map(|k| {
                    tensors
                        .remove(&k)
                        .map(|v| (k[prefix.len()..].to_string(), v))
                })
                .collect(),
        );
    }
    Ok(Restored {
        values,
        state,
        optimizer_steps: json["optimizer_steps"].as_u64().unwrap_or(position.step),
        position,
    })
}
