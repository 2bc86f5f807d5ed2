//! Hugging Face Hub model ids resolved through the standard Hub cache (`hf-hub`):
//! `HF_HOME` picks the cache, `HF_HUB_OFFLINE` forbids the network, `HF_TOKEN`
//! authenticates, `HF_ENDPOINT` picks the server.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};

/// Files of a model folder that are fetched when present; `config.json` is required.
const OPTIONAL_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
];

/// Whether `spec` has the shape of a Hub id (`org/name`, optionally `@revision`).
pub fn looks_like_hub_id(spec: &str) -> bool {
    let id = spec.split('@').next().unwrap_or_default();
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// Makes the files of Hub model `spec` (`org/name[@revision]`) available locally and
/// returns their snapshot folder: downloaded when online, from the cache otherwise.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
    let cache = Cache::from_env();
    let cached = |file: &str| cache.repo(repo.clone()).get(file);
    let fetch = |file: &str| -> std::result::Result<PathBuf, String> {
        if let Some(path) = cached(file) {
            return Ok(path);
        }
        if offline() {
            return Err(format!(
                "`{file}` is not in the Hub cache at {} and HF_HUB_OFFLINE is set",
                cache.path().display()
            ));
        }
        let token = std::env::var("HF_TOKEN").ok().or_else(|| cache.token());
        let api = ApiBuilder::from_env()
            .with_progress(false)
            .with_token(token)
            .build()
            .map_err(|e| e.to_string())?;
        api.repo(repo.clone()).get(file).map_err(|e| {
            format!(
                "`{file}` is not in the Hub cache at {} and downloading it failed: {e}",
                cache.path().display()
            )
        })
    };
    let config =
        fetch("config.json").map_err(|e| ModelError::Resolve(format!("Hub model {spec}: {e}")))?;
    for file in OPTIONAL_FILES {
        let _ = fetch(file);
    }
    match fetch("model.safetensors.index.json") {
        Ok(index) => {
            let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ModelError::format(&index, format!("invalid JSON: {e}")))?;
            let mut shards: Vec<&str> = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| m.values().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for shard in shards {
                fetch(shard).map_err(|e| ModelError::Resolve(format!("Hub model {spec}: {e}")))?;
            }
        }
        Err(_) => {
            fetch("model.safetensors")
                .map_err(|e| ModelError::Resolve(format!("Hub model {spec}: {e}")))?;
        }
    }
    Ok(config.parent().map(PathBuf::from).unwrap_or_default())
}
