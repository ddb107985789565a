//! The internal listener (the topology's `raft` address): HTTPS with mutual
//! TLS. A client without a certificate from the cluster CA fails the
//! handshake; the peer's role and id come from its certificate's URI SAN.
//!
//! - `/raft/v1/*`: selector certificates only;
//! - `/admin/v1/*`: selector or operator certificates;
//! - `/agent/v1/*`: edge certificates whose id is an edge of the topology
//!   or a registered one (`register` also takes an edge that describes
//!   itself: one added at runtime).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use geomesh_core::credentials::Role;
use geomesh_core::{EdgeId, SelectorId};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api_error::ApiFailure;
use crate::metrics::Metrics;
use crate::node::{RaftStatus, Shared, init_cluster};
use crate::raft::{NodeId, SelectorNode, TypeConfig, node_id, paths};
use crate::state::Op;
use crate::tls::{Peer, peer_identity};
use crate::writer::{WRITE_PATH, WriteError};

/// Internal admin paths (selector certificates only).
pub mod admin_paths {
    /// `POST {}` → [`super::AdminResult`]: initialize membership from the topology.
    pub const INIT: &str = "/admin/v1/init";
    /// `POST` [`super::NodeRequest`] → [`super::AdminResult`]: add a voter.
    pub const ADD_NODE: &str = "/admin/v1/add-node";
    /// `POST` [`super::RemoveRequest`] → [`super::AdminResult`]: remove a member.
    pub const REMOVE_NODE: &str = "/admin/v1/remove-node";
    /// `GET` → `RaftStatus`.
    pub const STATUS: &str = "/admin/v1/status";
    /// `POST` [`super::RemoveEdgeRequest`] → [`super::AdminResult`]: remove an edge.
    pub const REMOVE_EDGE: &str = "/admin/v1/remove-edge";
}

/// Remove-edge body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveEdgeRequest {
    /// The edge id.
    pub id: EdgeId,
}

/// Add-node body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// The selector id.
    pub id: SelectorId,
    /// Its internal (`raft`) address.
    pub raft: std::net::SocketAddr,
    /// Its public API address.
    pub api: std::net::SocketAddr,
    /// How long it may take to catch up as a learner before the change is
    /// rolled back (default [`ADD_NODE_TIMEOUT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// How long a new selector may take to catch up before add-node gives up.
pub const ADD_NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// Remove-node body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// The selector id.
    pub id: SelectorId,
}

/// Answer of the admin endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminResult {
    /// What happened.
    pub message: String,
    /// Voters afterwards.
    pub voters: Vec<String>,
}

/// Who called, from the TLS session.
#[derive(Clone, Debug)]
pub struct Caller(pub Option<Peer>);

/// Serves the internal listener until the task is aborted.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let acceptor = TlsAcceptor::from(shared.tls.server.clone());
    let router = router(shared.clone());
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "internal accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    shared.metrics.tls_handshake_failures.inc();
                    tracing::debug!(%remote, error = %e, "internal TLS handshake failed");
                    return;
                }
                Err(_) => {
                    shared.metrics.tls_handshake_failures.inc();
                    return;
                }
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(peer_identity);
            let svc = TowerToHyperService::new(router.layer(Extension(Caller(peer))));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            let mut stop = shared.stop.clone();
            drop(shared);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
}

/// The internal API's routes; the caller's identity comes in as a [`Caller`] extension.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(WRITE_PATH, post(write))
        .route(admin_paths::INIT, post(admin_init))
        .route(admin_paths::ADD_NODE, post(admin_add))
        .route(admin_paths::REMOVE_NODE, post(admin_remove))
        .route(admin_paths::STATUS, get(admin_status))
        .route(admin_paths::REMOVE_EDGE, post(admin_remove_edge))
        .route(
            geomesh_core::agent::REGISTER_PATH,
            post(crate::agent::register),
        )
        .route(
            geomesh_core::agent::HEARTBEAT_PATH,
            post(crate::agent::heartbeat),
        )
        .route(
            geomesh_core::agent::PARTICIPANTS_PATH,
            post(crate::agent::participants),
        )
        .route(
            geomesh_core::agent::PLACEMENTS_PATH,
            get(crate::agent::placements),
        )
        .route(geomesh_core::agent::LEAVE_PATH, post(crate::agent::leave))
        .route(geomesh_core::agent::EDGES_PATH, get(crate::agent::edges))
        .route(
            geomesh_core::agent::RECORDER_PATH,
            post(crate::recording::recorder_heartbeat),
        )
        .fallback(|| async { ApiFailure::not_found("no such internal endpoint") })
        // Raft moves whole batches and snapshot chunks (JSON of up to
        // `SNAPSHOT_CHUNK` bytes, ~4× that on the wire); agent bodies are
        // bounded by their own rules, well below this.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_INTERNAL_BODY))
        .with_state(shared)
}

/// Largest internal request body: a snapshot chunk or an append of
/// `max_payload_entries` full batches.
pub const MAX_INTERNAL_BODY: usize = 256 << 20;

fn refuse(m: &Metrics, reason: &str, message: String) -> ApiFailure {
    Metrics::reason(&m.internal_refused, reason);
    ApiFailure::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Only selector certificates naming a selector of the topology or a
/// current Raft member.
pub fn require_selector(shared: &Shared, caller: &Caller) -> Result<(), ApiFailure> {
    match &caller.0 {
        Some(Peer {
            role: Role::Selector,
            id,
        }) => {
            let in_topology = SelectorId::new(id.clone())
                .is_ok_and(|s| shared.cfg.topology.selector(&s).is_some());
            let member = || {
                shared
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .nodes()
                    .any(|(_, n)| &n.id == id)
            };
            if in_topology || member() {
                Ok(())
            } else {
                Err(refuse(
                    &shared.metrics,
                    "unknown_selector",
                    format!("selector {id} is neither in the topology nor a member"),
                ))
            }
        }
        Some(p) => Err(refuse(
            &shared.metrics,
            "wrong_role",
            format!(
                "{} {} may not call selector endpoints",
                p.role.as_str(),
                p.id
            ),
        )),
        None => Err(refuse(
            &shared.metrics,
            "no_identity",
            "certificate carries no geomesh identity".into(),
        )),
    }
}

/// Selector certificates (as [`require_selector`]) or operator ones.
pub fn require_admin(shared: &Shared, caller: &Caller) -> Result<(), ApiFailure> {
    match &caller.0 {
        Some(Peer {
            role: Role::Operator,
            ..
        }) => Ok(()),
        _ => require_selector(shared, caller),
    }
}

/// Only edge certificates naming an edge of the topology or a registered
/// one; returns its id.
pub fn require_edge(shared: &Shared, caller: &Caller) -> Result<EdgeId, ApiFailure> {
    let edge = edge_identity(shared, caller)?;
    if shared.cfg.topology.edge(&edge).is_some() || shared.with_state(|st| st.edge(&edge).is_some())
    {
        Ok(edge)
    } else {
        Err(refuse(
            &shared.metrics,
            "unknown_edge",
            format!("edge {edge} is neither in the topology nor registered"),
        ))
    }
}

/// Any edge certificate of the cluster CA; returns its id.
pub fn edge_identity(shared: &Shared, caller: &Caller) -> Result<EdgeId, ApiFailure> {
    match &caller.0 {
        Some(Peer {
            role: Role::Edge,
            id,
        }) => EdgeId::new(id.clone()).map_err(|_| {
            refuse(
                &shared.metrics,
                "unknown_edge",
                format!("{id:?} is not an edge id"),
            )
        }),
        Some(p) => Err(refuse(
            &shared.metrics,
            "wrong_role",
            format!("{} {} may not call edge endpoints", p.role.as_str(), p.id),
        )),
        None => Err(refuse(
            &shared.metrics,
            "no_identity",
            "certificate carries no geomesh identity".into(),
        )),
    }
}

/// Parses a strict JSON body into a typed value or a 400.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiFailure> {
    serde_json::from_slice(body).map_err(|e| ApiFailure::bad_request(format!("body: {e}")))
}

fn json<T: Serialize>(v: &T) -> Response {
    axum::Json(v).into_response()
}

async fn append(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_selector(&s, &c)?;
    let rpc: AppendEntriesRequest<TypeConfig> = parse(&body)?;
    Ok(json(&s.raft.append_entries(rpc).await))
}

async fn vote(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_selector(&s, &c)?;
    let rpc: VoteRequest<NodeId> = parse(&body)?;
    Ok(json(&s.raft.vote(rpc).await))
}

async fn snapshot(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_selector(&s, &c)?;
    let rpc: InstallSnapshotRequest<TypeConfig> = parse(&body)?;
    Ok(json(&s.raft.install_snapshot(rpc).await))
}

async fn write(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_selector(&s, &c)?;
    let ops: Vec<Op> = parse(&body)?;
    match s.commit_forwarded(ops).await {
        Ok(results) => Ok(json(&results)),
        Err(WriteError::NotLeader { leader }) => Err(ApiFailure::new(
            StatusCode::MISDIRECTED_REQUEST,
            "not_leader",
            format!("not the leader; leader is {leader:?}"),
        )),
        Err(e) => Err(ApiFailure::unavailable(e.to_string())),
    }
}

fn voters(status: &RaftStatus) -> Vec<String> {
    status.voters.clone()
}

async fn admin_init(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
) -> Result<Response, ApiFailure> {
    require_admin(&s, &c)?;
    let message = match init_cluster(&s).await {
        Ok(true) => "initialized the membership from the topology".to_string(),
        Ok(false) => "already initialized".to_string(),
        Err(e) => return Err(ApiFailure::unavailable(e)),
    };
    Ok(json(&AdminResult {
        message,
        voters: voters(&s.raft_status()),
    }))
}

async fn admin_add(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_admin(&s, &c)?;
    let req: NodeRequest = parse(&body)?;
    let id = node_id(&req.id);
    let node = SelectorNode {
        id: req.id.to_string(),
        raft: req.raft.to_string(),
        api: req.api.to_string(),
    };
    let fail = |e: String| ApiFailure::new(StatusCode::CONFLICT, "membership", e);
    let timeout = req
        .timeout_ms
        .map_or(ADD_NODE_TIMEOUT, Duration::from_millis)
        .min(Duration::from_secs(3600));
    // A learner first, then a voter once it holds the log as of now: a node
    // that cannot catch up (unreachable, wrong certificate) must not stay a
    // learner the leader replicates to for ever.
    let target = s.raft.metrics().borrow().last_log_index;
    s.raft
        .add_learner(id, node, false)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let caught_up = s
        .raft
        .wait(Some(timeout))
        .metrics(
            |m| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).copied().flatten())
                    .map(|l| l.index);
                matched >= target
            },
            "the new node caught up",
        )
        .await;
    if caught_up.is_err() {
        // Back to the membership as it was: drop the learner.
        let rollback = s
            .raft
            .change_membership(
                openraft::ChangeMembers::RemoveNodes([id].into_iter().collect()),
                false,
            )
            .await;
        tracing::warn!(node = %req.id, ?timeout, rolled_back = rollback.is_ok(), "add-node timed out");
        return Err(ApiFailure::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "{} did not catch up within {} s (is it running, reachable at {}, with this cluster's certificates?); \
                 it was not added",
                req.id,
                timeout.as_secs(),
                req.raft
            ),
        ));
    }
    let mut ids: std::collections::BTreeSet<NodeId> = s
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    ids.insert(id);
    s.raft
        .change_membership(ids, false)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(json(&AdminResult {
        message: format!("added {} as a voter", req.id),
        voters: voters(&s.raft_status()),
    }))
}

async fn admin_remove(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_admin(&s, &c)?;
    let req: RemoveRequest = parse(&body)?;
    let id = node_id(&req.id);
    let ids: std::collections::BTreeSet<NodeId> = s
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .filter(|v| *v != id)
        .collect();
    if ids.is_empty() {
        return Err(ApiFailure::bad_request("cannot remove the last voter"));
    }
    s.raft
        .change_membership(ids, false)
        .await
        .map_err(|e| ApiFailure::new(StatusCode::CONFLICT, "membership", e.to_string()))?;
    Ok(json(&AdminResult {
        message: format!("removed {}", req.id),
        voters: voters(&s.raft_status()),
    }))
}

async fn admin_status(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
) -> Result<Response, ApiFailure> {
    require_admin(&s, &c)?;
    Ok(json(&s.raft_status()))
}

async fn admin_remove_edge(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiFailure> {
    require_admin(&s, &c)?;
    let req: RemoveEdgeRequest = parse(&body)?;
    let res = s
        .propose(vec![Op::RemoveEdge {
            edge: req.id.clone(),
        }])
        .await
        .map_err(|e| ApiFailure::unavailable(e.to_string()))?;
    match res.first() {
        Some(crate::state::OpResult::EdgeChanged { released }) => {
            tracing::info!(edge = %req.id, released, "edge removed");
            Ok(json(&AdminResult {
                message: format!("removed edge {} ({released} participants released)", req.id),
                voters: voters(&s.raft_status()),
            }))
        }
        _ => Err(ApiFailure::new(
            StatusCode::NOT_FOUND,
            "unknown_edge",
            format!("edge {} is not registered", req.id),
        )),
    }
}
