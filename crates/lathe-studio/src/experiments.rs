//! Experiments: created from a dataset and settings (or an H2O `cfg.yaml`), queued,
//! run by workers, stopped, resumed, renamed, cloned, deleted, compared; grid search.

use std::path::Path;
use std::time::{Duration, Instant};

use lathe_config::Config;
use lathe_data::{read_samples, Table};
use lathe_train::estimate::{estimate, Estimate};
use lathe_train::insights::{training_tokens, SampleTokens};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{io, Result, StudioError};
use crate::registry::{DatasetRecord, ExperimentRecord};
use crate::runs::{self, Charts, Progress};
use crate::{apply_settings, check_name, process, sanitize, Studio};

/// What makes a new experiment.
#[derive(Debug, Clone, Default)]
pub struct NewExperiment {
    /// Unique name.
    pub name: String,
    /// Dataset to train on.
    pub dataset: String,
    /// Settings as `group.key` → value, over the YAML and the dataset's mapping.
    pub settings: Map<String, Value>,
    /// An experiment file (H2O LLM Studio's `cfg.yaml`) to start from.
    pub yaml: Option<String>,
    /// Queue it at once.
    pub start: bool,
}

/// An experiment in a list: its registry row, what it trains, and where it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentSummary {
    /// Registry row.
    #[serde(flatten)]
    pub record: ExperimentRecord,
    /// Backbone.
    pub backbone: String,
    /// Progress and latest metrics.
    pub progress: Progress,
    /// Whether a checkpoint exists (chat, resume and clone with weights need one).
    pub has_checkpoint: bool,
}

/// An experiment in full.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentDetail {
    /// Summary.
    #[serde(flatten)]
    pub summary: ExperimentSummary,
    /// Every setting as `group.key` → value.
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// The run folder's `cfg.yaml`.
    pub config_yaml: String,
    /// Chart series.
    pub charts: Charts,
    /// Warnings noticed when it was made (unknown keys of an imported `cfg.yaml`).
    pub warnings: Vec<String>,
}

/// Experiments a grid search may make at most.
const MAX_GRID: usize = 100;

/// Settings that name or place a run: not compared when de-duplicating a grid.
const IDENTITY_KEYS: &[&str] = &["experiment_name", "output_directory"];

/// Every setting of `config` as `group.key` → JSON value.
pub fn flat_settings(config: &Config) -> Map<String, Value> {
    Config::schema()
        .iter()
        .map(|spec| {
            let value = config.get(&spec.path()).unwrap_or_default();
            (
                spec.path(),
                serde_json::to_value(value).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The settings that take effect: those that do not apply (LoRA rank with LoRA
/// off) are reset, so that configurations differing only there compare equal.
fn effective(config: &Config) -> Config {
    let mut out = config.clone();
    for spec in Config::schema() {
        if IDENTITY_KEYS.contains(&spec.key) || !config.applies(&spec) {
            let _ = out.set_checked(&spec.path(), &spec.default, "defaults");
        }
    }
    out
}

fn load_config(run: &Path) -> Result<Config> {
    Ok(Config::from_yaml_file(&run.join("cfg.yaml"))?.config)
}

fn has_checkpoint(run: &Path) -> bool {
    lathe_train::checkpoint::latest(run).is_some()
}

impl Studio {
    /// How worker `pid` ended, as its waiter thread recorded it. A killed worker can be
    /// seen gone a moment before its waiter has written why, so this waits up to 200 ms
    /// before answering that nothing is known (a worker from before a restart).
    fn exit_of(&self, pid: u32) -> Option<String> {
        for _ in 0..20 {
            if let Some(how) = self.exits.lock().ok()?.get(&pid).cloned() {
                return Some(how);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The configuration of a new experiment `name` in `dir` on `dataset`: defaults,
    /// the dataset's mapping, the YAML, the settings, then the data paths and name.
    fn build_config(
        &self,
        name: &str,
        dataset: &DatasetRecord,
        yaml: Option<&str>,
        settings: &Map<String, Value>,
    ) -> Result<(Config, Vec<String>)> {
        let mut config = Config::default();
        apply_settings(&mut config, &dataset.mapping)?;
        let warnings = match yaml {
            Some(text) => config
                .merge_yaml_str(text, "cfg.yaml")?
                .into_iter()
                .map(|k| format!("cfg.yaml: unknown setting `{k}` ignored"))
                .collect(),
            None => Vec::new(),
        };
        apply_settings(&mut config, settings)?;
        let dataset_dir = self.dataset_dir(&dataset.name);
        config.general.experiment_name = name.to_string();
        config.general.output_directory = self.experiment_dir(name).display().to_string();
        config.dataset.train_dataframe = self.dataset_train_path(dataset).display().to_string();
        if config.dataset.validation_strategy == "custom" {
            let file = config
                .dataset
                .validation_dataframe
                .clone()
                .unwrap_or_default();
            let path = dataset_dir.join(Path::new(&file).file_name().unwrap_or_default());
            if file.is_empty() || !path.is_file() {
                return Err(StudioError::Invalid(format!(
                    "dataset.validation_dataframe {file:?}: validation_strategy custom needs one of the dataset's files: {}",
                    dataset.files.join(", ")
                )));
            }
            config.dataset.validation_dataframe = Some(path.display().to_string());
        }
        config.validate()?;
        Ok((config, warnings))
    }

    /// A rough memory and time estimate of a new experiment on `dataset` with `yaml`
    /// and `settings`, before it is created.
    pub fn estimate(
        &self,
        dataset: &str,
        yaml: Option<&str>,
        settings: &Map<String, Value>,
    ) -> Result<Estimate> {
        let record = self.dataset(dataset)?;
        let (config, _) = self.build_config("estimate", &record, yaml, settings)?;
        let stats = self.dataset_statistics(dataset)?;
        // About 1.4 tokens per word for English BPE vocabularies, plus the markers.
        let mean_tokens = stats.conversation_words.mean * 1.4 + 8.0;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = match config.environment.threads {
            0 => cores,
            n => (n as usize).min(cores),
        };
        estimate(&config, record.samples, mean_tokens, threads)
            .map_err(|e| StudioError::Invalid(e.to_string()))
    }

    /// Checks that the data makes samples under `config` (H2O's checks at start).
    fn check_data(&self, dataset: &DatasetRecord, config: &Config) -> Result<()> {
        if let Some(problem) = &dataset.validation {
            return Err(StudioError::Invalid(format!(
                "dataset {:?} fails its sanity checks: {problem}; fix its column mapping first",
                dataset.name
            )));
        }
        let table = Table::read(Path::new(&config.dataset.train_dataframe))?;
        let set = read_samples(&table, &config.dataset)?;
        if set.samples.is_empty() {
            return Err(StudioError::Invalid(format!(
                "dataset {:?} makes no samples with these settings",
                dataset.name
            )));
        }
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        check_name("experiment", name)?;
        if self.db().experiment(name)?.is_some() || self.experiment_dir(name).exists() {
            return Err(StudioError::Conflict(format!(
                "an experiment named {name:?} already exists"
            )));
        }
        Ok(())
    }

    /// Writes the run folder and the registry row of a checked configuration.
    fn insert_experiment(
        &self,
        name: &str,
        dataset: &str,
        config: &Config,
        start: bool,
        warnings: &[String],
    ) -> Result<ExperimentRecord> {
        let dir = self.experiment_dir(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let yaml = config.to_yaml();
        let write = || -> Result<()> {
            let cfg = dir.join("cfg.yaml");
            std::fs::write(&cfg, &yaml).map_err(io(&cfg))?;
            if !warnings.is_empty() {
                let path = dir.join("warnings.json");
                std::fs::write(&path, serde_json::to_string(warnings).unwrap_or_default())
                    .map_err(io(&path))?;
            }
            Ok(())
        };
        let record = ExperimentRecord {
            name: name.to_string(),
            dataset: dataset.to_string(),
            status: if start { "queued" } else { "created" }.into(),
            info: String::new(),
            pid: None,
            device: "cpu".into(),
            created: runs::now(),
            started: None,
            finished: None,
        };
        let result = write().and_then(|()| self.db().insert_experiment(&record, &yaml));
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        if start {
            self.tick()?;
        }
        Ok(record)
    }

    /// Creates an experiment; everything is checked before anything is written.
    pub fn create_experiment(&self, new: &NewExperiment) -> Result<ExperimentRecord> {
        self.check_new_name(&new.name)?;
        let dataset = self.dataset(&new.dataset)?;
        let (config, warnings) =
            self.build_config(&new.name, &dataset, new.yaml.as_deref(), &new.settings)?;
        self.check_data(&dataset, &config)?;
        self.insert_experiment(&new.name, &dataset.name, &config, new.start, &warnings)
    }

    /// Creates one experiment per combination of the `grid` values (Cartesian
    /// product over `base.settings`), skipping combinations that take the same
    /// effect as an earlier one, named `<base>_<key>_<value>` for each multi-valued
    /// setting. Everything is checked before anything is written.
    pub fn create_grid(
        &self,
        base: &NewExperiment,
        grid: &Map<String, Value>,
    ) -> Result<Vec<ExperimentRecord>> {
        check_name("experiment", &base.name)?;
        let dataset = self.dataset(&base.dataset)?;
        let mut axes: Vec<(&String, Vec<Value>)> = Vec::new();
        for (key, values) in grid {
            let values = match values {
                Value::Array(v) if !v.is_empty() => v.clone(),
                Value::Array(_) => {
                    return Err(StudioError::Invalid(format!("grid `{key}` has no values")))
                }
                single => vec![single.clone()],
            };
            axes.push((key, values));
        }
        let total: usize = axes.iter().map(|(_, v)| v.len()).product();
        if total > MAX_GRID {
            return Err(StudioError::Invalid(format!(
                "the grid makes {total} experiments; at most {MAX_GRID} at once"
            )));
        }
        let mut planned: Vec<(String, Config, Vec<String>)> = Vec::new();
        let mut seen: Vec<Config> = Vec::new();
        for index in 0..total {
            let mut settings = base.settings.clone();
            let mut name = base.name.clone();
            let mut rest = index;
            for (key, values) in &axes {
                let value = &values[rest % values.len()];
                rest /= values.len();
                settings.insert(key.to_string(), value.clone());
                if values.len() > 1 {
                    let short = key.rsplit('.').next().unwrap_or(key);
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    name = format!("{name}_{short}_{}", sanitize(&text));
                }
            }
            let (config, warnings) =
                self.build_config(&name, &dataset, base.yaml.as_deref(), &settings)?;
            let key = effective(&config);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            self.check_new_name(&name)?;
            planned.push((name, config, warnings));
        }
        if let Some((_, config, _)) = planned.first() {
            self.check_data(&dataset, config)?;
        }
        planned
            .iter()
            .map(|(name, config, warnings)| {
                self.insert_experiment(name, &dataset.name, config, base.start, warnings)
            })
            .collect()
    }

    /// An experiment's registry row.
    pub fn experiment_record(&self, name: &str) -> Result<ExperimentRecord> {
        self.db()
            .experiment(name)?
            .ok_or_else(|| StudioError::NotFound(format!("no experiment named {name:?}")))
    }

    /// The summary of `record` and its chart series, from one read of its run folder.
    fn summary_with(
        &self,
        record: ExperimentRecord,
        config: &Config,
    ) -> (ExperimentSummary, Charts) {
        let dir = self.experiment_dir(&record.name);
        let (progress, charts) =
            runs::summarize(&dir, &config.prediction.metric, record.status == "running");
        let summary = ExperimentSummary {
            backbone: config.general.llm_backbone.clone(),
            has_checkpoint: has_checkpoint(&dir),
            record,
            progress,
        };
        (summary, charts)
    }

    /// Every experiment with its progress, oldest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentSummary>> {
        let records = self.db().experiments()?;
        Ok(records
            .into_iter()
            .map(|r| {
                let config = load_config(&self.experiment_dir(&r.name)).unwrap_or_default();
                self.summary_with(r, &config).0
            })
            .collect())
    }

    /// Training samples `offset..offset + limit` of an experiment as the model sees
    /// them (tokens, roles, which carry loss), and how many there are.
    pub fn train_insights(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<SampleTokens>)> {
        self.experiment_record(name)?;
        let cfg = self.experiment_dir(name).join("cfg.yaml");
        let config = Config::from_yaml_file(&cfg)?.config;
        training_tokens(&config, offset, limit.min(50))
            .map_err(|e| StudioError::Invalid(e.to_string()))
    }

    /// One experiment in full.
    pub fn experiment(&self, name: &str) -> Result<ExperimentDetail> {
        let record = self.experiment_record(name)?;
        let dir = self.experiment_dir(name);
        let config_yaml = runs::read_text(&dir, "cfg.yaml")?;
        let config = Config::from_yaml_str(&config_yaml, "cfg.yaml")?.config;
        let (summary, charts) = self.summary_with(record, &config);
        let warnings = std::fs::read_to_string(dir.join("warnings.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(ExperimentDetail {
            summary,
            settings: flat_settings(&config),
            config_yaml,
            charts,
            warnings,
        })
    }

    fn set_state(&self, record: &mut ExperimentRecord, status: &str, info: &str) -> Result<()> {
        record.status = status.to_string();
        record.info = info.to_string();
        if runs::ENDED.contains(&status) {
            record.finished = Some(runs::now());
            record.pid = None;
        }
        self.db().update_experiment(record)
    }

    /// Queues a created, stopped or failed experiment: it continues from its last
    /// checkpoint when it has one, else starts over.
    pub fn start_experiment(&self, name: &str) -> Result<ExperimentRecord> {
        let mut record = self.experiment_record(name)?;
        match record.status.as_str() {
            "created" | "stopped" | "failed" => {}
            "finished" => {
                return Err(StudioError::Conflict(format!(
                    "experiment {name:?} has finished; clone it to train more"
                )))
            }
            other => {
                return Err(StudioError::Conflict(format!(
                    "experiment {name:?} is already {other}"
                )))
            }
        }
        self.set_state(&mut record, "queued", "")?;
        self.tick()?;
        self.experiment_record(name)
    }

    /// Like [`Studio::start_experiment`], but only from a checkpoint.
    pub fn resume_experiment(&self, name: &str) -> Result<ExperimentRecord> {
        self.experiment_record(name)?;
        if !has_checkpoint(&self.experiment_dir(name)) {
            return Err(StudioError::Conflict(format!(
                "experiment {name:?} has no checkpoint to resume from; start it over instead"
            )));
        }
        self.start_experiment(name)
    }

    /// Stops an experiment: a queued one at once; a running one is asked to stop
    /// after its current step (it saves a checkpoint) and killed if it has not ended
    /// after the grace period.
    pub fn stop_experiment(&self, name: &str) -> Result<ExperimentRecord> {
        let mut record = self.experiment_record(name)?;
        match (record.status.as_str(), record.pid) {
            ("created" | "queued", _) => {
                self.set_state(&mut record, "stopped", "stopped before it started")?
            }
            ("running", Some(pid)) => {
                self.stopping_set().insert(name.to_string());
                process::signal(pid, libc::SIGINT);
                let dir = self.experiment_dir(name);
                let grace = self.options.stop_grace;
                std::thread::spawn(move || {
                    let deadline = Instant::now() + grace;
                    while Instant::now() < deadline && process::alive(pid, &dir) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    if process::alive(pid, &dir) {
                        process::signal(pid, libc::SIGKILL);
                    }
                });
            }
            (other, _) => {
                return Err(StudioError::Conflict(format!(
                    "experiment {name:?} is {other}, not running"
                )))
            }
        }
        Ok(record)
    }

    fn stopping_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.stopping.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kills a running worker and waits (up to 10 s) until it is gone.
    fn kill_now(&self, record: &ExperimentRecord) {
        let Some(pid) = record.pid else { return };
        let dir = self.experiment_dir(&record.name);
        if record.status != "running" || !process::alive(pid, &dir) {
            return;
        }
        process::signal(pid, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && process::alive(pid, &dir) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Deletes an experiment: stops its worker, removes its folder and its row.
    pub fn delete_experiment(&self, name: &str) -> Result<()> {
        // No reconciliation may write into the folder while it goes.
        let _no_tick = self.ticking.lock().unwrap_or_else(|e| e.into_inner());
        let record = self.experiment_record(name)?;
        self.kill_now(&record);
        let dir = self.experiment_dir(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        self.db().delete_experiment(name)
    }

    /// Renames an experiment that is not queued or running (folder, `cfg.yaml`, row).
    pub fn rename_experiment(&self, name: &str, new_name: &str) -> Result<ExperimentRecord> {
        let record = self.experiment_record(name)?;
        if matches!(record.status.as_str(), "queued" | "running") {
            return Err(StudioError::Conflict(format!(
                "experiment {name:?} is {}; rename it when it has ended",
                record.status
            )));
        }
        self.check_new_name(new_name)?;
        let (from, to) = (self.experiment_dir(name), self.experiment_dir(new_name));
        let mut config = load_config(&from)?;
        config.general.experiment_name = new_name.to_string();
        config.general.output_directory = to.display().to_string();
        std::fs::rename(&from, &to).map_err(io(&from))?;
        let cfg = to.join("cfg.yaml");
        std::fs::write(&cfg, config.to_yaml()).map_err(io(&cfg))?;
        self.db().rename_experiment(name, new_name)?;
        self.experiment_record(new_name)
    }

    /// A new experiment `new_name` with the settings of `name`; with `with_weights`
    /// it starts from `name`'s trained weights (`architecture.pretrained_weights`).
    pub fn clone_experiment(
        &self,
        name: &str,
        new_name: &str,
        with_weights: bool,
        settings: &Map<String, Value>,
        start: bool,
    ) -> Result<ExperimentRecord> {
        let record = self.experiment_record(name)?;
        self.check_new_name(new_name)?;
        let source = self.experiment_dir(name);
        let mut config = load_config(&source)?;
        apply_settings(&mut config, settings)?;
        if with_weights {
            if !has_checkpoint(&source) {
                return Err(StudioError::Conflict(format!(
                    "experiment {name:?} has no checkpoint: clone it without weights"
                )));
            }
            config.architecture.pretrained_weights = source.display().to_string();
        }
        config.general.experiment_name = new_name.to_string();
        config.general.output_directory = self.experiment_dir(new_name).display().to_string();
        config.validate()?;
        self.insert_experiment(new_name, &record.dataset, &config, start, &[])
    }

    /// Chart series of several experiments, and their settings side by side.
    pub fn compare(&self, names: &[String]) -> Result<Comparison> {
        let mut series = Map::new();
        let mut configs = Vec::new();
        for name in names {
            self.experiment_record(name)?;
            let dir = self.experiment_dir(name);
            let config = load_config(&dir)?;
            let (_, charts) = runs::summarize(&dir, &config.prediction.metric, false);
            series.insert(
                name.clone(),
                serde_json::to_value(charts).unwrap_or(Value::Null),
            );
            configs.push(flat_settings(&config));
        }
        let settings = Config::schema()
            .iter()
            .map(|spec| {
                let path = spec.path();
                let values: Vec<Value> = configs
                    .iter()
                    .map(|c| c.get(&path).cloned().unwrap_or(Value::Null))
                    .collect();
                let differs = values.windows(2).any(|w| w[0] != w[1]);
                SettingRow {
                    key: path,
                    values,
                    differs,
                }
            })
            .collect();
        Ok(Comparison {
            names: names.to_vec(),
            series,
            settings,
        })
    }

    /// Brings the registry in line with the run folders and the workers, then
    /// starts queued experiments while slots are free. Called on open, after each
    /// action, and periodically by the server.
    pub fn tick(&self) -> Result<()> {
        let _one_at_a_time = self.ticking.lock().unwrap_or_else(|e| e.into_inner());
        let records = self.db().experiments()?;
        let mut running = 0;
        for mut record in records.iter().filter(|r| r.status == "running").cloned() {
            let dir = self.experiment_dir(&record.name);
            let started = record.started.unwrap_or(0.0);
            // A status file older than the worker's start is from an earlier run.
            let file = runs::read_status(&dir)
                .filter(|s| s["time"].as_f64().unwrap_or(0.0) >= started - 1.0);
            let file_status = file.as_ref().and_then(|s| s["status"].as_str());
            let file_info = file
                .as_ref()
                .and_then(|s| s["info"].as_str())
                .unwrap_or("")
                .to_string();
            let alive = record.pid.is_some_and(|pid| process::alive(pid, &dir));
            match file_status {
                Some(status) if runs::ENDED.contains(&status) => {
                    self.set_state(&mut record, status, &file_info)?;
                }
                _ if alive => running += 1,
                _ => {
                    let stopping = self.stopping_set().contains(&record.name);
                    let (status, info) = if stopping {
                        (
                            "stopped",
                            "stopped by the user (killed after the grace period)".to_string(),
                        )
                    } else {
                        // The exit record is waited for only when the worker left no error.
                        let reason = process::worker_error(&dir)
                            .or_else(|| record.pid.and_then(|pid| self.exit_of(pid)))
                            .unwrap_or_else(|| "worker exited".into());
                        ("failed", reason)
                    };
                    runs::write_status(&dir, status, &info)?;
                    self.set_state(&mut record, status, &info)?;
                }
            }
            if record.status != "running" {
                self.stopping_set().remove(&record.name);
            }
        }
        for mut record in records.into_iter().filter(|r| r.status == "queued") {
            if running >= self.options.max_jobs {
                break;
            }
            self.launch(&mut record)?;
            running += 1;
        }
        Ok(())
    }

    /// Starts the worker of a queued experiment: from its checkpoint when it has
    /// one, else from the beginning (earlier output removed).
    fn launch(&self, record: &mut ExperimentRecord) -> Result<()> {
        let dir = self.experiment_dir(&record.name);
        let resume = has_checkpoint(&dir);
        if !resume {
            for file in [
                "status.json",
                "events.jsonl",
                "logs.log",
                "validation_predictions.csv",
            ] {
                let _ = std::fs::remove_file(dir.join(file));
            }
        }
        match process::spawn(
            &self.options.worker,
            &dir,
            resume,
            &self.secret_env(),
            &self.exits,
        ) {
            Ok(pid) => {
                record.status = "running".into();
                record.info = String::new();
                record.pid = Some(pid);
                record.started = Some(runs::now());
                record.finished = None;
                self.db().update_experiment(record)
            }
            Err(e) => self.set_state(record, "failed", &e.to_string()),
        }
    }
}

/// Several experiments side by side.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comparison {
    /// The experiments, in the order asked.
    pub names: Vec<String>,
    /// Chart series per experiment.
    #[schema(value_type = Object)]
    pub series: Map<String, Value>,
    /// Every setting with each experiment's value.
    pub settings: Vec<SettingRow>,
}

/// One setting across compared experiments.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingRow {
    /// `group.key`.
    pub key: String,
    /// Values in the order of the experiments.
    #[schema(value_type = Vec<Object>)]
    pub values: Vec<Value>,
    /// Whether the values differ.
    pub differs: bool,
}
