//! `lathe export`: a run's model as a merged Hugging Face folder, a PEFT adapter or a
//! GGUF file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use lathe_model::export::{GgufQuant, SaveDtype};
use lathe_train::export::{export_run, ExportFormat, ExportOptions};

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
    /// GGUF matrix type.
    #[arg(long, value_enum, default_value = "f16")]
    quant: Quant,
    /// Safetensors type of the merged model (default: the backbone's own).
    #[arg(long, value_enum)]
    dtype: Option<Dtype>,
    /// Largest safetensors shard, in MB.
    #[arg(long, default_value_t = 5000)]
    max_shard_mb: usize,
    /// Replace the output folder if it is not empty.
    #[arg(long)]
    force: bool,
}

/// Runs `lathe export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let format = match args.format {
        Format::Hf => ExportFormat::Hf,
        Format::Peft => ExportFormat::Peft,
        Format::Gguf => ExportFormat::Gguf,
    };
    let options = ExportOptions {
        quant: Some(match args.quant {
            Quant::F32 => GgufQuant::F32,
            Quant::F16 => GgufQuant::F16,
            Quant::Q8_0 => GgufQuant::Q8_0,
            Quant::Q4_0 => GgufQuant::Q4_0,
        }),
        dtype: args.dtype.map(|d| match d {
            Dtype::Float32 => SaveDtype::F32,
            Dtype::Float16 => SaveDtype::F16,
            Dtype::Bfloat16 => SaveDtype::BF16,
        }),
        max_shard_bytes: args.max_shard_mb.max(1) * 1_000_000,
        force: args.force,
        ..ExportOptions::new(format)
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
