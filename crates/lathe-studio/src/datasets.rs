//! Datasets: import (upload, local path, Hub, S3) into `datasets/<name>/`, the column
//! mapping with H2O's auto-selection and sanity checks, and the views of the data.

use std::path::{Path, PathBuf};

use lathe_config::Config;
use lathe_data::{read_samples, statistics, DatasetStats, Mapping, S3Location, Table};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::error::{Result, StudioError};
use crate::registry::DatasetRecord;
use crate::{apply_settings, check_name, runs, Studio};

/// Where a dataset comes from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// A local data file or zip (an upload lands in one first).
    File(PathBuf),
    /// A Hugging Face dataset repository and split.
    Hub { id: String, split: String },
    /// Objects in S3-compatible storage.
    S3(S3Location),
}

/// A page of a dataset's rows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowsPage {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows from `offset`, cells as in the file (`null` when missing).
    pub rows: Vec<Vec<Option<String>>>,
    /// First row's index (0-based).
    pub offset: usize,
    /// Rows in the file.
    pub total: usize,
}

/// One prompt and its answer in a rendered conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationTurn {
    /// Data row (1-based).
    pub row: usize,
    /// The prompt (prompt columns joined).
    pub prompt: String,
    /// The answer.
    pub answer: String,
}

/// A training sample as a conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    /// Data row of its last turn (1-based).
    pub row: usize,
    /// System message, if the data has one.
    pub system: Option<String>,
    /// Turns, first to last.
    pub turns: Vec<ConversationTurn>,
}

/// Problem types a dataset can be set up for.
const PROBLEM_TYPES: &[&str] = &["text_causal_language_modeling"];

/// Mapping settings (the keys a dataset's mapping may set).
const MAPPING_KEYS: &[&str] = &[
    "dataset.prompt_column",
    "dataset.prompt_column_separator",
    "dataset.answer_column",
    "dataset.system_column",
    "dataset.parent_id_column",
    "dataset.id_column",
];

/// The training file among imported files: one named like `train`, else the first.
fn train_file(files: &[PathBuf]) -> Option<&PathBuf> {
    files
        .iter()
        .find(|f| {
            f.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.to_ascii_lowercase().contains("train"))
        })
        .or_else(|| files.first())
}

/// The auto-selected mapping of `columns` as settings.
fn auto_mapping(columns: &[String]) -> Map<String, Value> {
    let m = Mapping::auto(columns);
    let mut out = Map::new();
    if !m.prompt.is_empty() {
        out.insert("dataset.prompt_column".into(), json!(m.prompt));
    }
    if let Some(answer) = m.answer {
        out.insert("dataset.answer_column".into(), json!(answer));
    }
    out.insert("dataset.system_column".into(), json!(m.system));
    out.insert("dataset.parent_id_column".into(), json!(m.parent_id));
    out.insert("dataset.id_column".into(), json!(m.id));
    out
}

/// Settings for `train_file` under `mapping` (defaults elsewhere).
fn config_for(train_file: &Path, mapping: &Map<String, Value>) -> Result<Config> {
    if let Some(key) = mapping.keys().find(|k| !MAPPING_KEYS.contains(&k.as_str())) {
        return Err(StudioError::Invalid(format!(
            "`{key}` is not a column mapping setting; a mapping sets {}",
            MAPPING_KEYS.join(", ")
        )));
    }
    let mut config = Config::default();
    apply_settings(&mut config, mapping)?;
    config.dataset.train_dataframe = train_file.display().to_string();
    Ok(config)
}

/// Runs the sanity checks: the samples the mapping makes, or why it makes none.
fn validate(table: &Table, config: &Config) -> (u64, Option<String>) {
    match read_samples(table, &config.dataset) {
        Ok(set) if set.samples.is_empty() => (0, Some("the mapping makes no samples".into())),
        Ok(set) => (set.samples.len() as u64, None),
        Err(e) => (0, Some(e.to_string())),
    }
}

impl Studio {
    /// Imports a dataset named `name` from `source` with the auto-selected column
    /// mapping overridden by `mapping`. A file that cannot be read is an error and
    /// leaves nothing behind; a mapping that fails the sanity checks is kept with
    /// the reason in `validation`, to be fixed with [`Studio::update_dataset`].
    pub fn import_dataset(
        &self,
        name: &str,
        source: DatasetSource,
        mapping: &Map<String, Value>,
    ) -> Result<DatasetRecord> {
        check_name("dataset", name)?;
        let dir = self.dataset_dir(name);
        if self.db().dataset(name)?.is_some() || dir.exists() {
            return Err(StudioError::Conflict(format!(
                "a dataset named {name:?} already exists"
            )));
        }
        // Check the mapping's keys before anything is written.
        config_for(Path::new(""), mapping)?;
        let files = match &source {
            DatasetSource::File(path) => lathe_data::import_path(path, &dir)?,
            DatasetSource::Hub { id, split } => {
                let token = self.secret("huggingface_token");
                lathe_data::import_hub(id, split, token.as_deref(), &dir)?
            }
            DatasetSource::S3(location) => {
                let mut location = location.clone();
                if location.access_key.is_none() {
                    location.access_key = self.secret("aws_access_key");
                    location.secret_key = self.secret("aws_secret_key");
                }
                let keys = lathe_data::list_s3(&location)?;
                lathe_data::import_s3(&location, &keys, &dir)?
            }
        };
        let result = self.register(name, &dir, &files, mapping);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn register(
        &self,
        name: &str,
        dir: &Path,
        files: &[PathBuf],
        overrides: &Map<String, Value>,
    ) -> Result<DatasetRecord> {
        let train = train_file(files)
            .ok_or_else(|| StudioError::Invalid("the import holds no data file".into()))?;
        let table = Table::read(train)?;
        let mut mapping = auto_mapping(&table.columns);
        mapping.extend(overrides.clone());
        let config = config_for(train, &mapping)?;
        let (samples, validation) = validate(&table, &config);
        let relative = |f: &PathBuf| {
            f.strip_prefix(dir)
                .unwrap_or(f)
                .to_string_lossy()
                .to_string()
        };
        let record = DatasetRecord {
            name: name.to_string(),
            files: files.iter().map(relative).collect(),
            train_file: relative(train),
            problem_type: PROBLEM_TYPES[0].into(),
            mapping,
            columns: table.columns.clone(),
            rows: table.rows.len() as u64,
            samples,
            validation,
            created: runs::now(),
        };
        self.db().insert_dataset(&record)?;
        Ok(record)
    }

    /// Every dataset, newest first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        self.db().datasets()
    }

    /// A dataset by name.
    pub fn dataset(&self, name: &str) -> Result<DatasetRecord> {
        self.db()
            .dataset(name)?
            .ok_or_else(|| StudioError::NotFound(format!("no dataset named {name:?}")))
    }

    /// The dataset's training file on disk.
    pub fn dataset_train_path(&self, record: &DatasetRecord) -> PathBuf {
        self.dataset_dir(&record.name).join(&record.train_file)
    }

    /// Experiments using dataset `name` that are queued or running.
    fn active_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .db()
            .experiments()?
            .into_iter()
            .filter(|e| e.dataset == name && matches!(e.status.as_str(), "queued" | "running"))
            .map(|e| e.name)
            .collect())
    }

    /// Changes a dataset's mapping (settings merged into the current ones) and
    /// problem type, and re-runs the sanity checks; refused while an experiment on
    /// it is queued or running.
    pub fn update_dataset(
        &self,
        name: &str,
        mapping: &Map<String, Value>,
        problem_type: Option<&str>,
    ) -> Result<DatasetRecord> {
        let mut record = self.dataset(name)?;
        let users = self.active_users(name)?;
        if !users.is_empty() {
            return Err(StudioError::Conflict(format!(
                "dataset {name:?} is in use by {}; edit it when they have ended",
                users.join(", ")
            )));
        }
        if let Some(problem_type) = problem_type {
            if !PROBLEM_TYPES.contains(&problem_type) {
                return Err(StudioError::Invalid(format!(
                    "problem type {problem_type:?}: this Lathe trains {}",
                    PROBLEM_TYPES.join(", ")
                )));
            }
            record.problem_type = problem_type.to_string();
        }
        let mut merged = record.mapping.clone();
        merged.extend(mapping.clone());
        let train = self.dataset_train_path(&record);
        let config = config_for(&train, &merged)?;
        let table = Table::read(&train)?;
        (record.samples, record.validation) = validate(&table, &config);
        record.mapping = merged;
        self.db().update_dataset(&record)?;
        Ok(record)
    }

    /// Deletes a dataset (folder and row); refused while an experiment on it is
    /// queued or running.
    pub fn delete_dataset(&self, name: &str) -> Result<()> {
        self.dataset(name)?;
        let users = self.active_users(name)?;
        if !users.is_empty() {
            return Err(StudioError::Conflict(format!(
                "dataset {name:?} is in use by {}; stop them first",
                users.join(", ")
            )));
        }
        let dir = self.dataset_dir(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(crate::error::io(&dir))?;
        }
        self.db().delete_dataset(name)
    }

    fn dataset_table(&self, name: &str) -> Result<(DatasetRecord, Table, Config)> {
        let record = self.dataset(name)?;
        let train = self.dataset_train_path(&record);
        let table = Table::read(&train)?;
        let config = config_for(&train, &record.mapping)?;
        Ok((record, table, config))
    }

    /// Rows `offset..offset + limit` of the training file.
    pub fn dataset_rows(&self, name: &str, offset: usize, limit: usize) -> Result<RowsPage> {
        let (_, table, _) = self.dataset_table(name)?;
        Ok(RowsPage {
            total: table.rows.len(),
            rows: table
                .rows
                .iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect(),
            columns: table.columns,
            offset,
        })
    }

    /// Samples `offset..offset + limit` as conversations, under the mapping.
    pub fn dataset_conversations(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Conversation>, usize)> {
        let (_, table, config) = self.dataset_table(name)?;
        let set = read_samples(&table, &config.dataset)?;
        let total = set.samples.len();
        let conversations = set
            .samples
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|s| Conversation {
                row: s.row,
                system: s.system.map(|t| t.to_string()),
                turns: s
                    .turns
                    .iter()
                    .map(|t| ConversationTurn {
                        row: t.row,
                        prompt: t.prompt.to_string(),
                        answer: t.answer.to_string(),
                    })
                    .collect(),
            })
            .collect();
        Ok((conversations, total))
    }

    /// Counts and length distributions (in words) under the mapping.
    pub fn dataset_statistics(&self, name: &str) -> Result<DatasetStats> {
        let (_, table, config) = self.dataset_table(name)?;
        Ok(statistics(&table, &config.dataset, None)?)
    }
}
