//! Settings of one selector node.

use std::path::PathBuf;
use std::time::Duration;

use geomesh_core::topology::TlsSettings;
use geomesh_core::{SelectorId, Topology};
use ipnet::IpNet;

/// Raft timing. Defaults are WAN-safe (selectors in different continents,
/// RTTs up to ~300 ms); loopback tests use much shorter ones.
///
/// After a leader dies, a follower waits its leader lease (openraft 0.9:
/// `election_max`) plus a random election timeout in
/// `[election_min, election_max)` from the last heartbeat before it stands:
/// the next write commits about `election_max + election_min…max` after
/// the loss (2–4 s with the defaults).
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
            heartbeat: Duration::from_millis(250),
            election_min: Duration::from_millis(1_000),
            election_max: Duration::from_millis(2_000),
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
    /// Networks allowed to call `POST /v1/bridges/{id}/drain`.
    pub admin_networks: Vec<IpNet>,
    /// Raft timing.
    pub raft: RaftTiming,
    /// Lifetime of join tokens (and of a placement until the edge confirms it).
    pub token_ttl: Duration,
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
            admin_networks: vec![
                // Parsing constants cannot fail.
                "127.0.0.0/8".parse().expect("cidr"),
                "::1/128".parse().expect("cidr"),
            ],
            raft: RaftTiming::default(),
            token_ttl: Duration::from_secs(120),
            edge_lease: Duration::from_secs(60),
            maintain_interval: Duration::from_secs(5),
            init: false,
            max_batch: 1024,
            dns_ttl: Duration::from_secs(20),
        }
    }
}
