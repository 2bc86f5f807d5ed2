//! Tables of text read from CSV, Parquet, JSON (an array of objects) and JSONL files.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{DataError, Result};

/// Rows of optional text cells under named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from.
    pub path: PathBuf,
    /// Column names in file order.
    pub columns: Vec<String>,
    /// Cells, one `Vec` per row in column order; `None` for a missing value.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// Reads a table, choosing the reader by the file extension (any case).
    pub fn read(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let table = match ext.as_str() {
            "csv" => read_csv(path)?,
            "parquet" | "pq" => read_parquet(path)?,
            "json" => read_json(path)?,
            "jsonl" | "ndjson" => read_jsonl(path)?,
            _ => {
                return Err(format_error(
                    path,
                    None,
                    "unsupported file type; use .csv, .parquet/.pq, .json or .jsonl".into(),
                ))
            }
        };
        if table.rows.is_empty() {
            return Err(format_error(path, None, "the file has no data rows".into()));
        }
        Ok(table)
    }

    /// The index of `column`, or an error listing the columns that exist.
    pub fn column_index(&self, column: &str, setting: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.clone(),
                column: column.to_string(),
                setting: setting.to_string(),
                available: self.columns.clone(),
            })
    }
}

fn format_error(path: &Path, row: Option<usize>, message: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        row,
        message,
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_csv(path: &Path) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(open(path)?);
    let csv_error = |e: csv::Error| {
        let row = e.position().map(|p| p.record() as usize);
        let message = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "text is not valid UTF-8".to_string(),
            _ => e.to_string(),
        };
        format_error(path, row, message)
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        rows.push(
            record
                .iter()
                .map(|cell| (!cell.is_empty()).then(|| cell.to_string()))
                .collect(),
        );
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
    })
}

/// Builds a table from JSON objects; columns in order of first appearance.
fn from_objects(path: &Path, objects: Vec<(usize, Value)>) -> Result<Table> {
    let mut columns: Vec<String> = Vec::new();
    let mut maps = Vec::with_capacity(objects.len());
    for (row, value) in objects {
        let Value::Object(map) = value else {
            return Err(format_error(
                path,
                Some(row),
                "expected a JSON object".into(),
            ));
        };
        for key in map.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
        maps.push(map);
    }
    let rows = maps
        .into_iter()
        .map(|map| {
            columns
                .iter()
                .map(|c| match map.get(c) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
    })
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        format_error(path, None, format!("line {line}: text is not valid UTF-8"))
    })
}

fn read_json(path: &Path) -> Result<Table> {
    let text = read_text(path)?;
    let value: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| format_error(path, None, format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(format_error(
            path,
            None,
            "expected a JSON array of objects (one per row)".into(),
        ));
    };
    from_objects(
        path,
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect(),
    )
}

fn read_jsonl(path: &Path) -> Result<Table> {
    let text = read_text(path)?;
    let mut objects = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(line)
            .map_err(|e| format_error(path, Some(i + 1), format!("invalid JSON: {e}")))?;
        objects.push((i + 1, value));
    }
    from_objects(path, objects)
}

fn read_parquet(path: &Path) -> Result<Table> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let parquet_error = |e: parquet::errors::ParquetError| format_error(path, None, e.to_string());
    let reader = SerializedFileReader::new(open(path)?).map_err(parquet_error)?;
    let columns: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).map_err(parquet_error)? {
        let row = row.map_err(parquet_error)?;
        let mut cells = vec![None; columns.len()];
        for (name, field) in row.get_column_iter() {
            let Some(i) = columns.iter().position(|c| c == name) else {
                continue;
            };
            cells[i] = match field {
                Field::Null => None,
                Field::Str(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
        }
        rows.push(cells);
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
    })
}
