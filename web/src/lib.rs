//! # geomesh-web
//!
//! The browser pages, embedded in the binary: the meeting page
//! (`index.html`, `app.js`, `style.css`). Selectors serve it at `/` (the
//! page joins through their `POST /v1/join`); edges serve the same files.
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
/// Its script.
pub const APP_JS: &str = include_str!("../app.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("../style.css");

/// The page's assets (`/app.js`, `/style.css`, `/favicon.ico`); the caller
/// routes `/` itself (see [`index`]).
pub fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// The meeting page itself.
pub async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}
