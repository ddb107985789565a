//! `geomesh topology …`

use std::path::PathBuf;
use std::process::ExitCode;

use geomesh_core::Topology;
use geomesh_core::topology::TopologyError;

/// Topology subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate a topology file: exit 0 if valid (warnings allowed), 2 if
    /// invalid; every problem is printed on its own line as
    /// FILE:LINE:COLUMN: SEVERITY: PATH: MESSAGE.
    Check {
        /// The topology file.
        file: PathBuf,
    },
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let Command::Check { file } = self;
        let show = file.display();
        match Topology::load(&file) {
            Ok(l) => {
                for w in &l.warnings {
                    println!("{show}:{w}");
                }
                let t = l.topology;
                println!(
                    "{show}: valid: {} regions, {} edges, {} selectors, {} warning(s)",
                    t.regions.len(),
                    t.edges.len(),
                    t.selectors.len(),
                    l.warnings.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(TopologyError::Invalid { diagnostics }) => {
                Ok(super::invalid_topology(&file, &diagnostics))
            }
            Err(e) => Err(e.into()),
        }
    }
}
