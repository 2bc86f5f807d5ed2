//! `lathe export` and `lathe push`: a run's model as a merged Hugging Face folder, a PEFT
//! adapter or a GGUF file, on disk or in a Hub repository.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use lathe_model::export::{GgufQuant, SaveDtype};
use lathe_model::hub_upload::{token_from_environment, HubTarget};
use lathe_train::export::{export_run, push_run, ExportFormat, ExportOptions};

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// The merged model as a Hugging Face folder (transformers loads it).
    Hf,
    /// The LoRA adapter as PEFT saves it.
    Peft,
    /// The merged model as one GGUF file (llama.cpp runs it).
    Gguf,
}

/// GGUF matrix types.
#[derive(Clone, Copy, ValueEnum)]
enum Quant {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
    #[value(name = "q4_k_m")]
    Q4KM,
}

/// Safetensors types.
#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    Float32,
    Float16,
    Bfloat16,
}

/// Arguments of `lathe export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The training run folder.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// What to write.
    #[arg(long, value_enum)]
    format: Format,
    /// The output folder (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    how: HowArgs,
    /// Replace the output folder if it is not empty.
    #[arg(long)]
    force: bool,
}

/// Arguments of `lathe push`.
#[derive(Args)]
pub struct PushArgs {
    /// The training run folder.
    #[arg(long, value_name = "RUN_DIR")]
    run: PathBuf,
    /// The Hub repository, `user/name` or `org/name` (created if missing).
    #[arg(long)]
    repo: String,
    /// What to upload.
    #[arg(long, value_enum, default_value = "hf")]
    format: Format,
    /// Create the repository public (it is private by default).
    #[arg(long)]
    public: bool,
    #[command(flatten)]
    how: HowArgs,
}

/// How the model is written, shared by `export` and `push`.
#[derive(Args)]
struct HowArgs {
    /// GGUF matrix type.
    #[arg(long, value_enum, default_value = "f16")]
    quant: Quant,
    /// Safetensors type of the merged model (default: the backbone's own).
    #[arg(long, value_enum)]
    dtype: Option<Dtype>,
    /// Largest safetensors shard, in MB.
    #[arg(long, default_value_t = 5000)]
    max_shard_mb: usize,
}

impl HowArgs {
    fn options(&self, format: Format) -> ExportOptions {
        let format = match format {
            Format::Hf => ExportFormat::Hf,
            Format::Peft => ExportFormat::Peft,
            Format::Gguf => ExportFormat::Gguf,
        };
        ExportOptions {
            quant: Some(match self.quant {
                Quant::F32 => GgufQuant::F32,
                Quant::F16 => GgufQuant::F16,
                Quant::Q8_0 => GgufQuant::Q8_0,
                Quant::Q4_0 => GgufQuant::Q4_0,
                Quant::Q4KM => GgufQuant::Q4KM,
            }),
            dtype: self.dtype.map(|d| match d {
                Dtype::Float32 => SaveDtype::F32,
                Dtype::Float16 => SaveDtype::F16,
                Dtype::Bfloat16 => SaveDtype::BF16,
            }),
            max_shard_bytes: self.max_shard_mb.max(1) * 1_000_000,
            ..ExportOptions::new(format)
        }
    }
}

/// Runs `lathe export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let options = ExportOptions {
        force: args.force,
        ..args.how.options(args.format)
    };
    let start = Instant::now();
    let files = export_run(&args.run, &args.out, &options)
        .with_context(|| format!("exporting {}", args.run.display()))?;
    for file in &files {
        println!("{}", args.out.join(file).display());
    }
    eprintln!(
        "exported {} files in {:.1}s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `lathe push`.
pub fn run_push(args: PushArgs) -> Result<()> {
    let token = token_from_environment().context(
        "no Hugging Face token: set HF_TOKEN (a token with write access) or log in with `huggingface-cli login`",
    )?;
    let target = HubTarget {
        private: !args.public,
        ..HubTarget::new(&args.repo, &token)
    };
    let start = Instant::now();
    let uploaded = push_run(&args.run, &args.how.options(args.format), &target)
        .with_context(|| format!("pushing {} to {}", args.run.display(), args.repo))?;
    for (file, lfs) in &uploaded.files {
        println!("{file}{}", if *lfs { " (LFS)" } else { "" });
    }
    eprintln!(
        "pushed {} files to {} ({}) in {:.1}s: {}",
        uploaded.files.len(),
        args.repo,
        if args.public { "public" } else { "private" },
        start.elapsed().as_secs_f64(),
        uploaded.commit_url
    );
    Ok(())
}
