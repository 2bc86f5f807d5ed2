//! Lathe's studio: the workspace on disk (`datasets/`, `experiments/`, `lathe.db`),
//! the SQLite registry, the queue of training workers (separate `lathe train`
//! processes), app settings and secrets, and system statistics. The HTTP server is
//! a face over this crate; run folders stay the truth about runs.

mod datasets;
mod downloads;
mod error;
mod experiments;
mod names;
mod process;
pub mod registry;
pub mod runs;
mod secrets;
mod system;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lathe_config::Config;
use serde_json::{Map, Value};

pub use datasets::{Conversation, ConversationTurn, DatasetSource, RowsPage};
pub use downloads::{Archive, DownloadKind};
pub use error::{Result, StudioError};
pub use experiments::{
    flat_settings, Comparison, ExperimentDetail, ExperimentSummary, NewExperiment, SettingRow,
};
pub use names::{check_name, sanitize};
pub use registry::{DatasetRecord, ExperimentRecord, Registry};
pub use secrets::{SecretsView, SECRET_NAMES};
pub use system::{available_memory, system_stats, Gpu, SystemStats};

/// How the studio runs.
#[derive(Debug, Clone)]
pub struct StudioOptions {
    /// The workspace folder.
    pub root: PathBuf,
    /// The `lathe` binary that runs workers (`lathe train …`).
    pub worker: PathBuf,
    /// Experiments that may train at once (CPU slots).
    pub max_jobs: usize,
    /// How long a stopped worker may take to save and exit before it is killed.
    pub stop_grace: Duration,
}

/// An open workspace.
pub struct Studio {
    options: StudioOptions,
    registry: Mutex<Registry>,
    exits: process::Exits,
    stopping: Mutex<HashSet<String>>,
    ticking: Mutex<()>,
}

impl Studio {
    /// Opens (creating) the workspace and reconciles the registry with the run
    /// folders: a run whose worker is gone is marked as its status file says, or
    /// `failed` ("worker exited").
    pub fn open(options: StudioOptions) -> Result<Self> {
        for dir in ["datasets", "experiments", "uploads"] {
            let path = options.root.join(dir);
            std::fs::create_dir_all(&path).map_err(error::io(&path))?;
        }
        let registry = Registry::open(&options.root.join("lathe.db"))?;
        let studio = Self {
            options,
            registry: Mutex::new(registry),
            exits: Default::default(),
            stopping: Default::default(),
            ticking: Mutex::new(()),
        };
        studio.clear_exports();
        studio.tick()?;
        Ok(studio)
    }

    /// The workspace folder.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// The options it runs with.
    pub fn options(&self) -> &StudioOptions {
        &self.options
    }

    /// A folder for uploads in progress (removed once imported).
    pub fn uploads_dir(&self) -> PathBuf {
        self.options.root.join("uploads")
    }

    fn db(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dataset_dir(&self, name: &str) -> PathBuf {
        self.options.root.join("datasets").join(name)
    }

    /// The run folder of experiment `name`.
    pub fn experiment_dir(&self, name: &str) -> PathBuf {
        self.options.root.join("experiments").join(name)
    }
}

/// Applies `group.key` → JSON value settings to `config`; an unknown key or a value
/// out of range is an error naming it.
pub fn apply_settings(config: &mut Config, settings: &Map<String, Value>) -> Result<()> {
    for (key, value) in settings {
        let value = serde_yaml_ng::to_value(value)
            .map_err(|e| StudioError::Invalid(format!("setting `{key}`: {e}")))?;
        if !config.set_checked(key, &value, "request")? {
            return Err(StudioError::Invalid(format!(
                "unknown setting `{key}` (GET /api/schema lists every setting)"
            )));
        }
    }
    Ok(())
}
