//! A stand-in for the Hugging Face Hub's upload endpoints, served over real HTTP on a
//! local port: repository creation, `preupload`, the Git LFS batch API with basic
//! transfers and verification, and `commit`. It checks every request (token, paths,
//! content types, sizes, sha256 of LFS objects, that LFS pointers name uploaded
//! objects) and records what was committed, so tests can compare it with the files.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const TOKEN: &str = "hf_standin_secret_token_1234";

/// What the stand-in saw and holds.
#[derive(Default)]
pub struct Recorded {
    /// Repositories created, with their privacy.
    pub repos: BTreeMap<String, bool>,
    /// LFS objects stored by sha256.
    pub objects: HashMap<String, Vec<u8>>,
    /// LFS objects verified.
    pub verified: HashSet<String>,
    /// Each repository's files after its commits: path → bytes.
    pub files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Commit summaries.
    pub commits: Vec<String>,
    /// Every request: `METHOD path`.
    pub requests: Vec<String>,
    /// Problems found in requests (a test asserts there are none).
    pub violations: Vec<String>,
    /// Statuses to answer instead of serving, per `METHOD path-kind` (`commit`,
    /// `create`, `batch`, `preupload`, `upload`), consumed front first.
    pub inject: HashMap<&'static str, Vec<u16>>,
}

pub struct StandIn {
    pub url: String,
    pub state: Arc<Mutex<Recorded>>,
    _runtime: tokio::runtime::Runtime,
}

impl StandIn {
    /// Starts the stand-in on a free local port.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(Recorded::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let app = Router::new()
            .route("/api/repos/create", post(create))
            .route(
                "/api/models/{owner}/{name}/preupload/{revision}",
                post(preupload),
            )
            .route("/api/models/{owner}/{name}/commit/{revision}", post(commit))
            .route("/{owner}/{repo}/info/lfs/objects/batch", post(batch))
            .route("/storage/{oid}", put(upload))
            .route("/verify/{oid}", post(verify))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state((state.clone(), url.clone()));
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url,
            state,
            _runtime: runtime,
        }
    }

    pub fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().unwrap()
    }

    /// Answers the next requests of `kind` with `statuses`.
    pub fn inject(&self, kind: &'static str, statuses: &[u16]) {
        self.recorded().inject.insert(kind, statuses.to_vec());
    }
}

type Shared = State<(Arc<Mutex<Recorded>>, String)>;

/// Records the request, checks its token, and answers an injected status if any.
fn enter(
    rec: &mut Recorded,
    kind: &'static str,
    line: String,
    headers: &HeaderMap,
    needs_token: bool,
) -> Option<Response> {
    rec.requests.push(line.clone());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Some(queue) = rec.inject.get_mut(kind) {
        if !queue.is_empty() {
            let status = queue.remove(0);
            return Some(
                (
                    StatusCode::from_u16(status).unwrap(),
                    Json(json!({"error": format!("injected {status}")})),
                )
                    .into_response(),
            );
        }
    }
    if needs_token && auth != Some(&format!("Bearer {TOKEN}")) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "Invalid credentials in Authorization header"})),
            )
                .into_response(),
        );
    }
    if !needs_token && auth.is_some() {
        rec.violations.push(format!(
            "{line}: the Hub token was sent to the storage host"
        ));
    }
    None
}

async fn create(
    State((state, _)): Shared,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut rec = state.lock().unwrap();
    if let Some(r) = enter(
        &mut rec,
        "create",
        "POST /api/repos/create".into(),
        &headers,
        true,
    ) {
        return r;
    }
    let (Some(owner), Some(name)) = (body["organization"].as_str(), body["name"].as_str()) else {
        rec.violations
            .push(format!("create without organization/name: {body}"));
        return StatusCode::BAD_REQUEST.into_response();
    };
    if body["type"] != "model" {
        rec.violations
            .push(format!("create with type {}", body["type"]));
    }
    let repo = format!("{owner}/{name}");
    if rec.repos.contains_key(&repo) {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "You already created this model repo"})),
        )
            .into_response();
    }
    rec.repos
        .insert(repo.clone(), body["private"].as_bool().unwrap_or(false));
    Json(json!({"url": format!("https://hub.example/{repo}")})).into_response()
}

async fn preupload(
    State((state, _)): Shared,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut rec = state.lock().unwrap();
    let line = format!("POST /api/models/{owner}/{name}/preupload/{revision}");
    if let Some(r) = enter(&mut rec, "preupload", line, &headers, true) {
        return r;
    }
    let mut files = Vec::new();
    for f in body["files"].as_array().into_iter().flatten() {
        let size = f["size"].as_u64().unwrap_or(0);
        let sample = base64::engine::general_purpose::STANDARD
            .decode(f["sample"].as_str().unwrap_or(""))
            .unwrap_or_default();
        if sample.len() != size.min(512) as usize {
            rec.violations.push(format!(
                "sample of {} has {} bytes",
                f["path"],
                sample.len()
            ));
        }
        let path = f["path"].as_str().unwrap_or("");
        let lfs = size > 1_000_000 || path.ends_with(".safetensors") || path.ends_with(".gguf");
        files.push(
            json!({"path": path, "uploadMode": if lfs { "lfs" } else { "regular" },
                          "shouldIgnore": false}),
        );
    }
    Json(json!({"files": files})).into_response()
}

async fn batch(
    State((state, url)): Shared,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = state.lock().unwrap();
    let line = format!("POST /{owner}/{repo}/info/lfs/objects/batch");
    if let Some(r) = enter(&mut rec, "batch", line.clone(), &headers, true) {
        return r;
    }
    if !repo.ends_with(".git") {
        rec.violations.push(format!("{line}: not a .git path"));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/vnd.git-lfs+json") {
        rec.violations
            .push(format!("{line}: content type {content_type:?}"));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    if body["operation"] != "upload" || body["hash_algo"] != "sha256" {
        rec.violations.push(format!("{line}: {body}"));
    }
    let objects: Vec<Value> = body["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let oid = o["oid"].as_str().unwrap_or("").to_string();
            let size = o["size"].as_u64().unwrap_or(0);
            if rec.objects.contains_key(&oid) {
                json!({"oid": oid, "size": size})
            } else {
                json!({"oid": oid, "size": size, "actions": {
                    "upload": {"href": format!("{url}/storage/{oid}"), "header": {"x-standin-upload": size.to_string()}},
                    "verify": {"href": format!("{url}/verify/{oid}"), "header": {"Authorization": format!("Bearer {TOKEN}")}}}})
            }
        })
        .collect();
    (
        [("content-type", "application/vnd.git-lfs+json")],
        Json(json!({"transfer": "basic", "objects": objects})),
    )
        .into_response()
}

async fn upload(
    State((state, _)): Shared,
    Path(oid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = state.lock().unwrap();
    let line = format!("PUT /storage/{oid}");
    if let Some(r) = enter(&mut rec, "upload", line.clone(), &headers, false) {
        return r;
    }
    let expected = headers
        .get("x-standin-upload")
        .and_then(|v| v.to_str().ok());
    if expected != Some(&body.len().to_string()) {
        rec.violations.push(format!(
            "{line}: action header {expected:?}, body {} bytes",
            body.len()
        ));
    }
    if headers.get("content-length").is_none() {
        rec.violations.push(format!("{line}: no Content-Length"));
    }
    let digest = format!("{:x}", Sha256::digest(&body));
    if digest != oid {
        rec.violations.push(format!("{line}: body sha256 {digest}"));
    }
    rec.objects.insert(oid, body.to_vec());
    StatusCode::OK.into_response()
}

async fn verify(
    State((state, _)): Shared,
    Path(oid): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut rec = state.lock().unwrap();
    let line = format!("POST /verify/{oid}");
    if let Some(r) = enter(&mut rec, "verify", line.clone(), &headers, true) {
        return r;
    }
    let stored = rec.objects.get(&oid).map(|b| b.len() as u64);
    if body["oid"] != oid.as_str() || stored != body["size"].as_u64() {
        rec.violations
            .push(format!("{line}: {body}, stored {stored:?}"));
    }
    rec.verified.insert(oid);
    StatusCode::OK.into_response()
}

async fn commit(
    State((state, _)): Shared,
    Path((owner, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rec = state.lock().unwrap();
    let line = format!("POST /api/models/{owner}/{name}/commit/{revision}");
    if let Some(r) = enter(&mut rec, "commit", line.clone(), &headers, true) {
        return r;
    }
    let repo = format!("{owner}/{name}");
    if !rec.repos.contains_key(&repo) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Repository not found"})),
        )
            .into_response();
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-ndjson") {
        rec.violations
            .push(format!("{line}: content type {content_type:?}"));
    }
    let text = String::from_utf8_lossy(&body);
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_default());
    let header = lines.next().unwrap_or_default();
    if header["key"] != "header" {
        rec.violations.push(format!("{line}: first line {header}"));
    }
    let mut files = rec.files.get(&repo).cloned().unwrap_or_default();
    for op in lines {
        let value = &op["value"];
        let path = value["path"].as_str().unwrap_or("").to_string();
        match op["key"].as_str() {
            Some("file") => {
                let content = base64::engine::general_purpose::STANDARD
                    .decode(value["content"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                files.insert(path, content);
            }
            Some("lfsFile") => {
                let oid = value["oid"].as_str().unwrap_or("");
                match rec.objects.get(oid) {
                    Some(bytes)
                        if rec.verified.contains(oid)
                            && value["size"].as_u64() == Some(bytes.len() as u64) =>
                    {
                        files.insert(path, bytes.clone());
                    }
                    _ => {
                        let message = format!("{line}: LFS pointer {path} → {oid} names no verified object of that size");
                        rec.violations.push(message);
                        return (
                            StatusCode::BAD_REQUEST,
                            Json(json!({"error": "unknown LFS object"})),
                        )
                            .into_response();
                    }
                }
            }
            other => rec.violations.push(format!("{line}: operation {other:?}")),
        }
    }
    rec.files.insert(repo.clone(), files);
    rec.commits.push(
        header["value"]["summary"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    );
    Json(json!({"commitUrl": format!("https://hub.example/{repo}/commit/abc"), "commitOid": "abc"}))
        .into_response()
}
