//! Hugging Face Hub model ids resolved through the standard Hub cache (`hf-hub`):
//! `HF_HOME` picks the cache, `HF_HUB_OFFLINE` forbids the network, `HF_TOKEN`
//! authenticates, `HF_ENDPOINT` picks the server.

use std::path::PathBuf;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};
use crate::weights::shard_files;

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
    // One client for every file; none at all when offline.
    let api = if offline() {
        None
    } else {
        let token = std::env::var("HF_TOKEN").ok().or_else(|| cache.token());
        let api = ApiBuilder::from_env()
            .with_progress(false)
            .with_token(token)
            .build()
            .map_err(|e| ModelError::Resolve(format!("Hub model {spec}: {e}")))?;
        Some(api.repo(repo.clone()))
    };
    let fetch = |file: &str| -> Result<PathBuf> {
        if let Some(path) = cache.repo(repo.clone()).get(file) {
            return Ok(path);
        }
        let why = match &api {
            None => "HF_HUB_OFFLINE is set".to_string(),
            Some(api) => match api.get(file) {
                Ok(path) => return Ok(path),
                Err(e) => format!("downloading it failed: {e}"),
            },
        };
        Err(ModelError::Resolve(format!(
            "Hub model {spec}: `{file}` is not in the Hub cache at {} and {why}",
            cache.path().display()
        )))
    };
    let config = fetch("config.json")?;
    for file in OPTIONAL_FILES {
        let _ = fetch(file);
    }
    match fetch("model.safetensors.index.json") {
        Ok(index) => {
            for shard in shard_files(&index)? {
                fetch(&shard)?;
            }
        }
        Err(_) => {
            fetch("model.safetensors")?;
        }
    }
    Ok(config.parent().map(PathBuf::from).unwrap_or_default())
}
