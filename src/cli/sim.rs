//! `geomesh sim SCENARIO.yaml --out DIR`, `geomesh sim plan SCENARIO.yaml --candidates R,… --k N`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use geomesh_sim::plan::{PlanError, plan};
use geomesh_sim::{Scenario, ScenarioError, SimError, Study};

/// Run a latency study: every strategy of a scenario file over the same
/// simulated meetings, writing summary.csv/.json, latency_cdf.csv,
/// edges.csv, edges_per_conference.csv, load.csv and SVG plots into DIR.
/// Exit 0 on success, 2 if the scenario is invalid (each problem printed as
/// FILE:LINE:COLUMN: error: PATH: MESSAGE).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The scenario file (see simulations/scenarios/ and docs/SIMULATIONS.md).
    #[arg(required = true)]
    scenario: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, short, required = true)]
    out: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Provisioning: which K regions out of the candidates minimise the p95
    /// pair latency of the scenario's population (greedy); prints what each
    /// added region buys and draws p95 against the number of regions.
    Plan(PlanArgs),
}

#[derive(clap::Args)]
struct PlanArgs {
    /// The scenario file (its population, meetings and geomesh policy are used).
    scenario: PathBuf,
    /// Candidate regions, comma-separated: the scenario's region ids or
    /// measured AWS region names (us-east-1, eu-central-1, …).
    #[arg(long, value_delimiter = ',', required = true)]
    candidates: Vec<String>,
    /// How many regions to choose.
    #[arg(long)]
    k: usize,
    /// Where to write plan_p95.svg (created if missing).
    #[arg(long, short, default_value = ".")]
    out: PathBuf,
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (Some(scenario), Some(out)) = (self.scenario, self.out) else {
            return match self.command {
                Some(Command::Plan(p)) => p.run(),
                // clap requires both without a subcommand.
                None => Ok(ExitCode::from(super::EXIT_INVALID)),
            };
        };
        study(&scenario, &out)
    }
}

/// Prints an invalid scenario's problems; exit 2.
fn invalid(path: &Path, diagnostics: &[geomesh_core::topology::Diagnostic]) -> ExitCode {
    let show = path.display();
    for d in diagnostics {
        println!("{show}:{d}");
    }
    println!("{show}: invalid: {} error(s)", diagnostics.len());
    ExitCode::from(super::EXIT_INVALID)
}

impl PlanArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let scenario = match Scenario::load(&self.scenario) {
            Ok(s) => s,
            Err(ScenarioError::Invalid { diagnostics }) => {
                return Ok(invalid(&self.scenario, &diagnostics));
            }
            Err(e) => return Err(e.into()),
        };
        let p = match plan(&scenario, &self.candidates, self.k) {
            Ok(p) => p,
            Err(
                e @ (PlanError::UnknownCandidate(_)
                | PlanError::Duplicate(_)
                | PlanError::BadK { .. }),
            ) => {
                return Err(super::InvalidInput(e.to_string()).into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut before: Option<(f64, f64)> = None;
        for (i, s) in p.steps.iter().enumerate() {
            let tried: Vec<String> = s
                .tried
                .iter()
                .map(|t| format!("{} {:.1}", t.region, t.p95_ms))
                .collect();
            let buys = before.map_or(String::new(), |(p95, mean)| {
                format!(
                    " (buys {:.1} ms p95, {:.1} ms mean)",
                    p95 - s.best.p95_ms,
                    mean - s.best.mean_ms
                )
            });
            println!(
                "{}. +{}: p95 {:.1} ms, mean {:.1} ms, {:.1} % of pairs > 150 ms{buys}; tried p95: {}",
                i + 1,
                s.best.region,
                s.best.p95_ms,
                s.best.mean_ms,
                s.best.share_above_150ms * 100.0,
                tried.join(", ")
            );
            before = Some((s.best.p95_ms, s.best.mean_ms));
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("creating {}", self.out.display()))?;
        let svg = self.out.join("plan_p95.svg");
        p.write_plot(
            &format!("{}: p95 pair latency against regions", scenario.name),
            &svg,
        )?;
        let regions = p
            .steps
            .last()
            .map(|s| s.regions.join(","))
            .unwrap_or_default();
        println!("chosen: {regions}; wrote {}", svg.display());
        Ok(ExitCode::SUCCESS)
    }
}

fn study(scenario: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let show = scenario.display();
    let started = std::time::Instant::now();
    match Study::run_file(scenario, out) {
        Ok((study, files)) => {
            print!("{}", geomesh_sim::report::summary_csv(&study));
            println!(
                "{show}: {} meetings, {} participants, {} strategies in {:.1} s; wrote {} files to {}",
                study.meetings.meetings.len(),
                study.meetings.participants.len(),
                study.runs.len(),
                started.elapsed().as_secs_f64(),
                files.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(SimError::Scenario(ScenarioError::Invalid { diagnostics })) => {
            Ok(invalid(scenario, &diagnostics))
        }
        Err(e) => Err(e.into()),
    }
}
