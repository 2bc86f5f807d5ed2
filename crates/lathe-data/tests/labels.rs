//! Preference pairs and label columns on the real files, and bad labels.

use std::path::{Path, PathBuf};

use lathe_config::Dataset;
use lathe_data::{read_labels, read_preferences, LabelKind, Mapping, ReadOptions, Table};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data")
}

fn preference_file(member: &str) -> Table {
    Table::read_with(
        &examples().join("preference_demo.zip"),
        &ReadOptions {
            member: Some(member.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn dpo_pairs_keep_their_history_and_rejected_answer() {
    let table = preference_file("dpo_en_demo.json");
    let mapping = Mapping::auto(&table.columns);
    assert_eq!(mapping.rejected_answer.as_deref(), Some("rejected"));
    let mut d = Dataset::default();
    mapping.apply(&mut d);
    let pairs = read_preferences(&table, &d, "rejected", None).unwrap();
    assert_eq!(pairs.len(), 300);
    let multi_turn = pairs.iter().filter(|p| p.chosen.turns.len() > 1).count();
    assert_eq!(multi_turn, 106, "the README counts 106 multi-turn prompts");
    let with_system = pairs.iter().filter(|p| p.chosen.system.is_some()).count();
    assert_eq!(with_system, 80);
    let chosen = table.column_index("chosen", "test").unwrap();
    for p in &pairs {
        let row = &table.rows[p.chosen.row - 1];
        assert_eq!(row[chosen].as_deref(), Some(p.chosen.answer()));
        assert_ne!(&*p.rejected, p.chosen.answer());
    }
}

#[test]
fn kto_labels_and_sentiment_labels_are_read() {
    let kto = preference_file("kto_en_demo.json");
    let labels = read_labels(
        &kto,
        &["label".into()],
        LabelKind::Classification { num_classes: 1 },
    )
    .unwrap();
    // One label per conversation (on each of its rows): 150 true of 300.
    let mut d = Dataset::default();
    Mapping::auto(&kto.columns).apply(&mut d);
    d.limit_chained_samples = true;
    let conversations = lathe_data::read_samples(&kto, &d).unwrap().samples;
    assert_eq!(conversations.len(), 300);
    let good = conversations
        .iter()
        .filter(|s| labels[s.row - 1][0] == 1.0)
        .count();
    assert_eq!(good, 150);

    let vader = Table::read(&examples().join("sentiment_vader.zip")).unwrap();
    assert_eq!(vader.rows.len(), 23_703);
    let classes = read_labels(
        &vader,
        &["label".into()],
        LabelKind::Classification { num_classes: 1 },
    )
    .unwrap();
    let scores = read_labels(&vader, &["score".into()], LabelKind::Regression).unwrap();
    for (c, s) in classes.iter().zip(&scores) {
        assert_eq!(c[0] == 1.0, s[0] > 0.0, "label = 1 if score > 0");
        assert!((-4.0..=4.0).contains(&s[0]));
    }
    let multi = read_labels(
        &vader,
        &["label".into(), "label".into()],
        LabelKind::Classification { num_classes: 2 },
    )
    .unwrap();
    assert_eq!(multi[0].len(), 2);
}

#[test]
fn bad_labels_name_row_column_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.csv");
    std::fs::write(&path, "text,label,score\na,1,0.5\nb,two,x\nc,3,\n").unwrap();
    let table = Table::read(&path).unwrap();
    let class = LabelKind::Classification { num_classes: 3 };
    let e = read_labels(&table, &["label".into()], class)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 2") && e.contains("`label`") && e.contains("`two`"),
        "{e}"
    );
    let e = read_labels(&table, &["score".into()], LabelKind::Regression)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 2") && e.contains("`x` is not a finite number"),
        "{e}"
    );
    std::fs::write(&path, "text,label,score\na,1,0.5\nc,3,\n").unwrap();
    let table = Table::read(&path).unwrap();
    let e = read_labels(&table, &["label".into()], class)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 2") && e.contains("0 to 2"), "{e}");
    let e = read_labels(&table, &["score".into()], LabelKind::Regression)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 2") && e.contains("missing"), "{e}");
    let e = read_labels(&table, &["nope".into()], LabelKind::Regression)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column `nope`"), "{e}");

    let dpo = dir.path().join("dpo.csv");
    std::fs::write(&dpo, "instruction,output,rejected\nq,good,bad\nq2,fine,\n").unwrap();
    let table = Table::read(&dpo).unwrap();
    let d = Dataset {
        prompt_column: vec!["instruction".into()],
        ..Default::default()
    };
    let e = read_preferences(&table, &d, "rejected", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 2") && e.contains("`rejected`") && e.contains("rejected answer"),
        "{e}"
    );
}
