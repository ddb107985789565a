//! `geomesh recorder`: run one recording node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use geomesh_core::EdgeId;
use geomesh_core::topology::TlsSettings;
use geomesh_recorder::node::{NodeConfig, RecorderNode};

/// Run one recording node: an octo peer of the edges that writes the
/// conferences the selectors assign it, one WebM file per participant's
/// track.
#[derive(clap::Args)]
pub struct Args {
    /// The topology file.
    #[arg(long)]
    topology: PathBuf,
    /// This recorder's id in the topology (`recorders:`).
    #[arg(long)]
    id: EdgeId,
    /// The credentials directory from `geomesh certs init`.
    #[arg(long)]
    certs: PathBuf,
    /// Where recordings go: a directory per recording.
    #[arg(long)]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let topology = super::load_topology(&self.topology)?;
        let me = topology.recorder(&self.id).with_context(|| {
            format!(
                "{} is not a recorder of {} (recorders:)",
                self.id,
                self.topology.display()
            )
        })?;
        let tls = TlsSettings {
            dir: self.certs.clone(),
        };
        let credentials = geomesh_mesh::tls::Credentials::load(&tls, self.id.as_str())
            .context("loading this recorder's octo credentials")?;
        let node_tls = geomesh_selector::tls::NodeTls::load(&tls, self.id.as_str())
            .context("loading this recorder's cluster certificate")?;
        let operator_token = match &topology.access.operator_token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("reading the operator token {}", p.display()))?
                    .trim()
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        let cfg = NodeConfig {
            id: self.id.clone(),
            region: me.region.clone(),
            octo_bind: std::net::SocketAddr::new(me.bind_ip, me.octo.port()),
            http_bind: std::net::SocketAddr::new(me.bind_ip, me.http.port()),
            credentials,
            edges: topology
                .edges
                .iter()
                .map(|e| (e.id.clone(), e.octo))
                .collect(),
            selectors: topology
                .selectors
                .iter()
                .map(|s| (s.id.clone(), s.raft))
                .collect(),
            agent_tls: node_tls.client.clone(),
            heartbeat: topology.policy.heartbeat_interval,
            out: self.out.clone(),
            operator_token,
        };
        let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
        rt.block_on(async move {
            let node = RecorderNode::start(cfg).await?;
            tracing::info!(recorder = %self.id, url = %format!("http://{}/", node.http_addr), out = %self.out.display(), "recorder ready");
            super::shutdown_signal().await;
            tracing::info!(recorder = %self.id, "stopping: closing every recording");
            tokio::select! {
                () = node.shutdown() => {}
                () = super::shutdown_signal() => tracing::warn!("stopping now"),
            }
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
