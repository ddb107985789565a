//! The cluster as placement sees it on this node: the topology's edges and
//! those registered at runtime from their own description, with membership
//! from the replicated state and load from the soft state.

use std::time::Instant;

use geomesh_core::{ConferenceId, EdgeId, RegionId, Topology};

use crate::soft::SoftState;
use crate::state::SelectorState;
use crate::strategy::{ConferenceEdge, EdgeIdx, EdgeStatus, RegionIdx};

/// One edge of the cluster: where it is and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownEdge {
    /// Edge id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// In this node's topology (else registered from its own description).
    pub in_topology: bool,
}

/// Every edge, in one fixed order: the topology's in file order, then the
/// edges registered from their own description, by id. Placement indexes
/// ([`EdgeIdx`]) refer to this order.
pub fn known_edges(topology: &Topology, state: &SelectorState) -> Vec<KnownEdge> {
    let mut out: Vec<KnownEdge> = topology
        .edges
        .iter()
        .map(|e| KnownEdge {
            id: e.id.clone(),
            region: e.region.clone(),
            capacity: e.capacity,
            in_topology: true,
        })
        .collect();
    out.extend(
        state
            .edges()
            .iter()
            .filter(|(id, _)| topology.edge(id).is_none())
            .map(|(id, r)| KnownEdge {
                id: id.clone(),
                region: r.region.clone(),
                capacity: r.capacity,
                in_topology: false,
            }),
    );
    out
}

/// Every known edge ([`known_edges`] order) as [`EdgeStatus`]; edges in
/// `exclude` count as unhealthy (the client could not use them).
pub fn edge_statuses(
    topology: &Topology,
    state: &SelectorState,
    soft: &SoftState,
    now: Instant,
    exclude: &[EdgeId],
) -> Vec<EdgeStatus> {
    known_edges(topology, state)
        .into_iter()
        .filter_map(|e| {
            // Runtime edges name a region of the topology (checked when they registered).
            let region = topology.regions.iter().position(|r| r.id == e.region)?;
            let rec = state.edge(&e.id);
            let hb = soft.get(&e.id);
            Some(EdgeStatus {
                region: RegionIdx(region as u32),
                capacity: e.capacity,
                registered: rec.is_some(),
                healthy: soft.is_healthy(&e.id, now) && !exclude.contains(&e.id),
                draining: rec.is_some_and(|r| r.draining),
                reported_participants: hb.map_or(0, |h| h.heartbeat.participants),
                reported_stress: hb.map_or(0.0, |h| h.heartbeat.stress),
                placed_since_heartbeat: hb.map_or(0, |h| h.placed_since),
                id: e.id,
            })
        })
        .collect()
}

/// The conference's current edges as placement input (indexes into `edges`).
pub fn conference_edges(
    edges: &[EdgeStatus],
    state: &SelectorState,
    conference: &ConferenceId,
) -> Vec<ConferenceEdge> {
    state
        .conference_edges(conference)
        .into_iter()
        .flatten()
        .filter_map(|(e, n)| {
            Some(ConferenceEdge {
                edge: EdgeIdx(edges.iter().position(|s| &s.id == e)? as u32),
                participants: *n,
            })
        })
        .collect()
}

/// Whether a participant placed on `edge` may stay there, on this node's
/// view: the edge is registered, not draining, and not known to be silent.
/// (An edge this node has not heard from yet since it started is not a
/// reason to move anyone: another node may hear it fine.)
pub fn keeps(state: &SelectorState, soft: &SoftState, edge: &EdgeId, now: Instant) -> bool {
    state.edge(edge).is_some_and(|r| !r.draining) && !soft.is_silent(edge, now)
}
