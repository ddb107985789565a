//! The cluster topology: one YAML file that describes regions, edges,
//! selectors, policy, GeoIP and key material for a whole rollout.
//!
//! [`Topology::load`] parses and validates in one step. Parsing keeps source
//! positions ([`file`]), validation ([`validate`]) reports every problem with
//! its line, column and path (`edges[3].region: unknown region "eu-wst"`),
//! and the result is a plain, already-checked [`Topology`] that the rest of
//! geomesh can use without re-checking.

mod diagnostic;
mod file;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;

use crate::geo::GeoPoint;
use crate::id::{EdgeId, RegionId, SelectorId};

pub use diagnostic::{Diagnostic, Position, Severity, TopologyError};

/// Default UDP port for the edge's single media socket.
pub const DEFAULT_MEDIA_PORT: u16 = 10000;

/// A recording node: an octo peer of the edges that writes conferences to
/// disk (`geomesh recorder`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorder {
    /// Its id on the octo mesh (and in its certificate); unique among all
    /// node ids.
    pub id: EdgeId,
    /// The region it runs in.
    pub region: RegionId,
    /// The address its sockets bind to (default: unspecified, all interfaces).
    pub bind_ip: IpAddr,
    /// Its control and metrics API, which the selectors reach.
    pub http: SocketAddr,
    /// Its QUIC octo address (it dials the edges from there).
    pub octo: SocketAddr,
    /// Concurrent recordings it is sized for.
    pub capacity: u32,
}

/// A validated topology.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// Cluster-wide names.
    pub cluster: Cluster,
    /// Placement and health policy.
    pub policy: Policy,
    /// Where key material lives.
    pub tls: TlsSettings,
    /// GeoIP databases and overrides.
    pub geoip: GeoIpSettings,
    /// Who may join and who may operate.
    pub access: Access,
    /// Regions, in file order.
    pub regions: Vec<Region>,
    /// Edge bridges, in file order.
    pub edges: Vec<Edge>,
    /// Selector nodes, in file order (1, 3 or 5).
    pub selectors: Vec<Selector>,
    /// Recording nodes, in file order (none: no recording).
    pub recorders: Vec<Recorder>,
}

impl Topology {
    /// A short fingerprint of what every node must agree on (cluster,
    /// policy, access mode, regions, edges, selectors): nodes started from
    /// copies that drifted apart have different hashes. Key and database
    /// paths are left out: they may differ from machine to machine.
    pub fn hash(&self) -> String {
        let mut shared = serde_json::json!({
            "cluster": self.cluster,
            "policy": self.policy,
            "access_mode": self.access.mode,
            "regions": self.regions,
            "edges": self.edges,
            "selectors": self.selectors,
        });
        // Only when there are any: a topology without recorders keeps the
        // hash it had before recorders existed.
        if !self.recorders.is_empty() {
            shared["recorders"] = serde_json::json!(self.recorders);
        }
        crate::short_hash(shared.to_string().as_bytes())
    }
}

/// Cluster-wide names.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// A short name for the cluster (used in certificate subjects and logs).
    pub name: String,
    /// The meeting hostname that GeoDNS answers for, if any.
    pub domain: Option<String>,
}

/// Placement and health policy shared by all selectors.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// At most this many edges host one conference.
    pub max_edges_per_conference: u32,
    /// How often edges send heartbeats to each selector.
    #[serde(with = "humantime_serde_secs")]
    pub heartbeat_interval: Duration,
    /// An edge silent for this long is unhealthy.
    #[serde(with = "humantime_serde_secs")]
    pub health_timeout: Duration,
    /// Edges whose stress (load / capacity) is at or above this take no new participants.
    pub stress_threshold: f64,
}

/// A cloud provider, used by the Terraform rollout to pick a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Google Cloud.
    Gcp,
    /// Microsoft Azure.
    Azure,
    /// Hetzner Cloud.
    Hetzner,
    /// DigitalOcean.
    Digitalocean,
    /// Machines the operator runs themselves (also local development).
    Local,
}

/// A region: a metro area where edges (and maybe a selector) run.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    /// Region id.
    pub id: RegionId,
    /// Human-readable name ("Frankfurt").
    pub name: String,
    /// Where the region's datacenter is.
    pub location: GeoPoint,
    /// Cloud provider.
    pub provider: Provider,
    /// The provider's own region name (`eu-central-1`).
    pub provider_region: String,
    /// Optional larger grouping (`europe`), used by region-based strategies.
    pub group: Option<String>,
}

/// One edge bridge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Edge id (also the name in its certificate).
    pub id: EdgeId,
    /// The region it runs in.
    pub region: RegionId,
    /// The address advertised to clients in ICE candidates and URLs.
    pub public_ip: IpAddr,
    /// The address its sockets bind to (default: unspecified, all interfaces).
    pub bind_ip: IpAddr,
    /// The one UDP port for all participants' media.
    pub media_port: u16,
    /// HTTP (signaling, WHIP/WHEP, metrics) address that clients and selectors reach.
    pub http: SocketAddr,
    /// QUIC octo address that other edges dial.
    pub octo: SocketAddr,
    /// Participants the edge is sized for; stress = participants / capacity.
    pub capacity: u32,
    /// Base URL clients use for signaling, when it is not `http://{http}`
    /// (a TLS terminator or a DNS name in front of the edge).
    pub public_url: Option<String>,
}

impl Edge {
    /// Base URL for this edge's HTTP API, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.http),
        }
    }

    /// The WebSocket signaling URL.
    pub fn ws_url(&self) -> String {
        let base = self.base_url();
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base
        };
        format!("{ws}/v1/rtc")
    }

    /// The media socket address to advertise in ICE candidates.
    pub fn media_advertised(&self) -> SocketAddr {
        SocketAddr::new(self.public_ip, self.media_port)
    }

    /// The media socket address to bind.
    pub fn media_bind(&self) -> SocketAddr {
        SocketAddr::new(self.bind_ip, self.media_port)
    }
}

/// One selector node.
#[derive(Debug, Clone, Serialize)]
pub struct Selector {
    /// Selector id (also the name in its certificate).
    pub id: SelectorId,
    /// The region it runs in.
    pub region: RegionId,
    /// Public HTTP API address.
    pub api: SocketAddr,
    /// Raft (node-to-node) address.
    pub raft: SocketAddr,
    /// GeoDNS listen address, if this node answers DNS.
    pub dns: Option<SocketAddr>,
    /// The address its listeners bind to instead of the `api`, `raft` and
    /// `dns` addresses' own (a cloud public address that is not on the
    /// machine's interface, as an AWS Elastic IP never is).
    pub bind_ip: Option<IpAddr>,
}

impl Selector {
    /// Where a listener for `advertised` (one of this node's addresses) binds.
    pub fn bind(&self, advertised: SocketAddr) -> SocketAddr {
        self.bind_ip
            .map_or(advertised, |ip| SocketAddr::new(ip, advertised.port()))
    }
}

/// GeoIP databases and CIDR overrides.
#[derive(Debug, Clone, Serialize, Default)]
pub struct GeoIpSettings {
    /// MMDB files, tried in order (resolved against the topology file's directory).
    pub databases: Vec<PathBuf>,
    /// CIDR → location overrides for private and test networks; the most
    /// specific prefix wins, and overrides win over the databases.
    pub overrides: Vec<GeoIpOverride>,
    /// Where to assume a client is when nothing knows its address.
    pub default_location: Option<GeoPoint>,
}

/// Clients in `cidr` are at `location` (and, if given, in `region`).
#[derive(Debug, Clone, Serialize)]
pub struct GeoIpOverride {
    /// The network.
    pub cidr: IpNet,
    /// Where its clients are: given, or the location of `region`.
    pub location: GeoPoint,
    /// The region its clients belong to, if the override names one.
    pub region: Option<RegionId>,
}

/// Who may join (the topology's `access` section).
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// How joins are authorized.
    pub mode: AccessMode,
    /// Application keys that sign join grants.
    pub keys: Vec<AccessKey>,
    /// A file whose contents are the operator token (`Authorization:
    /// Bearer <token>` on operating endpoints of the public API).
    pub operator_token_file: Option<PathBuf>,
}

/// How joins are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Every join carries a grant signed by one of `access.keys` (the
    /// default): the operator's application decides who joins.
    Grants,
    /// Anyone may join; the selector assigns participant ids (demos, `geomesh dev`).
    Open,
}

/// One application key.
#[derive(Debug, Clone, Serialize)]
pub struct AccessKey {
    /// Its id (the grant header's `kid`).
    pub id: String,
    /// Where its secret or public key is.
    pub material: KeyMaterial,
}

/// An application key's file.
#[derive(Debug, Clone, Serialize)]
pub enum KeyMaterial {
    /// A shared HS256 secret: the file's text, trailing whitespace removed.
    Secret(PathBuf),
    /// An Ed25519 public key (SPKI PEM).
    PublicKey(PathBuf),
}

/// Where key material lives.
///
/// The layout inside `dir` is what `geomesh certs init` writes:
/// `ca.pem`, `ca.key`, `nodes/<id>.pem`, `nodes/<id>.key`, `token.key`, `token.pub`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsSettings {
    /// The credentials directory (resolved against the topology file's directory).
    pub dir: PathBuf,
}

impl TlsSettings {
    /// Cluster CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// A node's certificate chain (PEM).
    pub fn node_cert(&self, id: &str) -> PathBuf {
        self.dir.join("nodes").join(format!("{id}.pem"))
    }
    /// A node's private key (PKCS#8 PEM).
    pub fn node_key(&self, id: &str) -> PathBuf {
        self.dir.join("nodes").join(format!("{id}.key"))
    }
    /// The join-token signing key (Ed25519, PKCS#8 PEM); selectors only.
    pub fn token_key(&self) -> PathBuf {
        self.dir.join("token.key")
    }
    /// The join-token verifying key (Ed25519, SPKI PEM); every edge.
    pub fn token_public_key(&self) -> PathBuf {
        self.dir.join("token.pub")
    }
    /// The operator bearer token (`access.operator_token_file` points here
    /// when the operator uses the one `geomesh certs init` writes).
    pub fn operator_token(&self) -> PathBuf {
        self.dir.join("operator.token")
    }
}

/// A loaded topology and the warnings validation produced.
#[derive(Debug)]
pub struct Loaded {
    /// The validated topology.
    pub topology: Topology,
    /// Problems that do not stop the topology from being used.
    pub warnings: Vec<Diagnostic>,
}

impl Topology {
    /// Reads, parses and validates a topology file. Relative paths inside it
    /// are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Loaded, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses and validates topology YAML; `base_dir` resolves relative paths.
    pub fn parse(yaml: &str, base_dir: &Path) -> Result<Loaded, TopologyError> {
        let raw = file::parse(yaml)?;
        validate::validate(raw, base_dir)
    }

    /// The region with this id.
    pub fn region(&self, id: &RegionId) -> Option<&Region> {
        self.regions.iter().find(|r| &r.id == id)
    }

    /// The edge with this id.
    pub fn edge(&self, id: &EdgeId) -> Option<&Edge> {
        self.edges.iter().find(|e| &e.id == id)
    }

    /// The recorder with this id.
    pub fn recorder(&self, id: &EdgeId) -> Option<&Recorder> {
        self.recorders.iter().find(|r| &r.id == id)
    }

    /// The selector with this id.
    pub fn selector(&self, id: &SelectorId) -> Option<&Selector> {
        self.selectors.iter().find(|s| &s.id == id)
    }
}

/// Serializes durations as humantime strings ("1s", "250ms").
mod humantime_serde_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests;
