//! Reading a run folder as its worker writes it: `status.json`, `events.jsonl`,
//! `logs.log`, `validation_predictions.csv`. The worker is the only writer, except
//! that the studio records the end of a worker that could not (it was killed).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::error::{io, Result, StudioError};

pub use lathe_train::run::{now, read_status};

/// Statuses after which a run's worker has ended.
pub const ENDED: &[&str] = &["finished", "failed", "stopped"];

/// Records `status` with `info` in `status.json` on behalf of a worker that ended
/// without doing so.
pub fn write_status(run: &Path, status: &str, info: &str) -> Result<()> {
    let body = json!({"status": status, "info": info, "time": now(), "written_by": "studio"});
    lathe_train::run::write_atomic(&run.join("status.json"), body.to_string().as_bytes())
        .map_err(|e| StudioError::Internal(e.to_string()))
}

/// Events from line `offset` on (at most `limit`), and the offset after them.
pub fn events(run: &Path, offset: usize, limit: usize) -> (Vec<Value>, usize) {
    let text = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
    // A line still being written has no newline yet: leave it for the next read.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let lines: Vec<&str> = complete.lines().skip(offset).take(limit).collect();
    let events = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (events, offset + lines.len())
}

/// The last `count` lines of `logs.log` (then of `worker.log`, where a worker that
/// failed before opening its log wrote).
pub fn log_tail(run: &Path, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for file in ["logs.log", "worker.log"] {
        let text = std::fs::read_to_string(run.join(file)).unwrap_or_default();
        lines.extend(text.lines().map(str::to_string));
        if file == "logs.log" && !lines.is_empty() {
            break;
        }
    }
    let skip = lines.len().saturating_sub(count);
    lines.split_off(skip)
}

/// Complete lines of `logs.log` after byte `offset`, and the offset after them.
pub fn log_from(run: &Path, offset: u64) -> (Vec<String>, u64) {
    let path = run.join("logs.log");
    let Ok(mut file) = std::fs::File::open(&path) else {
        return (Vec::new(), offset);
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return (Vec::new(), offset);
    }
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return (Vec::new(), offset);
    };
    let text = String::from_utf8_lossy(&bytes[..end]);
    (
        text.lines().map(str::to_string).collect(),
        offset + end as u64 + 1,
    )
}

/// One chart series: `(step, value)` points.
pub type Series = Vec<(f64, f64)>;

/// Where a run stands, from its events.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Progress {
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps planned.
    pub total_steps: u64,
    /// `step / total_steps`, 0 to 1.
    pub fraction: f64,
    /// Seconds left at the recent rate, while running.
    pub eta_seconds: Option<f64>,
    /// Epochs done (fractional).
    pub epoch: f64,
    /// Last training batch loss.
    pub train_loss: Option<f64>,
    /// Current learning rate.
    pub learning_rate: Option<f64>,
    /// Last validation loss.
    pub validation_loss: Option<f64>,
    /// Last validation metric (`prediction.metric`), named in `metric`.
    pub validation_metric: Option<f64>,
    /// Name of the validation metric.
    pub metric: String,
}

/// Chart series of a run.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Charts {
    /// Training batch loss per step.
    #[schema(value_type = Vec<[f64; 2]>)]
    pub train_loss: Series,
    /// Learning rate per step.
    #[schema(value_type = Vec<[f64; 2]>)]
    pub learning_rate: Series,
    /// Validation loss per validation.
    #[schema(value_type = Vec<[f64; 2]>)]
    pub validation_loss: Series,
    /// Validation metric per validation.
    #[schema(value_type = Vec<[f64; 2]>)]
    pub validation_metric: Series,
    /// Name of the validation metric.
    pub metric: String,
}

/// The metric value an event carries for `metric` (BLEU, Perplexity).
fn metric_value(event: &Value, metric: &str) -> Option<f64> {
    match metric {
        "BLEU" | "GPT" => event["bleu"].as_f64(),
        _ => event["perplexity"].as_f64(),
    }
}

/// Chart series and progress of a run, from all its events; `metric` names the
/// validation metric, `running` asks for an ETA. Points that a resumed run logs
/// again replace those of the attempt that was cut short.
pub fn summarize(run: &Path, metric: &str, running: bool) -> (Progress, Charts) {
    let (events, _) = events(run, 0, usize::MAX);
    let mut p = Progress {
        metric: metric.to_string(),
        ..Default::default()
    };
    let mut c = Charts {
        metric: metric.to_string(),
        ..Default::default()
    };
    // The rate counts steps since the worker (re)started.
    let mut started: Option<(f64, u64)> = None;
    let mut last_time = 0.0;
    for e in &events {
        let step = e["step"].as_u64().unwrap_or(0);
        match e["type"].as_str() {
            Some("start") => {
                p.total_steps = e["total_steps"].as_u64().unwrap_or(0);
                started = e["time"].as_f64().map(|t| (t, step));
                // A resumed run repeats the steps after its checkpoint: the points
                // logged past it belong to the lost attempt.
                for series in [
                    &mut c.train_loss,
                    &mut c.learning_rate,
                    &mut c.validation_loss,
                    &mut c.validation_metric,
                ] {
                    series.retain(|(s, _)| *s <= step as f64);
                }
            }
            Some("train") => {
                p.step = step;
                p.epoch = e["epoch"].as_f64().unwrap_or(p.epoch);
                p.train_loss = e["loss"].as_f64();
                p.learning_rate = e["lr"].as_f64();
                last_time = e["time"].as_f64().unwrap_or(last_time);
                if let Some(loss) = p.train_loss {
                    c.train_loss.push((step as f64, loss));
                }
                if let Some(lr) = p.learning_rate {
                    c.learning_rate.push((step as f64, lr));
                }
            }
            Some("validation") => {
                p.validation_loss = e["loss"].as_f64();
                p.validation_metric = metric_value(e, metric);
                if let Some(loss) = p.validation_loss {
                    c.validation_loss.push((step as f64, loss));
                }
                if let Some(m) = p.validation_metric {
                    c.validation_metric.push((step as f64, m));
                }
            }
            _ => {}
        }
    }
    if p.total_steps > 0 {
        p.fraction = (p.step as f64 / p.total_steps as f64).min(1.0);
    }
    if let (true, Some((t0, s0))) = (running, started) {
        let done = p.step.saturating_sub(s0);
        if done > 0 && last_time > t0 {
            let per_step = (last_time - t0) / done as f64;
            p.eta_seconds = Some(per_step * p.total_steps.saturating_sub(p.step) as f64);
        }
    }
    (p, c)
}

/// Rows of `validation_predictions.csv` as objects keyed by its header.
pub fn predictions(run: &Path) -> Result<Vec<serde_json::Map<String, Value>>> {
    let path = run.join("validation_predictions.csv");
    if !path.is_file() {
        return Err(StudioError::NotFound(
            "no validation predictions yet (they are written by validations with a generating metric such as BLEU)".into(),
        ));
    }
    let mut reader = csv::Reader::from_path(&path)
        .map_err(|e| StudioError::Internal(format!("{}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| StudioError::Internal(format!("{}: {e}", path.display())))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| StudioError::Internal(format!("{}: {e}", path.display())))?;
        rows.push(
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                .collect(),
        );
    }
    Ok(rows)
}

/// Reads a file of the run folder, or a not-found error naming it.
pub fn read_text(run: &Path, file: &str) -> Result<String> {
    let path = run.join(file);
    if !path.is_file() {
        return Err(StudioError::NotFound(format!(
            "no {file} in the run folder"
        )));
    }
    std::fs::read_to_string(&path).map_err(io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_replaces_the_steps_after_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let lines = [
            json!({"type": "start", "step": 0, "time": 0.0, "total_steps": 4}),
            json!({"type": "train", "step": 1, "time": 1.0, "loss": 3.0, "lr": 0.1}),
            json!({"type": "train", "step": 2, "time": 2.0, "loss": 2.0, "lr": 0.1}),
            json!({"type": "train", "step": 3, "time": 3.0, "loss": 9.0, "lr": 0.1}),
            // Killed after step 3; the checkpoint was at step 2.
            json!({"type": "start", "step": 2, "time": 10.0, "total_steps": 4}),
            json!({"type": "train", "step": 3, "time": 11.0, "loss": 1.5, "lr": 0.1}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("events.jsonl"), text).unwrap();
        let (p, c) = summarize(dir.path(), "Perplexity", true);
        assert_eq!(c.train_loss, [(1.0, 3.0), (2.0, 2.0), (3.0, 1.5)]);
        assert_eq!((p.step, p.total_steps, p.fraction), (3, 4, 0.75));
        // The rate counts from the restart: 1 step in 1 s, 1 step left.
        assert_eq!(p.eta_seconds, Some(1.0));
    }
}
