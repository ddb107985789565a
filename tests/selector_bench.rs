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
//! - `join_flood`: one address sends joins as fast as 64 connections can
//!   for 10 s against the default rate limits, while other addresses join
//!   at a person's pace; then the flood's unused placements lapse.
//!
//! They print figures and assert nothing about time.

mod selector_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use selector_support::*;
use serde_json::json;

async fn cluster(flags: &[&str]) -> (Cluster, reqwest::Client, tokio::task::JoinHandle<()>) {
    // Nobody connects to these placements: room for all of them.
    let mut c = Cluster::with_capacity(3, 100_000);
    // Replace the test timings, keep the rest (the join-rate overrides: every
    // bench client is 127.0.0.1).
    for flag in ["--raft-heartbeat", "--election-min", "--election-max"] {
        if let Some(i) = c.flags.iter().position(|f| f == flag) {
            c.flags.drain(i..i + 2);
        }
    }
    c.flags.extend(flags.iter().map(|s| s.to_string()));
    start(c).await
}

/// Starts `c`, registers the edges and heartbeats them.
async fn start(mut c: Cluster) -> (Cluster, reqwest::Client, tokio::task::JoinHandle<()>) {
    let (http, hb) = c.up().await;
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
        let m = metrics_text(&http, &c.api(i)).await;
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
            "default WAN timing (heartbeat 400ms, election 800-1200ms)",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn join_flood() {
    const FLOODERS: usize = 64;
    const SECS: u64 = 10;
    let mut c = Cluster::new(3);
    c.default_join_limits();
    // Unused placements lapse 30 s after their token: keep the wait short.
    c.flags
        .extend(["--token-ttl".to_string(), "5s".to_string()]);
    let (c, http, hb) = start(c).await;
    let url = Arc::new(format!("{}/v1/join", c.api(0)));

    let until = Instant::now() + Duration::from_secs(SECS);
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    let flooder = http_from([127, 0, 0, 2]);
    for t in 0..FLOODERS {
        let (url, counts, flooder) = (url.clone(), counts.clone(), flooder.clone());
        tasks.push(tokio::spawn(async move {
            let mut k = 0;
            while Instant::now() < until {
                k += 1;
                let (conf, p) = (format!("flood-{}", k % 50), format!("f{t}-{k}"));
                let body = json!({"conference": conf, "participant": p});
                let r = flooder
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {}", grant(&conf, &p)))
                    .body(body.to_string())
                    .send()
                    .await;
                let slot = match r.map(|r| r.status().as_u16()) {
                    Ok(429) => 0,
                    Ok(200) => 1,
                    _ => 2,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // People joining meanwhile, each from its own address, four a second.
    let mut people = Vec::new();
    let mut k = 0u8;
    while Instant::now() < until {
        k = k.wrapping_add(1);
        let from = http_from([127, 0, 1, k]);
        let body = json!({"conference": format!("calm-{k}"), "participant": "ada"}).to_string();
        let t0 = Instant::now();
        let status = post_json(&from, &url, &body).await.map(|(s, _)| s);
        people.push((status, t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (limited, other, failed) = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed),
    );
    let placed = |http: reqwest::Client, api: String| async move {
        get_json(&http, &format!("{api}/v1/bridges"))
            .await
            .map_or(0, |b| {
                b["bridges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["participants"].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
    };
    let after_flood = placed(http.clone(), c.api(0)).await;
    let t0 = Instant::now();
    while placed(http.clone(), c.api(0)).await > 0 && t0.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lapsed_after = t0.elapsed();
    let left = placed(http.clone(), c.api(0)).await;
    let mut lat: Vec<Duration> = people.iter().map(|(_, d)| *d).collect();
    lat.sort();
    let ok = people.iter().filter(|(s, _)| *s == Some(200)).count();
    println!(
        "join_flood: one address, {FLOODERS} connections, {SECS} s: {} requests = {:.0}/s; \
         {limited} answered 429, {other} placed, {failed} other; \
         others: {ok}/{} joins succeeded, p50 {:?} max {:?}; \
         placements right after: {after_flood}, {left} left {:.1} s later (unused placements lapse)",
        limited + other + failed,
        (limited + other + failed) as f64 / SECS as f64,
        people.len(),
        lat[lat.len() / 2],
        lat[lat.len() - 1],
        lapsed_after.as_secs_f64()
    );
    hb.abort();
}
