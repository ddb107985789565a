//! The scenario file as written: serde structs that keep the source position
//! of every value validation may need to point at (the approach of
//! `geomesh_core::topology`'s file module).

use std::path::PathBuf;

use geomesh_core::GeoPoint;
use geomesh_core::topology::Diagnostic;
pub(super) use geomesh_core::yaml::{HumanDuration, S, pos};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub version: S<u32>,
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub seed: S<u64>,
    pub horizon: S<HumanDuration>,
    #[serde(default)]
    pub start: Option<S<String>>,
    #[serde(default)]
    pub topology: Option<S<PathBuf>>,
    #[serde(default)]
    pub regions: Option<S<Vec<RawRegion>>>,
    #[serde(default)]
    pub edges: Option<S<Vec<RawEdges>>>,
    #[serde(default)]
    pub population: RawPopulation,
    pub meetings: S<RawMeetings>,
    #[serde(default)]
    pub latency: RawLatency,
    #[serde(default)]
    pub media: RawMedia,
    #[serde(default)]
    pub policy: RawPolicy,
    pub strategies: S<Vec<S<RawStrategy>>>,
    #[serde(default)]
    pub failures: Vec<RawFailure>,
    #[serde(default)]
    pub output: RawOutput,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub id: S<String>,
    pub location: S<GeoPoint>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub measured_as: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEdges {
    pub region: S<String>,
    pub capacity: S<u32>,
    #[serde(default)]
    pub count: Option<S<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPopulation {
    #[serde(default)]
    pub continents: Vec<S<String>>,
    #[serde(default)]
    pub countries: Vec<S<String>>,
    #[serde(default)]
    pub exclude_countries: Vec<S<String>>,
    #[serde(default)]
    pub diurnal: Option<S<RawDiurnal>>,
    #[serde(default)]
    pub locality: Option<S<RawLocality>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiurnal {
    pub active_hours: S<Vec<u32>>,
    pub off_hours_weight: S<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocality {
    #[serde(default)]
    pub same_country: Option<S<f64>>,
    #[serde(default)]
    pub same_continent: Option<S<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeetings {
    #[serde(default)]
    pub arrivals_per_hour: Option<S<f64>>,
    #[serde(default)]
    pub sizes: Option<S<Vec<RawSize>>>,
    #[serde(default)]
    pub duration: Option<S<RawDurationDist>>,
    #[serde(default)]
    pub join_spread: Option<S<HumanDuration>>,
    #[serde(default)]
    pub scripted: Option<S<Vec<RawScripted>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSize {
    #[serde(default)]
    pub size: Option<S<u32>>,
    #[serde(default)]
    pub min: Option<S<u32>>,
    #[serde(default)]
    pub max: Option<S<u32>>,
    pub weight: S<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(super) enum RawDurationDist {
    Fixed(HumanDuration),
    Uniform {
        min: HumanDuration,
        max: HumanDuration,
    },
    Exponential {
        mean: HumanDuration,
    },
    Lognormal {
        median: HumanDuration,
        sigma: f64,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScripted {
    pub start: S<HumanDuration>,
    pub duration: S<HumanDuration>,
    pub participants: S<Vec<RawScriptedParticipant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScriptedParticipant {
    pub location: S<GeoPoint>,
    #[serde(default)]
    pub join: Option<S<HumanDuration>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLatency {
    #[serde(default)]
    pub sender_ms: Option<S<f64>>,
    #[serde(default)]
    pub jitter_buffer_ms: Option<S<f64>>,
    #[serde(default)]
    pub receiver_ms: Option<S<f64>>,
    #[serde(default)]
    pub per_edge_ms: Option<S<f64>>,
    #[serde(default)]
    pub intra_region_rtt_ms: Option<S<f64>>,
    #[serde(default)]
    pub rtt_model: Option<S<RawRttModel>>,
    #[serde(default)]
    pub impairments: Option<RawImpairments>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImpairments {
    pub access: S<Vec<RawAccessClass>>,
    #[serde(default)]
    pub access_loss_pct_per_1000km: Option<S<f64>>,
    #[serde(default)]
    pub access_jitter_ms_per_1000km: Option<S<f64>>,
    #[serde(default)]
    pub backbone_loss_pct: Option<S<f64>>,
    #[serde(default)]
    pub backbone_loss_pct_per_1000km: Option<S<f64>>,
    #[serde(default)]
    pub backbone_jitter_ms: Option<S<f64>>,
    #[serde(default)]
    pub backbone_jitter_ms_per_1000km: Option<S<f64>>,
    #[serde(default)]
    pub jitter_buffer_factor: Option<S<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessClass {
    pub name: S<String>,
    pub share: S<f64>,
    pub loss_pct: S<f64>,
    pub jitter_ms: S<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRttModel {
    pub base_ms: f64,
    pub ms_per_km: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMedia {
    #[serde(default)]
    pub audio_kbps: Option<S<f64>>,
    #[serde(default)]
    pub video_kbps: Option<S<f64>>,
}

/// The selector's knobs; every field optional (defaults: the topology's,
/// then `PlacementPolicy::default()`).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub heartbeat_interval: Option<S<HumanDuration>>,
    #[serde(default)]
    pub health_timeout: Option<S<HumanDuration>>,
    #[serde(default)]
    pub max_edges_per_conference: Option<S<u32>>,
    #[serde(default)]
    pub stress_threshold: Option<S<f64>>,
    #[serde(default)]
    pub access_weight: Option<S<f64>>,
    #[serde(default)]
    pub hop_ms: Option<S<f64>>,
    #[serde(default)]
    pub relay_ms: Option<S<f64>>,
    #[serde(default)]
    pub stress_ms: Option<S<f64>>,
    #[serde(default)]
    pub max_fallbacks: Option<S<u32>>,
    #[serde(default)]
    pub burst_safety: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawStrategy {
    Plain(String),
    Variant {
        name: String,
        strategy: String,
        #[serde(default)]
        policy: Option<Box<RawPolicy>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFailure {
    pub at: S<HumanDuration>,
    #[serde(default)]
    pub edge: Option<S<String>>,
    #[serde(default)]
    pub region: Option<S<String>>,
    #[serde(default)]
    pub recover_at: Option<S<HumanDuration>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    #[serde(default)]
    pub load_sample_interval: Option<S<HumanDuration>>,
}

/// Parses YAML into the raw structs; syntax and type errors come back as one
/// positioned diagnostic.
pub(super) fn parse(yaml: &str) -> Result<RawScenario, Diagnostic> {
    geomesh_core::yaml::parse(yaml)
}
