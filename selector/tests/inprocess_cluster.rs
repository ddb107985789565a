//! Three selector nodes in one process on loopback: replication, a write
//! through a follower, leader loss, and a restarted node catching up from
//! its redb store.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use geomesh_core::agent::ParticipantRef;
use geomesh_core::topology::{TlsSettings, Topology};
use geomesh_core::{ConferenceId, EdgeId, GeoPoint, ParticipantId, RegionId, SelectorId};
use geomesh_selector::state::{Op, OpResult};
use geomesh_selector::{NodeConfig, RaftTiming, RunningSelector, start};

/// A free loopback port, never one handed out before in this process.
fn port() -> u16 {
    static USED: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if USED.lock().unwrap().insert(p) {
            return p;
        }
    }
}

fn topology(dir: &Path) -> Topology {
    let mut y = String::from(
        "version: 1\ncluster: { name: t }\ntls: { dir: certs }\nregions:\n\
         \x20 - { id: eu, name: F, location: { lat: 50.1, lon: 8.7 }, provider: local, provider_region: x }\n\
         edges:\n",
    );
    y += &format!(
        "  - {{ id: edge-1, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:{}, octo: 127.0.0.1:{}, capacity: 10 }}\nselectors:\n",
        port(),
        port()
    );
    for i in 1..=3 {
        y += &format!(
            "  - {{ id: sel-{i}, region: eu, api: 127.0.0.1:{}, raft: 127.0.0.1:{} }}\n",
            port(),
            port()
        );
    }
    Topology::parse(&y, dir).unwrap().topology
}

fn config(t: &Topology, dir: &Path, i: usize) -> NodeConfig {
    let mut c = NodeConfig::new(
        t.clone(),
        SelectorId::new(format!("sel-{i}")).unwrap(),
        TlsSettings {
            dir: dir.join("certs"),
        },
        dir.join(format!("data-{i}")),
    );
    c.raft = RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
        snapshot_logs: 10,
    };
    c.init = i == 1;
    c
}

async fn leader(nodes: &[Option<RunningSelector>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(n) = n
                && n.shared.is_leader()
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn register() -> Op {
    Op::RegisterEdge {
        edge: EdgeId::new("edge-1").unwrap(),
        region: RegionId::new("eu").unwrap(),
        location: GeoPoint::new(50.1, 8.7).unwrap(),
        capacity: 10,
        base_url: "http://127.0.0.1:1".into(),
        boot_id: "b".into(),
        lease_ms: 600_000,
        public_ip: None,
        runtime: false,
    }
}

fn joined(k: usize) -> Op {
    Op::Joined {
        edge: EdgeId::new("edge-1").unwrap(),
        participants: vec![ParticipantRef::new(
            ConferenceId::new("c").unwrap(),
            ParticipantId::new(format!("p{k}")).unwrap(),
        )],
    }
}

async fn wait_count(node: &RunningSelector, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.shared.with_state(|s| s.participant_count()) != n {
        assert!(Instant::now() < deadline, "never reached {n} participants");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_survive_leader_loss_and_recover_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let t = topology(dir.path());
    geomesh_core::credentials::init(&t, &dir.path().join("certs"), false, SystemTime::now())
        .unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Some(start(config(&t, dir.path(), i)).await.unwrap()));
    }
    let l = leader(&nodes).await;
    let follower = (l + 1) % 3;
    // A write through a follower is forwarded to the leader.
    let r = nodes[follower]
        .as_ref()
        .unwrap()
        .shared
        .propose(vec![register()])
        .await
        .unwrap();
    assert!(matches!(r[0], OpResult::Registered { .. }), "{r:?}");
    for k in 0..25 {
        nodes[follower]
            .as_ref()
            .unwrap()
            .shared
            .propose(vec![joined(k)])
            .await
            .unwrap();
    }
    for n in nodes.iter().flatten() {
        wait_count(n, 25).await;
    }

    // Lose the leader: the others elect one and keep writing.
    nodes[l].take().unwrap().shutdown().await;
    let l2 = leader(&nodes).await;
    assert_ne!(l2, l);
    for k in 25..40 {
        nodes[l2]
            .as_ref()
            .unwrap()
            .shared
            .propose(vec![joined(k)])
            .await
            .unwrap();
    }
    // The old leader restarts on its store and catches up (by snapshot:
    // one is taken every 10 entries).
    nodes[l] = Some(start(config(&t, dir.path(), l + 1)).await.unwrap());
    wait_count(nodes[l].as_ref().unwrap(), 40).await;
    for n in nodes.into_iter().flatten() {
        n.shared.with_state(|s| s.check_invariants()).unwrap();
        n.shutdown().await;
    }
}

/// Benchmark (ignored; see docs/BENCHMARKS.md): joins committed per second
/// through the Raft write path of an in-process 3-node cluster (batching,
/// replication, fsync; no HTTP, no placement, no tokens).
///
/// `cargo test --release -p geomesh-selector --test inprocess_cluster -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn raft_join_commit_throughput() {
    const TASKS: usize = 256;
    const JOINS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let t = topology(dir.path());
    geomesh_core::credentials::init(&t, &dir.path().join("certs"), false, SystemTime::now())
        .unwrap();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let mut c = config(&t, dir.path(), i);
        c.raft.snapshot_logs = 5_000;
        nodes.push(Some(start(c).await.unwrap()));
    }
    let l = leader(&nodes).await;
    let shared: Vec<_> = nodes.iter().flatten().map(|n| n.shared.clone()).collect();
    shared[l].propose(vec![register()]).await.unwrap();
    // The leader places only on edges it hears from.
    let beat = spawn_beats(shared.clone());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let s = shared[k % 3].clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if j >= JOINS {
                    return;
                }
                let op = Op::Join {
                    conference: ConferenceId::new(format!("c{}", j % 5_000)).unwrap(),
                    participant: ParticipantId::new(format!("p{j}")).unwrap(),
                    edge: EdgeId::new("edge-1").unwrap(),
                    lease_ms: 600_000,
                    max_edges: Some(4),
                    reassign_from: None,
                };
                let r = s.propose(vec![op]).await.unwrap();
                assert!(matches!(r[0], OpResult::Placed { created: true, .. }));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let entries: u64 = shared.iter().map(|s| s.metrics.write_batches.get()).sum();
    println!(
        "raft_join_commit_throughput: {JOINS} joins in {secs:.2} s = {:.0} joins/s \
         ({TASKS} tasks over 3 nodes, {entries} Raft entries, {:.0} joins/entry)",
        JOINS as f64 / secs,
        JOINS as f64 / entries.max(1) as f64
    );
    wait_count(nodes[(l + 1) % 3].as_ref().unwrap(), JOINS).await;
    beat.abort();
    drop(shared);
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// A node that was away while 100,000 placements were made (and the log
/// behind them compacted into snapshots) catches up from a snapshot: the
/// Raft bodies are sized for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_catches_up_from_a_snapshot_of_100k_placements() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let t = topology(dir.path());
    geomesh_core::credentials::init(&t, &dir.path().join("certs"), false, SystemTime::now())
        .unwrap();
    let cfg = |i| {
        let mut c = config(&t, dir.path(), i);
        c.raft.snapshot_logs = 20;
        // A heartbeat is also the deadline of each append (openraft 0.9):
        // an unoptimized build needs more than 50 ms for 600 KB of JSON.
        c.raft.heartbeat = Duration::from_millis(250);
        c.raft.election_min = Duration::from_millis(800);
        c.raft.election_max = Duration::from_millis(1200);
        c
    };
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Some(start(cfg(i)).await.unwrap()));
    }
    let l = leader(&nodes).await;
    let away = (l + 1) % 3;
    let lead = nodes[l].as_ref().unwrap().shared.clone();
    lead.propose(vec![register()]).await.unwrap();
    // edge-1 heartbeats the nodes that are up (else the leader, after its
    // health timeout, releases everything placed on a silent edge).
    let beating: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != away)
        .map(|(_, n)| n.as_ref().unwrap().shared.clone())
        .collect();
    let beat = spawn_beats(beating);
    nodes[away].take().unwrap().shutdown().await;
    // 100k placements in batches of 1,000 (the edge's report limit).
    let mut batches = Vec::new();
    for b in 0..N / 1000 {
        let participants = (0..1000)
            .map(|k| {
                ParticipantRef::new(
                    ConferenceId::new(format!("c{}", (b * 1000 + k) % 5000)).unwrap(),
                    ParticipantId::new(format!("p{}", b * 1000 + k)).unwrap(),
                )
            })
            .collect();
        let s = lead.clone();
        batches.push(tokio::spawn(async move {
            let op = Op::Joined {
                edge: EdgeId::new("edge-1").unwrap(),
                participants,
            };
            // A loaded machine can keep the one follower from acknowledging
            // within an election timeout: the leader then answers "no
            // quorum" and, like any client, the batch tries again.
            for attempt in 0.. {
                match s.propose(vec![op.clone()]).await {
                    Ok(r) => return r,
                    Err(e) if attempt < 20 => {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        eprintln!("batch {b}: {e}; again");
                    }
                    Err(e) => panic!("batch {b}: {e}"),
                }
            }
            unreachable!()
        }));
    }
    for b in batches {
        b.await.unwrap();
    }
    assert_eq!(lead.with_state(|s| s.participant_count()), N);
    // The away node comes back on its store, 100k placements behind: the
    // log it misses has been purged into snapshots, so only a snapshot
    // brings it the state.
    let back = start(cfg(away + 1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while back.shared.with_state(|s| s.participant_count()) != N {
        assert!(
            Instant::now() < deadline,
            "caught up {} of {N}; back edges {:?} clock {}; leader edges {:?} clock {}",
            back.shared.with_state(|s| s.participant_count()),
            back.shared
                .with_state(|s| s.edges().keys().cloned().collect::<Vec<_>>()),
            back.shared.with_state(|s| s.clock_ms()),
            lead.with_state(|s| s.edges().keys().cloned().collect::<Vec<_>>()),
            lead.with_state(|s| s.clock_ms()),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    back.shared.with_state(|s| s.check_invariants()).unwrap();
    let m = back.shared.raft.metrics().borrow().clone();
    assert!(
        m.snapshot.is_some_and(|s| s.index > 20),
        "it caught up by a snapshot: {:?}",
        m.snapshot
    );
    beat.abort();
    back.shutdown().await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// edge-1 heartbeats these nodes every 200 ms (their soft state) until aborted.
fn spawn_beats(
    nodes: Vec<std::sync::Arc<geomesh_selector::node::Shared>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for s in &nodes {
                s.soft().heartbeat(
                    &EdgeId::new("edge-1").unwrap(),
                    heartbeat(),
                    Instant::now(),
                    0,
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn heartbeat() -> geomesh_core::agent::Heartbeat {
    geomesh_core::agent::Heartbeat {
        boot_id: "b".into(),
        participants: 0,
        conferences: 0,
        packet_rate: 0.0,
        bitrate_bps: 0.0,
        cpu: 0.0,
        stress: 0.0,
        links: vec![],
        digest: None,
        about: None,
    }
}
