//! Lathe's settings: every setting defined once ([`settings`]) with its type, default,
//! accepted values, tooltip and grid values; read from and written to YAML in H2O LLM
//! Studio's `cfg.yaml` layout; overridden from the command line; validated with errors
//! that name the setting, the value and what is allowed.

mod settings;
mod spec;
mod value;

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

pub use settings::{
    Architecture, Augmentation, Config, Dataset, Environment, General, Logging, Prediction,
    TokenizerSettings, Training, GROUPS,
};
pub use spec::{Kind, Spec};
pub use value::SettingValue;

/// Why a configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A setting has a value of the wrong type or outside its range.
    #[error("{origin}: setting `{key}` = {value}: expected {allowed}")]
    Invalid {
        origin: String,
        key: String,
        value: String,
        allowed: String,
    },
    /// A command-line override names no setting.
    #[error("unknown setting `{0}` (`lathe config defaults` lists every setting)")]
    UnknownSetting(String),
}

/// A configuration read from a file, with what was noticed while reading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// Keys that were ignored (unknown to Lathe), as `group.key`.
    pub unknown_keys: Vec<String>,
}

impl Config {
    /// Reads a `cfg.yaml` (H2O LLM Studio's or Lathe's). Unknown keys are collected,
    /// not errors; known keys with bad values are errors naming key, value and range.
    pub fn from_yaml_file(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Reads YAML text; `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
        let mut config = Config::default();
        let unknown_keys = config.merge_yaml_str(text, origin)?;
        Ok(Loaded {
            config,
            unknown_keys,
        })
    }

    /// Sets the settings that YAML text names, leaving the others; returns the
    /// unknown keys (ignored). A bad value is an error and `self` may then hold the
    /// values read before it.
    pub fn merge_yaml_str(&mut self, text: &str, origin: &str) -> Result<Vec<String>, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: PathBuf::from(origin),
            message,
        };
        let root: Value = serde_yaml_ng::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let root = match root {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => {
                return Err(syntax(
                    "expected a mapping of settings at the top level".into(),
                ))
            }
        };
        let mut unknown_keys = Vec::new();
        for (key, value) in &root {
            let key = key_text(key);
            if GROUPS.contains(&key.as_str()) {
                let Value::Mapping(group) = value else {
                    return Err(syntax(format!("`{key}` must be a mapping of settings")));
                };
                for (sub, value) in group {
                    let path = format!("{key}.{}", key_text(sub));
                    if !self.set_checked(&path, value, origin)? {
                        unknown_keys.push(path);
                    }
                }
            } else if !self.set_checked(&key, value, origin)? {
                unknown_keys.push(key);
            }
        }
        Ok(unknown_keys)
    }

    /// Applies a command-line override `group.key` = `text` (typed by the setting).
    pub fn apply_override(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        let value = Value::String(text.to_string());
        if self.set_checked(path, &value, "command line")? {
            Ok(())
        } else {
            Err(ConfigError::UnknownSetting(path.to_string()))
        }
    }

    /// Sets one value with type and range checks; `Ok(false)` when the key is unknown.
    pub fn set_checked(
        &mut self,
        path: &str,
        value: &Value,
        origin: &str,
    ) -> Result<bool, ConfigError> {
        let Some(spec) = settings::spec(path) else {
            return Ok(false);
        };
        let invalid = |allowed: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: path.to_string(),
            value: value_text(value),
            allowed,
        };
        let previous = self.get(path).unwrap_or(Value::Null);
        match self.set_unchecked(path, value) {
            None => return Ok(false),
            Some(Err(expected)) => return Err(invalid(expected)),
            Some(Ok(())) => {}
        }
        let typed = self.get(path).unwrap_or(Value::Null);
        if let Err(allowed) = spec.check(&typed) {
            // A rejected value changes nothing.
            self.set_unchecked(path, &previous);
            return Err(invalid(allowed));
        }
        Ok(true)
    }

    /// Checks every value against its range (settings built in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for spec in Config::schema() {
            let value = self.get(&spec.path()).unwrap_or(Value::Null);
            spec.check(&value).map_err(|allowed| ConfigError::Invalid {
                origin: "configuration".into(),
                key: spec.path(),
                value: value_text(&value),
                allowed,
            })?;
        }
        Ok(())
    }

    /// The configuration as nested YAML, in H2O's `cfg.yaml` layout.
    pub fn to_yaml(&self) -> String {
        let mut root = Mapping::new();
        for spec in Config::schema() {
            let value = self.get(&spec.path()).unwrap_or(Value::Null);
            if spec.group.is_empty() {
                root.insert(Value::String(spec.key.into()), value);
            } else {
                let group = root
                    .entry(Value::String(spec.group.into()))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(m) = group {
                    m.insert(Value::String(spec.key.into()), value);
                }
            }
        }
        serde_yaml_ng::to_string(&Value::Mapping(root)).unwrap_or_default()
    }

    /// Whether `spec` applies under these values: its `shown_if` condition holds
    /// (`group.key` set and true, `group.key=value`, `group.key!=value`,
    /// `group.key<number`), and so does the condition of the setting it depends on.
    pub fn applies(&self, spec: &Spec) -> bool {
        let condition = spec.shown_if;
        if condition.is_empty() {
            return true;
        }
        let (path, op, expected) = ["!=", "<", "="]
            .iter()
            .find_map(|op| {
                let (path, value) = condition.split_once(op)?;
                Some((path, *op, value))
            })
            .unwrap_or((condition, "", ""));
        let parent_applies = settings::spec(path).is_none_or(|parent| self.applies(parent));
        let value = self.get(path).unwrap_or(Value::Null);
        let text = value_text(&value);
        let text = text.trim_matches('"');
        let holds = match op {
            "=" => text == expected,
            "!=" => text != expected,
            "<" => matches!((value.as_f64(), expected.parse::<f64>()), (Some(a), Ok(b)) if a < b),
            _ => match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty() && s != "None",
                Value::Sequence(items) => !items.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            },
        };
        parent_applies && holds
    }

    /// GPU-only settings that are switched on (a true flag, a non-empty list, another
    /// value than the default), as `(path, value)`: kept in the file, inert on a CPU.
    pub fn gpu_only_settings_in_use(&self) -> Vec<(String, String)> {
        Config::schema()
            .into_iter()
            .filter(|s| s.gpu_only)
            .filter_map(|s| {
                let value = self.get(&s.path())?;
                let in_use = match &value {
                    Value::Bool(b) => *b,
                    Value::Sequence(items) => !items.is_empty(),
                    other => *other != s.default,
                };
                in_use.then(|| (s.path(), value_text(&value)))
            })
            .collect()
    }
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => value_text(other),
    }
}

/// A value as one line of text for messages.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .replace('\n', " "),
    }
}

#[cfg(test)]
mod tests;
