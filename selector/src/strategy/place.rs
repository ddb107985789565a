//! The placement decision.

use std::cmp::Ordering;

use super::cost::ConferenceCost;
use super::{
    ClusterView, EdgeIdx, EdgeStatus, Exclusions, Placement, PlacementError, PlacementPolicy,
    PlacementRequest, ProbeRtt, Reason, RttSource,
};

/// Chooses the edge for one joining participant. Pure: no clock, no I/O,
/// no allocation per edge; O(edges × conference edges + regions ×
/// conference edges + probes·log probes).
///
/// 1. **Candidates**: registered, healthy, not draining, estimated stress
///    (reported + placements since the heartbeat / capacity, see
///    [`EdgeStatus::estimated_stress`]) below the threshold.
/// 2. **Client RTT** per candidate's region: the best of the client's
///    probes to the region's edges, else the RTT model on the great-circle
///    distance to the region ([`ClientRtt::access`]).
/// 3. **Cost** per candidate: the predicted effect on the conference's pair
///    latencies, plus relay and load ([`cost`](super::cost) has the
///    formula); the cheapest wins (ties: less stressed, then lower index).
///    Affinity and burst safety are terms of that cost, not rules.
/// 4. **Cap**: a conference already on `max_edges_per_conference` healthy
///    edges gets its cheapest own candidate edge; only if none of them can
///    take participants does it grow beyond the cap ([`Reason::OverCap`]).
///
/// Fallbacks are the next candidates by cost, distinct from the choice.
/// Bad indices or probe values are errors, never panics.
pub fn place(
    policy: &PlacementPolicy,
    cluster: ClusterView<'_>,
    request: &PlacementRequest<'_>,
) -> Result<Placement, PlacementError> {
    let edges = cluster.edges;
    let rtts = ClientRtt::new(policy, cluster, request)?;
    for c in request.conference {
        if c.edge.get() >= edges.len() {
            return Err(PlacementError::BadEdgeIndex {
                what: "conference",
                edge: c.edge.0,
                edges: edges.len(),
            });
        }
    }
    let conf = ConferenceCost::new(policy, cluster, request);
    let capped = conf.hosting() >= policy.max_edges_per_conference;

    // One pass: exclusions, per-region nearest RTT, the cheapest overall and
    // among the conference's edges, top fallbacks.
    let mut ex = Exclusions {
        total: edges.len() as u32,
        ..Exclusions::default()
    };
    let mut regions = vec![(f64::INFINITY, 0u32); cluster.regions.len()];
    let keep = policy.max_fallbacks.saturating_add(1);
    let mut top: Vec<Ranked> = Vec::with_capacity(keep.min(edges.len()).saturating_add(1));
    let mut own_best: Option<Ranked> = None;
    let mut cursor = 0;
    for (i, e) in edges.iter().enumerate() {
        if e.region.get() >= cluster.regions.len() {
            return Err(PlacementError::BadRegionIndex {
                edge: i as u32,
                region: e.region.0,
                regions: cluster.regions.len(),
            });
        }
        let Some(stress) = admit(policy, e, &mut ex) else {
            continue;
        };
        let Some((rtt, _)) = rtts.access(i, e) else {
            ex.no_rtt += 1;
            continue;
        };
        let region = &mut regions[e.region.get()];
        region.0 = region.0.min(rtt);
        region.1 += 1;
        let here = conf.host_members(i, &mut cursor);
        let r = Ranked {
            cost: conf.cost(cluster, policy, e, here, rtt, stress),
            rtt,
            stress,
            edge: i as u32,
        };
        if here.is_some() && own_best.is_none_or(|b| r.better(&b)) {
            own_best = Some(r);
        }
        insert_top(&mut top, r, keep);
    }
    // The cheapest is the head of the ranking (it keeps at least one).
    let Some(&best) = top.first() else {
        return Err(PlacementError::NoCandidate(ex));
    };
    let best_rtt = regions.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);

    let (chosen, reason) = match own_best {
        Some(o) if capped && o.edge == best.edge => (o, Reason::AffinityReuse),
        Some(o) if capped => (o, Reason::CapReached),
        None if capped => (best, Reason::OverCap),
        _ if conf.hosts(best.edge as usize) => (best, Reason::AffinityReuse),
        _ => {
            let (min_rtt, count) = regions[edges[best.edge as usize].region.get()];
            if min_rtt > best_rtt {
                (best, Reason::ConferenceLatency)
            } else if count > 1 {
                (best, Reason::LeastStressedInRegion)
            } else {
                (best, Reason::Nearest)
            }
        }
    };

    let chosen_idx = chosen.edge as usize;
    // Unwrap-free: the chosen edge passed `rtts.access` above.
    let (rtt_ms, rtt_source) = rtts
        .access(chosen_idx, &edges[chosen_idx])
        .unwrap_or((chosen.rtt, RttSource::GeoEstimate));
    let fallbacks = top
        .iter()
        .filter(|r| r.edge != chosen.edge)
        .take(policy.max_fallbacks)
        .map(|r| EdgeIdx(r.edge))
        .collect();
    Ok(Placement {
        edge: EdgeIdx(chosen.edge),
        rtt_ms,
        rtt_source,
        best_rtt_ms: best_rtt,
        cost_ms: chosen.cost,
        reason,
        fallbacks,
    })
}

/// The edge's estimated stress if it is a candidate; otherwise counts why not.
#[inline]
pub(super) fn admit(policy: &PlacementPolicy, e: &EdgeStatus, ex: &mut Exclusions) -> Option<f64> {
    if !e.registered {
        ex.unregistered += 1;
        return None;
    }
    if !e.healthy {
        ex.unhealthy += 1;
        return None;
    }
    if e.draining {
        ex.draining += 1;
        return None;
    }
    let stress = e.estimated_stress(policy.burst_safety);
    // Anything but "below" (including NaN on either side) is overloaded.
    if stress.partial_cmp(&policy.stress_threshold) == Some(Ordering::Less) {
        Some(stress)
    } else {
        ex.overloaded += 1;
        None
    }
}

/// The client's RTT to each edge: its probe when it sent one, else the RTT
/// model on the distance to the edge's region (once per region).
///
/// The cost uses one access RTT per region ([`ClientRtt::access`]): the
/// best probe to any of its edges. A region's edges share its location, so
/// what their probes differ by is noise, not distance; costing each edge by
/// its own probe split small conferences between two edges of one region
/// whenever the second answered a few milliseconds faster.
pub(super) struct ClientRtt {
    probes: Vec<ProbeRtt>,
    region_rtt: Vec<f64>,
    /// Per region, the best probe to one of its edges (∞: none).
    region_probe: Vec<f64>,
}

impl ClientRtt {
    /// Checks the location and probes of `request` against `cluster`.
    pub(super) fn new(
        policy: &PlacementPolicy,
        cluster: ClusterView<'_>,
        request: &PlacementRequest<'_>,
    ) -> Result<Self, PlacementError> {
        if let Some(l) = request.location {
            l.validate()?;
        }
        let probes = sorted_probes(request.probes, cluster.edges.len())?;
        let region_rtt = match request.location {
            Some(l) => cluster
                .regions
                .iter()
                .map(|r| policy.rtt_model.rtt_between(l, r.location))
                .collect(),
            None => vec![f64::NAN; cluster.regions.len()],
        };
        let mut region_probe = vec![f64::INFINITY; cluster.regions.len()];
        for p in &probes {
            // Probes are checked against the edges; a bad region index is
            // reported by `place`.
            if let Some(best) = region_probe.get_mut(cluster.edges[p.edge.get()].region.get()) {
                *best = best.min(p.rtt_ms);
            }
        }
        Ok(Self {
            probes,
            region_rtt,
            region_probe,
        })
    }

    /// The access RTT the cost counts for edge `e`, and where it came
    /// from: the best probe to an edge of its region, else the RTT model to
    /// the region.
    #[inline]
    pub(super) fn access(&self, i: usize, e: &EdgeStatus) -> Option<(f64, RttSource)> {
        match self.region_probe.get(e.region.get()) {
            Some(&best) if best.is_finite() => Some((best, RttSource::Probe)),
            _ => self.get(i, e),
        }
    }

    /// The RTT to edge `i` and where it came from; `None` without either.
    #[inline]
    pub(super) fn get(&self, i: usize, e: &EdgeStatus) -> Option<(f64, RttSource)> {
        if let Ok(k) = self.probes.binary_search_by(|p| p.edge.get().cmp(&i)) {
            return Some((self.probes[k].rtt_ms, RttSource::Probe));
        }
        let r = *self.region_rtt.get(e.region.get())?;
        (!r.is_nan()).then_some((r, RttSource::GeoEstimate))
    }
}

/// Probes checked and sorted by edge index (first of duplicates kept).
fn sorted_probes(probes: &[ProbeRtt], edges: usize) -> Result<Vec<ProbeRtt>, PlacementError> {
    let mut v = Vec::with_capacity(probes.len());
    for p in probes {
        if p.edge.get() >= edges {
            return Err(PlacementError::BadEdgeIndex {
                what: "probe",
                edge: p.edge.0,
                edges,
            });
        }
        if !(p.rtt_ms.is_finite() && p.rtt_ms >= 0.0) {
            return Err(PlacementError::BadProbe {
                edge: p.edge.0,
                rtt_ms: p.rtt_ms,
            });
        }
        v.push(*p);
    }
    v.sort_by_key(|p| p.edge);
    v.dedup_by_key(|p| p.edge);
    Ok(v)
}

/// A candidate with its cost, RTT and stress.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    cost: f64,
    rtt: f64,
    stress: f64,
    edge: u32,
}

impl Ranked {
    /// Cheaper first, then less stressed, then lower index.
    #[inline]
    fn better(&self, o: &Self) -> bool {
        // Most comparisons are decided by the cost alone.
        if self.cost < o.cost {
            return true;
        }
        if self.cost > o.cost {
            return false;
        }
        self.cost
            .total_cmp(&o.cost)
            .then(self.stress.total_cmp(&o.stress))
            .then(self.edge.cmp(&o.edge))
            == Ordering::Less
    }
}

/// Keeps the `keep` cheapest, sorted.
#[inline]
fn insert_top(top: &mut Vec<Ranked>, r: Ranked, keep: usize) {
    if keep == 0 {
        return;
    }
    if top.len() == keep {
        // Full: most candidates lose to the current last and stop here.
        match top.last() {
            Some(last) if !r.better(last) => return,
            _ => {}
        }
        top.pop();
    }
    let at = top.partition_point(|t| t.better(&r));
    top.insert(at, r);
}
