//! Downloads of an experiment as zip archives, built on demand in the workspace's
//! `exports/` folder: the merged model, the adapter, a GGUF file, the validation
//! predictions, or the logs with the configuration. An archive is written under a
//! temporary name and renamed when complete; a failure (a full disk) removes
//! everything it wrote.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lathe_train::export::{export_run, ExportFormat, ExportOptions, GgufQuant};
use lathe_train::TrainError;
use serde::Deserialize;
use utoipa::ToSchema;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::error::{io, Result, StudioError};
use crate::Studio;

/// What to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DownloadKind {
    /// The merged model as a Hugging Face folder.
    Model,
    /// The LoRA adapter in PEFT's layout.
    Adapter,
    /// The merged model as a GGUF file.
    Gguf,
    /// `validation_predictions.csv`.
    Predictions,
    /// `cfg.yaml`, the logs, the events and the status.
    Logs,
}

impl DownloadKind {
    fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Adapter => "adapter",
            Self::Gguf => "gguf",
            Self::Predictions => "predictions",
            Self::Logs => "logs",
        }
    }
}

/// A finished archive: its path (the caller streams and removes it) and the file name
/// to offer.
#[derive(Debug)]
pub struct Archive {
    /// Where the archive lies.
    pub path: PathBuf,
    /// `<experiment>-<kind>.zip`.
    pub file_name: String,
}

/// The run files in a logs archive, when present.
const LOG_FILES: [&str; 5] = [
    "cfg.yaml",
    "logs.log",
    "worker.log",
    "events.jsonl",
    "status.json",
];

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Studio {
    /// The folder archives are built in.
    pub fn exports_dir(&self) -> PathBuf {
        self.root().join("exports")
    }

    /// Builds the `kind` archive of experiment `name` (`quant` for GGUF, default F16).
    pub fn build_download(
        &self,
        name: &str,
        kind: DownloadKind,
        quant: Option<GgufQuant>,
    ) -> Result<Archive> {
        let record = self.experiment_record(name)?;
        let run = self.experiment_dir(name);
        let format = match kind {
            DownloadKind::Model => Some(ExportFormat::Hf),
            DownloadKind::Adapter => Some(ExportFormat::Peft),
            DownloadKind::Gguf => Some(ExportFormat::Gguf),
            DownloadKind::Predictions | DownloadKind::Logs => None,
        };
        if format.is_some() && matches!(record.status.as_str(), "queued" | "running") {
            return Err(StudioError::Conflict(format!(
                "experiment {name} is {}; stop it or wait until it ends to download its model",
                record.status
            )));
        }
        let exports = self.exports_dir();
        std::fs::create_dir_all(&exports).map_err(io(&exports))?;
        let unique = format!(
            "{name}-{}-{}-{}",
            kind.name(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let staging = exports.join(&unique);
        let partial = exports.join(format!("{unique}.zip.partial"));
        let built = (|| {
            let files: Vec<(String, PathBuf)> = match format {
                Some(format) => {
                    let options = ExportOptions {
                        quant,
                        ..ExportOptions::new(format)
                    };
                    export_run(&run, &staging, &options)
                        .map_err(|e| match e {
                            // The disk or the workspace failed; the rest is the run's state.
                            TrainError::Io { .. } => StudioError::Internal(e.to_string()),
                            e => StudioError::Conflict(e.to_string()),
                        })?
                        .into_iter()
                        .map(|f| (f.clone(), staging.join(f)))
                        .collect()
                }
                None if kind == DownloadKind::Predictions => {
                    let file = run.join("validation_predictions.csv");
                    if !file.is_file() {
                        return Err(StudioError::NotFound(format!(
                            "experiment {name} has no validation predictions (yet)"
                        )));
                    }
                    vec![("validation_predictions.csv".into(), file)]
                }
                None => LOG_FILES
                    .iter()
                    .map(|f| (f.to_string(), run.join(f)))
                    .filter(|(_, p)| p.is_file())
                    .collect(),
            };
            write_zip(&partial, &files)?;
            let path = exports.join(format!("{unique}.zip"));
            std::fs::rename(&partial, &path).map_err(io(&path))?;
            Ok(path)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        match built {
            Ok(path) => Ok(Archive {
                path,
                file_name: format!("{name}-{}.zip", kind.name()),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    /// Removes archives left by a server that stopped while building or sending them.
    pub(crate) fn clear_exports(&self) {
        let _ = std::fs::remove_dir_all(self.exports_dir());
    }
}

/// Writes `files` (archive name, path) into a zip at `path`: weights stored as they
/// are (they do not compress), text deflated.
fn write_zip(path: &Path, files: &[(String, PathBuf)]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let fail = |e: zip::result::ZipError| {
        StudioError::Internal(format!("{}: cannot write the archive: {e}", path.display()))
    };
    for (name, source) in files {
        let binary = [".safetensors", ".gguf"].iter().any(|e| name.ends_with(e));
        let options = SimpleFileOptions::default()
            .compression_method(if binary {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            })
            .large_file(std::fs::metadata(source).map_err(io(source))?.len() >= u32::MAX as u64);
        zip.start_file(name.as_str(), options).map_err(fail)?;
        let mut input = std::fs::File::open(source).map_err(io(source))?;
        std::io::copy(&mut input, &mut zip).map_err(io(path))?;
    }
    let mut out = zip.finish().map_err(fail)?;
    out.flush().map_err(io(path))
}
