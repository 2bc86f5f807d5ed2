//! Bringing data into a dataset folder: a local file, uploaded bytes, or a split of a
//! Hugging Face Hub dataset. Every import writes a staging folder next to the
//! destination and renames it into place only when every file reads as a table, so a
//! failed import leaves nothing behind.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::archive;
use crate::error::{DataError, Result};
use crate::table::{extension, Table, TABLE_EXTENSIONS};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.to_path_buf();
    move |source| DataError::Io { path, source }
}

fn import_error(what: &str, message: String) -> DataError {
    DataError::Format {
        path: PathBuf::from(what),
        row: None,
        message,
    }
}

/// A staging folder beside `dest`, renamed to `dest` by [`Staging::finish`] after
/// every data file in it was read as a table; dropped unfinished, it is removed.
struct Staging {
    dir: tempfile::TempDir,
    dest: PathBuf,
}

impl Staging {
    fn new(dest: &Path) -> Result<Self> {
        if dest.exists() {
            return Err(import_error(
                &dest.display().to_string(),
                "already exists; an import needs a new folder".into(),
            ));
        }
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let dir = tempfile::Builder::new()
            .prefix(".importing-")
            .tempdir_in(parent)
            .map_err(io(parent))?;
        Ok(Self {
            dir,
            dest: dest.to_path_buf(),
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Checks every data file, then moves the folder into place; returns the data
    /// files at their final paths.
    fn finish(self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        collect_data_files(self.dir.path(), &mut files)?;
        if files.is_empty() {
            return Err(import_error(
                &self.dest.display().to_string(),
                "the import holds no .csv, .parquet, .json or .jsonl file".into(),
            ));
        }
        for file in &files {
            Table::read(file).map_err(|e| e.relative_to(self.dir.path()))?;
        }
        let staged = self.dir.keep();
        std::fs::rename(&staged, &self.dest).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            DataError::Io {
                path: self.dest.clone(),
                source: e,
            }
        })?;
        files.sort();
        Ok(files
            .iter()
            .map(|f| self.dest.join(f.strip_prefix(&staged).unwrap_or(f)))
            .collect())
    }
}

fn collect_data_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            collect_data_files(&path, out)?;
        } else if TABLE_EXTENSIONS.contains(&extension(&path).as_str()) {
            out.push(path);
        }
    }
    Ok(())
}

/// The file name of a path, refusing names that are not plain file names.
fn plain_name(name: &str) -> Result<&str> {
    let base = Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .ok_or_else(|| import_error(name, "not a usable file name".into()))?;
    Ok(base)
}

/// Imports uploaded bytes named `name` (a data file, or a zip of them, which is
/// extracted) into the new folder `dest`; returns the data files.
pub fn import_bytes(name: &str, bytes: &[u8], dest: &Path) -> Result<Vec<PathBuf>> {
    let name = plain_name(name)?;
    let ext = extension(Path::new(name));
    if ext != "zip" && !TABLE_EXTENSIONS.contains(&ext.as_str()) {
        return Err(import_error(
            name,
            "unsupported file type; use .csv, .parquet/.pq, .json, .jsonl or .zip".into(),
        ));
    }
    let staging = Staging::new(dest)?;
    let target = staging.path().join(name);
    std::fs::write(&target, bytes).map_err(io(&target))?;
    unpack(&staging, &target).map_err(|e| e.relative_to(staging.path()))?;
    staging.finish()
}

/// Imports a local data file (or zip) into the new folder `dest`.
pub fn import_path(source: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| import_error(&source.display().to_string(), "not a file".into()))?;
    let staging = Staging::new(dest)?;
    let target = staging.path().join(plain_name(name)?);
    std::fs::copy(source, &target).map_err(io(source))?;
    unpack(&staging, &target).map_err(|e| e.relative_to(staging.path()))?;
    staging.finish()
}

/// Extracts a zip in the staging folder (and removes the archive).
fn unpack(staging: &Staging, file: &Path) -> Result<()> {
    if extension(file) != "zip" {
        return Ok(());
    }
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("archive");
    archive::extract(file, &staging.path().join(stem))?;
    std::fs::remove_file(file).map_err(io(file))
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// Whether a repository file holds rows of `split`: `train.csv`,
/// `data/train-00000-of-00001.parquet`, `default/train/0000.parquet`,
/// `train/part-1.jsonl` …
fn is_split_file(file: &str, split: &str) -> bool {
    let path = Path::new(file);
    if !TABLE_EXTENSIONS.contains(&extension(path).as_str()) {
        return false;
    }
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let named = stem == split
        || stem.starts_with(&format!("{split}-"))
        || stem.starts_with(&format!("{split}_"))
        || stem.starts_with(&format!("{split}."));
    let in_folder = path
        .parent()
        .is_some_and(|p| p.components().any(|c| c.as_os_str() == split));
    named || in_folder
}

/// Imports split `split` of Hub dataset `id` (`org/name[@revision]`) into the new
/// folder `dest`: its data files for that split, downloaded through the standard Hub
/// cache (`HF_HOME`, `HF_ENDPOINT`), or taken from the cache when `HF_HUB_OFFLINE` is
/// set or the Hub cannot be reached. `token` (else `HF_TOKEN`, else the cached token)
/// authenticates.
pub fn import_hub(id: &str, split: &str, token: Option<&str>, dest: &Path) -> Result<Vec<PathBuf>> {
    let what = format!("Hub dataset {id}");
    let (name, revision) = id.split_once('@').unwrap_or((id, "main"));
    let repo = Repo::with_revision(name.to_string(), RepoType::Dataset, revision.to_string());
    let cache = Cache::from_env();
    let mut reasons = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    if offline() {
        reasons.push("HF_HUB_OFFLINE is set".to_string());
    } else {
        let token = token
            .map(str::to_string)
            .or_else(|| std::env::var("HF_TOKEN").ok())
            .or_else(|| cache.token());
        match ApiBuilder::from_env()
            .with_progress(false)
            .with_token(token)
            .build()
            .map_err(|e| e.to_string())
            .and_then(|api| {
                let api = api.repo(repo.clone());
                let info = api.info().map_err(|e| e.to_string())?;
                info.siblings
                    .iter()
                    .filter(|s| is_split_file(&s.rfilename, split))
                    .map(|s| api.get(&s.rfilename).map_err(|e| e.to_string()))
                    .collect::<std::result::Result<Vec<_>, _>>()
            }) {
            Ok(downloaded) => files = downloaded,
            Err(e) => reasons.push(format!("the Hub request failed ({e})")),
        }
    }
    if files.is_empty() && !reasons.is_empty() {
        // Offline: the snapshot already in the cache.
        if let Some(snapshot) = cached_snapshot(&cache, &repo) {
            let mut all = Vec::new();
            collect_data_files(&snapshot, &mut all)?;
            files = all
                .into_iter()
                .filter(|f| {
                    f.strip_prefix(&snapshot)
                        .ok()
                        .and_then(|r| r.to_str())
                        .is_some_and(|r| is_split_file(r, split))
                })
                .collect();
        }
    }
    if files.is_empty() {
        let why = if reasons.is_empty() {
            format!("it has no data files for split `{split}`")
        } else {
            format!(
                "no files of split `{split}` are in the Hub cache at {} and {}",
                cache.path().display(),
                reasons.join("; ")
            )
        };
        return Err(import_error(&what, why));
    }
    files.sort();
    let staging = Staging::new(dest)?;
    for (i, file) in files.iter().enumerate() {
        let base = file.file_name().and_then(|n| n.to_str()).unwrap_or("data");
        // Shards of one split often share a file name in different folders.
        let target = staging.path().join(if files.len() > 1 {
            format!("{split}-{i:05}-{base}")
        } else {
            base.to_string()
        });
        std::fs::copy(file, &target).map_err(io(file))?;
    }
    staging.finish()
}

/// The snapshot folder the cache's ref for `repo` points to.
fn cached_snapshot(cache: &Cache, repo: &Repo) -> Option<PathBuf> {
    let folder = cache.path().join(repo.folder_name());
    let commit = std::fs::read_to_string(folder.join("refs").join(repo.revision())).ok()?;
    let snapshot = folder.join("snapshots").join(commit.trim());
    snapshot.is_dir().then_some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::is_split_file;

    #[test]
    fn split_files_are_recognised_by_name_or_folder() {
        for file in [
            "train.csv",
            "data/train-00000-of-00002.parquet",
            "default/train/0000.parquet",
            "train/part.jsonl",
            "data/train_clean.json",
        ] {
            assert!(is_split_file(file, "train"), "{file}");
        }
        for file in [
            "test.csv",
            "data/validation-0.parquet",
            "README.md",
            "train.txt",
        ] {
            assert!(!is_split_file(file, "train"), "{file}");
        }
    }
}

/// Where data lives in S3-compatible object storage.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    /// Bucket, optionally with `s3://` and a key prefix: `s3://bucket/folder`.
    pub bucket: String,
    /// Endpoint of an S3-compatible server (MinIO …); `None`: AWS.
    pub endpoint: Option<String>,
    /// Region; `None`: `us-east-1`.
    pub region: Option<String>,
    /// Access key id; with no keys at all, requests are anonymous (unsigned).
    pub access_key: Option<String>,
    /// Secret access key.
    pub secret_key: Option<String>,
}

impl S3Location {
    /// Bucket name and key prefix (ending in `/`, or empty).
    fn bucket_and_prefix(&self) -> Result<(String, String)> {
        let spec = self.bucket.trim().trim_start_matches("s3://");
        let (bucket, prefix) = spec.split_once('/').unwrap_or((spec, ""));
        if bucket.is_empty() {
            return Err(import_error("S3", "no bucket named".into()));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Ok((bucket.to_string(), prefix))
    }

    fn store(&self, bucket: &str) -> Result<object_store::aws::AmazonS3> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"));
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        builder = match (&self.access_key, &self.secret_key) {
            (Some(key), Some(secret)) => builder
                .with_access_key_id(key)
                .with_secret_access_key(secret),
            (None, None) => builder.with_skip_signature(true),
            _ => {
                return Err(import_error(
                    &format!("s3://{bucket}"),
                    "give both the access key and the secret key, or neither (anonymous)".into(),
                ))
            }
        };
        builder
            .build()
            .map_err(|e| import_error(&format!("s3://{bucket}"), e.to_string()))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io(Path::new("S3 client")))
}

/// The data files (keys) under the location's prefix. Blocking: call it from a
/// thread that may block.
pub fn list_s3(location: &S3Location) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let (bucket, prefix) = location.bucket_and_prefix()?;
    let store = location.store(&bucket)?;
    let prefix_path = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix.as_str()));
    let listed: Vec<object_store::ObjectMeta> = runtime()?
        .block_on(store.list(prefix_path.as_ref()).try_collect())
        .map_err(|e| import_error(&format!("s3://{bucket}/{prefix}"), e.to_string()))?;
    let mut keys: Vec<String> = listed
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|k| {
            TABLE_EXTENSIONS.contains(&extension(Path::new(k)).as_str())
                || k.to_ascii_lowercase().ends_with(".zip")
        })
        .collect();
    keys.sort();
    Ok(keys)
}

/// Imports `keys` (every data file under the prefix when empty) from S3-compatible
/// storage into the new folder `dest`; zips are extracted. Blocking.
pub fn import_s3(location: &S3Location, keys: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
    let (bucket, _) = location.bucket_and_prefix()?;
    let keys = if keys.is_empty() {
        list_s3(location)?
    } else {
        keys.to_vec()
    };
    if keys.is_empty() {
        return Err(import_error(
            &format!("s3://{}", location.bucket.trim_start_matches("s3://")),
            "holds no .csv, .parquet, .json, .jsonl or .zip file".into(),
        ));
    }
    let store = location.store(&bucket)?;
    let runtime = runtime()?;
    let staging = Staging::new(dest)?;
    for key in &keys {
        let name = plain_name(key)?;
        let what = format!("s3://{bucket}/{key}");
        let bytes = runtime
            .block_on(async {
                let object = store
                    .get(&object_store::path::Path::from(key.as_str()))
                    .await?;
                object.bytes().await
            })
            .map_err(|e| import_error(&what, e.to_string()))?;
        let target = staging.path().join(name);
        std::fs::write(&target, &bytes).map_err(io(&target))?;
        unpack(&staging, &target).map_err(|e| e.relative_to(staging.path()))?;
    }
    staging.finish()
}
