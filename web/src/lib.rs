//! # geomesh-web
//!
//! The browser pages, embedded in the binary: the meeting page
//! (`index.html`, `layout.js`, `app.js`, `style.css`). Selectors serve it at `/` (the
//! page joins through their `POST /v1/join`); edges serve the same files.
//! And the cluster status page (`status.html`, `status.js`, `status.css`),
//! which selectors serve at `/status`.
//!
//! **Owns**: the page files and the routes that serve them, and how the
//! public HTTP listeners are served ([`serve`]: header and request time-outs).
//! **Does not own**: any API the page calls (selector and edge crates).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod serve;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::Html;
use axum::routing::get;

/// The meeting page.
pub const INDEX_HTML: &str = include_str!("../index.html");
/// The cluster status page (selectors serve it at `/status`).
pub const STATUS_HTML: &str = include_str!("../status.html");
/// Its script.
pub const STATUS_JS: &str = include_str!("../status.js");
/// Its style sheet.
pub const STATUS_CSS: &str = include_str!("../status.css");
/// Its script.
pub const APP_JS: &str = include_str!("../app.js");
/// Its layout (gallery or speaker view, and the tile heights it asks for).
pub const LAYOUT_JS: &str = include_str!("../layout.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("../style.css");

/// The page's assets (`/layout.js`, `/app.js`, `/style.css`, `/favicon.ico`); the caller
/// routes `/` itself (see [`index`]).
pub fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route(
            "/layout.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], LAYOUT_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// The status page and its assets (`/status`, `/status.js`,
/// `/status.css`); the page reads `GET /v1/status` and the land outline at
/// `/status/land.path`, which the caller routes.
pub fn status_page<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/status", get(|| async { Html(STATUS_HTML) }))
        .route(
            "/status.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], STATUS_JS) }),
        )
        .route(
            "/status.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STATUS_CSS) }),
        )
}

/// The meeting page itself.
pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}
