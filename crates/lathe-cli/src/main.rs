//! `lathe`: the command-line face of Lathe.

mod dataset;
mod export;
mod generate;
mod serve;
mod train;

use clap::{Parser, Subcommand};

/// Lathe: fine-tune large language models on your own data, from one binary.
#[derive(Parser)]
#[command(name = "lathe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a continuation of one prompt; prints only the generated text.
    Generate(generate::GenerateArgs),
    /// Chat with a model: an interactive loop (or one prompt per line from a pipe).
    Chat(generate::ChatArgs),
    /// Fine-tune a model from a cfg.yaml (H2O LLM Studio's format), or resume a run.
    Train(train::TrainArgs),
    /// Print or check configurations.
    #[command(subcommand)]
    Config(train::ConfigCommand),
    /// Export a run: merged Hugging Face model, PEFT adapter, or GGUF file.
    Export(export::ExportArgs),
    /// Upload a run's model to a Hugging Face Hub repository (private by default).
    Push(export::PushArgs),
    /// Run the studio: the web API over a workspace of datasets and experiments.
    Serve(serve::ServeArgs),
    /// Look at data files as training sees them.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
}

fn main() -> std::process::ExitCode {
    lathe_model::allocator::reuse_freed_buffers();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run_generate(args),
        Command::Chat(args) => generate::run_chat(args),
        Command::Train(args) => train::run_train(args),
        Command::Config(command) => train::run_config(command),
        Command::Dataset(command) => dataset::run_dataset(command),
        Command::Export(args) => export::run_export(args),
        Command::Push(args) => export::run_push(args),
        Command::Serve(args) => serve::run_serve(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
