//! Rows → samples (system, prompt, answer) → token ids with a per-token loss mask,
//! rendered with H2O LLM Studio's text markers and EOS flags.

use lathe_config::Dataset;

use crate::error::{DataError, Result};
use crate::table::Table;

/// Turns text into token ids (the backbone's tokenizer implements it).
pub trait TextEncoder {
    /// Token ids of `text`, without special tokens added by a post-processor.
    fn encode_text(&self, text: &str) -> std::result::Result<Vec<u32>, String>;
    /// The end-of-sequence token's text, if the tokenizer has one.
    fn eos_text(&self) -> Option<String>;
}

/// One training example: a single-turn conversation taken from one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Data row it came from (1-based, as in error messages).
    pub row: usize,
    /// System message, if the data has one.
    pub system: Option<String>,
    /// Prompt text (prompt columns joined).
    pub prompt: String,
    /// Answer text.
    pub answer: String,
}

/// Samples read from a table, and what was left out.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The samples, in file order.
    pub samples: Vec<Sample>,
    /// Rows skipped because every prompt column was empty.
    pub dropped_without_prompt: usize,
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
/// missing answer an error naming row and column.
pub fn read_samples(table: &Table, settings: &Dataset) -> Result<SampleSet> {
    if let Some(parent) = &settings.parent_id_column {
        return Err(DataError::Setting(format!(
            "dataset.parent_id_column = {parent:?}: conversation chains are not supported yet; set it to None"
        )));
    }
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
    let separator = unescape(&settings.prompt_column_separator);
    let personalize = |text: String| {
        if settings.personalize {
            personalized(&text, &settings.chatbot_name, &settings.chatbot_author)
        } else {
            text
        }
    };
    let mut samples = Vec::with_capacity(table.rows.len());
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
            continue;
        }
        let answer = cells[answer_col].clone().ok_or_else(|| DataError::Value {
            path: table.path.clone(),
            row,
            column: settings.answer_column.clone(),
            message: "the answer is missing".into(),
        })?;
        samples.push(Sample {
            row,
            system: system_col
                .and_then(|c| cells[c].clone())
                .filter(|s| !s.is_empty())
                .map(personalize),
            prompt: personalize(parts.join(&separator)),
            answer: personalize(answer),
        });
    }
    if samples.is_empty() {
        return Err(DataError::Format {
            path: table.path.clone(),
            row: None,
            message: "no row has a prompt".into(),
        });
    }
    Ok(SampleSet {
        samples,
        dropped_without_prompt: dropped,
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

/// A sample as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Data row it came from.
    pub row: usize,
    /// Token ids of the whole rendered sample.
    pub input_ids: Vec<u32>,
    /// `true` where the token is a training target (carries loss).
    pub loss_mask: Vec<bool>,
    /// Tokens before the answer: what generation starts from.
    pub prompt_len: usize,
    /// Whether the sample was cut to `max_length`.
    pub truncated: bool,
}

/// Renders and tokenizes samples as H2O does: system `text_system_start + system
/// [+ EOS]`, prompt `text_prompt_start + prompt [+ EOS] + text_answer_separator`, answer
/// `answer [+ EOS]`; each piece tokenized on its own and cut to `max_length` (the prompt
/// keeps its end, system and answer their start), then the whole cut from the left.
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

    /// The text a prompt is rendered to, up to where the answer starts (for generation
    /// and chat).
    pub fn prompt_text(&self, system: Option<&str>, prompt: &str) -> String {
        let s = self.settings;
        let mut text = String::new();
        if let Some(system) = system.filter(|t| !t.is_empty()) {
            text.push_str(&s.text_system_start);
            text.push_str(system);
            if s.add_eos_token_to_system {
                text.push_str(&self.eos);
            }
        }
        text.push_str(&s.text_prompt_start);
        text.push_str(prompt);
        if s.add_eos_token_to_prompt {
            text.push_str(&self.eos);
        }
        text.push_str(&s.text_answer_separator);
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

    /// Token ids and loss mask of one sample.
    pub fn encode_sample(&self, sample: &Sample) -> Result<Encoded> {
        let s = self.settings;
        let max = self.max_length;
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        let mut truncated = false;
        let prompt_carries_loss = !s.mask_prompt_labels;
        if let Some(system) = sample.system.as_deref().filter(|t| !t.is_empty()) {
            let mut text = format!("{}{system}", s.text_system_start);
            if s.add_eos_token_to_system {
                text.push_str(&self.eos);
            }
            let mut t = self.encode(&text)?;
            truncated |= t.len() > max;
            t.truncate(max);
            mask.extend(std::iter::repeat_n(prompt_carries_loss, t.len()));
            ids.extend(t);
        }
        let mut text = format!("{}{}", s.text_prompt_start, sample.prompt);
        if s.add_eos_token_to_prompt {
            text.push_str(&self.eos);
        }
        text.push_str(&s.text_answer_separator);
        let mut t = self.encode(&text)?;
        if t.len() > max {
            truncated = true;
            t.drain(..t.len() - max);
        }
        mask.extend(std::iter::repeat_n(prompt_carries_loss, t.len()));
        ids.extend(t);
        let mut text = sample.answer.clone();
        if s.add_eos_token_to_answer {
            text.push_str(&self.eos);
        }
        let mut t = self.encode(&text)?;
        truncated |= t.len() > max;
        t.truncate(max);
        let answer_len = t.len();
        mask.extend(std::iter::repeat_n(true, t.len()));
        ids.extend(t);
        if ids.len() > max {
            truncated = true;
            let cut = ids.len() - max;
            ids.drain(..cut);
            mask.drain(..cut);
        }
        Ok(Encoded {
            row: sample.row,
            prompt_len: ids.len() - answer_len.min(ids.len()),
            input_ids: ids,
            loss_mask: mask,
            truncated,
        })
    }
}
