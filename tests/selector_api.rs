//! The public join API of a real `geomesh selector`: placements, tokens,
//! idempotency, drain, read views, metrics, and bad input answered with
//! typed errors that change nothing.

mod selector_support;

use std::time::{Duration, Instant};

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

    // Operating needs the operator's credential, wherever the request comes from.
    let drain = |e: &str| format!("{}/v1/bridges/{e}/drain", c.api(0));
    for (method, url) in [
        (reqwest::Method::POST, drain("edge-eu")),
        (
            reqwest::Method::GET,
            format!("{}/v1/conferences/standup", c.api(0)),
        ),
    ] {
        for auth in [None, Some("Bearer not-the-token"), Some("Basic x")] {
            let mut r = http.request(method.clone(), &url);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {url} with {auth:?}");
        }
    }
    // Drain: unknown edge and bad bodies change nothing; a drained edge takes no joins.
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
    let m = metrics_text(&http, &c.api(0)).await;
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

/// GET as the operator: status and body.
async fn get_status(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http
        .get(url)
        .header("authorization", format!("Bearer {}", operator_token()))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn status_of(http: &reqwest::Client, c: &Cluster, body: Value) -> (u16, String, Value) {
    let (s, v) = join(http, c, body).await;
    (s, v["error"].as_str().unwrap_or("").to_string(), v)
}

/// Waits (bounded) until `f` holds; fails with what `f` last saw.
async fn eventually<F, Fut>(what: &str, mut f: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let mut last = None;
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        last = Some(what);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s ({last:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoins_exclusions_regions_the_page_and_a_silent_edge() {
    let mut c = Cluster::new(1);
    c.start_all();
    let http = http();
    c.wait_leader(&http, Duration::from_secs(30)).await;
    let agents = register_edges(&c, 0).await;
    let (eu, us, ap) = (agents[0].clone(), agents[1].clone(), agents[2].clone());
    let mut hb = spawn_heartbeats(agents.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A region hint places the client as if it were there.
    let (s, _, r) = status_of(&http, &c, json!({"conference": "r", "region": "ap"})).await;
    assert_eq!((s, r["edge"]["id"].as_str()), (200, Some("edge-ap")), "{r}");
    let (s, code, _) = status_of(&http, &c, json!({"conference": "r", "region": "mars"})).await;
    assert_eq!((s, code.as_str()), (400, "bad_request"));

    // Grants: none, tampered, for another conference or participant → refused.
    let raw_join = |auth: Option<String>, body: Value| {
        let http = http.clone();
        let url = format!("{}/v1/join", c.api(0));
        async move {
            let mut r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(a) = auth {
                r = r.header("authorization", format!("Bearer {a}"));
            }
            let r = r.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, v) = raw_join(None, json!({"conference": "m"})).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")), "{v}");
    let g = grant("m", "ada");
    // A claim changed: the payload is base64 still, its signature is not its own.
    let mut parts: Vec<String> = g.split('.').map(String::from).collect();
    let mut b = parts[1].clone().into_bytes();
    b[5] = if b[5] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(b).unwrap();
    let tampered = parts.join(".");
    let (s, v) = raw_join(Some(tampered), json!({"conference": "m"})).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("bad signature"),
        "{v}"
    );
    let (s, v) = raw_join(Some(grant("other", "ada")), json!({"conference": "m"})).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, _) = raw_join(
        Some(g.clone()),
        json!({"conference": "m", "participant": "mallory"}),
    )
    .await;
    assert_eq!(s, 403, "a grant names who joins");
    // A grant admits its participant; the edge token carries the identity.
    let (s, a) = raw_join(Some(g), json!({"conference": "m", "display_name": "Ada"})).await;
    assert_eq!((s, a["participant"].as_str()), (200, Some("ada")), "{a}");
    let secret = a["rejoin_secret"].as_str().unwrap().to_string();
    assert_eq!(a["selectors"][0], c.api(0), "{a}");
    let ada = json!({"conference": "m", "participant": "ada"});
    eu.post(0, "/agent/v1/participants", &json!({"joined": [ada]}))
        .await
        .unwrap();
    // The rejoin secret is its own proof (a grant may expire in a long
    // meeting); another participant's secret is not.
    let (_, _, bob) = status_of(&http, &c, json!({"conference": "m", "participant": "bob"})).await;
    for wrong in ["nonsense", bob["rejoin_secret"].as_str().unwrap()] {
        let (s, v) = raw_join(
            None,
            json!({"conference": "m", "participant": "ada", "rejoin_secret": wrong}),
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("bad_rejoin_secret")),
            "{wrong}"
        );
    }
    let (s, r) = raw_join(
        None,
        json!({"conference": "m", "participant": "ada", "rejoin_secret": secret}),
    )
    .await;
    assert_eq!((s, r["edge"]["id"].as_str()), (200, Some("edge-eu")), "{r}");
    // A subscribe-only grant: the edge token says so, and so does the secret.
    let viewer = {
        use geomesh_core::grant::{GrantClaims, GrantSigner};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        GrantSigner::hs256("test-app", grant_secret().as_bytes()).sign(&GrantClaims {
            sub: "vic".parse().unwrap(),
            conf: "m".parse().unwrap(),
            name: Some("Vic".into()),
            publish: false,
            subscribe: true,
            exp: now + 600,
            iat: Some(now),
            nbf: None,
        })
    };
    let (s, v) = raw_join(Some(viewer), json!({"conference": "m"})).await;
    assert_eq!(s, 200, "{v}");
    let verifier = TokenVerifier::load(&c.certs.join("token.pub")).unwrap();
    let claims = verifier
        .check(
            v["token"].as_str().unwrap(),
            std::time::SystemTime::now(),
            None,
            None,
        )
        .unwrap();
    assert!(claims.no_publish && !claims.no_subscribe, "{claims:?}");
    assert_eq!(claims.name.as_deref(), Some("Vic"));
    let (s, again) = raw_join(
        None,
        json!({"conference": "m", "participant": "vic", "rejoin_secret": v["rejoin_secret"]}),
    )
    .await;
    assert_eq!(s, 200);
    let claims = verifier
        .check(
            again["token"].as_str().unwrap(),
            std::time::SystemTime::now(),
            None,
            None,
        )
        .unwrap();
    assert!(claims.no_publish, "a rejoin keeps the grant's rights");
    // Excluding the edge it failed on moves it.
    let (s, _, r) = status_of(
        &http,
        &c,
        json!({"conference": "m", "participant": "ada", "rejoin_secret": secret,
               "exclude": ["edge-eu"]}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_ne!(r["edge"]["id"], "edge-eu", "{r}");
    assert!(
        r["fallbacks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["edge"]["id"] != "edge-eu"),
        "{r}"
    );
    let (s, code, _) = status_of(
        &http,
        &c,
        json!({"conference": "m", "exclude": (0..17).map(|i| format!("e{i}")).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "bad_request"));

    // The meeting page and cross-origin joins.
    let page = http.get(format!("{}/", c.api(0))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/app.js"));
    let js = http
        .get(format!("{}/app.js", c.api(0)))
        .send()
        .await
        .unwrap();
    assert!(js.text().await.unwrap().contains("/v1/join"));
    let layout = http
        .get(format!("{}/layout.js", c.api(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        layout.headers()["content-type"],
        "text/javascript",
        "the page's layout script"
    );
    assert!(layout.text().await.unwrap().contains("max_heights"));
    let pre = http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/join", c.api(0)))
        .header("origin", "http://elsewhere.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    assert!(
        pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type")
    );

    // An edge that stops heartbeating loses its placements at once, keeps
    // its registration, and gets them back through a resync when it returns.
    let (_, _, cai) = status_of(
        &http,
        &c,
        json!({"conference": "m", "participant": "cai", "location": {"lat": 40.7, "lon": -74.0}}),
    )
    .await;
    assert_eq!(cai["edge"]["id"], "edge-us", "{cai}");
    let cai_ref = json!({"conference": "m", "participant": "cai"});
    us.post(0, "/agent/v1/participants", &json!({"joined": [cai_ref]}))
        .await
        .unwrap();
    hb.abort();
    hb = spawn_heartbeats(vec![eu.clone(), ap.clone()]);
    let bridges = format!("{}/v1/bridges", c.api(0));
    let us_bridge = |b: Value| {
        b["bridges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "edge-us")
            .cloned()
    };
    eventually("edge-us unhealthy and emptied", || async {
        let b = us_bridge(get_json(&http, &bridges).await?)?;
        (b["healthy"] == false && b["participants"] == 0 && b["registered"] == true).then_some(b)
    })
    .await;
    let (s, _, r) = status_of(
        &http,
        &c,
        json!({"conference": "m2", "location": {"lat": 40.7, "lon": -74.0}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(r["edge"]["id"], "edge-us", "new joins avoid it: {r}");
    // It comes back still holding cai: its digest differs, twice → resync.
    let digest = geomesh_core::agent::participant_digest([(
        &ConferenceId::new("m").unwrap(),
        &"cai".parse().unwrap(),
    )]);
    let mut body = serde_json::to_value(us.heartbeat_body()).unwrap();
    body["participants"] = json!(1);
    body["digest"] = json!(digest);
    let first = us.post(0, "/agent/v1/heartbeat", &body).await.unwrap();
    assert_eq!(
        first["resync"], false,
        "one mismatch may be a report in flight"
    );
    let second = us.post(0, "/agent/v1/heartbeat", &body).await.unwrap();
    assert_eq!(second["resync"], true, "{second}");
    let page = us.get(0, "/agent/v1/placements").await.unwrap();
    assert_eq!(page["placements"], json!([]), "{page}");
    us.post(0, "/agent/v1/participants", &json!({"joined": [cai_ref]}))
        .await
        .unwrap();
    let third = us.post(0, "/agent/v1/heartbeat", &body).await.unwrap();
    assert_eq!(third["resync"], false, "{third}");
    let conf = get_json(&http, &format!("{}/v1/conferences/m", c.api(0)))
        .await
        .unwrap();
    assert!(
        conf["participants"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["participant"] == "cai" && p["edge"] == "edge-us" && p["confirmed"] == true),
        "{conf}"
    );

    // Drain with migrate: told in the heartbeat answer; unused placements released.
    let (_, _, dan) = status_of(&http, &c, json!({"conference": "m3", "participant": "dan"})).await;
    assert_eq!(dan["edge"]["id"], "edge-eu");
    let (s, v) = post_json(
        &http,
        &format!("{}/v1/bridges/edge-eu/drain", c.api(0)),
        r#"{"draining":true,"migrate":true}"#,
    )
    .await
    .unwrap();
    assert_eq!((s, v["migrate"].as_bool()), (200, Some(true)), "{v}");
    let answer = eu.heartbeat(0).await.unwrap();
    assert_eq!(
        (answer["draining"].as_bool(), answer["migrate"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        get_status(&http, &format!("{}/v1/conferences/m3", c.api(0)))
            .await
            .0,
        404,
        "dan never connected: released"
    );
    hb.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_flood_is_rate_limited_per_address_and_per_conference() {
    let mut c = Cluster::new(1);
    // 5 joins/s per address, 10/s per conference; bursts of twice that.
    let at = |c: &Cluster, flag: &str| c.flags.iter().position(|f| f == flag).unwrap() + 1;
    let (a, b) = (
        at(&c, "--join-rate-per-address"),
        at(&c, "--join-rate-per-conference"),
    );
    c.flags[a] = "5".into();
    c.flags[b] = "10".into();
    let (http, hb) = c.up().await;
    let url = format!("{}/v1/join", c.api(0));

    // One address floods its own meeting: its burst passes, then 429 with
    // a Retry-After, and nothing of it was stored.
    // A token bucket passes its burst plus what refilled while the loop
    // ran (this machine may be slow: the bound follows the time taken).
    let bucket = |rate: f64, t0: Instant| {
        (2.0 * rate + rate * t0.elapsed().as_secs_f64()).ceil() as usize + 1
    };
    let flooder = http_from([127, 0, 0, 2]);
    let mut codes = Vec::new();
    let t0 = Instant::now();
    for i in 0..40 {
        let body = json!({"conference": "flood", "participant": format!("f{i}")}).to_string();
        let (status, v) = post_json(&flooder, &url, &body).await.unwrap();
        codes.push((status, v["error"].as_str().unwrap_or("").to_string()));
    }
    let passed = codes.iter().filter(|(s, _)| *s == 200).count();
    assert!((10..=bucket(5.0, t0)).contains(&passed), "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|(s, e)| *s == 200 || (*s == 429 && e == "rate_limited")),
        "{codes:?}"
    );
    let r = flooder
        .post(&url)
        .header("content-type", "application/json")
        .body(json!({"conference": "flood", "participant": "late"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(participants(&http, &c).await, passed as u64);

    // Meanwhile another address joins another meeting at once.
    let (status, v) = post_json(
        &http_from([127, 0, 0, 3]),
        &url,
        &json!({"conference": "calm", "participant": "ada"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{v}");

    // Many addresses, one meeting: the conference's burst passes, the rest
    // wait, whatever address they come from.
    let mut big = Vec::new();
    let t0 = Instant::now();
    for i in 0..40u8 {
        let body = json!({"conference": "big", "participant": format!("b{i}")}).to_string();
        let (status, v) = post_json(&http_from([127, 0, 1, 10 + i]), &url, &body)
            .await
            .unwrap();
        big.push((status, v["message"].as_str().unwrap_or("").to_string()));
    }
    let passed_big = big.iter().filter(|(s, _)| *s == 200).count();
    assert!((20..=bucket(10.0, t0)).contains(&passed_big), "{big:?}");
    assert!(
        big.iter()
            .all(|(s, m)| *s == 200 || m.contains("this conference")),
        "{big:?}"
    );

    // The limit is a rate, not a ban: after the wait the flooder joins.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, v) = post_json(
        &flooder,
        &url,
        &json!({"conference": "flood", "participant": "late"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{v}");

    let text = metrics_text(&http, &c.api(0)).await;
    let limited: f64 = text
        .lines()
        .filter(|l| l.starts_with("geomesh_selector_joins_total") && l.contains("rate_limited"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    let refused = codes.iter().filter(|(s, _)| *s == 429).count() + 1 + (40 - passed_big);
    assert_eq!(limited as usize, refused, "{text}");
    hb.abort();
}

/// The selection log: one entry per placement, on the node that made it,
/// with every edge weighed and why it lost; a repeated join adds none, a
/// move says where from; operators only; `geomesh selector selections`
/// merges the nodes' logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_selection_log_has_one_entry_per_placement_with_its_candidates() {
    let mut c = Cluster::new(3);
    let (http, hb) = c.up().await;
    let t0 = std::time::SystemTime::now();
    let script = [
        (
            0,
            json!({"conference": "log", "participant": "ada", "location": {"lat": 48.85, "lon": 2.35}}),
        ),
        (
            1,
            json!({"conference": "log", "participant": "bob", "location": {"lat": 40.7, "lon": -74.0}}),
        ),
        (
            2,
            json!({"conference": "log", "participant": "cyd",
                   "probes": [{"edge": "edge-ap", "rtt_ms": 9}, {"edge": "edge-eu", "rtt_ms": 180}]}),
        ),
        // The same join again through another node: no new placement.
        (
            1,
            json!({"conference": "log", "participant": "ada", "location": {"lat": 48.85, "lon": 2.35}}),
        ),
    ];
    let mut placed = Vec::new();
    for (node, body) in &script {
        let url = format!("{}/v1/join", c.api(*node));
        let (status, v) = post_json(&http, &url, &body.to_string()).await.unwrap();
        assert_eq!(status, 200, "{v}");
        placed.push(v["edge"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(placed[0], placed[3]);
    // Bob cannot reach his edge: he is moved.
    let body = json!({"conference": "log", "participant": "bob", "exclude": [placed[1]],
                      "location": {"lat": 40.7, "lon": -74.0}});
    let (status, moved) = post_json(&http, &format!("{}/v1/join", c.api(2)), &body.to_string())
        .await
        .unwrap();
    assert_eq!(status, 200, "{moved}");
    assert_ne!(moved["edge"]["id"].as_str().unwrap(), placed[1]);

    // Operators only.
    let r = http
        .get(format!("{}/v1/selections", c.api(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let mut all = Vec::new();
    for i in 0..3 {
        let s = get_json(&http, &format!("{}/v1/selections?conference=log", c.api(i)))
            .await
            .unwrap();
        assert_eq!(s["selector"], format!("sel-{}", i + 1));
        all.extend(s["selections"].as_array().unwrap().iter().cloned());
    }
    all.sort_by_key(|e| e["at_ms"].as_u64().unwrap());
    let who: Vec<&str> = all
        .iter()
        .map(|e| e["participant"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["ada", "bob", "cyd", "bob"], "{all:#?}");
    let verdicts = [
        "chosen",
        "farther",
        "more_stressed",
        "affinity",
        "conference_cap",
        "unhealthy",
        "draining",
        "overloaded",
        "unregistered",
        "no_rtt",
    ];
    for e in &all {
        assert!(e["at_ms"].as_u64().unwrap() >= super_unix_ms(t0), "{e}");
        let cands = e["candidates"].as_array().unwrap();
        assert_eq!(cands.len(), EDGES.len(), "every edge weighed: {e}");
        assert_eq!(cands[0]["verdict"], "chosen", "{e}");
        assert_eq!(cands[0]["edge"], e["edge"], "{e}");
        assert_eq!(
            cands.iter().filter(|c| c["verdict"] == "chosen").count(),
            1,
            "{e}"
        );
        for c in cands {
            assert!(verdicts.contains(&c["verdict"].as_str().unwrap()), "{c}");
            assert!(c["stress"].as_f64().unwrap() >= 0.0, "{c}");
        }
        assert!(
            e["reason"].is_string() && e["rtt_ms"].as_f64().unwrap() > 0.0,
            "{e}"
        );
    }
    assert_eq!(all[2]["rtt_source"], "probe");
    assert_eq!(all[0]["location_source"], "hint");
    assert_eq!(all[3]["moved_from"], placed[1].as_str());
    let excluded = all[3]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["edge"] == placed[1].as_str())
        .unwrap();
    assert_eq!(
        excluded["verdict"], "unhealthy",
        "the client could not reach it"
    );
    assert_eq!(all[1]["selector"], "sel-2");

    // The CLI merges every node's log: the same four, one line each.
    let token_file = c.dir.path().join("operator-token");
    std::fs::write(&token_file, operator_token()).unwrap();
    let apis = (0..3).map(|i| c.api(i)).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new(EXE)
        .args([
            "selector",
            "selections",
            "--conference",
            "log",
            "--json",
            "--selector",
            &apis,
        ])
        .arg("--operator-token")
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all);
    let text = std::process::Command::new(EXE)
        .args(["selector", "selections", "--selector", &apis])
        .arg("--operator-token")
        .arg(&token_file)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains("moved from"), "{text}");
    hb.abort();
}

fn super_unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
