//! App settings (in the registry) and secrets (in `secrets.json`, mode 0600): secrets
//! are never returned in full, never written into configs or logs; workers get them
//! as environment variables.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde_json::{json, Map, Value};

use crate::error::{io, Result, StudioError};
use crate::Studio;

/// Secrets the studio keeps, and the environment variable each is passed to
/// workers and imports as.
pub const SECRET_NAMES: &[(&str, &str)] = &[
    ("huggingface_token", "HF_TOKEN"),
    ("openai_api_key", "OPENAI_API_KEY"),
    ("aws_access_key", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_key", "AWS_SECRET_ACCESS_KEY"),
];

/// App settings: key, default, help.
const APP_SETTINGS: &[(&str, &str, &str)] = &[
    (
        "delete_dialogs",
        "true",
        "Ask before deleting datasets and experiments",
    ),
    (
        "chart_plot_max_points",
        "1000",
        "Points per chart line at most (longer series are thinned)",
    ),
    (
        "default_s3_bucket",
        "\"\"",
        "S3 bucket the import form suggests",
    ),
    (
        "default_s3_endpoint",
        "\"\"",
        "S3-compatible endpoint (MinIO …); empty: AWS",
    ),
    ("default_s3_region", "\"\"", "S3 region; empty: us-east-1"),
];

/// Secrets as the API shows them: set or not, and the last 4 characters.
pub type SecretsView = Map<String, Value>;

fn mask(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if secret.chars().count() > 8 {
        format!("…{tail}")
    } else {
        "…".into()
    }
}

impl Studio {
    fn secrets_path(&self) -> std::path::PathBuf {
        self.root().join("secrets.json")
    }

    fn read_secrets(&self) -> Map<String, Value> {
        std::fs::read_to_string(self.secrets_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// A secret's value.
    pub(crate) fn secret(&self, name: &str) -> Option<String> {
        self.read_secrets()
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Environment variables that hand the secrets to a worker.
    pub(crate) fn secret_env(&self) -> Vec<(String, String)> {
        let secrets = self.read_secrets();
        SECRET_NAMES
            .iter()
            .filter_map(|(name, var)| {
                let value = secrets.get(*name)?.as_str()?;
                Some((var.to_string(), value.to_string()))
            })
            .collect()
    }

    /// Every secret name with `null` (not set) or a masked value.
    pub fn secrets_view(&self) -> SecretsView {
        let secrets = self.read_secrets();
        SECRET_NAMES
            .iter()
            .map(|(name, _)| {
                let shown = secrets
                    .get(*name)
                    .and_then(Value::as_str)
                    .map(|s| Value::String(mask(s)))
                    .unwrap_or(Value::Null);
                (name.to_string(), shown)
            })
            .collect()
    }

    /// Sets secrets (`null` or an empty text removes one); unknown names are refused.
    pub fn set_secrets(&self, values: &Map<String, Value>) -> Result<()> {
        let mut secrets = self.read_secrets();
        for (name, value) in values {
            if !SECRET_NAMES.iter().any(|(n, _)| n == name) {
                let known: Vec<&str> = SECRET_NAMES.iter().map(|(n, _)| *n).collect();
                return Err(StudioError::Invalid(format!(
                    "unknown secret `{name}`; secrets are {}",
                    known.join(", ")
                )));
            }
            match value {
                Value::Null => {
                    secrets.remove(name);
                }
                Value::String(s) if s.is_empty() => {
                    secrets.remove(name);
                }
                Value::String(s) => {
                    secrets.insert(name.clone(), Value::String(s.clone()));
                }
                _ => {
                    return Err(StudioError::Invalid(format!(
                        "secret `{name}` must be a text"
                    )))
                }
            }
        }
        let path = self.secrets_path();
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(Value::Object(secrets).to_string().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io(&path))
    }

    /// App settings with their values (defaults where unset).
    pub fn app_settings(&self) -> Result<Map<String, Value>> {
        let stored = self.db().settings()?;
        Ok(APP_SETTINGS
            .iter()
            .map(|(key, default, help)| {
                let value = stored
                    .get(*key)
                    .cloned()
                    .unwrap_or_else(|| serde_json::from_str(default).unwrap_or(Value::Null));
                (key.to_string(), json!({"value": value, "help": help}))
            })
            .collect())
    }

    /// Sets app settings; each must be a known one with a value of its type.
    pub fn set_app_settings(&self, values: &Map<String, Value>) -> Result<()> {
        for (key, value) in values {
            let Some((_, default, _)) = APP_SETTINGS.iter().find(|(k, _, _)| k == key) else {
                let secret = SECRET_NAMES.iter().any(|(n, _)| n == key);
                return Err(StudioError::Invalid(if secret {
                    format!("`{key}` is a secret: set it under \"secrets\"")
                } else {
                    let known: Vec<&str> = APP_SETTINGS.iter().map(|(k, _, _)| *k).collect();
                    format!(
                        "unknown app setting `{key}`; settings are {}",
                        known.join(", ")
                    )
                }));
            };
            let default: Value = serde_json::from_str(default).unwrap_or(Value::Null);
            let same_type = matches!(
                (&default, value),
                (Value::Bool(_), Value::Bool(_))
                    | (Value::Number(_), Value::Number(_))
                    | (Value::String(_), Value::String(_))
            );
            if !same_type {
                return Err(StudioError::Invalid(format!(
                    "app setting `{key}` = {value}: expected a value like {default}"
                )));
            }
        }
        self.db().set_settings(values)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_show_only_the_tail_of_long_secrets() {
        assert_eq!(super::mask("hf_abcdefghijkl"), "…ijkl");
        assert_eq!(super::mask("short"), "…");
    }
}
