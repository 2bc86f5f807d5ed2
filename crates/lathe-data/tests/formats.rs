//! Reading files: CSV dialects, JSON shapes and their conversion, zip archives, and
//! the errors bad files get.

use std::io::Write;
use std::path::{Path, PathBuf};

use lathe_data::{archive, DataError, Mapping, ReadOptions, Shape, Table};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn cell<'a>(table: &'a Table, row: usize, column: &str) -> Option<&'a str> {
    let c = table.columns.iter().position(|c| c == column).unwrap();
    table.rows[row][c].as_deref()
}

#[test]
fn csv_with_bom_semicolons_and_quoted_line_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "Train.CSV",
        "\u{feff}instruction;output\n\"two\nlines; here\";ok\nsecond;\"say \"\"hi\"\"\"\n"
            .as_bytes(),
    );
    let table = Table::read(&path).unwrap();
    assert_eq!(table.columns, ["instruction", "output"]);
    assert_eq!(cell(&table, 0, "instruction"), Some("two\nlines; here"));
    assert_eq!(cell(&table, 1, "output"), Some("say \"hi\""));
    // An explicit delimiter wins over the guess.
    let forced = Table::read_with(
        &path,
        &ReadOptions {
            delimiter: Some(b','),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(forced.columns, ["instruction;output"]);
}

#[test]
fn ragged_rows_and_bad_bytes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ragged = write(dir.path(), "r.csv", b"a,b\n1,2\n3,4,5\n");
    let e = Table::read(&ragged).unwrap_err().to_string();
    assert!(
        e.contains("r.csv") && e.contains("row 2") && e.contains("3 fields"),
        "{e}"
    );
    let bad = write(dir.path(), "u.csv", b"a,b\n1,\xff\xfe\n");
    let e = Table::read(&bad).unwrap_err().to_string();
    assert!(e.contains("u.csv") && e.contains("UTF-8"), "{e}");
    let bad = write(
        dir.path(),
        "u.jsonl",
        b"{\"a\": \"x\"}\n{\"a\": \"\xff\"}\n",
    );
    let e = Table::read(&bad).unwrap_err().to_string();
    assert!(e.contains("row 2") && e.contains("UTF-8"), "{e}");
}

#[test]
fn json_that_is_not_the_shape_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let object = write(dir.path(), "o.json", br#"{"instruction": "hi"}"#);
    let e = Table::read(&object).unwrap_err().to_string();
    assert!(e.contains("expected a JSON array"), "{e}");
    let mixed = write(
        dir.path(),
        "m.json",
        br#"[{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {"instruction": "x", "output": "y"}]"#,
    );
    let e = Table::read(&mixed).unwrap_err().to_string();
    assert!(e.contains("record 2") && e.contains("messages"), "{e}");
    let order = write(
        dir.path(),
        "w.jsonl",
        br#"{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}"#,
    );
    let e = Table::read(&order).unwrap_err().to_string();
    assert!(
        e.contains("record 1") && e.contains("conversations 2") && e.contains("assistant"),
        "{e}"
    );
    let scalar = write(dir.path(), "s.json", b"[1, 2]");
    let e = Table::read(&scalar).unwrap_err().to_string();
    assert!(e.contains("record 1") && e.contains("object"), "{e}");
}

#[test]
fn sharegpt_and_openai_chats_become_chained_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sharegpt = write(
        dir.path(),
        "chat.json",
        br#"[{"conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
                {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}],
              "source": "demo"}]"#,
    );
    let table = Table::read(&sharegpt).unwrap();
    assert_eq!(table.shape, Shape::ShareGpt);
    assert_eq!(table.rows.len(), 2);
    assert_eq!(cell(&table, 0, "system"), Some("Be brief."));
    assert_eq!(cell(&table, 1, "system"), None);
    assert_eq!(cell(&table, 1, "parent_id"), cell(&table, 0, "id"));
    assert_eq!(cell(&table, 1, "instruction"), Some("Bye"));
    assert_eq!(cell(&table, 1, "output"), Some("Bye!"));
    assert_eq!(cell(&table, 0, "source"), Some("demo"));
    let mapping = Mapping::auto(&table.columns);
    assert_eq!(mapping.prompt, ["instruction"]);
    assert_eq!(mapping.parent_id.as_deref(), Some("parent_id"));
    assert_eq!(mapping.id.as_deref(), Some("id"));
    assert_eq!(mapping.system.as_deref(), Some("system"));

    let openai = write(
        dir.path(),
        "chat.JSONL",
        br#"{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "label": true}
{"messages": [{"role": "user", "content": "3+3?"}], "chosen": {"role": "assistant", "content": "6"}, "rejected": {"role": "assistant", "content": "7"}}
"#,
    );
    let table = Table::read(&openai).unwrap();
    assert_eq!(table.shape, Shape::Messages);
    assert_eq!(cell(&table, 0, "label"), Some("true"));
    assert_eq!(
        cell(&table, 1, "output"),
        Some("6"),
        "the chosen answer ends the chat"
    );
    assert_eq!(cell(&table, 1, "rejected"), Some("7"));
}

fn zip_of(path: &Path, members: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn zip_archives_are_read_and_extracted_and_climbing_paths_refused() {
    let dir = tempfile::tempdir().unwrap();
    let archive_path = dir.path().join("data.ZIP");
    zip_of(
        &archive_path,
        &[
            ("train.csv", b"instruction,output\na,b\n"),
            ("valid.csv", b"instruction,output\nc,d\n"),
            ("__MACOSX/._train.csv", b"junk"),
        ],
    );
    let table = Table::read(&archive_path).unwrap();
    assert!(table.path.ends_with("data.ZIP/train.csv"));
    assert_eq!(cell(&table, 0, "instruction"), Some("a"));
    let valid = Table::read_with(
        &archive_path,
        &ReadOptions {
            member: Some("valid.csv".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cell(&valid, 0, "output"), Some("d"));
    let dest = dir.path().join("extracted");
    let files = archive::extract(&archive_path, &dest).unwrap();
    assert_eq!(files, [dest.join("train.csv"), dest.join("valid.csv")]);
    assert!(!dest.join("__MACOSX").exists());

    let evil = dir.path().join("evil.zip");
    zip_of(
        &evil,
        &[("ok.csv", b"a\n1\n"), ("../escaped.csv", b"a\n1\n")],
    );
    let e = archive::extract(&evil, &dir.path().join("out"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("../escaped.csv") && e.contains("climbs out"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists() && !dir.path().join("escaped.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".extracting"))
        .collect();
    assert!(leftovers.is_empty(), "nothing written half");
    assert!(matches!(Table::read(&evil), Err(DataError::Format { .. })));
}

#[test]
fn a_large_csv_is_streamed() {
    // 200 MB of rows: read once, row by row.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(file, "instruction,output").unwrap();
    let text = "x".repeat(1000);
    let rows = 100_000;
    for i in 0..rows {
        writeln!(file, "{i} {text},{text}").unwrap();
    }
    drop(file);
    let table = Table::read(&path).unwrap();
    assert_eq!(table.rows.len(), rows);
    let last = format!("{} {text}", rows - 1);
    assert_eq!(cell(&table, rows - 1, "instruction"), Some(last.as_str()));
}
