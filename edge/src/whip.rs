//! WHIP (RFC 9725) and WHEP ingest/egress: one HTTP POST with an SDP offer
//! creates a session, `DELETE` on its `Location` ends it. No trickle ICE:
//! the edge is ICE-lite with one candidate, already in its answer, so
//! `PATCH` gets 405 as the RFC prescribes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::info;

use geomesh_core::{ConferenceId, ParticipantId};

use crate::http::AppState;
use crate::metrics::Metrics;
use crate::router::Role;

/// Which of the two protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Publish (WHIP).
    Whip,
    /// Play (WHEP).
    Whep,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

fn refuse(state: &AppState, status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    Metrics::count(&state.metrics.joins, code);
    let mut r = plain(status, msg);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Query of a WHEP request: `?participant=ID` picks the publisher.
#[derive(Debug, serde::Deserialize)]
pub struct WhepQuery {
    participant: Option<ParticipantId>,
}

/// `POST /v1/whip/{conference}`.
pub async fn whip_post(
    state: State<AppState>,
    conference: Path<String>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post(Kind::Whip, state, conference, None, peer, headers, body).await
}

/// `POST /v1/whep/{conference}`.
pub async fn whep_post(
    state: State<AppState>,
    conference: Path<String>,
    query: Query<WhepQuery>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post(
        Kind::Whep,
        state,
        conference,
        query.0.participant,
        peer,
        headers,
        body,
    )
    .await
}

async fn post(
    kind: Kind,
    State(state): State<AppState>,
    Path(conference): Path<String>,
    follow: Option<ParticipantId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.is_closing() {
        return refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "closing",
            "this edge is shutting down: ask the selector for another",
        );
    }
    let Ok(conference) = conference.parse::<ConferenceId>() else {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid conference id",
        );
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.trim().eq_ignore_ascii_case("application/sdp") {
        return refuse(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "Content-Type must be application/sdp",
        );
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing bearer token",
        );
    };
    let claims = match state.verifier.verify(
        token.trim(),
        SystemTime::now(),
        &state.edge_id,
        Some(&conference),
    ) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                &state,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                e.to_string(),
            );
        }
    };
    if let Err(e) = state.use_token(token.trim(), claims.exp) {
        return refuse(
            &state,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            e.to_string(),
        );
    }
    if state.is_full() {
        return refuse(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            "full",
            "this edge is at its capacity: ask the selector for another",
        );
    }
    let Ok(sdp) = String::from_utf8(body.to_vec()) else {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "bad_sdp",
            "SDP is not UTF-8",
        );
    };
    let allowed = match kind {
        Kind::Whip => !claims.no_publish,
        Kind::Whep => !claims.no_subscribe,
    };
    if !allowed {
        return refuse(
            &state,
            StatusCode::FORBIDDEN,
            "forbidden",
            match kind {
                Kind::Whip => "this participant may not publish (its grant)",
                Kind::Whep => "this participant may not subscribe (its grant)",
            },
        );
    }
    let role = match kind {
        Kind::Whip => Role::Publisher,
        Kind::Whep => Role::Viewer { follow },
    };
    let joined = match state
        .media
        .join(
            conference.clone(),
            claims.participant.clone(),
            claims.name.clone(),
            role,
            claims.location,
            None,
        )
        .await
    {
        Ok(j) => j,
        Err(e) => return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let answer = match state.media.offer(joined.key, sdp).await {
        Ok(a) => a,
        Err(e) => {
            state.media.leave(joined.key).await;
            return refuse(&state, StatusCode::BAD_REQUEST, "bad_sdp", e.to_string());
        }
    };
    Metrics::count(&state.metrics.joins, "ok");
    let id = session_id();
    state
        .http_sessions
        .lock()
        .expect("session map lock")
        .insert(id.clone(), (kind, conference.clone(), joined.key));
    let location = format!("/v1/{}/{conference}/{id}", kind.path());
    info!(%peer, participant = %claims.participant, %conference, ?kind, "http media session created");
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

/// `DELETE /v1/{whip|whep}/{conference}/{session}`.
pub async fn delete(
    State(state): State<AppState>,
    Path((conference, id)): Path<(String, String)>,
) -> Response {
    let entry = {
        let mut map = state.http_sessions.lock().expect("session map lock");
        match map.get(&id) {
            Some((_, c, _)) if c.as_str() == conference => map.remove(&id),
            _ => None,
        }
    };
    match entry {
        Some((_, _, key)) => {
            state.media.leave(key).await;
            plain(StatusCode::OK, "session ended")
        }
        None => plain(StatusCode::NOT_FOUND, "no such session"),
    }
}

/// Forgets WHIP/WHEP sessions that ended without a DELETE (ICE failed, the
/// client vanished, the edge evicted them): their `Location` answers 404
/// and the map does not grow. Runs until the process ends.
pub async fn sweep(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        if state
            .http_sessions
            .lock()
            .expect("session map lock")
            .is_empty()
        {
            continue;
        }
        let alive: std::collections::HashSet<_> =
            state.media.sessions().await.iter().map(|s| s.key).collect();
        let mut map = state.http_sessions.lock().expect("session map lock");
        let before = map.len();
        map.retain(|_, (_, _, key)| alive.contains(key));
        let gone = before - map.len();
        if gone > 0 {
            Metrics::count_n(&state.metrics.dropped, "http_session_gone", gone as u64);
        }
    }
}

/// `PATCH` (trickle ICE): not supported, per RFC 9725 section 4.3.1.
pub async fn patch() -> Response {
    plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported; the answer has every candidate",
    )
}

/// WHIP/WHEP session id → (protocol, conference, media session).
pub type HttpSessions =
    std::sync::Mutex<HashMap<String, (Kind, ConferenceId, crate::router::PeerKey)>>;

fn session_id() -> String {
    let mut b = [0u8; 12];
    // The OS random source failing is not recoverable for a media server.
    getrandom::fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
