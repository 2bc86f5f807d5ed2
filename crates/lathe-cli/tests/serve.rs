//! `lathe serve` over real HTTP: a real server process on a random loopback port,
//! real worker processes, a real SQLite registry, a tiny random model written by the
//! test. The whole flow (import → experiment → live events → chat → clone, rename,
//! delete), bad input, the token, and crashes of the server and of workers.

#[path = "../../lathe-model/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running `lathe serve`.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(workdir: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lathe"))
            .args(["serve", "--port", "0", "--workdir"])
            .arg(workdir)
            .args(args)
            .env_remove("LATHE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{line:?}");
        Server { child, url }
    }

    /// Kills the server process with SIGKILL (its workers live on).
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `METHOD path` with an optional JSON body: (status, JSON body).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::request(method, &format!("{}{path}", self.url));
        let response = match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        };
        let response = match response {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Downloads a zip archive; returns the names of its files.
    fn download_names(&self, path: &str) -> Vec<String> {
        let response = ureq::get(&format!("{}{path}", self.url)).call().unwrap();
        assert_eq!(response.content_type(), "application/zip");
        let mut bytes = Vec::new();
        response.into_reader().read_to_end(&mut bytes).unwrap();
        let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        names
    }

    /// A call that must answer `expected`; returns the body.
    fn expect(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> Value {
        let (status, value) = self.call(method, path, body);
        assert_eq!(status, expected, "{method} {path}: {value}");
        value
    }

    /// Reads Server-Sent Events from `path` (GET, or POST with `body`) until the
    /// stream ends or `last` names the event; returns `(event, data)` pairs.
    fn events(&self, path: &str, body: Option<Value>, last: &[&str]) -> Vec<(String, String)> {
        let url = format!("{}{path}", self.url);
        let response = match body {
            Some(b) => ureq::post(&url).send_json(b),
            None => ureq::get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut out = Vec::new();
        let mut event = String::new();
        for line in BufReader::new(response.into_reader()).lines() {
            let line = line.unwrap();
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                out.push((event.clone(), data.to_string()));
                if last.contains(&event.as_str()) {
                    break;
                }
            }
        }
        out
    }

    /// Uploads `file` as dataset `name`.
    fn upload(&self, name: &str, file: &Path) -> (u16, Value) {
        let filename = file.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(file).unwrap();
        let url = format!(
            "{}/api/datasets/upload?name={name}&filename={filename}",
            self.url
        );
        match ureq::post(&url).send_bytes(&bytes) {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap();
                (
                    code,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => panic!("upload: {e}"),
        }
    }

    /// Polls experiment `name` until its status is one of `statuses`.
    fn wait_for(&self, name: &str, statuses: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.expect("GET", &format!("/api/experiments/{name}"), None, 200);
            if statuses.contains(&e["status"].as_str().unwrap()) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {statuses:?}: {} {}",
                e["status"],
                e["info"]
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn chat_zip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/chitchat_1000conv.zip")
}

/// Writes the tiny random model (a Hugging Face folder) into `dir`.
fn tiny_model(dir: &Path) -> String {
    let model = dir.join("tiny-model");
    common::write_hf_folder(&model, false, 3, common::StDtype::F32, 1);
    model.display().to_string()
}

/// Settings of a short run of the tiny model on part of the chat data.
fn tiny_settings(model: &str, sample: f64, epochs: u32) -> Value {
    json!({
        "llm_backbone": model,
        "dataset.data_sample": sample,
        "tokenizer.max_length": 48,
        "architecture.backbone_dtype": "float32",
        "training.batch_size": 8,
        "training.epochs": epochs,
        "training.learning_rate": 0.001,
        "training.evaluation_epochs": 0.5,
        "prediction.metric": "BLEU",
        "prediction.max_length_inference": 6,
        "environment.seed": 11,
    })
}

fn kill9(pid: u64) {
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

#[test]
fn the_whole_flow_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let server = Server::start(&dir.path().join("ws"), &[]);

    // Import: the zip of the chat CSV; chains are found by the auto mapping.
    let (status, dataset) = server.upload("chat", &chat_zip());
    assert_eq!(status, 201, "{dataset}");
    assert_eq!(dataset["rows"], 20090);
    assert_eq!(dataset["mapping"]["dataset.parent_id_column"], "parent_id");
    assert_eq!(dataset["validation"], Value::Null);
    let page = server.expect("GET", "/api/datasets/chat/rows?offset=2&limit=3", None, 200);
    assert_eq!(page["rows"].as_array().unwrap().len(), 3);
    assert_eq!(page["total"], 20090);
    let convs = server.expect(
        "GET",
        "/api/datasets/chat/conversations?offset=1&limit=1",
        None,
        200,
    );
    let turns = convs["conversations"][0]["turns"].as_array().unwrap();
    assert_eq!(
        turns.len(),
        2,
        "the second row continues the first: {convs}"
    );
    let stats = server.expect("GET", "/api/datasets/chat/statistics", None, 200);
    assert_eq!(stats["conversations"], 1000);

    // An experiment, watched live until it finishes.
    server.expect(
        "POST",
        "/api/experiments",
        Some(
            json!({"name": "tiny", "dataset": "chat", "settings": tiny_settings(&model, 0.05, 1)}),
        ),
        201,
    );
    let events = server.events("/api/experiments/tiny/stream", None, &["end"]);
    let kinds = |k: &str| events.iter().filter(|(e, _)| e == k).count();
    assert!(kinds("log") > 3, "{events:?}");
    let statuses: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "status")
        .map(|(_, d)| d.as_str())
        .collect();
    assert!(
        statuses.last().unwrap().contains("\"finished\""),
        "{statuses:?}"
    );
    let train_events = events
        .iter()
        .filter(|(e, d)| e == "event" && d.contains("\"train\""))
        .count();
    assert!(train_events > 5, "{events:?}");
    assert_eq!(events.last().unwrap().0, "end");

    let detail = server.expect("GET", "/api/experiments/tiny", None, 200);
    assert_eq!(detail["status"], "finished", "{}", detail["info"]);
    assert_eq!(detail["progress"]["fraction"], 1.0);
    assert_eq!(detail["has_checkpoint"], true);
    assert_eq!(detail["settings"]["training.batch_size"], 8);
    assert_eq!(
        detail["charts"]["train_loss"].as_array().unwrap().len(),
        train_events
    );
    assert!(!detail["charts"]["validation_metric"]
        .as_array()
        .unwrap()
        .is_empty());
    let page = server.expect(
        "GET",
        "/api/experiments/tiny/events?offset=1&limit=2",
        None,
        200,
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_offset"], 3);
    let logs = server.expect("GET", "/api/experiments/tiny/logs?lines=5", None, 200);
    assert_eq!(logs["lines"].as_array().unwrap().len(), 5);
    let predictions = server.expect("GET", "/api/experiments/tiny/predictions", None, 200);
    let rows = predictions["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows[0].get("prediction").is_some(),
        "{predictions}"
    );

    // Downloads: zip archives built on demand, nothing left in the workspace after.
    let names =
        |kind: &str| server.download_names(&format!("/api/experiments/tiny/download/{kind}"));
    let model = names("model");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    ] {
        assert!(model.contains(&file.to_string()), "{model:?}");
    }
    assert!(names("adapter").contains(&"adapter_model.safetensors".to_string()));
    let gguf = names("gguf?quant=q8_0");
    assert!(gguf.iter().any(|f| f.ends_with("-q8_0.gguf")), "{gguf:?}");
    assert_eq!(names("predictions"), ["validation_predictions.csv"]);
    let logs = names("logs");
    assert!(
        logs.contains(&"cfg.yaml".to_string()) && logs.contains(&"logs.log".to_string()),
        "{logs:?}"
    );
    let (status, body) = server.call("GET", "/api/experiments/tiny/download/gguf?quant=q3", None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.call("GET", "/api/experiments/tiny/download/weights", None);
    assert!(
        status == 400 && body["error"].as_str().unwrap().contains("one of model"),
        "{body}"
    );
    let exports = dir.path().join("ws/exports");
    assert_eq!(
        std::fs::read_dir(&exports).unwrap().count(),
        0,
        "archives left behind"
    );

    // Chat: tokens stream, the final text is their concatenation, greedy is stable.
    let ask = json!({"messages": [{"role": "user", "content": "Hello, how are you?"}],
        "max_new_tokens": 5, "temperature": 0.0});
    let chat =
        |body: Value| server.events("/api/experiments/tiny/chat", Some(body), &["done", "error"]);
    let first = chat(ask.clone());
    let (last, done) = first.last().unwrap();
    assert_eq!(last, "done", "{first:?}");
    let done: Value = serde_json::from_str(done).unwrap();
    let streamed: String = first
        .iter()
        .filter(|(e, _)| e == "token")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(streamed, done["text"].as_str().unwrap());
    assert!(done["tokens"].as_u64().unwrap() <= 5);
    let again = chat(ask);
    let again: Value = serde_json::from_str(&again.last().unwrap().1).unwrap();
    assert_eq!(again["text"], done["text"]);
    let (status, body) = server.call(
        "POST",
        "/api/experiments/tiny/chat",
        Some(json!({"messages": [{"role": "assistant", "content": "hi"}]})),
    );
    assert_eq!(status, 400, "{body}");

    // Clone with the trained weights: it starts from them.
    server.expect(
        "POST",
        "/api/experiments/tiny/clone",
        Some(
            json!({"new_name": "tiny-2", "with_weights": true, "settings": {"training.epochs": 1}}),
        ),
        201,
    );
    let clone = server.wait_for("tiny-2", &["finished", "failed"], Duration::from_secs(300));
    assert_eq!(clone["status"], "finished", "{}", clone["info"]);
    let tiny_dir = dir.path().join("ws/experiments/tiny");
    assert_eq!(
        clone["settings"]["architecture.pretrained_weights"],
        tiny_dir.canonicalize().unwrap().display().to_string()
    );
    let log = server.expect("GET", "/api/experiments/tiny-2/logs?lines=1000", None, 200);
    assert!(log.to_string().contains("weights: starting from"), "{log}");

    // Rename: the folder moves and its cfg.yaml follows.
    server.expect(
        "POST",
        "/api/experiments/tiny-2/rename",
        Some(json!({"new_name": "tiny-b"})),
        200,
    );
    server.expect("GET", "/api/experiments/tiny-2", None, 404);
    let renamed = server.expect("GET", "/api/experiments/tiny-b", None, 200);
    assert!(renamed["config_yaml"]
        .as_str()
        .unwrap()
        .contains("experiment_name: tiny-b"));
    assert!(dir.path().join("ws/experiments/tiny-b/checkpoint").is_dir());
    server.expect(
        "POST",
        "/api/experiments/tiny/rename",
        Some(json!({"new_name": "tiny-b"})),
        409,
    );

    // Compare: both series and the one setting that differs.
    let cmp = server.expect("GET", "/api/compare?names=tiny,tiny-b", None, 200);
    assert!(
        cmp["series"]["tiny-b"]["train_loss"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
    let differing: Vec<&str> = cmp["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["differs"] == true)
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert!(
        differing.contains(&"architecture.pretrained_weights"),
        "{differing:?}"
    );

    // Delete everything: folders and rows go.
    for name in ["tiny", "tiny-b"] {
        server.expect("DELETE", &format!("/api/experiments/{name}"), None, 204);
    }
    server.expect("DELETE", "/api/datasets/chat", None, 204);
    assert_eq!(
        server.expect("GET", "/api/experiments", None, 200),
        json!([])
    );
    assert_eq!(server.expect("GET", "/api/datasets", None, 200), json!([]));
    assert_eq!(
        std::fs::read_dir(dir.path().join("ws/experiments"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("ws/datasets"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn the_openapi_document_covers_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let doc = server.expect("GET", "/api/openapi.json", None, 200);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let concrete = path.replace("{name}", "nothing-here") + "?names=nothing-here";
            let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
            let (status, value) = server.call(&method.to_uppercase(), &concrete, body);
            // Every documented route exists: no 405, and not the fallback's 404.
            assert_ne!(status, 405, "{method} {path}");
            assert_ne!(value, json!({"error": "no such route"}), "{method} {path}");
        }
    }
    assert!(operations >= 30, "{operations} operations documented");
    for route in [
        "/api/datasets/upload",
        "/api/experiments/{name}/stream",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    // And what is not routed is the fallback, as JSON.
    assert_eq!(
        server.call("GET", "/api/nothing", None),
        (404, json!({"error": "no such route"}))
    );
}

/// Sends raw HTTP (for uploads that a client library would not send) and returns
/// the status line and the body.
fn raw_request(url: &str, head: &str, body: &[u8]) -> (String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before reading it all: that is the point.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let server = Server::start(&ws, &["--max-upload-mb", "1"]);
    let alpaca =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/alpaca_en_demo.json");
    assert_eq!(server.upload("alpaca", &alpaca).0, 201);
    let before = server.expect("GET", "/api/datasets", None, 200);

    // Malformed JSON, unknown fields, unknown settings, values out of range.
    let post = |path: &str, body: &str| {
        let url = format!("{}{path}", server.url);
        match ureq::post(&url)
            .set("content-type", "application/json")
            .send_string(body)
        {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    let (status, body) = post("/api/experiments", "{\"name\": \"x\",");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("request body"), "{body}");
    let (status, body) = post(
        "/api/experiments",
        r#"{"name": "x", "dataset": "alpaca", "colour": 1}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("colour"), "{body}");
    let create = |settings: Value| {
        server.call(
            "POST",
            "/api/experiments",
            Some(json!({"name": "x", "dataset": "alpaca", "settings": settings})),
        )
    };
    let (status, body) = create(json!({"training.epoch": 2}));
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown setting `training.epoch`"),
        "{body}"
    );
    let (status, body) = create(json!({"training.learning_rate": -1}));
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("training.learning_rate") && message.contains("-1"),
        "{message}"
    );
    let (status, body) = create(json!({"dataset.answer_column": "nope"}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");
    assert_eq!(
        server
            .call(
                "POST",
                "/api/experiments",
                Some(json!({"name": "x", "dataset": "missing"}))
            )
            .0,
        404
    );

    // Names that would leave their folder, and duplicates.
    for name in ["../../etc/passwd", "..", ".hidden", "a%2Fb"] {
        let (status, body) = server.call(
            "POST",
            "/api/experiments",
            Some(json!({"name": name, "dataset": "alpaca"})),
        );
        assert_eq!(status, 400, "{name}: {body}");
        let (status, body) = server.upload(name, &alpaca);
        assert_eq!(status, 400, "{name}: {body}");
    }
    let url = format!(
        "{}/api/datasets/upload?name=ok&filename=..%2F..%2Fetc%2Fpasswd.csv",
        server.url
    );
    let Err(ureq::Error::Status(400, _)) = ureq::post(&url).send_bytes(b"a,b\n1,2\n") else {
        panic!("a path as file name was accepted");
    };
    let (status, body) = server.upload("alpaca", &alpaca);
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.call(
        "POST",
        "/api/datasets",
        Some(json!({"name": "again", "source": {"path": "/nonexistent/data.csv"}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/data.csv"),
        "{body}"
    );

    // Uploads over the limit: a declared 1 GB body is refused before it is sent,
    // a streamed one as soon as it passes the limit.
    let head = format!(
        "POST /api/datasets/upload?name=big&filename=big.csv HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        1u64 << 30
    );
    let (status, body) = raw_request(&server.url, &head, b"");
    assert!(status.contains(" 413 "), "{status} {body}");
    assert!(body.contains("limit of 1 MiB"), "{body}");
    let mut chunked = Vec::new();
    let line = b"a,b\n1,2\n".repeat(8192);
    for _ in 0..40 {
        chunked.extend(format!("{:x}\r\n", line.len()).as_bytes());
        chunked.extend(&line);
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    let head = "POST /api/datasets/upload?name=big&filename=big.csv HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (status, body) = raw_request(&server.url, head, &chunked);
    assert!(status.contains(" 413 "), "{status} {body}");

    // Nothing was written by any of it.
    assert_eq!(server.expect("GET", "/api/datasets", None, 200), before);
    assert_eq!(
        server.expect("GET", "/api/experiments", None, 200),
        json!([])
    );
    assert_eq!(
        std::fs::read_dir(ws.join("experiments")).unwrap().count(),
        0
    );
    assert_eq!(std::fs::read_dir(ws.join("uploads")).unwrap().count(), 0);
    let folders: Vec<_> = std::fs::read_dir(ws.join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(folders, ["alpaca"]);

    // Settings: secrets are stored apart, 0600, and never shown in full.
    server.expect(
        "PUT",
        "/api/settings",
        Some(json!({"settings": {"chart_plot_max_points": 500}, "secrets": {"huggingface_token": "hf_secret_value_1234"}})),
        200,
    );
    let shown = server.expect("GET", "/api/settings", None, 200);
    assert_eq!(shown["secrets"]["huggingface_token"], "…1234");
    assert_eq!(shown["settings"]["chart_plot_max_points"]["value"], 500);
    assert!(!shown.to_string().contains("hf_secret_value"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws.join("secrets.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (status, body) = server.call(
        "PUT",
        "/api/settings",
        Some(json!({"settings": {"huggingface_token": "x"}})),
    );
    assert_eq!(status, 400, "{body}");

    // A grid over HTTP: one experiment per value, named after it; a bad value
    // anywhere in the grid makes none.
    let grid = |values: Value| {
        server.call(
            "POST",
            "/api/experiments/grid",
            Some(
                json!({"experiment": {"name": "g", "dataset": "alpaca", "start": false},
                "grid": {"training.learning_rate": values}}),
            ),
        )
    };
    let (status, body) = grid(json!([0.01, "x"]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        server.expect("GET", "/api/experiments", None, 200),
        json!([])
    );
    let (status, body) = grid(json!([0.001, 0.0001]));
    assert_eq!(status, 201, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g_learning_rate_0.001", "g_learning_rate_0.0001"]);
}

#[test]
fn a_token_guards_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--token", "s3cret"]);
    let url = format!("{}/api/datasets", server.url);
    let Err(ureq::Error::Status(401, r)) = ureq::get(&url).call() else {
        panic!("no token needed");
    };
    assert!(r.into_string().unwrap().contains("token"));
    let Err(ureq::Error::Status(401, _)) =
        ureq::get(&url).set("Authorization", "Bearer wrong").call()
    else {
        panic!("a wrong token was taken");
    };
    assert_eq!(
        ureq::get(&url)
            .set("Authorization", "Bearer s3cret")
            .call()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        ureq::get(&format!("{url}?token=s3cret"))
            .call()
            .unwrap()
            .status(),
        200
    );

    // Another address than loopback is refused without a token.
    let out = Command::new(env!("CARGO_BIN_EXE_lathe"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--workdir"])
        .arg(dir.path())
        .env_remove("LATHE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

#[test]
fn crashes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let ws = dir.path().join("ws");
    let mut server = Server::start(&ws, &["--max-jobs", "2", "--stop-grace", "20"]);
    assert_eq!(server.upload("chat", &chat_zip()).0, 201);
    for name in ["a", "b"] {
        server.expect(
            "POST",
            "/api/experiments",
            Some(
                json!({"name": name, "dataset": "chat", "settings": tiny_settings(&model, 0.3, 1)}),
            ),
            201,
        );
    }
    // Both train at once; the server dies under them.
    for name in ["a", "b"] {
        server.wait_for(name, &["running"], Duration::from_secs(60));
    }
    server.kill9();
    let server = Server::start(&ws, &["--max-jobs", "2", "--stop-grace", "20"]);
    for name in ["a", "b"] {
        let e = server.expect("GET", &format!("/api/experiments/{name}"), None, 200);
        assert!(
            matches!(e["status"].as_str(), Some("running" | "finished")),
            "{}",
            e["status"]
        );
    }
    for name in ["a", "b"] {
        let e = server.wait_for(name, &["finished", "failed"], Duration::from_secs(600));
        assert_eq!(e["status"], "finished", "{}", e["info"]);
    }

    // A killed worker: its experiment fails with the reason, and resumes.
    server.expect(
        "POST",
        "/api/experiments",
        Some(json!({"name": "c", "dataset": "chat", "settings": tiny_settings(&model, 0.3, 1)})),
        201,
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    let pid = loop {
        let e = server.expect("GET", "/api/experiments/c", None, 200);
        if e["has_checkpoint"] == true && e["status"] == "running" {
            break e["pid"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline && e["status"] != "finished",
            "{}",
            e["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    kill9(pid);
    let failed = server.wait_for("c", &["failed", "finished"], Duration::from_secs(30));
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["info"].as_str().unwrap().contains("signal 9"),
        "{}",
        failed["info"]
    );
    let status: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.join("experiments/c/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "failed");
    server.expect("POST", "/api/experiments/c/resume", None, 200);
    let done = server.wait_for("c", &["finished", "failed"], Duration::from_secs(600));
    assert_eq!(done["status"], "finished", "{}", done["info"]);
    let log = server.expect("GET", "/api/experiments/c/logs?lines=10000", None, 200);
    assert!(log.to_string().contains("resumed from"), "{log}");

    // A stop is graceful: the run saves and ends as `stopped`; a start continues it.
    server.expect(
        "POST",
        "/api/experiments/a/clone",
        Some(json!({"new_name": "d", "settings": {"training.epochs": 3}})),
        201,
    );
    server.wait_for("d", &["running"], Duration::from_secs(60));
    server.expect(
        "POST",
        "/api/experiments/d/rename",
        Some(json!({"new_name": "e"})),
        409,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.expect("GET", "/api/experiments/d", None, 200)["progress"]["step"] == 0 {
        assert!(Instant::now() < deadline, "d never trained a step");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = server.call("GET", "/api/experiments/d/download/model", None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("stop it"),
        "{body}"
    );
    server.expect("POST", "/api/experiments/d/stop", None, 200);
    let stopped = server.wait_for(
        "d",
        &["stopped", "failed", "finished"],
        Duration::from_secs(60),
    );
    assert_eq!(stopped["status"], "stopped", "{}", stopped["info"]);
    assert_eq!(stopped["has_checkpoint"], true);
    server.expect("POST", "/api/experiments/d/start", None, 200);
    server.wait_for("d", &["running", "finished"], Duration::from_secs(60));
    server.expect("DELETE", "/api/experiments/d", None, 204);
    assert!(!ws.join("experiments/d").exists());
}

#[test]
fn ctrl_c_ends_live_streams_and_leaves_workers_training() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut server = Server::start(&dir.path().join("ws"), &[]);
    assert_eq!(server.upload("chat", &chat_zip()).0, 201);
    server.expect(
        "POST",
        "/api/experiments",
        Some(json!({"name": "long", "dataset": "chat", "settings": tiny_settings(&model, 1.0, 3)})),
        201,
    );
    let running = server.wait_for("long", &["running"], Duration::from_secs(60));
    let pid = running["pid"].as_u64().unwrap();
    let url = format!("{}/api/experiments/long/stream", server.url);
    let watcher = std::thread::spawn(move || {
        let response = ureq::get(&url).call().unwrap();
        BufReader::new(response.into_reader()).lines().count()
    });
    std::thread::sleep(Duration::from_millis(500));
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the server did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(watcher.join().unwrap() > 0);
    // The worker is its own process: it trains on.
    assert_eq!(
        unsafe { libc::kill(pid as i32, 0) },
        0,
        "the worker died with the server"
    );
    kill9(pid);
}
