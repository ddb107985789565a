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
    /// Issue certificates, with the existing cluster CA, for the nodes of the
    /// topology that have none yet (an edge or selector added to a running
    /// cluster). Existing files are never touched.
    Add {
        /// The topology listing the new nodes.
        #[arg(long)]
        topology: PathBuf,
        /// The credentials directory of `certs init` (ca.pem and ca.key are read).
        #[arg(long)]
        out: PathBuf,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (w, out) = match self {
            Command::Init {
                topology,
                out,
                force,
            } => {
                let t = super::load_topology(&topology)?;
                (credentials::init(&t, &out, force, SystemTime::now())?, out)
            }
            Command::Add { topology, out } => {
                let t = super::load_topology(&topology)?;
                (credentials::add(&t, &out, SystemTime::now())?, out)
            }
        };
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
