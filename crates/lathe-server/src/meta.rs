//! `/api/schema`, `/api/settings`, `/api/system`: what the forms are made of, the
//! app's settings and secrets, and the machine.

use axum::extract::State;
use axum::Json;
use lathe_config::{Config, Kind, Spec};
use lathe_studio::{system_stats, SystemStats};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiResult, ErrorBody, JsonBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(settings_schema))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(system))
        .routes(routes!(openapi_document))
}

/// This document: every route of the API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "studio",
    responses((status = 200, body = Object)))]
async fn openapi_document(State(s): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(s.openapi.get()).unwrap_or(Value::Null))
}

/// One setting as the form needs it.
#[derive(Serialize, ToSchema)]
pub struct SettingSchema {
    /// `group.key` (a top-level key alone).
    path: String,
    /// Group (`dataset`, `training` …; empty for top-level keys).
    group: &'static str,
    /// Key in the group.
    key: &'static str,
    /// `bool`, `int`, `float`, `text`, `choice` or `list`.
    kind: &'static str,
    /// Default value.
    #[schema(value_type = Object)]
    default: Value,
    /// Smallest value (numbers).
    min: Option<f64>,
    /// Largest value (numbers; none: open).
    max: Option<f64>,
    /// Slider step (floats).
    step: Option<f64>,
    /// Allowed or suggested values (choices, lists).
    options: Vec<&'static str>,
    /// Whether values outside `options` are allowed.
    custom: bool,
    /// One-line help.
    tooltip: &'static str,
    /// Values a grid search tries by default.
    grid: Vec<&'static str>,
    /// When the form shows it: empty always; `group.key` (set and true),
    /// `group.key=value`, `group.key!=value`, `group.key<number`.
    shown_if: &'static str,
    /// Only meaningful on a GPU.
    gpu_only: bool,
    /// Kept in files, not shown in the form.
    hidden: bool,
}

fn describe(spec: &Spec) -> SettingSchema {
    let (kind, min, max, step, options, custom) = match &spec.kind {
        Kind::Bool => ("bool", None, None, None, vec![], false),
        Kind::Int { min, max } => (
            "int",
            Some(*min as f64),
            max.map(|m| m as f64),
            Some(1.0),
            vec![],
            false,
        ),
        Kind::Float { min, max, step } => ("float", Some(*min), *max, Some(*step), vec![], false),
        Kind::Text => ("text", None, None, None, vec![], true),
        Kind::Choice { options, custom } => ("choice", None, None, None, options.to_vec(), *custom),
        Kind::List { options, custom } => ("list", None, None, None, options.to_vec(), *custom),
    };
    SettingSchema {
        path: spec.path(),
        group: spec.group,
        key: spec.key,
        kind,
        default: serde_json::to_value(&spec.default).unwrap_or(Value::Null),
        min,
        max,
        step,
        options,
        custom,
        tooltip: spec.tooltip,
        grid: spec.grid.to_vec(),
        shown_if: spec.shown_if,
        gpu_only: spec.gpu_only,
        hidden: spec.hidden,
    }
}

/// Every experiment setting: type, default, range, allowed values, tooltip, group,
/// visibility rule — the one definition the form, the CLI and the docs read.
#[utoipa::path(get, path = "/api/schema", tag = "studio",
    responses((status = 200, body = Vec<SettingSchema>)))]
async fn settings_schema() -> Json<Vec<SettingSchema>> {
    Json(Config::schema().iter().map(describe).collect())
}

/// App settings and secrets (secrets masked: set or not, and their last characters).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AppSettings {
    /// Settings: `{key: {value, help}}` when read; `{key: value}` to change.
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
    /// Secrets: masked when read; the full value (or null to remove) to change.
    #[serde(default)]
    #[schema(value_type = Object)]
    secrets: Map<String, Value>,
}

/// The app settings and the secrets (masked).
#[utoipa::path(get, path = "/api/settings", tag = "studio",
    responses((status = 200, body = AppSettings)))]
async fn get_settings(State(s): State<AppState>) -> ApiResult<Json<AppSettings>> {
    let studio = s.studio.clone();
    let (settings, secrets) =
        blocking(move || Ok((studio.app_settings()?, studio.secrets_view()))).await?;
    Ok(Json(AppSettings { settings, secrets }))
}

/// Changes app settings and secrets (secrets go to `secrets.json`, mode 0600).
#[utoipa::path(put, path = "/api/settings", tag = "studio", request_body = AppSettings,
    responses((status = 200, body = AppSettings), (status = 400, body = ErrorBody)))]
async fn put_settings(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<AppSettings>,
) -> ApiResult<Json<AppSettings>> {
    let studio = s.studio.clone();
    let (settings, secrets) = blocking(move || {
        studio.set_app_settings(&req.settings)?;
        studio.set_secrets(&req.secrets)?;
        Ok((studio.app_settings()?, studio.secrets_view()))
    })
    .await?;
    Ok(Json(AppSettings { settings, secrets }))
}

/// The machine: CPU load, memory, the workspace's disk, GPUs; and the job slots.
#[utoipa::path(get, path = "/api/system", tag = "studio",
    responses((status = 200, body = Object)))]
async fn system(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let studio = s.studio.clone();
    let stats: SystemStats = blocking(move || Ok(system_stats(studio.root()))).await?;
    let mut value = serde_json::to_value(stats).unwrap_or(json!({}));
    value["max_jobs"] = json!(s.studio.options().max_jobs);
    value["workspace"] = json!(s.studio.root());
    value["version"] = json!(env!("CARGO_PKG_VERSION"));
    Ok(Json(value))
}
