//! Rows → samples: one-turn, or multi-turn conversations from chained rows, with
//! H2O LLM Studio's prompt joining, personalisation and missing-value rules.

use std::sync::Arc;

use lathe_config::Dataset;

use crate::chains::Chains;
use crate::error::{DataError, Result};
use crate::table::Table;

/// One prompt and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Data row it came from (1-based, as in error messages).
    pub row: usize,
    /// Prompt text (prompt columns joined).
    pub prompt: Arc<str>,
    /// Answer text.
    pub answer: Arc<str>,
}

/// One training example: a conversation of one or more turns, ending at `row`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Data row of the last turn (1-based, as in error messages).
    pub row: usize,
    /// The conversation it belongs to (its first row); splits keep a conversation on
    /// one side.
    pub group: usize,
    /// System message of the conversation's first row, if the data has one.
    pub system: Option<Arc<str>>,
    /// The turns, first to last; never empty.
    pub turns: Vec<Turn>,
}

impl Sample {
    /// The last prompt: what validation answers.
    pub fn prompt(&self) -> &str {
        &self.turns.last().expect("a sample has turns").prompt
    }

    /// The last answer: the validation target.
    pub fn answer(&self) -> &str {
        &self.turns.last().expect("a sample has turns").answer
    }
}

/// Samples read from a table, and what was left out.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The samples, in file order of their last row.
    pub samples: Vec<Sample>,
    /// Rows skipped because every prompt column was empty.
    pub dropped_without_prompt: usize,
    /// Conversations (chains) the rows form; the row count without chains.
    pub conversations: usize,
    /// Rows left out because they end a conversation with a prompt and no answer.
    pub unanswered_ends: usize,
}

/// Names that `personalize` replaces with the chatbot's name.
const BOT_NAMES: &[&str] = &[
    "Open Assistant",
    "OpenAssistant",
    "Open-Assistant",
    "ChatGPT",
];
/// Names that `personalize` replaces with the chatbot's author.
const AUTHOR_NAMES: &[&str] = &["LAION", "OpenAI"];

/// Reads samples from `table` with the dataset settings: prompt columns joined by the
/// separator (empty ones left out), rows without any prompt dropped and counted, a
/// missing or empty answer an error naming row and column. With `parent_id_column`,
/// each row's chain of ancestors is one multi-turn sample (only complete
/// conversations with `limit_chained_samples`).
pub fn read_samples(table: &Table, settings: &Dataset) -> Result<SampleSet> {
    if settings.prompt_column.is_empty() {
        return Err(DataError::Setting(
            "dataset.prompt_column: name at least one column".into(),
        ));
    }
    let prompt_cols = settings
        .prompt_column
        .iter()
        .map(|c| table.column_index(c, "dataset.prompt_column"))
        .collect::<Result<Vec<_>>>()?;
    let answer_col = table.column_index(&settings.answer_column, "dataset.answer_column")?;
    let system_col = match &settings.system_column {
        Some(c) => Some(table.column_index(c, "dataset.system_column")?),
        None => None,
    };
    let chain_cols = match &settings.parent_id_column {
        Some(parent) => {
            let id = settings.id_column.as_deref().ok_or_else(|| {
                DataError::Setting(
                    "dataset.parent_id_column is set, so dataset.id_column must name the id column"
                        .into(),
                )
            })?;
            Some((
                table.column_index(id, "dataset.id_column")?,
                table.column_index(parent, "dataset.parent_id_column")?,
            ))
        }
        None => None,
    };
    let separator = unescape(&settings.prompt_column_separator);
    let personalize = |text: &str| -> Arc<str> {
        if settings.personalize {
            personalized(text, &settings.chatbot_name, &settings.chatbot_author).into()
        } else {
            text.into()
        }
    };
    // One turn per row that has a prompt.
    let mut turns: Vec<Option<Turn>> = Vec::with_capacity(table.rows.len());
    let mut dropped = 0;
    for (i, cells) in table.rows.iter().enumerate() {
        let row = i + 1;
        let parts: Vec<&str> = prompt_cols
            .iter()
            .filter_map(|&c| cells[c].as_deref())
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            dropped += 1;
            turns.push(None);
            continue;
        }
        let answer = cells[answer_col].as_deref().unwrap_or_default();
        turns.push(Some(Turn {
            row,
            prompt: personalize(&parts.join(&separator)),
            answer: personalize(answer),
        }));
    }
    let system_of = |row: usize| {
        system_col
            .and_then(|c| table.rows[row][c].as_deref())
            .filter(|s| !s.is_empty())
            .map(personalize)
    };
    let missing_answer = |row: usize, why: &str| DataError::Value {
        path: table.path.clone(),
        row: row + 1,
        column: settings.answer_column.clone(),
        message: format!("the answer is missing or empty{why}"),
    };
    let has_answer = |r: usize| turns[r].as_ref().is_none_or(|t| !t.answer.is_empty());
    let mut kept: Vec<bool> = turns.iter().map(Option::is_some).collect();
    let mut unanswered_ends = 0;
    let (samples, conversations) = match chain_cols {
        None => {
            if let Some(r) = (0..turns.len()).find(|&r| !has_answer(r)) {
                return Err(missing_answer(r, ""));
            }
            let samples: Vec<Sample> = turns
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    t.as_ref().map(|t| Sample {
                        row: t.row,
                        group: i,
                        system: system_of(i),
                        turns: vec![t.clone()],
                    })
                })
                .collect();
            let n = samples.len();
            (samples, n)
        }
        Some((id_col, parent_col)) => {
            // A conversation may end with a prompt nobody answered: that last row is
            // left out (and counted); a missing answer earlier in a chain is an error.
            let mut chains = Chains::link(table, id_col, parent_col, &kept)?;
            for r in (0..turns.len()).filter(|&r| !has_answer(r)) {
                if !chains.is_leaf[r] {
                    return Err(missing_answer(
                        r,
                        "; only the last turn of a conversation may have no answer",
                    ));
                }
                kept[r] = false;
                unanswered_ends += 1;
            }
            if unanswered_ends > 0 {
                chains = Chains::link(table, id_col, parent_col, &kept)?;
            }
            let conversations = (0..kept.len())
                .filter(|&r| kept[r] && chains.parent[r].is_none())
                .count();
            let samples = (0..kept.len())
                .filter(|&r| kept[r] && (!settings.limit_chained_samples || chains.is_leaf[r]))
                .map(|r| {
                    let rows = chains.chain(r);
                    Sample {
                        row: r + 1,
                        group: chains.root[r],
                        system: system_of(rows[0]),
                        turns: rows
                            .iter()
                            .map(|&c| turns[c].clone().expect("kept rows have turns"))
                            .collect(),
                    }
                })
                .collect();
            (samples, conversations)
        }
    };
    if samples.is_empty() {
        return Err(DataError::Format {
            path: table.path.clone(),
            row: None,
            message: "no row has a prompt and an answer".into(),
        });
    }
    Ok(SampleSet {
        samples,
        dropped_without_prompt: dropped,
        conversations,
        unanswered_ends,
    })
}

/// Decodes `\n`, `\t`, `\r` and `\\` as H2O decodes the separator setting.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn personalized(text: &str, name: &str, author: &str) -> String {
    let mut out = text.to_string();
    for n in BOT_NAMES {
        out = out.replace(n, name);
    }
    for a in AUTHOR_NAMES {
        out = out.replace(a, author);
    }
    out
}
