//! `geomesh sim SCENARIO.yaml --out DIR`

use std::path::PathBuf;
use std::process::ExitCode;

use geomesh_sim::{ScenarioError, SimError, Study};

/// Run a latency study: every strategy of a scenario file over the same
/// simulated meetings, writing summary.csv/.json, latency_cdf.csv,
/// edges.csv, edges_per_conference.csv, load.csv and SVG plots into DIR.
/// Exit 0 on success, 2 if the scenario is invalid (each problem printed as
/// FILE:LINE:COLUMN: error: PATH: MESSAGE).
#[derive(clap::Args)]
pub struct Args {
    /// The scenario file (see simulations/scenarios/ and docs/SIMULATIONS.md).
    scenario: PathBuf,
    /// Output directory (created if missing).
    #[arg(long, short)]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let show = self.scenario.display();
        let started = std::time::Instant::now();
        match Study::run_file(&self.scenario, &self.out) {
            Ok((study, files)) => {
                print!("{}", geomesh_sim::report::summary_csv(&study));
                println!(
                    "{show}: {} meetings, {} participants, {} strategies in {:.1} s; wrote {} files to {}",
                    study.meetings.meetings.len(),
                    study.meetings.participants.len(),
                    study.runs.len(),
                    started.elapsed().as_secs_f64(),
                    files.len(),
                    self.out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(SimError::Scenario(ScenarioError::Invalid { diagnostics })) => {
                for d in &diagnostics {
                    println!("{show}:{d}");
                }
                println!("{show}: invalid: {} error(s)", diagnostics.len());
                Ok(ExitCode::from(super::EXIT_INVALID))
            }
            Err(e) => Err(e.into()),
        }
    }
}
