//! Names of datasets and experiments: they become folder names, so only plain names.

use crate::error::{Result, StudioError};

/// Checks that `name` can name a `what` (dataset, experiment): 1–100 characters of
/// letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if first_ok && rest_ok && name.len() <= 100 {
        Ok(())
    } else {
        Err(StudioError::Invalid(format!(
            "{what} name {name:?}: use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// A name made from free text: other characters become `-`.
pub fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_tricks_are_refused() {
        for bad in [
            "",
            "../../etc/passwd",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "x y",
            "é",
        ] {
            assert!(check_name("dataset", bad).is_err(), "{bad}");
        }
        for good in ["chat", "oasst-2.v1", "run_3"] {
            check_name("dataset", good).unwrap();
        }
        assert_eq!(sanitize("learning rate=1e-4/x"), "learning-rate-1e-4-x");
    }
}
