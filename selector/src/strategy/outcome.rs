//! What placement decides, and why.

use std::fmt;

use super::EdgeIdx;

/// Where the client RTT behind a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RttSource {
    /// The client measured it (`probes` in the join request).
    Probe,
    /// Estimated from great-circle distance with the RTT model.
    GeoEstimate,
}

impl RttSource {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RttSource::Probe => "probe",
            RttSource::GeoEstimate => "geo_estimate",
        }
    }
}

/// Why this edge was chosen. Callers log it in the selection log line and
/// count it in metrics ([`Reason::as_str`] is the label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The cheapest candidate is in the client's lowest-RTT region, which
    /// had one candidate.
    Nearest,
    /// The cheapest candidate is in the client's lowest-RTT region, which
    /// had several (the stress term chose among them).
    LeastStressedInRegion,
    /// An edge already in the conference was the cheapest for the conference.
    AffinityReuse,
    /// An edge that is not the client's nearest, nor yet the conference's,
    /// but lowers the conference's pair latencies most (e.g. next to the
    /// members' edges).
    ConferenceLatency,
    /// The conference is at its edge cap: the best of its own edges.
    CapReached,
    /// The conference is at its edge cap but none of its edges can take
    /// participants (unhealthy, draining or overloaded): a new edge beyond
    /// the cap rather than a refused join.
    OverCap,
}

impl Reason {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nearest => "nearest",
            Reason::LeastStressedInRegion => "least_stressed_in_region",
            Reason::AffinityReuse => "affinity_reuse",
            Reason::ConferenceLatency => "conference_latency",
            Reason::CapReached => "cap_reached",
            Reason::OverCap => "over_cap",
        }
    }

    /// Every reason, for pre-registering metric labels.
    pub const ALL: [Reason; 6] = [
        Reason::Nearest,
        Reason::LeastStressedInRegion,
        Reason::AffinityReuse,
        Reason::ConferenceLatency,
        Reason::CapReached,
        Reason::OverCap,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RttSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A placement decision.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Placement {
    /// The chosen edge.
    pub edge: EdgeIdx,
    /// The client's RTT to it (measured or estimated), ms.
    pub rtt_ms: f64,
    /// Where that RTT came from.
    pub rtt_source: RttSource,
    /// The best candidate's RTT, ms (`rtt_ms - best_rtt_ms` is what
    /// the conference's choice or the cap cost this client).
    pub best_rtt_ms: f64,
    /// The objective's value for the chosen edge, ms of predicted pair
    /// latency plus relay and load terms (strategy `cost` module).
    pub cost_ms: f64,
    /// Why.
    pub reason: Reason,
    /// Other candidates, distinct, best first (at most
    /// `PlacementPolicy::max_fallbacks`): where the client reconnects if the
    /// chosen edge fails before the selector re-places it.
    pub fallbacks: Vec<EdgeIdx>,
}
