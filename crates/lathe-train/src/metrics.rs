//! Validation metrics: sentence BLEU as sacrebleu's `sentence_bleu` computes it (13a
//! tokenization, exponential smoothing, effective order), and perplexity.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

/// sacrebleu's `13a` tokenizer (mteval-v13a).
fn tokenize_13a(line: &str) -> String {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"([\{-~\[-` -&\(-\+:-@/])", " $1 "),
            (r"([^0-9])([\.,])", "$1 $2 "),
            (r"([\.,])([^0-9])", " $1 $2"),
            (r"([0-9])(-)", "$1 $2 "),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("valid pattern"), replacement))
        .collect()
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, replacement) in rules {
        line = re.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// N-gram counts (orders 1–4) and token count of a tokenized line.
fn ngrams(line: &str) -> (HashMap<Vec<&str>, usize>, usize) {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut counts = HashMap::new();
    for n in 1..=4 {
        for window in tokens.windows(n) {
            *counts.entry(window.to_vec()).or_insert(0) += 1;
        }
    }
    (counts, tokens.len())
}

/// Sentence BLEU (0–100) of `hypothesis` against one `reference`.
pub fn sentence_bleu(hypothesis: &str, reference: &str) -> f64 {
    let hyp = tokenize_13a(hypothesis.trim_end());
    let refr = tokenize_13a(reference.trim_end());
    let (hyp_ngrams, sys_len) = ngrams(&hyp);
    let (ref_ngrams, ref_len) = ngrams(&refr);
    let (mut correct, mut total) = ([0usize; 4], [0usize; 4]);
    for (gram, count) in &hyp_ngrams {
        let n = gram.len() - 1;
        total[n] += count;
        correct[n] += (*count).min(ref_ngrams.get(gram).copied().unwrap_or(0));
    }
    if correct.iter().all(|c| *c == 0) {
        return 0.0;
    }
    let bp = if sys_len < ref_len {
        if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        }
    } else {
        1.0
    };
    let mut precisions = [0f64; 4];
    let mut smooth = 1f64;
    let mut order = 4;
    for n in 0..4 {
        if total[n] == 0 {
            break;
        }
        order = n + 1;
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    bp * (precisions[..order].iter().map(|p| log(*p)).sum::<f64>() / order as f64).exp()
}
