//! Placement: which edge a joining participant uses.
//!
//! [`place`] is the *only* placement code in geomesh: the selector's join
//! handler calls it, and so does the simulator (`geomesh-sim`), with the
//! same [`PlacementPolicy`]. It is a pure function of the cluster as the
//! caller sees it ([`ClusterView`]: regions, and per edge its membership,
//! health and the load of its last heartbeat plus placements since) and the
//! join ([`PlacementRequest`]: client location, probes, the conference's
//! current edges). No clock, no I/O, no Raft types.
//!
//! ```
//! use geomesh_core::{EdgeId, GeoPoint, RegionId};
//! use geomesh_selector::strategy::*;
//!
//! let regions = [
//!     RegionSite { id: RegionId::new("eu-central").unwrap(), location: GeoPoint::new(50.11, 8.68).unwrap() },
//!     RegionSite { id: RegionId::new("us-east").unwrap(), location: GeoPoint::new(39.04, -77.49).unwrap() },
//! ];
//! let mut edges = vec![
//!     EdgeStatus::new(EdgeId::new("fra-1").unwrap(), RegionIdx(0), 100),
//!     EdgeStatus::new(EdgeId::new("iad-1").unwrap(), RegionIdx(1), 100),
//! ];
//! let policy = PlacementPolicy::default();
//! let paris = GeoPoint::new(48.86, 2.35).unwrap();
//! let request = PlacementRequest { location: Some(paris), ..Default::default() };
//! let p = place(&policy, ClusterView::new(&regions, &edges), &request).unwrap();
//! assert_eq!(edges[p.edge.get()].id.as_str(), "fra-1");
//! assert_eq!(p.reason, Reason::Nearest);
//! // The caller commits the placement, then counts it until the next heartbeat:
//! edges[p.edge.get()].record_placement();
//! ```
//!
//! The RTT estimate for clients without probes is [`RttModel::FITTED`], a
//! least-squares line fitted to measured inter-region RTTs
//! ([`Calibration`]); `docs/SIMULATIONS.md` ("Placement model") gives the
//! model, its parameters and its error.

mod calibration;
mod cost;
mod error;
mod explain;
mod input;
mod outcome;
mod place;
mod policy;
mod rtt_model;

pub use calibration::{Calibration, CalibrationError, MeasuredPair, MeasuredRegion};
pub use error::{Exclusions, PlacementError};
pub use explain::{Considered, Verdict, explain};
pub use input::{
    ClusterView, ConferenceEdge, EdgeIdx, EdgeStatus, PlacementRequest, ProbeRtt, RegionIdx,
    RegionSite,
};
pub use outcome::{Placement, Reason, RttSource};
pub use place::place;
pub use policy::{DEFAULT_MAX_FALLBACKS, PlacementPolicy, PolicyError};
pub use rtt_model::{FIBRE_MS_PER_KM, Fit, FitError, RttModel};

#[cfg(test)]
mod storm_test;
#[cfg(test)]
mod tests;
