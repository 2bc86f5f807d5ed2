//! Pushing a folder to the Hub, against a local stand-in of the Hub's upload API that
//! checks every request (the real Hub cannot be reached from tests).

mod hub_standin;

use std::time::Duration;

use hub_standin::{StandIn, TOKEN};
use lathe_model::hub_upload::{upload_folder, HubTarget};

fn target(hub: &StandIn, repo: &str, token: &str) -> HubTarget {
    HubTarget {
        endpoint: hub.url.clone(),
        attempts: 3,
        backoff: Duration::from_millis(10),
        ..HubTarget::new(repo, token)
    }
}

/// A model-like folder: a 3 MB weights file, JSON files and a nested file.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let weights: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("model.safetensors"), weights).unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"a\": 1}\n").unwrap();
    std::fs::write(dir.path().join("README.md"), "# card\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/notes.txt"), "nested").unwrap();
    dir
}

#[test]
fn a_folder_lands_in_a_private_repository_byte_for_byte() {
    let hub = StandIn::start();
    let dir = folder();
    let uploaded =
        upload_folder(dir.path(), &target(&hub, "alice/tuned", TOKEN), "Upload").unwrap();
    assert!(uploaded.commit_url.contains("alice/tuned"));
    let lfs: Vec<&str> = uploaded
        .files
        .iter()
        .filter(|f| f.1)
        .map(|f| f.0.as_str())
        .collect();
    assert_eq!(lfs, ["model.safetensors"]);
    {
        let rec = hub.recorded();
        assert!(rec.violations.is_empty(), "{:?}", rec.violations);
        assert_eq!(rec.repos.get("alice/tuned"), Some(&true), "created private");
        let files = &rec.files["alice/tuned"];
        let names: Vec<&String> = files.keys().collect();
        assert_eq!(
            names,
            [
                "README.md",
                "config.json",
                "model.safetensors",
                "sub/notes.txt"
            ]
        );
        for (name, bytes) in files {
            assert_eq!(
                bytes,
                &std::fs::read(dir.path().join(name)).unwrap(),
                "{name}"
            );
        }
    }
    // Again: the repository exists (409 is fine) and the Hub has the LFS object, so
    // nothing is uploaded to storage a second time.
    let public = HubTarget {
        private: false,
        ..target(&hub, "alice/tuned", TOKEN)
    };
    upload_folder(dir.path(), &public, "Again").unwrap();
    let rec = hub.recorded();
    assert!(rec.violations.is_empty(), "{:?}", rec.violations);
    assert_eq!(rec.commits, ["Upload", "Again"]);
    let puts = rec.requests.iter().filter(|r| r.starts_with("PUT")).count();
    assert_eq!(puts, 1, "{:?}", rec.requests);
}

#[test]
fn server_errors_are_retried_then_reported() {
    let hub = StandIn::start();
    let dir = folder();
    hub.inject("commit", &[503, 502]);
    hub.inject("upload", &[500]);
    upload_folder(dir.path(), &target(&hub, "bob/model", TOKEN), "Upload").unwrap();
    assert!(hub.recorded().violations.is_empty());
    assert_eq!(hub.recorded().files["bob/model"].len(), 4);

    hub.inject("commit", &[503, 503, 503]);
    let err = upload_folder(dir.path(), &target(&hub, "bob/model", TOKEN), "Again")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("committing") && err.contains("503 after 3 attempts"),
        "{err}"
    );
}

#[test]
fn refusals_name_their_cause_without_the_token() {
    let hub = StandIn::start();
    let dir = folder();
    let wrong = "hf_wrong_token_5678";
    let err = upload_folder(dir.path(), &target(&hub, "carol/model", wrong), "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("401") && err.contains("token"), "{err}");
    assert!(!err.contains(wrong), "the token leaked: {err}");

    hub.inject("create", &[403]);
    let err = upload_folder(dir.path(), &target(&hub, "someone-else/model", TOKEN), "x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("403") && err.contains("someone-else/model"),
        "{err}"
    );
    assert!(!err.contains(TOKEN));

    let err = upload_folder(dir.path(), &target(&hub, "no-slash", TOKEN), "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("user/name"), "{err}");
}
