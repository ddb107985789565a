//! The edge's HTTP surface: signaling, WHIP/WHEP, health, metrics, probe,
//! the meeting page, and (dev mode only, loopback only) a token endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use geomesh_core::token::{JoinClaims, TokenSigner, TokenVerifier};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId};

use crate::media::MediaHandle;
use crate::messages::{MAX_BODY_BYTES, MAX_MESSAGE_BYTES};
use crate::metrics::Metrics;
use crate::whip;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// This edge.
    pub edge_id: EdgeId,
    /// Its region.
    pub region: geomesh_core::RegionId,
    /// Checks join tokens.
    pub verifier: TokenVerifier,
    /// The media loop.
    pub media: MediaHandle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// WHIP/WHEP sessions by id.
    pub http_sessions: Arc<whip::HttpSessions>,
    /// Dev mode only: mints tokens for the meeting page.
    pub dev_signer: Option<Arc<TokenSigner>>,
    /// What the selector agent learned (None when not in a cluster).
    pub agent: Option<Arc<crate::agent::AgentState>>,
    /// The edge is shutting down: new sessions are refused.
    pub closing: Arc<AtomicBool>,
    /// Sessions at which new ones are refused (the topology's capacity):
    /// the selectors should not send more, the edge is the last line.
    pub capacity: u32,
    /// WebSocket connections per source address, and in all.
    pub connections: Arc<crate::limits::ConnectionLimits>,
    /// Sessions opened per join token.
    pub token_uses: Arc<std::sync::Mutex<geomesh_core::uses::UseCounter>>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// Sessions one join token may open (a reconnect or two; not a crowd).
pub const SESSIONS_PER_TOKEN: u32 = 4;

impl AppState {
    /// Counts one session opened with `token` (valid until `exp`); refuses
    /// a token past its share.
    pub fn use_token(&self, token: &str, exp: u64) -> Result<(), geomesh_core::uses::Overused> {
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.token_uses
            .lock()
            .expect("token use lock poisoned")
            .use_once(token, exp, now)
            .map(|_| ())
    }

    /// The client's address (see [`geomesh_core::source::client_ip`]):
    /// the peer's, or the one a trusted proxy in front of us names.
    pub fn client_ip(&self, peer: std::net::IpAddr, headers: &HeaderMap) -> std::net::IpAddr {
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        geomesh_core::source::client_ip(peer, hops, &self.trusted_proxies)
    }

    /// Whether the edge is at its capacity.
    pub fn is_full(&self) -> bool {
        self.metrics.participants.get() >= i64::from(self.capacity)
    }

    /// Whether new sessions are refused: the edge is shutting down, or an
    /// operator removed it from the cluster.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
            || self
                .agent
                .as_ref()
                .is_some_and(|a| a.removed.load(Ordering::Relaxed))
    }
}

/// The axum router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .merge(geomesh_web::assets())
        .route("/v1/rtc", get(rtc))
        .route("/v1/whip/{conference}", post(whip::whip_post))
        .route("/v1/whep/{conference}", post(whip::whep_post))
        .route(
            "/v1/whip/{conference}/{session}",
            axum::routing::delete(whip::delete).patch(whip::patch),
        )
        .route(
            "/v1/whep/{conference}/{session}",
            axum::routing::delete(whip::delete).patch(whip::patch),
        )
        .route("/v1/probe", get(probe))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/dev/token", get(dev_token))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The meeting page. A user joins through the selectors (they choose the
/// edge), so a page opened here is sent to a selector's page with the same
/// query — unless the link carries a join token of its own (`?token=`),
/// which names this edge.
async fn index(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = query.unwrap_or_default();
    let has_token = q.split('&').any(|kv| kv.starts_with("token="));
    match state.agent.as_ref().and_then(|a| a.selector_api()) {
        Some(api) if !has_token => {
            let sep = if q.is_empty() { "" } else { "?" };
            Redirect::temporary(&format!("{api}/{sep}{q}")).into_response()
        }
        _ => geomesh_web::index().await.into_response(),
    }
}

async fn rtc(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    // Counted from the upgrade: an idle socket takes a slot like a joined one.
    let slot = match state
        .connections
        .admit(state.client_ip(peer.ip(), &headers))
    {
        Ok(slot) => slot,
        Err(refusal) => {
            Metrics::count(&state.metrics.signaling_errors, refusal.reason());
            return (StatusCode::TOO_MANY_REQUESTS, refusal.to_string()).into_response();
        }
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            crate::ws::session(socket, state).await;
            drop(slot);
        })
}

/// What `GET /healthz` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` while the edge serves.
    pub status: String,
    /// Edge id.
    pub edge: String,
    /// Sessions.
    pub participants: i64,
    /// Conferences.
    pub conferences: i64,
    /// Registered with the selectors (absent without a selector cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
    /// Draining: the selectors place no new participants here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draining: Option<bool>,
    /// Shutting down: new sessions are refused while the current ones move.
    #[serde(default)]
    pub closing: bool,
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(Health {
        status: "ok".into(),
        edge: state.edge_id.to_string(),
        participants: state.metrics.participants.get(),
        conferences: state.metrics.conferences.get(),
        registered: state
            .agent
            .as_ref()
            .map(|a| a.registered.load(std::sync::atomic::Ordering::Relaxed)),
        draining: state
            .agent
            .as_ref()
            .map(|a| a.draining.load(std::sync::atomic::Ordering::Relaxed)),
        closing: state.is_closing(),
    })
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// A tiny response for clients timing their RTT to this edge.
async fn probe() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
    )
        .into_response()
}

/// Query of `GET /dev/token`.
#[derive(Debug, Deserialize)]
pub struct DevTokenQuery {
    conference: ConferenceId,
    name: Option<String>,
    participant: Option<ParticipantId>,
}

/// Answer of `GET /dev/token`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevToken {
    /// The join token.
    pub token: String,
    /// Participant id in it.
    pub participant: ParticipantId,
    /// Conference in it.
    pub conference: ConferenceId,
    /// This edge.
    pub edge: String,
}

/// Dev mode's token endpoint: exists only with a dev signer, answers only loopback.
async fn dev_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<DevTokenQuery>,
) -> Response {
    let Some(signer) = &state.dev_signer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !peer.ip().is_loopback() {
        return (
            StatusCode::FORBIDDEN,
            "dev tokens are for loopback clients only",
        )
            .into_response();
    }
    let participant = match q.participant {
        Some(p) => p,
        None => {
            let mut b = [0u8; 4];
            // The OS random source failing is not recoverable here.
            getrandom::fill(&mut b).expect("OS random source");
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            ParticipantId::new(format!("p-{hex}")).expect("valid generated id")
        }
    };
    let name = q
        .name
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty());
    let mut claims = JoinClaims::new(
        q.conference.clone(),
        participant.clone(),
        state.edge_id.clone(),
        SystemTime::now(),
        Duration::from_secs(3600),
    );
    claims.name = name;
    axum::Json(DevToken {
        token: signer.sign(&claims),
        participant,
        conference: q.conference,
        edge: state.edge_id.to_string(),
    })
    .into_response()
}
