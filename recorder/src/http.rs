//! The recorder node's HTTP API: `GET /healthz` (up, recordings; no
//! credential), `GET /metrics` (Prometheus, no credential) and `GET
//! /v1/recordings` (what it writes and wrote, operator token). The handlers
//! ask the node's core task ([`crate::node`]) over its command channel.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use geomesh_core::agent::{RecordingReport, RecordingState};
use tokio::sync::{mpsc, oneshot};

use crate::node::Cmd;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) cmds: mpsc::Sender<Cmd>,
    pub(crate) token: Option<Arc<[u8]>>,
    pub(crate) id: String,
    pub(crate) region: String,
}

/// The recorder's HTTP API.
pub(crate) fn router(api: Api) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/recordings", get(list))
        .route("/metrics", get(metrics))
        .with_state(api)
}

fn refuse(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"error": error, "message": message.into()})),
    )
        .into_response()
}

impl Api {
    /// Whether the request carries the operator's bearer token (compared
    /// in constant time).
    fn is_operator(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::as_bytes);
        matches!((&self.token, given), (Some(want), Some(got))
            if aws_lc_rs::constant_time::verify_slices_are_equal(want, got).is_ok())
    }

    /// Every recording's report; `None` when the recorder is stopping.
    async fn reports(&self) -> Option<Vec<RecordingReport>> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(Cmd::Report(tx)).await.ok()?;
        rx.await.ok()
    }
}

fn stopping() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping",
        "the recorder is stopping",
    )
}

async fn healthz(State(api): State<Api>) -> Response {
    match api.reports().await {
        Some(list) => Json(serde_json::json!({
            "recorder": api.id,
            "recording": list.iter().filter(|r| r.state == RecordingState::Recording).count(),
        }))
        .into_response(),
        None => stopping(),
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let (tx, rx) = oneshot::channel();
    if api.cmds.send(Cmd::Metrics(tx)).await.is_err() {
        return stopping();
    }
    match rx.await {
        Ok(snapshot) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::encode(&api.id, &api.region, &snapshot),
        )
            .into_response(),
        Err(_) => stopping(),
    }
}

async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !api.is_operator(&headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the operator token is required",
        );
    }
    match api.reports().await {
        Some(list) => Json(list).into_response(),
        None => stopping(),
    }
}
