//! The recorder node's I/O shell (`geomesh recorder`): its octo endpoint
//! (the edges list recorders as peers and announce every conference to
//! them), one task that owns the [`RecorderCore`], a heartbeat to every
//! selector whose answer says what to record, and a small HTTP API.
//!
//! What to record is decided by the selectors (`POST
//! /v1/conferences/{id}/recording`, replicated through Raft); the recorder
//! writes the union of what the selectors that answer assign it, so a
//! selector that lags a little neither starts nor stops anything early:
//! a recording stops once no answering selector lists it.
//!
//! HTTP: `GET /healthz`, `GET /metrics` and `GET /v1/recordings`
//! (`crate::http`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use geomesh_core::agent::{
    RECORDER_PATH, RecorderHeartbeat, RecorderHeartbeatResponse, RecordingAssignment,
    RecordingReport, RecordingState,
};
use geomesh_core::https::JsonClient;
use geomesh_core::{ConferenceId, EdgeId, RegionId, SelectorId};
use geomesh_mesh::transport::{OctoConfig, OctoEvent, OctoNode};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::core::{LinkAction, RecorderCore};
use crate::recording::RecordingConfig;

/// Finished recordings reported (and listed) at most; older ones are
/// only on disk.
const FINISHED_KEPT: usize = 256;

/// What a recorder node is started with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Its octo id.
    pub id: EdgeId,
    /// Its region.
    pub region: RegionId,
    /// Where its octo endpoint binds.
    pub octo_bind: SocketAddr,
    /// Where its HTTP API binds.
    pub http_bind: SocketAddr,
    /// The cluster CA, its certificate and key (octo).
    pub credentials: geomesh_mesh::tls::Credentials,
    /// The edges to link to, and their octo addresses.
    pub edges: Vec<(EdgeId, SocketAddr)>,
    /// The selectors to heartbeat, and their internal addresses.
    pub selectors: Vec<(SelectorId, SocketAddr)>,
    /// Client TLS toward the selectors (its `recorder` certificate).
    pub agent_tls: Arc<rustls::ClientConfig>,
    /// Heartbeat interval until a selector says otherwise.
    pub heartbeat: Duration,
    /// Where recordings go (a directory per recording part).
    pub out: PathBuf,
    /// The operator's bearer token; `None` refuses `GET /v1/recordings`.
    pub operator_token: Option<Vec<u8>>,
}

/// Why the node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The octo endpoint.
    #[error("octo: {0}")]
    Octo(#[from] geomesh_mesh::transport::TransportError),
    /// A selector client.
    #[error("selector client: {0}")]
    Client(#[from] geomesh_core::https::CallError),
    /// The HTTP API's socket.
    #[error("binding the HTTP API on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output directory.
    #[error("{path}: {source}")]
    Out {
        /// Which.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running recorder node.
#[derive(Debug)]
pub struct RecorderNode {
    /// Where its HTTP API listens.
    pub http_addr: SocketAddr,
    cmds: mpsc::Sender<Cmd>,
}

pub(crate) enum Cmd {
    /// The selectors' assignment (union of the answers).
    Assign(Vec<RecordingAssignment>),
    /// Every recording's report.
    Report(oneshot::Sender<Vec<RecordingReport>>),
    /// What `/metrics` shows.
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
    /// Stop everything (files closed, manifests written), then answer.
    Shutdown(oneshot::Sender<()>),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RecorderNode {
    /// Starts the node: octo endpoint (linking to every edge), the core's
    /// task, the heartbeat, the HTTP API.
    pub async fn start(cfg: NodeConfig) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&cfg.out).map_err(|source| NodeError::Out {
            path: cfg.out.clone(),
            source,
        })?;
        let selectors = cfg
            .selectors
            .iter()
            .map(|(id, addr)| {
                Ok((
                    id.clone(),
                    JsonClient::new(&cfg.agent_tls, id.as_str(), *addr)?,
                ))
            })
            .collect::<Result<Vec<_>, NodeError>>()?;
        // Edges list the topology's recorders as peers: whichever id is
        // lower dials, as between edges.
        let oc = OctoConfig::new(
            cfg.id.clone(),
            cfg.region.clone(),
            cfg.octo_bind,
            cfg.credentials.clone(),
        );
        let (node, events) = OctoNode::start(oc).await?;
        for (edge, addr) in &cfg.edges {
            node.connect(edge.clone(), *addr);
        }
        let listener = tokio::net::TcpListener::bind(cfg.http_bind)
            .await
            .map_err(|source| NodeError::Bind {
                addr: cfg.http_bind,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: cfg.http_bind,
            source,
        })?;
        let (cmds, rx) = mpsc::channel(64);
        let shell = Shell {
            node,
            core: RecorderCore::new(),
            recorder: cfg.id.to_string(),
            out: cfg.out.clone(),
            active: BTreeMap::new(),
            finished: VecDeque::new(),
            started: 0,
            failed: 0,
        };
        tokio::spawn(shell.run(events, rx));
        let boot_id = format!("{:x}", unix_ms());
        tokio::spawn(heartbeat(selectors, cmds.clone(), boot_id, cfg.heartbeat));
        let app = crate::http::router(crate::http::Api {
            cmds: cmds.clone(),
            token: cfg.operator_token.map(Arc::from),
            id: cfg.id.to_string(),
            region: cfg.region.to_string(),
        });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                warn!("recorder HTTP API stopped: {e}");
            }
        });
        info!(id = %cfg.id, %http_addr, edges = cfg.edges.len(), selectors = cfg.selectors.len(), "recorder ready");
        Ok(Self { http_addr, cmds })
    }

    /// Stops every recording (files closed, manifests written).
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Heartbeats every selector each interval; the union of their answers is
/// the assignment.
async fn heartbeat(
    selectors: Vec<(SelectorId, JsonClient)>,
    cmds: mpsc::Sender<Cmd>,
    boot_id: String,
    mut interval: Duration,
) {
    loop {
        let (tx, rx) = oneshot::channel();
        if cmds.send(Cmd::Report(tx)).await.is_err() {
            return;
        }
        let Ok(recordings) = rx.await else { return };
        let hb = RecorderHeartbeat {
            boot_id: boot_id.clone(),
            sent_ms: unix_ms(),
            recordings,
        };
        let deadline = interval.max(Duration::from_millis(500));
        let calls = selectors.iter().map(|(id, c)| {
            let hb = &hb;
            async move {
                let r = c
                    .post::<_, RecorderHeartbeatResponse>(RECORDER_PATH, hb, deadline)
                    .await;
                if let Err(e) = &r {
                    debug!(selector = %id, "recorder heartbeat: {e}");
                }
                r.ok()
            }
        });
        let answers: Vec<RecorderHeartbeatResponse> = futures_util::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        if let Some(a) = answers.first() {
            interval = Duration::from_millis(a.heartbeat_interval_ms.clamp(100, 60_000));
            let mut union: Vec<RecordingAssignment> = Vec::new();
            for a in answers {
                for r in a.recordings {
                    if !union.contains(&r) {
                        union.push(r);
                    }
                }
            }
            if cmds.send(Cmd::Assign(union)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// One recording part this recorder writes.
struct Part {
    id: String,
    dir: PathBuf,
}

/// The task that owns the core.
struct Shell {
    node: OctoNode,
    core: RecorderCore,
    recorder: String,
    out: PathBuf,
    /// Conference → the part being written.
    active: BTreeMap<ConferenceId, Part>,
    /// Parts finished (stopped or failed), newest last.
    finished: VecDeque<RecordingReport>,
    /// Parts started and failed since the process started (`/metrics`).
    started: u64,
    failed: u64,
}

impl Shell {
    async fn run(mut self, mut events: mpsc::Receiver<OctoEvent>, mut cmds: mpsc::Receiver<Cmd>) {
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(OctoEvent::Link { peer, event }) => self.core.handle_link_event(&peer, &event),
                    Some(OctoEvent::Media(m)) => self.core.handle_media(Instant::now(), &m),
                    Some(OctoEvent::Rejected { remote, reason }) => {
                        warn!(%remote, "octo connection refused: {reason}");
                    }
                    Some(_) => {}
                    None => return,
                },
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Assign(a)) => self.assign(&a),
                    Some(Cmd::Report(reply)) => {
                        let _ = reply.send(self.reports());
                    }
                    Some(Cmd::Metrics(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Cmd::Shutdown(reply)) => {
                        let all: Vec<ConferenceId> = self.active.keys().cloned().collect();
                        for c in all {
                            self.finish(&c);
                        }
                        let _ = reply.send(());
                    }
                    None => return,
                },
                _ = check.tick() => self.stop_failed(),
            }
            while let Some(a) = self.core.poll_action() {
                act(&self.node, a);
            }
        }
    }

    /// Starts what is assigned and new, stops what is no longer assigned.
    fn assign(&mut self, assigned: &[RecordingAssignment]) {
        let gone: Vec<ConferenceId> = self
            .active
            .iter()
            .filter(|(c, p)| {
                !assigned
                    .iter()
                    .any(|a| &a.conference == *c && a.recording == p.id)
            })
            .map(|(c, _)| c.clone())
            .collect();
        for c in gone {
            self.finish(&c);
        }
        for a in assigned {
            let done = self.finished.iter().any(|f| f.recording == a.recording);
            if done || self.active.contains_key(&a.conference) {
                continue;
            }
            self.begin(a);
        }
    }

    fn begin(&mut self, a: &RecordingAssignment) {
        // A part's directory exists when this recorder restarted while
        // writing it: the new file set goes next to it and continues it.
        let mut dir = self.out.join(&a.recording);
        let mut continues = a.continues.clone();
        for n in 1..1000 {
            if !dir.exists() {
                break;
            }
            continues = Some(
                dir.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            dir = self.out.join(format!("{}.{n}", a.recording));
        }
        let cfg = RecordingConfig {
            id: a.recording.clone(),
            conference: a.conference.clone(),
            recorder: self.recorder.clone(),
            dir: dir.clone(),
            continues,
            max_height: a.max_height,
        };
        match self.core.start(cfg, Instant::now(), unix_ms()) {
            Ok(()) => {
                self.started += 1;
                info!(conference = %a.conference, recording = %a.recording, dir = %dir.display(), "recording");
                self.active.insert(
                    a.conference.clone(),
                    Part {
                        id: a.recording.clone(),
                        dir,
                    },
                );
            }
            Err(e) => {
                warn!(conference = %a.conference, recording = %a.recording, "cannot start: {e}");
                self.push_finished(RecordingReport {
                    conference: a.conference.clone(),
                    recording: a.recording.clone(),
                    state: RecordingState::Failed,
                    dir: printable(&dir.display().to_string()),
                    sources: 0,
                    bytes: 0,
                    error: Some(printable(&e.to_string())),
                });
            }
        }
    }

    /// Closes a conference's files and writes its manifest.
    fn finish(&mut self, c: &ConferenceId) {
        let Some(part) = self.active.remove(c) else {
            return;
        };
        let (sources, error) = self
            .core
            .recording(c)
            .map_or((0, None), |r| (r.sources(), r.error()));
        let (bytes, error) = match self.core.stop(c, unix_ms()) {
            Some(Ok(m)) => (m.sources.iter().map(|s| s.bytes).sum(), error),
            Some(Err(e)) => (0, error.or(Some(e.to_string()))),
            None => (0, error),
        };
        info!(conference = %c, recording = %part.id, bytes, failed = error.is_some(), "recording closed");
        self.push_finished(RecordingReport {
            conference: c.clone(),
            recording: part.id,
            state: if error.is_some() {
                RecordingState::Failed
            } else {
                RecordingState::Stopped
            },
            dir: printable(&part.dir.display().to_string()),
            sources: u32::try_from(sources).unwrap_or(u32::MAX),
            bytes,
            error: error.map(|e| printable(&e)),
        });
    }

    /// A recording whose file hit a write error (a full disk) stops: its
    /// files stay valid up to the last whole frame, and it is reported
    /// failed rather than half-written on.
    fn stop_failed(&mut self) {
        let failed: Vec<ConferenceId> = self
            .active
            .keys()
            .filter(|c| self.core.recording(c).is_some_and(|r| r.error().is_some()))
            .cloned()
            .collect();
        for c in failed {
            warn!(conference = %c, "a write failed: stopping the recording");
            self.finish(&c);
        }
    }

    fn push_finished(&mut self, r: RecordingReport) {
        if r.state == RecordingState::Failed {
            self.failed += 1;
        }
        if self.finished.len() >= FINISHED_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(r);
    }

    fn snapshot(&self) -> crate::metrics::Snapshot {
        let active = || self.active.keys().filter_map(|c| self.core.recording(c));
        crate::metrics::Snapshot {
            recording: self.active.len() as u64,
            bytes: active().map(crate::recording::Recording::bytes).sum(),
            sources: active().map(|r| r.sources() as u64).sum(),
            started: self.started,
            failed: self.failed,
            core: self.core.counters(),
            links_up: self.core.links_up() as u64,
        }
    }

    fn reports(&self) -> Vec<RecordingReport> {
        let active = self.active.iter().map(|(c, p)| {
            let r = self.core.recording(c);
            RecordingReport {
                conference: c.clone(),
                recording: p.id.clone(),
                state: RecordingState::Recording,
                dir: printable(&p.dir.display().to_string()),
                sources: r.map_or(0, |r| u32::try_from(r.sources()).unwrap_or(u32::MAX)),
                bytes: r.map_or(0, crate::recording::Recording::bytes),
                error: None,
            }
        });
        self.finished.iter().cloned().chain(active).collect()
    }
}

/// Printable ASCII, at most 1,000 bytes (what the heartbeat accepts).
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(1000)
        .collect()
}

/// Carries out one of the core's requests on its link.
fn act(node: &OctoNode, a: LinkAction) {
    type Op = Box<dyn FnOnce(&mut geomesh_mesh::link::Link) + Send>;
    let (edge, f): (EdgeId, Op) = match a {
        LinkAction::Subscribe {
            edge,
            source,
            subscription,
        } => (
            edge,
            Box::new(move |l| {
                if let Err(e) = l.subscribe(source, subscription) {
                    warn!(peer = %l.peer(), "subscribe: {e}");
                }
            }),
        ),
        LinkAction::Unsubscribe { edge, source } => {
            (edge, Box::new(move |l| l.unsubscribe(source)))
        }
        LinkAction::RequestKeyframe { edge, source } => (
            edge,
            Box::new(move |l| {
                let _ = l.request_keyframe(Instant::now(), source, None);
            }),
        ),
    };
    if let Some(link) = node.link(&edge) {
        link.command(f);
    }
}
