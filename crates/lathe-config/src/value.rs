//! Conversions between typed setting fields and YAML / command-line values.

use serde_yaml_ng::Value;

/// A Rust type a setting can have.
pub trait SettingValue: Sized + Clone {
    /// Reads the value; the error says what was expected.
    fn from_value(value: &Value) -> Result<Self, String>;
    /// The value as YAML.
    fn to_value(&self) -> Value;
}

/// The text of a scalar, if it is one.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SettingValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
            // Python's strtobool, as H2O's command line reads booleans.
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" | "t" | "true" | "on" | "1" => Ok(true),
                "n" | "no" | "f" | "false" | "off" | "0" => Ok(false),
                _ => Err("true or false".into()),
            },
            _ => Err("true or false".into()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl SettingValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let expected = || "an integer".to_string();
        match value {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(f as i64),
                _ => Err(expected()),
            },
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .ok()
                    .or_else(|| {
                        s.parse::<f64>()
                            .ok()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(expected)
            }
            _ => Err(expected()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Number((*self).into())
    }
}

impl SettingValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let parsed = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err("a finite number".into()),
        }
    }
    fn to_value(&self) -> Value {
        Value::Number((*self).into())
    }
}

impl SettingValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(String::new()),
            v => scalar_text(v).ok_or_else(|| "a text".into()),
        }
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
}

/// An optional text (a column or file name): YAML null, `None` and the empty text are
/// all "not set", as in H2O's files.
impl SettingValue for Option<String> {
    fn from_value(value: &Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        Ok(match text.trim() {
            "" | "None" => None,
            _ => Some(text),
        })
    }
    fn to_value(&self) -> Value {
        Value::String(self.clone().unwrap_or_else(|| "None".into()))
    }
}

/// A list of texts: a YAML sequence, or one text with commas between the items.
impl SettingValue for Vec<String> {
    fn from_value(value: &Value) -> Result<Self, String> {
        let expected = || "a list of texts".to_string();
        match value {
            Value::Null => Ok(Vec::new()),
            // H2O writes "no GPU" as `['']`: empty items are dropped.
            Value::Sequence(items) => items
                .iter()
                .map(|v| scalar_text(v).ok_or_else(expected))
                .filter(|item| item.as_ref().map_or(true, |s| !s.trim().is_empty()))
                .collect(),
            v => {
                let text = scalar_text(v).ok_or_else(expected)?;
                Ok(text
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "None")
                    .map(String::from)
                    .collect())
            }
        }
    }
    fn to_value(&self) -> Value {
        Value::Sequence(self.iter().cloned().map(Value::String).collect())
    }
}
