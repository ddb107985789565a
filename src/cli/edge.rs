//! `geomesh edge`: run one edge bridge.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use geomesh_core::EdgeId;
use geomesh_core::token::{TokenSigner, TokenVerifier};
use geomesh_core::topology::TlsSettings;
use geomesh_edge::agent::AgentConfig;
use geomesh_edge::server::{EdgeConfig, start};

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
    /// tokens with certs/token.key. Never use in production.
    #[arg(long)]
    dev: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let topology = super::load_topology(&self.topology)?;
        let tls = TlsSettings {
            dir: self.certs.clone(),
        };
        let verifier = TokenVerifier::load(&tls.token_public_key())?;
        let mut config = EdgeConfig::from_topology(&topology, &self.id, verifier)?;
        if self.dev {
            config.dev_signer = Some(TokenSigner::load(&tls.token_key())?);
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
        });
        let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
        rt.block_on(async move {
            let edge = start(config).await?;
            tracing::info!(edge = %self.id, url = %format!("http://{}/", edge.http_addr), "edge ready");
            super::shutdown_signal().await;
            tracing::info!(edge = %self.id, "stopping");
            edge.server.abort();
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
