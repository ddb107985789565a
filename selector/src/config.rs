//! Settings of one selector node.

use std::path::PathBuf;
use std::time::Duration;

use geomesh_core::topology::TlsSettings;
use geomesh_core::{SelectorId, Topology};
use ipnet::IpNet;

/// Raft timing. Defaults are WAN-safe (selectors on different continents,
/// RTTs up to ~300 ms); loopback tests and `geomesh dev` use shorter ones.
///
/// openraft 0.9 uses the heartbeat interval as the deadline of every
/// AppendEntries call: it must exceed the worst round trip between
/// selectors plus an fsync, or the leader never hears an acknowledgement
/// and nothing commits. After a leader dies, a follower waits its leader
/// lease (`election_max`) plus its election timeout (random in
/// `[election_min, election_max)`, fixed per process) from the last
/// heartbeat before it stands; then one round trip for votes and one for
/// the new leader's first entry. Defaults: heartbeat 400 ms (RTTs to about
/// 350 ms), election 800–1200 ms, so a follower stands 1.6–2.4 s (four to
/// six heartbeats) after the last one; the next join commits about that
/// plus three round trips later (docs/BENCHMARKS.md).
#[derive(Debug, Clone, Copy)]
pub struct RaftTiming {
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Election timeout range: a follower that hears no leader for a random
    /// time in `[election_min, election_max)` starts an election.
    pub election_min: Duration,
    /// Upper end of the election timeout.
    pub election_max: Duration,
    /// Build a snapshot (and purge the log before it) every this many entries.
    pub snapshot_logs: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(400),
            election_min: Duration::from_millis(800),
            election_max: Duration::from_millis(1_200),
            snapshot_logs: 5_000,
        }
    }
}

/// Everything `geomesh selector` needs to run one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The validated topology.
    pub topology: Topology,
    /// This node's id (a selector of the topology).
    pub id: SelectorId,
    /// Credentials (`ca.pem`, `nodes/<id>.pem|key`, `token.key`).
    pub tls: TlsSettings,
    /// Where the Raft store lives (`raft.redb` inside).
    pub data_dir: PathBuf,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Networks the operator credential is accepted from on the public API
    /// (empty: anywhere; the credential is what counts).
    pub admin_networks: Vec<IpNet>,
    /// Raft timing.
    pub raft: RaftTiming,
    /// Lifetime of join tokens (and of a placement until the edge confirms it).
    pub token_ttl: Duration,
    /// Write where the participant was located into its join token (the
    /// `loc` claim; the emulated-WAN lab delays by it). Off by default:
    /// edges built before the claim existed refuse tokens that carry it, so
    /// a rolling upgrade turns it on only once every edge knows it.
    pub token_location: bool,
    /// An edge's registration lease: its participants are released when no
    /// leader has heard from it for this long.
    pub edge_lease: Duration,
    /// How often the leader renews edge leases and sweeps lapsed placements.
    pub maintain_interval: Duration,
    /// Initialize the cluster membership from the topology when this node's
    /// store is empty (give it to one node only).
    pub init: bool,
    /// Most operations in one Raft entry.
    pub max_batch: usize,
    /// TTL of GeoDNS answers.
    pub dns_ttl: Duration,
    /// Joins per second one source address may make (twice that at once).
    pub join_rate_per_address: f64,
    /// Joins per second one conference may take (twice that at once).
    pub join_rate_per_conference: f64,
}

impl NodeConfig {
    /// Defaults for everything but the required settings.
    pub fn new(topology: Topology, id: SelectorId, tls: TlsSettings, data_dir: PathBuf) -> Self {
        Self {
            topology,
            id,
            tls,
            data_dir,
            trusted_proxies: Vec::new(),
            admin_networks: Vec::new(),
            raft: RaftTiming::default(),
            token_ttl: Duration::from_secs(120),
            token_location: false,
            edge_lease: Duration::from_secs(60),
            maintain_interval: Duration::from_secs(5),
            init: false,
            max_batch: 1024,
            dns_ttl: Duration::from_secs(20),
            join_rate_per_address: 20.0,
            join_rate_per_conference: 200.0,
        }
    }
}
