//! Lathe's HTTP face: `lathe serve`. A JSON REST API under `/api/…` over the studio
//! (datasets, experiments and their workers, settings, system), live streams as
//! Server-Sent Events, a chat endpoint that streams tokens, and the OpenAPI document
//! of every route at `/api/openapi.json`.

mod auth;
mod chat;
mod datasets;
mod downloads;
mod error;
mod experiments;
mod meta;
mod stream;
mod ui;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use lathe_studio::{Studio, StudioOptions};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// How `lathe serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind.
    pub host: IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// Token every request must carry; required to bind a non-loopback address.
    pub token: Option<String>,
    /// Largest upload, bytes.
    pub max_upload: u64,
    /// Unload the chat model after this long unused.
    pub chat_idle: Duration,
    /// The workspace and its workers.
    pub studio: StudioOptions,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The workspace.
    pub studio: Arc<Studio>,
    /// Largest upload, bytes.
    pub max_upload: u64,
    /// The chat model cache.
    pub chat: Arc<chat::ChatModels>,
    /// The OpenAPI document (set when the router is built).
    pub openapi: Arc<std::sync::OnceLock<utoipa::openapi::OpenApi>>,
    /// Cancelled when the server shuts down: live streams end.
    pub shutdown: CancellationToken,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Lathe studio API", description = "Datasets, experiments, live runs and chat of a Lathe workspace."),
    tags(
        (name = "datasets", description = "Import, map, check and view datasets"),
        (name = "experiments", description = "Create, run, watch, compare and chat with experiments"),
        (name = "studio", description = "Settings schema, app settings, secrets and the machine"),
    )
)]
struct ApiDoc;

/// The API's router and its OpenAPI document, built from the same route list.
pub fn api(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(datasets::routes())
        .merge(experiments::routes())
        .merge(downloads::routes())
        .merge(stream::routes())
        .merge(chat::routes())
        .merge(meta::routes())
        .split_for_parts();
    let _ = state.openapi.set(doc.clone());
    (router.with_state(state), doc)
}

/// The whole application: the API with its OpenAPI document, token checks.
pub fn app(state: AppState, token: Option<String>) -> Router {
    let (router, _) = api(state);
    router
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            auth::check_token,
        ))
}

/// Runs the studio server until Ctrl-C; `ready` gets the bound address once it
/// listens. Workers are separate processes and keep running when it stops.
pub async fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    if !options.host.is_loopback() && options.token.is_none() {
        anyhow::bail!(
            "binding {} makes the studio reachable from other machines: give --token (or LATHE_TOKEN)",
            options.host
        );
    }
    let studio = Arc::new(
        tokio::task::spawn_blocking({
            let o = options.studio.clone();
            move || Studio::open(o)
        })
        .await??,
    );
    let chat = Arc::new(chat::ChatModels::default());
    let state = AppState {
        studio: studio.clone(),
        max_upload: options.max_upload,
        chat: chat.clone(),
        openapi: Default::default(),
        shutdown: CancellationToken::new(),
    };
    let shutdown = state.shutdown.clone();
    let listener = tokio::net::TcpListener::bind((options.host, options.port))
        .await
        .with_context(|| format!("binding {}:{}", options.host, options.port))?;
    let addr = listener.local_addr()?;
    tokio::spawn(watch_workers(studio));
    tokio::spawn(chat::unload_when_idle(chat, options.chat_idle));
    ready(addr);
    axum::serve(listener, app(state, options.token))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Live streams would hold the shutdown open: end them.
            shutdown.cancel();
        })
        .await?;
    Ok(())
}

/// Reconciles workers and starts queued experiments twice a second.
async fn watch_workers(studio: Arc<Studio>) {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s = studio.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.tick()).await {
            eprintln!("studio: {e}");
        }
    }
}
