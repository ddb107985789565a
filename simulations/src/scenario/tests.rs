use std::path::Path;

use super::*;

const GOOD: &str = r#"version: 1
name: small
seed: 7
horizon: 2h
start: 2025-01-15T00:00:00Z
regions:
  - { id: us-east-1, location: { lat: 39.04, lon: -77.49 }, group: americas }
  - { id: frankfurt, location: { lat: 50.11, lon: 8.68 }, measured_as: eu-central-1 }
  - { id: nowhere, location: { lat: 0.0, lon: 0.0 } }
edges:
  - { region: us-east-1, capacity: 100, count: 2 }
  - { region: frankfurt, capacity: 50 }
population:
  continents: [EU, NA]
  diurnal: { active_hours: [8, 18], off_hours_weight: 0.2 }
  locality: { same_country: 0.5, same_continent: 0.3 }
meetings:
  arrivals_per_hour: 100
  sizes:
    - { size: 2, weight: 3 }
    - { min: 3, max: 8, weight: 1 }
  duration: { lognormal: { median: 30m, sigma: 0.5 } }
  join_spread: 1m
policy: { heartbeat_interval: 5s, relay_ms: 3 }
strategies:
  - single
  - geomesh
  - { name: geomesh-nb, strategy: geomesh, policy: { burst_safety: false } }
failures:
  - { at: 1h, region: frankfurt, recover_at: 90m }
"#;

fn errors(yaml: &str) -> Vec<String> {
    Scenario::parse(yaml, Path::new("."))
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn good_scenario() {
    let s = Scenario::parse(GOOD, Path::new(".")).unwrap();
    assert_eq!(s.horizon, 7_200_000);
    assert_eq!(s.start_unix_s, 1_736_899_200);
    let ids: Vec<&str> = s.edges.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["us-east-1-1", "us-east-1-2", "frankfurt-1"]);
    assert_eq!(s.regions[0].measured_as.as_deref(), Some("us-east-1"));
    assert_eq!(s.regions[1].measured_as.as_deref(), Some("eu-central-1"));
    assert_eq!(s.regions[2].measured_as, None);
    assert_eq!(s.heartbeat_interval, 5_000);
    assert_eq!(s.health_timeout, 15_000);
    assert_eq!(s.strategies.len(), 3);
    assert_eq!(s.strategies[1].policy.relay_ms, 3.0);
    assert!(s.strategies[1].policy.burst_safety);
    assert!(!s.strategies[2].policy.burst_safety);
    assert_eq!(s.strategies[2].policy.relay_ms, 3.0);
    assert_eq!(s.failures[0].target, FailureTarget::Region(1));
    assert_eq!(s.failures[0].recover_at, Some(5_400_000));
    let Workload::Generated(g) = &s.workload else {
        panic!("generated")
    };
    assert_eq!(g.sizes.len(), 2);
    assert_eq!(g.join_spread, 60_000);
}

#[test]
fn topology_file_supplies_regions_edges_and_policy() {
    let yaml = GOOD
        .replace(
            "regions:\n  - { id: us-east-1, location: { lat: 39.04, lon: -77.49 }, group: americas }\n  - { id: frankfurt, location: { lat: 50.11, lon: 8.68 }, measured_as: eu-central-1 }\n  - { id: nowhere, location: { lat: 0.0, lon: 0.0 } }\nedges:\n  - { region: us-east-1, capacity: 100, count: 2 }\n  - { region: frankfurt, capacity: 50 }\n",
            "topology: ../topology.example.yaml\n",
        )
        .replace("region: frankfurt", "region: eu-central")
        .replace("heartbeat_interval: 5s, ", "");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let s = Scenario::parse(&yaml, dir).unwrap();
    assert!(s.regions.len() >= 5);
    let euc = s
        .regions
        .iter()
        .find(|r| r.id.as_str() == "eu-central")
        .unwrap();
    assert_eq!(euc.measured_as.as_deref(), Some("eu-central-1"));
    assert!(!s.edges.is_empty());
    // The topology's policy, then the scenario's overrides.
    assert_eq!((s.heartbeat_interval, s.health_timeout), (1_000, 3_000));
    assert_eq!(s.strategies[1].policy.relay_ms, 3.0);
    // A heartbeat slower than the topology's timeout is pointed at.
    let e = errors_in(
        &yaml.replacen("policy: {", "policy: { heartbeat_interval: 5s,", 1),
        dir,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("18:31: error: policy.health_timeout"),
        "{e:?}"
    );
}

fn errors_in(yaml: &str, dir: &Path) -> Vec<String> {
    Scenario::parse(yaml, dir)
        .unwrap_err()
        .diagnostics()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn syntax_and_type_errors_are_positioned() {
    let e = errors("version: 1\nname: x\nseed: 1\nhorizon: 1h\nbogus: 3\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("5:1: error: unknown field `bogus`"),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("horizon: 2h", "horizon: soon"));
    assert!(
        e[0].starts_with("4:10: error: invalid duration \"soon\""),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("seed: 7", "seed: -7"));
    assert!(e[0].starts_with("3:7: error:"), "{e:?}");
}

#[test]
fn semantic_errors_are_positioned() {
    let bad = GOOD
        .replace(
            "{ region: frankfurt, capacity: 50 }",
            "{ region: frankfort, capacity: 0 }",
        )
        .replace("measured_as: eu-central-1", "measured_as: eu-central-9")
        .replace("continents: [EU, NA]", "continents: [EU, XX]")
        .replace("{ size: 2, weight: 3 }", "{ size: 2, min: 1, weight: 3 }")
        .replace("  - single\n", "  - singel\n")
        .replace(
            "region: frankfurt, recover_at: 90m",
            "region: frankfurt, recover_at: 30m",
        )
        .replace("off_hours_weight: 0.2", "off_hours_weight: 0");
    let e = errors(&bad);
    let want = [
        "8:72: error: regions[1].measured_as: \"eu-central-9\" is not in the measured matrix",
        "12:15: error: edges[1].region: unknown region \"frankfort\"",
        "14:20: error: population.continents[1]: \"XX\" is not a continent code",
        "15:55: error: population.diurnal.off_hours_weight: must be in (0, 1]",
        "20:34: error: meetings.sizes[0]: give `size`, or `min` and `max`",
        "26:5: error: strategies[0]: unknown strategy \"singel\"",
        "30:46: error: failures[0].recover_at: must be after `at`",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, want) in e.iter().zip(want) {
        assert!(got.starts_with(want), "{got}\n  wanted {want}");
    }
}

#[test]
fn structural_errors() {
    let e = errors(&GOOD.replace("start: 2025-01-15T00:00:00Z\n", ""));
    assert!(
        e.iter()
            .any(|d| d.contains("population.diurnal: needs `start`")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("horizon: 2h", "horizon: 0s"));
    assert!(
        e.iter()
            .any(|d| d.starts_with("4:10: error: horizon: must be positive")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("name: small", "name: ../etc"));
    assert!(
        e.iter().any(|d| d.starts_with("2:7: error: name:")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("continents: [EU, NA]", "countries: [ZZ]"));
    assert!(
        e.iter().any(|d| d.contains("the filters leave no city")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace(
        "policy: { heartbeat_interval: 5s,",
        "policy: { health_timeout: 1s,",
    ));
    assert!(
        e.iter().any(|d| d.contains("policy.health_timeout")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("{ burst_safety: false }", "{ heartbeat_interval: 2s }"));
    assert!(
        e.iter()
            .any(|d| d.contains("per scenario, not per strategy")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace(
        "  - { at: 1h, region: frankfurt, recover_at: 90m }",
        "  - { at: 1h, edge: frankfurt-9 }\n  - { at: 1h }",
    ));
    assert!(
        e.iter().any(|d| d.contains("unknown edge \"frankfurt-9\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|d| d.contains("exactly one of `edge` or `region`")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("arrivals_per_hour: 100", "arrivals_per_hour: -1"));
    assert!(
        e.iter().any(|d| d.contains("meetings.arrivals_per_hour")),
        "{e:?}"
    );
    let e = errors(&GOOD.replace("sigma: 0.5", "sigma: 9"));
    assert!(e.iter().any(|d| d.contains("meetings.duration")), "{e:?}");
    let e = errors(&GOOD.replace(
        "  - { region: us-east-1, capacity: 100, count: 2 }\n",
        "  - { region: us-east-1, capacity: 100, count: 0 }\n",
    ));
    assert!(e.iter().any(|d| d.contains("edges[0].count")), "{e:?}");
    let e = errors(&GOOD.replace("version: 1", "version: 2"));
    assert!(
        e.iter().any(|d| d.starts_with("1:10: error: version")),
        "{e:?}"
    );
    // Missing I/O is an I/O error, not a panic.
    assert!(matches!(
        Scenario::load(Path::new("/nonexistent/scenario.yaml")),
        Err(ScenarioError::Io { .. })
    ));
}

#[test]
fn impairments_and_weights_are_checked_with_positions() {
    let imp = "\nlatency:\n  impairments:\n    access:\n      - { name: fixed, share: 0.6, loss_pct: 0.2, jitter_ms: 2 }\n      - { name: mobile, share: 0.3, loss_pct: 101, jitter_ms: 8 }\n    backbone_jitter_ms: -1\npolicy:";
    let bad = GOOD
        .replace("\npolicy:", imp)
        .replace("relay_ms: 3", "relay_ms: -3");
    let e = errors(&bad);
    let has = |s: &str| e.iter().any(|d| d.contains(s));
    assert!(
        has("error: latency.impairments.access[1].loss_pct: 101 is outside [0, 100]"),
        "{e:?}"
    );
    assert!(
        has("error: latency.impairments.backbone_jitter_ms: -1"),
        "{e:?}"
    );
    assert!(
        has("error: latency.impairments.access: shares sum to 0.900, not 1"),
        "{e:?}"
    );
    assert!(has("error: policy.relay_ms: -3"), "{e:?}");
    // Every one of them positioned (LINE:COL: first).
    assert!(e.iter().all(|d| d.as_bytes()[0].is_ascii_digit()), "{e:?}");
    // A valid block parses, with the factor's default.
    let ok = GOOD.replace(
        "\npolicy:",
        "\nlatency:\n  impairments:\n    access: [{ name: any, share: 1, loss_pct: 1, jitter_ms: 3 }]\npolicy:",
    );
    let s = Scenario::parse(&ok, Path::new(".")).expect("valid");
    let i = s.latency.impairments.expect("impairments");
    assert_eq!((i.access.len(), i.jitter_buffer_factor), (1, 2.0));
}
