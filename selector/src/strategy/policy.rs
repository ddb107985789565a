//! The placement knobs, in one type.

use geomesh_core::topology::Policy;

use super::RttModel;

/// Defaults of the objective's weights: see `docs/SIMULATIONS.md`
/// ("Placement model") for the sweep that chose them.
const DEFAULT_ACCESS_WEIGHT: f64 = 1.5;
const DEFAULT_HOP_MS: f64 = 1.0;
const DEFAULT_RELAY_MS: f64 = 0.5;
const DEFAULT_STRESS_MS: f64 = 5.0;
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
    /// Weight of the client's access leg against a backbone leg of the same
    /// RTT (≥ 0; above 1: the public internet's loss and jitter make a long
    /// access path worse than a long backbone path).
    pub access_weight: f64,
    /// Cost of one more edge on a pair's path, ms (forwarding, another
    /// leg's jitter; ≥ 0).
    pub hop_ms: f64,
    /// Cost of one new media stream between edges, ms-equivalent (≥ 0):
    /// the price of inter-edge relay traffic against latency.
    pub relay_ms: f64,
    /// Cost per unit of estimated stress, ms (≥ 0): spreads load among
    /// near-equal edges; with `burst_safety` it sees placements since the
    /// last heartbeat.
    pub stress_ms: f64,
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
    /// An objective weight negative or not finite.
    #[error("{name} {value} must be a finite, non-negative number")]
    Weight {
        /// The knob.
        name: &'static str,
        /// Its value.
        value: f64,
    },
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
        for (name, value) in [
            ("access_weight", self.access_weight),
            ("hop_ms", self.hop_ms),
            ("relay_ms", self.relay_ms),
            ("stress_ms", self.stress_ms),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PolicyError::Weight { name, value });
            }
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
            access_weight: DEFAULT_ACCESS_WEIGHT,
            hop_ms: DEFAULT_HOP_MS,
            relay_ms: DEFAULT_RELAY_MS,
            stress_ms: DEFAULT_STRESS_MS,
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
        assert_eq!(p.access_weight, DEFAULT_ACCESS_WEIGHT);
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
            bad(|p| p.relay_ms = -1.0),
            PolicyError::Weight {
                name: "relay_ms",
                value: -1.0
            }
        );
        assert!(matches!(
            bad(|p| p.rtt_model.ms_per_km = f64::INFINITY),
            PolicyError::RttModel { .. }
        ));
    }
}
