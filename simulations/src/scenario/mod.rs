//! Scenario files: what to simulate.
//!
//! [`Scenario::load`] parses and validates in one step, reporting every
//! problem with its line, column and path (`failures[1].region: unknown
//! region "eu-wst"`), as topology files do, using the same
//! [`Diagnostic`] type. The result is plain, already-checked data.
//! `docs/SIMULATIONS.md` documents every field; `simulations/scenarios/`
//! has complete examples.

mod file;
mod validate;
mod validate_impairments;
mod validate_policy;
mod validate_workload;

use std::path::{Path, PathBuf};

use geomesh_core::topology::{Diagnostic, Severity};
use geomesh_core::{EdgeId, GeoPoint, RegionId};
use geomesh_selector::strategy::{PlacementPolicy, RttModel};
use serde::Serialize;

/// Simulated time in milliseconds since the scenario's start.
pub type Ms = u64;

/// Why a scenario could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file (or a topology it names) could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// YAML syntax, type or semantic errors: all of them, in file order.
    #[error("{} error(s) in scenario", .diagnostics.iter().filter(|d| d.severity == Severity::Error).count())]
    Invalid {
        /// Every problem found.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ScenarioError {
    /// All diagnostics (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ScenarioError::Io { .. } => &[],
            ScenarioError::Invalid { diagnostics } => diagnostics,
        }
    }
}

/// A validated scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Short name (used in output file names).
    pub name: String,
    /// What the study asks.
    pub description: String,
    /// Random seed: the same seed gives byte-identical outputs.
    pub seed: u64,
    /// Meetings start in `[0, horizon)`; the run continues until they end.
    pub horizon: Ms,
    /// The UTC instant of t = 0 (RFC 3339), for local time of day.
    pub start: String,
    /// Seconds since the Unix epoch of `start`.
    #[serde(skip)]
    pub start_unix_s: i64,
    /// Regions, in file order.
    pub regions: Vec<SimRegion>,
    /// Edges, in file order.
    pub edges: Vec<SimEdge>,
    /// Who meets, how often, for how long.
    pub workload: Workload,
    /// Latency model terms.
    pub latency: LatencySpec,
    /// Per-participant media bitrates.
    pub media: MediaSpec,
    /// How often edges report load to the selector.
    pub heartbeat_interval: Ms,
    /// How long after an edge's last heartbeat the selector marks it unhealthy.
    pub health_timeout: Ms,
    /// Strategies to compare, in order.
    pub strategies: Vec<StrategySpec>,
    /// Edge and region losses.
    pub failures: Vec<Failure>,
    /// Load-over-time sampling interval.
    pub load_sample_interval: Ms,
}

/// A region of the simulated rollout.
#[derive(Debug, Clone, Serialize)]
pub struct SimRegion {
    /// Region id.
    pub id: RegionId,
    /// Datacenter location.
    pub location: GeoPoint,
    /// Region group (for the `region` strategy), if any.
    pub group: Option<String>,
    /// Name in the measured RTT matrix, if it is one of the measured regions.
    pub measured_as: Option<String>,
}

/// One edge.
#[derive(Debug, Clone, Serialize)]
pub struct SimEdge {
    /// Edge id (`<region>-<n>` when generated from a count).
    pub id: EdgeId,
    /// Index into [`Scenario::regions`].
    pub region: usize,
    /// Participants it is sized for.
    pub capacity: u32,
}

/// Where meetings come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Poisson arrivals from a city population.
    Generated(GeneratedWorkload),
    /// Meetings listed in the file (small, hand-checkable studies and tests).
    Scripted(Vec<ScriptedMeeting>),
}

/// Poisson arrivals from a city population.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedWorkload {
    /// Which cities and how they are weighted.
    pub population: PopulationSpec,
    /// Meeting arrivals per hour when the whole population is in active
    /// hours (the rate itself without a diurnal profile).
    pub arrivals_per_hour: f64,
    /// Meeting size distribution.
    pub sizes: Vec<SizeBucket>,
    /// Meeting duration distribution.
    pub duration: DurationDist,
    /// Participants join uniformly within this long after the meeting starts.
    pub join_spread: Ms,
}

/// Which cities, and how participants are drawn from them.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PopulationSpec {
    /// Keep only these continents (GeoNames codes: AF, AS, EU, NA, OC, SA); empty = all.
    pub continents: Vec<String>,
    /// Keep only these countries (ISO 3166-1 alpha-2); empty = all.
    pub countries: Vec<String>,
    /// Drop these countries.
    pub exclude_countries: Vec<String>,
    /// Activity by local time of day, if any.
    pub diurnal: Option<Diurnal>,
    /// Share of a meeting's other participants from the first
    /// participant's country.
    pub same_country: f64,
    /// Share from the same continent (any country); the rest from anywhere.
    pub same_continent: f64,
}

/// Activity by local time of day in each city's IANA time zone.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Diurnal {
    /// Local hour activity starts (0–23).
    pub active_from: u32,
    /// Local hour activity ends (exclusive; may wrap past midnight).
    pub active_to: u32,
    /// Relative activity outside those hours (0 < w ≤ 1).
    pub off_hours_weight: f64,
}

/// Sizes `min..=max` (uniform) with a relative weight.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SizeBucket {
    /// Smallest size.
    pub min: u32,
    /// Largest size.
    pub max: u32,
    /// Relative weight.
    pub weight: f64,
}

/// A meeting duration distribution.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationDist {
    /// Always this long.
    Fixed {
        /// Duration, ms.
        ms: Ms,
    },
    /// Uniform in `[min, max]`.
    Uniform {
        /// Shortest, ms.
        min: Ms,
        /// Longest, ms.
        max: Ms,
    },
    /// Exponential with this mean.
    Exponential {
        /// Mean, ms.
        mean: Ms,
    },
    /// Log-normal with this median and shape.
    Lognormal {
        /// Median, ms.
        median: Ms,
        /// σ of the underlying normal.
        sigma: f64,
    },
}

/// One scripted meeting.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptedMeeting {
    /// Start, ms.
    pub start: Ms,
    /// Length, ms (everyone leaves at start + duration).
    pub duration: Ms,
    /// Participants in joining order.
    pub participants: Vec<ScriptedParticipant>,
}

/// One scripted participant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ScriptedParticipant {
    /// Where they are.
    pub location: GeoPoint,
    /// When they join, ms after the meeting starts.
    pub join: Ms,
}

/// Latency model terms (see `docs/SIMULATIONS.md`, "Latency model").
#[derive(Debug, Clone, Serialize)]
pub struct LatencySpec {
    /// Distance → RTT model for participant ↔ edge (and unmeasured edge ↔ edge).
    #[serde(serialize_with = "ser_model")]
    pub rtt_model: RttModel,
    /// Sender-side fixed delay (capture, encode, packetization), ms.
    pub sender_ms: f64,
    /// Receiver jitter buffer, ms.
    pub jitter_buffer_ms: f64,
    /// Receiver decode and render, ms.
    pub receiver_ms: f64,
    /// Forwarding delay per edge traversed, ms.
    pub per_edge_ms: f64,
    /// RTT between two edges of the same region; `None` = the model at 0 km.
    pub intra_region_rtt_ms: Option<f64>,
    /// Loss and jitter per leg; `None` = none (`jitter_buffer_ms` fixed).
    pub impairments: Option<Impairments>,
}

/// Loss and jitter per leg (docs/SIMULATIONS.md, "Impairments"). A leg's
/// loss and jitter are its base plus a slope × its great-circle length.
#[derive(Debug, Clone, Serialize)]
pub struct Impairments {
    /// Access types of participants, with their shares (summing to 1).
    pub access: Vec<AccessClass>,
    /// Access leg loss growth, percentage points per 1,000 km.
    pub access_loss_pct_per_1000km: f64,
    /// Access leg jitter growth, ms per 1,000 km.
    pub access_jitter_ms_per_1000km: f64,
    /// Edge ↔ edge leg base loss, %.
    pub backbone_loss_pct: f64,
    /// Edge ↔ edge loss growth, percentage points per 1,000 km.
    pub backbone_loss_pct_per_1000km: f64,
    /// Edge ↔ edge base jitter, ms.
    pub backbone_jitter_ms: f64,
    /// Edge ↔ edge jitter growth, ms per 1,000 km.
    pub backbone_jitter_ms_per_1000km: f64,
    /// Jitter buffer = max(`jitter_buffer_ms`, this × path jitter).
    pub jitter_buffer_factor: f64,
}

/// One access type (fixed broadband, mobile, …).
#[derive(Debug, Clone, Serialize)]
pub struct AccessClass {
    /// Label.
    pub name: String,
    /// Share of participants.
    pub share: f64,
    /// Base loss of the access leg, %.
    pub loss_pct: f64,
    /// Base jitter of the access leg, ms.
    pub jitter_ms: f64,
}

fn ser_model<S: serde::Serializer>(m: &RttModel, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("RttModel", 2)?;
    st.serialize_field("base_ms", &m.base_ms)?;
    st.serialize_field("ms_per_km", &m.ms_per_km)?;
    st.end()
}

/// Per-participant media, for relay traffic.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MediaSpec {
    /// Audio bitrate per sending participant, kbit/s.
    pub audio_kbps: f64,
    /// Video bitrate per sending participant, kbit/s.
    pub video_kbps: f64,
}

/// Which placement rule a strategy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Jitsi's default: the whole conference on the first participant's
    /// region's least loaded edge.
    Single,
    /// Jicofo's region-based rule.
    Region,
    /// Everyone on their nearest region's least loaded edge, unbounded cascade.
    Nearest,
    /// The production strategy (`geomesh_selector::strategy::place`).
    Geomesh,
}

impl StrategyKind {
    /// Parses a strategy name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(Self::Single),
            "region" => Some(Self::Region),
            "nearest" => Some(Self::Nearest),
            "geomesh" => Some(Self::Geomesh),
            _ => None,
        }
    }
}

/// One strategy to run.
#[derive(Debug, Clone, Serialize)]
pub struct StrategySpec {
    /// Label in outputs (the kind's name unless a variant names itself).
    pub name: String,
    /// The rule.
    pub kind: StrategyKind,
    /// The selector's own policy type (the baselines use its stress threshold).
    #[serde(serialize_with = "ser_policy")]
    pub policy: PlacementPolicy,
}

fn ser_policy<S: serde::Serializer>(p: &PlacementPolicy, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("PlacementPolicy", 10)?;
    st.serialize_field("max_edges_per_conference", &p.max_edges_per_conference)?;
    st.serialize_field("stress_threshold", &p.stress_threshold)?;
    st.serialize_field("access_weight", &p.access_weight)?;
    st.serialize_field("hop_ms", &p.hop_ms)?;
    st.serialize_field("relay_ms", &p.relay_ms)?;
    st.serialize_field("stress_ms", &p.stress_ms)?;
    st.serialize_field("max_fallbacks", &p.max_fallbacks)?;
    st.serialize_field("burst_safety", &p.burst_safety)?;
    st.serialize_field("rtt_model_base_ms", &p.rtt_model.base_ms)?;
    st.serialize_field("rtt_model_ms_per_km", &p.rtt_model.ms_per_km)?;
    st.end()
}

/// What a failure takes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureTarget {
    /// One edge (index into [`Scenario::edges`]).
    Edge(usize),
    /// Every edge of a region (index into [`Scenario::regions`]).
    Region(usize),
}

/// An edge or region lost at a time, maybe back later.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Failure {
    /// When it fails, ms.
    pub at: Ms,
    /// What.
    pub target: FailureTarget,
    /// When it comes back (empty, healthy), if it does.
    pub recover_at: Option<Ms>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file. A `topology:` path in
    /// it is resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and validates scenario YAML; `base_dir` resolves a `topology:` path.
    pub fn parse(yaml: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let raw = file::parse(yaml).map_err(|d| ScenarioError::Invalid {
            diagnostics: vec![d],
        })?;
        validate::validate(raw, base_dir)
    }

    /// The edges of a region.
    pub fn edges_in(&self, region: usize) -> impl Iterator<Item = usize> + '_ {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.region == region)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests;
