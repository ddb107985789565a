//! The placement knobs, in one type.

use geomesh_core::topology::Policy;

use super::RttModel;

/// Default [`PlacementPolicy::affinity_margin_ms`]: see `docs/SIMULATIONS.md`
/// ("Placement model") for the sweep that chose it.
pub const DEFAULT_AFFINITY_MARGIN_MS: f64 = 50.0;
/// Default [`PlacementPolicy::max_fallbacks`].
pub const DEFAULT_MAX_FALLBACKS: usize = 3;
/// Default cap when no topology is given (the topology's own default).
pub const DEFAULT_MAX_EDGES_PER_CONFERENCE: u32 = 4;
/// Default stress threshold when no topology is given (the topology's own default).
pub const DEFAULT_STRESS_THRESHOLD: f64 = 0.8;

/// Every knob of [`place`](super::place).
///
/// Build it from the topology's policy (`PlacementPolicy::from(&topology.policy)`)
/// and override what the topology does not carry; the simulator exposes
/// every field in scenario files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacementPolicy {
    /// At most this many edges host one conference (≥ 1).
    pub max_edges_per_conference: u32,
    /// Edges whose estimated stress is at or above this take no new
    /// participants (in (0, 1]).
    pub stress_threshold: f64,
    /// Reuse an edge already in the conference when its RTT to the client is
    /// at most this much worse than the best candidate's (ms, ≥ 0).
    pub affinity_margin_ms: f64,
    /// Distance → RTT model for clients without a probe.
    pub rtt_model: RttModel,
    /// How many ranked fallbacks to return.
    pub max_fallbacks: usize,
    /// Count placements made since an edge's last heartbeat in its stress
    /// (on by default; off only to measure what it buys).
    pub burst_safety: bool,
}

/// Why a policy is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `max_edges_per_conference` is 0.
    #[error("max_edges_per_conference must be at least 1")]
    ZeroEdgeCap,
    /// `stress_threshold` outside (0, 1].
    #[error("stress_threshold {0} is outside (0, 1]")]
    StressThreshold(f64),
    /// `affinity_margin_ms` negative or not finite.
    #[error("affinity_margin_ms {0} must be a finite, non-negative number of ms")]
    AffinityMargin(f64),
    /// The RTT model has a negative or non-finite parameter.
    #[error(
        "rtt_model: base_ms {base_ms} and ms_per_km {ms_per_km} must be finite and non-negative"
    )]
    RttModel {
        /// The base term.
        base_ms: f64,
        /// The slope.
        ms_per_km: f64,
    },
}

impl PlacementPolicy {
    /// Checks every range. [`place`](super::place) never panics on a bad
    /// policy, but its choices are only meaningful for a valid one.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.max_edges_per_conference == 0 {
            return Err(PolicyError::ZeroEdgeCap);
        }
        if !(self.stress_threshold > 0.0 && self.stress_threshold <= 1.0) {
            return Err(PolicyError::StressThreshold(self.stress_threshold));
        }
        if !(self.affinity_margin_ms.is_finite() && self.affinity_margin_ms >= 0.0) {
            return Err(PolicyError::AffinityMargin(self.affinity_margin_ms));
        }
        if !self.rtt_model.is_valid() {
            return Err(PolicyError::RttModel {
                base_ms: self.rtt_model.base_ms,
                ms_per_km: self.rtt_model.ms_per_km,
            });
        }
        Ok(())
    }
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        Self {
            max_edges_per_conference: DEFAULT_MAX_EDGES_PER_CONFERENCE,
            stress_threshold: DEFAULT_STRESS_THRESHOLD,
            affinity_margin_ms: DEFAULT_AFFINITY_MARGIN_MS,
            rtt_model: RttModel::FITTED,
            max_fallbacks: DEFAULT_MAX_FALLBACKS,
            burst_safety: true,
        }
    }
}

impl From<&Policy> for PlacementPolicy {
    /// The topology's cap and stress threshold; defaults for the rest.
    fn from(p: &Policy) -> Self {
        Self {
            max_edges_per_conference: p.max_edges_per_conference,
            stress_threshold: p.stress_threshold,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_validate_and_topology_policy_carries_over() {
        assert_eq!(PlacementPolicy::default().validate(), Ok(()));
        let p = PlacementPolicy::from(&Policy {
            max_edges_per_conference: 2,
            heartbeat_interval: Duration::from_secs(1),
            health_timeout: Duration::from_secs(3),
            stress_threshold: 0.5,
        });
        assert_eq!(p.max_edges_per_conference, 2);
        assert_eq!(p.stress_threshold, 0.5);
        assert_eq!(p.affinity_margin_ms, DEFAULT_AFFINITY_MARGIN_MS);
    }

    #[test]
    fn bad_knobs() {
        let ok = PlacementPolicy::default();
        let bad = |f: fn(&mut PlacementPolicy)| {
            let mut p = ok;
            f(&mut p);
            p.validate().unwrap_err()
        };
        assert_eq!(
            bad(|p| p.max_edges_per_conference = 0),
            PolicyError::ZeroEdgeCap
        );
        assert_eq!(
            bad(|p| p.stress_threshold = 1.5),
            PolicyError::StressThreshold(1.5)
        );
        assert!(matches!(
            bad(|p| p.stress_threshold = f64::NAN),
            PolicyError::StressThreshold(_)
        ));
        assert_eq!(
            bad(|p| p.affinity_margin_ms = -1.0),
            PolicyError::AffinityMargin(-1.0)
        );
        assert!(matches!(
            bad(|p| p.rtt_model.ms_per_km = f64::INFINITY),
            PolicyError::RttModel { .. }
        ));
    }
}
