//! Data errors: each names the file and, where it applies, the row and column.

use std::path::{Path, PathBuf};

/// Why data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's content is malformed; `row` counts data rows from 1.
    #[error("{path}{}: {message}", row.map(|r| format!(", row {r}")).unwrap_or_default())]
    Format {
        path: PathBuf,
        row: Option<usize>,
        message: String,
    },
    /// A configured column does not exist.
    #[error("{path}: no column `{column}` (setting {setting}); the file has: {}", available.join(", "))]
    MissingColumn {
        path: PathBuf,
        column: String,
        setting: String,
        available: Vec<String>,
    },
    /// A required value is empty.
    #[error("{path}, row {row}, column `{column}`: {message}")]
    Value {
        path: PathBuf,
        row: usize,
        column: String,
        message: String,
    },
    /// Tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed.
    #[error("chat template: {0}")]
    Template(String),
    /// The settings do not fit the data.
    #[error("{0}")]
    Setting(String),
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// The same error with a path under `from` named relative to it instead (for
    /// files checked in a staging folder that the user never sees).
    pub(crate) fn relative_to(mut self, from: &Path) -> Self {
        let path = match &mut self {
            DataError::Io { path, .. }
            | DataError::Format { path, .. }
            | DataError::MissingColumn { path, .. }
            | DataError::Value { path, .. } => path,
            _ => return self,
        };
        if let Ok(relative) = path.strip_prefix(from) {
            *path = relative.to_path_buf();
        }
        self
    }
}
