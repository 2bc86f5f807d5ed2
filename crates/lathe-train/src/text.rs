//! The backbone's tokenizer and chat template as `lathe-data` sees them, and the
//! renderer a run's settings ask for.

use lathe_config::Dataset;
use lathe_data::{ChatFormat, Renderer, TextEncoder};
use lathe_model::{ChatMessage, ChatTemplate, Tokenizer};

use crate::error::{Result, TrainError};

/// A backbone's text handling: tokenizer, and chat template when it has one.
#[derive(Clone)]
pub struct TextFormat {
    tokenizer: Tokenizer,
    template: Option<Template>,
}

#[derive(Clone)]
struct Template(ChatTemplate);

impl TextFormat {
    /// The text handling of a backbone; with `dataset.use_chat_template` the backbone
    /// must have a chat template.
    pub fn new(
        tokenizer: Tokenizer,
        template: Option<ChatTemplate>,
        settings: &Dataset,
    ) -> Result<Self> {
        if settings.use_chat_template && template.is_none() {
            return Err(TrainError::Invalid(
                "dataset.use_chat_template is on, but the backbone has no chat template; turn it off to use the text markers".into(),
            ));
        }
        Ok(Self {
            tokenizer,
            template: template.map(Template),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The renderer the settings ask for: the chat template with
    /// `use_chat_template`, else the text markers.
    pub fn renderer<'a>(&'a self, settings: &'a Dataset, max_length: usize) -> Renderer<'a> {
        let renderer = Renderer::new(settings, max_length, self);
        match &self.template {
            Some(template) if settings.use_chat_template => renderer.with_template(template),
            _ => renderer,
        }
    }
}

impl TextEncoder for TextFormat {
    fn encode_text(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        self.tokenizer
            .encode(text, false)
            .map_err(|e| e.to_string())
    }
    fn eos_text(&self) -> Option<String> {
        self.tokenizer.eos_token.clone()
    }
    fn decode(&self, ids: &[u32]) -> std::result::Result<String, String> {
        self.tokenizer.decode(ids, false).map_err(|e| e.to_string())
    }
}

impl ChatFormat for Template {
    fn render(
        &self,
        messages: &[(&str, &str)],
        add_generation_prompt: bool,
    ) -> std::result::Result<String, String> {
        let messages: Vec<ChatMessage> = messages
            .iter()
            .map(|(role, content)| ChatMessage::new(role, content))
            .collect();
        self.0
            .render(&messages, add_generation_prompt)
            .map_err(|e| e.to_string())
    }
}
