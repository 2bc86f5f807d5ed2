//! Train / validation splits and sampling, seeded so that runs repeat.

use lathe_config::Dataset;
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
/// `validation_size` of `train` at random.
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
            let n = train.len();
            let held = ((n as f64 * settings.validation_size).round() as usize).clamp(1, n);
            if held == n {
                return Err(DataError::Setting(format!(
                    "dataset.validation_size = {} leaves no training rows out of {n}",
                    settings.validation_size
                )));
            }
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut StdRng::seed_from_u64(SPLIT_SEED));
            let mut is_valid = vec![false; n];
            for &i in &order[..held] {
                is_valid[i] = true;
            }
            let (v, t): (Vec<_>, Vec<_>) =
                train.into_iter().zip(is_valid).partition(|(_, held)| *held);
            (
                t.into_iter().map(|(s, _)| s).collect(),
                v.into_iter().map(|(s, _)| s).collect(),
            )
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

/// Keeps `fraction` of the samples (at least 10, or all when fewer), in file order.
fn sample_fraction(samples: Vec<Sample>, fraction: f64) -> Vec<Sample> {
    let n = samples.len();
    let keep = ((n as f64 * fraction).round() as usize).max(10).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(SAMPLE_SEED));
    let mut kept = vec![false; n];
    for &i in &order[..keep] {
        kept[i] = true;
    }
    samples
        .into_iter()
        .zip(kept)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}
