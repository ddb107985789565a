//! The topology file as written: serde structs that keep the source position
//! of every value validation may need to point at.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

use super::{Provider, TopologyError};
use crate::geo::GeoPoint;
use crate::id::{EdgeId, RegionId, SelectorId};
pub(super) use crate::yaml::{HumanDuration, S, pos};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopology {
    pub version: S<u32>,
    pub cluster: RawCluster,
    #[serde(default)]
    pub policy: RawPolicy,
    pub tls: RawTls,
    #[serde(default)]
    pub geoip: RawGeoIp,
    #[serde(default)]
    pub access: Option<S<RawAccess>>,
    pub regions: S<Vec<RawRegion>>,
    pub edges: S<Vec<RawEdge>>,
    pub selectors: S<Vec<RawSelector>>,
    #[serde(default)]
    pub recorders: Vec<RawRecorder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub name: S<String>,
    #[serde(default)]
    pub domain: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub max_edges_per_conference: Option<S<u32>>,
    #[serde(default)]
    pub heartbeat_interval: Option<S<HumanDuration>>,
    #[serde(default)]
    pub health_timeout: Option<S<HumanDuration>>,
    #[serde(default)]
    pub stress_threshold: Option<S<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub dir: S<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeoIp {
    #[serde(default)]
    pub databases: Vec<S<PathBuf>>,
    #[serde(default)]
    pub overrides: Vec<RawOverride>,
    #[serde(default)]
    pub default_location: Option<S<GeoPoint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default)]
    pub mode: Option<S<super::AccessMode>>,
    #[serde(default)]
    pub keys: Vec<RawAccessKey>,
    #[serde(default)]
    pub operator_token_file: Option<S<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessKey {
    pub id: S<String>,
    #[serde(default)]
    pub secret_file: Option<S<PathBuf>>,
    #[serde(default)]
    pub public_key_file: Option<S<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    pub cidr: S<IpNet>,
    #[serde(default)]
    pub region: Option<S<RegionId>>,
    #[serde(default)]
    pub location: Option<S<GeoPoint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub id: S<RegionId>,
    pub name: String,
    pub location: S<GeoPoint>,
    pub provider: Provider,
    pub provider_region: S<String>,
    #[serde(default)]
    pub group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEdge {
    pub id: S<EdgeId>,
    pub region: S<RegionId>,
    pub public_ip: S<IpAddr>,
    #[serde(default)]
    pub bind_ip: Option<S<IpAddr>>,
    #[serde(default)]
    pub media_port: Option<S<u16>>,
    pub http: S<SocketAddr>,
    pub octo: S<SocketAddr>,
    pub capacity: S<u32>,
    #[serde(default)]
    pub public_url: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelector {
    pub id: S<SelectorId>,
    pub region: S<RegionId>,
    pub api: S<SocketAddr>,
    pub raft: S<SocketAddr>,
    #[serde(default)]
    pub dns: Option<S<SocketAddr>>,
    #[serde(default)]
    pub bind_ip: Option<S<IpAddr>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecorder {
    pub id: S<EdgeId>,
    pub region: S<RegionId>,
    #[serde(default)]
    pub bind_ip: Option<S<IpAddr>>,
    pub http: S<SocketAddr>,
    pub octo: S<SocketAddr>,
    pub capacity: S<u32>,
}

/// Parses YAML into the raw structs; syntax and type errors come back as one
/// positioned diagnostic.
pub(super) fn parse(yaml: &str) -> Result<RawTopology, TopologyError> {
    crate::yaml::parse::<RawTopology>(yaml).map_err(|d| TopologyError::Invalid {
        diagnostics: vec![d],
    })
}
