//! Data-path speed, one measurement per run (so that peak RSS is its own):
//!
//! - `data_bench chains ROWS`: writes ROWS generated chat rows (conversations of 1 to
//!   20 turns chained by `parent_id`) to a CSV, then times reading it, building every
//!   row's chain and rendering each sample's text with H2O's markers.
//! - `data_bench tokenize FILE`: times rendering and tokenizing the complete
//!   conversations of a chat file with the demo tokenizer.
//!
//! Prints one JSON line. Run by `bench/chains.sh`.

use std::io::Write;
use std::time::Instant;

use lathe_config::Dataset;
use lathe_data::{read_samples, Mapping, Renderer, Table, TextEncoder};
use lathe_train::TextFormat;

/// Markers only: the bench renders text, it does not tokenize.
struct NoTokenizer;

impl TextEncoder for NoTokenizer {
    fn encode_text(&self, _: &str) -> Result<Vec<u32>, String> {
        Err("not used".into())
    }
    fn eos_text(&self) -> Option<String> {
        Some("</s>".into())
    }
    fn decode(&self, _: &[u32]) -> Result<String, String> {
        Err("not used".into())
    }
}

fn chains(rows: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "id,parent_id,instruction,output").unwrap();
    let (mut written, mut conversation) = (0, 0);
    while written < rows {
        let turns = 1 + (conversation * 7919) % 20;
        for t in 0..turns.min(rows - written) {
            let parent = if t == 0 {
                String::new()
            } else {
                format!("c{conversation}t{}", t - 1)
            };
            writeln!(
                file,
                "c{conversation}t{t},{parent},\"Question {t} of conversation {conversation}, asked in a few words?\",\"An answer of a few words to question {t}.\""
            )
            .unwrap();
            written += 1;
        }
        conversation += 1;
    }
    drop(file);
    let d = Dataset {
        prompt_column: vec!["instruction".into()],
        parent_id_column: Some("parent_id".into()),
        ..Default::default()
    };
    let start = Instant::now();
    let table = Table::read(&path).unwrap();
    let read_s = start.elapsed().as_secs_f64();
    let samples = read_samples(&table, &d).unwrap().samples;
    let renderer = Renderer::new(&d, 512, &NoTokenizer);
    let mut chars = 0usize;
    for s in &samples {
        chars += renderer
            .pieces(s)
            .unwrap()
            .iter()
            .map(|(text, _)| text.len())
            .sum::<usize>();
    }
    let total_s = start.elapsed().as_secs_f64();
    println!(
        "{{\"bench\": \"chains\", \"rows\": {rows}, \"conversations\": {conversation}, \"samples\": {}, \"read_s\": {read_s:.3}, \"chains_and_render_s\": {:.3}, \"total_s\": {total_s:.3}, \"rows_per_s\": {:.0}, \"rendered_mb\": {:.1}}}",
        samples.len(),
        total_s - read_s,
        rows as f64 / total_s,
        chars as f64 / 1e6
    );
}

fn tokenize(file: &str) {
    let (tokenizer, template) = lathe_model::loader::load_text("demo").unwrap();
    let table = Table::read(std::path::Path::new(file)).unwrap();
    let mut d = Dataset::default();
    Mapping::auto(&table.columns).apply(&mut d);
    d.limit_chained_samples = true;
    let samples = read_samples(&table, &d).unwrap().samples;
    let text = TextFormat::new(tokenizer, template, &d).unwrap();
    let renderer = text.renderer(&d, usize::MAX);
    let rows: usize = samples.iter().map(|s| s.turns.len()).sum();
    let start = Instant::now();
    let mut tokens = 0;
    for s in &samples {
        tokens += renderer.encode_sample(s).unwrap().input_ids.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"bench\": \"tokenize\", \"rows\": {rows}, \"conversations\": {}, \"tokens\": {tokens}, \"seconds\": {secs:.3}, \"rows_per_s\": {:.0}, \"tokens_per_s\": {:.0}}}",
        samples.len(),
        rows as f64 / secs,
        tokens as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("chains"), Some(rows)) => chains(rows.parse().expect("ROWS is a number")),
        (Some("tokenize"), Some(file)) => tokenize(file),
        _ => {
            eprintln!("usage: data_bench chains ROWS | data_bench tokenize FILE");
            std::process::exit(2);
        }
    }
}
