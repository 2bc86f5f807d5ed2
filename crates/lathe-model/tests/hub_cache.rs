//! Hub ids resolve through the standard Hugging Face cache layout; offline, a model
//! missing from the cache is a clear error. (Own test binary: it sets HF_* variables.)

mod common;

use common::StDtype;

#[test]
fn hub_ids_load_from_the_cache_offline() {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--lathe-test--tiny-llama");
    let snapshot = repo.join("snapshots/0123456789abcdef");
    common::write_hf_folder(&snapshot, false, 3, StDtype::F32, 1);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let from_hub = lathe_model::load("lathe-test/tiny-llama").unwrap();
    let from_folder = lathe_model::loader::load_folder(&snapshot).unwrap();
    let ids = from_hub.tokenizer.encode("the hat", true).unwrap();
    assert_eq!(
        from_hub.logits(&ids).unwrap(),
        from_folder.logits(&ids).unwrap()
    );
    assert_eq!(from_hub.source, "lathe-test/tiny-llama");

    let err = lathe_model::load("lathe-test/not-cached")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("lathe-test/not-cached") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    let err = lathe_model::load("not a model").err().unwrap().to_string();
    assert!(err.contains("not a model"), "{err}");
}
