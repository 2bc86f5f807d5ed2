//! The run folder: `cfg.yaml`, `logs.log`, `events.jsonl`, `status.json`, checkpoints.
//! Every file is written so that a reader (the CLI, the studio) never sees half of it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::error::{Result, TrainError};

/// A run's folder.
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
    log: File,
    events: File,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::io(path, e)
    })
}

impl RunDir {
    /// Opens (creating) the folder; logs and events are appended to.
    pub fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            log: append(&path.join("logs.log"))?,
            events: append(&path.join("events.jsonl"))?,
        })
    }

    /// Writes a line to `logs.log` and to stderr.
    pub fn log(&mut self, line: &str) {
        eprintln!("{line}");
        let _ = writeln!(self.log, "{:.3} {line}", now());
    }

    /// Writes a line to `logs.log` only (the caller reports it elsewhere).
    pub fn log_file(&mut self, line: &str) {
        let _ = writeln!(self.log, "{:.3} {line}", now());
    }

    /// Appends one event (a JSON object) to `events.jsonl`.
    pub fn event(&mut self, event: Value) {
        let _ = writeln!(self.events, "{event}");
        let _ = self.events.flush();
    }

    /// Sets `status.json`: `running`, `finished`, `failed` or `stopped`, with a reason.
    pub fn status(&self, status: &str, info: &str) -> Result<()> {
        let body =
            json!({"status": status, "info": info, "pid": std::process::id(), "time": now()});
        write_atomic(&self.path.join("status.json"), body.to_string().as_bytes())
    }
}

/// Reads a run's `status.json`.
pub fn read_status(run: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).ok()?).ok()
}
