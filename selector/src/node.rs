//! One running selector node: Raft, stores, listeners and background tasks.
//!
//! [`start`] opens the redb store, starts openraft, binds the public API,
//! the internal mTLS listener and (when configured) GeoDNS, and spawns the
//! write batcher and the leader's maintenance loop. [`Shared`] is what
//! every handler holds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use geomesh_core::token::TokenSigner;
use geomesh_geoip::GeoIp;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::raft::{
    LogStore, Network, NodeId, PeerClient, Raft, SelectorNode, StateStore, node_id, open_db,
};
use crate::soft::SoftState;
use crate::state::{Op, SelectorState};
use crate::strategy::{PlacementPolicy, RegionSite};
use crate::tls::NodeTls;
use crate::writer::{self, WriteError, WriteReq};

mod background;
use background::*;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The id is not a selector of the topology.
    #[error("selector {0} is not in the topology")]
    UnknownSelector(String),
    /// File or socket trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Raft store could not be opened.
    #[error("raft store: {0}")]
    Store(String),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The token key.
    #[error(transparent)]
    Key(#[from] geomesh_core::token::KeyError),
    /// GeoIP databases.
    #[error(transparent)]
    GeoIp(#[from] geomesh_geoip::GeoIpError),
    /// Raft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The placement policy from the topology is unusable.
    #[error("policy: {0}")]
    Policy(#[from] crate::strategy::PolicyError),
    /// The access section's key files.
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// What every handler of one node shares.
pub struct Shared {
    /// The node's settings.
    pub cfg: NodeConfig,
    /// This node's Raft id.
    pub node_id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// Applied replicated state (local reads).
    pub store: StateStore,
    /// Heartbeat-derived state (this node only).
    pub soft: Mutex<SoftState>,
    /// Client location lookups.
    pub geoip: GeoIp,
    /// Signs join tokens.
    pub signer: TokenSigner,
    /// Who may join and operate.
    pub access: crate::access::AccessControl,
    /// Join rate limits: per source address, per conference.
    pub join_limits: Mutex<(
        crate::limits::RateLimiter<std::net::IpAddr>,
        crate::limits::RateLimiter<geomesh_core::ConferenceId>,
    )>,
    /// Joins per grant (a leaked grant admits a bounded number).
    pub grant_uses: Mutex<geomesh_core::uses::UseCounter>,
    /// Placement knobs (from the topology policy).
    pub policy: PlacementPolicy,
    /// Metrics.
    pub metrics: Metrics,
    /// mTLS material.
    pub tls: NodeTls,
    /// Regions in topology order (placement indexes into this).
    pub regions: Vec<RegionSite>,
    /// RTT between those regions (measured for AWS regions of the embedded
    /// calibration set, else the RTT model), row-major.
    pub region_rtt_ms: Vec<f64>,
    /// The placements this node made, with their candidates.
    pub selections: Mutex<crate::selections::SelectionLog>,
    /// What this node runs (operators' checks compare nodes).
    pub about: crate::status::NodeAbout,
    peers: Mutex<HashMap<String, PeerClient>>,
    writes: mpsc::Sender<WriteReq>,
    started: Instant,
    /// Since when this node knows no leader (see [`Shared::quorum_unreachable`]).
    leaderless_since: Mutex<Option<Instant>>,
    /// Flipped to `true` when the node stops: connection tasks end on it.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Bytes of snapshot per InstallSnapshot request.
pub const SNAPSHOT_CHUNK: u64 = 1 << 20;

/// Joins one grant may make (a page retries a few times; a leaked grant
/// admits no crowd).
pub const JOINS_PER_GRANT: u32 = 20;

/// Unix milliseconds now.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// This node's Raft role and leader, as `/healthz` reports them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RaftStatus {
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub raft_role: String,
    /// The leader's selector id, when known.
    pub leader_id: Option<String>,
    /// Current term.
    pub term: u64,
    /// Last log index.
    pub last_log_index: Option<u64>,
    /// Last applied index.
    pub last_applied: Option<u64>,
    /// Voters, by selector id.
    pub voters: Vec<String>,
    /// Learners, by selector id.
    pub learners: Vec<String>,
}

impl Shared {
    /// Locks the soft state.
    pub fn soft(&self) -> MutexGuard<'_, SoftState> {
        // Poisoned only after a panic while holding it: a bug.
        self.soft.lock().expect("soft state lock poisoned")
    }

    /// Runs `f` on the applied state.
    pub fn with_state<T>(&self, f: impl FnOnce(&SelectorState) -> T) -> T {
        f(&self.store.read().state)
    }

    /// Role, leader and membership from Raft's metrics.
    pub fn raft_status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let cfg = m.membership_config.membership();
        let name = |id: &NodeId| {
            cfg.get_node(id)
                .map_or_else(|| id.to_string(), |n| n.id.clone())
        };
        let voters: Vec<String> = cfg.voter_ids().map(|id| name(&id)).collect();
        let learners: Vec<String> = cfg.learner_ids().map(|id| name(&id)).collect();
        RaftStatus {
            raft_role: role.to_string(),
            leader_id: m.current_leader.map(|l| name(&l)),
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            voters,
            learners,
        }
    }

    /// The current leader's node record, if known (and not this node).
    pub fn leader_node(&self) -> Option<(NodeId, SelectorNode)> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Why this node cannot commit now, if it is cut off from a majority:
    /// a leader no majority has acknowledged for two election timeouts, or
    /// a node that has known no leader for two (a normal election takes
    /// one). Writes then fail at once (503) instead of waiting for
    /// [`crate::writer::WRITE_DEADLINE`]: the client tries another selector.
    /// Two, not one, for the leader too: a follower starved of CPU for a
    /// moment acknowledges late, and a leader that refused then would turn
    /// away joins it commits a moment later (its followers would still
    /// forward to it, so every node would refuse).
    pub fn quorum_unreachable(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let lease = 2 * self.cfg.raft.election_max;
        if m.state == ServerState::Leader {
            let ms = m.millis_since_quorum_ack?;
            return (Duration::from_millis(ms) > lease).then(|| {
                format!("this selector leads, but no majority has acknowledged it for {ms} ms")
            });
        }
        if m.current_leader.is_some() {
            return None;
        }
        let alone = self
            .leaderless_since
            .lock()
            .expect("leaderless_since lock poisoned")
            .map_or(Duration::ZERO, |t| t.elapsed());
        (alone > lease).then(|| {
            format!(
                "no leader for {} ms: this selector cannot reach a majority of the cluster",
                alone.as_millis()
            )
        })
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// A (cached) client for another selector node.
    pub fn peer(&self, node: &SelectorNode) -> Result<PeerClient, crate::raft::CallError> {
        let mut peers = self.peers.lock().expect("peer cache lock poisoned");
        let key = format!("{}@{}", node.id, node.raft);
        if let Some(c) = peers.get(&key) {
            return Ok(c.clone());
        }
        let addr: SocketAddr = node
            .raft
            .parse()
            .map_err(|e| crate::raft::CallError::Unreachable(format!("{node}: {e}")))?;
        let c = PeerClient::new(&self.tls.client, &node.id, addr)?;
        peers.insert(key, c.clone());
        Ok(c)
    }

    /// Replicates operations (batched with other callers; forwarded to the
    /// leader from followers). One result per operation, in order.
    pub async fn propose(&self, ops: Vec<Op>) -> Result<Vec<crate::state::OpResult>, WriteError> {
        writer::submit(&self.writes, ops, false).await
    }

    /// Commits operations forwarded by a follower, merged into this node's
    /// batches; [`WriteError::NotLeader`] when this node does not lead.
    pub async fn commit_forwarded(
        &self,
        ops: Vec<Op>,
    ) -> Result<Vec<crate::state::OpResult>, WriteError> {
        writer::submit(&self.writes, ops, true).await
    }

    /// Seconds since this node started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The topology's selectors as Raft members.
    pub fn initial_members(&self) -> BTreeMap<NodeId, SelectorNode> {
        self.cfg
            .topology
            .selectors
            .iter()
            .map(|s| (node_id(&s.id), SelectorNode::from_topology(s)))
            .collect()
    }
}

/// A started node.
pub struct RunningSelector {
    /// Shared state (handlers, tests).
    pub shared: Arc<Shared>,
    /// Where the public API listens.
    pub api_addr: SocketAddr,
    /// Where the internal mTLS listener listens.
    pub internal_addr: SocketAddr,
    /// Where GeoDNS listens, when enabled.
    pub dns_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    api_task: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningSelector {
    /// Stops Raft, every listener and every connection; returns once the
    /// store is closed (bounded: 5 s), so the node can be started again on
    /// the same data directory.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        // The API server ends by itself once its connections are closed.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.api_task).await;
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.shared) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn raft_config(cfg: &NodeConfig) -> Result<Config, StartError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let c = Config {
        cluster_name: cfg.topology.cluster.name.clone(),
        heartbeat_interval: ms(cfg.raft.heartbeat),
        election_timeout_min: ms(cfg.raft.election_min),
        election_timeout_max: ms(cfg.raft.election_max),
        install_snapshot_timeout: ms(cfg.raft.election_max).max(1_000) * 4,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.raft.snapshot_logs),
        // Keep up to one snapshot interval of log behind a snapshot (at most 1,000):
        // a follower further behind than that catches up by snapshot.
        max_in_snapshot_log_to_keep: cfg.raft.snapshot_logs.min(1_000),
        // Appends must finish within a heartbeat (openraft's deadline for
        // them): at most 4 entries of at most `max_batch` records (about
        // 150 KB each) per call.
        max_payload_entries: 4,
        // Snapshot chunks stay small on the wire (their bytes travel as JSON).
        snapshot_max_chunk_size: SNAPSHOT_CHUNK,
        ..Default::default()
    };
    c.validate().map_err(|e| StartError::Raft(e.to_string()))
}

/// Starts a node: store, Raft, listeners, background tasks.
pub async fn start(cfg: NodeConfig) -> Result<RunningSelector, StartError> {
    let me = cfg
        .topology
        .selector(&cfg.id)
        .ok_or_else(|| StartError::UnknownSelector(cfg.id.to_string()))?
        .clone();
    // Fault tests run one selector per process.
    crate::raft::partitions::set_self(cfg.id.as_str());
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(io(format!("creating {}", cfg.data_dir.display())))?;
    let db =
        open_db(&cfg.data_dir.join("raft.redb")).map_err(|e| StartError::Store(e.to_string()))?;
    let log_store = LogStore::new(db.clone());
    let store = StateStore::open(db).map_err(|e| StartError::Store(e.to_string()))?;
    let tls = NodeTls::load(&cfg.tls, cfg.id.as_str())?;
    let signer = TokenSigner::load(&cfg.tls.token_key())?;
    let about = crate::status::NodeAbout {
        version: env!("CARGO_PKG_VERSION").to_string(),
        topology_hash: cfg.topology.hash(),
        token_key: signer.verifier().key_id(),
        cert_not_after: std::fs::read(cfg.tls.node_cert(cfg.id.as_str()))
            .ok()
            .and_then(|pem| geomesh_core::credentials::cert_not_after(&pem).ok())
            .unwrap_or(0),
    };
    let geoip = GeoIp::from_settings(&cfg.topology.geoip)?;
    let policy = PlacementPolicy::from(&cfg.topology.policy);
    policy.validate()?;
    let access = crate::access::AccessControl::load(&cfg.topology.access)?;
    match access.mode {
        geomesh_core::topology::AccessMode::Open if !me.api.ip().is_loopback() => {
            tracing::warn!(api = %me.api, "access mode is open: anyone who reaches this API joins any conference")
        }
        geomesh_core::topology::AccessMode::Grants if access.keys() == 0 => {
            tracing::error!(
                "access mode is grants but no application key is configured: every join is refused"
            )
        }
        _ => {}
    }
    let nid = node_id(&cfg.id);
    let span = tracing::info_span!("selector", id = %cfg.id);
    let raft = {
        let _g = span.enter();
        Raft::new(
            nid,
            Arc::new(raft_config(&cfg)?),
            Network::new(tls.client.clone()),
            log_store,
            store.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?
    };
    let regions: Vec<RegionSite> = cfg
        .topology
        .regions
        .iter()
        .map(|r| RegionSite {
            id: r.id.clone(),
            location: r.location,
        })
        .collect();
    let region_rtt_ms = crate::strategy::Calibration::embedded().region_matrix(
        &regions.iter().map(|r| r.location).collect::<Vec<_>>(),
        &cfg.topology
            .regions
            .iter()
            .map(|r| {
                (r.provider == geomesh_core::topology::Provider::Aws)
                    .then_some(r.provider_region.as_str())
            })
            .collect::<Vec<_>>(),
        &policy.rtt_model,
    );

    let api_bind = me.bind(me.api);
    let api = TcpListener::bind(api_bind)
        .await
        .map_err(io(format!("binding the API on {api_bind}")))?;
    let raft_bind = me.bind(me.raft);
    let internal = TcpListener::bind(raft_bind)
        .await
        .map_err(io(format!("binding the internal listener on {raft_bind}")))?;
    let dns = match (me.dns, &cfg.topology.cluster.domain) {
        (Some(addr), Some(_)) => {
            let addr = me.bind(addr);
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(io(format!("binding GeoDNS on udp {addr}")))?;
            // TCP on the same port (RFC 7766): the port UDP got when 0 was asked.
            let tcp_addr = udp.local_addr().map_err(io("DNS address"))?;
            let tcp = TcpListener::bind(tcp_addr)
                .await
                .map_err(io(format!("binding GeoDNS on tcp {tcp_addr}")))?;
            Some((udp, tcp))
        }
        _ => None,
    };
    let api_addr = api.local_addr().map_err(io("API address"))?;
    let internal_addr = internal.local_addr().map_err(io("internal address"))?;
    let dns_addr = match &dns {
        Some((s, _)) => Some(s.local_addr().map_err(io("DNS address"))?),
        None => None,
    };

    let metrics = Metrics::new();
    metrics.describe(&cfg, &about);
    let (writes, write_rx) = mpsc::channel(cfg.max_batch * 8);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        soft: Mutex::new(SoftState::new(
            cfg.topology.policy.health_timeout,
            Instant::now(),
        )),
        node_id: nid,
        raft,
        store,
        geoip,
        signer,
        access,
        join_limits: Mutex::new((
            crate::limits::RateLimiter::new(
                cfg.join_rate_per_address,
                cfg.join_rate_per_address * 2.0,
                100_000,
            ),
            crate::limits::RateLimiter::new(
                cfg.join_rate_per_conference,
                cfg.join_rate_per_conference * 2.0,
                100_000,
            ),
        )),
        grant_uses: Mutex::new(geomesh_core::uses::UseCounter::new(
            JOINS_PER_GRANT,
            200_000,
        )),
        policy,
        metrics,
        tls,
        regions,
        region_rtt_ms,
        selections: Mutex::new(crate::selections::SelectionLog::new(
            crate::selections::CAPACITY,
        )),
        about,
        peers: Mutex::default(),
        writes,
        started: Instant::now(),
        leaderless_since: Mutex::new(Some(Instant::now())),
        stop,
        cfg,
    });

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(writer::run(shared.clone(), write_rx)));
    tasks.push(tokio::spawn(crate::internal::serve(
        shared.clone(),
        internal,
    )));
    let api_task = tokio::spawn(crate::api::serve(shared.clone(), api));
    if let Some((udp, tcp)) = dns {
        tasks.push(tokio::spawn(crate::dns::serve(shared.clone(), udp)));
        tasks.push(tokio::spawn(crate::dns::serve_tcp(shared.clone(), tcp)));
    }
    tasks.push(tokio::spawn(maintain(shared.clone())));
    tasks.push(tokio::spawn(watch_leader(shared.clone())));

    if shared.cfg.init {
        match init_cluster(&shared).await {
            Ok(true) => tracing::info!("initialized the cluster membership from the topology"),
            Ok(false) => tracing::info!("cluster already initialized"),
            Err(e) => tracing::warn!(error = %e, "initializing the cluster"),
        }
    }
    tracing::info!(
        selector = %shared.cfg.id,
        api = %api_addr,
        internal = %internal_addr,
        dns = ?dns_addr,
        "selector node started"
    );
    Ok(RunningSelector {
        shared,
        api_addr,
        internal_addr,
        dns_addr,
        tasks,
        api_task,
        stop: stop_tx,
    })
}

/// Initializes membership with every topology selector as a voter.
/// `Ok(false)` when the node was already initialized.
pub async fn init_cluster(shared: &Shared) -> Result<bool, String> {
    if shared
        .raft
        .is_initialized()
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(false);
    }
    match shared.raft.initialize(shared.initial_members()).await {
        Ok(()) => Ok(true),
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}
