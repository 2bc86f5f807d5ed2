//! Zip downloads of an experiment: built on demand by the studio, streamed from disk,
//! and removed once opened (the open file stays readable until the stream ends).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lathe_studio::{DownloadKind, StudioError};
use lathe_train::export::GgufQuant;
use serde::Deserialize;
use tokio_util::io::ReaderStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiResult, ErrorBody, QueryParams};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// Options of a download.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// GGUF matrix type: `f32`, `f16` (default), `q8_0`, `q4_k_m` or `q4_0`.
    quant: Option<String>,
}

/// A zip archive of the experiment: `model` (merged Hugging Face folder), `adapter`
/// (PEFT), `gguf`, `predictions` or `logs` (with `cfg.yaml`).
#[utoipa::path(get, path = "/api/experiments/{name}/download/{kind}", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name"),
           ("kind" = DownloadKind, Path, description = "What to download"), DownloadQuery),
    responses((status = 200, content_type = "application/zip", description = "The archive"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn download(
    State(s): State<AppState>,
    Path((name, kind)): Path<(String, String)>,
    QueryParams(query): QueryParams<DownloadQuery>,
) -> ApiResult<Response> {
    let kind: DownloadKind = serde_json::from_value(serde_json::Value::String(kind.clone()))
        .map_err(|_| {
            StudioError::Invalid(format!(
                "download `{kind}`: one of model, adapter, gguf, predictions, logs"
            ))
        })?;
    let quant = match query.quant.as_deref() {
        None => None,
        Some(q) => Some(GgufQuant::parse(q).ok_or_else(|| {
            StudioError::Invalid(format!("quant `{q}`: one of f32, f16, q8_0, q4_k_m, q4_0"))
        })?),
    };
    let studio = s.studio.clone();
    let archive = blocking(move || studio.build_download(&name, kind, quant)).await?;
    let opened = tokio::fs::File::open(&archive.path).await;
    let _ = tokio::fs::remove_file(&archive.path).await;
    let file =
        opened.map_err(|e| StudioError::Internal(format!("{}: {e}", archive.path.display())))?;
    let length = file.metadata().await.map(|m| m.len()).unwrap_or_default();
    let headers = [
        (header::CONTENT_TYPE, "application/zip".to_string()),
        (header::CONTENT_LENGTH, length.to_string()),
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", archive.file_name),
        ),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(file))).into_response())
}
