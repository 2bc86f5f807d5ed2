//! The web UI: plain HTML, CSS and JavaScript modules embedded in the binary and served
//! at `/` and `/ui/…`. The pages call the same API as every other client.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Every asset: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
    ("app.js", JS, include_str!("../ui/app.js")),
    ("api.js", JS, include_str!("../ui/api.js")),
    ("dom.js", JS, include_str!("../ui/dom.js")),
    ("charts.js", JS, include_str!("../ui/charts.js")),
    ("form.js", JS, include_str!("../ui/form.js")),
    ("home.js", JS, include_str!("../ui/home.js")),
    ("datasets.js", JS, include_str!("../ui/datasets.js")),
    ("experiments.js", JS, include_str!("../ui/experiments.js")),
    ("compare.js", JS, include_str!("../ui/compare.js")),
    ("settings.js", JS, include_str!("../ui/settings.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// `/` and `/ui/{file}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// Whether a request path is part of the UI's static files (served without a token:
/// they hold no data).
pub fn is_asset(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
