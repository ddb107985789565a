//! Handlers of the edge-agent API on the internal listener (bodies in
//! `geomesh_core::agent`; contract in `docs/PROTOCOL.md`).
//!
//! The edge's id always comes from its client certificate. Registration and
//! participant reports are replicated (Raft); heartbeats only update this
//! node's soft state.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use geomesh_core::agent::{
    Heartbeat, HeartbeatResponse, LeaveRequest, LeaveResponse, PLACEMENT_PAGE, ParticipantReport,
    ParticipantReportResponse, PlacementEntry, PlacementPage, RegisterRequest, RegisterResponse,
    SelectorEndpoint,
};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, SelectorId};

use crate::api_error::ApiFailure;
use crate::internal::{Caller, edge_identity, parse, require_edge};
use crate::metrics::Metrics;
use crate::node::{Shared, unix_ms};
use crate::state::{Op, OpResult};
use crate::writer::WriteError;

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Maps a write failure to 503.
pub fn write_failure(e: WriteError) -> ApiFailure {
    ApiFailure::unavailable(e.to_string())
}

fn not_registered(edge: &EdgeId) -> ApiFailure {
    ApiFailure::new(
        StatusCode::CONFLICT,
        "not_registered",
        format!("edge {edge} is not registered with this boot_id: POST /agent/v1/register first"),
    )
}

/// The current Raft members as edges reach them.
fn selector_endpoints(s: &Shared) -> Vec<SelectorEndpoint> {
    let membership = s.raft.metrics().borrow().membership_config.clone();
    membership
        .membership()
        .nodes()
        .filter_map(|(_, n)| {
            Some(SelectorEndpoint {
                id: SelectorId::new(n.id.clone()).ok()?,
                url: format!("https://{}", n.raft),
                api: Some(format!("http://{}", n.api)),
            })
        })
        .collect()
}

fn removed(edge: &EdgeId) -> ApiFailure {
    ApiFailure::new(
        StatusCode::GONE,
        "removed",
        format!("edge {edge} was removed from the cluster; restart it to register again"),
    )
}

/// `POST /agent/v1/register`.
pub async fn register(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<RegisterResponse>, ApiFailure> {
    let edge = edge_identity(&s, &c)?;
    let req: RegisterRequest = parse(&body)?;
    req.validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    // The topology is authoritative for the edges it lists; an edge added
    // at runtime (a certificate of the cluster CA, no topology entry here)
    // describes itself.
    let (region, capacity, public_ip, runtime, topo_url) = match s.cfg.topology.edge(&edge) {
        Some(t) => (t.region.clone(), t.capacity, None, false, t.base_url()),
        None => {
            let d = req.describe.as_ref().ok_or_else(|| {
                Metrics::reason(&s.metrics.internal_refused, "unknown_edge");
                ApiFailure::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("edge {edge} is not in the topology and did not describe itself"),
                )
            })?;
            (
                d.region.clone(),
                d.capacity,
                Some(d.public_ip),
                true,
                String::new(),
            )
        }
    };
    let location = s
        .cfg
        .topology
        .region(&region)
        .ok_or_else(|| {
            ApiFailure::bad_request(format!("describe.region: unknown region {region}"))
        })?
        .location;
    let base_url = match (&req.base_url, runtime) {
        (Some(u), _) => u.clone(),
        (None, false) => topo_url,
        (None, true) => {
            return Err(ApiFailure::bad_request(
                "base_url: required for an edge that describes itself",
            ));
        }
    };
    let op = Op::RegisterEdge {
        edge: edge.clone(),
        region: region.clone(),
        location,
        capacity,
        base_url,
        boot_id: req.boot_id.clone(),
        lease_ms: ms(s.cfg.edge_lease),
        public_ip,
        runtime,
    };
    let res = s.propose(vec![op]).await.map_err(write_failure)?;
    let (restarted, draining) = match res.first() {
        Some(OpResult::Registered {
            restarted,
            draining,
            released,
        }) => {
            tracing::info!(%edge, restarted, released, runtime, boot_id = %req.boot_id, "edge registered");
            (*restarted, *draining)
        }
        Some(OpResult::Rejected(e @ crate::state::ApplyError::Removed(_))) => {
            return Err(ApiFailure::new(StatusCode::GONE, "removed", e.to_string()));
        }
        other => {
            return Err(ApiFailure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("unexpected result {other:?}"),
            ));
        }
    };
    if restarted {
        s.soft().forget(&edge);
    }
    Ok(Json(RegisterResponse {
        edge,
        region,
        draining,
        restarted,
        heartbeat_interval_ms: ms(s.cfg.topology.policy.heartbeat_interval),
        selectors: selector_endpoints(&s),
    }))
}

/// `POST /agent/v1/heartbeat`.
pub async fn heartbeat(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<HeartbeatResponse>, ApiFailure> {
    let res = heartbeat_inner(&s, &c, &body);
    let label = match &res {
        Ok(_) => "ok",
        Err(f) => f.code,
    };
    Metrics::result(&s.metrics.heartbeats, label);
    res.map(Json)
}

fn heartbeat_inner(s: &Shared, c: &Caller, body: &[u8]) -> Result<HeartbeatResponse, ApiFailure> {
    // Any edge of the CA may be told where it stands: registered, not
    // (register), or removed.
    let edge = edge_identity(s, c)?;
    let mut hb: Heartbeat = parse(body)?;
    hb.validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    if let Some(i) = hb.links.iter().position(|l| l.edge == edge) {
        return Err(ApiFailure::bad_request(format!(
            "links[{i}].edge: {edge} is the calling edge itself"
        )));
    }
    // A link to an edge this node does not know (removed a moment ago, or
    // registered but not yet replicated here) is not kept, but does not
    // cost the edge its heartbeat.
    hb.links.retain(|l| {
        s.cfg.topology.edge(&l.edge).is_some() || s.with_state(|st| st.edge(&l.edge).is_some())
    });
    let (draining, migrate, conferences, digest, edges_version, recording) =
        s.with_state(|st| match st.edge(&edge) {
            Some(r) if r.boot_id == hb.boot_id => Ok((
                r.draining,
                r.migrate,
                st.octo_peers(&edge),
                st.digest(&edge),
                st.edges_version(),
                st.recorded_on(&edge),
            )),
            _ if st.removed_boot(&edge) == Some(hb.boot_id.as_str()) => Err(removed(&edge)),
            _ => Err(not_registered(&edge)),
        })?;
    let theirs = hb.digest;
    let resync = {
        let mut soft = s.soft();
        soft.heartbeat(&edge, hb, Instant::now(), unix_ms(SystemTime::now()));
        theirs.is_some_and(|d| soft.note_digest(&edge, d == digest) >= 2)
    };
    if resync {
        tracing::debug!(%edge, "participant digest differs: asking the edge to resync");
    }
    Ok(HeartbeatResponse {
        draining,
        conferences,
        heartbeat_interval_ms: ms(s.cfg.topology.policy.heartbeat_interval),
        migrate,
        resync,
        selectors: selector_endpoints(s),
        edges_version,
        recording,
    })
}

/// `GET /agent/v1/edges`: the cluster's octo nodes: its edges, and the
/// topology's recorders (which subscribe to conferences over octo).
pub async fn edges(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
) -> Result<Json<geomesh_core::agent::EdgeDirectory>, ApiFailure> {
    require_edge(&s, &c)?;
    Ok(Json(s.with_state(|st| {
        geomesh_core::agent::EdgeDirectory {
            version: st.edges_version(),
            edges: crate::view::known_edges(&s.cfg.topology, st)
                .into_iter()
                .map(|e| e.id)
                .chain(s.cfg.topology.recorders.iter().map(|r| r.id.clone()))
                .collect(),
        }
    })))
}

/// `POST /agent/v1/participants`.
pub async fn participants(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<ParticipantReportResponse>, ApiFailure> {
    let edge = require_edge(&s, &c)?;
    let report: ParticipantReport = parse(&body)?;
    report
        .validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    if !s.with_state(|st| st.edge(&edge).is_some()) {
        return Err(not_registered(&edge));
    }
    let mut ops = Vec::new();
    let has_joined = !report.joined.is_empty();
    if has_joined {
        ops.push(Op::Joined {
            edge: edge.clone(),
            participants: report.joined,
        });
    }
    if !report.left.is_empty() {
        ops.push(Op::Left {
            edge: edge.clone(),
            participants: report.left,
        });
    }
    let mut out = ParticipantReportResponse {
        joined: 0,
        left: 0,
        ignored: 0,
        moved: Vec::new(),
    };
    if ops.is_empty() {
        return Ok(Json(out));
    }
    let results = s.propose(ops).await.map_err(write_failure)?;
    for (i, r) in results.iter().enumerate() {
        match r {
            OpResult::Reported {
                recorded, moved, ..
            } if i == 0 && has_joined => {
                out.joined = *recorded;
                out.moved.clone_from(moved);
            }
            OpResult::Reported {
                recorded, ignored, ..
            } => {
                out.left = *recorded;
                out.ignored = *ignored;
            }
            OpResult::Rejected(e) => {
                return Err(ApiFailure::new(
                    StatusCode::CONFLICT,
                    "not_registered",
                    e.to_string(),
                ));
            }
            other => {
                return Err(ApiFailure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("unexpected result {other:?}"),
                ));
            }
        }
    }
    Ok(Json(out))
}

/// Query of `GET /agent/v1/placements`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementQuery {
    /// `conference/participant` of the last entry of the previous page.
    after: Option<String>,
}

/// `GET /agent/v1/placements`: what the cluster records on the calling edge.
pub async fn placements(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Query(q): Query<PlacementQuery>,
) -> Result<Json<PlacementPage>, ApiFailure> {
    let edge = require_edge(&s, &c)?;
    let after = match &q.after {
        None => None,
        Some(a) => {
            let bad = || ApiFailure::bad_request("after: expected conference/participant");
            let (c, p) = a.split_once('/').ok_or_else(bad)?;
            Some((
                ConferenceId::new(c).map_err(|_| bad())?,
                ParticipantId::new(p).map_err(|_| bad())?,
            ))
        }
    };
    let page = s.with_state(|st| {
        let list = st.placements_on(
            &edge,
            after.as_ref().map(|(c, p)| (c, p)),
            PLACEMENT_PAGE + 1,
        );
        let more = list.len() > PLACEMENT_PAGE;
        let placements: Vec<PlacementEntry> = list
            .into_iter()
            .take(PLACEMENT_PAGE)
            .map(|(c, p, r)| PlacementEntry {
                conference: c.clone(),
                participant: p.clone(),
                confirmed: r.confirmed,
            })
            .collect();
        let next = more
            .then(|| {
                placements
                    .last()
                    .map(|l| format!("{}/{}", l.conference, l.participant))
            })
            .flatten();
        PlacementPage { placements, next }
    });
    Ok(Json(page))
}

/// `POST /agent/v1/leave`: the calling edge shuts down.
pub async fn leave(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<LeaveResponse>, ApiFailure> {
    let edge = require_edge(&s, &c)?;
    let req: LeaveRequest = parse(&body)?;
    geomesh_core::agent::validate_boot_id(&req.boot_id)
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    let res = s
        .propose(vec![Op::Leave {
            edge: edge.clone(),
            boot_id: req.boot_id,
        }])
        .await
        .map_err(write_failure)?;
    match res.first() {
        Some(OpResult::EdgeChanged { .. }) => {
            tracing::info!(%edge, "edge is leaving: draining and migrating");
            Ok(Json(LeaveResponse { draining: true }))
        }
        _ => Err(not_registered(&edge)),
    }
}
