//! Conversation chains: H2O's semantics and checks, group splits, and the real
//! multi-turn chat file.

use std::path::{Path, PathBuf};

use lathe_config::Dataset;
use lathe_data::{read_samples, split, statistics, Mapping, Table, MAX_CHAIN};

fn chat_settings() -> Dataset {
    Dataset {
        prompt_column: vec!["instruction".into()],
        answer_column: "output".into(),
        parent_id_column: Some("parent_id".into()),
        id_column: Some("id".into()),
        ..Default::default()
    }
}

fn table(dir: &Path, csv: &str) -> Table {
    let path = dir.join("chat.csv");
    std::fs::write(&path, csv).unwrap();
    Table::read(&path).unwrap()
}

const TREE: &str = "id,parent_id,instruction,output,system
1,,hi,hello,be kind
2,1,how are you,fine,
3,2,bye,bye,
4,1,what time,noon,
5,,solo,answer,terse
";

#[test]
fn each_row_is_its_ancestor_chain() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path(), TREE);
    let mut d = chat_settings();
    d.system_column = Some("system".into());
    let set = read_samples(&table, &d).unwrap();
    assert_eq!(set.conversations, 2);
    let chains: Vec<(usize, Vec<&str>)> = set
        .samples
        .iter()
        .map(|s| (s.row, s.turns.iter().map(|t| &*t.prompt).collect()))
        .collect();
    assert_eq!(
        chains,
        [
            (1, vec!["hi"]),
            (2, vec!["hi", "how are you"]),
            (3, vec!["hi", "how are you", "bye"]),
            (4, vec!["hi", "what time"]),
            (5, vec!["solo"]),
        ]
    );
    // The first row's system message is the conversation's.
    assert_eq!(set.samples[2].system.as_deref(), Some("be kind"));
    assert_eq!(set.samples[2].group, set.samples[3].group);
    assert_ne!(set.samples[2].group, set.samples[4].group);

    d.limit_chained_samples = true;
    let leaves: Vec<usize> = read_samples(&table, &d)
        .unwrap()
        .samples
        .iter()
        .map(|s| s.row)
        .collect();
    assert_eq!(leaves, [3, 4, 5], "only complete conversations");
}

#[test]
fn unknown_parents_are_roots_and_float_ids_match() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(
        dir.path(),
        "id,parent_id,instruction,output\n1,,a,b\n2,1.0,c,d\n3,99,e,f\n",
    );
    let set = read_samples(&table, &chat_settings()).unwrap();
    assert_eq!(set.samples[1].turns.len(), 2);
    assert_eq!(
        set.samples[2].turns.len(),
        1,
        "parent 99 is nowhere: a root"
    );
    assert_eq!(set.conversations, 2);
}

fn chain_error(csv: &str, d: &Dataset) -> String {
    let dir = tempfile::tempdir().unwrap();
    read_samples(&table(dir.path(), csv), d)
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_chains_are_errors_that_name_the_ids() {
    let d = chat_settings();
    let e = chain_error("id,parent_id,instruction,output\n1,,a,b\n1,,c,d\n", &d);
    assert!(
        e.contains("row 2") && e.contains("`1` is not unique") && e.contains("row 1"),
        "{e}"
    );
    let e = chain_error("id,parent_id,instruction,output\n1,,a,b\n2,2,c,d\n", &d);
    assert!(e.contains("row 2") && e.contains("own parent"), "{e}");
    let e = chain_error(
        "id,parent_id,instruction,output\n1,,a,b\n2,3,c,d\n3,4,e,f\n4,2,g,h\n",
        &d,
    );
    assert!(e.contains("cycle") && e.contains("2 → 3 → 4"), "{e}");
    let e = chain_error("id,parent_id,instruction,output\n1,2,a,b\n2,1,c,d\n", &d);
    assert!(e.contains("never empty"), "{e}");
    let e = chain_error("id,parent_id,instruction,output\n1,,a,b\n2,7,c,d\n", &d);
    assert!(e.contains("do not chain"), "{e}");
    let e = chain_error("id,parent_id,instruction,output\n1,,a,\n2,1,c,d\n", &d);
    assert!(
        e.contains("row 1") && e.contains("`output`") && e.contains("only the last turn"),
        "{e}"
    );
    let mut plain = d.clone();
    plain.parent_id_column = None;
    let e = chain_error("id,parent_id,instruction,output\n1,,a,b\n2,1,c,\n", &plain);
    assert!(
        e.contains("row 2") && e.contains("`output`") && e.contains("missing or empty"),
        "{e}"
    );
    let mut same = d.clone();
    same.id_column = Some("parent_id".into());
    let e = chain_error("id,parent_id,instruction,output\n1,,a,b\n", &same);
    assert!(e.contains("must differ"), "{e}");
    let mut long = String::from("id,parent_id,instruction,output\n0,,p,a\n");
    for i in 1..=MAX_CHAIN {
        long.push_str(&format!("{i},{},p,a\n", i - 1));
    }
    let e = chain_error(&long, &d);
    assert!(
        e.contains(&format!("id `{MAX_CHAIN}`")) && e.contains("more than 1000"),
        "{e}"
    );
}

#[test]
fn the_automatic_split_keeps_conversations_whole() {
    let mut csv = String::from("id,parent_id,instruction,output\n");
    for c in 0..50 {
        for t in 0..4 {
            let parent = if t == 0 {
                String::new()
            } else {
                format!("{c}-{}", t - 1)
            };
            csv.push_str(&format!("{c}-{t},{parent},q{c}.{t},a{c}.{t}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path(), &csv);
    let mut d = chat_settings();
    d.validation_size = 0.2;
    let samples = read_samples(&table, &d).unwrap().samples;
    let (train, valid) = split(samples.clone(), None, &d, false).unwrap();
    assert_eq!(valid.len(), 10 * 4, "10 of 50 conversations, every turn");
    for v in &valid {
        assert!(train.iter().all(|t| t.group != v.group));
    }
    let again = split(samples, None, &d, false).unwrap();
    assert_eq!(again.1, valid, "seeded");
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data")
}

#[test]
fn the_real_chat_file_makes_1000_complete_conversations() {
    let table = Table::read(&examples().join("chitchat_1000conv.zip")).unwrap();
    assert_eq!(table.rows.len(), 20_090);
    let mapping = Mapping::auto(&table.columns);
    assert_eq!(mapping.prompt, ["instruction"]);
    assert_eq!(mapping.answer.as_deref(), Some("output"));
    assert_eq!(mapping.parent_id.as_deref(), Some("parent_id"));
    assert_eq!(mapping.id.as_deref(), Some("id"));
    let mut d = Dataset::default();
    mapping.apply(&mut d);
    // One conversation ends with a prompt nobody answered (row 12605): left out.
    let all = read_samples(&table, &d).unwrap();
    assert_eq!(all.samples.len(), 20_089);
    assert_eq!(all.unanswered_ends, 1);
    assert!(all.samples.iter().all(|s| s.row != 12605));
    d.limit_chained_samples = true;
    let complete = read_samples(&table, &d).unwrap();
    assert_eq!(complete.samples.len(), 1000);
    assert_eq!(complete.conversations, 1000);
    // Each complete conversation has every row of its `conversation_id`, in turn order.
    let conv = table.column_index("conversation_id", "test").unwrap();
    let turn = table.column_index("turn", "test").unwrap();
    for s in &complete.samples {
        let rows: Vec<usize> = s.turns.iter().map(|t| t.row - 1).collect();
        let first = &table.rows[rows[0]][conv];
        assert!(rows.iter().all(|&r| &table.rows[r][conv] == first));
        let turns: Vec<usize> = rows
            .iter()
            .map(|&r| table.rows[r][turn].as_deref().unwrap().parse().unwrap())
            .collect();
        assert_eq!(turns, (0..rows.len()).collect::<Vec<_>>());
    }
    let stats = statistics(&table, &d, None).unwrap();
    assert_eq!(stats.conversations, 1000);
    assert_eq!(stats.turns.count, 1000);
    assert_eq!(stats.turns.mean, 20.089);
    assert_eq!(stats.unanswered_ends, 1);
    assert_eq!(stats.prompt_words.count, 20_089);
    assert!(stats.turns.min >= 2.0);
    assert_eq!(stats.turns.bin_counts.iter().sum::<usize>(), 1000);
}
