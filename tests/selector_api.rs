//! The public join API of a real `geomesh selector`: placements, tokens,
//! idempotency, drain, read views, metrics, and bad input answered with
//! typed errors that change nothing.

mod selector_support;

use std::time::Duration;

use geomesh_core::token::TokenVerifier;
use geomesh_core::{ConferenceId, EdgeId};
use selector_support::*;
use serde_json::{Value, json};

async fn participants(http: &reqwest::Client, c: &Cluster) -> u64 {
    get_json(http, &format!("{}/healthz", c.api(0)))
        .await
        .unwrap()["participants"]
        .as_u64()
        .unwrap()
}

async fn join(http: &reqwest::Client, c: &Cluster, body: Value) -> (u16, Value) {
    post_json(http, &format!("{}/v1/join", c.api(0)), &body.to_string())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_api_places_signs_drains_and_refuses_bad_input() {
    let mut c = Cluster::new(1);
    c.start_all();
    let http = http();
    c.wait_leader(&http, Duration::from_secs(30)).await;
    let h = get_json(&http, &format!("{}/healthz", c.api(0)))
        .await
        .unwrap();
    assert_eq!(h["raft_role"], "leader");
    assert_eq!(h["leader_id"], "sel-1");
    let agents = register_edges(&c, 0).await;
    let hb = spawn_heartbeats(agents);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Loopback is in the "eu" GeoIP override: nearest is edge-eu.
    let (status, r) = join(
        &http,
        &c,
        json!({"conference": "standup", "participant": "ada", "display_name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["edge"]["id"], "edge-eu");
    assert!(r["edge"]["ws_url"].as_str().unwrap().ends_with("/v1/rtc"));
    assert!(
        r["edge"]["whip_url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/whip/standup")
    );
    let verifier = TokenVerifier::load(&c.certs.join("token.pub")).unwrap();
    let claims = verifier
        .verify(
            r["token"].as_str().unwrap(),
            std::time::SystemTime::now(),
            &EdgeId::new("edge-eu").unwrap(),
            Some(&ConferenceId::new("standup").unwrap()),
        )
        .unwrap();
    assert_eq!(claims.participant.as_str(), "ada");
    assert_eq!(claims.name.as_deref(), Some("Ada"));
    let fallbacks = r["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 2, "{r}");
    for f in fallbacks {
        let e = EdgeId::new(f["edge"]["id"].as_str().unwrap()).unwrap();
        assert_ne!(e.as_str(), "edge-eu");
        verifier
            .verify(
                f["token"].as_str().unwrap(),
                std::time::SystemTime::now(),
                &e,
                None,
            )
            .unwrap();
    }

    // Idempotent by participant: same edge, still one placement.
    let (_, again) = join(
        &http,
        &c,
        json!({"conference": "standup", "participant": "ada"}),
    )
    .await;
    assert_eq!(again["edge"]["id"], "edge-eu");
    assert_eq!(participants(&http, &c).await, 1);
    // No participant id: one is assigned.
    let (status, anon) = join(
        &http,
        &c,
        json!({"conference": "solo", "location": {"lat": 40.7, "lon": -74.0}}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(anon["participant"].as_str().unwrap().starts_with("p-"));
    assert_eq!(
        anon["edge"]["id"], "edge-us",
        "the location hint beats GeoIP"
    );
    // Probes beat the geo estimate.
    let (_, probed) = join(
        &http,
        &c,
        json!({"conference": "probed", "participant": "p1", "location": {"lat": 48.85, "lon": 2.35},
               "probes": [{"edge": "edge-eu", "rtt_ms": 250}, {"edge": "edge-us", "rtt_ms": 240},
                          {"edge": "edge-ap", "rtt_ms": 4}]}),
    )
    .await;
    assert_eq!(probed["edge"]["id"], "edge-ap", "{probed}");

    // Bad input: typed 400s, nothing stored.
    let before = participants(&http, &c).await;
    let conf_before = get_json(&http, &format!("{}/v1/conferences/standup", c.api(0))).await;
    let bad: &[&str] = &[
        r#"{"conference":"#,
        r#"not json"#,
        r#"{"conference":"x","probez":[]}"#,
        r#"{"conference":"a b"}"#,
        r#"{"participant":"nobody"}"#,
        r#"{"conference":"x","location":{"lat":95,"lon":0}}"#,
        r#"{"conference":"x","location":{"lat":0,"lon":-180.5}}"#,
        r#"{"conference":"x","location":{"lat":0,"lon":0,"alt":3}}"#,
        r#"{"conference":"x","probes":[{"edge":"edge-eu","rtt_ms":-3}]}"#,
        r#"{"conference":"x","probes":[{"edge":"edge-eu","rtt_ms":1e12}]}"#,
        r#"{"conference":"x","probes":[{"edge":"edge-eu","rtt_ms":3},{"edge":"edge-eu","rtt_ms":4}]}"#,
        r#"{"conference":"x","display_name":"a\u0000b"}"#,
    ];
    for body in bad {
        let (status, v) = post_json(&http, &format!("{}/v1/join", c.api(0)), body)
            .await
            .unwrap();
        assert_eq!(status, 400, "{body} → {v}");
        assert_eq!(v["error"], "bad_request", "{body} → {v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(participants(&http, &c).await, before);
    assert_eq!(
        get_json(&http, &format!("{}/v1/conferences/standup", c.api(0))).await,
        conf_before
    );

    // Read views.
    let conf = get_json(&http, &format!("{}/v1/conferences/standup", c.api(0)))
        .await
        .unwrap();
    assert_eq!(conf["participants"][0]["participant"], "ada");
    assert_eq!(conf["edges"][0]["id"], "edge-eu");
    let (status, v) = get_status(&http, &format!("{}/v1/conferences/nope", c.api(0))).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("unknown_conference"))
    );
    let (status, _) = get_status(&http, &format!("{}/v1/conferences/a%20b", c.api(0))).await;
    assert_eq!(status, 400);
    let targets = get_json(&http, &format!("{}/v1/probe-targets", c.api(0)))
        .await
        .unwrap();
    let targets = targets["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    assert_eq!(targets[0]["edge"], "edge-eu", "nearest first");
    assert!(
        targets[0]["probe_url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/probe")
    );
    let bridges = get_json(&http, &format!("{}/v1/bridges", c.api(0)))
        .await
        .unwrap();
    let eu = &bridges["bridges"][0];
    assert_eq!(
        (
            eu["id"].as_str(),
            eu["registered"].as_bool(),
            eu["healthy"].as_bool()
        ),
        (Some("edge-eu"), Some(true), Some(true))
    );

    // Drain: unknown edge and bad bodies change nothing; a drained edge takes no joins.
    let drain = |e: &str| format!("{}/v1/bridges/{e}/drain", c.api(0));
    let (status, v) = post_json(&http, &drain("edge-zz"), "").await.unwrap();
    assert_eq!((status, v["error"].as_str()), (404, Some("unknown_edge")));
    let (status, _) = post_json(&http, &drain("Bad_Id"), "").await.unwrap();
    assert_eq!(status, 400);
    let (status, _) = post_json(&http, &drain("edge-eu"), r#"{"drain":true}"#)
        .await
        .unwrap();
    assert_eq!(status, 400);
    let bridges = get_json(&http, &format!("{}/v1/bridges", c.api(0)))
        .await
        .unwrap();
    assert!(
        bridges["bridges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["draining"] == false)
    );
    let (status, v) = post_json(&http, &drain("edge-eu"), "").await.unwrap();
    assert_eq!((status, v["draining"].as_bool()), (200, Some(true)), "{v}");
    let (_, r) = join(
        &http,
        &c,
        json!({"conference": "after-drain", "participant": "bob"}),
    )
    .await;
    assert_ne!(
        r["edge"]["id"], "edge-eu",
        "draining edges take no new participants"
    );
    let (status, v) = post_json(&http, &drain("edge-eu"), r#"{"draining":false}"#)
        .await
        .unwrap();
    assert_eq!((status, v["draining"].as_bool()), (200, Some(false)));

    // Metrics.
    let m = http
        .get(format!("{}/metrics", c.api(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "geomesh_selector_joins_total{result=\"ok\",reason=\"nearest\"}",
        "geomesh_selector_joins_total{result=\"bad_request\",reason=\"none\"} 12",
        "geomesh_selector_placements_total{reason=",
        "geomesh_selector_raft_role{role=\"leader\"} 1",
        "geomesh_selector_edges_healthy 3",
    ] {
        assert!(m.contains(needle), "{needle} missing in\n{m}");
    }
    hb.abort();
}

async fn get_status(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}
