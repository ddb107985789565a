//! Selector benchmarks (ignored by default; figures in docs/BENCHMARKS.md):
//!
//! ```sh
//! cargo test --release -p geomesh --test selector_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `join_throughput`: joins committed per second through a 3-node cluster
//!   on loopback, many clients in parallel (the write path batches them
//!   into few Raft entries).
//! - `leader_failover`: time from SIGKILL of the leader to the next
//!   successful join, with the default (WAN) and a LAN Raft timing.
//!
//! They print figures and assert nothing about time.

mod selector_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use selector_support::*;
use serde_json::json;

async fn cluster(flags: &[&str]) -> (Cluster, reqwest::Client, tokio::task::JoinHandle<()>) {
    let mut c = Cluster::new(3);
    c.flags = flags.iter().map(|s| s.to_string()).collect();
    c.flags
        .extend(["--edge-lease".to_string(), "600s".to_string()]);
    c.start_all();
    let http = http();
    let leader = c.wait_leader(&http, Duration::from_secs(30)).await;
    let agents = register_edges(&c, leader).await;
    let hb = spawn_heartbeats(agents);
    tokio::time::sleep(Duration::from_millis(500)).await;
    (c, http, hb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn join_throughput() {
    const CLIENTS: usize = 96;
    const JOINS: usize = 30_000;
    let (c, http, hb) = cluster(&[
        "--raft-heartbeat",
        "50ms",
        "--election-min",
        "300ms",
        "--election-max",
        "600ms",
    ])
    .await;
    let urls: Arc<Vec<String>> =
        Arc::new((0..3).map(|i| format!("{}/v1/join", c.api(i))).collect());
    // Baseline in the same run: bare HTTP round trips (GET /healthz) with the
    // same clients, no Raft, no placement, no signing.
    let base_secs = {
        let health: Arc<Vec<String>> =
            Arc::new((0..3).map(|i| format!("{}/healthz", c.api(i))).collect());
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (health, next, http) = (health.clone(), next.clone(), http.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= JOINS {
                        return;
                    }
                    let _ = http.get(&health[k % 3]).send().await.unwrap().bytes().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed().as_secs_f64()
    };
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (urls, next, ok, http) = (urls.clone(), next.clone(), ok.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= JOINS {
                    return;
                }
                let body =
                    json!({"conference": format!("c{}", k % 2000), "participant": format!("p{k}"),
                                  "location": {"lat": 50.0, "lon": 8.0 + (k % 7) as f64}})
                    .to_string();
                if let Some((200, _)) = post_json(&http, &urls[k % 3], &body).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    let mut entries = 0;
    let mut ops = 0;
    for i in 0..3 {
        let m = http
            .get(format!("{}/metrics", c.api(i)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in m.lines() {
            if let Some(v) = line.strip_prefix("geomesh_selector_write_batches_total ") {
                entries += v.parse::<u64>().unwrap();
            }
            if let Some(v) = line.strip_prefix("geomesh_selector_write_ops_total ") {
                ops += v.parse::<u64>().unwrap();
            }
        }
    }
    println!(
        "join_throughput: {n}/{JOINS} joins committed in {secs:.2} s = {:.0} joins/s \
         ({CLIENTS} clients over 3 nodes; {entries} Raft entries, {:.1} ops/entry); \
         baseline GET /healthz: {:.0} requests/s; joins/baseline = {:.2}",
        n as f64 / secs,
        ops as f64 / entries.max(1) as f64,
        JOINS as f64 / base_secs,
        base_secs / secs
    );
    hb.abort();
}

/// Joins every 5 ms through node `via`; after `kill_after`, SIGKILLs the
/// leader and returns the time to the first successful join after that.
async fn one_failover(c: &mut Cluster, http: &reqwest::Client, round: usize) -> Duration {
    let leader = c.wait_leader(http, Duration::from_secs(30)).await;
    let via = (leader + 1) % 3;
    let url = format!("{}/v1/join", c.api(via));
    // Warm: a few joins succeed.
    for k in 0..20 {
        let body =
            json!({"conference": "warm", "participant": format!("w{round}-{k}")}).to_string();
        assert!(matches!(post_json(http, &url, &body).await, Some((200, _))));
    }
    c.kill(leader);
    let killed_at = Instant::now();
    for k in 0.. {
        let body =
            json!({"conference": "failover", "participant": format!("f{round}-{k}")}).to_string();
        if let Some((200, _)) = post_json(http, &url, &body).await {
            let t = killed_at.elapsed();
            c.start(leader, false);
            return t;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no join after the kill\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn leader_failover() {
    for (label, flags) in [
        (
            "default WAN timing (heartbeat 250ms, election 1-2s)",
            vec![],
        ),
        (
            "LAN timing (heartbeat 100ms, election 400-800ms)",
            vec![
                "--raft-heartbeat",
                "100ms",
                "--election-min",
                "400ms",
                "--election-max",
                "800ms",
            ],
        ),
    ] {
        let (mut c, http, hb) = cluster(&flags).await;
        let mut times = Vec::new();
        for round in 0..5 {
            times.push(one_failover(&mut c, &http, round).await);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        times.sort();
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        println!(
            "leader_failover [{label}]: kill → next successful join, 5 rounds (ms): {ms:?}; median {} ms, max {} ms",
            ms[2], ms[4]
        );
        hb.abort();
    }
}
