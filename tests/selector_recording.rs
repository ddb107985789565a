//! Recordings through a real `geomesh selector`: the operator starts one on
//! the public API, the selector picks the nearest recorder with room and
//! commits it; recorders (their own certificates) learn it from their
//! heartbeat's answer and report back; a silent recorder's recording moves
//! to another one as part 2; edges hear which conferences are recorded.

mod selector_support;

use std::time::{Duration, Instant};

use geomesh_selector::raft::PeerClient;
use selector_support::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(5);

/// A recorder heartbeat reporting `recordings`; the answer's assignments.
async fn beat(rec: &PeerClient, recordings: Value) -> Vec<Value> {
    let v: Value = rec
        .post(
            "/agent/v1/recorder",
            &json!({"boot_id": "b1", "recordings": recordings}),
            T,
        )
        .await
        .unwrap();
    v["recordings"].as_array().unwrap().clone()
}

fn report(conference: &str, recording: &str, state: &str) -> Value {
    json!({"conference": conference, "recording": recording, "state": state,
           "dir": format!("/rec/{recording}"), "sources": 2, "bytes": 1000})
}

/// Participant ada joins conference "far" on `edge`.
async fn ada_joins(edge: &EdgeAgent) {
    edge.post(
        0,
        "/agent/v1/participants",
        &json!({"joined": [{"conference": "far", "participant": "ada"}]}),
    )
    .await
    .unwrap();
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_placed_near_their_meeting_reported_and_moved_off_a_silent_recorder() {
    let mut c = Cluster::with_recorders(1);
    c.start_all();
    let http = http();
    c.wait_leader(&http, Duration::from_secs(30)).await;
    let op = Some(operator_token());
    let url = |conf: &str| format!("{}/v1/conferences/{conf}/recording", c.api(0));
    let post = reqwest::Method::POST;

    // Operators only; nothing to record with until a recorder heartbeats.
    assert_eq!(call(&http, post.clone(), &url("far"), None).await.0, 401);
    assert_eq!(
        call(&http, post.clone(), &url("far"), Some("not-the-token"))
            .await
            .0,
        401
    );
    let (s, v) = call(&http, post.clone(), &url("far"), op).await;
    assert_eq!((s, v["error"].as_str()), (503, Some("unavailable")), "{v}");

    // Roles: an edge may not heartbeat as a recorder, a recorder may not
    // call edge endpoints.
    let edges = register_edges(&c, 0).await;
    let ap = edges.iter().find(|e| e.id == "edge-ap").unwrap();
    assert_eq!(
        status(
            c.internal_client("edge-eu", 0)
                .post("/agent/v1/recorder", &json!({"boot_id": "b1"}), T)
                .await
        ),
        (403, "forbidden".into())
    );
    let rec_eu = c.internal_client("rec-eu", 0);
    let rec_ap = c.internal_client("rec-ap", 0);
    assert_eq!(
        status(
            rec_eu
                .post("/agent/v1/heartbeat", &ap.heartbeat_body(), T)
                .await
        ),
        (403, "forbidden".into())
    );
    // Bad bodies are refused with the field that is wrong.
    let bad = rec_eu
        .post::<_, Value>(
            "/agent/v1/recorder",
            &json!({"boot_id": "b1", "recordings": [report("far", "../x", "recording")]}),
            T,
        )
        .await;
    assert_eq!(status(bad), (400, "bad_request".into()));

    // Both recorders heartbeat; a participant is on edge-ap.
    assert!(beat(&rec_eu, json!([])).await.is_empty());
    assert!(beat(&rec_ap, json!([])).await.is_empty());
    ada_joins(ap).await;

    // "far" goes to the recorder in ap, nearest its participant; a second
    // start keeps it; "near" (nobody yet) to the other, the one with room.
    let (s, v) = call(&http, post.clone(), &url("far"), op).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["recorder"].as_str(), v["state"].as_str()),
        (Some("rec-ap"), Some("starting"))
    );
    let far_id = v["recording"].as_str().unwrap().to_string();
    assert!(far_id.starts_with("far-"), "{far_id}");
    let (s, again) = call(&http, post.clone(), &url("far"), op).await;
    assert_eq!((s, &again["recording"]), (200, &v["recording"]));
    let s = http
        .post(url("near"))
        .header("authorization", format!("Bearer {}", operator_token()))
        .json(&json!({"recording": "near-1", "max_height": 360}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s.as_u16(), 201);
    let (_, v) = call(&http, reqwest::Method::GET, &url("near"), op).await;
    assert_eq!(
        (v["recorder"].as_str(), v["max_height"].as_u64()),
        (Some("rec-eu"), Some(360)),
        "{v}"
    );
    // The recorder is told the policy with the assignment.
    assert_eq!(
        beat(&rec_eu, json!([])).await,
        vec![json!({"conference": "near", "recording": "near-1", "max_height": 360})]
    );
    // Both recorders are full (capacity 1).
    let (s, _) = call(&http, post.clone(), &url("third"), op).await;
    assert_eq!(s, 503);

    // rec-ap is told, writes it, and its report shows on GET; the edge
    // hosting the conference hears it is recorded.
    let mine = beat(&rec_ap, json!([])).await;
    assert_eq!(
        mine,
        vec![json!({"conference": "far", "recording": far_id})]
    );
    beat(&rec_ap, json!([report("far", &far_id, "recording")])).await;
    let (s, v) = call(&http, reqwest::Method::GET, &url("far"), op).await;
    assert_eq!(
        (s, v["state"].as_str(), v["report"]["bytes"].as_u64()),
        (200, Some("recording"), Some(1000))
    );
    let hb = ap.heartbeat(0).await.unwrap();
    assert_eq!(hb["recording"], json!(["far"]), "{hb}");

    // "near" stops (rec-eu has room again); rec-ap falls silent: after the
    // health timeout the leader moves "far" to rec-eu as part 2.
    let (s, v) = call(&http, reqwest::Method::DELETE, &url("near"), op).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopping")));
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let mine = beat(&rec_eu, json!([])).await;
        if let Some(a) = mine.first() {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "the recording never moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        moved,
        json!({"conference": "far", "recording": format!("{far_id}-p2"), "continues": far_id})
    );
    let (_, v) = call(&http, reqwest::Method::GET, &url("far"), op).await;
    assert_eq!(
        (v["recorder"].as_str(), v["parts"].as_u64()),
        (Some("rec-eu"), Some(2)),
        "{v}"
    );

    // Stopped: "stopping" until the recorder reports the files closed.
    let (s, v) = call(&http, reqwest::Method::DELETE, &url("far"), op).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("stopping")));
    assert!(beat(&rec_eu, json!([])).await.is_empty());
    beat(
        &rec_eu,
        json!([report("far", &format!("{far_id}-p2"), "stopped")]),
    )
    .await;
    let (_, v) = call(&http, reqwest::Method::GET, &url("far"), op).await;
    assert_eq!(v["state"].as_str(), Some("stopped"), "{v}");
    let hb = ap.heartbeat(0).await.unwrap();
    assert!(hb.get("recording").is_none(), "{hb}");
    // A second stop finds nothing to stop.
    let (s, v) = call(&http, reqwest::Method::DELETE, &url("far"), op).await;
    assert_eq!((s, v["error"].as_str()), (404, Some("not_recording")));

    // A recording whose recorder reports it failed (a write error) stops:
    // participants are no longer told they are recorded, GET says failed.
    // (edge-ap was silent through the move above, so its participant is
    // gone: it comes back.)
    ap.heartbeat(0).await.unwrap();
    ada_joins(ap).await;
    let (s, v) = call(&http, post.clone(), &url("far"), op).await;
    assert_eq!((s, v["recorder"].as_str()), (201, Some("rec-eu")), "{v}");
    let failing = v["recording"].as_str().unwrap().to_string();
    assert_ne!(failing, far_id);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ap.heartbeat(0).await.unwrap()["recording"] != json!(["far"]) {
        assert!(Instant::now() < deadline, "the edge never heard of it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    beat(&rec_eu, json!([report("far", &failing, "failed")])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hb = ap.heartbeat(0).await.unwrap();
        if hb.get("recording").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a failed recording still shown: {hb}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v) = call(&http, reqwest::Method::GET, &url("far"), op).await;
    assert_eq!(
        (v["state"].as_str(), v["recording"].as_str()),
        (Some("failed"), Some(failing.as_str())),
        "{v}"
    );
    assert!(
        beat(&rec_eu, json!([report("far", &failing, "failed")]))
            .await
            .is_empty()
    );
}
