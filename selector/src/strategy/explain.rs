//! Why each edge won or lost a placement, for the selection log.
//!
//! [`explain`] runs after [`super::place`], off the placement's hot path:
//! it looks at every edge the way `place` did (the same admission rule and
//! the same client RTTs) and says, for each, what it was and why it was
//! not chosen.

use std::fmt;

use super::place::{ClientRtt, admit};
use super::{
    ClusterView, EdgeIdx, Exclusions, Placement, PlacementError, PlacementPolicy, PlacementRequest,
    Reason, RttSource,
};

/// What one edge was in a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The chosen edge.
    Chosen,
    /// Not registered (a topology edge that never started).
    Unregistered,
    /// Missed the health timeout, or the client could not reach it.
    Unhealthy,
    /// Draining.
    Draining,
    /// At or above the stress threshold (placements since its heartbeat counted).
    Overloaded,
    /// No RTT for it: no client location and no probe.
    NoRtt,
    /// Another region's edge cost the conference less.
    Farther,
    /// Same region as the choice, cost more (more stressed, or not the
    /// conference's).
    MoreStressed,
    /// An edge of the conference cost less.
    Affinity,
    /// The conference is at its edge cap: only its own edges were eligible.
    ConferenceCap,
}

impl Verdict {
    /// A stable label for the log and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Chosen => "chosen",
            Verdict::Unregistered => "unregistered",
            Verdict::Unhealthy => "unhealthy",
            Verdict::Draining => "draining",
            Verdict::Overloaded => "overloaded",
            Verdict::NoRtt => "no_rtt",
            Verdict::Farther => "farther",
            Verdict::MoreStressed => "more_stressed",
            Verdict::Affinity => "affinity",
            Verdict::ConferenceCap => "conference_cap",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One edge as the placement saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Considered {
    /// The edge.
    pub edge: EdgeIdx,
    /// The client's RTT to it, and where that came from.
    pub rtt: Option<(f64, RttSource)>,
    /// Its estimated stress (reported + placed since the heartbeat).
    pub stress: f64,
    /// What it was.
    pub verdict: Verdict,
}

/// Every edge of `cluster` with its verdict in `placement` (which `place`
/// returned for the same inputs), chosen first, then by RTT.
pub fn explain(
    policy: &PlacementPolicy,
    cluster: ClusterView<'_>,
    request: &PlacementRequest<'_>,
    placement: &Placement,
) -> Result<Vec<Considered>, PlacementError> {
    let rtts = ClientRtt::new(policy, cluster, request)?;
    let chosen_region = cluster.edge(placement.edge).map(|e| e.region);
    let conference_only = matches!(placement.reason, Reason::CapReached);
    let mut out: Vec<Considered> = cluster
        .edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let idx = EdgeIdx(i as u32);
            let stress = e.estimated_stress(policy.burst_safety);
            let rtt = rtts.get(i, e);
            let mut ex = Exclusions::default();
            let verdict = if idx == placement.edge {
                Verdict::Chosen
            } else if admit(policy, e, &mut ex).is_none() {
                excluded(&ex)
            } else if rtt.is_none() {
                Verdict::NoRtt
            } else if conference_only && !request.conference.iter().any(|c| c.edge == idx) {
                Verdict::ConferenceCap
            } else if placement.reason == Reason::AffinityReuse {
                Verdict::Affinity
            } else if Some(e.region) == chosen_region {
                Verdict::MoreStressed
            } else {
                Verdict::Farther
            };
            Considered {
                edge: idx,
                rtt,
                stress,
                verdict,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.verdict == Verdict::Chosen)
            .cmp(&(a.verdict == Verdict::Chosen))
            .then(
                a.rtt
                    .map_or(f64::INFINITY, |r| r.0)
                    .total_cmp(&b.rtt.map_or(f64::INFINITY, |r| r.0)),
            )
            .then(a.edge.cmp(&b.edge))
    });
    Ok(out)
}

/// The verdict of an edge `admit` turned away (it counted one reason).
fn excluded(ex: &Exclusions) -> Verdict {
    if ex.unregistered > 0 {
        Verdict::Unregistered
    } else if ex.unhealthy > 0 {
        Verdict::Unhealthy
    } else if ex.draining > 0 {
        Verdict::Draining
    } else {
        Verdict::Overloaded
    }
}

#[cfg(test)]
mod tests {
    use geomesh_core::{EdgeId, GeoPoint, RegionId};

    use super::*;
    use crate::strategy::{ConferenceEdge, EdgeStatus, RegionIdx, RegionSite, place};

    fn region(id: &str, lat: f64, lon: f64) -> RegionSite {
        RegionSite {
            id: RegionId::new(id).unwrap(),
            location: GeoPoint::new(lat, lon).unwrap(),
        }
    }

    fn edge(id: &str, region: u32) -> EdgeStatus {
        let mut e = EdgeStatus::new(EdgeId::new(id).unwrap(), RegionIdx(region), 100);
        e.registered = true;
        e.healthy = true;
        e
    }

    fn by_in(v: &[Considered], edges: &[EdgeStatus], id: &str) -> Verdict {
        v.iter()
            .find(|c| edges[c.edge.get()].id.as_str() == id)
            .unwrap()
            .verdict
    }

    #[test]
    fn every_edge_gets_the_reason_it_lost() {
        let regions = [region("eu", 50.1, 8.7), region("us", 38.9, -77.0)];
        let mut edges = vec![
            edge("fra-1", 0),
            edge("fra-2", 0),
            edge("iad-1", 1),
            edge("iad-2", 1),
            edge("iad-3", 1),
            edge("iad-4", 1),
            edge("fra-3", 0),
        ];
        edges[1].heartbeat(40, 0.4); // more stressed than fra-1
        edges[3].healthy = false;
        edges[4].draining = true;
        edges[5].heartbeat(95, 0.95);
        edges[6].registered = false;
        let cluster = ClusterView::new(&regions, &edges);
        let policy = PlacementPolicy::default();
        let paris = GeoPoint::new(48.86, 2.35).unwrap();
        let req = PlacementRequest {
            location: Some(paris),
            ..Default::default()
        };
        let p = place(&policy, cluster, &req).unwrap();
        let v = explain(&policy, cluster, &req, &p).unwrap();
        let by = |id: &str| by_in(&v, &edges, id);
        assert_eq!(v[0].verdict, Verdict::Chosen);
        assert_eq!(by("fra-1"), Verdict::Chosen);
        assert_eq!(by("fra-2"), Verdict::MoreStressed);
        assert_eq!(by("iad-1"), Verdict::Farther);
        assert_eq!(by("iad-2"), Verdict::Unhealthy);
        assert_eq!(by("iad-3"), Verdict::Draining);
        assert_eq!(by("iad-4"), Verdict::Overloaded);
        assert_eq!(by("fra-3"), Verdict::Unregistered);
        assert_eq!(v.len(), edges.len());
        assert!(
            v[0].rtt
                .is_some_and(|(r, s)| r > 0.0 && s == RttSource::GeoEstimate)
        );

        // A conference already on fra-2 (three members): reusing it costs
        // no backbone for their pairs, so it is cheapest; the others lost
        // to affinity.
        let conf = [ConferenceEdge {
            edge: EdgeIdx(1),
            participants: 3,
        }];
        let req = PlacementRequest {
            location: Some(paris),
            conference: &conf,
            ..Default::default()
        };
        let p = place(&policy, cluster, &req).unwrap();
        assert_eq!(p.reason, Reason::AffinityReuse);
        let v = explain(&policy, cluster, &req, &p).unwrap();
        assert_eq!(edges[v[0].edge.get()].id.as_str(), "fra-2");
        assert_eq!(by_in(&v, &edges, "fra-1"), Verdict::Affinity);
        assert_eq!(by_in(&v, &edges, "iad-1"), Verdict::Affinity);
        assert_eq!(by_in(&v, &edges, "iad-2"), Verdict::Unhealthy);
    }
}
