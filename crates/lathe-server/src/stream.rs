//! `/api/experiments/{name}/stream`: a run live, as Server-Sent Events — `event`
//! (each line of `events.jsonl`), `log` (each line of `logs.log`), `status` (each
//! change), and `end` once the run has ended and everything was sent.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use lathe_studio::runs;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiResult, ErrorBody, QueryParams};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(experiment_stream))
}

/// Where to start.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamFrom {
    /// First event to send (line of `events.jsonl`).
    #[serde(default)]
    events_from: usize,
    /// Byte offset in `logs.log` to send lines from.
    #[serde(default)]
    log_from: u64,
}

struct Tail {
    state: AppState,
    name: String,
    dir: PathBuf,
    events: usize,
    log: u64,
    status: Option<(String, String)>,
    first: bool,
    done: bool,
}

impl Tail {
    /// What is new since the last poll.
    async fn poll(mut self) -> Option<(Vec<Event>, Self)> {
        if self.done {
            return None;
        }
        if !self.first {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = self.state.shutdown.cancelled() => return None,
            }
        }
        self.first = false;
        let studio = self.state.studio.clone();
        let name = self.name.clone();
        let record = blocking(move || studio.experiment_record(&name)).await;
        let mut out = Vec::new();
        let (events, next) = runs::events(&self.dir, self.events, 500);
        self.events = next;
        out.extend(
            events
                .iter()
                .map(|e| Event::default().event("event").data(e.to_string())),
        );
        let (lines, next) = runs::log_from(&self.dir, self.log);
        self.log = next;
        out.extend(lines.iter().map(|l| Event::default().event("log").data(l)));
        let Ok(record) = record else {
            out.push(
                Event::default()
                    .event("end")
                    .data(json!({"status": "deleted"}).to_string()),
            );
            self.done = true;
            return Some((out, self));
        };
        let status = (record.status.clone(), record.info.clone());
        if self.status.as_ref() != Some(&status) {
            out.push(
                Event::default()
                    .event("status")
                    .data(json!({"status": status.0, "info": status.1}).to_string()),
            );
            self.status = Some(status);
        }
        let ended = !matches!(record.status.as_str(), "queued" | "running");
        if ended && events.is_empty() && lines.is_empty() {
            out.push(
                Event::default()
                    .event("end")
                    .data(json!({"status": record.status, "info": record.info}).to_string()),
            );
            self.done = true;
        }
        Some((out, self))
    }
}

/// The run live (Server-Sent Events): `event`, `log`, `status` and a final `end`.
#[utoipa::path(get, path = "/api/experiments/{name}/stream", tag = "experiments",
    params(("name" = String, Path, description = "Experiment name"), StreamFrom),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Events `event` (JSON), `log` (text), `status` (JSON), `end` (JSON)"),
        (status = 404, body = ErrorBody)))]
async fn experiment_stream(
    State(s): State<AppState>,
    Path(name): Path<String>,
    QueryParams(from): QueryParams<StreamFrom>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let studio = s.studio.clone();
    let n = name.clone();
    let dir = blocking(move || {
        studio.experiment_record(&n)?;
        Ok(studio.experiment_dir(&n))
    })
    .await?;
    let tail = Tail {
        state: s,
        name,
        dir,
        events: from.events_from,
        log: from.log_from,
        status: None,
        first: true,
        done: false,
    };
    let events =
        stream::unfold(tail, Tail::poll).flat_map(|batch| stream::iter(batch.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
