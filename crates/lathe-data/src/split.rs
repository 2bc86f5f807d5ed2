//! Train / validation splits and sampling, seeded so that runs repeat.

use lathe_config::Dataset;
use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{DataError, Result};
use crate::samples::Sample;

/// Seed of the automatic holdout, as in H2O.
const SPLIT_SEED: u64 = 1337;
/// Seed of `data_sample`, as in H2O.
const SAMPLE_SEED: u64 = 7331;

/// Splits samples into train and validation sets per the settings. `custom` uses
/// `validation` (read from `validation_dataframe`); `automatic` holds out
/// `validation_size` of `train`'s conversations at random, each conversation whole on
/// one side (a group split; a row without chains is its own conversation).
pub fn split(
    train: Vec<Sample>,
    validation: Option<Vec<Sample>>,
    settings: &Dataset,
    train_validation_data: bool,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let (mut train, mut valid) = match settings.validation_strategy.as_str() {
        "custom" => {
            let valid = validation.ok_or_else(|| {
                DataError::Setting(
                    "dataset.validation_strategy is custom but dataset.validation_dataframe is None"
                        .into(),
                )
            })?;
            (train, valid)
        }
        _ => {
            let groups = groups(&train);
            let n = groups.len();
            let held = ((n as f64 * settings.validation_size).round() as usize).clamp(1, n);
            if held == n {
                return Err(DataError::Setting(format!(
                    "dataset.validation_size = {} leaves no training conversations out of {n}",
                    settings.validation_size
                )));
            }
            let chosen = choose(&groups, held, SPLIT_SEED);
            train.into_iter().partition(|s| !chosen.contains(&s.group))
        }
    };
    if settings.data_sample < 1.0 {
        let choice = &settings.data_sample_choice;
        if choice.iter().any(|c| c == "Train") {
            train = sample_fraction(train, settings.data_sample);
        }
        if choice.iter().any(|c| c == "Validation") {
            valid = sample_fraction(valid, settings.data_sample);
        }
    }
    if train_validation_data {
        train.extend(valid.iter().cloned());
    }
    Ok((train, valid))
}

/// The distinct conversation groups of `samples`, in order of first appearance.
fn groups(samples: &[Sample]) -> Vec<usize> {
    let mut seen = HashSet::new();
    samples
        .iter()
        .filter(|s| seen.insert(s.group))
        .map(|s| s.group)
        .collect()
}

/// `count` of `groups` drawn at random with `seed`.
fn choose(groups: &[usize], count: usize, seed: u64) -> HashSet<usize> {
    let mut order = groups.to_vec();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    order.truncate(count);
    order.into_iter().collect()
}

/// Keeps `fraction` of the conversations (at least 10, or all when fewer), in file
/// order.
fn sample_fraction(samples: Vec<Sample>, fraction: f64) -> Vec<Sample> {
    let groups = groups(&samples);
    let n = groups.len();
    let keep = ((n as f64 * fraction).round() as usize).max(10).min(n);
    let kept = choose(&groups, keep, SAMPLE_SEED);
    samples
        .into_iter()
        .filter(|s| kept.contains(&s.group))
        .collect()
}
