//! Targets other than answer text: preference pairs (DPO) and label columns for
//! classification and regression, validated as H2O LLM Studio validates them.

use std::sync::Arc;

use lathe_config::Dataset;

use crate::error::{DataError, Result};
use crate::samples::{read_samples, Sample};
use crate::table::Table;

/// A preference pair: the conversation with its chosen last answer, and the rejected
/// answer (with its own prompt when the data gives one).
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    /// The conversation; its last answer is the chosen one.
    pub chosen: Sample,
    /// The rejected last answer.
    pub rejected: Arc<str>,
    /// A different last prompt for the rejected answer, if the data has one.
    pub rejected_prompt: Option<Arc<str>>,
}

/// Reads preference pairs: complete conversations (history chains included) whose
/// last row has a rejected answer in `rejected_answer_column` (and optionally a
/// rejected prompt). A missing rejected answer is an error naming row and column.
pub fn read_preferences(
    table: &Table,
    settings: &Dataset,
    rejected_answer_column: &str,
    rejected_prompt_column: Option<&str>,
) -> Result<Vec<Preference>> {
    let rejected_col =
        table.column_index(rejected_answer_column, "dataset.rejected_answer_column")?;
    let rejected_prompt_col = rejected_prompt_column
        .map(|c| table.column_index(c, "dataset.rejected_prompt_column"))
        .transpose()?;
    // DPO always uses complete conversations.
    let mut complete = settings.clone();
    complete.limit_chained_samples = true;
    read_samples(table, &complete)?
        .samples
        .into_iter()
        .map(|chosen| {
            let cells = &table.rows[chosen.row - 1];
            let rejected = cells[rejected_col]
                .as_deref()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| DataError::Value {
                    path: table.path.clone(),
                    row: chosen.row,
                    column: rejected_answer_column.to_string(),
                    message: "the rejected answer is missing or empty".into(),
                })?
                .into();
            let rejected_prompt = rejected_prompt_col
                .and_then(|c| cells[c].as_deref())
                .filter(|p| !p.is_empty())
                .map(Arc::from);
            Ok(Preference {
                chosen,
                rejected,
                rejected_prompt,
            })
        })
        .collect()
}

/// What a label column holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelKind {
    /// Class indices; `num_classes` 1 means binary (0 or 1). With several columns,
    /// each is one class of a multi-label target (0 or 1).
    Classification {
        /// Number of classes (1: binary).
        num_classes: usize,
    },
    /// Real numbers, one per column.
    Regression,
}

/// Reads the label columns of every row as numbers: one value per column (or, for
/// single-column classification, the class index). Values that do not fit the kind
/// are errors naming the row, column and value.
pub fn read_labels(table: &Table, columns: &[String], kind: LabelKind) -> Result<Vec<Vec<f32>>> {
    if columns.is_empty() {
        return Err(DataError::Setting(
            "dataset.answer_column: name at least one label column".into(),
        ));
    }
    let indices = columns
        .iter()
        .map(|c| table.column_index(c, "dataset.answer_column"))
        .collect::<Result<Vec<_>>>()?;
    let multi_label = columns.len() > 1;
    table
        .rows
        .iter()
        .enumerate()
        .map(|(r, cells)| {
            indices
                .iter()
                .zip(columns)
                .map(|(&c, name)| {
                    let error = |message: String| DataError::Value {
                        path: table.path.clone(),
                        row: r + 1,
                        column: name.clone(),
                        message,
                    };
                    let text = cells[c]
                        .as_deref()
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| error("the label is missing".into()))?;
                    match kind {
                        LabelKind::Regression => text
                            .parse::<f32>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .ok_or_else(|| error(format!("`{text}` is not a finite number"))),
                        LabelKind::Classification { num_classes } => {
                            let class = class_index(text).ok_or_else(|| {
                                error(format!("`{text}` is not an integer class"))
                            })?;
                            let classes = if multi_label { 2 } else { num_classes.max(2) };
                            if class >= classes {
                                return Err(error(format!(
                                    "class {class} is out of range: {}",
                                    if multi_label {
                                        "each column of a multi-label target is 0 or 1".to_string()
                                    } else {
                                        format!(
                                            "num_classes = {num_classes} allows 0 to {}",
                                            classes - 1
                                        )
                                    }
                                )));
                            }
                            Ok(class as f32)
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// An integer class from text: `3`, `3.0`, `true`/`false`.
fn class_index(text: &str) -> Option<usize> {
    match text {
        "true" | "True" => return Some(1),
        "false" | "False" => return Some(0),
        _ => {}
    }
    if let Ok(i) = text.parse::<usize>() {
        return Some(i);
    }
    let f = text.parse::<f64>().ok()?;
    (f >= 0.0 && f.fract() == 0.0 && f < u32::MAX as f64).then_some(f as usize)
}
