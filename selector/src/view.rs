//! The cluster as placement sees it on this node: topology edges, with
//! membership from the replicated state and load from the soft state.

use std::time::Instant;

use geomesh_core::{ConferenceId, EdgeId, Topology};

use crate::soft::SoftState;
use crate::state::SelectorState;
use crate::strategy::{ConferenceEdge, EdgeIdx, EdgeStatus, RegionIdx};

/// Every topology edge, in topology order, as [`EdgeStatus`].
pub fn edge_statuses(
    topology: &Topology,
    state: &SelectorState,
    soft: &SoftState,
    now: Instant,
) -> Vec<EdgeStatus> {
    topology
        .edges
        .iter()
        .map(|e| {
            let region = topology
                .regions
                .iter()
                .position(|r| r.id == e.region)
                .expect("validated topology: edge region exists");
            let rec = state.edge(&e.id);
            let hb = soft.get(&e.id);
            EdgeStatus {
                id: e.id.clone(),
                region: RegionIdx(region as u32),
                capacity: e.capacity,
                registered: rec.is_some(),
                healthy: soft.is_healthy(&e.id, now),
                draining: rec.is_some_and(|r| r.draining),
                reported_participants: hb.map_or(0, |h| h.heartbeat.participants),
                reported_stress: hb.map_or(0.0, |h| h.heartbeat.stress),
                placed_since_heartbeat: hb.map_or(0, |h| h.placed_since),
            }
        })
        .collect()
}

/// Index of an edge in the topology (and so in [`edge_statuses`]).
pub fn edge_index(topology: &Topology, id: &EdgeId) -> Option<EdgeIdx> {
    topology
        .edges
        .iter()
        .position(|e| &e.id == id)
        .map(|i| EdgeIdx(i as u32))
}

/// The conference's current edges as placement input.
pub fn conference_edges(
    topology: &Topology,
    state: &SelectorState,
    conference: &ConferenceId,
) -> Vec<ConferenceEdge> {
    state
        .conference_edges(conference)
        .into_iter()
        .flatten()
        .filter_map(|(e, n)| {
            Some(ConferenceEdge {
                edge: edge_index(topology, e)?,
                participants: *n,
            })
        })
        .collect()
}

/// Whether an edge can take a participant now, on this node's view.
pub fn usable(state: &SelectorState, soft: &SoftState, edge: &EdgeId, now: Instant) -> bool {
    state.edge(edge).is_some_and(|r| !r.draining) && soft.is_healthy(edge, now)
}
