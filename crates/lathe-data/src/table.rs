//! Tables of text read from CSV, Parquet, JSON (an array of objects) and JSONL files,
//! on their own or inside a zip archive. Chat-shaped JSON (ShareGPT, OpenAI messages)
//! is converted to rows chained by `id`/`parent_id`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::archive;
use crate::convert::{chat_rows, text_of, Shape, CHAT_COLUMNS};
use crate::error::{DataError, Result};

/// Rows of optional text cells under named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file it was read from (`archive.zip/member.csv` for a zip member).
    pub path: PathBuf,
    /// Column names in file order.
    pub columns: Vec<String>,
    /// Cells, one `Vec` per row in column order; `None` for a missing value.
    pub rows: Vec<Vec<Option<String>>>,
    /// The shape the records had before they became rows.
    pub shape: Shape,
}

/// How to read a file; the defaults work out everything from the file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// CSV field delimiter; `None`: guessed from the header line (`,` `;` tab `|`).
    pub delimiter: Option<u8>,
    /// Which member of a zip archive; `None`: the one named like `train`, or the only one.
    pub member: Option<String>,
}

/// File types a table can be read from, by lower-case extension.
pub const TABLE_EXTENSIONS: &[&str] = &["csv", "parquet", "pq", "json", "jsonl", "ndjson"];

impl Table {
    /// Reads a table, choosing the reader by the file extension (any case).
    pub fn read(path: &Path) -> Result<Self> {
        Self::read_with(path, &ReadOptions::default())
    }

    /// Reads a table with explicit options.
    pub fn read_with(path: &Path, options: &ReadOptions) -> Result<Self> {
        let table = if extension(path) == "zip" {
            let (member, bytes) = archive::read_member(path, options.member.as_deref())?;
            let name = path.join(&member);
            read_source(&name, Source::Bytes(bytes), options)?
        } else {
            let file = File::open(path).map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            read_source(path, Source::File(file), options)?
        };
        if table.rows.is_empty() {
            return Err(format_error(
                &table.path,
                None,
                "the file has no data rows".into(),
            ));
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

/// The lower-case extension of a file name.
pub(crate) fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

enum Source {
    File(File),
    Bytes(bytes::Bytes),
}

impl Source {
    fn reader(self) -> Box<dyn Read> {
        match self {
            Source::File(f) => Box::new(f),
            Source::Bytes(b) => Box::new(std::io::Cursor::new(b)),
        }
    }
}

fn read_source(path: &Path, source: Source, options: &ReadOptions) -> Result<Table> {
    match extension(path).as_str() {
        "csv" => read_csv(path, source.reader(), options.delimiter),
        "parquet" | "pq" => read_parquet(path, source),
        "json" => read_json(path, source.reader()),
        "jsonl" | "ndjson" => read_jsonl(path, source.reader()),
        _ => Err(format_error(
            path,
            None,
            "unsupported file type; use .csv, .parquet/.pq, .json, .jsonl or a .zip of them".into(),
        )),
    }
}

fn format_error(path: &Path, row: Option<usize>, message: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        row,
        message,
    }
}

/// The delimiter among `,` `;` tab `|` that occurs most often outside quotes in the
/// first line (`,` when none does).
fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = candidates.iter().position(|&c| c == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let best = (0..4).max_by_key(|&i| (counts[i], 4 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

fn read_csv(path: &Path, reader: Box<dyn Read>, delimiter: Option<u8>) -> Result<Table> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let delimiter = match delimiter {
        Some(d) => d,
        None => sniff_delimiter(reader.fill_buf().map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .delimiter(delimiter)
        .from_reader(reader);
    let csv_error = |e: csv::Error| {
        let row = e.position().map(|p| p.record() as usize);
        let message = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "text is not valid UTF-8".to_string(),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("the row has {len} fields, the header has {expected_len}"),
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
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
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
        shape: Shape::Rows,
    })
}

/// Builds a table from JSON records (numbered from 1); chat-shaped records (by the
/// first one) are converted to chained rows. Columns in order of first appearance.
fn from_records(path: &Path, records: Vec<(usize, Value)>) -> Result<Table> {
    let shape = records
        .first()
        .map(|(_, v)| Shape::of(v))
        .unwrap_or(Shape::Rows);
    let mut columns: Vec<String> = match shape {
        Shape::Rows => Vec::new(),
        _ => CHAT_COLUMNS.iter().map(|c| c.to_string()).collect(),
    };
    let mut named_rows: Vec<Vec<(String, Option<String>)>> = Vec::with_capacity(records.len());
    for (record, value) in records {
        let converted = match shape {
            Shape::Rows => match value {
                Value::Object(map) => Ok(vec![map
                    .into_iter()
                    .map(|(k, v)| (k, text_of(v)))
                    .collect()]),
                _ => Err("expected a JSON object".to_string()),
            },
            _ => chat_rows(shape, record, value),
        };
        let converted =
            converted.map_err(|e| format_error(path, None, format!("record {record}: {e}")))?;
        for row in &converted {
            for (key, _) in row {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
        named_rows.extend(converted);
    }
    let rows = named_rows
        .into_iter()
        .map(|named| {
            let mut cells = vec![None; columns.len()];
            for (key, value) in named {
                let i = columns.iter().position(|c| *c == key).expect("collected");
                cells[i] = value;
            }
            cells
        })
        .collect();
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
        shape,
    })
}

/// A reader past a leading UTF-8 byte-order mark.
fn skip_bom(path: &Path, reader: Box<dyn Read>) -> Result<BufReader<Box<dyn Read>>> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let head = reader.fill_buf().map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if head.starts_with(b"\xef\xbb\xbf") {
        reader.consume(3);
    }
    Ok(reader)
}

fn read_json(path: &Path, reader: Box<dyn Read>) -> Result<Table> {
    let reader = skip_bom(path, reader)?;
    let value: Value = serde_json::from_reader(reader).map_err(|e| {
        let message = if e.is_io() {
            format!("line {}: text is not valid UTF-8", e.line())
        } else {
            format!("invalid JSON: {e}")
        };
        format_error(path, None, message)
    })?;
    let Value::Array(items) = value else {
        return Err(format_error(
            path,
            None,
            "expected a JSON array of objects (one per row); for one object per line use .jsonl"
                .into(),
        ));
    };
    from_records(
        path,
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect(),
    )
}

fn read_jsonl(path: &Path, reader: Box<dyn Read>) -> Result<Table> {
    let mut reader = skip_bom(path, reader)?;
    let mut records = Vec::new();
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|e| {
            let message = match e.kind() {
                std::io::ErrorKind::InvalidData => "text is not valid UTF-8".to_string(),
                _ => e.to_string(),
            };
            format_error(path, Some(number), message)
        })?;
        if read == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line)
            .map_err(|e| format_error(path, Some(number), format!("invalid JSON: {e}")))?;
        records.push((number, value));
    }
    from_records(path, records)
}

fn read_parquet(path: &Path, source: Source) -> Result<Table> {
    use parquet::file::reader::SerializedFileReader;
    let parquet_error = |e: parquet::errors::ParquetError| format_error(path, None, e.to_string());
    match source {
        Source::File(file) => parquet_rows(
            path,
            &SerializedFileReader::new(file).map_err(parquet_error)?,
        ),
        Source::Bytes(bytes) => parquet_rows(
            path,
            &SerializedFileReader::new(bytes).map_err(parquet_error)?,
        ),
    }
}

fn parquet_rows(path: &Path, reader: &dyn parquet::file::reader::FileReader) -> Result<Table> {
    use parquet::record::Field;
    let parquet_error = |e: parquet::errors::ParquetError| format_error(path, None, e.to_string());
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
        shape: Shape::Rows,
    })
}

#[cfg(test)]
mod tests {
    use super::sniff_delimiter;

    #[test]
    fn the_delimiter_is_the_commonest_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2;3;4;5"), b',');
        assert_eq!(sniff_delimiter(b"a;b;\"x,y,z\"\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\n"), b'\t');
        assert_eq!(sniff_delimiter(b"single\n"), b',');
    }
}
