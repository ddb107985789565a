//! The selector agent: registers this edge with the selector cluster,
//! heartbeats its load to every selector node, reports participants joining
//! and leaving, and learns whether it is draining and which other edges
//! host its conferences.
//!
//! It speaks only the selector's internal HTTP API (`geomesh_core::agent`)
//! over mutual TLS with the cluster CA: the selector takes this edge's id
//! from its certificate. The edge never links the selector crate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use geomesh_core::agent::{
    HEARTBEAT_PATH, Heartbeat, HeartbeatResponse, PARTICIPANTS_PATH, ParticipantRef,
    ParticipantReport, ParticipantReportResponse, REGISTER_PATH, RegisterRequest, RegisterResponse,
};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, SelectorId};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::metrics::{Direction, Metrics, Traffic};

/// A participant arriving at or leaving this edge.
#[derive(Debug, Clone)]
pub struct ParticipantEvent {
    /// Joined (true) or left (false).
    pub joined: bool,
    /// The conference.
    pub conference: ConferenceId,
    /// The participant.
    pub participant: ParticipantId,
}

/// What the agent needs.
pub struct AgentConfig {
    /// This edge (must match its certificate).
    pub edge: EdgeId,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// The base URL clients use for this edge.
    pub base_url: String,
    /// Every selector node: id (its certificate's DNS name) and internal address.
    pub selectors: Vec<(SelectorId, SocketAddr)>,
    /// Client TLS: this edge's certificate, trusting only the cluster CA.
    pub tls: rustls::ClientConfig,
    /// Heartbeat period until the selectors say otherwise.
    pub heartbeat: Duration,
}

/// What the agent learned, shared with the rest of the edge.
#[derive(Default)]
pub struct AgentState {
    /// Registered with the cluster.
    pub registered: AtomicBool,
    /// The selectors asked this edge to drain.
    pub draining: AtomicBool,
    /// Per local conference, the other edges hosting it (octo peers).
    pub peers: Mutex<BTreeMap<ConferenceId, Vec<EdgeId>>>,
}

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("refused with {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("bad answer: {0}")]
    Decode(String),
}

struct Selector {
    id: SelectorId,
    base: String,
    http: reqwest::Client,
}

impl Selector {
    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
    ) -> Result<Resp, CallError> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(CallError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        res.json()
            .await
            .map_err(|e| CallError::Decode(e.to_string()))
    }
}

/// Most participant events kept while no selector answers.
const MAX_BUFFERED_REPORTS: usize = 10_000;

/// Starts the agent; it runs until the process ends.
pub fn spawn(
    config: AgentConfig,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedReceiver<ParticipantEvent>,
) -> Result<Arc<AgentState>, String> {
    let mut selectors = Vec::new();
    for (id, addr) in &config.selectors {
        // Requests go to https://<selector id>:<port>, resolved to its address,
        // so the certificate is checked against the selector's id.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config.tls.clone())
            .resolve(id.as_str(), *addr)
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("HTTP client for {id}: {e}"))?;
        selectors.push(Selector {
            id: id.clone(),
            base: format!("https://{id}:{}", addr.port()),
            http,
        });
    }
    let state = Arc::new(AgentState::default());
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    let boot_id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let last = Sample::now(&metrics);
    let agent = Agent {
        config,
        selectors,
        state: state.clone(),
        metrics,
        boot_id,
        pending: Vec::new(),
        last,
    };
    let span = info_span!("agent", edge = %agent.config.edge);
    tokio::spawn(agent.run(events).instrument(span));
    Ok(state)
}

/// Counters at one instant, to turn totals into rates.
struct Sample {
    at: Instant,
    datagrams: u64,
    bytes: u64,
    cpu: f64,
}

impl Sample {
    fn now(m: &Metrics) -> Self {
        let get = |f: &Family<Traffic, Counter>| {
            // One lookup per statement: a Family guard held across a second
            // get_or_create (which may take the write lock) deadlocks.
            let inbound = f
                .get_or_create(&Traffic {
                    direction: Direction::In,
                })
                .get();
            let outbound = f
                .get_or_create(&Traffic {
                    direction: Direction::Out,
                })
                .get();
            inbound + outbound
        };
        Self {
            at: Instant::now(),
            datagrams: get(&m.datagrams),
            bytes: get(&m.bytes),
            cpu: crate::metrics::process_cpu_seconds().unwrap_or(0.0),
        }
    }
}

struct Agent {
    config: AgentConfig,
    selectors: Vec<Selector>,
    state: Arc<AgentState>,
    metrics: Arc<Metrics>,
    boot_id: String,
    pending: Vec<ParticipantEvent>,
    last: Sample,
}

impl Agent {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<ParticipantEvent>) {
        let mut interval = self.config.heartbeat;
        let mut next_beat = Instant::now();
        let mut backoff = Duration::from_millis(250);
        loop {
            if !self.state.registered.load(Ordering::Relaxed) {
                match self.register().await {
                    Ok(r) => {
                        interval =
                            Duration::from_millis(r.heartbeat_interval_ms.clamp(100, 60_000));
                        self.state.draining.store(r.draining, Ordering::Relaxed);
                        self.state.registered.store(true, Ordering::Relaxed);
                        backoff = Duration::from_millis(250);
                        info!(region = %r.region, draining = r.draining, "registered with the selectors");
                    }
                    Err(e) => {
                        debug!("registration failed: {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => {
                        self.pending.push(ev);
                        // Batch what arrives together.
                        while let Ok(ev) = events.try_recv() {
                            self.pending.push(ev);
                        }
                        self.report().await;
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(next_beat.into()) => {
                    next_beat = Instant::now() + interval;
                    self.heartbeat().await;
                    if !self.pending.is_empty() {
                        self.report().await;
                    }
                }
            }
        }
    }

    async fn register(&self) -> Result<RegisterResponse, CallError> {
        let req = RegisterRequest {
            boot_id: self.boot_id.clone(),
            base_url: Some(self.config.base_url.clone()),
        };
        let mut last = CallError::Unreachable("no selectors".into());
        for s in &self.selectors {
            match s.post(REGISTER_PATH, &req).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn heartbeat_body(&mut self) -> Heartbeat {
        let now = Sample::now(&self.metrics);
        let secs = now
            .at
            .saturating_duration_since(self.last.at)
            .as_secs_f64()
            .max(1e-3);
        let packet_rate = now.datagrams.saturating_sub(self.last.datagrams) as f64 / secs;
        let bitrate_bps = now.bytes.saturating_sub(self.last.bytes) as f64 * 8.0 / secs;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let cpu = ((now.cpu - self.last.cpu) / secs / cores).clamp(0.0, 1.0);
        self.last = now;
        let participants = self.metrics.participants.get().max(0) as u32;
        Heartbeat {
            boot_id: self.boot_id.clone(),
            participants,
            conferences: self.metrics.conferences.get().max(0) as u32,
            packet_rate,
            bitrate_bps,
            cpu,
            stress: (participants as f64 / self.config.capacity.max(1) as f64).min(100.0),
            links: self.link_rtts(),
        }
    }

    /// The RTT of every octo link that has one (Ping/Pong, else QUIC's
    /// estimate): the selector keeps them with the edge's soft state.
    fn link_rtts(&self) -> Vec<geomesh_core::agent::LinkRtt> {
        let Some(node) = self.metrics.octo_node.get() else {
            return Vec::new();
        };
        node.links()
            .into_iter()
            .filter(|l| l.is_up())
            .filter_map(|l| {
                let m = l.metrics();
                let rtt = m.rtt.or(m.quic_rtt)?;
                Some(geomesh_core::agent::LinkRtt {
                    edge: l.peer().clone(),
                    rtt_ms: rtt.as_secs_f64() * 1000.0,
                })
            })
            .collect()
    }

    /// One heartbeat to every selector node, concurrently.
    async fn heartbeat(&mut self) {
        let body = self.heartbeat_body();
        let calls = self
            .selectors
            .iter()
            .map(|s| s.post::<_, HeartbeatResponse>(HEARTBEAT_PATH, &body));
        let results = futures_util::future::join_all(calls).await;
        let mut answered = false;
        for (s, r) in self.selectors.iter().zip(results) {
            match r {
                Ok(resp) => {
                    answered = true;
                    self.state.draining.store(resp.draining, Ordering::Relaxed);
                    *self.state.peers.lock().expect("peers lock") = resp.conferences;
                }
                Err(CallError::Refused { status, body }) if (400..500).contains(&status) => {
                    // The node does not know us (it lost state, or we restarted): register again.
                    warn!(selector = %s.id, status, %body, "heartbeat refused; registering again");
                    self.state.registered.store(false, Ordering::Relaxed);
                }
                Err(e) => debug!(selector = %s.id, "heartbeat: {e}"),
            }
        }
        if !answered {
            debug!("no selector answered the heartbeat");
        }
    }

    /// Sends buffered participant events to the first selector that takes them.
    async fn report(&mut self) {
        let mut report = ParticipantReport::default();
        for ev in &self.pending {
            let r = ParticipantRef {
                conference: ev.conference.clone(),
                participant: ev.participant.clone(),
            };
            if ev.joined {
                report.joined.push(r);
            } else {
                report.left.push(r);
            }
        }
        for s in &self.selectors {
            match s
                .post::<_, ParticipantReportResponse>(PARTICIPANTS_PATH, &report)
                .await
            {
                Ok(r) => {
                    debug!(selector = %s.id, joined = r.joined, left = r.left, ignored = r.ignored, "participants reported");
                    self.pending.clear();
                    return;
                }
                Err(e) => debug!(selector = %s.id, "participant report: {e}"),
            }
        }
        if self.pending.len() > MAX_BUFFERED_REPORTS {
            let excess = self.pending.len() - MAX_BUFFERED_REPORTS;
            warn!(
                dropped = excess,
                "no selector reachable; dropping the oldest participant reports"
            );
            self.pending.drain(..excess);
        }
    }
}
