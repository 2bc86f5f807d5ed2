//! `lathe dataset …`: look at a data file as training will see it.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lathe_config::Config;
use lathe_data::{
    read_samples, statistics, ColumnSummary, DatasetStats, Distribution, Encoded, Mapping,
    ReadOptions, Role, Table,
};
use lathe_train::TextFormat;

/// `lathe dataset …`.
#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Print a file's column mapping, counts, length statistics and rendered samples
    /// with the tokens that carry loss.
    Inspect(InspectArgs),
    /// Copy data into a new folder from a local file or zip, a Hugging Face Hub
    /// dataset, or S3-compatible storage; every file is checked before it lands.
    Import(ImportArgs),
}

/// Arguments of `lathe dataset import`: one source.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["file", "hub", "s3"])))]
pub struct ImportArgs {
    /// A local data file or zip.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A Hub dataset id (`org/name[@revision]`); token from `HF_TOKEN`.
    #[arg(long)]
    hub: Option<String>,
    /// The Hub split.
    #[arg(long, default_value = "train", requires = "hub")]
    split: String,
    /// An S3 bucket with an optional prefix (`s3://bucket/folder`); keys from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, anonymous without them.
    #[arg(long)]
    s3: Option<String>,
    /// S3-compatible endpoint (MinIO …).
    #[arg(long, requires = "s3")]
    endpoint: Option<String>,
    /// S3 region.
    #[arg(long, requires = "s3")]
    region: Option<String>,
    /// S3 keys to fetch (repeatable); all data files under the prefix when none.
    #[arg(long = "key", requires = "s3")]
    keys: Vec<String>,
    /// The new folder to import into.
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `lathe dataset inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The data file: CSV, Parquet, JSON, JSONL, or a zip of them.
    file: PathBuf,
    /// Dataset settings from an experiment configuration (cfg.yaml); without it the
    /// columns are selected automatically.
    #[arg(short = 'Y', long = "yaml")]
    yaml: Option<PathBuf>,
    /// Prompt column(s); repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    prompt_column: Vec<String>,
    /// Answer column.
    #[arg(long)]
    answer_column: Option<String>,
    /// System message column (`None` for none).
    #[arg(long)]
    system_column: Option<String>,
    /// Parent id column chaining rows into conversations (`None` for none).
    #[arg(long)]
    parent_id_column: Option<String>,
    /// Row id column.
    #[arg(long)]
    id_column: Option<String>,
    /// Only complete conversations become samples.
    #[arg(long)]
    limit_chained_samples: bool,
    /// Render with the model's own chat template instead of the text markers.
    #[arg(long)]
    use_chat_template: bool,
    /// CSV delimiter (guessed when not given).
    #[arg(long)]
    delimiter: Option<char>,
    /// Member of a zip archive to read.
    #[arg(long)]
    member: Option<String>,
    /// Model whose tokenizer renders the samples.
    #[arg(long, default_value = "demo")]
    model: String,
    /// Rendered samples to print.
    #[arg(long, default_value_t = 2)]
    samples: usize,
    /// Print everything as one JSON object instead.
    #[arg(long)]
    json: bool,
}

/// Runs `lathe dataset …`.
pub fn run_dataset(command: DatasetCommand) -> Result<()> {
    match command {
        DatasetCommand::Inspect(args) => inspect(args),
        DatasetCommand::Import(args) => import(args),
    }
}

fn import(args: ImportArgs) -> Result<()> {
    let files = if let Some(file) = &args.file {
        lathe_data::import_path(file, &args.out)?
    } else if let Some(id) = &args.hub {
        lathe_data::import_hub(id, &args.split, None, &args.out)?
    } else {
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let location = lathe_data::S3Location {
            bucket: args.s3.clone().unwrap_or_default(),
            endpoint: args.endpoint.clone(),
            region: args.region.clone().or_else(|| env("AWS_REGION")),
            access_key: env("AWS_ACCESS_KEY_ID"),
            secret_key: env("AWS_SECRET_ACCESS_KEY"),
        };
        lathe_data::import_s3(&location, &args.keys, &args.out)?
    };
    for file in files {
        println!("{}", file.display());
    }
    Ok(())
}

fn none_or(value: &str) -> Option<String> {
    (!value.eq_ignore_ascii_case("none")).then(|| value.to_string())
}

fn inspect(args: InspectArgs) -> Result<()> {
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => anyhow::bail!("--delimiter must be one ASCII character, not `{c}`"),
        None => None,
    };
    let options = ReadOptions {
        delimiter,
        member: args.member.clone(),
    };
    let table = Table::read_with(&args.file, &options)?;
    let (mut config, source) = match &args.yaml {
        Some(yaml) => (
            Config::from_yaml_file(yaml)?.config,
            "from the configuration",
        ),
        None => {
            let mut config = Config::default();
            Mapping::auto(&table.columns).apply(&mut config.dataset);
            (config, "selected automatically")
        }
    };
    let d = &mut config.dataset;
    if !args.prompt_column.is_empty() {
        d.prompt_column = args.prompt_column.clone();
    }
    if let Some(answer) = &args.answer_column {
        d.answer_column = answer.clone();
    }
    if let Some(system) = &args.system_column {
        d.system_column = none_or(system);
    }
    if let Some(parent) = &args.parent_id_column {
        d.parent_id_column = none_or(parent);
    }
    if let Some(id) = &args.id_column {
        d.id_column = none_or(id);
    }
    d.limit_chained_samples |= args.limit_chained_samples;
    d.use_chat_template |= args.use_chat_template;
    let d = &config.dataset;
    let (tokenizer, template) = lathe_model::loader::load_text(&args.model)
        .with_context(|| format!("loading the tokenizer of `{}`", args.model))?;
    let text = TextFormat::new(tokenizer, template, d)?;
    let max_length = config.tokenizer.max_length as usize;
    let renderer = text.renderer(d, max_length);
    let stats = statistics(&table, d, Some(&renderer))?;
    let set = read_samples(&table, d)?;
    // The first sample, then the ones with the most turns.
    let mut picks: Vec<usize> = (0..set.samples.len()).collect();
    picks.sort_by_key(|&i| (i != 0, std::cmp::Reverse(set.samples[i].turns.len()), i));
    picks.truncate(args.samples);
    let rendered = picks
        .iter()
        .map(|&i| {
            let encoded = renderer.encode_sample(&set.samples[i])?;
            Ok((set.samples[i].row, encoded))
        })
        .collect::<Result<Vec<_>>>()?;
    let mapping = Mapping::from_settings(d);
    if args.json {
        let samples = rendered
            .iter()
            .map(|(row, e)| {
                Ok(serde_json::json!({
                    "row": row,
                    "truncated": e.truncated,
                    "tokens": renderer.token_view(e)?,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = serde_json::json!({
            "file": table.path,
            "shape": table.shape.name(),
            "columns": table.columns,
            "mapping": {
                "prompt": mapping.prompt,
                "answer": mapping.answer,
                "system": mapping.system,
                "parent_id": mapping.parent_id,
                "id": mapping.id,
                "limit_chained_samples": d.limit_chained_samples,
            },
            "statistics": stats,
            "samples": samples,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print!(
        "{}",
        report(&table, &mapping, source, d.limit_chained_samples, &stats)
    );
    for (row, encoded) in &rendered {
        print!("{}", render(text.tokenizer(), *row, encoded, max_length)?);
    }
    Ok(())
}

fn report(table: &Table, m: &Mapping, source: &str, limited: bool, s: &DatasetStats) -> String {
    let mut out = String::new();
    let opt = |c: &Option<String>| c.clone().unwrap_or_else(|| "None".into());
    let _ = writeln!(
        out,
        "file: {} ({})",
        table.path.display(),
        table.shape.name()
    );
    let _ = writeln!(out, "columns: {}", table.columns.join(", "));
    let _ = writeln!(out, "mapping ({source}):");
    let _ = writeln!(out, "  prompt:    {}", m.prompt.join(", "));
    let _ = writeln!(out, "  answer:    {}", opt(&m.answer));
    let _ = writeln!(out, "  system:    {}", opt(&m.system));
    let _ = writeln!(out, "  parent_id: {}", opt(&m.parent_id));
    if m.parent_id.is_some() {
        let _ = writeln!(out, "  id:        {}", opt(&m.id));
        let _ = writeln!(out, "  limit_chained_samples: {limited}");
    }
    let _ = writeln!(
        out,
        "rows: {}; samples: {}; conversations: {}",
        s.rows, s.samples, s.conversations
    );
    if s.dropped_without_prompt > 0 {
        let _ = writeln!(
            out,
            "warning: {} rows have no prompt and are left out",
            s.dropped_without_prompt
        );
    }
    if s.unanswered_ends > 0 {
        let _ = writeln!(
            out,
            "warning: {} conversations end with a prompt nobody answered; those last rows are left out",
            s.unanswered_ends
        );
    }
    let _ = writeln!(
        out,
        "lengths              mean     min     p10     p50     p90     p99     max"
    );
    let mut line = |name: &str, d: &Distribution| {
        let _ = writeln!(
            out,
            "  {name:<15} {:>7.1} {:>7.0} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.0}",
            d.mean, d.min, d.p10, d.p50, d.p90, d.p99, d.max
        );
    };
    line("turns", &s.turns);
    line("prompt words", &s.prompt_words);
    line("answer words", &s.answer_words);
    line("conv. words", &s.conversation_words);
    if let Some(t) = &s.tokens {
        line("prompt tokens", &t.prompt);
        line("answer tokens", &t.answer);
        line("conv. tokens", &t.conversation);
        if t.over_max_length > 0 {
            let _ = writeln!(
                out,
                "note: {} conversations are longer than tokenizer.max_length and will be cut from the left",
                t.over_max_length
            );
        }
    }
    let _ = writeln!(out, "column summaries:");
    for c in &s.columns {
        let _ = match c {
            ColumnSummary::Text {
                name,
                count,
                missing,
                unique,
                top,
                freq,
            } => {
                let top: String = top.chars().take(40).collect();
                writeln!(
                    out,
                    "  {name}: text, {count} values, {missing} missing, {unique} distinct; commonest {top:?} ×{freq}"
                )
            }
            ColumnSummary::Numeric {
                name,
                count,
                missing,
                mean,
                std,
                min,
                q50,
                max,
                ..
            } => writeln!(
                out,
                "  {name}: numeric, {count} values, {missing} missing; mean {mean:.4} std {std:.4} min {min} median {q50} max {max}"
            ),
        };
    }
    out
}

/// A rendered sample: each run of tokens of one role, `+` where they carry loss.
fn render(
    tokenizer: &lathe_model::Tokenizer,
    row: usize,
    e: &Encoded,
    max_length: usize,
) -> Result<String> {
    let mut out = String::new();
    let loss = e.loss_mask.iter().filter(|&&l| l).count();
    let _ = writeln!(
        out,
        "\n── sample ending at row {row}: {} tokens, {loss} carry loss{} ──",
        e.input_ids.len(),
        if e.truncated {
            format!(" (cut to {max_length})")
        } else {
            String::new()
        }
    );
    let mut start = 0;
    while start < e.input_ids.len() {
        let key = (e.roles[start], e.loss_mask[start]);
        let mut end = start + 1;
        while end < e.input_ids.len() && (e.roles[end], e.loss_mask[end]) == key {
            end += 1;
        }
        let text = tokenizer.decode(&e.input_ids[start..end], false)?;
        let role = match key.0 {
            Role::System => "system",
            Role::Prompt => "prompt",
            Role::Answer => "answer",
        };
        let _ = writeln!(
            out,
            "{role}{} │ {}",
            if key.1 { "+" } else { " " },
            text.replace('\n', "\n        │ ")
        );
        start = end;
    }
    Ok(out)
}
