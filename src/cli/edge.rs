//! `geomesh edge`: run one edge bridge.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use geomesh_core::EdgeId;
use geomesh_core::token::{TokenSigner, TokenVerifier};
use geomesh_core::topology::TlsSettings;
use geomesh_edge::agent::AgentConfig;
use geomesh_edge::server::{EdgeConfig, OctoSettings, start};

/// Run one edge bridge (SFU) with its settings from the topology.
#[derive(clap::Args)]
pub struct Args {
    /// The topology file.
    #[arg(long)]
    topology: PathBuf,
    /// This edge's id in the topology.
    #[arg(long)]
    id: EdgeId,
    /// The credentials directory from `geomesh certs init` (token.pub is read).
    #[arg(long)]
    certs: PathBuf,
    /// Development mode: serve /dev/token to loopback clients, minting
    /// tokens with certs/token.key. Only in a `geomesh dev` mesh (or a test
    /// harness that says it is one): refused anywhere else.
    #[arg(long)]
    dev: bool,
    /// Bind the octo QUIC socket here instead of the topology's octo
    /// address (behind NAT, or a port other edges reach through a relay).
    #[arg(long)]
    octo_bind: Option<std::net::SocketAddr>,
    /// Forward every packet to every peer edge whether it subscribed or not
    /// (what Jitsi's relays do). Only for measuring what selective
    /// forwarding saves.
    #[arg(long)]
    octo_forward_all: bool,
    /// The lab's emulated WAN (written by `geomesh dev --wan`): JSON with
    /// `octo`, one-way delays in milliseconds by peer edge id (octo
    /// datagrams to each peer wait that long before they leave), and
    /// `access`, the model of located participants' distance (their
    /// datagrams wait half the modelled RTT each way). A bare object of
    /// milliseconds by edge id (octo only) is read too.
    #[arg(long, value_name = "FILE")]
    wan_delays: Option<PathBuf>,
    /// Video sources forwarded to each subscriber at most (last-N), unless
    /// the subscriber asks for another number.
    #[arg(long, default_value_t = 9)]
    last_n: usize,
    /// Media worker tasks (default: one per core).
    #[arg(long)]
    media_workers: Option<usize>,
    /// Sessions a conference keeps on its home worker before further ones
    /// go to the least-loaded worker, the workers then joining it like
    /// octo joins edges; 0: never spread a conference.
    #[arg(long, default_value_t = geomesh_edge::placement::DEFAULT_SPREAD_ABOVE)]
    spread_above: usize,
    /// Run TWCC bandwidth estimation toward subscribers and let it cap their
    /// simulcast layers (off by default: it adds forwarding delay, see
    /// docs/DECISIONS.md).
    #[arg(long)]
    bwe: bool,
    /// On SIGTERM or Ctrl-C, wait at most this long for participants to move
    /// to other edges before exiting.
    #[arg(long, default_value = "15s")]
    drain_timeout: humantime::Duration,
    /// Signaling (WebSocket) connections this edge holds at most.
    #[arg(long, default_value_t = geomesh_edge::limits::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Signaling connections one source address holds at most.
    #[arg(long, default_value_t = geomesh_edge::limits::DEFAULT_MAX_PER_ADDRESS)]
    max_connections_per_address: usize,
    /// Believe `X-Forwarded-For` from these peers (repeatable): a TLS
    /// terminator in front of the HTTP port, so per-address limits count
    /// the client, not the terminator.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// Set by `geomesh dev` (and test harnesses) in its children's
/// environment: `--dev` is refused without it, so no real host ever mints
/// tokens for whoever asks.
pub const DEV_CHILD_ENV: &str = "GEOMESH_DEV_CHILD";

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.dev && std::env::var_os(DEV_CHILD_ENV).is_none() {
            anyhow::bail!(
                "--dev serves join tokens to anyone on loopback: it runs only inside `geomesh dev` ({DEV_CHILD_ENV} unset)"
            );
        }
        let topology = super::load_topology(&self.topology)?;
        let tls = TlsSettings {
            dir: self.certs.clone(),
        };
        let verifier = TokenVerifier::load(&tls.token_public_key())?;
        let mut config = EdgeConfig::from_topology(&topology, &self.id, verifier)?;
        if self.dev {
            config.dev_signer = Some(TokenSigner::load(&tls.token_key())?);
        }
        let credentials = geomesh_mesh::tls::Credentials::load(&tls, self.id.as_str())
            .context("loading this edge's octo credentials")?;
        let mut octo = OctoSettings::from_topology(&topology, &self.id, credentials)?;
        if let Some(bind) = self.octo_bind {
            octo.bind = bind;
        }
        octo.forward_unsubscribed = self.octo_forward_all;
        if let Some(path) = &self.wan_delays {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lab = geomesh_edge::lab::WanLab::parse(&text)
                .with_context(|| format!("{}", path.display()))?;
            octo.set_wan_delays(&lab.octo)?;
            config.access_lab = lab.access;
        }
        config.octo = Some(octo);
        config.last_n.video = self.last_n;
        config.bwe = self.bwe;
        config.max_connections = self.max_connections.max(1);
        config.max_connections_per_address = self.max_connections_per_address.max(1);
        config.trusted_proxies = self.trusted_proxies.clone();
        config.spread_above = (self.spread_above > 0).then_some(self.spread_above);
        if let Some(n) = self.media_workers {
            config.media_workers = n.max(1);
        }
        let edge = topology.edge(&self.id).context("edge not in topology")?;
        // The agent's client TLS: this edge's certificate, the cluster CA.
        let node_tls = geomesh_selector::tls::NodeTls::load(&tls, self.id.as_str())
            .context("loading this edge's cluster certificate")?;
        config.agent = Some(AgentConfig {
            edge: self.id.clone(),
            capacity: edge.capacity,
            base_url: edge.base_url(),
            selectors: topology
                .selectors
                .iter()
                .map(|s| (s.id.clone(), s.raft))
                .collect(),
            tls: (*node_tls.client).clone(),
            heartbeat: topology.policy.heartbeat_interval,
            describe: Some(geomesh_core::agent::EdgeDescription {
                region: edge.region.clone(),
                capacity: edge.capacity,
                public_ip: edge.public_ip,
            }),
            about: geomesh_core::agent::EdgeAbout {
                version: env!("CARGO_PKG_VERSION").to_string(),
                started_ms: geomesh_core::grant::unix_now() * 1000,
                sent_ms: 0,
                media: edge.media_advertised(),
                topology_hash: topology.hash(),
                token_key: config.verifier.key_id(),
                cert_not_after: std::fs::read(tls.node_cert(self.id.as_str()))
                    .ok()
                    .and_then(|pem| geomesh_core::credentials::cert_not_after(&pem).ok())
                    .unwrap_or(0),
            },
        });
        let drain_timeout: std::time::Duration = self.drain_timeout.into();
        let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
        rt.block_on(async move {
            let edge = start(config).await?;
            tracing::info!(edge = %self.id, url = %format!("http://{}/", edge.http_addr), "edge ready");
            super::shutdown_signal().await;
            tracing::info!(edge = %self.id, timeout = ?drain_timeout, "stopping: moving participants to other edges");
            // A second signal stops at once.
            tokio::select! {
                _ = edge.shutdown(drain_timeout) => {}
                _ = super::shutdown_signal() => tracing::warn!("stopping now"),
            }
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
