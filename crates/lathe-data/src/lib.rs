//! Lathe's data layer: tables from CSV / Parquet / JSON / JSONL files, samples with
//! H2O LLM Studio's prompt rendering, token ids with loss masks, and seeded splits.

mod error;
mod samples;
mod split;
mod table;

pub use error::{DataError, Result};
pub use samples::{read_samples, unescape, Encoded, Renderer, Sample, SampleSet, TextEncoder};
pub use split::split;
pub use table::Table;
