//! Dataset statistics, as data the studio draws: counts, turns per conversation,
//! prompt / answer / conversation lengths in words and tokens (quantiles and
//! histograms), and a summary of every column.

use std::collections::HashMap;

use lathe_config::Dataset;
use serde::Serialize;

use crate::error::Result;
use crate::render::{Renderer, Role};
use crate::samples::read_samples;
use crate::table::Table;

/// Bins of each histogram.
const BINS: usize = 20;

/// The distribution of a length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    /// Values counted.
    pub count: usize,
    /// Mean value.
    pub mean: f64,
    /// Smallest value.
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Lower edge of each bin; the last bin ends at `max`.
    pub bin_edges: Vec<f64>,
    /// Values per bin.
    pub bin_counts: Vec<usize>,
}

impl Distribution {
    /// The distribution of `values` (empty values give zeros).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let quantile = |q: f64| quantile(&values, q);
        let (min, max) = (quantile(0.0), quantile(1.0));
        let width = ((max - min) / BINS as f64).max(f64::MIN_POSITIVE);
        let bins = if n == 0 {
            0
        } else if max > min {
            BINS
        } else {
            1
        };
        let mut bin_counts = vec![0; bins];
        for v in &values {
            let b = (((v - min) / width) as usize).min(bins - 1);
            bin_counts[b] += 1;
        }
        Self {
            count: n,
            mean: if n == 0 {
                0.0
            } else {
                values.iter().sum::<f64>() / n as f64
            },
            min,
            p10: quantile(0.1),
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            max,
            bin_edges: (0..bins).map(|b| min + b as f64 * width).collect(),
            bin_counts,
        }
    }
}

/// A column's summary: numeric when every present value parses as a number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ColumnSummary {
    /// Text values.
    Text {
        /// Column name.
        name: String,
        /// Present values.
        count: usize,
        /// Missing values.
        missing: usize,
        /// Distinct values.
        unique: usize,
        /// The commonest value (cut to 200 characters).
        top: String,
        /// How often it occurs.
        freq: usize,
    },
    /// Numbers.
    Numeric {
        /// Column name.
        name: String,
        /// Present values.
        count: usize,
        /// Missing values.
        missing: usize,
        /// Mean.
        mean: f64,
        /// Standard deviation (sample).
        std: f64,
        /// Smallest.
        min: f64,
        /// Quartiles.
        q25: f64,
        /// Median.
        q50: f64,
        /// Third quartile.
        q75: f64,
        /// Largest.
        max: f64,
    },
}

/// Statistics of a dataset under its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetStats {
    /// Data rows in the file.
    pub rows: usize,
    /// Rows left out for having no prompt.
    pub dropped_without_prompt: usize,
    /// Rows left out for ending a conversation with an unanswered prompt.
    pub unanswered_ends: usize,
    /// Samples the settings make (partial conversations included unless
    /// `limit_chained_samples`).
    pub samples: usize,
    /// Conversations (chains; rows without chains are one-turn conversations).
    pub conversations: usize,
    /// Turns per complete conversation.
    pub turns: Distribution,
    /// Prompt lengths in words (whitespace-separated), one per row.
    pub prompt_words: Distribution,
    /// Answer lengths in words, one per row.
    pub answer_words: Distribution,
    /// Complete conversation lengths in words (system, prompts and answers).
    pub conversation_words: Distribution,
    /// Token lengths, when a tokenizer was given.
    pub tokens: Option<TokenStats>,
    /// Every column's summary.
    pub columns: Vec<ColumnSummary>,
}

/// Lengths in tokens of the rendered pieces (markers and EOS included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenStats {
    /// Rendered prompts (with their markers), one per turn.
    pub prompt: Distribution,
    /// Answers (with EOS), one per turn.
    pub answer: Distribution,
    /// Whole complete conversations, before truncation.
    pub conversation: Distribution,
    /// Complete conversations longer than `max_length`.
    pub over_max_length: usize,
}

/// The `q` quantile of sorted values, interpolated linearly between the closest
/// ranks as numpy does; 0 for no values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    let at = q * last as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

fn words(text: &str) -> f64 {
    text.split_whitespace().count() as f64
}

/// Statistics of `table` read with `settings`; token lengths when a `renderer` is
/// given (conversations over its `max_length` counted).
pub fn statistics(
    table: &Table,
    settings: &Dataset,
    renderer: Option<&Renderer>,
) -> Result<DatasetStats> {
    let set = read_samples(table, settings)?;
    let complete = if settings.limit_chained_samples || settings.parent_id_column.is_none() {
        set.samples.clone()
    } else {
        let mut complete = settings.clone();
        complete.limit_chained_samples = true;
        read_samples(table, &complete)?.samples
    };
    let turns_of_rows: Vec<_> = complete.iter().flat_map(|s| s.turns.iter()).collect();
    let token_stats = match renderer {
        Some(renderer) => {
            let max_length = renderer.max_length();
            let renderer = renderer.clone().with_max_length(usize::MAX);
            let (mut prompt, mut answer, mut conversation) = (vec![], vec![], vec![]);
            for sample in &complete {
                let encoded = renderer.encode_sample(sample)?;
                let mut run = (encoded.roles.first().copied(), 0usize);
                for role in encoded.roles.iter().copied().chain([Role::System]) {
                    if Some(role) == run.0 {
                        run.1 += 1;
                        continue;
                    }
                    match run.0 {
                        Some(Role::Prompt) => prompt.push(run.1 as f64),
                        Some(Role::Answer) => answer.push(run.1 as f64),
                        _ => {}
                    }
                    run = (Some(role), 1);
                }
                conversation.push(encoded.input_ids.len() as f64);
            }
            let over = conversation
                .iter()
                .filter(|&&n| n > max_length as f64)
                .count();
            Some(TokenStats {
                prompt: Distribution::of(prompt),
                answer: Distribution::of(answer),
                conversation: Distribution::of(conversation),
                over_max_length: over,
            })
        }
        None => None,
    };
    Ok(DatasetStats {
        rows: table.rows.len(),
        dropped_without_prompt: set.dropped_without_prompt,
        unanswered_ends: set.unanswered_ends,
        samples: set.samples.len(),
        conversations: set.conversations,
        turns: Distribution::of(complete.iter().map(|s| s.turns.len() as f64).collect()),
        prompt_words: Distribution::of(turns_of_rows.iter().map(|t| words(&t.prompt)).collect()),
        answer_words: Distribution::of(turns_of_rows.iter().map(|t| words(&t.answer)).collect()),
        conversation_words: Distribution::of(
            complete
                .iter()
                .map(|s| {
                    s.system.as_deref().map(words).unwrap_or(0.0)
                        + s.turns
                            .iter()
                            .map(|t| words(&t.prompt) + words(&t.answer))
                            .sum::<f64>()
                })
                .collect(),
        ),
        tokens: token_stats,
        columns: (0..table.columns.len())
            .map(|c| column_summary(table, c))
            .collect(),
    })
}

fn column_summary(table: &Table, column: usize) -> ColumnSummary {
    let name = table.columns[column].clone();
    let values: Vec<&str> = table
        .rows
        .iter()
        .filter_map(|r| r[column].as_deref())
        .collect();
    let missing = table.rows.len() - values.len();
    let numbers: Option<Vec<f64>> = values.iter().map(|v| v.trim().parse().ok()).collect();
    match numbers {
        Some(numbers) if !numbers.is_empty() => {
            let d = Distribution::of(numbers.clone());
            let n = numbers.len() as f64;
            let var =
                numbers.iter().map(|x| (x - d.mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            let mut sorted = numbers;
            sorted.sort_by(f64::total_cmp);
            let q = |p: f64| quantile(&sorted, p);
            ColumnSummary::Numeric {
                name,
                count: sorted.len(),
                missing,
                mean: d.mean,
                std: var.sqrt(),
                min: d.min,
                q25: q(0.25),
                q50: d.p50,
                q75: q(0.75),
                max: d.max,
            }
        }
        _ => {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for v in &values {
                *counts.entry(v).or_default() += 1;
            }
            let (top, freq) = counts
                .iter()
                .max_by_key(|(v, n)| (**n, std::cmp::Reverse(**v)))
                .map(|(v, n)| (v.chars().take(200).collect(), *n))
                .unwrap_or_default();
            ColumnSummary::Text {
                name,
                count: values.len(),
                missing,
                unique: counts.len(),
                top,
                freq,
            }
        }
    }
}
