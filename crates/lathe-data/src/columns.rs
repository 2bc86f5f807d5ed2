//! Column auto-selection with H2O LLM Studio's preferences: which column holds the
//! prompt, the answer, the system message, the chain ids and the rejected answer.

use lathe_config::Dataset;

/// Which columns of a file play which part; `None` where the file has no such column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapping {
    /// System message column.
    pub system: Option<String>,
    /// Prompt columns (joined with the separator).
    pub prompt: Vec<String>,
    /// Answer column (the chosen answer for preference data).
    pub answer: Option<String>,
    /// Parent id column, chaining rows into conversations.
    pub parent_id: Option<String>,
    /// Row id column.
    pub id: Option<String>,
    /// Rejected answer column (preference data).
    pub rejected_answer: Option<String>,
    /// Rejected prompt column (preference data).
    pub rejected_prompt: Option<String>,
}

const SYSTEM: &[&str] = &["system"];
const PROMPT: &[&str] = &["instruction", "prompt", "question", "input", "user"];
const ANSWER: &[&str] = &["answer", "output", "response", "assistant", "chosen"];
const PARENT: &[&str] = &["parent", "parent_id"];
const ID: &[&str] = &["id", "ID", "index"];
const REJECTED_ANSWER: &[&str] = &["rejected_answer", "rejected_response", "rejected"];
const REJECTED_PROMPT: &[&str] = &[
    "rejected_input",
    "rejected_prompt",
    "rejected_instruction",
    "rejected_question",
];

/// The first preferred name the file has (exact, then ignoring case).
fn pick(columns: &[String], preferred: &[&str]) -> Option<String> {
    preferred
        .iter()
        .find_map(|p| columns.iter().find(|c| c == p))
        .or_else(|| {
            preferred
                .iter()
                .find_map(|p| columns.iter().find(|c| c.eq_ignore_ascii_case(p)))
        })
        .cloned()
}

impl Mapping {
    /// The columns H2O's import wizard would select for a file with `columns`.
    pub fn auto(columns: &[String]) -> Self {
        let prompt = pick(columns, PROMPT);
        let answer = pick(columns, ANSWER);
        // Alpaca files have both `instruction` and `input`: both are the prompt.
        let mut prompts: Vec<String> = prompt.into_iter().collect();
        if prompts.first().is_some_and(|p| p == "instruction") {
            prompts.extend(pick(columns, &["input"]));
        }
        let parent_id = pick(columns, PARENT);
        Self {
            system: pick(columns, SYSTEM),
            prompt: prompts,
            answer,
            id: parent_id.as_ref().and_then(|_| pick(columns, ID)),
            parent_id,
            rejected_answer: pick(columns, REJECTED_ANSWER),
            rejected_prompt: pick(columns, REJECTED_PROMPT),
        }
    }

    /// The mapping the dataset settings name.
    pub fn from_settings(settings: &Dataset) -> Self {
        Self {
            system: settings.system_column.clone(),
            prompt: settings.prompt_column.clone(),
            answer: Some(settings.answer_column.clone()),
            parent_id: settings.parent_id_column.clone(),
            id: settings.id_column.clone(),
            rejected_answer: None,
            rejected_prompt: None,
        }
    }

    /// Writes the mapping into dataset settings (columns it does not have are left).
    pub fn apply(&self, settings: &mut Dataset) {
        settings.system_column = self.system.clone();
        if !self.prompt.is_empty() {
            settings.prompt_column = self.prompt.clone();
        }
        if let Some(answer) = &self.answer {
            settings.answer_column = answer.clone();
        }
        settings.parent_id_column = self.parent_id.clone();
        if self.id.is_some() {
            settings.id_column = self.id.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mapping;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn alpaca_columns_are_instruction_and_input_to_output() {
        let m = Mapping::auto(&cols(&["instruction", "input", "output"]));
        assert_eq!(m.prompt, ["instruction", "input"]);
        assert_eq!(m.answer.as_deref(), Some("output"));
        assert_eq!(m.parent_id, None);
        assert_eq!(m.id, None);
    }

    #[test]
    fn chains_and_preferences_are_found() {
        let m = Mapping::auto(&cols(&[
            "ID",
            "parent_id",
            "System",
            "question",
            "chosen",
            "rejected",
        ]));
        assert_eq!(m.prompt, ["question"]);
        assert_eq!(m.answer.as_deref(), Some("chosen"));
        assert_eq!(m.system.as_deref(), Some("System"));
        assert_eq!(m.parent_id.as_deref(), Some("parent_id"));
        assert_eq!(m.id.as_deref(), Some("ID"));
        assert_eq!(m.rejected_answer.as_deref(), Some("rejected"));
    }
}
