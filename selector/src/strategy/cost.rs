//! The placement objective: what putting a joiner on an edge costs the
//! conference, in milliseconds of one-way pair latency.
//!
//! A joiner's pair with a member on edge Em, through candidate edge E, is
//! `access(joiner, E)/2 + backbone(E, Em)/2 + access(Em, member)/2` plus
//! forwarding. The member's own access leg does not depend on E, so the
//! cost of E is
//!
//! ```text
//! cost(E) = access_weight × access_rtt(E)/2 × max(N, 1)      the joiner's leg, once per
//!                                                             present member (N of them)
//!         + Σ_m n_m × (backbone_rtt(E, Em)/2 + hop_ms)        members on other edges
//!         + relay_ms × new relay streams                      traffic between edges
//!         + stress_ms × estimated stress                      load (burst safety)
//! ```
//!
//! Affinity is the special case "a member's edge costs no backbone, no hop
//! and no new relay"; burst safety is the stress term counting placements
//! since the last heartbeat; the nearest edge is the case N = 0 (the first
//! participant's leg counts once: who comes next is unknown, and most
//! likely near the conference rather than near this joiner).
//! `access_weight` > 1 says a long access path hurts more than a backbone
//! path of the same RTT (loss and jitter on the public internet,
//! docs/SIMULATIONS.md, "Impairments").

use geomesh_geoip::haversine_km;

use super::{ClusterView, EdgeStatus, PlacementPolicy, PlacementRequest};

/// The conference as the objective sees it, precomputed per region so that
/// a candidate that does not host the conference costs two multiplications
/// and two additions, and one that does O(1) more.
pub(super) struct ConferenceCost {
    /// `access_weight / 2 × max(N, 1)`: the access leg's factor.
    access_factor: f64,
    /// Per region: Σ_m n_m × (backbone/2 + hop) for an edge of that region
    /// that hosts none of them, plus the relay of a new edge.
    rest: Vec<f64>,
    /// Usable conference edges (edge index, members), sorted by edge.
    hosts: Vec<(u32, f64)>,
    /// Relay cost of a new edge and of a host edge.
    relay_new: f64,
    relay_host: f64,
    stress_ms: f64,
    hop_ms: f64,
}

impl ConferenceCost {
    /// Precomputes the per-region sums. Conference edge indices must have
    /// been checked by the caller; hosts in unknown regions are skipped.
    pub(super) fn new(
        policy: &PlacementPolicy,
        cluster: ClusterView<'_>,
        request: &PlacementRequest<'_>,
    ) -> Self {
        let edges = cluster.edges;
        let mut hosts: Vec<(u32, f64)> = Vec::with_capacity(request.conference.len());
        for c in request.conference {
            let Some(e) = edges.get(c.edge.get()) else {
                continue;
            };
            // Members of a dead edge are about to move: they are no one's pair.
            if !(e.registered && e.healthy) || c.participants == 0 {
                continue;
            }
            match hosts.iter_mut().find(|h| h.0 == c.edge.0) {
                Some(h) => h.1 += f64::from(c.participants),
                None => hosts.push((c.edge.0, f64::from(c.participants))),
            }
        }
        hosts.sort_unstable_by_key(|h| h.0);
        // Members per region, so each region pair's backbone is computed once.
        let mut by_region: Vec<(usize, f64)> = Vec::with_capacity(hosts.len());
        let n = cluster.regions.len();
        for &(edge, members) in &hosts {
            let s = edges[edge as usize].region.get();
            // A bad region index is the caller's error to report (`place` does).
            if s >= n {
                continue;
            }
            match by_region.iter_mut().find(|x| x.0 == s) {
                Some(x) => x.1 += members,
                None => by_region.push((s, members)),
            }
        }
        let members: f64 = hosts.iter().map(|h| h.1).sum();
        let k = hosts.len() as f64;
        let relay_new = policy.relay_ms * (k + members);
        let mut rest = vec![relay_new; n];
        for &(s, m) in &by_region {
            for (r, sum) in rest.iter_mut().enumerate() {
                *sum += m * (backbone(policy, cluster, r, s) / 2.0 + policy.hop_ms);
            }
        }
        Self {
            access_factor: policy.access_weight / 2.0 * members.max(1.0),
            rest,
            hosts,
            relay_new,
            relay_host: policy.relay_ms * (k - 1.0).max(0.0),
            stress_ms: policy.stress_ms,
            hop_ms: policy.hop_ms,
        }
    }

    /// Edges hosting the conference (registered, healthy, with members).
    pub(super) fn hosting(&self) -> u32 {
        self.hosts.len() as u32
    }

    /// Whether edge `i` hosts the conference.
    pub(super) fn hosts(&self, i: usize) -> bool {
        self.host_members(i, &mut 0).is_some()
    }

    /// Members on edge `i` if it hosts the conference. `cursor` walks the
    /// sorted hosts: callers asking in increasing `i` pay O(1) per edge.
    #[inline]
    pub(super) fn host_members(&self, i: usize, cursor: &mut usize) -> Option<f64> {
        while let Some(h) = self.hosts.get(*cursor) {
            match (h.0 as usize).cmp(&i) {
                std::cmp::Ordering::Less => *cursor += 1,
                std::cmp::Ordering::Equal => return Some(h.1),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// The cost of putting the joiner on edge `e`, which hosts `here`
    /// members of the conference (`None`: a new edge), see the module doc.
    #[inline]
    pub(super) fn cost(
        &self,
        cluster: ClusterView<'_>,
        policy: &PlacementPolicy,
        e: &EdgeStatus,
        here: Option<f64>,
        access_rtt: f64,
        stress: f64,
    ) -> f64 {
        let r = e.region.get();
        let base = self.access_factor * access_rtt + self.stress_ms * stress;
        let Some(&rest) = self.rest.get(r) else {
            return base;
        };
        match here {
            None => base + rest,
            // Its own members are on this edge: no backbone, no hop, no new
            // relay for them (rest counted them at the intra-region RTT).
            Some(here) => {
                let intra = backbone(policy, cluster, r, r);
                base + (rest - self.relay_new - here * (intra / 2.0 + self.hop_ms)).max(0.0)
                    + self.relay_host
            }
        }
    }
}

/// Backbone RTT between regions `a` and `b`: the caller's matrix when it
/// has a finite entry, else the RTT model on their distance (0 km for one
/// region: two edges of one region).
fn backbone(policy: &PlacementPolicy, cluster: ClusterView<'_>, a: usize, b: usize) -> f64 {
    let n = cluster.regions.len();
    if cluster.region_rtt_ms.len() == n * n {
        let v = cluster.region_rtt_ms[a * n + b];
        if v.is_finite() && v >= 0.0 {
            return v;
        }
    }
    if a == b {
        return policy.rtt_model.rtt_ms(0.0);
    }
    policy.rtt_model.rtt_ms(haversine_km(
        cluster.regions[a].location,
        cluster.regions[b].location,
    ))
}
