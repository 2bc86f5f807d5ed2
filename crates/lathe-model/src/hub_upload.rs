//! Uploading a folder to a Hugging Face Hub model repository through the Hub's HTTP
//! API, as `huggingface_hub` does: create the repository, ask which files go through
//! Git LFS (`preupload`), upload those with the LFS batch protocol (basic transfers),
//! then commit every file in one `commit` call. Server errors (5xx) are retried with
//! backoff; the token is sent only to the Hub (and to LFS hosts that ask for it in
//! their own headers) and never appears in messages.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct HubTarget {
    /// The Hub's address (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// `user/name` or `org/name`.
    pub repo: String,
    /// The access token (write scope).
    pub token: String,
    /// Create the repository private (the default) or public.
    pub private: bool,
    /// Attempts for a request that fails with a server error or a broken connection.
    pub attempts: u32,
    /// Wait before the first retry; doubled after each.
    pub backoff: Duration,
}

impl HubTarget {
    /// A private repository on the Hub at `HF_ENDPOINT` (or huggingface.co), four
    /// attempts per request from one second of backoff.
    pub fn new(repo: &str, token: &str) -> Self {
        Self {
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            repo: repo.to_string(),
            token: token.to_string(),
            private: true,
            attempts: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq)]
pub struct Uploaded {
    /// The commit's URL on the Hub.
    pub commit_url: String,
    /// Files committed, with whether they went through LFS.
    pub files: Vec<(String, bool)>,
}

/// A file of the folder: its repository path, size and (for LFS) sha256.
struct LocalFile {
    path: PathBuf,
    repo_path: String,
    size: u64,
}

/// The token to use: `HF_TOKEN`, else the token file `huggingface-cli login` writes.
pub fn token_from_environment() -> Option<String> {
    if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
        return Some(token);
    }
    let home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
    })?;
    let token = std::fs::read_to_string(home.join("token")).ok()?;
    Some(token.trim().to_string()).filter(|t| !t.is_empty())
}

/// Uploads every file under `folder` to `target.repo` in one commit with `message`.
pub fn upload_folder(folder: &Path, target: &HubTarget, message: &str) -> Result<Uploaded> {
    if target.repo.split('/').count() != 2 || target.repo.split('/').any(str::is_empty) {
        return Err(ModelError::Resolve(format!(
            "repository `{}`: give it as user/name or org/name",
            target.repo
        )));
    }
    let files = local_files(folder)?;
    let hub = Hub {
        target,
        agent: ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .build(),
    };
    hub.create_repo()?;
    let modes = hub.preupload(&files)?;
    let mut operations = Vec::with_capacity(files.len());
    let mut committed = Vec::with_capacity(files.len());
    for file in &files {
        let lfs = modes
            .iter()
            .any(|(path, mode)| *path == file.repo_path && mode == "lfs");
        let value = if lfs {
            let oid = sha256_of(&file.path)?;
            hub.upload_lfs(file, &oid)?;
            json!({"key": "lfsFile", "value": {"path": file.repo_path, "algo": "sha256",
                   "oid": oid, "size": file.size}})
        } else {
            let bytes = std::fs::read(&file.path).map_err(|e| ModelError::io(&file.path, e))?;
            json!({"key": "file", "value": {"path": file.repo_path, "encoding": "base64",
                   "content": BASE64.encode(bytes)}})
        };
        operations.push(value);
        committed.push((file.repo_path.clone(), lfs));
    }
    let commit_url = hub.commit(message, operations)?;
    Ok(Uploaded {
        commit_url,
        files: committed,
    })
}

/// Every regular file under `folder`, with `/`-separated repository paths, sorted.
fn local_files(folder: &Path) -> Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| ModelError::io(&dir, e))? {
            let entry = entry.map_err(|e| ModelError::io(&dir, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| ModelError::io(&path, e))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let relative = path.strip_prefix(folder).expect("under the folder");
                let repo_path = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push(LocalFile {
                    path,
                    repo_path,
                    size: meta.len(),
                });
            }
        }
    }
    if files.is_empty() {
        return Err(ModelError::Resolve(format!(
            "{}: nothing to upload",
            folder.display()
        )));
    }
    files.sort_by(|a, b| a.repo_path.cmp(&b.repo_path));
    Ok(files)
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| ModelError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The first 512 bytes of a file, base64 (what `preupload` looks at).
fn sample_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut sample = Vec::with_capacity(512);
    file.by_ref()
        .take(512)
        .read_to_end(&mut sample)
        .map_err(|e| ModelError::io(path, e))?;
    Ok(BASE64.encode(sample))
}

struct Hub<'a> {
    target: &'a HubTarget,
    agent: ureq::Agent,
}

/// A request body.
enum Body<'a> {
    Json(Value),
    Text(&'a str, String),
    /// A file and its size (sent with a Content-Length, as storage hosts require).
    File(&'a Path, u64),
}

impl Hub<'_> {
    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.target.endpoint)
    }

    /// Sends a request, retrying server errors and broken connections with backoff.
    /// `what` names the step in errors; `headers` are sent as given.
    fn send(
        &self,
        what: &str,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &Body,
    ) -> Result<ureq::Response> {
        let mut wait = self.target.backoff;
        let mut attempt = 1;
        loop {
            let mut request = self.agent.request(method, url);
            for (k, v) in headers {
                request = request.set(k, v);
            }
            let result = match body {
                Body::Json(value) => request.send_json(value.clone()),
                Body::Text(content_type, text) => {
                    request.set("Content-Type", content_type).send_string(text)
                }
                Body::File(path, size) => {
                    let file = std::fs::File::open(path).map_err(|e| ModelError::io(*path, e))?;
                    request.set("Content-Length", &size.to_string()).send(file)
                }
            };
            let retry = match &result {
                Err(ureq::Error::Status(code, _)) => *code >= 500,
                Err(ureq::Error::Transport(_)) => true,
                Ok(_) => false,
            };
            if !retry || attempt >= self.target.attempts {
                return result.map_err(|e| self.describe(what, e));
            }
            std::thread::sleep(wait);
            wait *= 2;
            attempt += 1;
        }
    }

    fn describe(&self, what: &str, e: ureq::Error) -> ModelError {
        let repo = &self.target.repo;
        let message = match e {
            ureq::Error::Status(code, response) => {
                let body = response.into_string().unwrap_or_default();
                let detail = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or(body);
                let detail: String = detail.chars().take(300).collect();
                match code {
                    401 => format!("the Hub refused the token (401): set a valid token with write access (HF_TOKEN, or the studio's Hugging Face token). {detail}"),
                    403 => format!("the token may not write to {repo} (403): it needs write access to that user or organization. {detail}"),
                    404 => format!("{repo} was not found (404). {detail}"),
                    409 => format!("conflict on {repo} (409): {detail}"),
                    c if c >= 500 => format!("the Hub failed with {c} after {} attempts. {detail}", self.target.attempts),
                    c => format!("the Hub answered {c}. {detail}"),
                }
            }
            ureq::Error::Transport(t) => format!(
                "cannot reach {} after {} attempts: {t}",
                self.target.endpoint, self.target.attempts
            ),
        };
        ModelError::Resolve(format!("push to the Hub, {what}: {message}"))
    }

    fn auth(&self) -> Vec<(String, String)> {
        vec![(
            "Authorization".into(),
            format!("Bearer {}", self.target.token),
        )]
    }

    fn json(&self, what: &str, response: ureq::Response) -> Result<Value> {
        response.into_json().map_err(|e| {
            ModelError::Resolve(format!("push to the Hub, {what}: unreadable answer: {e}"))
        })
    }

    /// Creates the repository; one that exists already (409) is used as it is.
    fn create_repo(&self) -> Result<()> {
        let (owner, name) = self.target.repo.split_once('/').expect("checked");
        let body = json!({"name": name, "organization": owner, "private": self.target.private,
                          "type": "model"});
        let url = self.api("/api/repos/create");
        match self.send(
            "creating the repository",
            "POST",
            &url,
            &self.auth(),
            &Body::Json(body),
        ) {
            Ok(_) => Ok(()),
            Err(ModelError::Resolve(m)) if m.contains("(409)") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks which files go through LFS: `(path, uploadMode)`.
    fn preupload(&self, files: &[LocalFile]) -> Result<Vec<(String, String)>> {
        let entries = files
            .iter()
            .map(|f| {
                Ok(json!({"path": f.repo_path, "size": f.size, "sample": sample_of(&f.path)?}))
            })
            .collect::<Result<Vec<_>>>()?;
        let url = self.api(&format!("/api/models/{}/preupload/main", self.target.repo));
        let what = "checking the files";
        let response = self.send(
            what,
            "POST",
            &url,
            &self.auth(),
            &Body::Json(json!({"files": entries})),
        )?;
        let answer = self.json(what, response)?;
        Ok(answer["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some((
                    f["path"].as_str()?.to_string(),
                    f["uploadMode"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Uploads one LFS object unless the Hub has it already, then verifies it.
    fn upload_lfs(&self, file: &LocalFile, oid: &str) -> Result<()> {
        let what = format!("uploading {}", file.repo_path);
        let url = format!(
            "{}/{}.git/info/lfs/objects/batch",
            self.target.endpoint, self.target.repo
        );
        let mut headers = self.auth();
        headers.push(("Accept".into(), "application/vnd.git-lfs+json".into()));
        let body = json!({"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                          "objects": [{"oid": oid, "size": file.size}], "ref": {"name": "refs/heads/main"}});
        let text = body.to_string();
        let response = self.send(
            &what,
            "POST",
            &url,
            &headers,
            &Body::Text("application/vnd.git-lfs+json", text),
        )?;
        let answer = self.json(&what, response)?;
        let object = &answer["objects"][0];
        if let Some(error) = object.get("error") {
            return Err(ModelError::Resolve(format!(
                "push to the Hub, {what}: {}",
                error["message"]
                    .as_str()
                    .unwrap_or("LFS refused the object")
            )));
        }
        let Some(upload) = object["actions"].get("upload") else {
            return Ok(()); // The Hub has this object already.
        };
        let href = upload["href"].as_str().ok_or_else(|| {
            ModelError::Resolve(format!("push to the Hub, {what}: no upload address"))
        })?;
        self.send(
            &what,
            "PUT",
            href,
            &action_headers(upload),
            &Body::File(&file.path, file.size),
        )?;
        if let Some(verify) = object["actions"].get("verify") {
            let href = verify["href"].as_str().unwrap_or_default();
            let mut headers = action_headers(verify);
            headers.push(("Accept".into(), "application/vnd.git-lfs+json".into()));
            let body = json!({"oid": oid, "size": file.size}).to_string();
            self.send(
                &what,
                "POST",
                href,
                &headers,
                &Body::Text("application/vnd.git-lfs+json", body),
            )?;
        }
        Ok(())
    }

    /// Commits the operations; returns the commit's URL.
    fn commit(&self, message: &str, operations: Vec<Value>) -> Result<String> {
        let mut lines =
            vec![json!({"key": "header", "value": {"summary": message, "description": ""}})];
        lines.extend(operations);
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let url = self.api(&format!("/api/models/{}/commit/main", self.target.repo));
        let what = "committing";
        let response = self.send(
            what,
            "POST",
            &url,
            &self.auth(),
            &Body::Text("application/x-ndjson", body),
        )?;
        let answer = self.json(what, response)?;
        Ok(answer["commitUrl"].as_str().unwrap_or_default().to_string())
    }
}

/// The headers an LFS action asks for.
fn action_headers(action: &Value) -> Vec<(String, String)> {
    action["header"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}
