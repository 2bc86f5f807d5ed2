//! `lathe generate` and `lathe chat`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use lathe_model::{ChatMessage, Engine, GenerationConfig};

/// Which model and how to sample, shared by `generate` and `chat`.
#[derive(Args)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face model folder, a Hub id (org/name), or `demo`.
    #[arg(long, default_value = "demo")]
    model: String,
    /// A training run folder: its trained weights and prompt format (instead of --model).
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<std::path::PathBuf>,
    /// A PEFT LoRA adapter folder to apply to --model.
    #[arg(long, value_name = "DIR", conflicts_with = "run")]
    adapter: Option<std::path::PathBuf>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Fewest tokens to generate before EOS is allowed.
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Sampling temperature; 0 means greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample only among the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample only among the most likely tokens that make up probability P.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Penalty for tokens already in the text (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Beam search width (1 to 4; greedy only).
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the text contains this (repeatable).
    #[arg(long = "stop")]
    stop_strings: Vec<String>,
    /// Stop generating after this many seconds (0 = no limit).
    #[arg(long, default_value_t = 0.0)]
    max_time: f64,
    /// A system prompt (with --chat, or in `lathe chat`).
    #[arg(long)]
    system: Option<String>,
}

impl ModelArgs {
    fn generation(&self, engine: &Engine) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            num_beams: self.num_beams,
            seed: self.seed,
            stop_strings: self.stop_strings.clone(),
            eos_token_ids: engine.generation_defaults.eos_token_ids.clone(),
            max_time: Duration::try_from_secs_f64(self.max_time)
                .ok()
                .filter(|d| !d.is_zero()),
        }
    }

    fn load(&self) -> Result<Model> {
        let start = Instant::now();
        let model = match &self.run {
            Some(run) => {
                let trained = lathe_train::TrainedModel::load(run)
                    .with_context(|| format!("loading run {}", run.display()))?;
                Model::Trained(Box::new(trained))
            }
            None => Model::Plain(Box::new(match &self.adapter {
                Some(adapter) => lathe_train::load_with_adapter(&self.model, adapter)
                    .with_context(|| {
                        format!(
                            "loading `{}` with adapter {}",
                            self.model,
                            adapter.display()
                        )
                    })?,
                None => lathe_model::load(&self.model)
                    .with_context(|| format!("loading model `{}`", self.model))?,
            })),
        };
        eprintln!(
            "loaded {} in {:.1}s",
            model.engine().source,
            start.elapsed().as_secs_f64()
        );
        Ok(model)
    }
}

/// A model to talk to: a plain backbone (its chat template), or a trained run (its
/// H2O-style prompt format).
enum Model {
    Plain(Box<Engine>),
    Trained(Box<lathe_train::TrainedModel>),
}

impl Model {
    fn engine(&self) -> &Engine {
        match self {
            Model::Plain(e) => e,
            Model::Trained(t) => &t.engine,
        }
    }

    /// The prompt for a conversation (`history` of user/assistant pairs, then `user`).
    fn prompt(
        &self,
        system: Option<&str>,
        history: &[(String, String)],
        user: &str,
    ) -> Result<String> {
        match self {
            Model::Trained(t) => Ok(t.prompt(system, history, user)?),
            Model::Plain(e) => {
                let mut messages: Vec<ChatMessage> = system
                    .map(|s| ChatMessage::new("system", s))
                    .into_iter()
                    .collect();
                for (u, a) in history {
                    messages.push(ChatMessage::new("user", u));
                    messages.push(ChatMessage::new("assistant", a));
                }
                messages.push(ChatMessage::new("user", user));
                Ok(e.apply_chat_template(&messages, true)?)
            }
        }
    }

    fn stop_strings(&self) -> Result<Vec<String>> {
        match self {
            Model::Trained(t) => Ok(t.stop_strings()?),
            Model::Plain(_) => Ok(Vec::new()),
        }
    }
}

/// Arguments of `lathe generate`.
#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    chat: bool,
}

/// Runs `lathe generate`.
pub fn run_generate(args: GenerateArgs) -> Result<()> {
    let model = args.model.load()?;
    let engine = model.engine();
    let mut config = args.model.generation(engine);
    config.stop_strings.extend(model.stop_strings()?);
    config.validate()?;
    let (text, add_special) = if args.chat || args.model.run.is_some() {
        let system = args.model.system.as_deref();
        (model.prompt(system, &[], &args.prompt)?, false)
    } else {
        (args.prompt.clone(), true)
    };
    stream(engine, &text, add_special, &config)?;
    println!();
    Ok(())
}

/// Generates with tokens streamed to stdout; speed to stderr. Returns the text.
fn stream(
    engine: &Engine,
    prompt: &str,
    add_special: bool,
    config: &GenerationConfig,
) -> Result<String> {
    let start = Instant::now();
    let mut stdout = std::io::stdout().lock();
    let generated = engine.generate_text(prompt, add_special, config, &mut |piece| {
        let _ = stdout.write_all(piece.as_bytes());
        let _ = stdout.flush();
        true
    })?;
    eprintln!(
        "\n[{} tokens in {:.1}s]",
        generated.tokens,
        start.elapsed().as_secs_f64()
    );
    Ok(generated.text)
}

/// Arguments of `lathe chat`.
#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `lathe chat`: each line read is a user turn; `/clear` forgets the history,
/// `/exit` (or end of input) quits.
pub fn run_chat(args: ChatArgs) -> Result<()> {
    let model = args.model.load()?;
    let engine = model.engine();
    let mut config = args.model.generation(engine);
    config.stop_strings.extend(model.stop_strings()?);
    config.validate()?;
    let interactive = std::io::stdin().is_terminal();
    let system = args.model.system.as_deref();
    let mut history: Vec<(String, String)> = Vec::new();
    if interactive {
        eprintln!(
            "chatting with {} — /clear forgets, /exit quits",
            engine.source
        );
    }
    let stdin = std::io::stdin();
    loop {
        if interactive {
            eprint!("> ");
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/clear" => {
                history.clear();
                continue;
            }
            _ => {}
        }
        let prompt = model.prompt(system, &history, line)?;
        let answer = stream(engine, &prompt, false, &config)?;
        println!();
        history.push((line.to_string(), answer.trim().to_string()));
    }
    Ok(())
}
