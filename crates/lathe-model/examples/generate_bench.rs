//! Prefill and decode speed of a model, for `bench/generate.sh`:
//! `generate_bench MODEL PROMPT_TOKENS NEW_TOKENS` prints one JSON line with tokens/s
//! and the process's peak RSS.

use std::time::Instant;

use lathe_model::GenerationConfig;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, prompt_tokens, new_tokens] = args.as_slice() else {
        return Err("usage: generate_bench MODEL PROMPT_TOKENS NEW_TOKENS".into());
    };
    let (prompt_tokens, new_tokens): (usize, usize) = (prompt_tokens.parse()?, new_tokens.parse()?);
    let start = Instant::now();
    let engine = lathe_model::load(model)?;
    let load_s = start.elapsed().as_secs_f64();

    // A natural-text prompt of exactly `prompt_tokens` tokens.
    let text = "The history of the printing press begins in the fifteenth century, when movable type changed how knowledge travelled across Europe. ".repeat(64);
    let mut prompt = engine.tokenizer.encode(&text, true)?;
    prompt.truncate(prompt_tokens);

    let config = GenerationConfig {
        max_new_tokens: new_tokens,
        eos_token_ids: vec![u32::MAX],
        ..Default::default()
    };
    // The first token comes after the prefill of the whole prompt; every later one is
    // a decode step with the prompt in the cache, as llama.cpp measures it.
    let mut first = None;
    let start = Instant::now();
    let out = engine.generate(std::slice::from_ref(&prompt), &config, &mut |_, _| {
        first.get_or_insert_with(Instant::now);
        true
    })?;
    let end = Instant::now();
    let first = first.ok_or("no token generated")?;
    let prefill_s = (first - start).as_secs_f64();
    let decoded = out[0].tokens.len() - 1;
    let decode_s = (end - first).as_secs_f64();
    println!(
        "{{\"engine\": \"lathe\", \"load_s\": {load_s:.2}, \"prefill_tokens\": {}, \"prefill_tok_s\": {:.1}, \"decode_tokens\": {}, \"decode_tok_s\": {:.1}, \"peak_rss_mib\": {:.0}}}",
        prompt.len(),
        prompt.len() as f64 / prefill_s,
        decoded,
        decoded as f64 / decode_s,
        peak_rss_mib()
    );
    Ok(())
}
