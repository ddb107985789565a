//! The four strategies the simulator compares.
//!
//! `geomesh` is the selector's own [`place`] function, called as is with
//! the scenario's [`PlacementPolicy`]. The three baselines are the rules of
//! other systems, not geomesh's:
//!
//! - `single` — Jitsi's default (`SingleBridgeSelectionStrategy`): the
//!   conference's first participant gets the least loaded edge of their
//!   region (else the least loaded anywhere); everyone else joins that edge.
//! - `region` — Jicofo's `RegionBasedBridgeSelectionStrategy`: in order,
//!   a not-overloaded conference edge in the participant's region, then in
//!   the region's group; a not-overloaded edge in the region, then group; a
//!   conference edge in the region, then group (overloaded or not); any edge
//!   in the region, then group; a not-overloaded conference edge anywhere;
//!   the least loaded edge anywhere.
//! - `nearest` — everyone on the least loaded not-overloaded edge of their
//!   nearest region that has one (else the least loaded anywhere); no cap.
//!
//! A participant's region is their nearest region; "least loaded" and
//! "overloaded" use the stress of the last heartbeat only (the baselines
//! have no burst safety, as Jicofo did not), with the scenario's stress
//! threshold. Baselines refuse a join only when no edge is healthy.

use geomesh_core::GeoPoint;
use geomesh_selector::strategy::{
    ClusterView, ConferenceEdge, EdgeStatus, PlacementPolicy, PlacementRequest, Reason, RegionSite,
    place,
};

use crate::latency::LatencyModel;
use crate::scenario::StrategyKind;

/// What a strategy sees for one join.
pub struct Ask<'a> {
    /// Regions, as the selector sees them.
    pub regions: &'a [RegionSite],
    /// Edges, as the selector sees them (heartbeat load, health).
    pub edges: &'a [EdgeStatus],
    /// Region group number per region (regions without a group: their own).
    pub groups: &'a [u32],
    /// Latency tables (nearest regions per site).
    pub latency: &'a LatencyModel,
    /// The conference's current edges.
    pub conference: &'a [ConferenceEdge],
    /// The participant's site.
    pub site: u32,
    /// The participant's location.
    pub location: GeoPoint,
}

/// Chooses an edge, or `None` to refuse; the selector's reason for `geomesh`.
pub fn choose(
    kind: StrategyKind,
    policy: &PlacementPolicy,
    a: &Ask<'_>,
) -> Option<(usize, Option<Reason>)> {
    match kind {
        StrategyKind::Geomesh => {
            let p = place(
                policy,
                // Edges measure their octo RTTs: the selector knows the backbone.
                ClusterView {
                    regions: a.regions,
                    edges: a.edges,
                    region_rtt_ms: a.latency.region_rtt_matrix(),
                },
                &PlacementRequest {
                    location: Some(a.location),
                    probes: &[],
                    conference: a.conference,
                },
            )
            .ok()?;
            Some((p.edge.get(), Some(p.reason)))
        }
        StrategyKind::Single => single(a).map(|e| (e, None)),
        StrategyKind::Region => region(policy, a).map(|e| (e, None)),
        StrategyKind::Nearest => nearest(policy, a).map(|e| (e, None)),
    }
}

fn usable(e: &EdgeStatus) -> bool {
    e.registered && e.healthy && !e.draining
}

fn overloaded(p: &PlacementPolicy, e: &EdgeStatus) -> bool {
    e.reported_stress.partial_cmp(&p.stress_threshold) != Some(std::cmp::Ordering::Less)
}

/// The least loaded usable edge (by reported stress; ties: lower index)
/// among those `keep` accepts.
fn least_loaded(a: &Ask<'_>, keep: impl Fn(usize, &EdgeStatus) -> bool) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (i, e) in a.edges.iter().enumerate() {
        if !usable(e) || !keep(i, e) {
            continue;
        }
        if best.is_none_or(|(s, _)| e.reported_stress < s) {
            best = Some((e.reported_stress, i));
        }
    }
    best.map(|(_, i)| i)
}

fn in_conference(a: &Ask<'_>, i: usize) -> bool {
    a.conference.iter().any(|c| c.edge.get() == i)
}

fn home_region(a: &Ask<'_>) -> usize {
    a.latency.nearest_regions(a.site)[0] as usize
}

fn single(a: &Ask<'_>) -> Option<usize> {
    if let Some(c) = a.conference.first() {
        let e = &a.edges[c.edge.get()];
        // Jicofo refuses when the conference's bridge is not operational.
        return usable(e).then_some(c.edge.get());
    }
    let home = home_region(a);
    least_loaded(a, |_, e| e.region.get() == home).or_else(|| least_loaded(a, |_, _| true))
}

fn region(p: &PlacementPolicy, a: &Ask<'_>) -> Option<usize> {
    let home = home_region(a);
    let group = a.groups[home];
    let in_region = |e: &EdgeStatus| e.region.get() == home;
    let in_group = |e: &EdgeStatus| a.groups[e.region.get()] == group;
    let ok = |e: &EdgeStatus| !overloaded(p, e);
    least_loaded(a, |i, e| ok(e) && in_conference(a, i) && in_region(e))
        .or_else(|| least_loaded(a, |i, e| ok(e) && in_conference(a, i) && in_group(e)))
        .or_else(|| least_loaded(a, |_, e| ok(e) && in_region(e)))
        .or_else(|| least_loaded(a, |_, e| ok(e) && in_group(e)))
        .or_else(|| least_loaded(a, |i, e| in_conference(a, i) && in_region(e)))
        .or_else(|| least_loaded(a, |i, e| in_conference(a, i) && in_group(e)))
        .or_else(|| least_loaded(a, |_, e| in_region(e)))
        .or_else(|| least_loaded(a, |_, e| in_group(e)))
        .or_else(|| least_loaded(a, |i, e| ok(e) && in_conference(a, i)))
        .or_else(|| least_loaded(a, |_, _| true))
}

fn nearest(p: &PlacementPolicy, a: &Ask<'_>) -> Option<usize> {
    for &r in a.latency.nearest_regions(a.site) {
        let r = r as usize;
        if let Some(e) = least_loaded(a, |_, e| e.region.get() == r && !overloaded(p, e)) {
            return Some(e);
        }
    }
    least_loaded(a, |_, _| true)
}
