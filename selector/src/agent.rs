//! Handlers of the edge-agent API on the internal listener (bodies in
//! `geomesh_core::agent`; contract in `docs/PROTOCOL.md`).
//!
//! The edge's id always comes from its client certificate. Registration and
//! participant reports are replicated (Raft); heartbeats only update this
//! node's soft state.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use geomesh_core::EdgeId;
use geomesh_core::SelectorId;
use geomesh_core::agent::{
    Heartbeat, HeartbeatResponse, ParticipantReport, ParticipantReportResponse, RegisterRequest,
    RegisterResponse, SelectorEndpoint,
};

use crate::api_error::ApiFailure;
use crate::internal::{Caller, parse, require_edge};
use crate::metrics::Metrics;
use crate::node::Shared;
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

/// `POST /agent/v1/register`.
pub async fn register(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Json<RegisterResponse>, ApiFailure> {
    let edge = require_edge(&s, &c)?;
    let req: RegisterRequest = parse(&body)?;
    req.validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    // require_edge checked the edge is in the topology.
    let topo = s
        .cfg
        .topology
        .edge(&edge)
        .expect("edge in topology")
        .clone();
    let region = s
        .cfg
        .topology
        .region(&topo.region)
        .expect("validated topology: edge region exists");
    let op = Op::RegisterEdge {
        edge: edge.clone(),
        region: topo.region.clone(),
        location: region.location,
        capacity: topo.capacity,
        base_url: req.base_url.clone().unwrap_or_else(|| topo.base_url()),
        boot_id: req.boot_id.clone(),
        lease_ms: ms(s.cfg.edge_lease),
    };
    let res = s.propose(vec![op]).await.map_err(write_failure)?;
    let (restarted, draining) = match res.first() {
        Some(OpResult::Registered {
            restarted,
            draining,
            released,
        }) => {
            tracing::info!(%edge, restarted, released, boot_id = %req.boot_id, "edge registered");
            (*restarted, *draining)
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
    let membership = s.raft.metrics().borrow().membership_config.clone();
    let selectors = membership
        .membership()
        .nodes()
        .filter_map(|(_, n)| {
            Some(SelectorEndpoint {
                id: SelectorId::new(n.id.clone()).ok()?,
                url: format!("https://{}", n.raft),
            })
        })
        .collect();
    Ok(Json(RegisterResponse {
        edge,
        region: topo.region,
        draining,
        restarted,
        heartbeat_interval_ms: ms(s.cfg.topology.policy.heartbeat_interval),
        selectors,
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
    let edge = require_edge(s, c)?;
    let hb: Heartbeat = parse(body)?;
    hb.validate()
        .map_err(|e| ApiFailure::bad_request(e.to_string()))?;
    for (i, l) in hb.links.iter().enumerate() {
        if l.edge == edge || s.cfg.topology.edge(&l.edge).is_none() {
            return Err(ApiFailure::bad_request(format!(
                "links[{i}].edge: {} is not another edge of the topology",
                l.edge
            )));
        }
    }
    let (draining, conferences) = s.with_state(|st| match st.edge(&edge) {
        Some(r) if r.boot_id == hb.boot_id => Ok((r.draining, st.octo_peers(&edge))),
        _ => Err(not_registered(&edge)),
    })?;
    s.soft().heartbeat(&edge, hb, Instant::now());
    Ok(HeartbeatResponse {
        draining,
        conferences,
        heartbeat_interval_ms: ms(s.cfg.topology.policy.heartbeat_interval),
    })
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
    };
    if ops.is_empty() {
        return Ok(Json(out));
    }
    let results = s.propose(ops).await.map_err(write_failure)?;
    for (i, r) in results.iter().enumerate() {
        match r {
            OpResult::Reported { recorded, ignored } if i == 0 && has_joined => {
                out.joined = *recorded;
            }
            OpResult::Reported { recorded, ignored } => {
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
