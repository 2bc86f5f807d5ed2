//! `lathe train` and `lathe config`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use lathe_config::Config;

/// Arguments of `lathe train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Experiment configuration (H2O LLM Studio's `cfg.yaml` or Lathe's).
    #[arg(short = 'Y', long = "yaml", conflicts_with = "resume")]
    yaml: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Setting overrides: `--training.epochs 2 --training.learning_rate 3e-4 …`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--GROUP.KEY VALUE"
    )]
    overrides: Vec<String>,
}

/// `--a.b 1 --c=2` → `[("a.b", "1"), ("c", "2")]`.
fn parse_overrides(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(key) = arg.strip_prefix("--") else {
            bail!("unexpected argument `{arg}`; overrides look like --training.epochs 2");
        };
        match key.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => {
                let value = it
                    .next()
                    .with_context(|| format!("--{key} needs a value"))?;
                out.push((key.to_string(), value.clone()));
            }
        }
    }
    Ok(out)
}

/// Runs `lathe train`.
pub fn run_train(args: TrainArgs) -> Result<()> {
    lathe_model::allocator::keep_freed_memory();
    let overrides = parse_overrides(&args.overrides)?;
    let (config, run, resume) = match (&args.yaml, &args.resume) {
        (_, Some(run)) => {
            let cfg = run.join("cfg.yaml");
            let mut config = Config::from_yaml_file(&cfg)?.config;
            for (k, v) in &overrides {
                config.apply_override(k, v)?;
            }
            if !overrides.is_empty() {
                // The run folder's cfg.yaml stays the truth about how it was trained.
                std::fs::write(&cfg, config.to_yaml())
                    .with_context(|| format!("writing {}", cfg.display()))?;
            }
            (config, run.clone(), true)
        }
        (Some(yaml), None) => {
            let loaded = Config::from_yaml_file(yaml)?;
            for key in &loaded.unknown_keys {
                eprintln!(
                    "warning: {}: unknown setting `{key}` ignored",
                    yaml.display()
                );
            }
            let mut config = loaded.config;
            for (k, v) in &overrides {
                config.apply_override(k, v)?;
            }
            resolve_config(&mut config);
            let run = lathe_train::run_folder(&config);
            if run.join("status.json").exists() {
                bail!(
                    "{} already holds a run; choose another experiment_name or continue it with --resume {}",
                    run.display(),
                    run.display()
                );
            }
            std::fs::create_dir_all(&run).with_context(|| format!("creating {}", run.display()))?;
            let cfg = run.join("cfg.yaml");
            std::fs::write(&cfg, config.to_yaml())
                .with_context(|| format!("writing {}", cfg.display()))?;
            (config, run, false)
        }
        (None, None) => bail!("give a configuration with -Y cfg.yaml, or --resume RUN_DIR"),
    };
    if config.environment.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(config.environment.threads as usize)
            .build_global();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this step (Ctrl-C again to quit at once)");
    });
    eprintln!("run folder: {}", run.display());
    let summary = lathe_train::train(&config, &run, resume, &stop)?;
    if let (Some(before), Some(after)) = (&summary.before, &summary.after) {
        eprintln!(
            "validation perplexity: {:.3} → {:.3}",
            before.perplexity, after.perplexity
        );
        if let (Some(b), Some(a)) = (before.bleu, after.bleu) {
            eprintln!("validation BLEU: {b:.2} → {a:.2}");
        }
    }
    eprintln!(
        "done: {} steps; chat with it: lathe chat --run {}",
        summary.steps,
        run.display()
    );
    Ok(())
}

/// Fills what a run needs decided once: a name and a seed (recorded in its cfg.yaml).
fn resolve_config(config: &mut Config) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    if config.general.experiment_name.is_empty() {
        config.general.experiment_name = format!("run-{}", nanos / 1_000_000_000);
    }
    config.general.experiment_name = config.general.experiment_name.replace('/', "-");
    if config.environment.seed < 0 {
        config.environment.seed = (nanos % 1_000_000_007) as i64;
    }
}

/// `lathe config …`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print a complete configuration with every default.
    Defaults,
    /// Check a configuration file and print it resolved.
    Check {
        /// The file.
        file: PathBuf,
    },
}

/// Runs `lathe config …`.
pub fn run_config(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Defaults => print!("{}", Config::default().to_yaml()),
        ConfigCommand::Check { file } => {
            let loaded = Config::from_yaml_file(Path::new(&file))?;
            for key in &loaded.unknown_keys {
                eprintln!("warning: unknown setting `{key}` ignored");
            }
            for (path, value) in loaded.config.gpu_only_settings_in_use() {
                eprintln!("note: {path} = {value} applies to GPUs only");
            }
            print!("{}", loaded.config.to_yaml());
        }
    }
    Ok(())
}
