//! `/api/experiments…`: create (one, or a grid), list, detail, start, stop, resume,
//! rename, clone, delete; events, logs and predictions; compare.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use lathe_studio::{
    runs, Comparison, ExperimentDetail, ExperimentRecord, ExperimentSummary, NewExperiment,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiResult, ErrorBody, JsonBody, QueryParams};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_experiments, create_experiment))
        .routes(routes!(create_grid))
        .routes(routes!(estimate_experiment))
        .routes(routes!(get_experiment, delete_experiment))
        .routes(routes!(start_experiment))
        .routes(routes!(stop_experiment))
        .routes(routes!(resume_experiment))
        .routes(routes!(rename_experiment))
        .routes(routes!(clone_experiment))
        .routes(routes!(experiment_events))
        .routes(routes!(experiment_logs))
        .routes(routes!(experiment_predictions))
        .routes(routes!(experiment_insights))
        .routes(routes!(compare_experiments))
}

/// A new experiment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Unique name.
    name: String,
    /// Dataset to train on.
    dataset: String,
    /// Settings as `group.key` → value (GET /api/schema lists them).
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// An experiment file (H2O LLM Studio's `cfg.yaml`) to start from.
    yaml: Option<String>,
    /// Queue it at once (default true).
    #[serde(default = "yes")]
    start: bool,
}

fn yes() -> bool {
    true
}

impl CreateRequest {
    fn into_new(self) -> NewExperiment {
        NewExperiment {
            name: self.name,
            dataset: self.dataset,
            settings: self.settings,
            yaml: self.yaml,
            start: self.start,
        }
    }
}

/// Every experiment with status and progress, oldest first.
#[utoipa::path(get, path = "/api/experiments", tag = "experiments",
    responses((status = 200, body = Vec<ExperimentSummary>)))]
async fn list_experiments(State(s): State<AppState>) -> ApiResult<Json<Vec<ExperimentSummary>>> {
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.experiments()).await?))
}

/// Creates an experiment (and queues it unless `start` is false). Settings are
/// checked first: nothing is written for a bad one.
#[utoipa::path(post, path = "/api/experiments", tag = "experiments", request_body = CreateRequest,
    responses((status = 201, body = ExperimentRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_experiment(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<(StatusCode, Json<ExperimentRecord>)> {
    let studio = s.studio.clone();
    let new = req.into_new();
    let record = blocking(move || studio.create_experiment(&new)).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A grid search: an experiment and the values its settings vary over.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GridRequest {
    /// The experiment the grid varies; its name is the base of every name.
    experiment: CreateRequest,
    /// Values to try per setting: `{"training.learning_rate": [1e-4, 3e-4]}`.
    #[schema(value_type = Object)]
    grid: Map<String, Value>,
}

/// Creates one experiment per combination of grid values (Cartesian product),
/// de-duplicated, named `<name>_<key>_<value>`.
#[utoipa::path(post, path = "/api/experiments/grid", tag = "experiments", request_body = GridRequest,
    responses((status = 201, body = Vec<ExperimentRecord>), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn create_grid(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<GridRequest>,
) -> ApiResult<(StatusCode, Json<Vec<ExperimentRecord>>)> {
    let studio = s.studio.clone();
    let grid = req.grid;
    let base = req.experiment.into_new();
    let records = blocking(move || studio.create_grid(&base, &grid)).await?;
    Ok((StatusCode::CREATED, Json(records)))
}

/// One experiment: status, progress, ETA, latest metrics, charts and settings.
#[utoipa::path(get, path = "/api/experiments/{name}", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = ExperimentDetail), (status = 404, body = ErrorBody)))]
async fn get_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ExperimentDetail>> {
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.experiment(&name)).await?))
}

/// Deletes an experiment: stops its worker, removes its folder and its row.
#[utoipa::path(delete, path = "/api/experiments/{name}", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let studio = s.studio.clone();
    let chat = s.chat.clone();
    let dir = studio.experiment_dir(&name);
    blocking(move || studio.delete_experiment(&name)).await?;
    chat.forget(&dir);
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a created, stopped or failed experiment (from its checkpoint when it has one).
#[utoipa::path(post, path = "/api/experiments/{name}/start", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = ExperimentRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ExperimentRecord>> {
    let studio = s.studio.clone();
    Ok(Json(
        blocking(move || studio.start_experiment(&name)).await?,
    ))
}

/// Stops an experiment: after its current step, with a checkpoint (killed after
/// the grace period).
#[utoipa::path(post, path = "/api/experiments/{name}/stop", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = ExperimentRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn stop_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ExperimentRecord>> {
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.stop_experiment(&name)).await?))
}

/// Continues a stopped or failed experiment from its last checkpoint.
#[utoipa::path(post, path = "/api/experiments/{name}/resume", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = ExperimentRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ExperimentRecord>> {
    let studio = s.studio.clone();
    Ok(Json(
        blocking(move || studio.resume_experiment(&name)).await?,
    ))
}

/// A new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The new name.
    new_name: String,
}

/// Renames an experiment that is not queued or running.
#[utoipa::path(post, path = "/api/experiments/{name}/rename", tag = "experiments", request_body = RenameRequest,
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = ExperimentRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rename_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<RenameRequest>,
) -> ApiResult<Json<ExperimentRecord>> {
    let studio = s.studio.clone();
    let chat = s.chat.clone();
    let dir = studio.experiment_dir(&name);
    let record = blocking(move || studio.rename_experiment(&name, &req.new_name)).await?;
    chat.forget(&dir);
    Ok(Json(record))
}

/// A clone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Name of the new experiment.
    new_name: String,
    /// Start from the source's trained weights.
    #[serde(default)]
    with_weights: bool,
    /// Settings to change (`group.key` → value).
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// Queue it at once (default true).
    #[serde(default = "yes")]
    start: bool,
}

/// A new experiment with the same settings, optionally starting from the trained
/// weights (`architecture.pretrained_weights`).
#[utoipa::path(post, path = "/api/experiments/{name}/clone", tag = "experiments", request_body = CloneRequest,
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 201, body = ExperimentRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn clone_experiment(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CloneRequest>,
) -> ApiResult<(StatusCode, Json<ExperimentRecord>)> {
    let studio = s.studio.clone();
    let record = blocking(move || {
        studio.clone_experiment(
            &name,
            &req.new_name,
            req.with_weights,
            &req.settings,
            req.start,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// A page of events or samples.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsPage {
    /// First item (0-based: a line of `events.jsonl`, a training sample).
    #[serde(default)]
    offset: usize,
    /// Items at most.
    #[serde(default = "thousand")]
    limit: usize,
}

fn thousand() -> usize {
    1000
}

/// Events of a run.
#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    /// `start`, `train` and `validation` events from `offset`.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
    /// Offset of the next page.
    next_offset: usize,
}

async fn existing_dir(s: &AppState, name: String) -> ApiResult<std::path::PathBuf> {
    let studio = s.studio.clone();
    blocking(move || {
        studio.experiment_record(&name)?;
        Ok(studio.experiment_dir(&name))
    })
    .await
}

/// Events of the run (training steps, validations), paged.
#[utoipa::path(get, path = "/api/experiments/{name}/events", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name"), EventsPage),
    responses((status = 200, body = EventsResponse), (status = 404, body = ErrorBody)))]
async fn experiment_events(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(page): QueryParams<EventsPage>,
) -> ApiResult<Json<EventsResponse>> {
    let dir = existing_dir(&s, name).await?;
    let (events, next_offset) = runs::events(&dir, page.offset, page.limit);
    Ok(Json(EventsResponse {
        events,
        next_offset,
    }))
}

/// How much of the log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Tail {
    /// Last lines to return.
    #[serde(default = "two_hundred")]
    lines: usize,
}

fn two_hundred() -> usize {
    200
}

/// Log lines.
#[derive(Serialize, ToSchema)]
pub struct LogResponse {
    /// The last lines of `logs.log`.
    lines: Vec<String>,
}

/// The tail of the run's log.
#[utoipa::path(get, path = "/api/experiments/{name}/logs", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name"), Tail),
    responses((status = 200, body = LogResponse), (status = 404, body = ErrorBody)))]
async fn experiment_logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(tail): QueryParams<Tail>,
) -> ApiResult<Json<LogResponse>> {
    let dir = existing_dir(&s, name).await?;
    Ok(Json(LogResponse {
        lines: runs::log_tail(&dir, tail.lines),
    }))
}

/// Validation predictions.
#[derive(Serialize, ToSchema)]
pub struct PredictionsResponse {
    /// Rows of `validation_predictions.csv`: row, prompt, target, prediction, metric.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Map<String, Value>>,
}

/// The last validation's predictions.
#[utoipa::path(get, path = "/api/experiments/{name}/predictions", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, body = PredictionsResponse), (status = 404, body = ErrorBody)))]
async fn experiment_predictions(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PredictionsResponse>> {
    let dir = existing_dir(&s, name).await?;
    let rows = blocking(move || runs::predictions(&dir)).await?;
    Ok(Json(PredictionsResponse { rows }))
}

/// An experiment to estimate.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// Dataset to train on.
    dataset: String,
    /// Settings as `group.key` → value.
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// An experiment file (`cfg.yaml`) to start from.
    yaml: Option<String>,
}

/// A rough estimate of a new experiment's peak memory and training time:
/// `{parameters, memory_bytes, train_tokens, seconds, basis}`.
#[utoipa::path(post, path = "/api/experiments/estimate", tag = "experiments", request_body = EstimateRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn estimate_experiment(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<EstimateRequest>,
) -> ApiResult<Json<Value>> {
    let studio = s.studio.clone();
    let estimate =
        blocking(move || studio.estimate(&req.dataset, req.yaml.as_deref(), &req.settings)).await?;
    Ok(Json(serde_json::to_value(estimate).unwrap_or_default()))
}

/// Training samples as the model sees them.
#[derive(Serialize, ToSchema)]
pub struct InsightsResponse {
    /// Samples from `offset`: `{index, row, truncated, tokens: [{id, text, role, loss}]}`.
    #[schema(value_type = Vec<Object>)]
    samples: Value,
    /// Samples in the training file.
    total: usize,
}

/// Train data insights: a page of training samples, tokenized in the run's format,
/// each token with its role and whether it carries loss.
#[utoipa::path(get, path = "/api/experiments/{name}/insights", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name"), EventsPage),
    responses((status = 200, body = InsightsResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn experiment_insights(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(page): QueryParams<EventsPage>,
) -> ApiResult<Json<InsightsResponse>> {
    let studio = s.studio.clone();
    let (total, samples) =
        blocking(move || studio.train_insights(&name, page.offset, page.limit)).await?;
    let samples = serde_json::to_value(samples).unwrap_or_default();
    Ok(Json(InsightsResponse { samples, total }))
}

/// Experiments to compare.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// Comma-separated experiment names.
    names: String,
}

/// Chart series of several experiments and their settings side by side.
#[utoipa::path(get, path = "/api/compare", tag = "experiments", params(CompareQuery),
    responses((status = 200, body = Comparison), (status = 404, body = ErrorBody)))]
async fn compare_experiments(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<CompareQuery>,
) -> ApiResult<Json<Comparison>> {
    let names: Vec<String> = q
        .names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    let studio = s.studio.clone();
    Ok(Json(blocking(move || studio.compare(&names)).await?))
}
