//! Same seed ⇒ byte-identical outputs; a different seed ⇒ different ones.

use std::path::Path;

use geomesh_sim::{Scenario, Study, StudyOptions};

/// A small generated scenario: European population, 3 regions, 2 hours.
const SMALL: &str = r#"
version: 1
name: small
seed: 11
horizon: 2h
start: 2025-01-15T06:00:00Z
regions:
  - { id: eu-west-2, location: { lat: 51.51, lon: -0.13 } }
  - { id: eu-central-1, location: { lat: 50.11, lon: 8.68 } }
  - { id: us-east-1, location: { lat: 39.04, lon: -77.49 } }
edges:
  - { region: eu-west-2, capacity: 40, count: 2 }
  - { region: eu-central-1, capacity: 40, count: 2 }
  - { region: us-east-1, capacity: 40 }
population:
  continents: [EU, NA]
  diurnal: { active_hours: [8, 18], off_hours_weight: 0.2 }
  locality: { same_country: 0.5, same_continent: 0.3 }
meetings:
  arrivals_per_hour: 300
  sizes:
    - { size: 2, weight: 4 }
    - { min: 3, max: 10, weight: 2 }
  duration: { exponential: { mean: 20m } }
  join_spread: 2m
policy: { heartbeat_interval: 2s }
strategies: [single, region, nearest, geomesh]
failures:
  - { at: 1h, region: eu-central-1, recover_at: 90m }
"#;

fn outputs(yaml: &str, parallel: bool, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let s = Scenario::parse(yaml, Path::new(".")).unwrap();
    let study = Study::run(
        s,
        StudyOptions {
            parallel,
            ..StudyOptions::default()
        },
    )
    .unwrap();
    let mut files = study.write(dir).unwrap();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn same_seed_gives_byte_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = outputs(SMALL, true, &tmp.path().join("a"));
    let b = outputs(SMALL, false, &tmp.path().join("b"));
    let names: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "edge_load.svg",
            "edges.csv",
            "edges_per_conference.csv",
            "latency_cdf.csv",
            "latency_cdf.svg",
            "load.csv",
            "placements.svg",
            "summary.csv",
            "summary.json",
        ]
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between runs", x.0);
    }
    // The run did something worth comparing.
    let summary = String::from_utf8(a[7].1.clone()).unwrap();
    assert_eq!(summary.lines().count(), 5, "{summary}");
    let c = outputs(
        &SMALL.replace("seed: 11", "seed: 12"),
        true,
        &tmp.path().join("c"),
    );
    assert!(a[7].1 != c[7].1, "a different seed changed nothing");
}

#[test]
fn the_failure_displaces_and_strategies_differ() {
    let s = Scenario::parse(SMALL, Path::new(".")).unwrap();
    let study = Study::run(s, StudyOptions::default()).unwrap();
    let joins = study.runs[0].report.joins;
    assert!(joins > 500, "{joins}");
    for r in &study.runs {
        assert_eq!(r.report.joins, joins, "same meetings for every strategy");
        assert!(r.report.displaced > 0, "{}", r.report.name);
        // The failed region's edges carried nobody while it was down.
        let down = r
            .load
            .times
            .iter()
            .position(|&t| t > 3_600_000 + 10_000)
            .unwrap();
        let end = r.load.times.iter().position(|&t| t >= 5_400_000).unwrap();
        for k in down..end {
            assert_eq!(
                r.load.loads[k][2], 0,
                "{} at {}",
                r.report.name, r.load.times[k]
            );
            assert_eq!(r.load.loads[k][3], 0);
        }
    }
    let single = &study.runs[0].report;
    let nearest = &study.runs[2].report;
    assert_eq!(single.edges_per_conference.max, 1);
    assert!(nearest.edges_per_conference.max > 1);
    assert_eq!(single.relay.inter_region_bytes, 0);
    assert!(nearest.relay.inter_region_bytes > 0);
}
