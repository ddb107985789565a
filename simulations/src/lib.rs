//! # geomesh-sim
//!
//! Latency studies on real geography that run the production placement
//! code: "what mouth-to-ear latency, what inter-region traffic and what
//! edge load does placement strategy X give for population Y and regions Z?"
//!
//! **Owns**: scenario files ([`Scenario`], positioned errors like topology
//! files), the population drawn from GeoNames' world cities
//! ([`population`]), the latency model ([`LatencyModel`]: the selector's
//! fitted distance model for access, the measured inter-region matrix for
//! edge ↔ edge, and optionally per-leg loss, jitter, NACK recovery and a
//! jitter buffer that follows path jitter), a deterministic discrete-event
//! engine ([`engine`]), provisioning ([`plan`]: which regions to buy), the
//! baseline strategies it compares against (`single`, `region`, `nearest`:
//! [`strategies`]), and the CSV/JSON/SVG outputs ([`Study::write`]).
//!
//! **Does not own**: the `geomesh` placement strategy — that is
//! `geomesh_selector::strategy::place`, called as is with the scenario's
//! `PlacementPolicy`, never copied here — nor the RTT model and its
//! calibration data (`geomesh_selector::strategy::{RttModel, Calibration}`),
//! nor GeoIP or distance code (`geomesh-geoip`).
//!
//! ## Use
//!
//! ```no_run
//! # fn main() -> Result<(), geomesh_sim::SimError> {
//! use std::path::Path;
//! use geomesh_sim::{Scenario, Study, StudyOptions};
//!
//! let scenario = Scenario::load(Path::new("simulations/scenarios/europe-us.yaml"))?;
//! let study = Study::run(scenario, StudyOptions::default())?; // strategies in parallel
//! for run in &study.runs {
//!     println!("{}: p95 {} ms", run.report.name, run.report.latency.p95_ms);
//! }
//! study.write(Path::new("out"))?; // summary.csv/.json, latency_cdf.csv, plots
//! # Ok(())
//! # }
//! ```
//!
//! A run is a pure function of the scenario (seed included): no clock, no
//! I/O until [`Study::write`], the same meetings replayed for every
//! strategy, and byte-identical outputs for the same seed.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod engine;
pub mod latency;
pub mod metrics;
pub mod plan;
mod plots;
pub mod population;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod strategies;
mod study;
pub mod workload;

pub use engine::{RunOptions, RunOutput};
pub use latency::LatencyModel;
pub use scenario::{Scenario, ScenarioError};
pub use study::{SimError, Study, StudyOptions};
