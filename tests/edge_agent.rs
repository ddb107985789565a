//! The edge's selector agent against a real selector cluster: it learns
//! the cluster's nodes from the registration answer, keeps every node's
//! view of it healthy while one more node it was told about hangs, and
//! repairs a record the cluster lost through the heartbeat digest.

mod selector_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use geomesh_core::topology::TlsSettings;
use geomesh_core::{ConferenceId, ParticipantId, SelectorId};
use geomesh_edge::agent::{AgentConfig, ParticipantEvent};
use geomesh_edge::metrics::Metrics;
use selector_support::*;
use serde_json::{Value, json};

/// A TCP listener that accepts and never answers: a hung selector node.
fn hung_listener() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn edge_view(http: &reqwest::Client, c: &Cluster, i: usize) -> Option<Value> {
    let b = get_json(http, &format!("{}/v1/bridges", c.api(i))).await?;
    b["bridges"]
        .as_array()?
        .iter()
        .find(|x| x["id"] == "edge-eu")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_follows_the_cluster_despite_a_hung_node_and_resyncs_what_it_lost() {
    let mut c = Cluster::new(3);
    c.start_all();
    let http = http();
    c.wait_leader(&http, Duration::from_secs(30)).await;
    let (_hung, hung_addr) = hung_listener();
    let tls = geomesh_selector::tls::NodeTls::load(
        &TlsSettings {
            dir: c.certs.clone(),
        },
        "edge-eu",
    )
    .unwrap();
    // Told of one real node and one that hangs; the others it must learn.
    let config = AgentConfig {
        edge: "edge-eu".parse().unwrap(),
        capacity: 1000,
        base_url: "http://127.0.0.1:1".into(),
        selectors: vec![
            (SelectorId::new("sel-9").unwrap(), hung_addr),
            (SelectorId::new("sel-1").unwrap(), c.selectors[0].raft),
        ],
        tls: (*tls.client).clone(),
        heartbeat: Duration::from_millis(200),
        describe: None,
        about: geomesh_core::agent::EdgeAbout {
            version: "test".into(),
            started_ms: 1,
            sent_ms: 0,
            media: "127.0.0.1:1".parse().unwrap(),
            topology_hash: "t".into(),
            token_key: "k".into(),
            cert_not_after: 0,
        },
    };
    let metrics = Arc::new(Metrics::new());
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    let (agent, _actions) = geomesh_edge::agent::spawn(config, metrics, rx).unwrap();
    for _ in 0..200 {
        if agent.state.registered.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        agent.state.registered.load(Ordering::Relaxed),
        "never registered\n{}",
        c.logs()
    );

    // Every real node hears it, and keeps hearing it: the hung node's
    // calls (each up to its own deadline) delay nobody else's heartbeat.
    let mut healthy_everywhere = false;
    for _ in 0..100 {
        let mut all = true;
        for i in 0..3 {
            all &= edge_view(&http, &c, i)
                .await
                .is_some_and(|b| b["healthy"] == true);
        }
        if all {
            healthy_everywhere = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        healthy_everywhere,
        "nodes learned from the answer were not heartbeated"
    );
    // Health timeout in the test topology: 1 s. Watch for 4 s.
    for _ in 0..20 {
        for i in 0..3 {
            let b = edge_view(&http, &c, i).await.unwrap();
            assert_eq!(b["healthy"], true, "node {i} lost the edge: {b}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        agent
            .state
            .selector_apis
            .lock()
            .unwrap()
            .contains(&c.api(1)),
        "public API URLs learned for the page redirect"
    );

    // A participant connects: reported and confirmed.
    let conf = ConferenceId::new("standup").unwrap();
    let ada: ParticipantId = "ada".parse().unwrap();
    events
        .send(ParticipantEvent {
            joined: true,
            conference: conf.clone(),
            participant: ada.clone(),
            since_ms: Some(1),
        })
        .unwrap();
    let confirmed = |v: Option<Value>| {
        v.is_some_and(|v| {
            v["participants"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["participant"] == "ada" && p["confirmed"] == true)
            })
        })
    };
    let conf_url = format!("{}/v1/conferences/standup", c.api(0));
    let mut ok = false;
    for _ in 0..100 {
        if confirmed(get_json(&http, &conf_url).await) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the report was not applied");

    // The cluster loses it (a stray `left` from this edge's identity): the
    // digest in the agent's heartbeats differs, and the agent repairs it.
    let impostor = EdgeAgent::new(&c, "edge-eu");
    impostor
        .post(
            0,
            "/agent/v1/participants",
            &json!({"left": [{"conference": "standup", "participant": "ada"}]}),
        )
        .await
        .unwrap();
    let mut lost_then_back = (false, false);
    for _ in 0..200 {
        let now = confirmed(get_json(&http, &conf_url).await);
        if !now {
            lost_then_back.0 = true;
        } else if lost_then_back.0 {
            lost_then_back.1 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lost_then_back,
        (true, true),
        "the resync did not bring ada back"
    );
}
