//! `geomesh selector`: run one selector node, or manage the cluster's
//! membership through a node's internal (mutual TLS) admin API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use geomesh_core::SelectorId;
use geomesh_core::topology::{TlsSettings, Topology};
use geomesh_selector::internal::{
    AdminResult, NodeRequest, RemoveEdgeRequest, RemoveRequest, admin_paths,
};
use geomesh_selector::node::RaftStatus;
use geomesh_selector::raft::PeerClient;
use geomesh_selector::tls::NodeTls;
use geomesh_selector::{NodeConfig, RaftTiming};
use ipnet::IpNet;

/// Run one selector node (placement, Raft-replicated state, join API, GeoDNS).
///
/// Without a subcommand, runs the node `--id` of the topology: the public
/// API on its `api` address, Raft and the edge-agent API (mutual TLS) on its
/// `raft` address, GeoDNS on its `dns` address when `cluster.domain` is set.
/// A new cluster needs its membership initialized once: `--init` on one
/// node, or `geomesh selector init` after the nodes are up.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Admin>,
    #[command(flatten)]
    run: Box<RunArgs>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The topology file.
    #[arg(long, required = true)]
    topology: Option<PathBuf>,
    /// This selector's id in the topology.
    #[arg(long, required = true)]
    id: Option<SelectorId>,
    /// The credentials directory from `geomesh certs init` (ca.pem,
    /// nodes/<id>.pem and .key, token.key).
    #[arg(long, required = true)]
    certs: Option<PathBuf>,
    /// Directory of this node's Raft store (created if missing).
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// Believe `X-Forwarded-For` from these proxies (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<IpNet>,
    /// Networks the operator token is accepted from on the public API
    /// (repeatable; default: anywhere — the credential is what counts).
    #[arg(long = "admin-cidr", value_name = "CIDR")]
    admin_cidrs: Vec<IpNet>,
    /// Initialize the membership from the topology if this node's store is
    /// empty. Give it to one node of a new cluster only.
    #[arg(long)]
    init: bool,
    /// Raft leader heartbeat period; also the deadline of every replication
    /// call (openraft 0.9): keep it above the worst round trip between
    /// selectors.
    #[arg(long, default_value = "400ms")]
    raft_heartbeat: humantime::Duration,
    /// Raft election timeout, lower bound.
    #[arg(long, default_value = "800ms")]
    election_min: humantime::Duration,
    /// Raft election timeout, upper bound (also openraft's leader lease: a
    /// leader loss is repaired about `election-max + election-min…max` plus
    /// three round trips later). The defaults are safe for selectors on
    /// different continents (≈ 300 ms apart).
    #[arg(long, default_value = "1200ms")]
    election_max: humantime::Duration,
    /// Snapshot (and compact the log) every this many entries.
    #[arg(long, default_value_t = 5000)]
    snapshot_logs: u64,
    /// Lifetime of join tokens (and of a placement until its edge confirms it).
    #[arg(long, default_value = "120s")]
    token_ttl: humantime::Duration,
    /// Write where each participant was located (its location hint or
    /// GeoIP) into its join token, the `loc` claim; `geomesh dev --wan`
    /// turns it on so the lab's edges delay located participants. Turn it
    /// on only once every edge understands the claim (older edges refuse
    /// such tokens).
    #[arg(long)]
    token_location: bool,
    /// Release an edge's participants when no leader heard from it this long.
    #[arg(long, default_value = "60s")]
    edge_lease: humantime::Duration,
    /// Most operations per Raft entry.
    #[arg(long, default_value_t = 1024)]
    max_batch: usize,
    /// TTL of GeoDNS answers.
    #[arg(long, default_value = "20s")]
    dns_ttl: humantime::Duration,
    /// Joins per second one client address may make (twice that in a
    /// burst); more get 429 `rate_limited`. Behind a proxy, see
    /// --trusted-proxy.
    #[arg(long, default_value_t = 20.0)]
    join_rate_per_address: f64,
    /// Joins per second one conference may take (twice that in a burst).
    #[arg(long, default_value_t = 200.0)]
    join_rate_per_conference: f64,
}

#[derive(clap::Subcommand)]
enum Admin {
    /// Initialize the cluster membership (every selector of the topology)
    /// on a running node; a no-op when already initialized.
    Init(AdminArgs),
    /// Print a node's Raft role, leader and members (JSON).
    Status(AdminArgs),
    /// Add a selector (already in the topology and running) as a voter.
    AddNode {
        #[command(flatten)]
        admin: AdminArgs,
        /// The selector to add.
        #[arg(long)]
        node: SelectorId,
        /// How long it may take to catch up before the change is rolled back.
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
    },
    /// Remove a selector from the membership.
    RemoveNode {
        #[command(flatten)]
        admin: AdminArgs,
        /// The selector to remove.
        #[arg(long)]
        node: SelectorId,
    },
    /// Remove an edge from the cluster: it leaves placement at once, its
    /// participants are released (their clients rejoin elsewhere) and the
    /// running process may not register again (a restart may).
    RemoveEdge {
        #[command(flatten)]
        admin: AdminArgs,
        /// The edge to remove.
        edge: geomesh_core::EdgeId,
    },
    /// Print the selection log: every placement with the candidates weighed
    /// and why each lost, from every selector, oldest first.
    Selections(super::selections::Args),
}

/// Where a node's admin API is and how to prove the caller may use it.
/// Each defaults to the `geomesh dev` mesh running here.
#[derive(clap::Args)]
struct AdminArgs {
    /// The topology file.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// The credentials directory (its operator certificate, `nodes/operator.pem`,
    /// is presented; without one, the node certificate of `--id`).
    #[arg(long)]
    certs: Option<PathBuf>,
    /// The selector to talk to.
    #[arg(long)]
    id: Option<SelectorId>,
}

/// [`AdminArgs`] with the defaults filled in.
struct Resolved {
    topology: Topology,
    certs: PathBuf,
    id: SelectorId,
}

impl AdminArgs {
    fn resolve(self) -> anyhow::Result<Resolved> {
        let dev = super::operator::dev_admin();
        let missing = |what: &str| {
            anyhow!(
                "no --{what} given and no `geomesh dev` running here: pass --topology, --certs and --id"
            )
        };
        let topology = match self.topology {
            Some(t) => t,
            None => dev.as_ref().ok_or_else(|| missing("topology"))?.0.clone(),
        };
        let certs = match self.certs {
            Some(c) => c,
            None => dev.as_ref().ok_or_else(|| missing("certs"))?.1.clone(),
        };
        let id = match self.id {
            Some(i) => i,
            None => dev.as_ref().ok_or_else(|| missing("id"))?.2.clone(),
        };
        Ok(Resolved {
            topology: super::load_topology(&topology)?,
            certs,
            id,
        })
    }
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Some(admin) => admin.run(),
            None => self.run.run(),
        }
    }
}

impl RunArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        // clap enforces these (required = true) when no subcommand is given.
        let (Some(topology_path), Some(id), Some(certs), Some(data)) =
            (self.topology, self.id, self.certs, self.data)
        else {
            bail!("--topology, --id, --certs and --data are required");
        };
        let topology = super::load_topology(&topology_path)?;
        let mut cfg = NodeConfig::new(topology, id.clone(), TlsSettings { dir: certs }, data);
        cfg.trusted_proxies = self.trusted_proxies;
        if !self.admin_cidrs.is_empty() {
            cfg.admin_networks = self.admin_cidrs;
        }
        cfg.init = self.init;
        cfg.raft = RaftTiming {
            heartbeat: self.raft_heartbeat.into(),
            election_min: self.election_min.into(),
            election_max: self.election_max.into(),
            snapshot_logs: self.snapshot_logs,
        };
        cfg.token_ttl = self.token_ttl.into();
        cfg.token_location = self.token_location;
        cfg.edge_lease = self.edge_lease.into();
        cfg.max_batch = self.max_batch.max(1);
        cfg.dns_ttl = self.dns_ttl.into();
        cfg.join_rate_per_address = self.join_rate_per_address;
        cfg.join_rate_per_conference = self.join_rate_per_conference;
        let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
        rt.block_on(async move {
            let node = geomesh_selector::start(cfg).await?;
            tracing::info!(
                selector = %id,
                api = %format!("http://{}/", node.api_addr),
                internal = %node.internal_addr,
                dns = ?node.dns_addr,
                "selector ready"
            );
            super::shutdown_signal().await;
            tracing::info!(selector = %id, "stopping");
            node.shutdown().await;
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// A client for `node`'s internal API, presenting the operator
/// certificate when the credentials directory has one (else the node
/// certificate of `via`, for a directory that predates it).
fn client_for(
    topology: &Topology,
    certs: &Path,
    via: &SelectorId,
    node: &SelectorId,
) -> anyhow::Result<PeerClient> {
    let settings = TlsSettings {
        dir: certs.to_path_buf(),
    };
    let operator = geomesh_core::credentials::OPERATOR_ID;
    let who = if settings.node_cert(operator).exists() {
        operator
    } else {
        via.as_str()
    };
    let tls = NodeTls::load(&settings, who)?;
    let s = topology
        .selector(node)
        .ok_or_else(|| anyhow!("selector {node} is not in the topology"))?;
    Ok(PeerClient::new(&tls.client, node.as_str(), s.raft)?)
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Admin {
    fn run(self) -> anyhow::Result<ExitCode> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.run_async())
    }

    async fn run_async(self) -> anyhow::Result<ExitCode> {
        match self {
            Admin::Selections(a) => return a.run().await,
            Admin::Init(a) => {
                let a = a.resolve()?;
                let c = client_for(&a.topology, &a.certs, &a.id, &a.id)?;
                let r: AdminResult = c
                    .post(admin_paths::INIT, &serde_json::json!({}), TIMEOUT)
                    .await?;
                println!("{}: {} (voters: {})", a.id, r.message, r.voters.join(", "));
            }
            Admin::Status(a) => {
                let a = a.resolve()?;
                let c = client_for(&a.topology, &a.certs, &a.id, &a.id)?;
                let r: RaftStatus = c.get(admin_paths::STATUS, TIMEOUT).await?;
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Admin::AddNode {
                admin: a,
                node,
                timeout,
            } => {
                let a = a.resolve()?;
                let s = a
                    .topology
                    .selector(&node)
                    .ok_or_else(|| anyhow!("selector {node} is not in the topology"))?;
                let body = NodeRequest {
                    id: node.clone(),
                    raft: s.raft,
                    api: s.api,
                    timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
                };
                let leader = leader_client(&a).await?;
                // The leader answers within `timeout` plus the membership change.
                let r: AdminResult = leader
                    .post(admin_paths::ADD_NODE, &body, *timeout + TIMEOUT)
                    .await?;
                println!("{} (voters: {})", r.message, r.voters.join(", "));
            }
            Admin::RemoveEdge { admin: a, edge } => {
                let a = a.resolve()?;
                let c = client_for(&a.topology, &a.certs, &a.id, &a.id)?;
                let r: AdminResult = c
                    .post(
                        admin_paths::REMOVE_EDGE,
                        &RemoveEdgeRequest { id: edge },
                        TIMEOUT,
                    )
                    .await?;
                println!("{}", r.message);
            }
            Admin::RemoveNode { admin: a, node } => {
                let leader = leader_client(&a.resolve()?).await?;
                let r: AdminResult = leader
                    .post(
                        admin_paths::REMOVE_NODE,
                        &RemoveRequest { id: node },
                        TIMEOUT,
                    )
                    .await?;
                println!("{} (voters: {})", r.message, r.voters.join(", "));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A client for the current leader, found through node `--id`.
async fn leader_client(a: &Resolved) -> anyhow::Result<PeerClient> {
    let t = &a.topology;
    let c = client_for(t, &a.certs, &a.id, &a.id)?;
    let status: RaftStatus = c.get(admin_paths::STATUS, TIMEOUT).await?;
    let leader = status
        .leader_id
        .ok_or_else(|| anyhow!("{} knows no leader yet; retry", a.id))?;
    let leader = SelectorId::new(leader)?;
    client_for(t, &a.certs, &a.id, &leader)
}
