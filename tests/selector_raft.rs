//! Three real `geomesh selector` processes on loopback: the leader is
//! killed during a stream of joins; joins resume after the election; every
//! acknowledged join survives a restart of all nodes (redb); no participant
//! is placed twice.

mod selector_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use selector_support::*;
use serde_json::json;

const N: usize = 120;
const KILL_AT: usize = 40;
const CONFERENCES: usize = 8;

/// Client locations near each region, so placements spread over edges.
const SPOTS: &[(f64, f64)] = &[(48.85, 2.35), (40.71, -74.0), (35.0, 135.0)];

async fn wait_healthy_edges(c: &Cluster, http: &reqwest::Client, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut ok = true;
        for i in 0..c.selectors.len() {
            if !c.is_running(i) {
                continue;
            }
            let h = get_json(http, &format!("{}/healthz", c.api(i))).await;
            ok &= h.is_some_and(|h| h["edges_healthy"].as_u64() == Some(n));
        }
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "edges never healthy everywhere\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Joins through any live node, retrying (same participant id) until one
/// answers 200; the edge it was placed on.
async fn join(c: &Cluster, http: &reqwest::Client, k: usize, conf: &str, p: &str) -> String {
    let (lat, lon) = SPOTS[k % SPOTS.len()];
    let body = json!({"conference": conf, "participant": p, "location": {"lat": lat, "lon": lon}})
        .to_string();
    let mut last = None;
    for attempt in 0..300 {
        let i = (k + attempt) % c.selectors.len();
        if !c.is_running(i) {
            continue;
        }
        match post_json(http, &format!("{}/v1/join", c.api(i)), &body).await {
            Some((200, v)) => {
                assert_eq!(v["participant"], p);
                return v["edge"]["id"].as_str().unwrap().to_string();
            }
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("join of {p} never succeeded: {last:?}\n{}", c.logs());
}

async fn conference_on(
    c: &Cluster,
    http: &reqwest::Client,
    i: usize,
    conf: &str,
) -> BTreeMap<String, String> {
    let Some(v) = get_json(http, &format!("{}/v1/conferences/{conf}", c.api(i))).await else {
        return BTreeMap::new();
    };
    v["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["participant"].as_str().unwrap_or_default().to_string(),
                p["edge"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_during_joins_loses_nothing_and_places_nobody_twice() {
    let mut c = Cluster::new(3);
    // Snapshot every 30 entries: the restarted nodes load snapshots, and the
    // killed leader, far behind, catches up by snapshot install.
    c.flags
        .extend(["--snapshot-logs".to_string(), "30".to_string()]);
    c.start_all();
    let http = http();
    let leader = c.wait_leader(&http, Duration::from_secs(30)).await;
    // Register through a follower: the write is forwarded to the leader.
    let agents = register_edges(&c, (leader + 1) % 3).await;
    let hb = spawn_heartbeats(agents.clone());
    wait_healthy_edges(&c, &http, EDGES.len() as u64).await;

    let mut acked: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut killed = None;
    for k in 0..N {
        if k == KILL_AT {
            let l = c.wait_leader(&http, Duration::from_secs(10)).await;
            c.kill(l);
            killed = Some(l);
        }
        let p = format!("p{k}");
        let conf = format!("conf-{}", k % CONFERENCES);
        let edge = join(&c, &http, k, &conf, &p).await;
        acked.insert(p, (conf, edge));
    }
    let killed = killed.unwrap();
    let new_leader = c.wait_leader(&http, Duration::from_secs(10)).await;
    assert_ne!(new_leader, killed, "a live node leads after the kill");

    // Joining again with an acknowledged id returns the same edge.
    for k in [0, KILL_AT - 1, KILL_AT, N - 1] {
        let p = format!("p{k}");
        let (conf, edge) = acked[&p].clone();
        assert_eq!(
            join(&c, &http, k + 1, &conf, &p).await,
            edge,
            "{p} placed twice"
        );
    }
    hb.abort();

    // Restart every node on its store: all acknowledged joins are there,
    // on the acknowledged edge, and nothing else is.
    // First bring the killed node back alone and let it catch up.
    c.start(killed, false);
    let live = c.wait_leader(&http, Duration::from_secs(10)).await;
    let target = get_json(&http, &format!("{}/healthz", c.api(live)))
        .await
        .unwrap()["last_applied"]
        .as_u64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = get_json(&http, &format!("{}/healthz", c.api(killed))).await;
        if h.is_some_and(|h| h["last_applied"].as_u64() >= Some(target)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed node never caught up\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.log(killed).contains("installed snapshot"),
        "the killed node should catch up by snapshot\n{}",
        c.logs()
    );
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.start(i, false);
    }
    c.wait_leader(&http, Duration::from_secs(30)).await;
    for i in 0..3 {
        for n in 0..CONFERENCES {
            let conf = format!("conf-{n}");
            let want: BTreeMap<String, String> = acked
                .iter()
                .filter(|(_, (c, _))| *c == conf)
                .map(|(p, (_, e))| (p.clone(), e.clone()))
                .collect();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let got = conference_on(&c, &http, i, &conf).await;
                if got == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} {conf}: got {got:?}, want {want:?}\n{}",
                    c.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let h = get_json(&http, &format!("{}/healthz", c.api(i)))
            .await
            .unwrap();
        assert_eq!(h["participants"].as_u64(), Some(N as u64), "node {i}: {h}");
        assert_eq!(h["edges_registered"].as_u64(), Some(EDGES.len() as u64));
    }
}
