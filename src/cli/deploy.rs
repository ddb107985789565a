//! `geomesh deploy …`

use std::path::PathBuf;
use std::process::ExitCode;

use geomesh_core::Topology;
use geomesh_core::topology::TopologyError;
use geomesh_deploy::DeployError;

/// Cloud rollout subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Write the Terraform root for a topology: per region a provider
    /// configuration and the network, edge and selector modules (and, in
    /// recorders.tf, the recorder modules when the topology has recorders),
    /// the topology's data as geomesh.auto.tfvars, and copies of the modules.
    /// Exit 2 when the topology cannot be deployed, each problem on its own
    /// line as FILE: error: PATH: MESSAGE.
    Render {
        /// The topology file.
        #[arg(long)]
        topology: PathBuf,
        /// The directory to write (created if missing; other files in it
        /// are left alone).
        #[arg(long)]
        out: PathBuf,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Command::Render { topology, out } = self;
        let show = topology.display();
        let loaded = match Topology::load(&topology) {
            Ok(l) => l,
            Err(TopologyError::Invalid { diagnostics }) => {
                return Ok(super::invalid_topology(&topology, &diagnostics));
            }
            Err(e) => return Err(e.into()),
        };
        for w in &loaded.warnings {
            eprintln!("{show}:{w}");
        }
        match geomesh_deploy::render(&loaded.topology, &topology, &out) {
            Ok(files) => {
                for f in &files {
                    println!("{}", f.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(DeployError::Undeployable(problems)) => {
                for p in &problems {
                    println!("{show}: {p}");
                }
                println!("{show}: cannot be deployed: {} error(s)", problems.len());
                Ok(ExitCode::from(super::EXIT_INVALID))
            }
            Err(e) => Err(e.into()),
        }
    }
}
