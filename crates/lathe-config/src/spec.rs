//! The description of one setting: what the web form, the command line, the docs and
//! the validation all read.

use serde_yaml_ng::Value;

/// The values a setting accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `true` / `false`.
    Bool,
    /// A whole number in `min..=max` (`max` open when `None`).
    Int { min: i64, max: Option<i64> },
    /// A number in `min..=max` with a slider step.
    Float {
        min: f64,
        max: Option<f64>,
        step: f64,
    },
    /// Free text.
    Text,
    /// One of `options`; other values only when `custom`.
    Choice {
        options: &'static [&'static str],
        custom: bool,
    },
    /// A list of texts, each one of `options` unless `custom`; `options` empty: anything.
    List {
        options: &'static [&'static str],
        custom: bool,
    },
}

/// One setting.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Group in the YAML file (`dataset`, `training`, …); empty for top-level keys.
    pub group: &'static str,
    /// Key inside the group.
    pub key: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// Default value.
    pub default: Value,
    /// One-line help.
    pub tooltip: &'static str,
    /// Values a grid search tries by default.
    pub grid: &'static [&'static str],
    /// When the form shows the setting: `""` always, `"group.key"` when that setting
    /// is true / set, `"group.key=value"` or `"group.key!=value"`.
    pub shown_if: &'static str,
    /// Only meaningful on a GPU (accepted everywhere, reported when set on a CPU).
    pub gpu_only: bool,
    /// Serialised but not shown in the form.
    pub hidden: bool,
}

impl Spec {
    /// `group.key`, or `key` for top-level settings.
    pub fn path(&self) -> String {
        if self.group.is_empty() {
            self.key.to_string()
        } else {
            format!("{}.{}", self.group, self.key)
        }
    }

    /// Checks a value already read as the field's type against the allowed range or
    /// choices; the error text names the allowed values.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match &self.kind {
            Kind::Int { min, max } => {
                let v = value.as_i64().unwrap_or_default();
                if v < *min || max.is_some_and(|m| v > m) {
                    return Err(self.range_text());
                }
            }
            Kind::Float { min, max, .. } => {
                let v = value.as_f64().unwrap_or_default();
                if v < *min || max.is_some_and(|m| v > m) {
                    return Err(self.range_text());
                }
            }
            Kind::Choice {
                options,
                custom: false,
            } => {
                let v = value.as_str().unwrap_or_default();
                if !options.contains(&v) {
                    return Err(self.range_text());
                }
            }
            Kind::List {
                options,
                custom: false,
            } if !options.is_empty() => {
                for item in value.as_sequence().into_iter().flatten() {
                    if !options.contains(&item.as_str().unwrap_or_default()) {
                        return Err(self.range_text());
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The allowed values in words.
    pub fn range_text(&self) -> String {
        match &self.kind {
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max: Some(m) } => format!("an integer from {min} to {m}"),
            Kind::Int { min, max: None } => format!("an integer ≥ {min}"),
            Kind::Float {
                min, max: Some(m), ..
            } => format!("a number from {min} to {m}"),
            Kind::Float { min, max: None, .. } => format!("a number ≥ {min}"),
            Kind::Text => "a text".into(),
            Kind::Choice { options, .. } => format!("one of {}", options.join(", ")),
            Kind::List { options: [], .. } => "a list of texts".into(),
            Kind::List { options, .. } => format!("a list of {}", options.join(", ")),
        }
    }
}

/// A bounded integer.
pub const fn int(min: i64, max: i64) -> Kind {
    Kind::Int {
        min,
        max: Some(max),
    }
}

/// An integer with only a lower bound.
pub const fn int_from(min: i64) -> Kind {
    Kind::Int { min, max: None }
}

/// A bounded number with its slider step.
pub const fn float(min: f64, max: f64, step: f64) -> Kind {
    Kind::Float {
        min,
        max: Some(max),
        step,
    }
}

/// A number with only a lower bound.
pub const fn float_from(min: f64, step: f64) -> Kind {
    Kind::Float {
        min,
        max: None,
        step,
    }
}

/// One of a fixed set of values.
pub const fn choice(options: &'static [&'static str]) -> Kind {
    Kind::Choice {
        options,
        custom: false,
    }
}

/// One of the suggested values or any other.
pub const fn suggest(options: &'static [&'static str]) -> Kind {
    Kind::Choice {
        options,
        custom: true,
    }
}

/// A list whose items come from `options` or are free (`custom`).
pub const fn list(options: &'static [&'static str], custom: bool) -> Kind {
    Kind::List { options, custom }
}

/// Free text.
pub const TEXT: Kind = Kind::Text;
/// A flag.
pub const BOOL: Kind = Kind::Bool;
