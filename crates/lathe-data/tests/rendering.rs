//! Rendering conversations to tokens: markers, EOS flags, loss masks, roles and the
//! truncation rules, with a character-level tokenizer so that every token is visible.

use std::sync::Arc;

use lathe_config::Dataset;
use lathe_data::{Renderer, Role, Sample, TextEncoder, Turn};

/// One token per character; EOS is `#`.
struct Chars;

impl TextEncoder for Chars {
    fn encode_text(&self, text: &str) -> Result<Vec<u32>, String> {
        Ok(text.chars().map(|c| c as u32).collect())
    }
    fn eos_text(&self) -> Option<String> {
        Some("#".into())
    }
    fn decode(&self, ids: &[u32]) -> Result<String, String> {
        Ok(ids.iter().map(|&i| char::from_u32(i).unwrap()).collect())
    }
}

fn settings() -> Dataset {
    Dataset {
        text_system_start: "S:".into(),
        text_prompt_start: "P:".into(),
        text_answer_separator: "A:".into(),
        ..Default::default()
    }
}

fn sample(system: Option<&str>, turns: &[(&str, &str)]) -> Sample {
    Sample {
        row: turns.len(),
        group: 0,
        system: system.map(Arc::from),
        turns: turns
            .iter()
            .enumerate()
            .map(|(i, (p, a))| Turn {
                row: i + 1,
                prompt: Arc::from(*p),
                answer: Arc::from(*a),
            })
            .collect(),
    }
}

/// The rendered text, with the tokens that carry loss in brackets.
fn marked(d: &Dataset, max: usize, s: &Sample) -> String {
    let encoded = Renderer::new(d, max, &Chars).encode_sample(s).unwrap();
    let mut out = String::new();
    let mut inside = false;
    for (&id, &loss) in encoded.input_ids.iter().zip(&encoded.loss_mask) {
        if loss != inside {
            out.push(if loss { '[' } else { ']' });
            inside = loss;
        }
        out.push(char::from_u32(id).unwrap());
    }
    if inside {
        out.push(']');
    }
    out
}

#[test]
fn multi_turn_rendering_and_masks() {
    let s = sample(Some("sys"), &[("hi", "yo"), ("bye", "ciao")]);
    let d = settings();
    assert_eq!(marked(&d, 512, &s), "S:sys#P:hi#A:[yo#]P:bye#A:[ciao#]");
    let mut last = d.clone();
    last.only_last_answer = true;
    assert_eq!(marked(&last, 512, &s), "S:sys#P:hi#A:yo#P:bye#A:[ciao#]");
    let mut open = d.clone();
    open.mask_prompt_labels = false;
    assert_eq!(marked(&open, 512, &s), "[S:sys#P:hi#A:yo#P:bye#A:ciao#]");
    let mut no_eos = d.clone();
    no_eos.add_eos_token_to_system = false;
    no_eos.add_eos_token_to_prompt = false;
    no_eos.add_eos_token_to_answer = false;
    assert_eq!(marked(&no_eos, 512, &s), "S:sysP:hiA:[yo]P:byeA:[ciao]");

    let encoded = Renderer::new(&d, 512, &Chars).encode_sample(&s).unwrap();
    assert_eq!(encoded.prompt_len, encoded.input_ids.len() - "ciao#".len());
    let roles: String = encoded
        .roles
        .iter()
        .map(|r| match r {
            Role::System => 's',
            Role::Prompt => 'p',
            Role::Answer => 'a',
        })
        .collect();
    assert_eq!(roles, "sssssspppppppaaappppppppaaaaa");
    let view = Renderer::new(&d, 512, &Chars).token_view(&encoded).unwrap();
    assert_eq!(view[13].text, "y");
    assert!(view[13].loss && view[13].role == Role::Answer);
}

#[test]
fn truncation_keeps_prompt_ends_answer_starts_and_the_conversation_end() {
    let d = settings();
    // Each piece is cut to max_length first: the prompt keeps its end ...
    let s = sample(None, &[("abcdefghij", "xyz")]);
    assert_eq!(marked(&d, 8, &s), "j#A:[xyz#]");
    // ... the answer its start; then the whole is cut from the left.
    let s = sample(None, &[("p", "0123456789")]);
    let encoded = Renderer::new(&d, 8, &Chars).encode_sample(&s).unwrap();
    assert!(encoded.truncated);
    assert_eq!(marked(&d, 8, &s), "[01234567]");
    let s = sample(Some("system"), &[("one", "1"), ("two", "2")]);
    assert_eq!(marked(&d, 12, &s), "[1#]P:two#A:[2#]");
    let short = Renderer::new(&d, 512, &Chars).encode_sample(&s).unwrap();
    assert!(!short.truncated);
}

#[test]
fn conversation_text_renders_history_like_training() {
    let d = settings();
    let r = Renderer::new(&d, 512, &Chars);
    let text = r
        .conversation_text(Some("sys"), &[("hi".into(), "yo".into())], "bye")
        .unwrap();
    assert_eq!(text, "S:sys#P:hi#A:yo#P:bye#A:");
    assert_eq!(r.conversation_text(None, &[], "q").unwrap(), "P:q#A:");
}

#[test]
fn the_generation_prompt_survives_a_long_answer() {
    let s = sample(
        None,
        &[
            ("hi", "yo"),
            ("question", "a long answer that fills it all"),
        ],
    );
    let d = settings();
    let r = Renderer::new(&d, 12, &Chars);
    // The training sample keeps its end: the answer pushes the prompt out.
    assert_eq!(r.encode_sample(&s).unwrap().prompt_len, 0);
    // The prompt to answer is everything before the last answer, its last 12 tokens.
    let prompt = r.encode_prompt(&s).unwrap();
    let text: String = prompt.iter().map(|&i| char::from_u32(i).unwrap()).collect();
    assert_eq!(text, ":question#A:");
}
