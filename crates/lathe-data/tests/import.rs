//! Imports into dataset folders: uploads, local files, zips, and Hub datasets through
//! the standard cache (offline, and with the Hub unreachable). Own test binary: it
//! sets HF_* variables.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use lathe_data::{import_bytes, import_hub, import_path, Table};

/// A Parquet file `instruction, output, label` (label optional, one missing).
fn write_parquet(path: &Path) {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = parse_message_type(
        "message rows { REQUIRED BYTE_ARRAY instruction (UTF8); REQUIRED BYTE_ARRAY output (UTF8); OPTIONAL INT64 label; }",
    )
    .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(
        file,
        Arc::new(schema),
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let text = |v: &[&str]| v.iter().map(|s| ByteArray::from(*s)).collect::<Vec<_>>();
    let mut column = 0;
    while let Some(mut writer) = group.next_column().unwrap() {
        match column {
            0 => writer
                .typed::<ByteArrayType>()
                .write_batch(&text(&["2+2?", "Capital of France?", "Hi"]), None, None)
                .unwrap(),
            1 => writer
                .typed::<ByteArrayType>()
                .write_batch(&text(&["4", "Paris", "Hello"]), None, None)
                .unwrap(),
            _ => writer
                .typed::<Int64Type>()
                .write_batch(&[1, 0], Some(&[1, 1, 0]), None)
                .unwrap(),
        };
        writer.close().unwrap();
        column += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".importing"))
        .collect()
}

#[test]
fn imports_from_uploads_files_and_the_hub_cache() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();

    // An upload of a zip with two files.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in [
        ("train.csv", "instruction,output\na,b\n"),
        ("valid.csv", "instruction,output\nc,d\n"),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let files = import_bytes("chat.zip", &bytes, &root.join("uploaded")).unwrap();
    assert_eq!(
        files,
        [
            root.join("uploaded/chat/train.csv"),
            root.join("uploaded/chat/valid.csv")
        ]
    );

    // A bad upload writes nothing.
    let e = import_bytes("bad.csv", b"a,b\n1,2,3\n", &root.join("bad"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.csv, row 1"), "{e}");
    assert!(!root.join("bad").exists() && leftovers(root).is_empty());
    let e = import_bytes("notes.txt", b"hello", &root.join("txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported file type"), "{e}");
    let e = import_bytes("again.csv", b"a\n1\n", &root.join("uploaded"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");

    // A local Parquet file.
    let parquet = root.join("src/rows.parquet");
    write_parquet(&parquet);
    let files = import_path(&parquet, &root.join("local")).unwrap();
    let table = Table::read(&files[0]).unwrap();
    assert_eq!(table.columns, ["instruction", "output", "label"]);
    assert_eq!(table.rows[1][1].as_deref(), Some("Paris"));
    assert_eq!(table.rows[0][2].as_deref(), Some("1"));
    assert_eq!(table.rows[2][2], None);

    // A Hub dataset in the standard cache layout.
    let home = root.join("hf");
    let repo = home.join("hub/datasets--lathe-test--qa");
    let snapshot = repo.join("snapshots/0123abcd");
    write_parquet(&snapshot.join("data/train-00000-of-00001.parquet"));
    write_parquet(&snapshot.join("data/test-00000-of-00001.parquet"));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let files = import_hub("lathe-test/qa", "train", None, &root.join("hub-train")).unwrap();
    assert_eq!(files, [root.join("hub-train/train-00000-of-00001.parquet")]);
    assert_eq!(Table::read(&files[0]).unwrap().rows.len(), 3);
    let e = import_hub("lathe-test/qa", "validation", None, &root.join("v"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lathe-test/qa") && e.contains("`validation`") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );
    let e = import_hub("lathe-test/absent", "train", None, &root.join("a"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HF_HUB_OFFLINE"), "{e}");

    // Online, with the Hub unreachable, the cache still serves.
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let files = import_hub("lathe-test/qa", "test", None, &root.join("hub-test")).unwrap();
    assert_eq!(files.len(), 1);
    let e = import_hub("lathe-test/absent", "train", None, &root.join("b"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("the Hub request failed"), "{e}");
    assert!(leftovers(root).is_empty());
}
