//! What placement reads: the cluster as the caller sees it, and the join.
//!
//! Edges and regions are addressed by index into the slices the caller
//! passes ([`EdgeIdx`], [`RegionIdx`]), so a decision over 1,000 edges does
//! no map lookups and no allocation per edge. The caller keeps these slices
//! up to date (membership from the replicated state, load from heartbeats)
//! and passes them by reference.

use geomesh_core::{EdgeId, GeoPoint, RegionId, api::Probe};

/// Index of a region in [`ClusterView::regions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionIdx(pub u32);

/// Index of an edge in [`ClusterView::edges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeIdx(pub u32);

impl RegionIdx {
    /// As a slice index.
    #[inline]
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl EdgeIdx {
    /// As a slice index.
    #[inline]
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// A region: where its edges are.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSite {
    /// Region id.
    pub id: RegionId,
    /// Its datacenter's location (every edge in it is estimated from here).
    pub location: GeoPoint,
}

/// One edge as placement sees it: replicated membership plus the soft state
/// of its last heartbeat and the placements made since.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeStatus {
    /// Edge id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionIdx,
    /// Participants it is sized for (stress = participants / capacity).
    pub capacity: u32,
    /// Registered in the replicated state.
    pub registered: bool,
    /// Heartbeating (not missed the health timeout).
    pub healthy: bool,
    /// Draining: keeps its participants, takes no new ones.
    pub draining: bool,
    /// Participants in its last heartbeat.
    pub reported_participants: u32,
    /// Stress in its last heartbeat (load / capacity, ≥ 0).
    pub reported_stress: f64,
    /// Participants placed on it since that heartbeat (burst safety).
    pub placed_since_heartbeat: u32,
}

impl EdgeStatus {
    /// A registered, healthy, idle edge.
    pub fn new(id: EdgeId, region: RegionIdx, capacity: u32) -> Self {
        Self {
            id,
            region,
            capacity,
            registered: true,
            healthy: true,
            draining: false,
            reported_participants: 0,
            reported_stress: 0.0,
            placed_since_heartbeat: 0,
        }
    }

    /// Takes a heartbeat: the reported load replaces the estimate, and the
    /// count of placements since the last heartbeat starts again.
    pub fn heartbeat(&mut self, participants: u32, stress: f64) {
        self.reported_participants = participants;
        self.reported_stress = stress;
        self.placed_since_heartbeat = 0;
    }

    /// Counts one placement made on this edge since its last heartbeat.
    pub fn record_placement(&mut self) {
        self.placed_since_heartbeat = self.placed_since_heartbeat.saturating_add(1);
    }

    /// Reported stress plus, with burst safety, the placements since the
    /// heartbeat over capacity. An edge of capacity 0 is infinitely stressed.
    #[inline]
    pub fn estimated_stress(&self, burst_safety: bool) -> f64 {
        if self.capacity == 0 {
            return f64::INFINITY;
        }
        let reported = if self.reported_stress.is_nan() {
            f64::INFINITY
        } else {
            self.reported_stress
        };
        if burst_safety {
            reported + self.placed_since_heartbeat as f64 / self.capacity as f64
        } else {
            reported
        }
    }

    /// Reported participants plus placements since the heartbeat.
    pub fn estimated_participants(&self) -> u32 {
        self.reported_participants
            .saturating_add(self.placed_since_heartbeat)
    }
}

/// The cluster placement chooses from.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    /// Every region edges refer to.
    pub regions: &'a [RegionSite],
    /// Every edge, in any state (placement filters).
    pub edges: &'a [EdgeStatus],
    /// Measured RTT between regions, ms, row-major `regions × regions`
    /// (the diagonal: two edges of one region). Empty, or a non-finite
    /// entry: estimated with the policy's RTT model from the regions'
    /// locations.
    pub region_rtt_ms: &'a [f64],
}

impl<'a> ClusterView<'a> {
    /// A view without measured inter-region RTTs (all estimated).
    pub fn new(regions: &'a [RegionSite], edges: &'a [EdgeStatus]) -> Self {
        Self {
            regions,
            edges,
            region_rtt_ms: &[],
        }
    }

    /// The edge with this id (linear scan; callers with many edges keep
    /// their own id → index map).
    pub fn edge_index(&self, id: &EdgeId) -> Option<EdgeIdx> {
        self.edges
            .iter()
            .position(|e| &e.id == id)
            .map(|i| EdgeIdx(i as u32))
    }

    /// The client's probes (from a [`geomesh_core::api::JoinRequest`]) for
    /// edges in this view; probes of unknown edges are dropped (an edge may
    /// have left since the client fetched its probe targets).
    pub fn resolve_probes(&self, probes: &[Probe]) -> Vec<ProbeRtt> {
        probes
            .iter()
            .filter_map(|p| {
                self.edge_index(&p.edge).map(|edge| ProbeRtt {
                    edge,
                    rtt_ms: p.rtt_ms,
                })
            })
            .collect()
    }

    /// The edge at an index, if in range.
    pub fn edge(&self, i: EdgeIdx) -> Option<&'a EdgeStatus> {
        self.edges.get(i.get())
    }

    /// The region of an edge, if both indices are in range.
    pub fn region_of(&self, i: EdgeIdx) -> Option<&'a RegionSite> {
        self.regions.get(self.edge(i)?.region.get())
    }
}

/// A client-measured RTT to one edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeRtt {
    /// The edge probed.
    pub edge: EdgeIdx,
    /// Measured round trip, ms (finite, ≥ 0).
    pub rtt_ms: f64,
}

/// An edge already hosting the conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConferenceEdge {
    /// The edge.
    pub edge: EdgeIdx,
    /// The conference's participants on it.
    pub participants: u32,
}

/// The join being placed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlacementRequest<'a> {
    /// Where the client is (location hint, else GeoIP, else the default
    /// location); `None` when nothing knows, in which case only probed edges
    /// can be ranked.
    pub location: Option<GeoPoint>,
    /// Client-measured RTTs; they win over the geo estimate for their edge.
    pub probes: &'a [ProbeRtt],
    /// The conference's current edges (empty for its first participant).
    pub conference: &'a [ConferenceEdge],
}
