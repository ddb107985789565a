//! Join storms: many joins between two heartbeats (Jicofo's failure was 58
//! of 92 joins in 31 s on one bridge while 10 others idled).

use geomesh_core::{EdgeId, RegionId};

use super::tests::{at, world};
use super::*;

/// Places `clients` one after another with no heartbeat in between, each in
/// a new conference, counting placements as the selector does. Returns the
/// per-edge counts.
fn storm(
    policy: &PlacementPolicy,
    regions: &[RegionSite],
    edges: &mut [EdgeStatus],
    clients: &[(f64, f64)],
    n: usize,
) -> Vec<u32> {
    let mut counts = vec![0u32; edges.len()];
    for i in 0..n {
        let (lat, lon) = clients[i % clients.len()];
        let p = place(
            policy,
            ClusterView::new(regions, edges),
            &PlacementRequest {
                location: Some(at(lat, lon)),
                ..Default::default()
            },
        )
        .unwrap();
        counts[p.edge.get()] += 1;
        edges[p.edge.get()].record_placement();
    }
    counts
}

/// Ten idle edges in one region (Frankfurt), capacity 100 each.
fn ten_in_frankfurt() -> (Vec<RegionSite>, Vec<EdgeStatus>) {
    let regions = vec![RegionSite {
        id: RegionId::new("eu-central-1").unwrap(),
        location: at(50.11, 8.68),
    }];
    let edges = (0..10)
        .map(|i| EdgeStatus::new(EdgeId::new(format!("fra-{i}")).unwrap(), RegionIdx(0), 100))
        .collect();
    (regions, edges)
}

// European cities from world_cities.csv (GeoNames).
const EUROPE: [(f64, f64); 6] = [
    (52.5244, 13.4105), // Berlin
    (48.8534, 2.3488),  // Paris
    (41.8919, 12.5113), // Rome
    (52.2298, 21.0118), // Warsaw
    (40.4165, -3.7026), // Madrid
    (52.374, 4.8897),   // Amsterdam
];

#[test]
fn join_storm_of_100_spreads_over_10_idle_edges() {
    let (regions, mut edges) = ten_in_frankfurt();
    let counts = storm(
        &PlacementPolicy::default(),
        &regions,
        &mut edges,
        &EUROPE,
        100,
    );
    // Fair share is 10; allow a margin of 1.
    assert!(counts.iter().all(|&c| (9..=11).contains(&c)), "{counts:?}");
    assert_eq!(counts.iter().sum::<u32>(), 100);
}

#[test]
fn without_burst_safety_the_storm_piles_onto_one_edge() {
    // The failure burst safety exists for: stale heartbeats say "idle".
    let (regions, mut edges) = ten_in_frankfurt();
    let naive = PlacementPolicy {
        burst_safety: false,
        ..PlacementPolicy::default()
    };
    let counts = storm(&naive, &regions, &mut edges, &EUROPE, 100);
    assert_eq!(counts[0], 100, "{counts:?}");
}

#[test]
fn storm_with_heartbeats_in_between_stays_even() {
    let (regions, mut edges) = ten_in_frankfurt();
    let policy = PlacementPolicy::default();
    let mut total = vec![0u32; edges.len()];
    for _round in 0..5 {
        let counts = storm(&policy, &regions, &mut edges, &EUROPE, 40);
        for (t, c) in total.iter_mut().zip(&counts) {
            *t += c;
        }
        // Heartbeat: each edge reports what it really has.
        for (e, t) in edges.iter_mut().zip(&total) {
            e.heartbeat(*t, *t as f64 / e.capacity as f64);
        }
    }
    assert!(total.iter().all(|&c| (19..=21).contains(&c)), "{total:?}");
}

#[test]
fn storm_across_regions_balances_within_each_region() {
    // All 18 edges of the 9 measured regions; European clients land in
    // London and Frankfurt only, evenly within each.
    let (regions, mut edges) = world();
    let counts = storm(
        &PlacementPolicy::default(),
        &regions,
        &mut edges,
        &EUROPE,
        120,
    );
    for (e, c) in edges.iter().zip(&counts) {
        let r = regions[e.region.get()].id.as_str();
        if r == "eu-west-2" || r == "eu-central-1" {
            assert!(*c > 0, "{counts:?}");
        } else {
            assert_eq!(*c, 0, "{} {counts:?}", e.id.as_str());
        }
    }
    for pair in counts.chunks(2) {
        assert!(pair[0].abs_diff(pair[1]) <= 1, "{counts:?}");
    }
}

#[test]
fn storm_fills_to_the_threshold_then_moves_on() {
    // One small edge in Frankfurt, one in London: Berlin clients take the
    // Frankfurt edge to 0.8 × 10 = 8 placements, then London.
    let (regions, mut edges) = world();
    edges.retain(|e| e.id.as_str() == "eu-central-1-a" || e.id.as_str() == "eu-west-2-a");
    for e in &mut edges {
        e.capacity = 10;
    }
    let counts = storm(
        &PlacementPolicy::default(),
        &regions,
        &mut edges,
        &EUROPE[..1],
        16,
    );
    let by_id: Vec<(&str, u32)> = edges.iter().map(|e| e.id.as_str()).zip(counts).collect();
    assert_eq!(by_id, [("eu-west-2-a", 8), ("eu-central-1-a", 8)]);
    // Both at the threshold: the 17th join is refused.
    let e = place(
        &PlacementPolicy::default(),
        ClusterView::new(&regions, &edges),
        &PlacementRequest {
            location: Some(at(52.5244, 13.4105)),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, PlacementError::NoCandidate(x) if x.overloaded == 2));
}

#[test]
fn one_big_conference_from_everywhere_respects_the_cap() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy::default();
    // Cities on every continent (world_cities.csv).
    let clients = [
        (52.5244, 13.4105),   // Berlin
        (41.85, -87.65),      // Chicago
        (37.566, 126.9784),   // Seoul
        (-34.6131, -58.3772), // Buenos Aires
        (28.6519, 77.2315),   // Delhi
        (-37.814, 144.9633),  // Melbourne
        (47.6062, -122.3321), // Seattle
    ];
    let mut conference: Vec<ConferenceEdge> = Vec::new();
    for i in 0..100 {
        let (lat, lon) = clients[i % clients.len()];
        let p = place(
            &policy,
            ClusterView::new(&regions, &edges),
            &PlacementRequest {
                location: Some(at(lat, lon)),
                probes: &[],
                conference: &conference,
            },
        )
        .unwrap();
        edges[p.edge.get()].record_placement();
        match conference.iter_mut().find(|c| c.edge == p.edge) {
            Some(c) => c.participants += 1,
            None => conference.push(ConferenceEdge {
                edge: p.edge,
                participants: 1,
            }),
        }
    }
    assert_eq!(conference.len(), policy.max_edges_per_conference as usize);
    assert_eq!(conference.iter().map(|c| c.participants).sum::<u32>(), 100);
}
