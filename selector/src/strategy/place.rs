//! The placement decision.

use std::cmp::Ordering;

use super::{
    ClusterView, EdgeIdx, EdgeStatus, Exclusions, Placement, PlacementError, PlacementPolicy,
    PlacementRequest, ProbeRtt, Reason, RttSource,
};

/// Chooses the edge for one joining participant. Pure: no clock, no I/O,
/// no allocation per edge; O(edges + regions + probes·log probes).
///
/// 1. **Candidates**: registered, healthy, not draining, estimated stress
///    (reported + placements since the heartbeat / capacity, see
///    [`EdgeStatus::estimated_stress`]) below the threshold.
/// 2. **Client RTT** per candidate: the client's probe when it sent one,
///    else the RTT model on the great-circle distance to the edge's region.
/// 3. **Best**: the region with the lowest candidate RTT, and in it the
///    least stressed candidate.
/// 4. **Affinity**: an edge already in the conference whose RTT is within
///    `affinity_margin_ms` of the best is reused.
/// 5. **Cap**: a conference already on `max_edges_per_conference` healthy
///    edges gets its best own candidate edge; only if none of them can take
///    participants does it grow beyond the cap ([`Reason::OverCap`]).
///
/// Fallbacks are the next candidates by (RTT, stress), distinct from the
/// choice. Bad indices or probe values are errors, never panics.
pub fn place(
    policy: &PlacementPolicy,
    cluster: ClusterView<'_>,
    request: &PlacementRequest<'_>,
) -> Result<Placement, PlacementError> {
    let edges = cluster.edges;
    if let Some(l) = request.location {
        l.validate()?;
    }
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
    let rtt_of = |i: usize, e: &EdgeStatus| rtts.get(i, e);

    // One pass: exclusions, per-region best, top fallbacks.
    let mut ex = Exclusions {
        total: edges.len() as u32,
        ..Exclusions::default()
    };
    let mut regions = vec![RegionBest::default(); cluster.regions.len()];
    let keep = policy.max_fallbacks.saturating_add(1);
    let mut top: Vec<Ranked> = Vec::with_capacity(keep + 1);
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
        let Some((rtt, _)) = rtt_of(i, e) else {
            ex.no_rtt += 1;
            continue;
        };
        let ranked = Ranked {
            rtt,
            stress,
            edge: i as u32,
        };
        regions[e.region.get()].offer(ranked);
        insert_top(&mut top, ranked, keep);
    }

    // The best region (lowest candidate RTT), then its least stressed edge.
    let Some(best_region) = regions
        .iter()
        .filter(|r| r.count > 0)
        .min_by(|a, b| a.min_rtt.total_cmp(&b.min_rtt).then(a.pick.cmp(&b.pick)))
    else {
        return Err(PlacementError::NoCandidate(ex));
    };
    let best_rtt = best_region.min_rtt;
    let best: Ranked = *best_region.pick;
    let best_reason = if best_region.count > 1 {
        Reason::LeastStressedInRegion
    } else {
        Reason::Nearest
    };

    // The conference's own edges: how many host it, and its best candidate.
    let mut hosting = 0u32;
    let mut own_best: Option<Ranked> = None;
    for (k, c) in request.conference.iter().enumerate() {
        if request.conference[..k].iter().any(|d| d.edge == c.edge) {
            continue;
        }
        let e = &edges[c.edge.get()];
        if e.registered && e.healthy && c.participants > 0 {
            hosting += 1;
        }
        let mut scratch = Exclusions::default();
        let (Some(stress), Some((rtt, _))) =
            (admit(policy, e, &mut scratch), rtt_of(c.edge.get(), e))
        else {
            continue;
        };
        let r = Ranked {
            rtt,
            stress,
            edge: c.edge.0,
        };
        if own_best.is_none_or(|o| r.cmp_rtt_first(&o) == Ordering::Less) {
            own_best = Some(r);
        }
    }

    let (chosen, reason) = match own_best {
        Some(o) if o.rtt <= best_rtt + policy.affinity_margin_ms => (o, Reason::AffinityReuse),
        Some(o) if hosting >= policy.max_edges_per_conference => (o, Reason::CapReached),
        None if hosting >= policy.max_edges_per_conference => (best, Reason::OverCap),
        _ => (best, best_reason),
    };

    let chosen_idx = chosen.edge as usize;
    // Unwrap-free: the chosen edge passed `rtt_of` above.
    let (rtt_ms, rtt_source) =
        rtt_of(chosen_idx, &edges[chosen_idx]).unwrap_or((chosen.rtt, RttSource::GeoEstimate));
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
pub(super) struct ClientRtt {
    probes: Vec<ProbeRtt>,
    region_rtt: Vec<f64>,
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
        Ok(Self { probes, region_rtt })
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

/// A candidate with its RTT and stress.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked {
    rtt: f64,
    stress: f64,
    edge: u32,
}

impl Ranked {
    /// Lower RTT first, then lower stress, then lower index.
    fn cmp_rtt_first(&self, o: &Self) -> Ordering {
        self.rtt
            .total_cmp(&o.rtt)
            .then(self.stress.total_cmp(&o.stress))
            .then(self.edge.cmp(&o.edge))
    }

    /// Lower stress first, then lower RTT, then lower index.
    fn cmp_stress_first(&self, o: &Self) -> Ordering {
        self.stress
            .total_cmp(&o.stress)
            .then(self.rtt.total_cmp(&o.rtt))
            .then(self.edge.cmp(&o.edge))
    }
}

impl Default for Ranked {
    fn default() -> Self {
        Self {
            rtt: f64::INFINITY,
            stress: f64::INFINITY,
            edge: u32::MAX,
        }
    }
}

/// Per region: the lowest candidate RTT and the least stressed candidate.
#[derive(Debug, Clone, Copy, Default)]
struct RegionBest {
    min_rtt: f64,
    pick: Pick,
    count: u32,
}

/// The region's least stressed candidate, ordered for tie-breaks between
/// regions of equal RTT (less stressed first).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Pick(Ranked);

impl Eq for Pick {}

impl PartialOrd for Pick {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Pick {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp_stress_first(&o.0)
    }
}

impl std::ops::Deref for Pick {
    type Target = Ranked;
    fn deref(&self) -> &Ranked {
        &self.0
    }
}

impl RegionBest {
    #[inline]
    fn offer(&mut self, r: Ranked) {
        if self.count == 0 {
            *self = RegionBest {
                min_rtt: r.rtt,
                pick: Pick(r),
                count: 1,
            };
            return;
        }
        self.count += 1;
        if r.rtt < self.min_rtt {
            self.min_rtt = r.rtt;
        }
        if r.cmp_stress_first(&self.pick) == Ordering::Less {
            self.pick = Pick(r);
        }
    }
}

/// Keeps the `keep` best by RTT, sorted.
#[inline]
fn insert_top(top: &mut Vec<Ranked>, r: Ranked, keep: usize) {
    if keep == 0 {
        return;
    }
    if top.len() == keep {
        // Full: most candidates lose to the current last and stop here.
        match top.last() {
            Some(last) if r.cmp_rtt_first(last) != Ordering::Less => return,
            _ => {}
        }
        top.pop();
    }
    let at = top.partition_point(|t| t.cmp_rtt_first(&r) == Ordering::Less);
    top.insert(at, r);
}
