//! `/api/experiments/{name}/chat`: answers from a finished experiment's model,
//! streamed token by token as Server-Sent Events. One model stays loaded; it is
//! unloaded when idle or when memory runs short.

use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::Stream;
use lathe_train::TrainedModel;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{blocking, ApiError, ApiResult, ErrorBody, JsonBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chat))
}

/// The loaded model: its run folder, the checkpoint it was read from, last use.
struct Loaded {
    run: PathBuf,
    stamp: Option<SystemTime>,
    model: Arc<Mutex<TrainedModel>>,
    used: Instant,
}

/// The one cached chat model.
#[derive(Default)]
pub struct ChatModels {
    slot: Mutex<Option<Loaded>>,
}

/// When the run's checkpoint was last written (a newer one means reload).
fn checkpoint_stamp(run: &FsPath) -> Option<SystemTime> {
    let dir = lathe_train::checkpoint::latest(run)?;
    std::fs::metadata(dir.join("trainer_state.json"))
        .and_then(|m| m.modified())
        .ok()
}

impl ChatModels {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Loaded>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model of `run`, loading it (after unloading another) when needed.
    fn get(&self, run: &FsPath) -> lathe_studio::Result<Arc<Mutex<TrainedModel>>> {
        let stamp = checkpoint_stamp(run);
        let mut slot = self.slot();
        if let Some(loaded) = slot.as_mut().filter(|l| l.run == run && l.stamp == stamp) {
            loaded.used = Instant::now();
            return Ok(loaded.model.clone());
        }
        // One model at a time: drop the old one before reading the new one.
        *slot = None;
        let model = TrainedModel::load(run)
            .map_err(|e| lathe_studio::StudioError::Invalid(format!("loading the model: {e}")))?;
        let model = Arc::new(Mutex::new(model));
        *slot = Some(Loaded {
            run: run.to_path_buf(),
            stamp,
            model: model.clone(),
            used: Instant::now(),
        });
        Ok(model)
    }

    /// Unloads the model of `run` (deleted or renamed).
    pub fn forget(&self, run: &FsPath) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|l| l.run == run) {
            *slot = None;
        }
    }
}

/// Unloads the chat model after `idle` without use, or when less than 512 MiB of
/// memory is left.
pub async fn unload_when_idle(models: Arc<ChatModels>, idle: Duration) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let short = lathe_studio::available_memory() < 512 << 20;
        let mut slot = models.slot();
        if slot
            .as_ref()
            .is_some_and(|l| short || l.used.elapsed() > idle)
        {
            *slot = None;
        }
    }
}

/// One message of the conversation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    role: String,
    /// Text.
    content: String,
}

/// A chat turn: the conversation so far, ending with the user's message, and
/// generation settings over the experiment's prediction settings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// Messages, oldest first; the last one is the user's.
    messages: Vec<Message>,
    /// New tokens at most.
    max_new_tokens: Option<usize>,
    /// Sampling temperature (0: greedy).
    temperature: Option<f32>,
    /// Top-k sampling (0: off).
    top_k: Option<usize>,
    /// Nucleus sampling mass.
    top_p: Option<f32>,
    /// Repetition penalty.
    repetition_penalty: Option<f32>,
    /// Sampling seed.
    seed: Option<u64>,
}

/// `(system, earlier (user, assistant) turns, last user message)` of a conversation.
type Turns = (Option<String>, Vec<(String, String)>, String);

fn turns(messages: Vec<Message>) -> ApiResult<Turns> {
    let mut system = None;
    let mut history = Vec::new();
    let mut pending: Option<String> = None;
    for (i, m) in messages.into_iter().enumerate() {
        match (m.role.as_str(), pending.take()) {
            ("system", None) if i == 0 => system = Some(m.content),
            ("user", None) => pending = Some(m.content),
            ("assistant", Some(user)) => history.push((user, m.content)),
            (role, _) => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}]: role {role:?} out of turn; use an optional first `system`, then `user` and `assistant` in turn, ending with `user`"
                )))
            }
        }
    }
    let user =
        pending.ok_or_else(|| ApiError::bad_request("messages: end with a `user` message"))?;
    Ok((system, history, user))
}

/// Answers the last user message with the experiment's model, streaming
/// Server-Sent Events `token` (`{"text"}`) and a final `done` (`{"text", "tokens",
/// "seconds"}`) or `error` (`{"error"}`).
#[utoipa::path(post, path = "/api/experiments/{name}/chat", tag = "experiments", request_body = ChatRequest,
    params(("name" = String, Path, description = "Experiment name")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Events `token`, then `done` or `error`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn chat(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<ChatRequest>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (system, history, user) = turns(req.messages)?;
    let studio = s.studio.clone();
    let n = name.clone();
    let (record, run) =
        blocking(move || Ok((studio.experiment_record(&n)?, studio.experiment_dir(&n)))).await?;
    if !matches!(record.status.as_str(), "finished" | "stopped") {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "experiment {name:?} is {}; chat with it once it has finished",
                record.status
            ),
        });
    }
    if lathe_train::checkpoint::latest(&run).is_none() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("experiment {name:?} saved no checkpoint (save_checkpoint: disable)"),
        });
    }
    let models = s.chat.clone();
    let model = blocking(move || models.get(&run)).await?;
    // The prompt and the settings are checked before the stream starts, so that a
    // bad request is a 400 and not an event.
    let prepared = blocking({
        let model = model.clone();
        move || {
            let m = model.lock().unwrap_or_else(|e| e.into_inner());
            let fail =
                |e: lathe_train::TrainError| lathe_studio::StudioError::Invalid(e.to_string());
            let prompt = m.prompt(system.as_deref(), &history, &user).map_err(fail)?;
            let mut config = lathe_train::validation::generation_config(
                &m.config,
                m.stop_strings().map_err(fail)?,
                m.engine.generation_defaults.eos_token_ids.clone(),
            );
            config.max_new_tokens = req.max_new_tokens.unwrap_or(config.max_new_tokens);
            config.temperature = req.temperature.unwrap_or(config.temperature);
            config.top_k = req.top_k.unwrap_or(config.top_k);
            config.top_p = req.top_p.unwrap_or(config.top_p);
            config.repetition_penalty = req.repetition_penalty.unwrap_or(config.repetition_penalty);
            config.seed = req.seed.unwrap_or(config.seed);
            config
                .validate()
                .map_err(|e| lathe_studio::StudioError::Invalid(e.to_string()))?;
            Ok((prompt, config))
        }
    })
    .await?;
    let (prompt, config) = prepared;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let m = model.lock().unwrap_or_else(|e| e.into_inner());
        let result = m
            .engine
            .generate_text(&prompt, false, &config, &mut |piece| {
                piece.is_empty()
                    || tx
                        .blocking_send(
                            Event::default()
                                .event("token")
                                .data(json!({"text": piece}).to_string()),
                        )
                        .is_ok()
            });
        let last = match result {
            Ok(g) => Event::default().event("done").data(
                json!({"text": g.text, "tokens": g.tokens, "seconds": started.elapsed().as_secs_f64()})
                    .to_string(),
            ),
            Err(e) => Event::default()
                .event("error")
                .data(json!({"error": e.to_string()}).to_string()),
        };
        let _ = tx.blocking_send(last);
    });
    let shutdown = s.shutdown.clone();
    let events = futures::stream::unfold(rx, move |mut rx| {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                event = rx.recv() => event.map(|e| (Ok(e), rx)),
                // Dropping the receiver stops the generation at its next token.
                _ = shutdown.cancelled() => None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
