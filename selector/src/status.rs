//! The cluster as operators see it, from one selector:
//!
//! - `GET /v1/status` ([`ClusterStatus`]): regions; every edge with its
//!   health, drain state, load, advertised media address, version, uptime,
//!   clock offset and octo links; every selector with its Raft role, term,
//!   indexes and lag (this node asks the others' `/healthz`, 1 s each, in
//!   parallel). `geomesh status` and the `/status` page read it. It names
//!   no participant: public like `/v1/bridges`.
//! - `GET /v1/doctor` ([`MediaProbes`], operators only): a STUN binding
//!   request from this node to every edge's advertised media address — the
//!   check that catches a wrong public IP or a firewall that drops UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use geomesh_core::agent::LinkRtt;
use geomesh_core::{EdgeId, RegionId};
use serde::{Deserialize, Serialize};

use crate::api::Health;
use crate::api_error::ApiFailure;
use crate::node::{Shared, unix_ms};

/// What a node runs: nodes that should agree are compared on these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAbout {
    /// The `geomesh` version.
    pub version: String,
    /// `Topology::hash` of the topology it runs.
    pub topology_hash: String,
    /// `TokenVerifier::key_id` of the join-token key (a selector signs
    /// with it, an edge verifies with it).
    pub token_key: String,
    /// When its certificate expires, Unix seconds (0: unknown).
    pub cert_not_after: u64,
}

/// `GET /v1/status` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The selector that answered.
    pub selector: String,
    /// When, on its clock (Unix ms).
    pub at_ms: u64,
    /// The cluster's name.
    pub cluster: String,
    /// The answering selector's topology hash.
    pub topology_hash: String,
    /// The Raft leader, as the answering node knows it.
    pub leader: Option<String>,
    /// Regions of the topology.
    pub regions: Vec<RegionView>,
    /// Every edge (the topology's, then those registered at runtime).
    pub edges: Vec<EdgeView>,
    /// Every selector of the Raft membership.
    pub selectors: Vec<SelectorView>,
}

/// A region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionView {
    /// Id.
    pub id: RegionId,
    /// Display name.
    pub name: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// An edge as the answering selector sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeView {
    /// Id.
    pub id: EdgeId,
    /// Region.
    pub region: RegionId,
    /// In the topology (else registered from its own description).
    pub in_topology: bool,
    /// Registered with the cluster.
    pub registered: bool,
    /// Heartbeating this selector.
    pub healthy: bool,
    /// Takes no new participants.
    pub draining: bool,
    /// Its participants are being moved away.
    pub migrate: bool,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// Participants placed on it (replicated state).
    pub participants: u32,
    /// Conferences it hosts.
    pub conferences: u32,
    /// Its last reported stress and CPU (0–1).
    pub stress: Option<f64>,
    /// Machine CPU use, 0–1.
    pub cpu: Option<f64>,
    /// Age of its last heartbeat here, ms.
    pub heartbeat_age_ms: Option<u64>,
    /// The media address in its ICE candidates.
    pub media: Option<SocketAddr>,
    /// Where clients reach its HTTP API.
    pub base_url: Option<String>,
    /// What it runs (edges of an older version do not say).
    pub about: Option<NodeAbout>,
    /// Seconds since it started.
    pub uptime_s: Option<u64>,
    /// Its clock minus this selector's, ms (one-way delay included).
    pub clock_offset_ms: Option<i64>,
    /// Its octo links.
    pub links: Vec<LinkRtt>,
}

/// A selector as the answering one sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectorView {
    /// Id.
    pub id: String,
    /// Its public API address.
    pub api: String,
    /// It answered `/healthz`.
    pub reachable: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Entries the leader has that it has not applied.
    pub lag: Option<u64>,
    /// Its clock minus the answering selector's, ms (half the round trip
    /// of the question is the error bound).
    pub clock_offset_ms: Option<i64>,
}

/// `GET /v1/status`.
pub async fn status(State(s): State<Arc<Shared>>) -> Json<ClusterStatus> {
    let now = Instant::now();
    let now_ms = unix_ms(SystemTime::now());
    let edges = edges(&s, now, now_ms);
    let selectors = selectors(&s).await;
    let leader = s.raft_status().leader_id;
    let t = &s.cfg.topology;
    Json(ClusterStatus {
        selector: s.cfg.id.to_string(),
        at_ms: now_ms,
        cluster: t.cluster.name.clone(),
        topology_hash: s.about.topology_hash.clone(),
        leader,
        regions: t
            .regions
            .iter()
            .map(|r| RegionView {
                id: r.id.clone(),
                name: r.name.clone(),
                lat: r.location.lat,
                lon: r.location.lon,
            })
            .collect(),
        edges,
        selectors,
    })
}

fn edges(s: &Shared, now: Instant, now_ms: u64) -> Vec<EdgeView> {
    let applied = s.store.read();
    let st = &applied.state;
    let soft = s.soft();
    crate::view::known_edges(&s.cfg.topology, st)
        .into_iter()
        .map(|e| {
            let rec = st.edge(&e.id);
            let hb = soft.get(&e.id);
            let about = hb.and_then(|h| h.heartbeat.about.as_ref());
            let topo = s.cfg.topology.edge(&e.id);
            EdgeView {
                registered: rec.is_some(),
                healthy: soft.is_healthy(&e.id, now),
                draining: rec.is_some_and(|r| r.draining),
                migrate: rec.is_some_and(|r| r.migrate),
                capacity: e.capacity,
                participants: st.participants_on(&e.id),
                conferences: st.octo_peers(&e.id).len() as u32,
                stress: hb.map(|h| h.heartbeat.stress),
                cpu: hb.map(|h| h.heartbeat.cpu),
                heartbeat_age_ms: hb.map(|h| {
                    u64::try_from(now.saturating_duration_since(h.last).as_millis())
                        .unwrap_or(u64::MAX)
                }),
                media: about
                    .map(|a| a.media)
                    .or_else(|| topo.map(|t| t.media_advertised())),
                base_url: rec
                    .map(|r| r.base_url.clone())
                    .or_else(|| topo.map(|t| t.base_url())),
                about: about.map(|a| NodeAbout {
                    version: a.version.clone(),
                    topology_hash: a.topology_hash.clone(),
                    token_key: a.token_key.clone(),
                    cert_not_after: a.cert_not_after,
                }),
                uptime_s: about.map(|a| now_ms.saturating_sub(a.started_ms) / 1000),
                clock_offset_ms: hb.and_then(|h| {
                    let a = h.heartbeat.about.as_ref()?;
                    Some(a.sent_ms as i64 - h.received_ms as i64)
                }),
                links: hb.map(|h| h.heartbeat.links.clone()).unwrap_or_default(),
                id: e.id,
                region: e.region,
                in_topology: e.in_topology,
            }
        })
        .collect()
}

/// How long a selector may take to answer `/healthz` for the status.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

async fn selectors(s: &Shared) -> Vec<SelectorView> {
    let members: Vec<crate::raft::SelectorNode> = s
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(_, n)| n.clone())
        .collect();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(ASK_TIMEOUT)
        .build();
    let me = s.cfg.id.as_str();
    let asks = members.into_iter().map(|n| {
        let http = http.as_ref().ok().cloned();
        async move {
            if n.id == me {
                return (n, Ok((local_health(s), 0)));
            }
            let Some(http) = http else {
                return (n, Err("no HTTP client".to_string()));
            };
            let sent = unix_ms(SystemTime::now());
            let r = async {
                http.get(format!("http://{}/healthz", n.api))
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Health>()
                    .await
            }
            .await;
            let back = unix_ms(SystemTime::now());
            let r = r.map_err(|e| e.to_string()).map(|h| {
                let offset = h.now_ms as i64 - (sent as i64 + back as i64) / 2;
                (h, offset)
            });
            (n, r)
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let leader_index = answers
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .find(|(h, _)| h.raft_role == "leader")
        .and_then(|(h, _)| h.last_log_index);
    let mut out: Vec<SelectorView> = answers
        .into_iter()
        .map(|(n, r)| match r {
            Ok((h, offset)) => SelectorView {
                lag: leader_index.map(|l| l.saturating_sub(h.last_applied.unwrap_or(0))),
                id: n.id,
                api: n.api,
                reachable: true,
                error: None,
                health: Some(h),
                clock_offset_ms: Some(offset),
            },
            Err(e) => SelectorView {
                id: n.id,
                api: n.api,
                reachable: false,
                error: Some(e),
                health: None,
                lag: None,
                clock_offset_ms: None,
            },
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// This node's own `/healthz` answer.
pub fn local_health(s: &Shared) -> Health {
    let r = s.raft_status();
    let (registered, participants) = s.with_state(|st| (st.edges().len(), st.participant_count()));
    let healthy = s.soft().live_edges(Instant::now()).len();
    Health {
        status: "ok".into(),
        selector: s.cfg.id.to_string(),
        raft_role: r.raft_role.clone(),
        leader_id: r.leader_id,
        term: r.term,
        last_log_index: r.last_log_index,
        last_applied: r.last_applied,
        voters: r.voters,
        edges_registered: registered,
        edges_healthy: healthy,
        participants,
        uptime_s: s.uptime().as_secs(),
        about: s.about.clone(),
        now_ms: unix_ms(SystemTime::now()),
    }
}

/// `GET /v1/doctor` answer: STUN from this selector to every edge's media address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaProbes {
    /// The selector that probed.
    pub selector: String,
    /// One per edge with a known media address.
    pub probes: Vec<MediaProbe>,
}

/// One edge's media address, probed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaProbe {
    /// The edge.
    pub edge: EdgeId,
    /// The address probed (the one in its ICE candidates).
    pub media: SocketAddr,
    /// A STUN binding success came back.
    pub answered: bool,
    /// Round trip of the answer, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Tries per address, and how long each waits.
const PROBE_TRIES: u32 = 3;
const PROBE_WAIT: Duration = Duration::from_millis(700);

/// `GET /v1/doctor` (operators).
pub async fn doctor(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<MediaProbes>, ApiFailure> {
    s.access.require_operator(&headers, &s.metrics)?;
    let targets: Vec<(EdgeId, SocketAddr)> = edges(&s, Instant::now(), 0)
        .into_iter()
        .filter_map(|e| Some((e.id, e.media?)))
        .collect();
    let probes = futures_util::future::join_all(
        targets
            .into_iter()
            .map(|(edge, media)| async move { probe(edge, media).await }),
    )
    .await;
    Ok(Json(MediaProbes {
        selector: s.cfg.id.to_string(),
        probes,
    }))
}

async fn probe(edge: EdgeId, media: SocketAddr) -> MediaProbe {
    let result = async {
        let bind: SocketAddr = if media.is_ipv4() {
            "0.0.0.0:0".parse().expect("an address")
        } else {
            "[::]:0".parse().expect("an address")
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("binding a probe socket: {e}"))?;
        let mut buf = [0u8; 256];
        let mut last = String::from("no answer");
        for _ in 0..PROBE_TRIES {
            let mut tid = [0u8; 12];
            getrandom::fill(&mut tid).map_err(|e| e.to_string())?;
            let sent = Instant::now();
            if let Err(e) = sock
                .send_to(&geomesh_core::stun::binding_request(tid), media)
                .await
            {
                last = e.to_string();
                continue;
            }
            let deadline = sent + PROBE_WAIT;
            loop {
                match tokio::time::timeout_at(deadline.into(), sock.recv_from(&mut buf)).await {
                    Err(_) => break,
                    // ICMP port unreachable surfaces as an error here.
                    Ok(Err(e)) => {
                        last = e.to_string();
                        break;
                    }
                    Ok(Ok((n, from))) => {
                        if from == media
                            && geomesh_core::stun::mapped_address(&buf[..n], tid).is_some()
                        {
                            return Ok(sent.elapsed().as_secs_f64() * 1000.0);
                        }
                    }
                }
            }
        }
        Err(last)
    }
    .await;
    match result {
        Ok(ms) => MediaProbe {
            edge,
            media,
            answered: true,
            rtt_ms: Some((ms * 10.0).round() / 10.0),
            error: None,
        },
        Err(e) => MediaProbe {
            edge,
            media,
            answered: false,
            rtt_ms: None,
            error: Some(e),
        },
    }
}
