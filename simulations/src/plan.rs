//! Provisioning: which N regions, out of some candidates, give a
//! population the lowest p95 pair latency under the production strategy.
//!
//! Greedy forward selection: step k adds the candidate whose region set
//! (the k − 1 already chosen plus it) has the lowest p95, then mean, then
//! comes first in the candidate list. Each set is run over the same
//! meetings with one edge per region, sized so that nobody is refused (the
//! question is latency, not capacity), and without the scenario's failures.

use geomesh_core::{EdgeId, RegionId};
use geomesh_selector::strategy::{Calibration, PlacementPolicy};
use rayon::prelude::*;

use crate::engine::{RunOptions, run};
use crate::latency::LatencyModel;
use crate::population::PopulationError;
use crate::scenario::{Scenario, SimEdge, SimRegion, StrategyKind, StrategySpec};
use crate::study::SimError;
use crate::workload::Meetings;

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A candidate is neither a region of the scenario nor a measured region.
    #[error(
        "unknown candidate region {0:?}: not in the scenario's regions nor in the measured set"
    )]
    UnknownCandidate(String),
    /// A candidate is listed twice.
    #[error("candidate region {0:?} is listed twice")]
    Duplicate(String),
    /// `k` is 0 or more than the candidates.
    #[error("k = {k} must be between 1 and the number of candidates ({candidates})")]
    BadK {
        /// Asked for.
        k: usize,
        /// Candidates given.
        candidates: usize,
    },
    /// The population could not be built.
    #[error(transparent)]
    Population(#[from] PopulationError),
}

/// One candidate region set, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The candidate added.
    pub region: String,
    /// p95 pair latency with it, ms.
    pub p95_ms: f64,
    /// Mean pair latency with it, ms.
    pub mean_ms: f64,
    /// Share of pairs above 150 ms.
    pub share_above_150ms: f64,
}

/// One greedy step.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStep {
    /// The regions chosen so far, this step's last.
    pub regions: Vec<String>,
    /// The winning trial.
    pub best: Trial,
    /// Every candidate tried at this step, in candidate order.
    pub tried: Vec<Trial>,
}

/// The greedy plan, one step per added region.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Steps 1..=k.
    pub steps: Vec<PlanStep>,
}

impl Plan {
    /// Draws p95 (and mean) against the number of regions as SVG.
    pub fn write_plot(&self, title: &str, path: &std::path::Path) -> Result<(), SimError> {
        let points: Vec<(usize, f64, f64, String)> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (i + 1, s.best.p95_ms, s.best.mean_ms, s.best.region.clone()))
            .collect();
        crate::plots::plan_curve(title, &points, path)
    }
}

/// Plans `k` regions out of `candidates` (region ids of the scenario, or
/// names of measured regions) for the scenario's population.
pub fn plan(scenario: &Scenario, candidates: &[String], k: usize) -> Result<Plan, PlanError> {
    let pool = resolve(scenario, candidates)?;
    if k == 0 || k > pool.len() {
        return Err(PlanError::BadK {
            k,
            candidates: pool.len(),
        });
    }
    let meetings = Meetings::generate(scenario)?;
    let spec = production_spec(scenario);
    let mut chosen: Vec<usize> = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..k {
        let left: Vec<usize> = (0..pool.len()).filter(|i| !chosen.contains(i)).collect();
        let tried: Vec<(usize, Trial)> = left
            .par_iter()
            .map(|&c| {
                let mut set = chosen.clone();
                set.push(c);
                (c, trial(scenario, &meetings, &spec, &pool, &set))
            })
            .collect();
        // Deterministic: lowest p95, then mean, then candidate order.
        let Some((pick, best)) = tried.iter().min_by(|a, b| {
            a.1.p95_ms
                .total_cmp(&b.1.p95_ms)
                .then(a.1.mean_ms.total_cmp(&b.1.mean_ms))
                .then(a.0.cmp(&b.0))
        }) else {
            break;
        };
        chosen.push(*pick);
        steps.push(PlanStep {
            regions: chosen.iter().map(|&i| pool[i].id.to_string()).collect(),
            best: best.clone(),
            tried: tried.into_iter().map(|t| t.1).collect(),
        });
    }
    Ok(Plan { steps })
}

/// The scenario's first `geomesh` strategy, else `geomesh` with its policy's defaults.
fn production_spec(s: &Scenario) -> StrategySpec {
    s.strategies
        .iter()
        .find(|x| x.kind == StrategyKind::Geomesh)
        .cloned()
        .unwrap_or_else(|| StrategySpec {
            name: "geomesh".into(),
            kind: StrategyKind::Geomesh,
            policy: s
                .strategies
                .first()
                .map_or_else(PlacementPolicy::default, |x| x.policy),
        })
}

/// Candidates as regions: the scenario's own, else measured regions by name.
fn resolve(s: &Scenario, candidates: &[String]) -> Result<Vec<SimRegion>, PlanError> {
    let cal = Calibration::embedded();
    let mut out: Vec<SimRegion> = Vec::new();
    for name in candidates {
        if out.iter().any(|r| r.id.as_str() == name) {
            return Err(PlanError::Duplicate(name.clone()));
        }
        if let Some(r) = s.regions.iter().find(|r| r.id.as_str() == name) {
            out.push(r.clone());
            continue;
        }
        let known = cal.regions.iter().find(|r| &r.name == name);
        let (Some(m), Ok(id)) = (known, RegionId::new(name.clone())) else {
            return Err(PlanError::UnknownCandidate(name.clone()));
        };
        out.push(SimRegion {
            id,
            location: m.location,
            group: None,
            measured_as: Some(m.name.clone()),
        });
    }
    Ok(out)
}

/// Runs the production strategy with one edge per region of `set`.
fn trial(
    s: &Scenario,
    meetings: &Meetings,
    spec: &StrategySpec,
    pool: &[SimRegion],
    set: &[usize],
) -> Trial {
    let mut sc = s.clone();
    sc.regions = set.iter().map(|&i| pool[i].clone()).collect();
    let capacity = u32::try_from(meetings.participants.len())
        .unwrap_or(u32::MAX)
        .max(1);
    sc.edges = sc
        .regions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some(SimEdge {
                id: EdgeId::new(format!("{}-1", r.id)).ok()?,
                region: i,
                capacity,
            })
        })
        .collect();
    sc.failures.clear();
    sc.strategies = vec![spec.clone()];
    let lat = LatencyModel::new(&sc, &meetings.sites, meetings.participants.len());
    let out = run(&sc, meetings, &lat, spec, RunOptions::default(), &|_| {});
    let l = out.report.latency;
    // Panic means bug: every trial adds one region to the set.
    let added = *set.last().expect("a trial set is never empty");
    Trial {
        region: pool[added].id.to_string(),
        p95_ms: l.p95_ms,
        mean_ms: l.mean_ms,
        share_above_150ms: l.share_above_150ms,
    }
}
