//! Membership changes through `geomesh selector add-node / remove-node`
//! (the operator certificate from `geomesh certs init`) on a real
//! three-node cluster: a node that cannot catch up is not left behind as a
//! learner, a fresh one joins and catches up.

mod selector_support;

use std::process::Command;
use std::time::{Duration, Instant};

use selector_support::*;
use serde_json::{Value, json};

/// Runs `geomesh selector <args> --topology T --certs C --id <via>`;
/// (success, stdout, stderr).
fn admin(c: &Cluster, via: usize, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(EXE)
        .arg("selector")
        .args(args)
        .arg("--topology")
        .arg(&c.topology)
        .arg("--certs")
        .arg(&c.certs)
        .args(["--id", &c.selectors[via].id])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(c: &Cluster, via: usize) -> Value {
    let (ok, out, err) = admin(c, via, &["status"]);
    assert!(ok, "status: {err}");
    serde_json::from_str(&out).unwrap()
}

async fn last_applied(http: &reqwest::Client, c: &Cluster, i: usize) -> Option<u64> {
    get_json(http, &format!("{}/healthz", c.api(i)))
        .await
        .and_then(|h| h["last_applied"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_times_out_and_rolls_back_then_a_fresh_node_catches_up() {
    let mut c = Cluster::new(3);
    c.start_all();
    let http = http();
    let leader = c.wait_leader(&http, Duration::from_secs(30)).await;
    let agents = register_edges(&c, leader).await;
    let hb = spawn_heartbeats(agents);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("{}/v1/join", c.api(leader));
    let join = |k: usize| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let body = json!({"conference": "m", "participant": format!("p{k}")}).to_string();
            post_json(&http, &url, &body).await.unwrap().0
        }
    };
    for k in 0..20 {
        assert_eq!(join(k).await, 200);
    }

    // Remove a follower, stop it and wipe its store: a new machine.
    let gone = (leader + 1) % 3;
    let id = c.selectors[gone].id.clone();
    let (ok, out, err) = admin(&c, leader, &["remove-node", "--node", &id]);
    assert!(ok, "remove-node: {out}{err}");
    c.kill(gone);
    std::fs::remove_dir_all(&c.selectors[gone].data).unwrap();
    let s = status(&c, leader);
    assert_eq!(s["voters"].as_array().unwrap().len(), 2, "{s}");

    // Adding it while it is down gives up after the timeout, and leaves
    // the membership as it was (no learner the leader keeps feeding).
    let t0 = Instant::now();
    let (ok, out, err) = admin(&c, leader, &["add-node", "--node", &id, "--timeout", "2s"]);
    assert!(!ok, "add-node of a stopped node succeeded: {out}");
    assert!(err.contains("did not catch up"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let s = status(&c, leader);
    assert_eq!(s["voters"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["learners"], json!([]), "{s}");
    // The two-node cluster still commits.
    assert_eq!(join(20).await, 200);

    // Started empty, it is added, catches up and votes.
    c.start(gone, false);
    let (ok, out, err) = admin(&c, leader, &["add-node", "--node", &id, "--timeout", "30s"]);
    assert!(ok, "add-node: {out}{err}\n{}", c.logs());
    let s = status(&c, leader);
    assert!(
        s["voters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == &json!(id)),
        "{s}"
    );
    assert_eq!(s["voters"].as_array().unwrap().len(), 3, "{s}");
    assert_eq!(join(21).await, 200);
    let target = last_applied(&http, &c, leader).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while last_applied(&http, &c, gone).await < Some(target) {
        assert!(Instant::now() < deadline, "never caught up\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = get_json(&http, &format!("{}/healthz", c.api(gone)))
        .await
        .unwrap();
    assert_eq!(h["participants"].as_u64(), Some(22), "{h}");
    hb.abort();
}
