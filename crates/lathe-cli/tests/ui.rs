//! The web UI end to end in headless Chromium: starts `lathe serve` on a fresh
//! workspace with a tiny random model, then runs the Playwright script
//! `tests/ui/e2e.mjs` against it. Needs Node.js, `npm ci` in `tests/ui` and Debian's
//! `chromium` (`scripts/test.sh` and `.ci/run` set them up); screenshots go to
//! `target/ui-screenshots/`.

#[path = "../../lathe-model/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn the_web_ui_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script_dir = root.join("tests/ui");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "Chromium is missing at {chromium}: install Debian's `chromium` package (scripts/test.sh does)"
    );
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `npm ci` in tests/ui (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-model");
    common::write_hf_folder(&model, false, 3, common::StDtype::F32, 1);
    let mut server = Command::new(env!("CARGO_BIN_EXE_lathe"))
        .args(["serve", "--port", "0", "--workdir"])
        .arg(dir.path().join("ws"))
        .env_remove("LATHE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let artifacts = root.join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(script_dir.join("e2e.mjs"))
        .arg(&url)
        .arg(&model)
        .arg(root.join("examples/data/chitchat_1000conv.zip"))
        .arg(&artifacts)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("Node.js runs the UI test");
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the UI test failed (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
    assert!(stdout.contains("UI end-to-end test passed"), "{stdout}");
}
