//! Training errors.

use std::path::{Path, PathBuf};

/// Why a run could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file of the run could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The settings.
    #[error(transparent)]
    Config(#[from] lathe_config::ConfigError),
    /// The data.
    #[error(transparent)]
    Data(#[from] lathe_data::DataError),
    /// The model.
    #[error(transparent)]
    Model(#[from] lathe_model::ModelError),
    /// A setting or state that does not allow training.
    #[error("{0}")]
    Invalid(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged at step {0} (loss is not finite); the last good checkpoint is kept"
    )]
    Diverged(u64),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
