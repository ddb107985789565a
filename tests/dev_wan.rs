//! `geomesh dev --wan` (its own port block, 18500+): every edge's octo link
//! to an edge of another region measures the round trip of the AWS regions
//! the two stand for (the embedded calibration set) within 10 %; edges of
//! one region see loopback. Polls each edge's `/metrics` (bounded).

mod dev_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dev_support::{http_get, start_dev};

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
