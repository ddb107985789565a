//! The selector agent: registers this edge with the selector cluster,
//! heartbeats its load to every selector node, reports participants joining
//! and leaving, and learns whether it is draining (and should move its
//! participants), which other edges host its conferences, and which
//! selector nodes exist now.
//!
//! It speaks only the selector's internal HTTP API (`geomesh_core::agent`)
//! over mutual TLS with the cluster CA: the selector takes this edge's id
//! from its certificate. The edge never links the selector crate.
//!
//! One task owns the participant set ([`local`]) and the reports; one task
//! per selector node heartbeats it ([`beat`]), so a node that hangs delays
//! nobody else. The heartbeat carries the set's digest; a node whose
//! replicated record differs answers `resync`, and the agent compares the
//! record with the set and reports the difference, so the cluster's view
//! converges on what this edge really holds after any lost message.

mod beat;
mod client;
mod local;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use geomesh_core::agent::{
    EDGES_PATH, EdgeDescription, EdgeDirectory, Heartbeat, HeartbeatResponse, LEAVE_PATH,
    LeaveRequest, LeaveResponse, PARTICIPANTS_PATH, PLACEMENTS_PATH, ParticipantReportResponse,
    PlacementEntry, PlacementPage, REGISTER_PATH, RegisterRequest, RegisterResponse,
    SelectorEndpoint,
};
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, SelectorId};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::metrics::{Direction, Metrics, Traffic};
use client::{CallError, Selector, endpoint_addr};
pub use local::{LocalParticipants, ParticipantEvent};

mod state;
pub use state::*;

/// What the agent needs.
pub struct AgentConfig {
    /// This edge (must match its certificate).
    pub edge: EdgeId,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// The base URL clients use for this edge.
    pub base_url: String,
    /// The selector nodes known at start: id (its certificate's DNS name)
    /// and internal address. Nodes added later are learned from answers.
    pub selectors: Vec<(SelectorId, SocketAddr)>,
    /// Client TLS: this edge's certificate, trusting only the cluster CA.
    pub tls: rustls::ClientConfig,
    /// Heartbeat period until the selectors say otherwise.
    pub heartbeat: Duration,
    /// How this edge describes itself to selectors whose topology does
    /// not list it (an edge added at runtime).
    pub describe: Option<EdgeDescription>,
    /// What it tells selectors about itself in every heartbeat (`sent_ms`
    /// is set as each one leaves).
    pub about: geomesh_core::agent::EdgeAbout,
}

/// What the agent asks of the media workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// The participant is connected to another edge by a newer session:
    /// end its sessions here that started no later than `not_after_ms`.
    Evict {
        /// Conference.
        conference: ConferenceId,
        /// Participant.
        participant: ParticipantId,
        /// Only sessions that started at or before this time (Unix ms).
        not_after_ms: u64,
    },
}

enum Request {
    Leave(oneshot::Sender<bool>),
}

/// A handle on the running agent.
#[derive(Clone)]
pub struct AgentHandle {
    /// What it learned.
    pub state: Arc<AgentState>,
    requests: mpsc::UnboundedSender<Request>,
}

impl AgentHandle {
    /// Tells the cluster this edge is shutting down (draining, its
    /// participants to be moved); true when a selector took it.
    pub async fn leave(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Leave(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// A call to one node: one interval at least a second, else five.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Resyncs are at most this frequent.
const RESYNC_EVERY: Duration = Duration::from_secs(2);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The OS random source failed (the boot id).
    #[error("random source: {0}")]
    Random(String),
    /// A selector's client could not be built.
    #[error("selector {id}: {source}")]
    Selector {
        /// The selector.
        id: SelectorId,
        /// Why.
        source: CallError,
    },
}

/// Starts the agent; it runs until the process ends. The receiver gets
/// what the agent asks of the media workers.
pub fn spawn(
    config: AgentConfig,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedReceiver<ParticipantEvent>,
) -> Result<(AgentHandle, mpsc::UnboundedReceiver<AgentAction>), AgentError> {
    let state = Arc::new(AgentState::default());
    state.edges_version.store(u64::MAX, Ordering::Relaxed);
    state.heartbeat_ms.store(
        u64::try_from(config.heartbeat.as_millis())
            .unwrap_or(1000)
            .clamp(100, 60_000),
        Ordering::Relaxed,
    );
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| AgentError::Random(e.to_string()))?;
    let boot_id: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let last = Sample::now(&metrics);
    let (asks_tx, asks) = mpsc::unbounded_channel();
    let (requests, requests_rx) = mpsc::unbounded_channel();
    let (actions, actions_rx) = mpsc::unbounded_channel();
    let (body, _) = watch::channel(None);
    let span = info_span!("agent", edge = %config.edge);
    let initial = config.selectors.clone();
    let mut agent = Agent {
        config,
        selectors: BTreeMap::new(),
        state: state.clone(),
        metrics,
        boot_id,
        local: LocalParticipants::default(),
        last,
        body,
        asks_tx,
        actions,
        last_resync: None,
        preferred: None,
    };
    for (id, addr) in initial {
        agent
            .add_selector(id.clone(), addr)
            .map_err(|source| AgentError::Selector { id, source })?;
    }
    tokio::spawn(agent.run(events, asks, requests_rx).instrument(span));
    Ok((AgentHandle { state, requests }, actions_rx))
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
    /// Every selector node this edge heartbeats, with its heartbeat task.
    selectors: BTreeMap<SelectorId, (Arc<Selector>, JoinHandle<()>)>,
    state: Arc<AgentState>,
    metrics: Arc<Metrics>,
    boot_id: String,
    local: LocalParticipants,
    last: Sample,
    /// The latest heartbeat body, read by every heartbeat task.
    body: watch::Sender<Option<Heartbeat>>,
    asks_tx: mpsc::UnboundedSender<beat::Ask>,
    actions: mpsc::UnboundedSender<AgentAction>,
    last_resync: Option<Instant>,
    /// The node that took the last write: tried first next time.
    preferred: Option<SelectorId>,
}

impl Agent {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<ParticipantEvent>,
        mut asks: mpsc::UnboundedReceiver<beat::Ask>,
        mut requests: mpsc::UnboundedReceiver<Request>,
    ) {
        let mut backoff = Duration::from_millis(250);
        let mut next_sample = Instant::now();
        let mut next_register = Instant::now();
        loop {
            if !self.state.registered.load(Ordering::Relaxed) && Instant::now() >= next_register {
                match self.register().await {
                    Ok(()) => backoff = Duration::from_millis(250),
                    Err(e) => {
                        debug!("registration failed: {e}");
                        next_register = Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let wake = if self.state.registered.load(Ordering::Relaxed) {
                next_sample
            } else {
                next_sample.min(next_register)
            };
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else { return };
                    self.local.handle_event(ev);
                    // Batch what arrives together.
                    while let Ok(ev) = events.try_recv() {
                        self.local.handle_event(ev);
                    }
                    self.publish_body();
                    self.report().await;
                }
                Some(ask) = asks.recv() => match ask {
                    beat::Ask::Register => {}
                    beat::Ask::Resync => self.resync().await,
                    beat::Ask::Selectors(list) => self.adopt_selectors(&list),
                    beat::Ask::Directory(version) => self.follow_directory(version).await,
                },
                Some(req) = requests.recv() => match req {
                    Request::Leave(reply) => {
                        let _ = reply.send(self.leave().await);
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if Instant::now() >= next_sample {
                        let interval = Duration::from_millis(self.state.heartbeat_ms.load(Ordering::Relaxed));
                        next_sample = Instant::now() + interval;
                        self.publish_body();
                        if self.local.has_pending() {
                            self.report().await;
                        }
                    }
                }
            }
        }
    }

    /// Starts heartbeating a selector node.
    fn add_selector(&mut self, id: SelectorId, addr: SocketAddr) -> Result<(), CallError> {
        let sel = Arc::new(Selector::new(id.clone(), addr, &self.config.tls)?);
        let task = tokio::spawn(
            beat::run(
                sel.clone(),
                self.body.subscribe(),
                self.state.clone(),
                self.asks_tx.clone(),
            )
            .instrument(info_span!("heartbeat", selector = %id)),
        );
        self.selectors.insert(id, (sel, task));
        Ok(())
    }

    /// Follows the cluster's current selector nodes: new ones are
    /// heartbeated, removed ones no longer.
    fn adopt_selectors(&mut self, list: &[SelectorEndpoint]) {
        let wanted: Vec<(SelectorId, SocketAddr)> = list
            .iter()
            .filter_map(|s| Some((s.id.clone(), endpoint_addr(&s.url)?)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut apis: Vec<String> = list.iter().filter_map(|s| s.api.clone()).collect();
        apis.sort();
        *self.state.selector_apis.lock().expect("selector list lock") = apis;
        for (id, addr) in &wanted {
            let known = self.selectors.get(id).is_some_and(|(s, _)| s.addr == *addr);
            if !known {
                if let Some((_, task)) = self.selectors.remove(id) {
                    task.abort();
                }
                info!(selector = %id, %addr, "heartbeating a selector node");
                if let Err(e) = self.add_selector(id.clone(), *addr) {
                    warn!("{e}");
                }
            }
        }
        let gone: Vec<SelectorId> = self
            .selectors
            .keys()
            .filter(|id| !wanted.iter().any(|(w, _)| w == *id))
            .cloned()
            .collect();
        for id in gone {
            info!(selector = %id, "selector node left the cluster; no longer heartbeating it");
            if let Some((_, task)) = self.selectors.remove(&id) {
                task.abort();
            }
        }
    }

    /// The nodes to try for a write: the one that took the last, then the rest.
    fn write_order(&self) -> Vec<Arc<Selector>> {
        let mut v: Vec<Arc<Selector>> = self.selectors.values().map(|(s, _)| s.clone()).collect();
        v.sort_by_key(|s| Some(&s.id) != self.preferred.as_ref());
        v
    }

    async fn register(&mut self) -> Result<(), CallError> {
        let req = RegisterRequest {
            boot_id: self.boot_id.clone(),
            base_url: Some(self.config.base_url.clone()),
            describe: self.config.describe.clone(),
        };
        let mut last = CallError::Unreachable("no selectors".into());
        for s in self.write_order() {
            match s
                .post::<_, RegisterResponse>(REGISTER_PATH, &req, CALL_DEADLINE)
                .await
            {
                Ok(r) => {
                    self.state.heartbeat_ms.store(
                        r.heartbeat_interval_ms.clamp(100, 60_000),
                        Ordering::Relaxed,
                    );
                    self.state.draining.store(r.draining, Ordering::Relaxed);
                    self.state.registered.store(true, Ordering::Relaxed);
                    self.preferred = Some(s.id.clone());
                    info!(region = %r.region, draining = r.draining, restarted = r.restarted, "registered with the selectors");
                    self.adopt_selectors(&r.selectors);
                    self.publish_body();
                    // Whatever the cluster lost while we were unknown to it.
                    self.last_resync = None;
                    self.resync().await;
                    return Ok(());
                }
                Err(CallError::Status { status: 410, body }) => {
                    if !self.state.removed.swap(true, Ordering::Relaxed) {
                        error!(%body, "this edge was removed from the cluster: moving its participants away; it takes nobody new until restarted");
                    }
                    last = CallError::Status { status: 410, body };
                    break;
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends the pending participant events, in order, to the first node
    /// that takes them; acts on participants the cluster says moved on.
    async fn report(&mut self) {
        'reports: while let Some((report, n)) = self.local.next_report() {
            for s in self.write_order() {
                match s
                    .post::<_, ParticipantReportResponse>(PARTICIPANTS_PATH, &report, CALL_DEADLINE)
                    .await
                {
                    Ok(r) => {
                        debug!(selector = %s.id, joined = r.joined, left = r.left, ignored = r.ignored, moved = r.moved.len(), "participants reported");
                        self.preferred = Some(s.id.clone());
                        self.local.reported(n);
                        for m in r.moved {
                            info!(conference = %m.conference, participant = %m.participant,
                                "participant is connected to another edge by a newer session: ending it here");
                            let _ = self.actions.send(AgentAction::Evict {
                                conference: m.conference,
                                participant: m.participant,
                                not_after_ms: m.since_ms.unwrap_or(0),
                            });
                        }
                        continue 'reports;
                    }
                    Err(CallError::Status { status: 409, .. }) => {
                        // Registration lapsed: register, then report.
                        self.state.registered.store(false, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => debug!(selector = %s.id, "participant report: {e}"),
                }
            }
            return;
        }
    }

    /// Compares the cluster's record of this edge with the participants
    /// connected now and reports the difference.
    async fn resync(&mut self) {
        if self.last_resync.is_some_and(|t| t.elapsed() < RESYNC_EVERY) {
            return;
        }
        self.last_resync = Some(Instant::now());
        let mut recorded: Vec<PlacementEntry> = Vec::new();
        let mut fetched = false;
        'nodes: for s in self.write_order() {
            recorded.clear();
            let mut after: Option<String> = None;
            // Bounded: a page holds thousands; no edge holds this many pages.
            for _ in 0..1000 {
                let path = match &after {
                    Some(a) => format!("{PLACEMENTS_PATH}?after={a}"),
                    None => PLACEMENTS_PATH.to_string(),
                };
                match s.get::<PlacementPage>(&path, CALL_DEADLINE).await {
                    Ok(page) => {
                        recorded.extend(page.placements);
                        match page.next {
                            Some(n) => after = Some(n),
                            None => {
                                fetched = true;
                                break 'nodes;
                            }
                        }
                    }
                    Err(e) => {
                        debug!(selector = %s.id, "placements: {e}");
                        continue 'nodes;
                    }
                }
            }
        }
        if !fetched {
            return;
        }
        let (joined, left) = self.local.resync(&recorded);
        if joined + left > 0 {
            info!(
                joined,
                left, "the cluster's record of this edge differed: reporting the difference"
            );
        }
        self.report().await;
    }

    /// Accept octo links only from the cluster's edges, as the selectors
    /// list them now.
    async fn follow_directory(&mut self, version: u64) {
        if self.state.edges_version.load(Ordering::Relaxed) == version {
            return;
        }
        for s in self.write_order() {
            match s.get::<EdgeDirectory>(EDGES_PATH, CALL_DEADLINE).await {
                Ok(d) => {
                    if let Some(node) = self.metrics.octo_node.get() {
                        info!(
                            edges = d.edges.len(),
                            version = d.version,
                            "octo accepts the cluster's edges"
                        );
                        node.allow_edges(d.edges);
                    }
                    self.state.edges_version.store(d.version, Ordering::Relaxed);
                    return;
                }
                Err(e) => debug!(selector = %s.id, "edge directory: {e}"),
            }
        }
    }

    async fn leave(&mut self) -> bool {
        let req = LeaveRequest {
            boot_id: self.boot_id.clone(),
        };
        for s in self.write_order() {
            match s
                .post::<_, LeaveResponse>(LEAVE_PATH, &req, Duration::from_secs(3))
                .await
            {
                Ok(_) => {
                    self.state.draining.store(true, Ordering::Relaxed);
                    return true;
                }
                Err(e) => debug!(selector = %s.id, "leave: {e}"),
            }
        }
        false
    }

    fn publish_body(&mut self) {
        let hb = self.heartbeat_body();
        self.body.send_replace(Some(hb));
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
            digest: Some(self.local.digest()),
            about: Some(self.config.about.clone()),
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
            .map(|l| {
                let m = l.metrics();
                let up = l.is_up();
                let rtt = m.rtt.or(m.quic_rtt).filter(|_| up);
                geomesh_core::agent::LinkRtt {
                    edge: l.peer().clone(),
                    rtt_ms: rtt.map_or(0.0, |r| r.as_secs_f64() * 1000.0),
                    state: Some(if up { "up" } else { "down" }.to_string()),
                    loss: l
                        .connection_stats()
                        .filter(|_| up)
                        .map(|s| s.path.lost_packets as f64 / s.path.sent_packets.max(1) as f64),
                }
            })
            .collect()
    }
}
