//! Lathe's data layer: tables from CSV / Parquet / JSON / JSONL files (alone or in a
//! zip; ShareGPT and OpenAI chats converted), column auto-selection, conversation
//! chains, samples with H2O LLM Studio's prompt rendering (or a chat template), token
//! ids with loss masks, seeded splits, augmentations, statistics, and imports from
//! uploads, the Hugging Face Hub and S3.

pub mod archive;
mod augment;
mod chains;
mod columns;
mod convert;
mod error;
mod import;
mod labels;
mod render;
mod samples;
mod split;
mod stats;
mod table;

pub use augment::ParentAugmentation;
pub use chains::{Chains, MAX_CHAIN};
pub use columns::Mapping;
pub use convert::Shape;
pub use error::{DataError, Result};
pub use import::{import_bytes, import_hub, import_path, import_s3, list_s3, S3Location};
pub use labels::{read_labels, read_preferences, LabelKind, Preference};
pub use render::{ChatFormat, Encoded, Renderer, Role, TextEncoder, TokenInfo};
pub use samples::{read_samples, unescape, Sample, SampleSet, Turn};
pub use split::split;
pub use stats::{statistics, ColumnSummary, DatasetStats, Distribution, TokenStats};
pub use table::{ReadOptions, Table, TABLE_EXTENSIONS};
