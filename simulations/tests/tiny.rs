//! Hand-computed tiny scenarios: 2 regions (London, Frankfurt: measured
//! 15 ms apart), 3 participants, every strategy, exact latencies.
//!
//! Model in these scenarios: RTT = 10 ms + 0.01 ms/km; fixed terms 20
//! (sender) + 40 (jitter buffer) + 0 (receiver) = 60 ms, 1 ms per edge.
//! London–Frankfurt great-circle distance with the regions' coordinates:
//! d = 637.8580916180805 km (haversine, R = 6371.0088 km; computed
//! independently), so a Frankfurt participant's RTT to London is
//! 10 + 0.01·d = 16.378580916180805 ms.

use std::path::Path;

use geomesh_sim::engine::{RunOptions, TracePair, TracePlacement};
use geomesh_sim::{Scenario, Study, StudyOptions};

const TINY: &str = r#"
version: 1
name: tiny
seed: 1
horizon: 1h
regions:
  - { id: eu-west-2, location: { lat: 51.51, lon: -0.13 }, group: europe }
  - { id: eu-central-1, location: { lat: 50.11, lon: 8.68 }, group: europe }
edges:
  - { region: eu-west-2, capacity: 10 }
  - { region: eu-central-1, capacity: 10 }
meetings:
  scripted:
    - start: 0s
      duration: 1h
      participants:
        - { location: { lat: 51.51, lon: -0.13 } }            # P0, London
        - { location: { lat: 50.11, lon: 8.68 }, join: 1s }   # P1, Frankfurt
        - { location: { lat: 50.11, lon: 8.68 }, join: 2s }   # P2, Frankfurt
latency:
  rtt_model: { base_ms: 10, ms_per_km: 0.01 }
  sender_ms: 20
  jitter_buffer_ms: 40
  receiver_ms: 0
  per_edge_ms: 1
media: { audio_kbps: 40, video_kbps: 760 }
strategies: [single, region, nearest, geomesh]
"#;

/// P1 or P2 (Frankfurt) with P0 (London), all on the London edge:
/// 16.378…/2 + 10/2 + 60 + 1.
const SHARED_LONDON_FRA_LON: f64 = 74.189_290_458_090_4;
/// P2 with P1, both Frankfurt participants on the London edge: 16.378… + 61.
const SHARED_LONDON_FRA_FRA: f64 = 77.378_580_916_180_81;
/// P1/P2 on Frankfurt with P0 on London: 10/2 + 15/2 (measured) + 10/2 + 60 + 2.
const SPLIT_FRA_LON: f64 = 79.5;
/// P2 with P1, both on Frankfurt: 10/2 + 10/2 + 60 + 1.
const SPLIT_FRA_FRA: f64 = 71.0;

fn run(yaml: &str) -> Study {
    let s = Scenario::parse(yaml, Path::new(".")).expect("valid scenario");
    Study::run(
        s,
        StudyOptions {
            run: RunOptions { trace: true },
            ..StudyOptions::default()
        },
    )
    .unwrap()
}

fn edges_of(study: &Study, strategy: usize) -> Vec<u32> {
    let t = study.runs[strategy].trace.as_ref().unwrap();
    t.placements.iter().map(|p| p.edge).collect()
}

fn pairs_of(study: &Study, strategy: usize) -> Vec<(u32, u32, f64)> {
    let t = study.runs[strategy].trace.as_ref().unwrap();
    t.pairs.iter().map(|p| (p.a, p.b, p.one_way_ms)).collect()
}

fn close(got: &[(u32, u32, f64)], want: &[(u32, u32, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{got:?}");
        assert!((g.2 - w.2).abs() < 1e-9, "{got:?} vs {want:?}");
    }
}

#[test]
fn every_strategy_places_and_measures_exactly() {
    let study = run(TINY);
    let names: Vec<&str> = study.runs.iter().map(|r| r.report.name.as_str()).collect();
    assert_eq!(names, ["single", "region", "nearest", "geomesh"]);
    let shared = [
        (1, 0, SHARED_LONDON_FRA_LON),
        (2, 0, SHARED_LONDON_FRA_LON),
        (2, 1, SHARED_LONDON_FRA_FRA),
    ];
    let split = [
        (1, 0, SPLIT_FRA_LON),
        (2, 0, SPLIT_FRA_LON),
        (2, 1, SPLIT_FRA_FRA),
    ];
    // single: everyone on the first participant's (London) edge.
    assert_eq!(edges_of(&study, 0), [0, 0, 0]);
    close(&pairs_of(&study, 0), &shared);
    // region: Frankfurt's group (europe) already has the conference's
    // London edge, which is not overloaded: Jicofo keeps it there.
    assert_eq!(edges_of(&study, 1), [0, 0, 0]);
    close(&pairs_of(&study, 1), &shared);
    // nearest: Frankfurt participants on Frankfurt.
    assert_eq!(edges_of(&study, 2), [0, 1, 1]);
    close(&pairs_of(&study, 2), &split);
    // geomesh: London is 6.38 ms worse for Frankfurt, but a pair through
    // Frankfurt would cross the backbone (15 ms) and a second edge: the
    // conference's edge is the cheapest for the conference (reuse).
    assert_eq!(edges_of(&study, 3), [0, 0, 0]);
    close(&pairs_of(&study, 3), &shared);
    let g = &study.runs[3].report;
    assert_eq!(g.reasons.get("affinity_reuse"), Some(&2));
    assert_eq!(g.reasons.get("nearest"), Some(&1));

    // Summaries follow from the traces.
    let n = &study.runs[2].report;
    assert_eq!(n.latency.pairs, 3);
    assert_eq!(n.latency.p50_ms, 79.5);
    assert_eq!(n.latency.share_above_150ms, 0.0);
    assert_eq!(n.edges_per_conference.histogram, [0, 0, 1]);
    assert_eq!(study.runs[0].report.edges_per_conference.histogram, [0, 1]);
    // Relay: 800 kbit/s = 100 bytes/ms per participant. Frankfurt joins at
    // 1 s: 2 participants' media cross from 1 s; 3 from 2 s to 1 h.
    let want = 200 * 1_000 + 300 * (3_600_000 - 2_000);
    assert_eq!(n.relay.inter_region_bytes, want);
    assert_eq!(n.relay.intra_region_bytes, 0);
    assert_eq!(study.runs[0].report.relay.inter_region_bytes, 0);
    for r in &study.runs {
        assert_eq!(
            (r.report.joins, r.report.placed, r.report.rejected),
            (3, 3, 0)
        );
    }
}

#[test]
fn geomesh_in_the_simulator_is_the_selectors_function() {
    // Change a knob of the selector's own PlacementPolicy and the
    // simulator's geomesh run changes with it.
    let mut s = Scenario::parse(TINY, Path::new(".")).unwrap();
    s.strategies.retain(|x| x.name == "geomesh");
    let policy: &mut geomesh_selector::strategy::PlacementPolicy = &mut s.strategies[0].policy;
    // An access leg weighted 4× the backbone: Frankfurt's pair with London
    // costs less over the backbone than over the long access leg.
    policy.access_weight = 4.0;
    let study = Study::run(
        s,
        StudyOptions {
            run: RunOptions { trace: true },
            ..StudyOptions::default()
        },
    )
    .unwrap();
    assert_eq!(edges_of(&study, 0), [0, 1, 1]);
    close(
        &pairs_of(&study, 0),
        &[
            (1, 0, SPLIT_FRA_LON),
            (2, 0, SPLIT_FRA_LON),
            (2, 1, SPLIT_FRA_FRA),
        ],
    );
    // And the same knob from the scenario file.
    let yaml = TINY.replace(
        "strategies: [single, region, nearest, geomesh]",
        "strategies:\n  - { name: tight, strategy: geomesh, policy: { access_weight: 4 } }\n  - { name: capped, strategy: geomesh, policy: { access_weight: 4, max_edges_per_conference: 1 } }",
    );
    let study = run(&yaml);
    assert_eq!(edges_of(&study, 0), [0, 1, 1]);
    // A cap of 1 keeps everyone on London whatever the weights.
    assert_eq!(edges_of(&study, 1), [0, 0, 0]);
    assert_eq!(study.runs[1].report.reasons.get("cap_reached"), Some(&2));
}

#[test]
fn an_edge_failure_displaces_and_replaces_after_detection() {
    // London's edge fails at 10 min; heartbeats every 1 s (edge 0's phase
    // is 0), health timeout 3 s: detected at 603 s. P2 joins London at
    // 601 s, before detection: a blind placement, displaced too.
    let yaml = TINY
        .replace(
            "        - { location: { lat: 50.11, lon: 8.68 }, join: 1s }   # P1, Frankfurt\n        - { location: { lat: 50.11, lon: 8.68 }, join: 2s }   # P2, Frankfurt",
            "        - { location: { lat: 51.51, lon: -0.13 }, join: 1s }\n        - { location: { lat: 51.51, lon: -0.13 }, join: 601s }",
        )
        .replace(
            "strategies: [single, region, nearest, geomesh]",
            "strategies: [single, geomesh]\nfailures:\n  - { at: 10m, edge: eu-west-2-1 }\npolicy: { heartbeat_interval: 1s, health_timeout: 3s }",
        );
    let study = run(&yaml);
    for r in &study.runs {
        let rep = &r.report;
        assert_eq!(rep.displaced, 3, "{}", rep.name);
        assert_eq!(rep.blind_placements, 1, "{}", rep.name);
        assert_eq!(rep.displaced_rejected, 0, "{}", rep.name);
        let t = r.trace.as_ref().unwrap();
        let re: Vec<TracePlacement> = t
            .placements
            .iter()
            .copied()
            .filter(|p| p.replacement)
            .collect();
        assert_eq!(re.len(), 3, "{}", rep.name);
        assert!(re.iter().all(|p| p.t == 603_000 && p.edge == 1), "{re:?}");
        // Re-formed pairs, all on Frankfurt: 16.378…/2 · 2 + 60 + 1.
        let after: Vec<TracePair> = t.pairs.iter().copied().filter(|p| p.t == 603_000).collect();
        assert_eq!(after.len(), 3, "{after:?}");
        for p in after {
            assert!((p.one_way_ms - SHARED_LONDON_FRA_FRA).abs() < 1e-9, "{p:?}");
        }
        assert_eq!(rep.edges[0].peak_load, 2);
        assert_eq!(rep.edges[1].peak_load, 3);
    }
}
