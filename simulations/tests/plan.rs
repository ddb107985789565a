//! `geomesh sim plan`: greedy provisioning over a small scripted population.

use std::path::Path;

use geomesh_sim::Scenario;
use geomesh_sim::plan::{PlanError, plan};

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan-tiny.yaml");
    Scenario::load(&path).expect("valid scenario")
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn greedy_steps_buy_latency_and_draw_the_curve() {
    let s = scenario();
    let candidates = names(&["ap-northeast-1", "us-east-1", "eu-central-1", "eu-west-2"]);
    let p = plan(&s, &candidates, 3).expect("a plan");
    assert_eq!(p.steps.len(), 3);
    // Most pairs are European: a European region first, then Virginia for
    // the American meeting.
    assert!(
        p.steps[0].best.region.starts_with("eu-"),
        "{:?}",
        p.steps[0]
    );
    assert_eq!(p.steps[1].best.region, "us-east-1");
    assert_eq!(p.steps[2].regions.len(), 3);
    // Each step tried every region not yet chosen, and kept the lowest p95.
    for (i, step) in p.steps.iter().enumerate() {
        assert_eq!(step.tried.len(), candidates.len() - i);
        let min = step
            .tried
            .iter()
            .map(|t| t.p95_ms)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(step.best.p95_ms, min);
    }
    assert!(p.steps[1].best.p95_ms < p.steps[0].best.p95_ms);
    assert!(p.steps[2].best.p95_ms <= p.steps[1].best.p95_ms);
    // Deterministic.
    assert_eq!(plan(&s, &candidates, 3).unwrap(), p);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plan_p95.svg");
    p.write_plot("plan-tiny", &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("<svg") && text.contains("+us-east-1"),
        "{text}"
    );
}

#[test]
fn bad_candidates_and_k_are_typed_errors() {
    let s = scenario();
    let err = plan(&s, &names(&["eu-west-2", "mars-1"]), 1).unwrap_err();
    assert!(matches!(err, PlanError::UnknownCandidate(ref n) if n == "mars-1"));
    let err = plan(&s, &names(&["eu-west-2", "eu-west-2"]), 1).unwrap_err();
    assert!(matches!(err, PlanError::Duplicate(_)));
    for k in [0, 3] {
        let err = plan(&s, &names(&["eu-west-2", "us-east-1"]), k).unwrap_err();
        assert!(
            matches!(err, PlanError::BadK { candidates: 2, .. }),
            "{err}"
        );
    }
}
