//! Rows → samples (system, prompt, answer) → token ids with a per-token loss mask,
//! rendered with H2O LLM Studio's text markers and EOS flags.

use std::sync::Arc;

use lathe_config::Dataset;

use crate::chains::Chains;
use crate::error::{DataError, Result};
use crate::table::Table;

/// Turns text into token ids (the backbone's tokenizer implements it).
pub trait TextEncoder {
    /// Token ids of `text`, without special tokens added by a post-processor.
    fn encode_text(&self, text: &str) -> std::result::Result<Vec<u32>, String>;
    /// The end-of-sequence token's text, if the tokenizer has one.
    fn eos_text(&self) -> Option<String>;
    /// The text of token ids, special tokens included.
    fn decode(&self, ids: &[u32]) -> std::result::Result<String, String>;
}

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

/// What part of a conversation a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system message (with its marker).
    System,
    /// A prompt with its markers, up to the answer separator.
    Prompt,
    /// An answer (with its EOS).
    Answer,
}

/// A sample as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Data row it came from.
    pub row: usize,
    /// Token ids of the whole rendered sample.
    pub input_ids: Vec<u32>,
    /// `true` where the token is a training target (carries loss).
    pub loss_mask: Vec<bool>,
    /// The part each token belongs to.
    pub roles: Vec<Role>,
    /// Tokens before the last answer: what generation starts from.
    pub prompt_len: usize,
    /// Whether the sample was cut to `max_length`.
    pub truncated: bool,
}

/// One token of a rendered sample, for the token-level view.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: u32,
    /// The token's text.
    pub text: String,
    /// Which part of the conversation it belongs to.
    pub role: Role,
    /// Whether it is a training target.
    pub loss: bool,
}

/// Renders and tokenizes samples as H2O does: system `text_system_start + system
/// [+ EOS]` before the first prompt, each prompt `text_prompt_start + prompt [+ EOS] +
/// text_answer_separator`, each answer `answer [+ EOS]`; each piece tokenized on its
/// own and cut to `max_length` (prompts keep their end, system and answers their
/// start), then the whole conversation cut from the left to `max_length`.
pub struct Renderer<'a> {
    settings: &'a Dataset,
    max_length: usize,
    encoder: &'a dyn TextEncoder,
    eos: String,
}

impl<'a> Renderer<'a> {
    /// A renderer for the dataset settings and tokenizer.
    pub fn new(settings: &'a Dataset, max_length: usize, encoder: &'a dyn TextEncoder) -> Self {
        // H2O replaces a missing EOS with `</s>`.
        let eos = encoder.eos_text().unwrap_or_else(|| "</s>".into());
        Self {
            settings,
            max_length,
            encoder,
            eos,
        }
    }

    fn system_text(&self, system: &str) -> String {
        let s = self.settings;
        let mut text = format!("{}{system}", s.text_system_start);
        if s.add_eos_token_to_system {
            text.push_str(&self.eos);
        }
        text
    }

    fn prompt_piece(&self, prompt: &str) -> String {
        let s = self.settings;
        let mut text = format!("{}{prompt}", s.text_prompt_start);
        if s.add_eos_token_to_prompt {
            text.push_str(&self.eos);
        }
        text.push_str(&s.text_answer_separator);
        text
    }

    /// An answer as rendered: with EOS when `add_eos_token_to_answer`.
    pub fn answer_text(&self, answer: &str) -> String {
        let mut text = answer.to_string();
        if self.settings.add_eos_token_to_answer {
            text.push_str(&self.eos);
        }
        text
    }

    /// The text a prompt is rendered to, up to where the answer starts (for generation
    /// and chat); `system` goes before it when given and non-empty.
    pub fn prompt_text(&self, system: Option<&str>, prompt: &str) -> String {
        let mut text = system
            .filter(|t| !t.is_empty())
            .map(|t| self.system_text(t))
            .unwrap_or_default();
        text.push_str(&self.prompt_piece(prompt));
        text
    }

    /// The text of a whole conversation so far, ready for the model to answer `user`.
    pub fn conversation_text(
        &self,
        system: Option<&str>,
        history: &[(String, String)],
        user: &str,
    ) -> String {
        let mut text = String::new();
        for (i, (prompt, answer)) in history.iter().enumerate() {
            text.push_str(&self.prompt_text(system.filter(|_| i == 0), prompt));
            text.push_str(&self.answer_text(answer));
        }
        text.push_str(&self.prompt_text(system.filter(|_| history.is_empty()), user));
        text
    }

    /// Stop strings for generation: the non-empty marker texts.
    pub fn stop_strings(&self) -> Vec<String> {
        let s = self.settings;
        [
            &s.text_prompt_start,
            &s.text_answer_separator,
            &s.text_system_start,
        ]
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encoder.encode_text(text).map_err(DataError::Tokenizer)
    }

    /// Token ids, loss mask and roles of one sample.
    pub fn encode_sample(&self, sample: &Sample) -> Result<Encoded> {
        let s = self.settings;
        let max = self.max_length;
        let mut out = Encoded {
            row: sample.row,
            input_ids: Vec::new(),
            loss_mask: Vec::new(),
            roles: Vec::new(),
            prompt_len: 0,
            truncated: false,
        };
        let prompt_carries_loss = !s.mask_prompt_labels && !s.only_last_answer;
        let push = |out: &mut Encoded, mut ids: Vec<u32>, role: Role, loss: bool| {
            if ids.len() > max {
                out.truncated = true;
                match role {
                    Role::Prompt => drop(ids.drain(..ids.len() - max)),
                    _ => ids.truncate(max),
                }
            }
            out.loss_mask.extend(std::iter::repeat_n(loss, ids.len()));
            out.roles.extend(std::iter::repeat_n(role, ids.len()));
            out.input_ids.extend(ids);
        };
        if let Some(system) = sample.system.as_deref() {
            let ids = self.encode(&self.system_text(system))?;
            push(&mut out, ids, Role::System, prompt_carries_loss);
        }
        let last = sample.turns.len() - 1;
        let mut last_answer_len = 0;
        for (i, turn) in sample.turns.iter().enumerate() {
            let ids = self.encode(&self.prompt_piece(&turn.prompt))?;
            push(&mut out, ids, Role::Prompt, prompt_carries_loss);
            let ids = self.encode(&self.answer_text(&turn.answer))?;
            last_answer_len = ids.len().min(max);
            push(
                &mut out,
                ids,
                Role::Answer,
                i == last || !s.only_last_answer,
            );
        }
        if out.input_ids.len() > max {
            out.truncated = true;
            let cut = out.input_ids.len() - max;
            out.input_ids.drain(..cut);
            out.loss_mask.drain(..cut);
            out.roles.drain(..cut);
        }
        out.prompt_len = out.input_ids.len() - last_answer_len.min(out.input_ids.len());
        Ok(out)
    }

    /// Each token of an encoded sample with its text, role and whether it carries
    /// loss: the data of the token-level view.
    pub fn token_view(&self, encoded: &Encoded) -> Result<Vec<TokenInfo>> {
        encoded
            .input_ids
            .iter()
            .zip(&encoded.roles)
            .zip(&encoded.loss_mask)
            .map(|((&id, &role), &loss)| {
                Ok(TokenInfo {
                    id,
                    text: self.encoder.decode(&[id]).map_err(DataError::Tokenizer)?,
                    role,
                    loss,
                })
            })
            .collect()
    }
}
