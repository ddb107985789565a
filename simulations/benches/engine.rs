//! Simulated joins per second, single-threaded and with runs in parallel
//! (rayon), and memory per simulated participant.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-sim cargo bench -p geomesh-sim --bench engine
//! ```
//!
//! Workload: `scenarios/global-6-region.yaml` stretched to 72 h (about one
//! million joins per strategy). Wall-clock figures are printed, never
//! asserted; the parallel figure is also given as a ratio to the
//! sequential run in the same process (these machines are noisy).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use geomesh_sim::engine::{RunOptions, run};
use geomesh_sim::workload::Meetings;
use geomesh_sim::{LatencyModel, Scenario};
use rayon::prelude::*;

/// Counts live and peak heap bytes (for memory per participant).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/global-6-region.yaml");
    let yaml = std::fs::read_to_string(&path).expect("scenario file");
    let yaml = yaml.replace("horizon: 24h", "horizon: 72h");
    Scenario::parse(&yaml, path.parent().expect("dir")).expect("valid scenario")
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once, small.
    let quick = std::env::args().any(|a| a == "--test");
    let mut s = scenario();
    if quick {
        s.horizon /= 72;
    }
    s.strategies.truncate(4);

    // Memory: meetings + latency tables + one run, per participant.
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let meetings = Meetings::generate(&s).expect("population");
    let latency = LatencyModel::new(&s, &meetings.sites, meetings.participants.len());
    let after_workload = LIVE.load(Ordering::Relaxed);
    let n = meetings.participants.len();
    let geomesh = s
        .strategies
        .iter()
        .find(|x| x.name == "geomesh")
        .expect("geomesh strategy");
    let out = run(
        &s,
        &meetings,
        &latency,
        geomesh,
        RunOptions::default(),
        &|_| {},
    );
    let peak = PEAK.load(Ordering::Relaxed) - base;
    drop(out);
    println!(
        "workload: {} meetings, {n} participants; heap: workload {:.1} B/participant, peak with one run {:.1} B/participant ({:.1} MiB)",
        meetings.meetings.len(),
        (after_workload - base) as f64 / n as f64,
        peak as f64 / n as f64,
        peak as f64 / (1024.0 * 1024.0)
    );

    // Single-threaded joins per second, per strategy (best of 3).
    let mut sequential_s = 0.0;
    for spec in &s.strategies {
        let mut best = f64::INFINITY;
        for _ in 0..if quick { 1 } else { 3 } {
            let t = Instant::now();
            let out = run(
                &s,
                &meetings,
                &latency,
                spec,
                RunOptions::default(),
                &|_| {},
            );
            best = best.min(t.elapsed().as_secs_f64());
            assert_eq!(out.report.joins as usize, n);
        }
        sequential_s += best;
        println!(
            "single-threaded {:>8}: {n} joins in {best:.3} s = {:.0} joins/s",
            spec.name,
            n as f64 / best
        );
    }

    // The same four runs on rayon's pool.
    let t = Instant::now();
    let joins: u64 = s
        .strategies
        .par_iter()
        .map(|spec| {
            run(
                &s,
                &meetings,
                &latency,
                spec,
                RunOptions::default(),
                &|_| {},
            )
            .report
            .joins
        })
        .sum();
    let parallel_s = t.elapsed().as_secs_f64();
    println!(
        "parallel ({} threads): {joins} joins in {parallel_s:.3} s = {:.0} joins/s; {:.2}x the sequential sum ({sequential_s:.3} s)",
        rayon::current_num_threads(),
        joins as f64 / parallel_s,
        sequential_s / parallel_s
    );
}
