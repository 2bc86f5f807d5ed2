//! Samples → token ids with a per-token loss mask and roles, rendered with H2O LLM
//! Studio's text markers and EOS flags, or with the backbone's own chat template.

use lathe_config::Dataset;

use crate::error::{DataError, Result};
use crate::samples::Sample;

/// Turns text into token ids (the backbone's tokenizer implements it).
pub trait TextEncoder {
    /// Token ids of `text`, without special tokens added by a post-processor.
    fn encode_text(&self, text: &str) -> std::result::Result<Vec<u32>, String>;
    /// The end-of-sequence token's text, if the tokenizer has one.
    fn eos_text(&self) -> Option<String>;
    /// The text of token ids, special tokens included.
    fn decode(&self, ids: &[u32]) -> std::result::Result<String, String>;
}

/// What part of a conversation a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The system message (with its marker).
    System,
    /// A prompt with its markers, up to the answer separator.
    Prompt,
    /// An answer (with its EOS).
    Answer,
}

/// A sample as token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Data row it came from.
    pub row: usize,
    /// Token ids of the whole rendered sample.
    pub input_ids: Vec<u32>,
    /// `true` where the token is a training target (carries loss).
    pub loss_mask: Vec<bool>,
    /// The part each token belongs to.
    pub roles: Vec<Role>,
    /// Tokens before the last answer: what generation starts from.
    pub prompt_len: usize,
    /// Whether the sample was cut to `max_length`.
    pub truncated: bool,
}

/// One token of a rendered sample, for the token-level view.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: u32,
    /// The token's text.
    pub text: String,
    /// Which part of the conversation it belongs to.
    pub role: Role,
    /// Whether it is a training target.
    pub loss: bool,
}

/// A backbone's own chat template, as `lathe-data` sees it.
pub trait ChatFormat {
    /// Renders `(role, content)` messages (roles `system`, `user`, `assistant`);
    /// `add_generation_prompt` opens an assistant turn at the end.
    fn render(
        &self,
        messages: &[(&str, &str)],
        add_generation_prompt: bool,
    ) -> std::result::Result<String, String>;
}

/// Renders and tokenizes samples. With text markers, as H2O does: system
/// `text_system_start + system [+ EOS]` before the first prompt, each prompt
/// `text_prompt_start + prompt [+ EOS] + text_answer_separator`, each answer
/// `answer [+ EOS]`. With a chat template, the template's text for each turn. Each
/// piece is tokenized on its own and cut to `max_length` (prompts keep their end,
/// system and answers their start), then the whole conversation is cut from the left
/// to `max_length`.
#[derive(Clone)]
pub struct Renderer<'a> {
    settings: &'a Dataset,
    max_length: usize,
    encoder: &'a dyn TextEncoder,
    template: Option<&'a dyn ChatFormat>,
    eos: String,
}

impl<'a> Renderer<'a> {
    /// A renderer with the text markers of the dataset settings.
    pub fn new(settings: &'a Dataset, max_length: usize, encoder: &'a dyn TextEncoder) -> Self {
        // H2O replaces a missing EOS with `</s>`.
        let eos = encoder.eos_text().unwrap_or_else(|| "</s>".into());
        Self {
            settings,
            max_length,
            encoder,
            template: None,
            eos,
        }
    }

    /// The same renderer with another `max_length`.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// Most tokens per sample.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The same renderer with a chat template instead of the text markers.
    pub fn with_template(mut self, template: &'a dyn ChatFormat) -> Self {
        self.template = Some(template);
        self
    }

    fn system_text(&self, system: &str) -> String {
        let s = self.settings;
        let mut text = format!("{}{system}", s.text_system_start);
        if s.add_eos_token_to_system {
            text.push_str(&self.eos);
        }
        text
    }

    fn prompt_piece(&self, prompt: &str) -> String {
        let s = self.settings;
        let mut text = format!("{}{prompt}", s.text_prompt_start);
        if s.add_eos_token_to_prompt {
            text.push_str(&self.eos);
        }
        text.push_str(&s.text_answer_separator);
        text
    }

    /// An answer as the text markers render it: with EOS when
    /// `add_eos_token_to_answer`.
    pub fn answer_text(&self, answer: &str) -> String {
        let mut text = answer.to_string();
        if self.settings.add_eos_token_to_answer {
            text.push_str(&self.eos);
        }
        text
    }

    /// The text of a conversation so far, ready for the model to answer `user`.
    pub fn conversation_text(
        &self,
        system: Option<&str>,
        history: &[(String, String)],
        user: &str,
    ) -> Result<String> {
        let system = system.filter(|t| !t.is_empty());
        if let Some(template) = self.template {
            let mut messages: Vec<(&str, &str)> =
                system.map(|s| ("system", s)).into_iter().collect();
            for (prompt, answer) in history {
                messages.push(("user", prompt));
                messages.push(("assistant", answer));
            }
            messages.push(("user", user));
            return template
                .render(&messages, true)
                .map_err(DataError::Template);
        }
        let mut text = system.map(|t| self.system_text(t)).unwrap_or_default();
        for (prompt, answer) in history {
            text.push_str(&self.prompt_piece(prompt));
            text.push_str(&self.answer_text(answer));
        }
        text.push_str(&self.prompt_piece(user));
        Ok(text)
    }

    /// A Jinja chat template (Hugging Face's `chat_template`) that renders a
    /// conversation exactly as [`Self::conversation_text`] does with the text markers;
    /// `None` when the renderer uses the backbone's own template.
    pub fn marker_template(&self) -> Option<String> {
        if self.template.is_some() {
            return None;
        }
        let s = self.settings;
        let literal = |text: &str| format!("{{{{ {} }}}}", serde_json::Value::from(text));
        let eos = |on: bool| {
            if on {
                literal(&self.eos)
            } else {
                String::new()
            }
        };
        Some(format!(
            "{{% for message in messages %}}\
             {{% if message['role'] == 'system' %}}{{% if message['content'] %}}{}{{{{ message['content'] }}}}{}{{% endif %}}\
             {{% elif message['role'] == 'user' %}}{}{{{{ message['content'] }}}}{}{}\
             {{% else %}}{{{{ message['content'] }}}}{}{{% endif %}}\
             {{% endfor %}}",
            literal(&s.text_system_start),
            eos(s.add_eos_token_to_system),
            literal(&s.text_prompt_start),
            eos(s.add_eos_token_to_prompt),
            literal(&s.text_answer_separator),
            eos(s.add_eos_token_to_answer),
        ))
    }

    /// Stop strings for generation: the non-empty marker texts (none with a chat
    /// template, whose turns end with an EOS token).
    pub fn stop_strings(&self) -> Vec<String> {
        if self.template.is_some() {
            return Vec::new();
        }
        let s = self.settings;
        [
            &s.text_prompt_start,
            &s.text_answer_separator,
            &s.text_system_start,
        ]
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
    }

    /// The rendered pieces of a sample, in order, with their roles.
    pub fn pieces(&self, sample: &Sample) -> Result<Vec<(String, Role)>> {
        let Some(template) = self.template else {
            let mut pieces = Vec::with_capacity(1 + 2 * sample.turns.len());
            if let Some(system) = sample.system.as_deref() {
                pieces.push((self.system_text(system), Role::System));
            }
            for turn in &sample.turns {
                pieces.push((self.prompt_piece(&turn.prompt), Role::Prompt));
                pieces.push((self.answer_text(&turn.answer), Role::Answer));
            }
            return Ok(pieces);
        };
        // Render the growing conversation and take what each message adds; this needs
        // a template whose output for a prefix of the messages is a prefix of its
        // output for all of them, which chat templates are written to be.
        let render = |messages: &[(&str, &str)], open: bool| {
            template.render(messages, open).map_err(DataError::Template)
        };
        let not_incremental = |turn: usize| {
            DataError::Template(format!(
                "the chat template does not render turn {turn} as a continuation of the turns before it, so the loss mask cannot be placed; use the text markers (dataset.use_chat_template false)"
            ))
        };
        let mut messages: Vec<(&str, &str)> = Vec::new();
        let mut pieces = Vec::new();
        let mut done = String::new();
        if let Some(system) = sample.system.as_deref() {
            messages.push(("system", system));
            done = render(&messages, false)?;
            pieces.push((done.clone(), Role::System));
        }
        for (i, turn) in sample.turns.iter().enumerate() {
            messages.push(("user", &turn.prompt));
            let open = render(&messages, true)?;
            let prompt = open
                .strip_prefix(done.as_str())
                .ok_or_else(|| not_incremental(i + 1))?;
            pieces.push((prompt.to_string(), Role::Prompt));
            messages.push(("assistant", &turn.answer));
            let closed = render(&messages, false)?;
            let answer = closed
                .strip_prefix(open.as_str())
                .ok_or_else(|| not_incremental(i + 1))?;
            pieces.push((answer.to_string(), Role::Answer));
            done = closed;
        }
        Ok(pieces)
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encoder.encode_text(text).map_err(DataError::Tokenizer)
    }

    /// One piece's tokens, cut to `max_length` (prompts keep their end, answers and
    /// system messages their start), and whether it was cut.
    fn encode_piece(&self, text: &str, role: Role) -> Result<(Vec<u32>, bool)> {
        let max = self.max_length;
        let mut ids = self.encode(text)?;
        if ids.len() <= max {
            return Ok((ids, false));
        }
        match role {
            Role::Prompt => drop(ids.drain(..ids.len() - max)),
            _ => ids.truncate(max),
        }
        Ok((ids, true))
    }

    /// The tokens a model answers the sample's last prompt from: everything before
    /// the last answer, cut like a sample's pieces and then to the last
    /// `max_length` tokens (never cut away for the sake of the answer).
    pub fn encode_prompt(&self, sample: &Sample) -> Result<Vec<u32>> {
        let pieces = self.pieces(sample)?;
        let last_answer = pieces
            .iter()
            .rposition(|(_, r)| *r == Role::Answer)
            .unwrap_or(pieces.len());
        let mut ids = Vec::new();
        for (text, role) in &pieces[..last_answer] {
            ids.extend(self.encode_piece(text, *role)?.0);
        }
        let cut = ids.len().saturating_sub(self.max_length);
        ids.drain(..cut);
        Ok(ids)
    }

    /// Token ids, loss mask and roles of one sample.
    pub fn encode_sample(&self, sample: &Sample) -> Result<Encoded> {
        let s = self.settings;
        let max = self.max_length;
        let mut out = Encoded {
            row: sample.row,
            input_ids: Vec::new(),
            loss_mask: Vec::new(),
            roles: Vec::new(),
            prompt_len: 0,
            truncated: false,
        };
        let prompt_carries_loss = !s.mask_prompt_labels && !s.only_last_answer;
        let pieces = self.pieces(sample)?;
        let last_answer = pieces.iter().rposition(|(_, r)| *r == Role::Answer);
        let mut last_answer_len = 0;
        for (k, (text, role)) in pieces.iter().enumerate() {
            let (ids, cut) = self.encode_piece(text, *role)?;
            out.truncated |= cut;
            let loss = match role {
                Role::Answer => Some(k) == last_answer || !s.only_last_answer,
                _ => prompt_carries_loss,
            };
            if Some(k) == last_answer {
                last_answer_len = ids.len();
            }
            out.loss_mask.extend(std::iter::repeat_n(loss, ids.len()));
            out.roles.extend(std::iter::repeat_n(*role, ids.len()));
            out.input_ids.extend(ids);
        }
        if out.input_ids.len() > max {
            out.truncated = true;
            let cut = out.input_ids.len() - max;
            out.input_ids.drain(..cut);
            out.loss_mask.drain(..cut);
            out.roles.drain(..cut);
        }
        out.prompt_len = out.input_ids.len() - last_answer_len.min(out.input_ids.len());
        Ok(out)
    }

    /// Each token of an encoded sample with its text, role and whether it carries
    /// loss: the data of the token-level view.
    pub fn token_view(&self, encoded: &Encoded) -> Result<Vec<TokenInfo>> {
        encoded
            .input_ids
            .iter()
            .zip(&encoded.roles)
            .zip(&encoded.loss_mask)
            .map(|((&id, &role), &loss)| {
                Ok(TokenInfo {
                    id,
                    text: self.encoder.decode(&[id]).map_err(DataError::Tokenizer)?,
                    role,
                    loss,
                })
            })
            .collect()
    }
}
