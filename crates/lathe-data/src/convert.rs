//! Chat-shaped JSON records → Lathe's table form: ShareGPT (`conversations` of
//! `from`/`value`) and OpenAI (`messages` of `role`/`content`) become one row per
//! prompt/answer turn, chained by `id`/`parent_id`, so one code path serves all.

use serde_json::{Map, Value};

/// The shape a JSON file's records were found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One object per row (CSV-like; Alpaca's `instruction`/`input`/`output` too).
    Rows,
    /// ShareGPT: `conversations: [{from, value}]`.
    ShareGpt,
    /// OpenAI chat: `messages: [{role, content}]`.
    Messages,
}

impl Shape {
    /// The shape of a record: a chat list under its key, else plain rows.
    pub(crate) fn of(record: &Value) -> Self {
        let list = |key: &str| matches!(record.get(key), Some(Value::Array(_)));
        if list("conversations") {
            Shape::ShareGpt
        } else if list("messages") {
            Shape::Messages
        } else {
            Shape::Rows
        }
    }

    fn key(self) -> &'static str {
        match self {
            Shape::Rows => "",
            Shape::ShareGpt => "conversations",
            Shape::Messages => "messages",
        }
    }

    /// Human name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Rows => "rows",
            Shape::ShareGpt => "ShareGPT conversations",
            Shape::Messages => "OpenAI messages",
        }
    }
}

/// Columns of a converted chat table; extra scalar fields of the records follow.
pub(crate) const CHAT_COLUMNS: [&str; 5] = ["id", "parent_id", "system", "instruction", "output"];

#[derive(Clone, Copy, PartialEq)]
enum Role {
    System,
    User,
    Assistant,
}

/// One converted record: its rows (cells by column name) in turn order.
pub(crate) type ChatRows = Vec<Vec<(String, Option<String>)>>;

/// Converts one chat record (number `record`, 1-based) into rows; the error says what
/// is wrong with which message.
pub(crate) fn chat_rows(shape: Shape, record: usize, value: Value) -> Result<ChatRows, String> {
    let Value::Object(mut map) = value else {
        return Err("expected a JSON object".into());
    };
    let Some(Value::Array(messages)) = map.remove(shape.key()) else {
        return Err(format!(
            "has no `{}` list, but the first record does ({})",
            shape.key(),
            shape.name()
        ));
    };
    let mut system = map.remove("system").and_then(text_of);
    let mut turns: Vec<(String, Option<String>)> = Vec::new();
    let mut expect_user = true;
    for (m, message) in messages.into_iter().enumerate() {
        let (role, text) = message_parts(shape, &message)
            .map_err(|e| format!("{} {}: {e}", shape.key(), m + 1))?;
        match role {
            Role::System if turns.is_empty() && expect_user => {
                system = Some(text);
            }
            Role::User if expect_user => {
                turns.push((text, None));
                expect_user = false;
            }
            Role::Assistant if !expect_user => {
                turns.last_mut().expect("a user turn precedes").1 = Some(text);
                expect_user = true;
            }
            _ => {
                let expected = if expect_user { "user" } else { "assistant" };
                return Err(format!(
                    "{} {}: expected a {expected} message here (turns alternate user, assistant; a system message may come first)",
                    shape.key(),
                    m + 1
                ));
            }
        }
    }
    if turns.is_empty() {
        return Err(format!("`{}` has no user message", shape.key()));
    }
    // Preference records put the final answer beside the conversation.
    let chosen = map.get("chosen").cloned().and_then(text_of);
    let last = turns.last_mut().expect("not empty");
    if last.1.is_none() {
        last.1 = chosen;
    }
    if last.1.is_none() {
        return Err(format!(
            "`{}` ends with a user message that has no answer",
            shape.key()
        ));
    }
    let extras: Vec<(String, Option<String>)> =
        map.into_iter().map(|(k, v)| (k, text_of(v))).collect();
    let n = turns.len();
    Ok(turns
        .into_iter()
        .enumerate()
        .map(|(t, (prompt, answer))| {
            let mut row = vec![
                ("id".to_string(), Some(format!("{record}-{t}"))),
                (
                    "parent_id".to_string(),
                    (t > 0).then(|| format!("{record}-{}", t - 1)),
                ),
                (
                    "system".to_string(),
                    if t == 0 { system.clone() } else { None },
                ),
                ("instruction".to_string(), Some(prompt)),
                ("output".to_string(), answer),
            ];
            // Preference answers belong to the final turn; other fields to every turn.
            row.extend(
                extras
                    .iter()
                    .filter(|(k, _)| t + 1 == n || (k != "chosen" && k != "rejected"))
                    .cloned(),
            );
            row
        })
        .collect())
}

fn message_parts(shape: Shape, message: &Value) -> Result<(Role, String), String> {
    let (role_key, text_key) = match shape {
        Shape::ShareGpt => ("from", "value"),
        _ => ("role", "content"),
    };
    let field = |key: &str| {
        message
            .get(key)
            .ok_or_else(|| format!("has no `{key}`"))
            .cloned()
    };
    let Value::String(role) = field(role_key)? else {
        return Err(format!("`{role_key}` is not text"));
    };
    let role = match role.as_str() {
        "system" => Role::System,
        "human" | "user" | "observation" | "tool" => Role::User,
        "gpt" | "assistant" | "function_call" | "model" => Role::Assistant,
        other => return Err(format!("unknown {role_key} `{other}`")),
    };
    let text = text_of(field(text_key)?).ok_or_else(|| format!("`{text_key}` is empty"))?;
    Ok((role, text))
}

/// The text of a field: strings as they are, `{from, value}` / `{role, content}`
/// messages as their text, other values as JSON; `null` as missing.
pub(crate) fn text_of(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Object(map) if is_message(&map) => map
            .get("value")
            .or_else(|| map.get("content"))
            .cloned()
            .and_then(text_of),
        other => Some(other.to_string()),
    }
}

fn is_message(map: &Map<String, Value>) -> bool {
    (map.contains_key("from") && map.contains_key("value"))
        || (map.contains_key("role") && map.contains_key("content"))
}
