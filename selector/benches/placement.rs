//! Placement decision time: 1,000 edges in the 9 measured regions, 10,000
//! live conferences on 1–4 edges each, clients anywhere.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-sim cargo bench -p geomesh-selector --bench placement -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Besides criterion's mean, it times 200,000 single decisions and prints
//! p50/p90/p99/p99.9 (criterion reports means and intervals, not tails),
//! with the inter-region RTT matrix the selector computes at start, and
//! without it (the backbone estimated from distances in each decision).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use geomesh_core::{EdgeId, GeoPoint, RegionId};
use geomesh_selector::strategy::{
    Calibration, ClusterView, ConferenceEdge, EdgeIdx, EdgeStatus, PlacementPolicy,
    PlacementRequest, RegionIdx, RegionSite, place,
};

/// SplitMix64: a deterministic bench input generator.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct World {
    regions: Vec<RegionSite>,
    /// Inter-region RTTs as the selector holds them (computed once at start).
    region_rtt: Vec<f64>,
    edges: Vec<EdgeStatus>,
    conferences: Vec<Vec<ConferenceEdge>>,
    clients: Vec<GeoPoint>,
}

fn world(n_edges: usize, n_conferences: usize) -> World {
    let mut rng = Mix(7);
    let cal = Calibration::embedded();
    let regions: Vec<RegionSite> = cal
        .regions
        .iter()
        .map(|r| RegionSite {
            id: RegionId::new(r.name.clone()).expect("valid region id"),
            location: r.location,
        })
        .collect();
    let edges: Vec<EdgeStatus> = (0..n_edges)
        .map(|i| {
            let mut e = EdgeStatus::new(
                EdgeId::new(format!("edge-{i}")).expect("valid edge id"),
                RegionIdx((i % regions.len()) as u32),
                200,
            );
            let load = rng.below(180) as u32;
            e.heartbeat(load, load as f64 / 200.0);
            e.placed_since_heartbeat = rng.below(4) as u32;
            e.healthy = rng.below(100) != 0;
            e.draining = rng.below(100) == 0;
            e
        })
        .collect();
    let conferences = (0..n_conferences)
        .map(|_| {
            let k = 1 + rng.below(4);
            (0..k)
                .map(|_| ConferenceEdge {
                    edge: EdgeIdx(rng.below(n_edges) as u32),
                    participants: 1 + rng.below(10) as u32,
                })
                .collect()
        })
        .collect();
    let clients = (0..4096)
        .map(|_| {
            GeoPoint::new(-55.0 + 125.0 * rng.unit(), -180.0 + 360.0 * rng.unit())
                .expect("in range")
        })
        .collect();
    let region_rtt = cal.region_matrix(
        &regions.iter().map(|r| r.location).collect::<Vec<_>>(),
        &cal.regions
            .iter()
            .map(|r| Some(r.name.as_str()))
            .collect::<Vec<_>>(),
        &PlacementPolicy::default().rtt_model,
    );
    World {
        regions,
        region_rtt,
        edges,
        conferences,
        clients,
    }
}

fn one(w: &World, policy: &PlacementPolicy, i: usize) -> EdgeIdx {
    one_with(w, policy, i, &w.region_rtt)
}

/// One decision; `region_rtt` empty: the backbone estimated per decision.
fn one_with(w: &World, policy: &PlacementPolicy, i: usize, region_rtt: &[f64]) -> EdgeIdx {
    let request = PlacementRequest {
        location: Some(w.clients[i % w.clients.len()]),
        probes: &[],
        conference: &w.conferences[(i * 7919) % w.conferences.len()],
    };
    let view = ClusterView {
        regions: &w.regions,
        edges: &w.edges,
        region_rtt_ms: region_rtt,
    };
    place(policy, view, black_box(&request))
        .expect("bench cluster has candidates")
        .edge
}

/// Times single decisions and prints percentiles (ns).
fn tails(label: &str, w: &World, policy: &PlacementPolicy, region_rtt: &[f64]) {
    let n = 200_000;
    for i in 0..20_000 {
        black_box(one_with(w, policy, i, region_rtt));
    }
    let mut ns: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        black_box(one_with(w, policy, i, region_rtt));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    let q = |p: f64| ns[((n as f64 * p) as usize).min(n - 1)];
    let mean = ns.iter().sum::<u64>() as f64 / n as f64;
    println!(
        "{label}: {n} decisions, mean {mean:.0} ns, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        ns[n - 1]
    );
}

fn bench(c: &mut Criterion) {
    let policy = PlacementPolicy::default();
    for (label, n_edges) in [("1000_edges", 1000), ("30_edges", 30)] {
        let w = world(n_edges, 10_000);
        tails(
            &format!("place/{label}_10000_conferences (single-shot timing)"),
            &w,
            &policy,
            &w.region_rtt,
        );
        tails(
            &format!("place/{label}_10000_conferences, backbone estimated per decision"),
            &w,
            &policy,
            &[],
        );
        let mut i = 0usize;
        c.bench_function(&format!("place/{label}_10000_conferences"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                one(&w, &policy, i)
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
