//! `geomesh certs …`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use geomesh_core::credentials;

/// Credential subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create the cluster CA, one certificate and key per edge and selector
    /// (node id in the SAN), and the Ed25519 join-token key pair. Files are
    /// written 0600; existing files are never overwritten without --force.
    Init {
        /// The topology whose nodes get certificates.
        #[arg(long)]
        topology: PathBuf,
        /// The directory to write (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Replace existing credentials (all nodes must then get the new ones).
        #[arg(long)]
        force: bool,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Command::Init {
            topology,
            out,
            force,
        } = self;
        let t = super::load_topology(&topology)?;
        let w = credentials::init(&t, &out, force, SystemTime::now())?;
        for f in &w.files {
            println!("{}", f.display());
        }
        tracing::info!(
            files = w.files.len(),
            dir = %out.display(),
            "cluster credentials written; keep ca.key off the nodes"
        );
        Ok(ExitCode::SUCCESS)
    }
}
