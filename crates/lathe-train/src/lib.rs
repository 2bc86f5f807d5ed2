//! Lathe's training loop: optimizers, schedules, losses, validation, checkpoints with
//! exact resume, and the run folder's events and status.

pub mod checkpoint;
mod error;
pub mod estimate;
pub mod export;
pub mod insights;
pub mod metrics;
pub mod optim;
pub mod run;
mod text;
mod trainer;
pub mod validation;

pub use error::{Result, TrainError};
pub use text::TextFormat;
pub use trainer::{load_with_adapter, run_folder, train, Summary, TrainedModel};
