//! Training data as the model sees it: each sample's tokens, the part of the
//! conversation they belong to, and whether they carry loss.

use std::path::Path;

use lathe_config::Config;
use lathe_data::{read_samples, Table, TokenInfo};
use lathe_model::loader::load_text;
use serde::Serialize;

use crate::error::Result;
use crate::text::TextFormat;

/// One training sample, tokenized as training renders it.
#[derive(Debug, Clone, Serialize)]
pub struct SampleTokens {
    /// Position of the sample in the training file's samples.
    pub index: usize,
    /// The data row it came from (its last row for a conversation).
    pub row: usize,
    /// Whether it was cut to `tokenizer.max_length`.
    pub truncated: bool,
    /// Its tokens.
    pub tokens: Vec<TokenInfo>,
}

/// Samples `offset..offset + limit` of the training file of `config`, tokenized with
/// the backbone's tokenizer in the run's prompt format; and how many samples there are.
pub fn training_tokens(
    config: &Config,
    offset: usize,
    limit: usize,
) -> Result<(usize, Vec<SampleTokens>)> {
    let d = &config.dataset;
    let table = Table::read(Path::new(&d.train_dataframe))?;
    let samples = read_samples(&table, d)?.samples;
    let (mut tokenizer, template) = load_text(&config.general.llm_backbone)?;
    if config.tokenizer.add_prompt_answer_tokens {
        tokenizer.add_tokens(&[&d.text_prompt_start, &d.text_answer_separator]);
    }
    let text = TextFormat::new(tokenizer, template, d)?;
    let renderer = text.renderer(d, config.tokenizer.max_length as usize);
    let page = samples
        .iter()
        .enumerate()
        .skip(offset)
        .take(limit)
        .map(|(index, sample)| {
            let encoded = renderer.encode_sample(sample)?;
            Ok(SampleTokens {
                index,
                row: encoded.row,
                truncated: encoded.truncated,
                tokens: renderer.token_view(&encoded)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((samples.len(), page))
}
