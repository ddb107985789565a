//! One module per subcommand group.

pub mod certs;
pub mod deploy;
pub mod dev;
mod dev_monitor;
mod dev_wan;
pub mod doctor;
pub mod drain;
pub mod edge;
pub mod geoip;
pub mod loadgen;
pub mod operator;
pub mod recorder;
pub mod recording;
pub mod selections;
pub mod selector;
pub mod sim;
pub mod status;
pub mod token;
pub mod topology;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use geomesh_core::Topology;
use geomesh_core::topology::{Diagnostic, Severity, TopologyError};

/// Exit code for "the input is invalid" (bad topology, refused token).
pub const EXIT_INVALID: u8 = 2;

/// Input that is wrong, already described to the operator: the command
/// exits with [`EXIT_INVALID`] (so a service manager knows a restart
/// cannot help).
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// Loads a topology for a command that needs a valid one, printing warnings
/// to the log and every error with its position.
pub fn load_topology(path: &Path) -> anyhow::Result<Topology> {
    match Topology::load(path) {
        Ok(l) => {
            for w in &l.warnings {
                tracing::warn!("{}:{w}", path.display());
            }
            Ok(l.topology)
        }
        Err(TopologyError::Invalid { diagnostics }) => {
            let lines: Vec<String> = diagnostics
                .iter()
                .map(|d| format!("{}:{d}", path.display()))
                .collect();
            Err(InvalidInput(format!("invalid topology:\n{}", lines.join("\n"))).into())
        }
        Err(e) => Err(e).context("loading topology"),
    }
}

/// Prints every problem of an invalid topology on its own line
/// (`FILE:LINE:COL: SEVERITY: PATH: MESSAGE`) and a count; exit code 2.
pub fn invalid_topology(path: &Path, diagnostics: &[Diagnostic]) -> ExitCode {
    let show = path.display();
    for d in diagnostics {
        println!("{show}:{d}");
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    println!("{show}: invalid: {errors} error(s)");
    ExitCode::from(EXIT_INVALID)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
