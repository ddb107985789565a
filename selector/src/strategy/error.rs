//! Why no edge was chosen.

/// How many edges were left out, and for what (for the error message, the
/// selection log and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exclusions {
    /// Edges considered.
    pub total: u32,
    /// Not registered.
    pub unregistered: u32,
    /// Missed the health timeout.
    pub unhealthy: u32,
    /// Draining.
    pub draining: u32,
    /// Estimated stress at or above the threshold.
    pub overloaded: u32,
    /// Healthy and unloaded, but no RTT for them (no client location and no probe).
    pub no_rtt: u32,
}

/// Why placement chose no edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// No edge can take the participant.
    #[error(
        "no edge can take a participant: of {} edges, {} unregistered, {} unhealthy, \
         {} draining, {} at or above the stress threshold, {} without an RTT \
         (no client location or probe)",
        .0.total, .0.unregistered, .0.unhealthy, .0.draining, .0.overloaded, .0.no_rtt
    )]
    NoCandidate(Exclusions),
    /// An edge names a region index outside the regions given.
    #[error("edge {edge} names region index {region}, but {regions} regions were given")]
    BadRegionIndex {
        /// Edge index.
        edge: u32,
        /// The region index it names.
        region: u32,
        /// How many regions there are.
        regions: usize,
    },
    /// A probe or conference entry names an edge index outside the edges given.
    #[error("{what} names edge index {edge}, but {edges} edges were given")]
    BadEdgeIndex {
        /// `"probe"` or `"conference"`.
        what: &'static str,
        /// The index.
        edge: u32,
        /// How many edges there are.
        edges: usize,
    },
    /// A probe RTT is negative, NaN or infinite.
    #[error("probe for edge index {edge}: {rtt_ms} is not a round-trip time")]
    BadProbe {
        /// Edge index.
        edge: u32,
        /// The value.
        rtt_ms: f64,
    },
    /// The client location is out of range.
    #[error("client location: {0}")]
    BadLocation(#[from] geomesh_core::geo::GeoPointError),
}
