//! `lathe dataset inspect` on the real data files, and the loss-mask oracle on the
//! demo tokenizer: in every rendering mode the tokens that carry loss decode to
//! exactly the answer texts.

use std::path::{Path, PathBuf};
use std::process::Command;

use lathe_config::Dataset;
use lathe_data::{read_samples, Mapping, ReadOptions, Role, Table};
use lathe_train::TextFormat;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data")
}

fn inspect(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lathe"))
        .args(["dataset", "inspect"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_resolves_the_chat_file_into_1000_conversations() {
    let file = examples().join("chitchat_1000conv.zip");
    let out = inspect(&[file.to_str().unwrap(), "--limit-chained-samples"]);
    for expected in [
        "prompt:    instruction",
        "answer:    output",
        "parent_id: parent_id",
        "id:        id",
        "rows: 20090; samples: 1000; conversations: 1000",
        "1 conversations end with a prompt nobody answered",
        "── sample ending at row 17",
        "answer+ │",
        "prompt  │ <|prompt|>",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let out = inspect(&[file.to_str().unwrap(), "--samples", "1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["mapping"]["parent_id"], "parent_id");
    assert_eq!(json["statistics"]["samples"], 20_089);
    assert_eq!(json["statistics"]["turns"]["max"], 256.0);
    let tokens = json["samples"][0]["tokens"].as_array().unwrap();
    assert!(tokens
        .iter()
        .any(|t| t["loss"] == true && t["role"] == "answer"));
    assert!(tokens
        .iter()
        .all(|t| (t["loss"] == true) == (t["role"] == "answer")));
}

#[test]
fn inspect_names_a_bad_file() {
    // Without chains, the unanswered last prompt of a conversation is a missing answer.
    let file = examples().join("chitchat_1000conv.zip");
    let out = Command::new(env!("CARGO_BIN_EXE_lathe"))
        .args(["dataset", "inspect"])
        .arg(&file)
        .args(["--parent-id-column", "None"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("row 12605") && e.contains("`output`"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.csv");
    std::fs::write(
        &path,
        "id,parent_id,instruction,output\n1,,a,b\n2,3,c,d\n3,2,e,f\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lathe"))
        .args(["dataset", "inspect"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("chat.csv") && e.contains("cycle"), "{e}");
}

/// Checks that the loss-carrying tokens of every sample decode to its answers (as
/// rendered: with EOS, or with the template's end of turn).
fn check_oracle(table: &Table, d: &Dataset, text: &TextFormat) {
    let renderer = text.renderer(d, 1 << 20);
    let tokenizer = text.tokenizer();
    let samples = read_samples(table, d).unwrap().samples;
    for sample in samples.iter().take(60) {
        let e = renderer.encode_sample(sample).unwrap();
        let mut runs = Vec::new();
        let mut start = None;
        for i in 0..=e.input_ids.len() {
            let loss = e.loss_mask.get(i).copied().unwrap_or(false);
            match (loss, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    runs.push(tokenizer.decode(&e.input_ids[s..i], false).unwrap());
                    start = None;
                }
                _ => {}
            }
        }
        // SmolLM2's template (ChatML) ends each turn with `<|im_end|>` and a newline.
        let answers: Vec<String> = sample
            .turns
            .iter()
            .map(|t| match d.use_chat_template {
                true => format!("{}<|im_end|>\n", t.answer),
                false => renderer.answer_text(&t.answer),
            })
            .collect();
        let expected = if d.only_last_answer {
            answers[answers.len() - 1..].to_vec()
        } else {
            answers
        };
        assert_eq!(runs, expected, "row {}", sample.row);
        for (role, loss) in e.roles.iter().zip(&e.loss_mask) {
            assert!(!loss || *role == Role::Answer);
        }
        assert_eq!(
            tokenizer
                .decode(&e.input_ids[e.prompt_len..], false)
                .unwrap(),
            *expected.last().unwrap()
        );
    }
}

#[test]
fn loss_tokens_decode_to_exactly_the_answers_in_every_mode() {
    let (tokenizer, template) = lathe_model::loader::load_text("demo").unwrap();
    let text = TextFormat::new(tokenizer, template, &Dataset::default()).unwrap();
    let chat = Table::read(&examples().join("chitchat_1000conv.zip")).unwrap();
    let dpo = Table::read_with(
        &examples().join("preference_demo.zip"),
        &ReadOptions {
            member: Some("dpo_en_demo.json".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let alpaca = Table::read(&examples().join("alpaca_en_demo.json")).unwrap();
    for table in [&chat, &dpo, &alpaca] {
        let mut base = Dataset::default();
        Mapping::auto(&table.columns).apply(&mut base);
        base.limit_chained_samples = true;
        let mut modes = vec![base.clone()];
        let mut last = base.clone();
        last.only_last_answer = true;
        modes.push(last);
        let mut bare = base.clone();
        bare.add_eos_token_to_answer = false;
        bare.add_eos_token_to_prompt = false;
        bare.add_eos_token_to_system = false;
        modes.push(bare);
        let mut plain = base.clone();
        plain.text_prompt_start = "### Question:\n".into();
        plain.text_answer_separator = "\n### Answer:\n".into();
        plain.personalize = true;
        modes.push(plain);
        let mut template = base.clone();
        template.use_chat_template = true;
        modes.push(template.clone());
        template.only_last_answer = true;
        modes.push(template);
        for d in &modes {
            check_oracle(table, d, &text);
        }
    }
}

#[test]
fn import_copies_a_zip_into_a_new_folder_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pref");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_lathe"))
            .args(["dataset", "import", "--file"])
            .arg(examples().join("preference_demo.zip"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let listed = String::from_utf8(first.stdout).unwrap();
    assert!(
        listed.contains("preference_demo/dpo_en_demo.json"),
        "{listed}"
    );
    assert!(out.join("preference_demo/kto_en_demo.json").is_file());
    let again = run();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}
