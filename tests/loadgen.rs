//! `geomesh loadgen` against a real `geomesh dev` mesh (its own port block,
//! 18700+): two publishers and a subscriber for five seconds, then the same
//! load through the bare relay. Asserts that media flowed with low loss and
//! that the report holds every figure; never asserts timing.

mod dev_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dev_support::{EXE, http_get, start_dev};
use serde_json::Value;

/// Runs the binary to completion within `limit`; returns (exit ok, stdout, stderr).
fn run_bounded(args: &[&str], limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(EXE)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    (status.is_some_and(|s| s.success()), read(&out), read(&err))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

fn check_run(r: &Value, what: &str) {
    assert_eq!(f(r, "/sessions/planned"), 3.0, "{what}");
    assert_eq!(
        f(r, "/sessions/connected"),
        3.0,
        "{what}: {:#}",
        r["sessions"]
    );
    assert_eq!(f(r, "/sessions/failed"), 0.0, "{what}: {:#}", r["sessions"]);
    for kind in ["video", "audio"] {
        // Two publishers for ~5 s: each sends ~150 video / ~250 audio frames,
        // and each frame has two receivers.
        let sent = f(r, &format!("/{kind}/sent_frames"));
        let got = f(r, &format!("/{kind}/received_frames"));
        let expected = f(r, &format!("/{kind}/loss/expected"));
        assert!(sent > 100.0, "{what} {kind}: sent {sent}");
        assert!(
            got > 0.9 * 2.0 * sent,
            "{what} {kind}: received {got} of 2 × {sent}"
        );
        assert!(
            expected >= 2.0 * sent - 2.0,
            "{what} {kind}: expected {expected}"
        );
        let loss = f(r, &format!("/{kind}/loss/ratio"));
        assert!(loss < 0.02, "{what} {kind}: loss {loss}");
        assert_eq!(
            f(r, &format!("/{kind}/loss/receivers_missing")),
            0.0,
            "{what} {kind}"
        );
        assert!(
            f(r, &format!("/{kind}/received_packets")) >= got,
            "{what} {kind}"
        );
        let d = &r[kind]["delay_ms"];
        assert!(
            f(d, "/count") > 0.0 && f(d, "/p50") <= f(d, "/p99") && f(d, "/p99") <= f(d, "/max")
        );
    }
    assert!(f(r, "/server/forwarded_packets") > 0.0, "{what}");
    assert!(f(r, "/server/cpu_seconds") >= 0.0, "{what}");
    assert_eq!(f(r, "/bad_frames"), 0.0, "{what}");
}

#[test]
fn loadgen_against_geomesh_dev_and_the_relay_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (_dev, state) = start_dev(dir.path(), 18700, &[]);
    let edge = state["edges"][0]["url"].as_str().unwrap().to_string();
    let json = dir.path().join("report.json");
    let json_s = json.to_str().unwrap();
    let (ok, stdout, stderr) = run_bounded(
        &[
            "loadgen",
            "--edge",
            &edge,
            "-c",
            "1",
            "-p",
            "2",
            "-s",
            "1",
            "--duration",
            "5s",
            "--audio",
            "--relay-floor",
            "--json-out",
            json_s,
        ],
        Duration::from_secs(150),
    );
    assert!(ok, "loadgen failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("packets per CPU-second"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    check_run(&report["edge"], "edge");
    check_run(&report["relay_floor"], "relay");
    // The edge exports its CPU time, so the per-packet cost is computed.
    assert!(f(&report["edge"], "/server/packets_per_cpu_second") > 0.0);
    assert!(report["comparison"].is_object());
    // The sessions left cleanly: the edge holds nobody afterwards.
    let addr = edge.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = http_get(&addr, "/healthz");
        if health.contains("\"participants\":0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions still on the edge: {health}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
