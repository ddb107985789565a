//! Strategy table tests: real region coordinates (the embedded calibration
//! set, 9 AWS regions on 5 continents) and real city locations (GeoNames,
//! `world_cities.csv`).

use geomesh_core::{EdgeId, GeoPoint, RegionId, api::Probe};

use super::*;

/// The 9 measured regions, two edges each (`<region>-a`, `<region>-b`).
pub(super) fn world() -> (Vec<RegionSite>, Vec<EdgeStatus>) {
    let c = Calibration::embedded();
    let regions: Vec<RegionSite> = c
        .regions
        .iter()
        .map(|r| RegionSite {
            id: RegionId::new(r.name.clone()).unwrap(),
            location: r.location,
        })
        .collect();
    let mut edges = Vec::new();
    for (i, r) in c.regions.iter().enumerate() {
        for s in ["a", "b"] {
            let id = EdgeId::new(format!("{}-{s}", r.name)).unwrap();
            edges.push(EdgeStatus::new(id, RegionIdx(i as u32), 100));
        }
    }
    (regions, edges)
}

pub(super) fn at(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint::new(lat, lon).unwrap()
}

pub(super) fn idx(edges: &[EdgeStatus], id: &str) -> EdgeIdx {
    EdgeIdx(edges.iter().position(|e| e.id.as_str() == id).unwrap() as u32)
}

fn name(edges: &[EdgeStatus], p: &Placement) -> String {
    edges[p.edge.get()].id.as_str().to_string()
}

fn place_at(
    policy: &PlacementPolicy,
    regions: &[RegionSite],
    edges: &[EdgeStatus],
    location: GeoPoint,
    conference: &[ConferenceEdge],
) -> Placement {
    place(
        policy,
        ClusterView::new(regions, edges),
        &PlacementRequest {
            location: Some(location),
            probes: &[],
            conference,
        },
    )
    .unwrap()
}

// City coordinates from world_cities.csv (GeoNames).
const PARIS: (f64, f64) = (48.8534, 2.3488);
const BERLIN: (f64, f64) = (52.5244, 13.4105);
const CHICAGO: (f64, f64) = (41.85, -87.65);
const SEOUL: (f64, f64) = (37.566, 126.9784);

#[test]
fn table_nearest_region_by_geo_estimate() {
    let (regions, edges) = world();
    let policy = PlacementPolicy::default();
    // (city, lat, lon, expected edge): the nearest region's first edge
    // (both idle: the tie goes to the lower index).
    let table = [
        ("Paris", PARIS.0, PARIS.1, "eu-west-2-a"),
        ("Berlin", BERLIN.0, BERLIN.1, "eu-central-1-a"),
        ("Chicago", CHICAGO.0, CHICAGO.1, "us-east-1-a"),
        ("Seattle", 47.6062, -122.3321, "us-west-2-a"),
        ("Buenos Aires", -34.6131, -58.3772, "sa-east-1-a"),
        ("Seoul", SEOUL.0, SEOUL.1, "ap-northeast-1-a"),
        ("Jakarta", -6.2146, 106.8451, "ap-southeast-1-a"),
        ("Delhi", 28.6519, 77.2315, "ap-south-1-a"),
        ("Melbourne", -37.814, 144.9633, "ap-southeast-2-a"),
        ("Cairo", 30.0626, 31.2497, "eu-central-1-a"),
        ("Mexico City", 19.4285, -99.1277, "us-east-1-a"),
        ("Johannesburg", -26.2023, 28.0436, "ap-south-1-a"),
    ];
    for (city, lat, lon, want) in table {
        let p = place_at(&policy, &regions, &edges, at(lat, lon), &[]);
        assert_eq!(name(&edges, &p), want, "{city}");
        assert_eq!(p.reason, Reason::LeastStressedInRegion, "{city}");
        assert_eq!(p.rtt_source, RttSource::GeoEstimate, "{city}");
        assert_eq!(p.rtt_ms, p.best_rtt_ms, "{city}");
        let region = &regions[edges[p.edge.get()].region.get()];
        let expect = policy.rtt_model.rtt_between(at(lat, lon), region.location);
        assert_eq!(p.rtt_ms, expect, "{city}");
    }
}

#[test]
fn least_stressed_within_region_and_single_candidate_is_nearest() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy::default();
    let a = idx(&edges, "eu-central-1-a").get();
    let b = idx(&edges, "eu-central-1-b").get();
    edges[a].heartbeat(30, 0.3);
    edges[b].heartbeat(10, 0.1);
    let berlin = at(BERLIN.0, BERLIN.1);
    let p = place_at(&policy, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-central-1-b");
    assert_eq!(p.reason, Reason::LeastStressedInRegion);
    // Only one candidate left in the region: plain nearest.
    edges[b].draining = true;
    let p = place_at(&policy, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-central-1-a");
    assert_eq!(p.reason, Reason::Nearest);
}

#[test]
fn probes_beat_geoip_when_they_disagree() {
    let (regions, edges) = world();
    let policy = PlacementPolicy::default();
    // GeoIP says Berlin (Frankfurt is nearest), but the client measured
    // London at 20 ms and Frankfurt at 90 ms (a VPN exit, say).
    let probes = [
        ProbeRtt {
            edge: idx(&edges, "eu-west-2-a"),
            rtt_ms: 20.0,
        },
        ProbeRtt {
            edge: idx(&edges, "eu-central-1-a"),
            rtt_ms: 90.0,
        },
        ProbeRtt {
            edge: idx(&edges, "eu-central-1-b"),
            rtt_ms: 91.0,
        },
    ];
    let request = PlacementRequest {
        location: Some(at(BERLIN.0, BERLIN.1)),
        probes: &probes,
        conference: &[],
    };
    let view = ClusterView::new(&regions, &edges);
    let p = place(&policy, view, &request).unwrap();
    assert_eq!(name(&edges, &p), "eu-west-2-a");
    assert_eq!(p.rtt_source, RttSource::Probe);
    assert_eq!(p.rtt_ms, 20.0);
    // The unprobed London edge shares its region's probe (one location).
    assert_eq!(p.reason, Reason::LeastStressedInRegion);

    // A probe of a far region that is lower than every estimate wins too.
    let probes = [ProbeRtt {
        edge: idx(&edges, "ap-northeast-1-b"),
        rtt_ms: 5.0,
    }];
    let request = PlacementRequest {
        probes: &probes,
        ..request
    };
    // Its region wins: the other edge there is as near (one location)
    // and, as stressed, first by index.
    let p = place(&policy, view, &request).unwrap();
    assert_eq!(name(&edges, &p), "ap-northeast-1-a");
    assert_eq!(p.rtt_source, RttSource::Probe);
    assert_eq!(p.rtt_ms, 5.0);

    // From the API types: unknown edges are dropped.
    let api = [
        Probe {
            edge: EdgeId::new("eu-west-2-b").unwrap(),
            rtt_ms: 12.5,
        },
        Probe {
            edge: EdgeId::new("gone-1").unwrap(),
            rtt_ms: 1.0,
        },
    ];
    let resolved = view.resolve_probes(&api);
    assert_eq!(
        resolved,
        vec![ProbeRtt {
            edge: idx(&edges, "eu-west-2-b"),
            rtt_ms: 12.5
        }]
    );
}

#[test]
fn a_small_conference_stays_on_one_edge_of_its_region_whatever_the_probe_noise() {
    let (regions, edges) = world();
    let policy = PlacementPolicy::default();
    let view = ClusterView::new(&regions, &edges);
    let (a, b) = (idx(&edges, "eu-central-1-a"), idx(&edges, "eu-central-1-b"));
    let conference = [ConferenceEdge {
        edge: a,
        participants: 1,
    }];
    // The second edge of the region answered the joiner's probe faster:
    // the same location, so noise, not distance.
    for (ra, rb) in [(3.0, 1.0), (12.0, 2.0), (1.0, 3.0)] {
        let probes = [
            ProbeRtt {
                edge: a,
                rtt_ms: ra,
            },
            ProbeRtt {
                edge: b,
                rtt_ms: rb,
            },
        ];
        let p = place(
            &policy,
            view,
            &PlacementRequest {
                location: Some(at(BERLIN.0, BERLIN.1)),
                probes: &probes,
                conference: &conference,
            },
        )
        .unwrap();
        assert_eq!(p.edge, a, "probes {ra} / {rb} ms");
        assert_eq!(p.reason, Reason::AffinityReuse);
    }
}

#[test]
fn without_location_only_probed_regions_rank() {
    let (regions, edges) = world();
    let policy = PlacementPolicy::default();
    let view = ClusterView::new(&regions, &edges);
    let probes = [ProbeRtt {
        edge: idx(&edges, "sa-east-1-b"),
        rtt_ms: 140.0,
    }];
    let p = place(
        &policy,
        view,
        &PlacementRequest {
            location: None,
            probes: &probes,
            conference: &[],
        },
    )
    .unwrap();
    // Both São Paulo edges rank at the probed RTT; nothing else does.
    assert_eq!(name(&edges, &p), "sa-east-1-a");
    assert_eq!(p.reason, Reason::LeastStressedInRegion);
    assert_eq!(p.fallbacks, vec![idx(&edges, "sa-east-1-b")]);
    let e = place(&policy, view, &PlacementRequest::default()).unwrap_err();
    let PlacementError::NoCandidate(ex) = e else {
        panic!("{e:?}")
    };
    assert_eq!(ex.no_rtt, 18);
    assert_eq!(ex.total, 18);
}

#[test]
fn affinity_is_the_conference_edge_being_cheapest() {
    let (regions, edges) = world();
    let mut policy = PlacementPolicy::default();
    let london = idx(&edges, "eu-west-2-b");
    let conference = [ConferenceEdge {
        edge: london,
        participants: 3,
    }];
    // Berlin: Frankfurt is ~8 ms closer by the model, but its pairs with the
    // three in London would cross the Frankfurt–London backbone → London.
    let berlin = at(BERLIN.0, BERLIN.1);
    let p = place_at(&policy, &regions, &edges, berlin, &conference);
    assert_eq!(p.edge, london);
    assert_eq!(p.reason, Reason::AffinityReuse);
    let extra = p.rtt_ms - p.best_rtt_ms;
    assert!(extra > 7.0 && extra < 9.0, "{extra}");
    // An access leg weighted far above the backbone: the conference gains
    // a Frankfurt edge.
    policy.access_weight = 10.0;
    let p = place_at(&policy, &regions, &edges, berlin, &conference);
    assert_eq!(name(&edges, &p), "eu-central-1-a");
    assert_eq!(p.reason, Reason::LeastStressedInRegion);
    // Chicago: its own region, its pairs with London over the backbone.
    policy.access_weight = PlacementPolicy::default().access_weight;
    let p = place_at(
        &policy,
        &regions,
        &edges,
        at(CHICAGO.0, CHICAGO.1),
        &conference,
    );
    assert_eq!(name(&edges, &p), "us-east-1-a");
    // Same region: the conference's edge beats a less stressed sibling.
    let p = place_at(&policy, &regions, &edges, at(PARIS.0, PARIS.1), &conference);
    assert_eq!(p.edge, london);
    assert_eq!(p.reason, Reason::AffinityReuse);
    assert_eq!(p.rtt_ms, p.best_rtt_ms);
}

#[test]
fn cap_sends_the_participant_to_the_best_conference_edge() {
    let (regions, edges) = world();
    let policy = PlacementPolicy {
        max_edges_per_conference: 2,
        ..PlacementPolicy::default()
    };
    let conference = [
        ConferenceEdge {
            edge: idx(&edges, "ap-northeast-1-a"),
            participants: 2,
        },
        ConferenceEdge {
            edge: idx(&edges, "eu-west-2-a"),
            participants: 1,
        },
    ];
    // Chicago: London is nearer than Tokyo.
    let p = place_at(
        &policy,
        &regions,
        &edges,
        at(CHICAGO.0, CHICAGO.1),
        &conference,
    );
    assert_eq!(name(&edges, &p), "eu-west-2-a");
    assert_eq!(p.reason, Reason::CapReached);
    // Seoul: Tokyo, and that is simply affinity.
    let p = place_at(&policy, &regions, &edges, at(SEOUL.0, SEOUL.1), &conference);
    assert_eq!(name(&edges, &p), "ap-northeast-1-a");
    assert_eq!(p.reason, Reason::AffinityReuse);
    // Below the cap Chicago gets an edge of its own: Oregon, not its
    // nearest Virginia, because its pairs with Tokyo's two cross a shorter
    // backbone from there (the conference's latency, not the joiner's RTT).
    let p = place_at(
        &policy,
        &regions,
        &edges,
        at(CHICAGO.0, CHICAGO.1),
        &conference[..1],
    );
    assert_eq!(name(&edges, &p), "us-west-2-a");
    assert_eq!(p.reason, Reason::ConferenceLatency);
}

#[test]
fn cap_ignores_failed_edges_and_overflows_only_when_it_must() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy {
        max_edges_per_conference: 1,
        ..PlacementPolicy::default()
    };
    let tokyo = idx(&edges, "ap-northeast-1-a");
    let conference = [ConferenceEdge {
        edge: tokyo,
        participants: 4,
    }];
    let chicago = at(CHICAGO.0, CHICAGO.1);
    let p = place_at(&policy, &regions, &edges, chicago, &conference);
    assert_eq!((p.edge, p.reason), (tokyo, Reason::CapReached));
    // Tokyo overloaded: the conference is at its cap with no usable edge,
    // so it grows rather than refusing the join — on Oregon, the best edge
    // for Chicago's pairs with Tokyo's four.
    edges[tokyo.get()].heartbeat(80, 0.8);
    let p = place_at(&policy, &regions, &edges, chicago, &conference);
    assert_eq!(name(&edges, &p), "us-west-2-a");
    assert_eq!(p.reason, Reason::OverCap);
    // Tokyo unhealthy: it no longer counts toward the cap, and its members
    // (about to move) are no one's pair: Chicago's nearest.
    edges[tokyo.get()].heartbeat(0, 0.0);
    edges[tokyo.get()].healthy = false;
    let p = place_at(&policy, &regions, &edges, chicago, &conference);
    assert_eq!(name(&edges, &p), "us-east-1-a");
    assert_eq!(p.reason, Reason::LeastStressedInRegion);
}

#[test]
fn exclusions_and_burst_safety() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy::default();
    let berlin = at(BERLIN.0, BERLIN.1);
    let a = idx(&edges, "eu-central-1-a").get();
    let b = idx(&edges, "eu-central-1-b").get();
    edges[a].healthy = false;
    edges[b].registered = false;
    let p = place_at(&policy, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-west-2-a");
    edges[b].registered = true;
    // 8 placements since the last (idle) heartbeat on capacity 10: 0.8.
    edges[b].capacity = 10;
    for _ in 0..8 {
        edges[b].record_placement();
    }
    assert_eq!(edges[b].estimated_participants(), 8);
    assert_eq!(edges[b].estimated_stress(true), 0.8);
    assert_eq!(edges[b].estimated_stress(false), 0.0);
    let p = place_at(&policy, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-west-2-a");
    // Without burst safety the stale heartbeat says idle.
    let naive = PlacementPolicy {
        burst_safety: false,
        ..policy
    };
    let p = place_at(&naive, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-central-1-b");
    // A heartbeat resets the count.
    edges[b].heartbeat(2, 0.2);
    let p = place_at(&policy, &regions, &edges, berlin, &[]);
    assert_eq!(name(&edges, &p), "eu-central-1-b");

    // Everything excluded: a typed error with the counts.
    for (i, e) in edges.iter_mut().enumerate() {
        e.healthy = true;
        match i % 3 {
            0 => e.draining = true,
            1 => e.heartbeat(90, 0.9),
            _ => e.healthy = false,
        }
    }
    let e = place(
        &policy,
        ClusterView::new(&regions, &edges),
        &PlacementRequest {
            location: Some(berlin),
            ..Default::default()
        },
    )
    .unwrap_err();
    let PlacementError::NoCandidate(ex) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (ex.total, ex.draining, ex.overloaded, ex.unhealthy),
        (18, 6, 6, 6)
    );
    assert!(e.to_string().starts_with("no edge can take a participant"));
}

#[test]
fn fallbacks_are_distinct_and_ranked() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy::default();
    let b = idx(&edges, "eu-west-2-b").get();
    edges[b].heartbeat(5, 0.05);
    let p = place_at(&policy, &regions, &edges, at(PARIS.0, PARIS.1), &[]);
    assert_eq!(name(&edges, &p), "eu-west-2-a");
    let names: Vec<&str> = p
        .fallbacks
        .iter()
        .map(|f| edges[f.get()].id.as_str())
        .collect();
    assert_eq!(names, ["eu-west-2-b", "eu-central-1-a", "eu-central-1-b"]);
    let none = PlacementPolicy {
        max_fallbacks: 0,
        ..policy
    };
    assert!(
        place_at(&none, &regions, &edges, at(PARIS.0, PARIS.1), &[])
            .fallbacks
            .is_empty()
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let (regions, mut edges) = world();
    let policy = PlacementPolicy::default();
    let try_place = |edges: &[EdgeStatus], req: PlacementRequest<'_>| {
        place(&policy, ClusterView::new(&regions, edges), &req)
    };
    let bad_probe = [ProbeRtt {
        edge: EdgeIdx(99),
        rtt_ms: 1.0,
    }];
    assert!(matches!(
        try_place(
            &edges,
            PlacementRequest {
                probes: &bad_probe,
                ..Default::default()
            }
        ),
        Err(PlacementError::BadEdgeIndex { what: "probe", .. })
    ));
    for rtt in [-1.0, f64::NAN, f64::INFINITY] {
        let p = [ProbeRtt {
            edge: EdgeIdx(0),
            rtt_ms: rtt,
        }];
        assert!(matches!(
            try_place(
                &edges,
                PlacementRequest {
                    probes: &p,
                    ..Default::default()
                }
            ),
            Err(PlacementError::BadProbe { .. })
        ));
    }
    let conf = [ConferenceEdge {
        edge: EdgeIdx(18),
        participants: 1,
    }];
    assert!(matches!(
        try_place(
            &edges,
            PlacementRequest {
                conference: &conf,
                ..Default::default()
            }
        ),
        Err(PlacementError::BadEdgeIndex {
            what: "conference",
            ..
        })
    ));
    let bad_loc = PlacementRequest {
        location: Some(GeoPoint {
            lat: 123.0,
            lon: 0.0,
        }),
        ..Default::default()
    };
    assert!(matches!(
        try_place(&edges, bad_loc),
        Err(PlacementError::BadLocation(_))
    ));
    edges[3].region = RegionIdx(42);
    assert!(matches!(
        try_place(
            &edges,
            PlacementRequest {
                location: Some(at(0.0, 0.0)),
                ..Default::default()
            }
        ),
        Err(PlacementError::BadRegionIndex {
            edge: 3,
            region: 42,
            ..
        })
    ));
    // NaN stress and zero capacity are overloaded, not panics.
    let (regions2, mut e2) = world();
    e2[0].reported_stress = f64::NAN;
    e2[1].capacity = 0;
    let p = place(
        &policy,
        ClusterView::new(&regions2, &e2),
        &PlacementRequest {
            location: Some(at(39.04, -77.49)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(e2[p.edge.get()].id.as_str(), "us-west-2-a");
}
