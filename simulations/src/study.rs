//! A whole study: every strategy of a scenario, in parallel, then outputs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::engine::{RunOptions, RunOutput, run};
use crate::latency::LatencyModel;
use crate::population::PopulationError;
use crate::scenario::{Scenario, ScenarioError};
use crate::workload::Meetings;

/// Joins (over all strategies) above which a progress bar is shown on a terminal.
const PROGRESS_MIN_JOINS: u64 = 200_000;

/// Why a study failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario is invalid or unreadable.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The population could not be built.
    #[error(transparent)]
    Population(#[from] PopulationError),
    /// An output could not be written.
    #[error("cannot write {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        message: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// The error.
        message: String,
    },
}

/// A scenario's meetings, latency tables and every strategy's run.
#[derive(Debug, Clone)]
pub struct Study {
    /// The scenario.
    pub scenario: Scenario,
    /// The meetings all strategies replayed.
    pub meetings: Meetings,
    /// The latency tables.
    pub latency: LatencyModel,
    /// One run per strategy, in scenario order.
    pub runs: Vec<RunOutput>,
}

/// How to run a study.
#[derive(Debug, Clone, Copy)]
pub struct StudyOptions {
    /// Run strategies on rayon's pool (results are identical either way).
    pub parallel: bool,
    /// Show a progress bar on stderr if it is a terminal and the run is long.
    pub progress: bool,
    /// Engine options.
    pub run: RunOptions,
}

impl Default for StudyOptions {
    fn default() -> Self {
        Self {
            parallel: true,
            progress: false,
            run: RunOptions::default(),
        }
    }
}

impl Study {
    /// Draws the meetings once and runs every strategy over them.
    pub fn run(scenario: Scenario, opts: StudyOptions) -> Result<Study, SimError> {
        let meetings = Meetings::generate(&scenario)?;
        let latency = LatencyModel::new(&scenario, &meetings.sites, meetings.participants.len());
        let total = meetings.participants.len() as u64 * scenario.strategies.len() as u64;
        let bar = if opts.progress && total >= PROGRESS_MIN_JOINS && std::io::stderr().is_terminal()
        {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {human_pos}/{human_len} joins, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_message(scenario.name.clone());
            b
        } else {
            ProgressBar::hidden()
        };
        let tick = |n: u64| bar.inc(n);
        let one = |spec| run(&scenario, &meetings, &latency, spec, opts.run, &tick);
        let runs: Vec<RunOutput> = if opts.parallel {
            scenario.strategies.par_iter().map(one).collect()
        } else {
            scenario.strategies.iter().map(one).collect()
        };
        bar.finish_and_clear();
        Ok(Study {
            scenario,
            meetings,
            latency,
            runs,
        })
    }

    /// Loads `scenario`, runs it (with a progress bar on a terminal) and
    /// writes every output into `out_dir`; returns the files written.
    pub fn run_file(scenario: &Path, out_dir: &Path) -> Result<(Study, Vec<PathBuf>), SimError> {
        let s = Scenario::load(scenario)?;
        let study = Study::run(
            s,
            StudyOptions {
                progress: true,
                ..StudyOptions::default()
            },
        )?;
        let files = study.write(out_dir)?;
        Ok((study, files))
    }

    /// Writes CSV, JSON and SVG outputs into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
        std::fs::create_dir_all(dir).map_err(|e| SimError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut files = crate::report::write_tables(self, dir)?;
        files.extend(crate::plots::write_plots(self, dir)?);
        Ok(files)
    }
}
