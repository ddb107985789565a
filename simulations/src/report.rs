//! CSV and JSON outputs. Numbers are printed with fixed precision so that
//! the same seed gives byte-identical files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use geomesh_selector::strategy::{Calibration, RttModel};
use serde::Serialize;

use crate::latency::PairSource;
use crate::metrics::StrategyReport;
use crate::scenario::Scenario;
use crate::study::{SimError, Study};

/// `summary.csv` columns.
pub const SUMMARY_HEADER: &str = "strategy,kind,joins,placed,rejected,over_capacity,displaced,\
displaced_rejected,blind_placements,pairs,latency_mean_ms,latency_p50_ms,latency_p95_ms,\
latency_p99_ms,latency_max_ms,share_above_150ms,share_above_300ms,edges_per_conference_mean,\
edges_per_conference_p95,edges_per_conference_max,peak_edge_load,peak_edge_stress,\
relay_inter_region_gb,relay_intra_region_gb";

fn write(dir: &Path, name: &str, text: &str, files: &mut Vec<PathBuf>) -> Result<(), SimError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| SimError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    files.push(path);
    Ok(())
}

fn kind_name(r: &StrategyReport) -> &'static str {
    match r.kind {
        crate::scenario::StrategyKind::Single => "single",
        crate::scenario::StrategyKind::Region => "region",
        crate::scenario::StrategyKind::Nearest => "nearest",
        crate::scenario::StrategyKind::Geomesh => "geomesh",
    }
}

/// One `summary.csv` row (no newline).
pub fn summary_row(r: &StrategyReport) -> String {
    let peak = r.edges.iter().map(|e| e.peak_load).max().unwrap_or(0);
    let stress = r.edges.iter().map(|e| e.peak_stress).fold(0.0, f64::max);
    let l = &r.latency;
    let e = &r.edges_per_conference;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.1},{:.1},{:.1},{:.4},{:.4},{:.3},{},{},{},{:.3},{:.3},{:.3}",
        r.name,
        kind_name(r),
        r.joins,
        r.placed,
        r.rejected,
        r.over_capacity,
        r.displaced,
        r.displaced_rejected,
        r.blind_placements,
        l.pairs,
        l.mean_ms,
        l.p50_ms,
        l.p95_ms,
        l.p99_ms,
        l.max_ms,
        l.share_above_150ms,
        l.share_above_300ms,
        e.mean,
        e.p95,
        e.max,
        peak,
        stress,
        r.relay.inter_region_bytes as f64 / 1e9,
        r.relay.intra_region_bytes as f64 / 1e9,
    )
}

/// The whole `summary.csv`.
pub fn summary_csv(study: &Study) -> String {
    let mut s = String::from(SUMMARY_HEADER);
    s.push('\n');
    for run in &study.runs {
        s.push_str(&summary_row(&run.report));
        s.push('\n');
    }
    s
}

/// The largest latency worth plotting: the highest p99 rounded up to 50 ms
/// plus 50, at least 200 ms.
pub fn cdf_limit_ms(study: &Study) -> u32 {
    let p99 = study
        .runs
        .iter()
        .map(|r| r.report.latency.p99_ms)
        .fold(0.0, f64::max);
    (((p99 / 50.0).ceil() * 50.0) as u32 + 50).clamp(200, 2000)
}

#[derive(Serialize)]
struct ModelInfo {
    rtt_model_base_ms: f64,
    rtt_model_ms_per_km: f64,
    fitted: bool,
    fit_rmse_ms: f64,
    fit_max_abs_error_ms: f64,
    regions: Vec<String>,
    region_rtt_ms: Vec<Vec<f64>>,
    region_rtt_source: Vec<Vec<PairSource>>,
}

#[derive(Serialize)]
struct Summary<'a> {
    scenario: &'a Scenario,
    meetings: usize,
    participants: usize,
    latency_model: ModelInfo,
    strategies: Vec<&'a StrategyReport>,
}

/// Writes `summary.csv`, `summary.json`, `latency_cdf.csv`, `edges.csv`,
/// `edges_per_conference.csv` and `load.csv`.
pub(crate) fn write_tables(study: &Study, dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    let mut files = Vec::new();
    let s = &study.scenario;
    write(dir, "summary.csv", &summary_csv(study), &mut files)?;

    // Latency CDF, one column per strategy.
    let limit = cdf_limit_ms(study);
    let cdfs: Vec<Vec<(u32, f64)>> = study.runs.iter().map(|r| r.histogram.cdf(limit)).collect();
    let mut t = String::from("latency_ms");
    for r in &study.runs {
        let _ = write!(t, ",{}", r.report.name);
    }
    t.push('\n');
    for ms in 0..=limit as usize {
        let _ = write!(t, "{ms}");
        for c in &cdfs {
            let _ = write!(t, ",{:.6}", c[ms].1);
        }
        t.push('\n');
    }
    write(dir, "latency_cdf.csv", &t, &mut files)?;

    // Per edge.
    let mut t = String::from("strategy,edge,region,capacity,peak_load,peak_stress,placements\n");
    for r in &study.runs {
        for e in &r.report.edges {
            let _ = writeln!(
                t,
                "{},{},{},{},{},{:.3},{}",
                r.report.name, e.id, e.region, e.capacity, e.peak_load, e.peak_stress, e.placements
            );
        }
    }
    write(dir, "edges.csv", &t, &mut files)?;

    // Edges per conference, one column per strategy.
    let rows = study
        .runs
        .iter()
        .map(|r| r.report.edges_per_conference.histogram.len())
        .max()
        .unwrap_or(0);
    let mut t = String::from("edges");
    for r in &study.runs {
        let _ = write!(t, ",{}", r.report.name);
    }
    t.push('\n');
    for k in 1..rows {
        let _ = write!(t, "{k}");
        for r in &study.runs {
            let h = &r.report.edges_per_conference.histogram;
            let _ = write!(t, ",{}", h.get(k).copied().unwrap_or(0));
        }
        t.push('\n');
    }
    write(dir, "edges_per_conference.csv", &t, &mut files)?;

    // Load over time: one column per (strategy, edge).
    let mut t = String::from("t_h");
    for r in &study.runs {
        for e in &s.edges {
            let _ = write!(t, ",{}/{}", r.report.name, e.id);
        }
    }
    t.push('\n');
    if let Some(first) = study.runs.first() {
        for (k, time) in first.load.times.iter().enumerate() {
            let _ = write!(t, "{:.4}", *time as f64 / 3_600_000.0);
            for r in &study.runs {
                for l in &r.load.loads[k] {
                    let _ = write!(t, ",{l}");
                }
            }
            t.push('\n');
        }
    }
    write(dir, "load.csv", &t, &mut files)?;

    // JSON: the scenario as understood, the model and every report.
    let n = s.regions.len();
    let model = s.latency.rtt_model;
    let fit = RttModel::fit(&Calibration::embedded().samples()).ok();
    let info = ModelInfo {
        rtt_model_base_ms: model.base_ms,
        rtt_model_ms_per_km: model.ms_per_km,
        fitted: model == RttModel::FITTED,
        fit_rmse_ms: fit.map_or(0.0, |f| f.rmse_ms),
        fit_max_abs_error_ms: fit.map_or(0.0, |f| f.max_abs_error_ms),
        regions: s
            .regions
            .iter()
            .map(|r| r.id.as_str().to_string())
            .collect(),
        region_rtt_ms: (0..n)
            .map(|i| (0..n).map(|j| study.latency.region_rtt(i, j).0).collect())
            .collect(),
        region_rtt_source: (0..n)
            .map(|i| (0..n).map(|j| study.latency.region_rtt(i, j).1).collect())
            .collect(),
    };
    let summary = Summary {
        scenario: s,
        meetings: study.meetings.meetings.len(),
        participants: study.meetings.participants.len(),
        latency_model: info,
        strategies: study.runs.iter().map(|r| &r.report).collect(),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(|e| SimError::Io {
        path: dir.join("summary.json"),
        message: e.to_string(),
    })?;
    write(dir, "summary.json", &(json + "\n"), &mut files)?;
    Ok(files)
}
