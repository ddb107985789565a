//! The `geomesh` command: one binary for every role and tool.
//!
//! This crate holds only the command line; every behaviour lives in the
//! library crates (`geomesh-core`, `geomesh-geoip`, …).

mod cli;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// str0m allocates per packet (payloads, queue entries): glibc's malloc
/// and free were ~3.5 % of the edge's CPU in a profile under load,
/// mimalloc's thread-local free lists ~2 % (docs/DECISIONS.md, "Multi-core").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// geomesh: a multi-region WebRTC conferencing mesh.
///
/// Regional edge bridges relay media between themselves over QUIC octo
/// links; a Raft-replicated selector places each participant on the nearest
/// healthy edge. One topology.yaml describes the whole rollout.
#[derive(Parser)]
#[command(name = "geomesh", version, about, long_about, propagate_version = true)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=geomesh=debug).
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Pretty)]
    log_format: logging::Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check topology files.
    #[command(subcommand)]
    Topology(cli::topology::Command),
    /// Look up client locations.
    #[command(subcommand)]
    Geoip(cli::geoip::Command),
    /// Create cluster credentials (CA, node certificates, token key).
    #[command(subcommand)]
    Certs(cli::certs::Command),
    /// Mint and verify join tokens.
    #[command(subcommand)]
    Token(cli::token::Command),
    /// Run one edge bridge (SFU).
    Edge(cli::edge::Args),
    /// Run one recording node.
    Recorder(cli::recorder::Args),
    /// Start, stop or look at a conference's recording.
    #[command(subcommand)]
    Recording(cli::recording::Command),
    /// Run a selector node, or manage the selector cluster.
    Selector(cli::selector::Args),
    /// Start a local mesh on loopback (no setup needed).
    Dev(cli::dev::Args),
    /// Drain an edge: no new participants; optionally move the current ones.
    Drain(cli::drain::Args),
    /// Show the cluster: regions, edges, selectors, octo links.
    Status(cli::status::Args),
    /// Check the cluster for the common mistakes; exit 1 if any check fails.
    Doctor(cli::doctor::Args),
    /// Render the cloud rollout (Terraform) of a topology.
    #[command(subcommand)]
    Deploy(cli::deploy::Command),
    /// Run a latency study (simulations) from a scenario file.
    Sim(cli::sim::Args),
    /// Load edges with many WebRTC participants and measure them.
    Loadgen(cli::loadgen::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for the whole process (see DESIGN.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    logging::init(cli.log_format);
    let result = match cli.command {
        Command::Topology(c) => c.run(),
        Command::Geoip(c) => c.run(),
        Command::Certs(c) => c.run(),
        Command::Token(c) => c.run(),
        Command::Edge(a) => a.run(),
        Command::Recorder(a) => a.run(),
        Command::Recording(c) => c.run(),
        Command::Selector(a) => a.run(),
        Command::Dev(a) => a.run(cli.log_format),
        Command::Drain(a) => a.run(),
        Command::Status(a) => a.run(),
        Command::Doctor(a) => a.run(),
        Command::Deploy(c) => c.run(),
        Command::Sim(a) => a.run(),
        Command::Loadgen(a) => a.run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cli::InvalidInput>().is_some() {
                ExitCode::from(cli::EXIT_INVALID)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
