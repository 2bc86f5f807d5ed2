//! A loaded model ready to run: the decoder, its tokenizer and chat template, and the
//! generation loops (greedy/sampled batches with left padding, beam search, streaming).

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::chat_template::{ChatMessage, ChatTemplate};
use crate::error::{ModelError, Result};
use crate::llama::{KvCache, Llama, StepInputs};
use crate::sampling::{choose, log_softmax, process_logits, GenerationConfig};
use crate::tokenizer::Tokenizer;

/// A model with everything needed to turn text into text.
pub struct Engine {
    pub(crate) llama: Llama,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The chat template, when the model ships one.
    pub chat_template: Option<ChatTemplate>,
    /// Defaults from `generation_config.json` (or the GGUF metadata).
    pub generation_defaults: GenerationConfig,
    /// Where the model came from, for messages.
    pub source: String,
    pub(crate) device: Device,
}

/// Tokens generated for one prompt and why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The new token ids (the stop token, EOS, excluded).
    pub tokens: Vec<u32>,
    /// Whether an EOS token ended it (rather than the length limit).
    pub hit_eos: bool,
}

/// The text generated for a prompt and how many tokens made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedText {
    /// The text, cut before any stop string.
    pub text: String,
    /// Tokens generated (EOS excluded).
    pub tokens: usize,
}

/// Whether `deadline` (`max_time`) has passed.
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

impl Engine {
    /// The model's hyperparameters.
    pub fn config(&self) -> &crate::LlamaConfig {
        self.llama.config()
    }

    /// Token ids that end generation under `config`.
    fn eos_ids(&self, config: &GenerationConfig) -> Vec<u32> {
        if config.eos_token_ids.is_empty() {
            self.generation_defaults.eos_token_ids.clone()
        } else {
            config.eos_token_ids.clone()
        }
    }

    /// Renders `messages` with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| {
                ModelError::ChatTemplate(format!("{} has no chat template", self.source))
            })?
            .render(messages, add_generation_prompt)
    }

    /// Logits `[t][v]` at every position of `ids` (one forward pass, no cache kept).
    pub fn logits(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.check_prompt(ids)?;
        let mut cache = KvCache::default();
        let hidden = self.step(&[ids.to_vec()], &[0], &mut cache);
        Ok(logit_rows(self.llama.logits(hidden)))
    }

    fn check_prompt(&self, ids: &[u32]) -> Result<()> {
        let vocab = self.config().vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Prompt(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        let (tokens, context) = (ids.len(), self.config().max_position_embeddings);
        if tokens > context {
            return Err(ModelError::ContextOverflow { tokens, context });
        }
        if tokens == 0 {
            return Err(ModelError::Prompt("the prompt is empty (no tokens)".into()));
        }
        Ok(())
    }

    /// One forward pass of `rows` (equal length, the first `pad[i]` positions of row `i`
    /// being left padding counted from the start of the sequence); returns hidden `[b, t, d]`.
    fn step(&self, rows: &[Vec<u32>], pad: &[usize], cache: &mut KvCache) -> Tensor<3> {
        let (b, t) = (rows.len(), rows[0].len());
        let past = cache.len();
        let positions: Vec<Vec<usize>> = pad
            .iter()
            .map(|&p| (past..past + t).map(|abs| abs.saturating_sub(p)).collect())
            .collect();
        let (cos, sin) = self.llama.rope_tables(&positions, &self.device);
        let total = past + t;
        let window = self.config().sliding_window.filter(|w| *w < total);
        let mask = (pad.iter().any(|&p| p > 0) || window.is_some()).then(|| {
            let mut m = Vec::with_capacity(b * t * total);
            for &p in pad {
                for q in past..past + t {
                    // A real query never sees padding; a padding query sees everything
                    // causal, so that no row of the softmax is empty. Outside the
                    // sliding window nothing is seen.
                    m.extend(
                        (0..total).map(|k| (k < p && q >= p) || window.is_some_and(|w| k + w <= q)),
                    );
                }
            }
            Tensor::<4, Bool>::from_data(TensorData::new(m, [b, 1, t, total]), &self.device)
        });
        let ids: Vec<i64> = rows.iter().flatten().map(|&id| id as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &self.device);
        self.llama.forward_hidden(
            ids,
            &StepInputs {
                cos,
                sin,
                mask,
                hidden: None,
                train: None,
            },
            cache,
        )
    }

    /// Logits `[b][v]` of the last position after a forward pass.
    fn last_logits(&self, rows: &[Vec<u32>], pad: &[usize], cache: &mut KvCache) -> Vec<Vec<f32>> {
        let hidden = self.step(rows, pad, cache);
        let [b, t, d] = hidden.dims();
        let last = hidden.narrow(1, t - 1, 1).reshape([b, 1, d]);
        logit_rows(self.llama.logits(last))
    }

    /// Generates for a batch of prompts (left-padded to one length). `on_token(row, id)`
    /// sees every new token; returning false stops that row.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Result<Vec<Generated>> {
        config.validate()?;
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        for p in prompts {
            self.check_prompt(p)?;
        }
        let deadline = config.max_time.map(|t| Instant::now() + t);
        if config.num_beams > 1 {
            if prompts.len() != 1 {
                return Err(ModelError::Setting {
                    name: "num_beams",
                    message: "beam search takes one prompt at a time".into(),
                });
            }
            let out = self.beam_search(&prompts[0], config, deadline)?;
            for &id in &out.tokens {
                if !on_token(0, id) {
                    break;
                }
            }
            return Ok(vec![out]);
        }
        let eos = self.eos_ids(config);
        let vocab = self.config().vocab_size as u32;
        let pad_id = [self.config().pad_token_id, eos.first().copied()]
            .into_iter()
            .flatten()
            .find(|&id| id < vocab)
            .unwrap_or(0);
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let pad: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
        let mut rows: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                let mut row = vec![pad_id; longest - p.len()];
                row.extend(p);
                row
            })
            .collect();
        let mut seen: Vec<Vec<u32>> = prompts.to_vec();
        let mut out: Vec<Generated> = vec![
            Generated {
                tokens: Vec::new(),
                hit_eos: false
            };
            prompts.len()
        ];
        let mut done = vec![false; prompts.len()];
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut cache = KvCache::default();
        let budget = config
            .max_new_tokens
            .min(self.config().max_position_embeddings - longest);
        for step in 0..budget {
            let logits = self.last_logits(&rows, &pad, &mut cache);
            let mut next = Vec::with_capacity(rows.len());
            for (i, mut row_logits) in logits.into_iter().enumerate() {
                if done[i] {
                    next.push(vec![pad_id]);
                    continue;
                }
                let suppress = step < config.min_new_tokens;
                process_logits(&mut row_logits, &seen[i], config, &eos, suppress);
                let id = choose(&row_logits, config, &mut rng);
                if eos.contains(&id) {
                    out[i].hit_eos = true;
                    done[i] = true;
                } else {
                    out[i].tokens.push(id);
                    seen[i].push(id);
                    done[i] = !on_token(i, id);
                }
                next.push(vec![id]);
            }
            if done.iter().all(|d| *d) || past(deadline) {
                break;
            }
            rows = next;
        }
        Ok(out)
    }

    /// Beam search over one prompt: the `num_beams` best running sequences by summed
    /// log-probability; finished ones ranked by score / length (length penalty 1).
    fn beam_search(
        &self,
        prompt: &[u32],
        config: &GenerationConfig,
        deadline: Option<Instant>,
    ) -> Result<Generated> {
        let width = config.num_beams;
        let eos = self.eos_ids(config);
        let mut cache = KvCache::default();
        let mut logits = self.last_logits(&[prompt.to_vec()], &[0], &mut cache);
        cache.select_rows(self.int_tensor(&vec![0; width]));
        logits = vec![logits[0].clone(); width];
        // Beam 0 alone is live at the start, as transformers seeds the others with -1e9.
        let mut beams: Vec<(Vec<u32>, f64)> = (0..width)
            .map(|i| (Vec::new(), if i == 0 { 0.0 } else { -1e9 }))
            .collect();
        let mut finished: Vec<(Vec<u32>, f64)> = Vec::new();
        let budget = config
            .max_new_tokens
            .min(self.config().max_position_embeddings - prompt.len());
        for step in 0..budget {
            let mut candidates: Vec<(usize, u32, f64)> = Vec::new();
            for (b, (tokens, score)) in beams.iter().enumerate() {
                let mut row = logits[b].clone();
                let seen: Vec<u32> = prompt.iter().chain(tokens).copied().collect();
                process_logits(&mut row, &seen, config, &eos, step < config.min_new_tokens);
                let lp = log_softmax(&row);
                let mut best: Vec<(usize, u32, f64)> = lp
                    .iter()
                    .enumerate()
                    .map(|(id, l)| (b, id as u32, score + l))
                    .collect();
                best.sort_by(|x, y| y.2.total_cmp(&x.2));
                best.truncate(2 * width);
                candidates.extend(best);
            }
            candidates.sort_by(|x, y| y.2.total_cmp(&x.2));
            let mut next: Vec<(usize, Vec<u32>, f64)> = Vec::with_capacity(width);
            for (rank, (b, id, score)) in candidates.into_iter().enumerate() {
                if eos.contains(&id) {
                    if rank < width {
                        let tokens = beams[b].0.clone();
                        let norm = score / (tokens.len() + 1) as f64;
                        finished.push((tokens, norm));
                    }
                } else {
                    let mut tokens = beams[b].0.clone();
                    tokens.push(id);
                    next.push((b, tokens, score));
                }
                if next.len() == width {
                    break;
                }
            }
            let Some(best) = next.first() else {
                beams.clear();
                break;
            };
            let best_running = best.2 / best.1.len() as f64;
            finished.sort_by(|x, y| y.1.total_cmp(&x.1));
            finished.truncate(width);
            if finished.len() == width && finished[width - 1].1 >= best_running {
                beams.clear();
                break;
            }
            let parents: Vec<i64> = next.iter().map(|(b, _, _)| *b as i64).collect();
            cache.select_rows(self.int_tensor(&parents));
            let last: Vec<Vec<u32>> = next
                .iter()
                .map(|(_, t, _)| vec![*t.last().unwrap_or(&0)])
                .collect();
            beams = next.into_iter().map(|(_, t, s)| (t, s)).collect();
            if past(deadline) {
                break;
            }
            if step + 1 < budget {
                logits = self.last_logits(&last, &vec![0; width], &mut cache);
            }
        }
        let hit_eos = !finished.is_empty();
        for (tokens, score) in beams {
            let norm = score / tokens.len().max(1) as f64;
            finished.push((tokens, norm));
        }
        finished.sort_by(|x, y| y.1.total_cmp(&x.1));
        let (tokens, _) = finished.into_iter().next().unwrap_or_default();
        Ok(Generated { tokens, hit_eos })
    }

    fn int_tensor(&self, values: &[i64]) -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [values.len()]),
            &self.device,
        )
    }

    /// Generates a continuation of `prompt` text, calling `on_text` with each new piece
    /// of decoded text as it becomes final (it returns false to stop early, e.g. when
    /// the listener went away); stop strings end it and are cut off.
    /// `add_special_tokens` is true for raw text and false for an already rendered chat.
    pub fn generate_text(
        &self,
        prompt: &str,
        add_special_tokens: bool,
        config: &GenerationConfig,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GeneratedText> {
        let ids = self.tokenizer.encode(prompt, add_special_tokens)?;
        let mut streamer = TextStreamer::new(&self.tokenizer, &config.stop_strings);
        let mut error = None;
        self.generate(&[ids], config, &mut |_, id| match streamer.push(id) {
            Ok((piece, stop)) => on_text(&piece) && !stop,
            Err(e) => {
                error = Some(e);
                false
            }
        })?;
        if let Some(e) = error {
            return Err(e);
        }
        let rest = streamer.finish()?;
        if !rest.is_empty() {
            on_text(&rest);
        }
        Ok(GeneratedText {
            tokens: streamer.ids.len(),
            text: streamer.text,
        })
    }
}

/// Turns a stream of token ids into final text pieces: waits while the text ends in
/// an incomplete UTF-8 sequence and holds back what could begin a stop string.
struct TextStreamer<'a> {
    tokenizer: &'a Tokenizer,
    stops: &'a [String],
    ids: Vec<u32>,
    text: String,
    emitted: usize,
}

impl<'a> TextStreamer<'a> {
    fn new(tokenizer: &'a Tokenizer, stops: &'a [String]) -> Self {
        Self {
            tokenizer,
            stops,
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// Adds a token; returns the newly final text and whether a stop string appeared.
    fn push(&mut self, id: u32) -> Result<(String, bool)> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, true)?;
        if text.ends_with('\u{FFFD}') {
            return Ok((String::new(), false));
        }
        self.text = text;
        if let Some(cut) = self
            .stops
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            return Ok((self.take(self.text.len()), true));
        }
        let hold = self.stops.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        let mut upto = self.text.len().saturating_sub(hold).max(self.emitted);
        while !self.text.is_char_boundary(upto) {
            upto -= 1;
        }
        Ok((self.take(upto), false))
    }

    fn take(&mut self, upto: usize) -> String {
        let piece = self.text[self.emitted.min(upto)..upto].to_string();
        self.emitted = self.emitted.max(upto);
        piece
    }

    /// Everything not yet emitted.
    fn finish(&mut self) -> Result<String> {
        if !self.ids.is_empty() {
            let text = self.tokenizer.decode(&self.ids, true)?;
            if text.len() > self.text.len() && self.stops.iter().all(|s| !text.contains(s.as_str()))
            {
                self.text = text;
            }
        }
        Ok(self.take(self.text.len()))
    }
}

/// Logits `[b, t, v]` as one row of `v` values per position.
fn logit_rows(logits: Tensor<3>) -> Vec<Vec<f32>> {
    let vocab = logits.dims()[2];
    logits
        .try_into_vec_as::<f32>()
        .expect("model outputs are readable f32")
        .chunks(vocab)
        .map(<[f32]>::to_vec)
        .collect()
}
