//! Runs a scenario like `geomesh sim`, without building the whole binary:
//!
//! ```text
//! cargo run --release -p geomesh-sim --example study -- SCENARIO.yaml OUT_DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use geomesh_sim::{SimError, Study};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [scenario, out] = &args[..] else {
        eprintln!("usage: study SCENARIO.yaml OUT_DIR");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    match Study::run_file(&PathBuf::from(scenario), &PathBuf::from(out)) {
        Ok((study, files)) => {
            print!("{}", geomesh_sim::report::summary_csv(&study));
            println!(
                "{scenario}: {} meetings, {} participants in {:.1} s; wrote {} files",
                study.meetings.meetings.len(),
                study.meetings.participants.len(),
                started.elapsed().as_secs_f64(),
                files.len()
            );
            ExitCode::SUCCESS
        }
        Err(SimError::Scenario(e)) if !e.diagnostics().is_empty() => {
            for d in e.diagnostics() {
                eprintln!("{scenario}:{d}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
