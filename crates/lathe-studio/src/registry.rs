//! The SQLite registry: an index of datasets, experiments and app settings. Run
//! folders stay the truth about runs; the registry is reconciled with them.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Result, StudioError};

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &["
CREATE TABLE datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    files TEXT NOT NULL,
    train_file TEXT NOT NULL,
    problem_type TEXT NOT NULL,
    mapping TEXT NOT NULL,
    columns TEXT NOT NULL,
    rows INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    validation TEXT,
    created REAL NOT NULL
);
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    device TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"];

/// A dataset as the registry knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetRecord {
    /// Unique name (its folder under `datasets/`).
    pub name: String,
    /// Data files in its folder.
    pub files: Vec<String>,
    /// The file experiments train on.
    pub train_file: String,
    /// Problem type the mapping is for.
    pub problem_type: String,
    /// Column mapping as settings (`dataset.prompt_column` …).
    #[schema(value_type = Object)]
    pub mapping: serde_json::Map<String, serde_json::Value>,
    /// Columns of the training file.
    pub columns: Vec<String>,
    /// Data rows of the training file.
    pub rows: u64,
    /// Samples the mapping makes (0 when it does not validate).
    pub samples: u64,
    /// Why the sanity checks failed; `None` when the mapping is valid.
    pub validation: Option<String>,
    /// Seconds since the Unix epoch.
    pub created: f64,
}

/// An experiment as the registry knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExperimentRecord {
    /// Unique name (its folder under `experiments/`).
    pub name: String,
    /// Dataset it trains on.
    pub dataset: String,
    /// `created`, `queued`, `running`, `finished`, `stopped` or `failed`.
    pub status: String,
    /// Runtime, or the reason of a failure or stop.
    pub info: String,
    /// Worker process id while it runs.
    pub pid: Option<u32>,
    /// Where it runs (`cpu`).
    pub device: String,
    /// Seconds since the Unix epoch.
    pub created: f64,
    /// When its worker last started.
    pub started: Option<f64>,
    /// When it last ended.
    pub finished: Option<f64>,
}

/// The open registry.
pub struct Registry {
    conn: Connection,
}

fn json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn dataset_row(row: &Row) -> rusqlite::Result<DatasetRecord> {
    Ok(DatasetRecord {
        name: row.get("name")?,
        files: json_list(row.get("files")?),
        train_file: row.get("train_file")?,
        problem_type: row.get("problem_type")?,
        mapping: serde_json::from_str(&row.get::<_, String>("mapping")?).unwrap_or_default(),
        columns: json_list(row.get("columns")?),
        rows: row.get("rows")?,
        samples: row.get("samples")?,
        validation: row.get("validation")?,
        created: row.get("created")?,
    })
}

fn experiment_row(row: &Row) -> rusqlite::Result<ExperimentRecord> {
    Ok(ExperimentRecord {
        name: row.get("name")?,
        dataset: row.get("dataset")?,
        status: row.get("status")?,
        info: row.get("info")?,
        pid: row.get("pid")?,
        device: row.get("device")?,
        created: row.get("created")?,
        started: row.get("started")?,
        finished: row.get("finished")?,
    })
}

const EXPERIMENT_COLUMNS: &str =
    "name, dataset, status, info, pid, device, created, started, finished";

impl Registry {
    /// Opens (creating) the database at `path` in WAL mode and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            return Err(StudioError::Internal(format!(
                "{}: schema version {version} is newer than this Lathe knows ({}); use a newer Lathe",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }

    /// Schema version in use.
    pub fn version(&self) -> Result<usize> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Adds a dataset; a duplicate name is a conflict.
    pub fn insert_dataset(&self, d: &DatasetRecord) -> Result<()> {
        let mapping = serde_json::Value::Object(d.mapping.clone()).to_string();
        self.conn
            .execute(
                "INSERT INTO datasets (name, files, train_file, problem_type, mapping, columns, rows, samples, validation, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    d.name,
                    serde_json::to_string(&d.files).unwrap_or_default(),
                    d.train_file,
                    d.problem_type,
                    mapping,
                    serde_json::to_string(&d.columns).unwrap_or_default(),
                    d.rows,
                    d.samples,
                    d.validation,
                    d.created
                ],
            )
            .map_err(|e| unique_violation(e, "dataset", &d.name))?;
        Ok(())
    }

    /// Replaces a dataset's mapping, problem type and validation result.
    pub fn update_dataset(&self, d: &DatasetRecord) -> Result<()> {
        let mapping = serde_json::Value::Object(d.mapping.clone()).to_string();
        self.conn.execute(
            "UPDATE datasets SET problem_type = ?2, mapping = ?3, samples = ?4, validation = ?5 WHERE name = ?1",
            params![d.name, d.problem_type, mapping, d.samples, d.validation],
        )?;
        Ok(())
    }

    /// A dataset by name.
    pub fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM datasets WHERE name = ?1",
                [name],
                dataset_row,
            )
            .optional()?)
    }

    /// Every dataset, newest first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM datasets ORDER BY created DESC, id DESC")?;
        let rows = stmt.query_map([], dataset_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes a dataset's row.
    pub fn delete_dataset(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM datasets WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Adds an experiment; a duplicate name is a conflict.
    pub fn insert_experiment(&self, e: &ExperimentRecord, config: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO experiments (name, dataset, config, status, info, pid, device, created, started, finished)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.name, e.dataset, config, e.status, e.info, e.pid, e.device, e.created,
                    e.started, e.finished
                ],
            )
            .map_err(|err| unique_violation(err, "experiment", &e.name))?;
        Ok(())
    }

    /// An experiment by name.
    pub fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1");
        Ok(self
            .conn
            .query_row(&sql, [name], experiment_row)
            .optional()?)
    }

    /// Every experiment, oldest first (the queue order).
    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let sql = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY created, id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([], experiment_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes an experiment's state (status, info, pid, times).
    pub fn update_experiment(&self, e: &ExperimentRecord) -> Result<()> {
        self.conn.execute(
            "UPDATE experiments SET status = ?2, info = ?3, pid = ?4, started = ?5, finished = ?6 WHERE name = ?1",
            params![e.name, e.status, e.info, e.pid, e.started, e.finished],
        )?;
        Ok(())
    }

    /// Renames an experiment's row.
    pub fn rename_experiment(&self, name: &str, new_name: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE experiments SET name = ?2 WHERE name = ?1",
                params![name, new_name],
            )
            .map_err(|e| unique_violation(e, "experiment", new_name))?;
        Ok(())
    }

    /// Removes an experiment's row.
    pub fn delete_experiment(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM experiments WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Every app setting (`key` → JSON value).
    pub fn settings(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let mut stmt = self.conn.prepare("SELECT key, value FROM settings")?;
        let rows = stmt.query_map([], |r| {
            let value: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                serde_json::from_str(&value).unwrap_or(serde_json::Value::Null),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets app settings in one transaction.
    pub fn set_settings(
        &mut self,
        values: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (key, value) in values {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn unique_violation(e: rusqlite::Error, what: &str, name: &str) -> StudioError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StudioError::Conflict(format!("a {what} named {name:?} already exists"))
        }
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lathe.db");
        let r = Registry::open(&path).unwrap();
        assert_eq!(r.version().unwrap(), MIGRATIONS.len());
        let mode: String = r
            .conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(r);
        let r = Registry::open(&path).unwrap();
        r.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(r);
        let err = Registry::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn duplicate_names_are_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(&dir.path().join("lathe.db")).unwrap();
        let e = ExperimentRecord {
            name: "a".into(),
            dataset: "d".into(),
            status: "created".into(),
            info: String::new(),
            pid: None,
            device: "cpu".into(),
            created: 1.0,
            started: None,
            finished: None,
        };
        r.insert_experiment(&e, "").unwrap();
        let err = r.insert_experiment(&e, "").unwrap_err();
        assert!(matches!(err, StudioError::Conflict(_)), "{err}");
    }
}
