//! Errors of the model layer. Every variant names the file, tensor or value at fault.

use std::path::PathBuf;

/// Result alias of the model layer.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// What can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exists but its content is not what its format promises.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// `config.json` names an architecture Lathe does not implement.
    #[error("{path}: unsupported architecture `{name}`; supported: {supported}")]
    UnsupportedArchitecture {
        /// The config file.
        path: PathBuf,
        /// The architecture named there.
        name: String,
        /// The architectures Lathe implements.
        supported: String,
    },
    /// A tensor of the checkpoint is missing or has the wrong shape.
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        /// The weight file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be built or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A prompt the model cannot take: empty, or with ids outside its vocabulary.
    #[error("prompt: {0}")]
    Prompt(String),
    /// A prompt does not fit into the model's context window.
    #[error("the prompt has {tokens} tokens, more than the model's context of {context} tokens")]
    ContextOverflow {
        /// Tokens in the prompt.
        tokens: usize,
        /// The model's `max_position_embeddings`.
        context: usize,
    },
    /// A model reference could not be resolved on disk or on the Hub.
    #[error("{0}")]
    Resolve(String),
    /// A training setting does not fit the model.
    #[error("{0}")]
    Training(String),
    /// A generation setting is out of range.
    #[error("generation setting `{name}`: {message}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// Why it is refused.
        message: String,
    },
}

impl ModelError {
    /// A [`ModelError::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A [`ModelError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
