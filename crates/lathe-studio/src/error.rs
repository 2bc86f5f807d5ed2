//! Studio errors, each of a kind that says whose fault it is (the HTTP layer maps
//! the kinds to status codes).

/// Why a studio action failed.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    /// The named dataset, experiment or file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The action conflicts with the current state (a duplicate name, a running job).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or its values are out of range.
    #[error("{0}")]
    Invalid(String),
    /// An upload is over the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The studio itself failed (disk, database).
    #[error("{0}")]
    Internal(String),
}

/// Result with [`StudioError`].
pub type Result<T> = std::result::Result<T, StudioError>;

impl From<rusqlite::Error> for StudioError {
    fn from(e: rusqlite::Error) -> Self {
        StudioError::Internal(format!("registry: {e}"))
    }
}

impl From<lathe_data::DataError> for StudioError {
    fn from(e: lathe_data::DataError) -> Self {
        StudioError::Invalid(e.to_string())
    }
}

impl From<lathe_config::ConfigError> for StudioError {
    fn from(e: lathe_config::ConfigError) -> Self {
        StudioError::Invalid(e.to_string())
    }
}

/// An I/O error on `path` as an internal error naming the path.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StudioError + '_ {
    move |e| StudioError::Internal(format!("{}: {e}", path.display()))
}
