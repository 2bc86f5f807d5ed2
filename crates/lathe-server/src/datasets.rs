//! `/api/datasets…`: import (upload, local path, Hub, S3), list, view, edit, delete.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt;
use lathe_data::S3Location;
use lathe_studio::{check_name, Conversation, DatasetRecord, DatasetSource, RowsPage, StudioError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiError, ApiResult, ErrorBody, JsonBody, QueryParams};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_datasets, import_dataset))
        .routes(routes!(upload_dataset))
        .routes(routes!(get_dataset, update_dataset, delete_dataset))
        .routes(routes!(dataset_rows))
        .routes(routes!(dataset_conversations))
        .routes(routes!(dataset_statistics))
}

/// Where to import from: exactly one of `path`, `hub`, `s3`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportSource {
    /// A data file or zip on the server's disk.
    path: Option<String>,
    /// A Hugging Face dataset.
    hub: Option<HubSource>,
    /// S3-compatible object storage.
    s3: Option<S3Source>,
}

/// A Hugging Face dataset repository.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSource {
    /// `org/name`.
    id: String,
    /// Split (`train`).
    #[serde(default = "train")]
    split: String,
}

fn train() -> String {
    "train".into()
}

/// Objects in S3-compatible storage; keys come from the secrets.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// `s3://bucket/prefix`.
    url: String,
    /// Endpoint of an S3-compatible server; empty: AWS.
    endpoint: Option<String>,
    /// Region.
    region: Option<String>,
}

/// Import a dataset from a path, the Hub or S3.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Unique name.
    name: String,
    /// Where from.
    source: ImportSource,
    /// Column mapping over the auto-selected one (`dataset.prompt_column` …).
    #[serde(default)]
    #[schema(value_type = Object)]
    mapping: Map<String, Value>,
}

/// Every dataset, newest first.
#[utoipa::path(get, path = "/api/datasets", tag = "datasets",
    responses((status = 200, body = Vec<DatasetRecord>)))]
async fn list_datasets(State(s): State<AppState>) -> ApiResult<Json<Vec<DatasetRecord>>> {
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.datasets()).await?))
}

/// Imports a dataset from a local path, the Hugging Face Hub or S3.
#[utoipa::path(post, path = "/api/datasets", tag = "datasets", request_body = ImportRequest,
    responses((status = 201, body = DatasetRecord), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn import_dataset(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<ImportRequest>,
) -> ApiResult<(StatusCode, Json<DatasetRecord>)> {
    let source = match (req.source.path, req.source.hub, req.source.s3) {
        (Some(path), None, None) => DatasetSource::File(PathBuf::from(path)),
        (None, Some(hub), None) => DatasetSource::Hub {
            id: hub.id,
            split: hub.split,
        },
        (None, None, Some(s3)) => DatasetSource::S3(S3Location {
            bucket: s3.url,
            endpoint: s3.endpoint.filter(|e| !e.is_empty()),
            region: s3.region.filter(|r| !r.is_empty()),
            ..Default::default()
        }),
        _ => {
            return Err(ApiError::bad_request(
                "source: give exactly one of `path`, `hub`, `s3`",
            ))
        }
    };
    let studio = s.studio.clone();
    let record = blocking(move || studio.import_dataset(&req.name, source, &req.mapping)).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Query of an upload.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UploadQuery {
    /// Unique dataset name.
    name: String,
    /// File name with its extension (`.csv`, `.parquet`, `.json`, `.jsonl`, `.zip`).
    filename: String,
    /// Access token (for clients that cannot set headers).
    token: Option<String>,
}

/// The plain file name of an upload, or an error.
fn upload_name(filename: &str) -> ApiResult<String> {
    let base = std::path::Path::new(filename)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n == filename && !n.starts_with('.'));
    base.map(str::to_string).ok_or_else(|| {
        ApiError::bad_request(format!(
            "filename {filename:?}: give a plain file name such as data.csv"
        ))
    })
}

fn too_large(limit: u64) -> ApiError {
    ApiError::from(StudioError::TooLarge(format!(
        "the upload is over the limit of {} MiB (lathe serve --max-upload-mb)",
        limit >> 20
    )))
}

/// Uploads a data file or zip as the request body (streamed to disk, size-limited)
/// and imports it as a dataset.
#[utoipa::path(post, path = "/api/datasets/upload", tag = "datasets", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = DatasetRecord), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn upload_dataset(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DatasetRecord>)> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.max_upload) {
        return Err(too_large(s.max_upload));
    }
    let studio = s.studio.clone();
    let name = q.name.clone();
    let checked = async {
        check_name("dataset", &q.name)?;
        let filename = upload_name(&q.filename)?;
        if blocking(move || Ok(studio.dataset(&name).is_ok())).await? {
            return Err(ApiError::from(StudioError::Conflict(format!(
                "a dataset named {:?} already exists",
                q.name
            ))));
        }
        Ok(filename)
    }
    .await;
    let filename = match checked {
        Ok(filename) => filename,
        Err(e) => {
            // Read the body to its end (within the limit) so that a client that
            // sends it whole gets this answer rather than a broken connection.
            let mut stream = body.into_data_stream();
            let mut seen = 0u64;
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len() as u64;
                if seen > s.max_upload {
                    break;
                }
            }
            return Err(e);
        }
    };
    let staging = s.studio.uploads_dir().join(format!(
        "{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = receive(&staging, &filename, body, s.max_upload).await;
    let result = match result {
        Ok(path) => {
            let studio = s.studio.clone();
            blocking(move || studio.import_dataset(&q.name, DatasetSource::File(path), &Map::new()))
                .await
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&staging).await;
    Ok((StatusCode::CREATED, Json(result?)))
}

static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Streams `body` into `dir/filename`, failing past `limit` bytes.
async fn receive(
    dir: &std::path::Path,
    filename: &str,
    body: Body,
    limit: u64,
) -> ApiResult<PathBuf> {
    let internal =
        |e: std::io::Error| ApiError::from(StudioError::Internal(format!("upload: {e}")));
    tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    let path = dir.join(filename);
    let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(path)
}

/// One dataset.
#[utoipa::path(get, path = "/api/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, body = DatasetRecord), (status = 404, body = ErrorBody)))]
async fn get_dataset(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<DatasetRecord>> {
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.dataset(&name)).await?))
}

/// A change of mapping or problem type.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetUpdate {
    /// Mapping settings to change (`dataset.answer_column` …).
    #[serde(default)]
    #[schema(value_type = Object)]
    mapping: Map<String, Value>,
    /// Problem type.
    problem_type: Option<String>,
}

/// Changes a dataset's mapping or problem type and re-runs its sanity checks
/// (refused while an experiment on it is queued or running).
#[utoipa::path(patch, path = "/api/datasets/{name}", tag = "datasets", request_body = DatasetUpdate,
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, body = DatasetRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_dataset(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<DatasetUpdate>,
) -> ApiResult<Json<DatasetRecord>> {
    let studio = s.studio.clone();
    Ok(Json(
        blocking(move || studio.update_dataset(&name, &req.mapping, req.problem_type.as_deref()))
            .await?,
    ))
}

/// Deletes a dataset (refused while an experiment on it is queued or running).
#[utoipa::path(delete, path = "/api/datasets/{name}", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_dataset(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let studio = s.studio.clone();
    blocking(move || studio.delete_dataset(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// First item (0-based).
    #[serde(default)]
    offset: usize,
    /// Items at most.
    #[serde(default = "page_size")]
    limit: usize,
}

fn page_size() -> usize {
    50
}

/// Rows of the training file.
#[utoipa::path(get, path = "/api/datasets/{name}/rows", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), Page),
    responses((status = 200, body = RowsPage), (status = 404, body = ErrorBody)))]
async fn dataset_rows(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<RowsPage>> {
    let studio = s.studio.clone();
    Ok(Json(
        blocking(move || studio.dataset_rows(&name, page.offset, page.limit.min(1000))).await?,
    ))
}

/// A page of conversations.
#[derive(Serialize, ToSchema)]
pub struct ConversationsPage {
    /// Samples from `offset`.
    conversations: Vec<Conversation>,
    /// First sample's index.
    offset: usize,
    /// Samples in all.
    total: usize,
}

/// Training samples as conversations (system, prompts, answers) under the mapping.
#[utoipa::path(get, path = "/api/datasets/{name}/conversations", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name"), Page),
    responses((status = 200, body = ConversationsPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn dataset_conversations(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<ConversationsPage>> {
    let studio = s.studio.clone();
    let offset = page.offset;
    let (conversations, total) =
        blocking(move || studio.dataset_conversations(&name, offset, page.limit.min(1000))).await?;
    Ok(Json(ConversationsPage {
        conversations,
        offset,
        total,
    }))
}

/// Counts, length distributions and column summaries under the mapping.
#[utoipa::path(get, path = "/api/datasets/{name}/statistics", tag = "datasets",
    params(("name" = String, Path, description = "Dataset name")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn dataset_statistics(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let studio = s.studio.clone();
    let stats = blocking(move || studio.dataset_statistics(&name)).await?;
    Ok(Json(serde_json::to_value(stats).unwrap_or(Value::Null)))
}
