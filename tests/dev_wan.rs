//! `geomesh dev --wan`, the emulated-WAN lab (port blocks 18500+ and
//! 18600+; the two tests take turns, so neither measures under the other's
//! load):
//!
//! - every edge's octo link to an edge of another region measures the
//!   round trip of the AWS regions the two stand for (the embedded
//!   calibration set) within 10 %; edges of one region see loopback;
//! - load-generator participants pretending to be in given cities, joined
//!   through a selector: each lands where the simulator (same strategy,
//!   same model) places it, and each pair's measured one-way delay (the
//!   frames' stamps) is within 10 % of the simulator's prediction — for two
//!   participants in one city on one edge, that delay is the modelled
//!   round trip to the edge.

mod dev_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dev_support::{EXE, http_get, start_dev};
use serde_json::Value;

/// One lab mesh at a time: each measures delays.
static LAB: Mutex<()> = Mutex::new(());

/// `geomesh_edge_octo_rtt_seconds{peer="…"}` of one edge, in ms by peer.
fn octo_rtts(edge_url: &str) -> BTreeMap<String, f64> {
    let addr = edge_url.trim_start_matches("http://");
    http_get(addr, "/metrics")
        .lines()
        .filter_map(|l| l.strip_prefix("geomesh_edge_octo_rtt_seconds{peer=\""))
        .filter_map(|rest| {
            let (peer, value) = rest.split_once("\"} ")?;
            Some((peer.to_string(), value.trim().parse::<f64>().ok()? * 1000.0))
        })
        .collect()
}

#[test]
fn dev_wan_links_measure_the_regions_round_trips() {
    let _turn = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (_dev, state) = start_dev(dir.path(), 18500, &["--wan"]);
    let wan: BTreeMap<String, BTreeMap<String, f64>> =
        serde_json::from_value(state["wan"]["rtt_ms"].clone()).expect("state file lists the WAN");
    let edges: Vec<(String, String)> = state["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["url"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(wan.len(), edges.len(), "every edge has its row");
    // Links ping every second: wait until every pair has a measurement
    // (bounded), then take five samples a ping apart and compare medians,
    // so one slow turn of a busy machine does not decide.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !edges.iter().all(|(id, url)| {
        let m = octo_rtts(url);
        wan[id].keys().all(|p| m.contains_key(p))
    }) {
        assert!(Instant::now() < deadline, "octo RTTs missing after 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut samples: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for _ in 0..5 {
        for (id, url) in &edges {
            for (peer, ms) in octo_rtts(url) {
                samples.entry((id.clone(), peer)).or_default().push(ms);
            }
        }
        std::thread::sleep(Duration::from_millis(1100));
    }
    let mut report = String::new();
    let mut ok = true;
    for (id, row) in &wan {
        for (peer, want) in row {
            let mut v = samples[&(id.clone(), peer.clone())].clone();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            let fine = if *want == 0.0 {
                // One datacenter: loopback, well under 5 ms.
                median < 5.0
            } else {
                (median - want).abs() <= want * 0.10
            };
            ok &= fine;
            report +=
                &format!("{id} → {peer}: emulated {want} ms, measured median {median:.1} ms\n");
        }
    }
    eprintln!("{report}");
    assert!(
        ok,
        "octo RTTs not within 10 % of the emulated ones:\n{report}"
    );
}

/// Waits (bounded) until every edge measures every peer link.
fn wait_links(state: &Value) {
    let edges: Vec<String> = state["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_string())
        .collect();
    let want = edges.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !edges.iter().all(|u| octo_rtts(u).len() >= want) {
        assert!(Instant::now() < deadline, "octo links not up after 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A scripted two-person meeting: a publisher and a subscriber somewhere.
struct Meeting {
    what: &'static str,
    publisher: (f64, f64),
    subscriber: (f64, f64),
}

/// Cities (coordinates as in `../shared/data`'s world cities).
const MEETINGS: &[Meeting] = &[
    Meeting {
        what: "Los Angeles with Los Angeles (one edge: the access RTT)",
        publisher: (34.05, -118.24),
        subscriber: (34.05, -118.24),
    },
    Meeting {
        what: "Paris to New York",
        publisher: (48.86, 2.35),
        subscriber: (40.71, -74.01),
    },
    Meeting {
        what: "Mumbai to Berlin",
        publisher: (19.08, 72.88),
        subscriber: (52.52, 13.40),
    },
    Meeting {
        what: "Tokyo to Sydney",
        publisher: (35.68, 139.69),
        subscriber: (-33.87, 151.21),
    },
];

/// The same meetings as a simulator scenario on the lab's regions and
/// edges, with the lab's model: one-way transport only (no packetisation
/// or jitter buffer: the stamps are taken after the one and before the
/// other), one datacenter per region, one meeting at a time.
fn scenario(topology: &Path, access: &Value) -> String {
    let t = geomesh_core::topology::Topology::load(topology)
        .unwrap()
        .topology;
    let mut y = String::from("version: 1\nname: lab\nseed: 1\nhorizon: 4h\nregions:\n");
    for r in &t.regions {
        y += &format!(
            "  - {{ id: {}, location: {{ lat: {}, lon: {} }}, measured_as: {} }}\n",
            r.id, r.location.lat, r.location.lon, r.provider_region
        );
    }
    y += "edges:\n";
    for e in &t.edges {
        y += &format!("  - {{ region: {}, capacity: {} }}\n", e.region, e.capacity);
    }
    y += "meetings:\n  scripted:\n";
    for (i, m) in MEETINGS.iter().enumerate() {
        y += &format!(
            "    - start: {}m\n      duration: 10m\n      participants:\n        - {{ location: {{ lat: {}, lon: {} }} }}\n        - {{ location: {{ lat: {}, lon: {} }}, join: 1s }}\n",
            i * 30,
            m.publisher.0,
            m.publisher.1,
            m.subscriber.0,
            m.subscriber.1
        );
    }
    y += &format!(
        "latency:\n  rtt_model: {{ base_ms: {}, ms_per_km: {} }}\n  intra_region_rtt_ms: 0\n  sender_ms: 0\n  jitter_buffer_ms: 0\n  receiver_ms: 0\n  per_edge_ms: 1\nmedia: {{ audio_kbps: 32, video_kbps: 300 }}\nstrategies: [geomesh]\n",
        access["base_ms"], access["ms_per_km"]
    );
    y
}

/// Runs one meeting through the lab with the load generator; its report.
fn run_loadgen(dir: &Path, selector: &str, m: &Meeting, n: usize) -> Value {
    let out = dir.join(format!("loadgen-{n}.json"));
    let log = std::fs::File::create(dir.join(format!("loadgen-{n}.log"))).unwrap();
    let mut child = std::process::Command::new(EXE)
        .args(["loadgen", "--selector", selector])
        .arg("--at")
        .arg(format!("{},{}", m.publisher.0, m.publisher.1))
        .arg("--at")
        .arg(format!("{},{}", m.subscriber.0, m.subscriber.1))
        .args(["-p", "1", "-s", "1", "--audio", "--video-kbps", "300"])
        .args([
            "--duration",
            "4s",
            "--setup-timeout",
            "20s",
            "--threads",
            "1",
        ])
        .arg("--json-out")
        .arg(&out)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start geomesh loadgen");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen for {} did not finish in 120 s", m.what);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        status.success() && !text.is_empty(),
        "loadgen for {} failed ({status}):\n{}",
        m.what,
        std::fs::read_to_string(dir.join(format!("loadgen-{n}.log"))).unwrap_or_default()
    );
    serde_json::from_str::<Value>(&text).unwrap()["edge"].clone()
}

#[test]
fn lab_meetings_land_and_feel_as_the_simulator_predicts() {
    let _turn = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (_dev, state) = start_dev(dir.path(), 18600, &["--wan"]);
    wait_links(&state);
    let topology = dir.path().join("mesh/topology.yaml");
    let yaml = scenario(&topology, &state["wan"]["access"]);
    let s = geomesh_sim::Scenario::parse(&yaml, dir.path()).expect("the lab scenario is valid");
    let study = geomesh_sim::Study::run(
        s,
        geomesh_sim::StudyOptions {
            run: geomesh_sim::engine::RunOptions { trace: true },
            ..geomesh_sim::StudyOptions::default()
        },
    )
    .unwrap();
    let trace = study.runs[0].trace.as_ref().unwrap();
    let t = geomesh_core::topology::Topology::load(&topology)
        .unwrap()
        .topology;
    let region_of_edge = |i: u32| t.edges[i as usize].region.to_string();
    let selector = state["selectors"][0]["url"].as_str().unwrap();
    let mut report = String::new();
    let mut ok = true;
    for (n, m) in MEETINGS.iter().enumerate() {
        // Participants 2n (publisher) and 2n+1 (subscriber) in the trace.
        let predicted_regions: Vec<String> = [2 * n, 2 * n + 1]
            .iter()
            .map(|&p| {
                let placed = trace
                    .placements
                    .iter()
                    .find(|x| x.participant as usize == p)
                    .expect("the simulator placed everyone");
                region_of_edge(placed.edge)
            })
            .collect();
        let predicted_ms = trace
            .pairs
            .iter()
            .find(|x| x.a as usize == 2 * n + 1 && x.b as usize == 2 * n)
            .expect("the simulator timed the pair")
            .one_way_ms;
        let r = run_loadgen(dir.path(), selector, m, n);
        let lab_regions: Vec<String> = r["placed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["region"].as_str().unwrap().to_string())
            .collect();
        let audio = &r["audio"];
        let measured_ms = audio["delay_ms"]["p50"].as_f64().unwrap();
        let delivered = audio["received_frames"].as_f64().unwrap()
            / audio["sent_frames"].as_f64().unwrap().max(1.0);
        let lands = lab_regions == predicted_regions;
        let close = (measured_ms - predicted_ms).abs() <= predicted_ms * 0.10;
        // Continuity: the stream arrived, not a few frames of it.
        let flows = delivered >= 0.9;
        ok &= lands && close && flows;
        report += &format!(
            "{}: placed {lab_regions:?} (simulator {predicted_regions:?}); one-way p50 {measured_ms:.1} ms, predicted {predicted_ms:.1} ms ({:+.1} %); {:.1} % of audio frames delivered\n",
            m.what,
            (measured_ms / predicted_ms - 1.0) * 100.0,
            delivered * 100.0
        );
    }
    eprintln!("{report}");
    assert!(ok, "the lab and the simulator disagree:\n{report}");
}
