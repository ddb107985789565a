//! The topology file as written: serde structs that keep the source position
//! of every value validation may need to point at.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Diagnostic, Position, Provider, Severity, TopologyError};
use crate::geo::GeoPoint;
use crate::id::{EdgeId, RegionId, SelectorId};

/// A value with the position it came from.
pub(super) type S<T> = Spanned<T>;

/// The position of a spanned value (where it is used, for aliases).
pub(super) fn pos<T>(s: &S<T>) -> Option<Position> {
    let l = s.referenced;
    (l.line() > 0).then(|| Position {
        line: l.line(),
        column: l.column(),
    })
}

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
    pub regions: S<Vec<RawRegion>>,
    pub edges: S<Vec<RawEdge>>,
    pub selectors: S<Vec<RawSelector>>,
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
}

/// A duration written the human way: `1s`, `250ms`, `2m`.
pub(super) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// Parses YAML into the raw structs; syntax and type errors come back as one
/// positioned diagnostic.
pub(super) fn parse(yaml: &str) -> Result<RawTopology, TopologyError> {
    serde_saphyr::from_str::<RawTopology>(yaml).map_err(|e| {
        let position = e.location().and_then(|l| {
            (l.line() > 0).then(|| Position {
                line: l.line(),
                column: l.column(),
            })
        });
        TopologyError::Invalid {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                position,
                path: String::new(),
                message: plain_message(&e),
            }],
        }
    })
}

/// The parser's message without its rendered source snippet or position
/// suffix (we print the position ourselves, once).
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    // serde-saphyr appends " at line L column C"; drop it.
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
