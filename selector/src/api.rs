//! The public HTTP API (plain HTTP on the topology's `api` address).
//!
//! Bodies of `POST /v1/join` and `GET /v1/probe-targets` are the types of
//! `geomesh_core::api`; the read-only views (`/v1/bridges`,
//! `/v1/conferences/{id}`, `/healthz`) are defined here. Reads are served
//! from this node's copy of the state; writes go through Raft.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use geomesh_core::api::{JoinRequest, ProbeTarget, ProbeTargets};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};
use geomesh_geoip::haversine_km;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::api_error::ApiFailure;
use crate::join::{identify, join, locate};
use crate::metrics::Metrics;
use crate::node::Shared;
use crate::state::{Op, OpResult};

mod bridges;
pub use bridges::*;

/// How many probe targets `GET /v1/probe-targets` returns.
pub const PROBE_TARGETS: usize = 3;

/// Serves the public API until the task is aborted.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.stop.clone();
    let app = router(shared);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    geomesh_web::serve::serve(
        listener,
        app,
        geomesh_web::serve::Limits::default(),
        stopped,
    )
    .await;
}

/// The public routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(geomesh_web::index))
        .merge(geomesh_web::assets())
        .merge(geomesh_web::status_page())
        .route("/status/land.path", get(land_path))
        .route("/v1/join", post(join_handler).options(preflight))
        .route("/v1/probe-targets", get(probe_targets).options(preflight))
        .route("/v1/bridges", get(bridges))
        .route("/v1/bridges/{id}/drain", post(drain))
        .route("/v1/conferences/{id}", get(conference))
        .route(
            "/v1/conferences/{id}/recording",
            post(crate::recording::start)
                .get(crate::recording::status)
                .delete(crate::recording::stop),
        )
        .route("/v1/selections", get(selections))
        .route("/v1/status", get(crate::status::status))
        .route("/v1/doctor", get(crate::status::doctor))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiFailure::not_found("no such endpoint") })
        .layer(axum::middleware::map_response(allow_any_origin))
        // Join bodies are small; nothing else here takes one.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(shared)
}

/// Pages served by one selector join through another when theirs stops
/// answering, and operators' applications call the API from their own
/// origins: the public API is readable from any origin. Nothing it answers
/// depends on cookies; authorization, where needed, is an explicit header.
async fn allow_any_origin(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    res
}

/// CORS preflight of the join endpoints.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "content-type, authorization",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}

/// The client's address (see [`geomesh_core::source::client_ip`]) from
/// this request's `X-Forwarded-For` headers.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    geomesh_core::source::client_ip(peer, hops, trusted)
}

async fn join_handler(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<geomesh_core::api::JoinResponse>, ApiFailure> {
    let started = Instant::now();
    let res = async {
        let req: JoinRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiFailure::bad_request(format!("body: {e}")))?;
        req.validate()
            .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
        let ip = client_ip(peer.ip(), &headers, &s.cfg.trusted_proxies);
        admit(&s, geomesh_core::source::source_key(ip), &req.conference)?;
        // A rejoin secret proves an identity by itself (the grant that
        // admitted it may have expired during a long meeting).
        let grant = match (&req.rejoin_secret, crate::access::bearer(&headers)) {
            (Some(_), None) => None,
            _ => s.access.join_grant(&headers, &s.metrics)?,
        };
        if let (Some(g), Some(raw)) = (&grant, crate::access::bearer(&headers)) {
            let now = geomesh_core::grant::unix_now();
            s.grant_uses
                .lock()
                .expect("grant use lock poisoned")
                .use_once(raw, g.exp, now)
                .map_err(|e| {
                    Metrics::reason(&s.metrics.grants_refused, "overused");
                    ApiFailure::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        format!("grant refused: {e}"),
                    )
                })?;
        }
        let who = identify(&s, &req, grant)?;
        join(&s, req, who, ip).await
    }
    .await;
    if let Err(f) = &res {
        s.metrics.join(f.code, "none");
    }
    s.metrics
        .join_duration
        .observe(started.elapsed().as_secs_f64());
    res.map(Json)
}

/// The join rate limits: per source address, then per conference.
fn admit(s: &Shared, ip: IpAddr, conference: &ConferenceId) -> Result<(), ApiFailure> {
    let now = Instant::now();
    let mut l = s.join_limits.lock().expect("join limits lock poisoned");
    let (by_addr, by_conf) = &mut *l;
    let (what, wait) = if !by_addr.allow(&ip, now) {
        ("this address", by_addr.retry_after(&ip))
    } else if !by_conf.allow(conference, now) {
        ("this conference", by_conf.retry_after(conference))
    } else {
        return Ok(());
    };
    Err(ApiFailure::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "too many joins from {what}: retry in {} ms",
            wait.as_millis().max(1)
        ),
    )
    .retry_after(wait))
}

async fn probe_targets(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Json<ProbeTargets> {
    let ip = client_ip(peer.ip(), &headers, &s.cfg.trusted_proxies);
    let (location, _) = locate(&s, None, None, ip);
    let now = Instant::now();
    let applied = s.store.read();
    let st = &applied.state;
    let soft = s.soft();
    let mut candidates: Vec<(f64, &EdgeId, &RegionId, String)> = st
        .edges()
        .iter()
        .filter(|(id, r)| !r.draining && soft.is_healthy(id, now))
        .map(|(id, r)| {
            let d = location.map_or(0.0, |l| haversine_km(l, r.location));
            (d, id, &r.region, r.base_url.clone())
        })
        .collect();
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    // One edge per region: probing two edges in one datacenter tells nothing new.
    let mut seen = Vec::new();
    let mut targets = Vec::new();
    for (_, id, region, base) in candidates {
        if seen.contains(&region) {
            continue;
        }
        seen.push(region);
        targets.push(ProbeTarget {
            edge: id.clone(),
            region: region.clone(),
            probe_url: format!("{base}/v1/probe"),
        });
        if targets.len() == PROBE_TARGETS {
            break;
        }
    }
    drop(soft);
    drop(applied);
    Json(ProbeTargets {
        targets,
        selectors: crate::join::selector_urls(&s),
    })
}

/// `GET /v1/conferences/{id}` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConferenceView {
    /// The conference.
    pub conference: ConferenceId,
    /// Its edges with their participant counts.
    pub edges: Vec<ConferenceEdgeView>,
    /// Its participants.
    pub participants: Vec<ParticipantView>,
}

/// One edge of a conference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConferenceEdgeView {
    /// Edge id.
    pub id: EdgeId,
    /// Its region.
    pub region: Option<RegionId>,
    /// Participants of the conference on it.
    pub participants: u32,
}

/// One participant of a conference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParticipantView {
    /// Participant id.
    pub participant: ParticipantId,
    /// Its edge.
    pub edge: EdgeId,
    /// The edge reported it connected.
    pub confirmed: bool,
    /// When it was placed, Unix ms.
    pub placed_ms: u64,
}

async fn conference(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ConferenceView>, ApiFailure> {
    // Participant ids are what a grant or rejoin names: operators only.
    s.access.require_operator(&headers, &s.metrics)?;
    let conf = ConferenceId::new(id).map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    let applied = s.store.read();
    let st = &applied.state;
    let (Some(edges), Some(ps)) = (
        st.conference_edges(&conf),
        st.conference_participants(&conf),
    ) else {
        return Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "unknown_conference",
            format!("conference {conf} has no participants"),
        ));
    };
    Ok(Json(ConferenceView {
        edges: edges
            .iter()
            .map(|(e, n)| ConferenceEdgeView {
                id: e.clone(),
                region: st.edge(e).map(|r| r.region.clone()),
                participants: *n,
            })
            .collect(),
        participants: ps
            .iter()
            .map(|(p, r)| ParticipantView {
                participant: p.clone(),
                edge: r.edge.clone(),
                confirmed: r.confirmed,
                placed_ms: r.placed_ms,
            })
            .collect(),
        conference: conf,
    }))
}

/// The land outline of the status page's map (an SVG path on a 1000 × 500
/// equirectangular box), computed once.
async fn land_path() -> Response {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let d = PATH.get_or_init(|| geomesh_geoip::world::land_svg_path(1000.0, 500.0));
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        d.as_str(),
    )
        .into_response()
}

/// `GET /v1/selections` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionsQuery {
    conference: Option<String>,
    /// Unix ms: entries committed after it.
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/selections?conference=&since=&limit=`: this node's selection
/// log (operators only: it names participants).
async fn selections(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<SelectionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<geomesh_core::api::Selections>, ApiFailure> {
    s.access.require_operator(&headers, &s.metrics)?;
    let Query(q) = query.map_err(|e| ApiFailure::bad_request(e.body_text()))?;
    let conference = q
        .conference
        .map(ConferenceId::new)
        .transpose()
        .map_err(|e| ApiFailure::bad_request(format!("conference: {e}")))?;
    let limit = q
        .limit
        .unwrap_or(crate::selections::MAX_QUERY)
        .min(crate::selections::MAX_QUERY);
    let (selections, dropped) =
        s.selections
            .lock()
            .expect("selection log lock")
            .query(conference.as_ref(), q.since, limit);
    Ok(Json(geomesh_core::api::Selections {
        selector: s.cfg.id.to_string(),
        selections,
        dropped,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default = "yes")]
    draining: bool,
    #[serde(default)]
    migrate: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/bridges/{id}/drain` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainResult {
    /// The edge.
    pub edge: EdgeId,
    /// Its draining state now.
    pub draining: bool,
    /// Its participants are being moved away.
    #[serde(default)]
    pub migrate: bool,
}

async fn drain(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DrainResult>, ApiFailure> {
    // The credential decides; --admin-cidr can narrow where it is accepted
    // from (the TCP peer, never X-Forwarded-For).
    let ip = peer.ip().to_canonical();
    if !s.cfg.admin_networks.is_empty() && !s.cfg.admin_networks.iter().any(|n| n.contains(&ip)) {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{ip} is not in an admin network (--admin-cidr)"),
        ));
    }
    s.access.require_operator(&headers, &s.metrics)?;
    let edge = EdgeId::new(id).map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    let DrainBody { draining, migrate } = if body.iter().all(u8::is_ascii_whitespace) {
        DrainBody {
            draining: true,
            migrate: false,
        }
    } else {
        serde_json::from_slice::<DrainBody>(&body)
            .map_err(|e| ApiFailure::bad_request(format!("body: {e}")))?
    };
    let unknown = || {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            "unknown_edge",
            format!("edge {edge} is not registered"),
        )
    };
    if !s.with_state(|st| st.edge(&edge).is_some()) {
        return Err(unknown());
    }
    let res = s
        .propose(vec![Op::SetDraining {
            edge: edge.clone(),
            draining,
            migrate,
        }])
        .await
        .map_err(|e| ApiFailure::unavailable(e.to_string()))?;
    match res.first() {
        Some(OpResult::Draining { draining }) => {
            tracing::info!(%edge, draining, migrate, "drain state changed");
            Ok(Json(DrainResult {
                edge,
                draining: *draining,
                migrate: *draining && migrate,
            }))
        }
        _ => Err(unknown()),
    }
}

/// `GET /healthz` body. `raft_role` and `leader_id` are a contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    /// This node's selector id.
    pub selector: String,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub raft_role: String,
    /// The leader's selector id, `null` while there is none.
    pub leader_id: Option<String>,
    /// Current Raft term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Voting members.
    pub voters: Vec<String>,
    /// Registered edges.
    pub edges_registered: usize,
    /// Edges heartbeating this node.
    pub edges_healthy: usize,
    /// Placed participants.
    pub participants: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// What this node runs.
    #[serde(flatten)]
    pub about: crate::status::NodeAbout,
    /// This node's clock, Unix ms (clock skew between nodes).
    pub now_ms: u64,
}

async fn healthz(State(s): State<Arc<Shared>>) -> Json<Health> {
    Json(crate::status::local_health(&s))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let m = &s.metrics;
    let r = s.raft_status();
    for role in ["leader", "follower", "candidate", "learner", "shutdown"] {
        m.raft_role
            .get_or_create(&crate::metrics::RoleLabel { role: role.into() })
            .set(i64::from(role == r.raft_role.as_str()));
    }
    let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    m.raft_term.set(g(r.term));
    m.raft_last_log_index.set(g(r.last_log_index.unwrap_or(0)));
    m.raft_last_applied.set(g(r.last_applied.unwrap_or(0)));
    s.with_state(|st| {
        m.edges_registered.set(st.edges().len() as i64);
        m.edges_draining
            .set(st.edges().values().filter(|e| e.draining).count() as i64);
        m.participants.set(st.participant_count() as i64);
        m.conferences.set(st.conferences().len() as i64);
    });
    let now = Instant::now();
    {
        let soft = s.soft();
        m.edges_healthy.set(soft.live_edges(now).len() as i64);
        for e in crate::view::known_edges(&s.cfg.topology, &s.store.read().state) {
            m.edge_healthy
                .get_or_create(&crate::metrics::EdgeLabel {
                    edge: e.id.to_string(),
                })
                .set(i64::from(soft.is_healthy(&e.id, now)));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.7, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(client_ip(proxy, &bad, &trusted), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
