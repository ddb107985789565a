//! The internal mutual-TLS listener of a real `geomesh selector`: who may
//! call what, and bad agent bodies answered with typed errors that change
//! nothing (neither the replicated state nor this node's soft state).

mod selector_support;

use std::sync::Arc;
use std::time::Duration;

use geomesh_selector::raft::{CallError, PeerClient};
use geomesh_selector::tls::{client_config, load_certs};
use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair, SanType};
use selector_support::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

/// A certificate for `edge-rogue` (not in the topology) signed by the
/// cluster CA, written next to the real ones.
fn rogue_edge_cert(c: &Cluster) -> PeerClient {
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(c.certs.join("ca.key")).unwrap()).unwrap();
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "geomesh");
    dn.push(DnType::CommonName, "geomesh cluster CA (test)");
    ca.distinguished_name = dn;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["edge-rogue".to_string()]).unwrap();
    p.subject_alt_names.push(SanType::URI(
        rcgen::string::Ia5String::try_from("urn:geomesh:edge:edge-rogue".to_string()).unwrap(),
    ));
    let cert = p.signed_by(&key, &issuer).unwrap();
    let dir = path_in(c, "rogue");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        for cert in load_certs(&c.certs.join("ca.pem")).unwrap() {
            r.add(cert).unwrap();
        }
        Arc::new(r)
    };
    let cfg = client_config(
        roots,
        load_certs(&dir.join("cert.pem")).unwrap(),
        geomesh_selector::tls::load_key(&dir.join("key.pem")).unwrap(),
    )
    .unwrap();
    PeerClient::new(&cfg, "sel-1", c.selectors[0].raft).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_api_checks_identity_and_refuses_bad_bodies() {
    let mut c = Cluster::new(1);
    c.start_all();
    let http = http();
    c.wait_leader(&http, Duration::from_secs(30)).await;
    let bridges = || async {
        get_json(&http, &format!("{}/v1/bridges", c.api(0)))
            .await
            .unwrap()["bridges"]
            .clone()
    };

    // Only edge-eu and edge-us register; edge-ap stays unregistered.
    let eu = EdgeAgent::new(&c, "edge-eu");
    let us = EdgeAgent::new(&c, "edge-us");
    let ap = EdgeAgent::new(&c, "edge-ap");
    let reg = eu.register(0).await;
    assert_eq!(reg.edge.as_str(), "edge-eu");
    assert_eq!(reg.region.as_str(), "eu");
    assert_eq!(reg.heartbeat_interval_ms, 200);
    assert_eq!(reg.selectors.len(), 1);
    assert_eq!(
        reg.selectors[0].url,
        format!("https://{}", c.selectors[0].raft)
    );
    us.register(0).await;

    // A heartbeat from an unregistered edge: 409, nothing recorded.
    assert_eq!(
        status(ap.heartbeat(0).await),
        (409, "not_registered".into())
    );
    let b = bridges().await;
    assert_eq!(
        (
            b[2]["id"].as_str(),
            b[2]["registered"].as_bool(),
            b[2]["healthy"].as_bool()
        ),
        (Some("edge-ap"), Some(false), Some(false))
    );
    assert!(b[2]["load"].is_null());

    // A good heartbeat with 7 participants, then bad ones claiming 99.
    let mut good = eu.heartbeat_body();
    good.participants = 7;
    let client = c.internal_client("edge-eu", 0);
    let ok: Value = client.post("/agent/v1/heartbeat", &good, T).await.unwrap();
    assert_eq!(ok["draining"], false);
    let hb = |patch: Value| {
        let mut v = serde_json::to_value(eu.heartbeat_body()).unwrap();
        v["participants"] = json!(99);
        for (k, x) in patch.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let bad_bodies = [
        hb(json!({"links": [{"edge": "edge-us", "rtt_ms": -1.0}]})),
        hb(json!({"links": [{"edge": "edge-eu", "rtt_ms": 10.0}]})),
        hb(json!({"cpu": 2.0})),
        hb(json!({"stress": -0.5})),
        hb(json!({"packet_rate": -1})),
        hb(json!({"boot_id": ""})),
        hb(json!({"surprise": true})),
        json!({"boot_id": "boot-1"}),
        json!("not an object"),
    ];
    for body in &bad_bodies {
        assert_eq!(
            status(client.post("/agent/v1/heartbeat", body, T).await),
            (400, "bad_request".into()),
            "{body}"
        );
    }
    assert_eq!(
        status(
            client
                .post(
                    "/agent/v1/heartbeat",
                    &hb(json!({"boot_id": "other-boot"})),
                    T
                )
                .await
        ),
        (409, "not_registered".into())
    );
    let b = bridges().await;
    assert_eq!(
        b[0]["load"]["participants"], 7,
        "bad heartbeats changed nothing: {b}"
    );
    // A link to an edge nobody knows (removed a moment ago) is dropped, not
    // a reason to refuse the heartbeat.
    let mut with_stranger = good.clone();
    with_stranger.participants = 8;
    with_stranger.links = vec![
        geomesh_core::agent::LinkRtt {
            edge: "edge-nowhere".parse().unwrap(),
            rtt_ms: 10.0,
            state: None,
            loss: None,
        },
        geomesh_core::agent::LinkRtt {
            edge: "edge-us".parse().unwrap(),
            rtt_ms: 80.0,
            state: Some("up".into()),
            loss: Some(0.01),
        },
    ];
    let _: Value = client
        .post("/agent/v1/heartbeat", &with_stranger, T)
        .await
        .unwrap();
    let b = bridges().await;
    assert_eq!(b[0]["load"]["participants"], 8, "{b}");
    assert_eq!(
        b[0]["load"]["links"],
        json!([{"edge": "edge-us", "rtt_ms": 80.0, "state": "up", "loss": 0.01}]),
        "{b}"
    );

    // Bad registrations change nothing.
    for body in [
        json!({"boot_id": "has space"}),
        json!({"boot_id": "b", "base_url": "ftp://x"}),
        json!({"boot_id": "b", "base_url": "http://x/path"}),
        json!({"boot_id": "b", "extra": 1}),
    ] {
        assert_eq!(
            status(client.post("/agent/v1/register", &body, T).await),
            (400, "bad_request".into()),
            "{body}"
        );
    }
    let h = get_json(&http, &format!("{}/healthz", c.api(0)))
        .await
        .unwrap();
    assert_eq!(h["edges_registered"], 2);

    // Wrong roles and identities.
    let as_selector = c.internal_client("sel-1", 0);
    assert_eq!(
        status(as_selector.post("/agent/v1/heartbeat", &good, T).await),
        (403, "forbidden".into())
    );
    assert_eq!(
        status(client.post("/raft/v1/vote", &json!({}), T).await),
        (403, "forbidden".into())
    );
    assert_eq!(
        status(client.post("/raft/v1/write", &json!([]), T).await),
        (403, "forbidden".into())
    );
    assert_eq!(
        status(client.post("/admin/v1/init", &json!({}), T).await),
        (403, "forbidden".into())
    );
    let rogue = rogue_edge_cert(&c);
    assert_eq!(
        status(
            rogue
                .post("/agent/v1/register", &json!({"boot_id": "r"}), T)
                .await
        ),
        (403, "forbidden".into())
    );

    // No client certificate, or one from another CA: the handshake fails.
    let roots = {
        let mut r = rustls::RootCertStore::empty();
        for cert in load_certs(&c.certs.join("ca.pem")).unwrap() {
            r.add(cert).unwrap();
        }
        Arc::new(r)
    };
    let no_cert = rustls::ClientConfig::builder_with_provider(geomesh_selector::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let anon = PeerClient::new(&no_cert, "sel-1", c.selectors[0].raft).unwrap();
    let r: Result<Value, _> = anon.post("/agent/v1/heartbeat", &good, T).await;
    assert!(
        matches!(r, Err(CallError::Unreachable(_) | CallError::Network(_))),
        "{r:?}"
    );
    let other = path_in(&c, "other-certs");
    let out = std::process::Command::new(EXE)
        .args(["certs", "init", "--topology"])
        .arg(&c.topology)
        .arg("--out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let foreign = client_config(
        roots,
        load_certs(&other.join("nodes/edge-eu.pem")).unwrap(),
        geomesh_selector::tls::load_key(&other.join("nodes/edge-eu.key")).unwrap(),
    )
    .unwrap();
    let foreign = PeerClient::new(&foreign, "sel-1", c.selectors[0].raft).unwrap();
    let r: Result<Value, _> = foreign.post("/agent/v1/heartbeat", &good, T).await;
    assert!(
        matches!(r, Err(CallError::Unreachable(_) | CallError::Network(_))),
        "{r:?}"
    );
    let b = bridges().await;
    assert_eq!(
        b[0]["load"]["participants"], 8,
        "refused callers changed nothing"
    );

    // Participant reports and octo peers.
    us.heartbeat(0).await.unwrap();
    for (p, lat, lon) in [("ada", 48.85, 2.35), ("bob", 40.7, -74.0)] {
        let (s, v) = post_json(
            &http,
            &format!("{}/v1/join", c.api(0)),
            &json!({"conference": "sync", "participant": p, "location": {"lat": lat, "lon": lon}})
                .to_string(),
        )
        .await
        .unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let peers: Value = client.post("/agent/v1/heartbeat", &good, T).await.unwrap();
    assert_eq!(
        peers["conferences"],
        json!({"sync": ["edge-us"]}),
        "{peers}"
    );
    let rep: Value = client
        .post(
            "/agent/v1/participants",
            &json!({"joined": [{"conference": "sync", "participant": "ada"}]}),
            T,
        )
        .await
        .unwrap();
    assert_eq!(rep, json!({"joined": 1, "left": 0, "ignored": 0}));
    let conf = get_json(&http, &format!("{}/v1/conferences/sync", c.api(0)))
        .await
        .unwrap();
    assert_eq!(conf["participants"][0]["confirmed"], true, "{conf}");
    let rep: Value = client
        .post("/agent/v1/participants", &json!({"left": [{"conference": "sync", "participant": "ada"}, {"conference": "sync", "participant": "bob"}]}), T)
        .await
        .unwrap();
    assert_eq!(
        rep,
        json!({"joined": 0, "left": 1, "ignored": 1}),
        "bob is on edge-us, not edge-eu"
    );
    let apc = c.internal_client("edge-ap", 0);
    let r = apc
        .post::<_, Value>(
            "/agent/v1/participants",
            &json!({"left": [{"conference": "sync", "participant": "bob"}]}),
            T,
        )
        .await;
    assert_eq!(status(r), (409, "not_registered".into()));
    let conf = get_json(&http, &format!("{}/v1/conferences/sync", c.api(0)))
        .await
        .unwrap();
    assert_eq!(conf["participants"].as_array().unwrap().len(), 1, "{conf}");

    let m = metrics_text(&http, &c.api(0)).await;
    assert!(
        m.contains("geomesh_selector_tls_handshake_failures_total 2"),
        "{m}"
    );
    assert!(
        m.contains("geomesh_selector_internal_refused_total{reason=\"wrong_role\"}"),
        "{m}"
    );
}
