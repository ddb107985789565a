//! The media loop: one task that owns the media UDP socket, every session's
//! `Rtc` and the routing table.
//!
//! It waits for one of: a datagram, a command from signaling, or the
//! soonest `Rtc` timeout; applies that one mutation; drains the touched
//! `Rtc` to `Output::Timeout` (str0m's single-mutation rule); then settles
//! what the drain produced (media to forward, keyframe requests, routing
//! changes, renegotiations) until nothing is left.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaAdded, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Event, IceConnectionState, Input, Output};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info, trace, warn};

use geomesh_core::{ConferenceId, ParticipantId};

use crate::agent::ParticipantEvent;
use crate::forward::{CodecRef, InPacket, LayerStats, OutForward};
use crate::layers::{LayerInfo, pick_layer};
use crate::messages::{MediaKindName, RosterEntry, ServerMessage};
use crate::metrics::{Direction, Metrics, Traffic};
use crate::peer::{CONNECT_TIMEOUT, OutState, OutTrack, Peer, kind_of, media_kind, we_receive};
use crate::placement::Placement;
use crate::router::{Kind, PeerInfo, PeerKey, Role, Router, RouterEvent, SourceId};
use crate::sibling::{SiblingLink, SiblingRx};
use crate::socket::{MediaSocket, Outbox};

#[path = "media_octo.rs"]
mod octo;
use crate::workers;
pub(crate) use octo::Octo;

/// The edge's octo node and what the workers need of it.
pub struct OctoParts {
    /// The node (shared by the workers).
    pub node: Arc<geomesh_mesh::transport::OctoNode>,
    /// Its event channel (read by the dispatcher).
    pub events: mpsc::Receiver<geomesh_mesh::transport::OctoEvent>,
    /// The other edges and their octo addresses.
    pub peers: Vec<(geomesh_core::EdgeId, SocketAddr)>,
}

/// Why the media loop refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP could not be parsed or applied.
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// The session is not known (ended, or never existed).
    #[error("unknown session")]
    UnknownSession,
    /// The session already made its offer.
    #[error("session already has an offer")]
    AlreadyOffered,
    /// No edge offer is waiting for an answer.
    #[error("no offer is awaiting an answer")]
    NoPendingOffer,
    /// The media loop has stopped.
    #[error("media loop stopped")]
    Stopped,
}

/// A join that the media loop accepted.
#[derive(Debug)]
pub struct Joined {
    /// The new session.
    pub key: PeerKey,
    /// Everyone already in the conference.
    pub roster: Vec<RosterEntry>,
}

/// Requests from signaling to the media loop.
#[derive(Debug)]
pub enum Command {
    /// Open a session.
    Join {
        /// Conference.
        conference: ConferenceId,
        /// Participant id (from the token).
        participant: ParticipantId,
        /// Display name (from the token).
        name: Option<String>,
        /// What it does.
        role: Role,
        /// Signaling channel for WebSocket sessions.
        signal: Option<mpsc::UnboundedSender<ServerMessage>>,
        /// Reply.
        reply: oneshot::Sender<Joined>,
    },
    /// The client's offer; the reply is our answer SDP.
    Offer {
        /// Session.
        key: PeerKey,
        /// SDP offer.
        sdp: String,
        /// Reply.
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// The client's answer to our offer.
    Answer {
        /// Session.
        key: PeerKey,
        /// SDP answer.
        sdp: String,
        /// Reply.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Mute state changed.
    Mute {
        /// Session.
        key: PeerKey,
        /// Kind.
        kind: MediaKindName,
        /// Muted.
        muted: bool,
    },
    /// What a subscriber wants to receive.
    Constraints {
        /// Session.
        key: PeerKey,
        /// Its last-N, if it set one.
        last_n: Option<u32>,
        /// Pinned participants.
        pinned: Vec<ParticipantId>,
        /// Largest tile height (0 or absent: no limit).
        max_height: Option<u16>,
    },
    /// End a session.
    Leave {
        /// Session.
        key: PeerKey,
        /// Reply: whether it existed.
        reply: Option<oneshot::Sender<bool>>,
    },
    /// End this worker's sessions of a participant (it is connected to
    /// another edge by a newer session): told `code`, then closed.
    Evict {
        /// Conference.
        conference: ConferenceId,
        /// Participant.
        participant: ParticipantId,
        /// Error code the client is told (`moved`).
        code: &'static str,
        /// Only sessions that started at or before this time (Unix ms).
        not_after_ms: u64,
    },
    /// This worker's local sessions.
    Sessions {
        /// Reply.
        reply: oneshot::Sender<Vec<SessionSummary>>,
    },
    /// Ask a WebSocket session to move to another edge.
    Migrate {
        /// Session.
        key: PeerKey,
        /// Why (`draining`, `shutdown`).
        reason: &'static str,
    },
}

/// One local session, as drain and migration see it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The session.
    pub key: PeerKey,
    /// Its conference.
    pub conference: ConferenceId,
    /// Its participant.
    pub participant: ParticipantId,
    /// It has a signaling channel (a WebSocket client that can be asked to move).
    pub movable: bool,
}

/// A cloneable handle to send commands to the media workers: joins go to
/// the worker [`Placement`] chooses, everything else to the session's.
#[derive(Clone)]
pub struct MediaHandle {
    txs: Vec<mpsc::Sender<Command>>,
    placement: Arc<Placement>,
}

impl MediaHandle {
    fn to_key(&self, key: PeerKey) -> &mpsc::Sender<Command> {
        &self.txs[workers::worker_of_id(key.0, self.txs.len())]
    }

    async fn ask<T>(
        &self,
        tx: &mpsc::Sender<Command>,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)
    }

    /// Opens a session.
    pub async fn join(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        name: Option<String>,
        role: Role,
        signal: Option<mpsc::UnboundedSender<ServerMessage>>,
    ) -> Result<Joined, MediaError> {
        let tx = &self.txs[self.placement.choose(&conference, &participant)];
        self.ask(tx, |reply| Command::Join {
            conference,
            participant,
            name,
            role,
            signal,
            reply,
        })
        .await
    }

    /// Applies the client's offer; returns our answer.
    pub async fn offer(&self, key: PeerKey, sdp: String) -> Result<String, MediaError> {
        self.ask(self.to_key(key), |reply| Command::Offer { key, sdp, reply })
            .await?
    }

    /// Applies the client's answer to our offer.
    pub async fn answer(&self, key: PeerKey, sdp: String) -> Result<(), MediaError> {
        self.ask(self.to_key(key), |reply| Command::Answer {
            key,
            sdp,
            reply,
        })
        .await?
    }

    /// Records a mute change and tells the others.
    pub async fn mute(&self, key: PeerKey, kind: MediaKindName, muted: bool) {
        let _ = self
            .to_key(key)
            .send(Command::Mute { key, kind, muted })
            .await;
    }

    /// Sets what a subscriber wants to receive.
    pub async fn constraints(
        &self,
        key: PeerKey,
        last_n: Option<u32>,
        pinned: Vec<ParticipantId>,
        max_height: Option<u16>,
    ) {
        let _ = self
            .to_key(key)
            .send(Command::Constraints {
                key,
                last_n,
                pinned,
                max_height,
            })
            .await;
    }

    /// Ends the local sessions of `participant` in `conference` that
    /// started at or before `not_after_ms` (it is connected elsewhere by a
    /// newer session).
    pub async fn evict(
        &self,
        conference: ConferenceId,
        participant: ParticipantId,
        code: &'static str,
        not_after_ms: u64,
    ) {
        // Rare: every worker looks, rather than trusting a placement guess.
        for tx in &self.txs {
            let _ = tx
                .send(Command::Evict {
                    conference: conference.clone(),
                    participant: participant.clone(),
                    code,
                    not_after_ms,
                })
                .await;
        }
    }

    /// Every local session of every worker.
    pub async fn sessions(&self) -> Vec<SessionSummary> {
        let mut out = Vec::new();
        for tx in &self.txs {
            if let Ok(mut v) = self.ask(tx, |reply| Command::Sessions { reply }).await {
                out.append(&mut v);
            }
        }
        out
    }

    /// Asks a WebSocket session to move to another edge.
    pub async fn migrate(&self, key: PeerKey, reason: &'static str) {
        let _ = self
            .to_key(key)
            .send(Command::Migrate { key, reason })
            .await;
    }

    /// Ends a session; true if it existed.
    pub async fn leave(&self, key: PeerKey) -> bool {
        self.ask(self.to_key(key), |reply| Command::Leave {
            key,
            reply: Some(reply),
        })
        .await
        .unwrap_or(false)
    }
}

/// Something a drain produced, settled after the drain.
// Media frames dominate the queue; boxing them would allocate per frame.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Added(PeerKey, MediaAdded),
    Rtp(PeerKey, RtpPacket),
    Keyframe(PeerKey, KeyframeRequest),
    Connected(PeerKey),
    Bwe(PeerKey, u64),
    Dead(PeerKey, &'static str),
}

/// The media loop's state. Built by [`MediaLoop::spawn`].
pub struct MediaLoop {
    /// Run str0m's TWCC bandwidth estimation toward subscribers.
    bwe: bool,
    /// This worker's index and the number of workers (ids encode the worker).
    worker: usize,
    workers: usize,
    /// The media socket, shared by the workers for sending.
    socket: Arc<MediaSocket>,
    /// Datagrams of this round, sent together at its end.
    outbox: Outbox,
    /// Sessions with packets written since their last drain.
    undrained: Vec<PeerKey>,
    /// Which worker owns which address and ufrag.
    demux: Arc<workers::Demux>,
    /// Participants this worker last added to the gauge.
    counted: i64,
    advertised: SocketAddr,
    router: Router,
    peers: HashMap<PeerKey, Peer>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    pending: VecDeque<Pending>,
    metrics: Arc<Metrics>,
    next_key: u64,
    /// Per (session, m-line): cumulative NACK/PLI counts last reported by str0m.
    rtcp_seen: HashMap<(PeerKey, Mid), (u64, u64)>,
    /// Participant ids of sessions being removed (their Left events are settling).
    departed: HashMap<PeerKey, ParticipantId>,
    /// One DTLS/SRTP crypto provider for every session.
    crypto: Arc<str0m::crypto::CryptoProvider>,
    /// The edge's DTLS certificate, made once at start: every session
    /// presents it (as a bridge's certificate, not a per-call one; its
    /// fingerprint is in each answer). Generating one per session cost a
    /// key pair and a signature on every join.
    dtls_cert: str0m::config::DtlsCert,
    /// Participant arrivals and departures for the selector agent.
    reports: Option<mpsc::UnboundedSender<ParticipantEvent>>,
    /// Octo links to other edges, when the edge has them.
    octo: Option<Octo>,
    /// Measured simulcast layers of local sources.
    layer_stats: HashMap<SourceId, LayerStats>,
    /// Next periodic re-choice of every subscriber's simulcast layers.
    next_retarget: Instant,
    /// Reused per-packet list of subscribers.
    scratch: Vec<PeerKey>,
    /// Media counters resolved once.
    counters: crate::metrics::MediaCounters,
    /// Sessions per worker and conference (which worker a join goes to).
    placement: Arc<Placement>,
    /// This edge and its region (roster entries of local sessions).
    edge: geomesh_core::EdgeId,
    region: geomesh_core::RegionId,
}

/// What woke a worker.
// One per round, on the stack: the size of a command does not matter.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Datagrams,
    Command(Command),
    Octo(geomesh_mesh::transport::OctoEvent),
    Sibling(crate::sibling::SiblingMsg),
    SiblingMedia,
    Timer,
    Stop,
}

/// Timeouts already due that one drain handles itself (then it leaves the
/// rest to the loop's timer, so a session whose clock never settles cannot
/// hold the worker).
const IMMEDIATE_TIMEOUTS: usize = 4;

/// Simulcast layers are re-chosen this often (layers come and go, bitrates move).
const RETARGET_EVERY: Duration = Duration::from_millis(500);

impl MediaLoop {
    /// Starts `workers` media loops on `socket` (and the task that reads
    /// it); `advertised` is the address in our ICE candidates (and the
    /// `destination` str0m must see on every packet).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        socket: std::net::UdpSocket,
        advertised: SocketAddr,
        metrics: Arc<Metrics>,
        reports: Option<mpsc::UnboundedSender<ParticipantEvent>>,
        octo: Option<OctoParts>,
        last_n: crate::lastn::LastNConfig,
        workers: usize,
        bwe: bool,
        (edge, region): (geomesh_core::EdgeId, geomesh_core::RegionId),
        spread_above: Option<usize>,
    ) -> std::io::Result<MediaHandle> {
        let n = workers.max(1);
        let placement = Arc::new(Placement::new(n, spread_above));
        let share = Arc::new(crate::linkshare::LinkShare::new(n));
        let (sibling_txs, sibling_rxs) = crate::sibling::channels(n);
        let sibling_ids: Vec<_> = (0..n)
            .map(|w| crate::sibling::sibling_id(&edge, w))
            .collect();
        let socket = Arc::new(MediaSocket::new(tokio::net::UdpSocket::from_std(socket)?)?);
        let demux = Arc::new(workers::Demux::default());
        let (dgram_txs, dgram_rxs) = workers::datagram_queues(n);
        tokio::spawn(workers::read_media_socket(
            socket.clone(),
            demux.clone(),
            dgram_txs,
            metrics.clone(),
        ));
        let mut octo_rxs: Vec<Option<mpsc::Receiver<geomesh_mesh::transport::OctoEvent>>> =
            (0..n).map(|_| None).collect();
        let mut octo_parts = None;
        if let Some(parts) = octo {
            let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(8192)).unzip();
            tokio::spawn(workers::dispatch_octo(parts.events, txs, share.clone()));
            octo_rxs = rxs.into_iter().map(Some).collect();
            octo_parts = Some((parts.node, parts.peers));
        }
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let dtls_cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("could not generate the DTLS certificate"))?;
        let mut txs = Vec::with_capacity(n);
        let now = Instant::now();
        for (worker, ((dgrams, octo_rx), sibling_rx)) in dgram_rxs
            .into_iter()
            .zip(octo_rxs)
            .zip(sibling_rxs)
            .enumerate()
        {
            let mut router = Router::with_ids(worker as u64, n as u64);
            router.set_last_n(last_n.clone());
            let siblings: Vec<SiblingLink> = (0..n)
                .filter(|&p| p != worker)
                .map(|p| {
                    SiblingLink::new(
                        &edge,
                        region.clone(),
                        worker,
                        p,
                        sibling_txs[p].clone(),
                        now,
                    )
                })
                .collect();
            let (node, peers) = match (&octo_parts, octo_rx) {
                (Some((node, peers)), Some(rx)) => (Some((node.clone(), rx)), peers.clone()),
                _ => (None, Vec::new()),
            };
            // Octo state whenever there is another edge or another worker.
            let octo = (node.is_some() || n > 1).then(|| {
                Octo::new(
                    node,
                    peers,
                    worker,
                    siblings,
                    sibling_ids.clone(),
                    share.clone(),
                )
            });
            let (tx, rx) = mpsc::channel(1024);
            let lp = MediaLoop {
                bwe,
                worker,
                workers: n,
                socket: socket.clone(),
                outbox: Outbox::default(),
                undrained: Vec::new(),
                demux: demux.clone(),
                counted: 0,
                advertised,
                router,
                peers: HashMap::new(),
                by_addr: HashMap::new(),
                by_ufrag: HashMap::new(),
                pending: VecDeque::new(),
                metrics: metrics.clone(),
                next_key: worker as u64,
                rtcp_seen: HashMap::new(),
                departed: HashMap::new(),
                crypto: crypto.clone(),
                dtls_cert: dtls_cert.clone(),
                reports: reports.clone(),
                octo,
                layer_stats: HashMap::new(),
                next_retarget: Instant::now() + RETARGET_EVERY,
                scratch: Vec::new(),
                counters: crate::metrics::MediaCounters::new(&metrics),
                placement: placement.clone(),
                edge: edge.clone(),
                region: region.clone(),
            };
            tokio::spawn(
                lp.run(rx, dgrams, sibling_rx)
                    .instrument(tracing::info_span!("media_worker", worker)),
            );
            txs.push(tx);
        }
        Ok(MediaHandle { txs, placement })
    }

    /// A fresh session key of this worker.
    fn new_key(&mut self) -> PeerKey {
        let k = PeerKey(self.next_key);
        self.next_key += self.workers as u64;
        k
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut dgrams: mpsc::Receiver<workers::Batch>,
        mut siblings: SiblingRx,
    ) {
        let mut batch: Vec<workers::Batch> = Vec::with_capacity(16);
        let mut from_siblings = Vec::with_capacity(16);
        let busy = self
            .metrics
            .worker_busy
            .get_or_create(&crate::metrics::WorkerLabel {
                worker: self.worker as u32,
            })
            .clone();
        loop {
            let deadline = self
                .peers
                .values()
                .filter_map(|p| p.next_timeout)
                .chain(self.router.poll_timeout())
                .chain(Some(self.next_retarget))
                .chain(self.octo.as_ref().and_then(|o| o.poll_timeout()))
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let woke_by = tokio::select! {
                n = dgrams.recv_many(&mut batch, 16) => if n == 0 { Wake::Stop } else { Wake::Datagrams },
                cmd = rx.recv() => cmd.map_or(Wake::Stop, Wake::Command),
                Some(ev) = octo::next_event(&mut self.octo) => Wake::Octo(ev),
                Some(msg) = siblings.control.recv() => Wake::Sibling(msg),
                _ = siblings.media.recv_many(&mut from_siblings, 16), if !siblings.media.is_closed() => {
                    Wake::SiblingMedia
                }
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            let woke = Instant::now();
            match woke_by {
                Wake::Datagrams => {
                    for d in batch.drain(..).flatten() {
                        self.on_datagram(&d.data, d.src);
                    }
                }
                Wake::Command(cmd) => self.on_command(cmd),
                Wake::Octo(ev) => self.on_octo_event(ev),
                Wake::Sibling(msg) => self.on_sibling(msg),
                Wake::SiblingMedia => {
                    for msg in from_siblings.drain(..) {
                        self.on_sibling(msg);
                    }
                }
                Wake::Timer => {}
                Wake::Stop => break,
            }
            self.on_timeouts(Instant::now());
            self.settle();
            self.flush();
            busy.inc_by(woke.elapsed().as_secs_f64());
        }
        info!("media loop stopped");
    }

    fn on_datagram(&mut self, data: &[u8], src: SocketAddr) {
        let now = Instant::now();
        let key = match self.by_addr.get(&src) {
            Some(k) => *k,
            None => {
                match geomesh_core::stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u)) {
                    Some(k) => *k,
                    None => {
                        Metrics::count(&self.metrics.dropped, "unknown_source");
                        trace!(%src, len = data.len(), "datagram from unknown source");
                        return;
                    }
                }
            }
        };
        let Ok(contents) = data.try_into() else {
            Metrics::count(&self.metrics.dropped, "unparseable");
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            Metrics::count(&self.metrics.dropped, "no_session_yet");
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: src,
                destination: self.advertised,
                contents,
            },
        );
        if !rtc.accepts(&input) {
            Metrics::count(&self.metrics.dropped, "not_accepted");
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            // A bad packet from a known client does not end its session.
            Metrics::count(&self.metrics.dropped, "rtc_error");
            debug!(peer = key.0, "handle_input: {e}");
        }
        if !peer.addrs.contains(&src) {
            peer.addrs.push(src);
            self.by_addr.insert(src, key);
            self.demux.add_addr(src, self.worker);
        }
        self.drain(key);
    }

    fn on_timeouts(&mut self, now: Instant) {
        self.sibling_timeouts(now);
        if self.router.poll_timeout().is_some_and(|t| t <= now) {
            self.router.handle_timeout(now);
        }
        if self.next_retarget <= now {
            self.next_retarget = now + RETARGET_EVERY;
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in keys {
                self.retarget_layers(key);
            }
        }
        let due: Vec<PeerKey> = self
            .peers
            .values()
            .filter(|p| p.next_timeout.is_some_and(|t| t <= now))
            .map(|p| p.key)
            .collect();
        for key in due {
            let peer = self.peers.get_mut(&key).expect("listed peer");
            if let Some(at) = peer.offered_at
                && !peer.connected
                && now.saturating_duration_since(at) > CONNECT_TIMEOUT
            {
                self.pending
                    .push_back(Pending::Dead(key, "connect_timeout"));
                continue;
            }
            if let Some(rtc) = peer.rtc.as_mut()
                && let Err(e) = rtc.handle_input(Input::Timeout(now))
            {
                warn!(peer = key.0, "timeout: {e}");
                self.pending.push_back(Pending::Dead(key, "rtc_error"));
                continue;
            }
            self.drain(key);
        }
    }

    /// Drains one session's `Rtc` to its next timeout.
    fn drain(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        let now = Instant::now();
        // str0m asks for a timeout that has already passed when it needs
        // one to go on (its pacer snapshots the queues on a timeout: every
        // packet written to a leg waits for one). Handled here, the packets
        // leave in this round instead of the next. Bounded per drain.
        let mut immediate = 0;
        // Bounded: str0m returns Timeout once its queues are empty.
        for _ in 0..100_000 {
            if !rtc.is_alive() {
                self.pending.push_back(Pending::Dead(key, "closed"));
                peer.next_timeout = None;
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) if t <= now && immediate < IMMEDIATE_TIMEOUTS => {
                    immediate += 1;
                    if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                        warn!(peer = key.0, "timeout: {e}");
                        self.pending.push_back(Pending::Dead(key, "rtc_error"));
                        return;
                    }
                }
                Ok(Output::Timeout(t)) => {
                    peer.next_timeout = Some(t);
                    return;
                }
                Ok(Output::Transmit(t)) => self.outbox.push(t.destination, &t.contents),
                Ok(Output::Event(ev)) => match ev {
                    Event::Connected => self.pending.push_back(Pending::Connected(key)),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        self.pending
                            .push_back(Pending::Dead(key, "ice_disconnected"));
                    }
                    Event::MediaAdded(m) => self.pending.push_back(Pending::Added(key, m)),
                    Event::RtpPacket(p) => self.pending.push_back(Pending::Rtp(key, p)),
                    Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc {
                        estimate, ..
                    }) => {
                        self.pending.push_back(Pending::Bwe(key, estimate.as_u64()));
                    }
                    Event::KeyframeRequest(r) => self.pending.push_back(Pending::Keyframe(key, r)),
                    Event::MediaIngressStats(s) => {
                        if let Some(loss) = s.loss {
                            self.metrics.ingress_loss.observe(f64::from(loss));
                        }
                        let seen = self.rtcp_seen.entry((key, s.mid)).or_default();
                        self.metrics.nacks.inc_by(s.nacks.saturating_sub(seen.0));
                        self.metrics.plis.inc_by(s.plis.saturating_sub(seen.1));
                        *seen = (s.nacks.max(seen.0), s.plis.max(seen.1));
                    }
                    Event::Closed => self.pending.push_back(Pending::Dead(key, "closed")),
                    _ => {}
                },
                Err(e) => {
                    warn!(peer = key.0, "poll_output: {e}");
                    self.pending.push_back(Pending::Dead(key, "rtc_error"));
                    return;
                }
            }
        }
        // Reaching here means str0m kept producing output: a bug, but do not spin.
        warn!(peer = key.0, "drain did not reach a timeout");
        peer.next_timeout = Some(Instant::now() + Duration::from_millis(1));
    }

    /// Sends this round's datagrams.
    fn flush(&mut self) {
        self.flush_siblings();
        if self.outbox.is_empty() {
            return;
        }
        let done = self.outbox.flush(&self.socket);
        let out = Traffic {
            direction: Direction::Out,
        };
        self.metrics
            .datagrams
            .get_or_create(&out)
            .inc_by(done.datagrams);
        self.metrics.bytes.get_or_create(&out).inc_by(done.bytes);
        self.metrics.send_calls.inc_by(done.calls);
        if done.failed > 0 {
            Metrics::count_n(&self.metrics.dropped, "send_error", done.failed);
        }
    }

    /// Settles everything drains and the router produced, then renegotiates.
    fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if let Some(p) = self.pending.pop_front() {
                self.on_pending(p);
                continue;
            }
            if let Some(ev) = self.router.poll_event() {
                self.on_router_event(ev);
                continue;
            }
            if let Some(key) = self.undrained.pop() {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.needs_drain = false;
                }
                self.drain(key);
                continue;
            }
            let Some(key) = self
                .peers
                .values()
                .find(|p| p.wants_negotiation())
                .map(|p| p.key)
            else {
                break;
            };
            self.negotiate(key);
        }
        self.octo_reconcile();
        let (p, _) = self.router.counts();
        // Each worker adds its own change: the gauge is edge-wide.
        let p = p as i64;
        self.metrics.participants.inc_by(p - self.counted);
        self.counted = p;
        // A conference spread over workers counts once.
        self.metrics
            .conferences
            .set(self.placement.conferences() as i64);
    }

    fn on_pending(&mut self, p: Pending) {
        match p {
            Pending::Added(key, m) => self.on_media_added(key, m),
            Pending::Rtp(key, p) => self.on_rtp(key, p),
            Pending::Keyframe(key, r) => self.on_keyframe_request(key, r),
            Pending::Connected(key) => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.connected = true;
                    info!(peer = key.0, participant = %peer.participant, "connected");
                }
            }
            Pending::Dead(key, why) => self.remove(key, why),
            Pending::Bwe(key, bps) => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                // Re-choose layers only on a real change (estimates come often).
                let old = peer.bwe_bps.unwrap_or(0);
                peer.bwe_bps = Some(bps);
                if bps.abs_diff(old) * 10 > old {
                    self.retarget_layers(key);
                }
            }
        }
    }

    fn on_media_added(&mut self, key: PeerKey, m: MediaAdded) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let kind = kind_of(m.kind);
        if we_receive(m.direction) && !matches!(peer.role, Role::Viewer { .. }) {
            if peer.sources.contains_key(&m.mid) {
                return;
            }
            if let Some(sim) = &m.simulcast {
                peer.rids
                    .insert(m.mid, sim.recv.iter().map(|l| l.rid).collect());
            }
            match self.router.add_source(key, kind) {
                Ok(source) => {
                    peer.sources.insert(m.mid, source);
                    debug!(peer = key.0, mid = %m.mid, ?kind, "source added");
                    self.sibling_announce(key, m.mid, source);
                }
                Err(e) => warn!(peer = key.0, "add_source: {e}"),
            }
        } else if matches!(peer.role, Role::Viewer { .. }) {
            // A WHEP client's receive-only m-line: fill it with a waiting track.
            if let Some((source, out)) = peer
                .out
                .iter_mut()
                .find(|(_, o)| o.state == OutState::ToOpen && o.kind == kind)
            {
                out.state = OutState::Open(m.mid);
                let source = *source;
                peer.out_by_mid.insert(m.mid, source);
                self.request_keyframe_for(source);
            } else {
                peer.free_slots.push((m.mid, kind));
            }
        }
    }

    /// A local publisher's RTP packet: into an [`InPacket`], then out.
    fn on_rtp(&mut self, from: PeerKey, pkt: RtpPacket) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(rtc) = publisher.rtc.as_mut() else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let Some((mid, rid)) = rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(&source) = publisher.sources.get(&mid) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let Some(params) = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .copied()
        else {
            Metrics::count(&self.metrics.dropped, "unknown_payload_type");
            return;
        };
        let layer = rid
            .and_then(|r| publisher.rids.get(&mid)?.iter().position(|x| *x == r))
            .unwrap_or(0);
        let codec = CodecRef::Local(params);
        let video = params.spec().codec.is_video();
        let ext = &pkt.header.ext_vals;
        let layers = publisher.rids.get(&mid).map_or(1, |r| r.len().clamp(1, 8));
        let input = InPacket {
            // At most 8 layers (clamped above).
            layers: layers as u8,
            layer: layer.min(7) as u8,
            ssrc: *ssrc,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            pt: *pt,
            keyframe: video && InPacket::detect_keyframe(codec.codec(), &pkt.payload),
            codec,
            payload: pkt.payload,
            audio_level: ext.audio_level.map(|l| (l, ext.voice_activity)),
            arrival: pkt.timestamp,
            video,
        };
        self.count_media(Direction::In, &input);
        self.forward(source, &input);
        self.octo_send(source, &input);
    }

    /// Chooses the simulcast layer of each of a subscriber's video legs
    /// from the measured layers and its tile height; a leg whose target
    /// changes asks the publisher for a keyframe (switches wait for one).
    fn retarget_layers(&mut self, key: PeerKey) {
        let now = Instant::now();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // The estimate is shared equally by the simulcast legs that flow.
        let legs = peer
            .out
            .iter()
            .filter(|(s, t)| t.forward.active && self.layer_stats.contains_key(s))
            .count()
            .max(1) as u64;
        let budget = peer.bwe_bps.map(|b| b / legs);
        let mut infos: Vec<LayerInfo> = Vec::new();
        let mut wanted = Vec::new();
        let mut desired: u64 = 0;
        for (source, track) in peer.out.iter_mut() {
            if track.forward.active && track.forward.awaiting_keyframe {
                // The keyframe (or its request) may be lost: ask again.
                wanted.push(*source);
            }
            let Some(stats) = self.layer_stats.get(source) else {
                continue;
            };
            stats.infos(now, &mut infos);
            let target = if track.forward.active {
                pick_layer(&infos, peer.max_height, budget)
            } else {
                None
            };
            if track.forward.active {
                // Probe toward the best layer the tile could use.
                let best = pick_layer(&infos, peer.max_height, None);
                desired += best.map_or(0, |i| infos[i].bitrate_bps);
            }
            // A new target, or one still waiting for its keyframe (a request
            // or the keyframe itself can be lost; publishers like Chrome send
            // none unasked): ask again, rate-limited per source.
            if track.forward.switch.set_target(target).is_some()
                || track.forward.switch.pending().is_some()
            {
                wanted.push(*source);
            }
        }
        if desired > 0
            && let Some(rtc) = peer.rtc.as_mut()
        {
            use str0m::bwe::Bitrate;
            rtc.bwe()
                .set_bitrate(Bitrate::kbps(0), Bitrate::bps(desired + desired / 4));
        }
        for source in wanted {
            self.request_keyframe_for(source);
        }
        self.drain(key);
    }

    /// Writes an incoming packet to every subscriber's leg (the caller
    /// counted it in: a packet from a sibling worker was counted there).
    fn forward(&mut self, source: SourceId, input: &InPacket) {
        if input.layers > 1 {
            self.layer_stats.entry(source).or_default().on_packet(input);
        }
        if let Some((level, _)) = input.audio_level
            && let Some((owner, _)) = self.router.source(source)
        {
            self.router
                .handle_audio_level(input.arrival, owner, level.unsigned_abs());
        }
        // A reused buffer: no allocation per packet once it has grown.
        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(self.router.subscribers(source));
        for &to in &subscribers {
            let Some(sub) = self.peers.get_mut(&to) else {
                continue;
            };
            let Some(rtc) = sub.rtc.as_mut() else {
                continue;
            };
            let Some(track) = sub.out.get_mut(&source) else {
                continue;
            };
            let OutState::Open(mid) = track.state else {
                continue;
            };
            match track.forward.write(rtc, mid, input) {
                Ok(()) => {
                    if !sub.needs_drain {
                        sub.needs_drain = true;
                        self.undrained.push(to);
                    }
                    self.count_media(Direction::Out, input);
                }
                Err(skip) => {
                    if let Some(reason) = skip.counted_reason() {
                        Metrics::count(&self.metrics.dropped, reason);
                    }
                }
            }
        }
        self.scratch = subscribers;
    }

    /// Media counters: packets and payload bytes; a frame per audio packet
    /// and per video packet with the marker bit.
    fn count_media(&self, direction: Direction, input: &InPacket) {
        let kind = if input.video {
            Kind::Video
        } else {
            Kind::Audio
        };
        self.counters.count(
            direction,
            kind,
            input.payload.len(),
            input.marker || !input.video,
        );
    }

    fn on_keyframe_request(&mut self, key: PeerKey, req: KeyframeRequest) {
        let Some(&source) = self
            .peers
            .get(&key)
            .and_then(|p| p.out_by_mid.get(&req.mid))
        else {
            return;
        };
        self.request_keyframe_for(source);
    }

    /// Asks the publisher of `source` for a keyframe, rate-limited.
    fn request_keyframe_for(&mut self, source: SourceId) {
        let Some((owner, kind)) = self.router.source(source) else {
            return;
        };
        if kind != Kind::Video {
            return;
        }
        if self.octo_request_keyframe(source) {
            // A remote source: the link rate-limits and carries the request.
            return;
        }
        if !self.router.keyframe_request(Instant::now(), source) {
            Metrics::count(&self.metrics.keyframe_requests, "suppressed");
            return;
        }
        let Some(peer) = self.peers.get_mut(&owner) else {
            return;
        };
        let Some(mid) = peer
            .sources
            .iter()
            .find(|(_, s)| **s == source)
            .map(|(m, _)| *m)
        else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        // Every layer: each simulcast encoding has its own keyframes.
        let rids: Vec<Option<str0m::media::Rid>> = match peer.rids.get(&mid) {
            Some(r) if !r.is_empty() => r.iter().copied().map(Some).collect(),
            _ => vec![None],
        };
        let mut api = rtc.direct_api();
        let mut asked = false;
        for rid in rids {
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                asked = true;
            }
        }
        if asked {
            Metrics::count(&self.metrics.keyframe_requests, "relayed");
        }
        self.drain(owner);
    }

    fn on_router_event(&mut self, ev: RouterEvent) {
        match ev {
            RouterEvent::Subscribe {
                to,
                source,
                owner,
                kind,
                forwarded,
            } => {
                self.octo_mark_dirty();
                let Some(owner_pid) = self.router.peer(owner).map(|p| p.participant.clone()) else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(&to) else {
                    return;
                };
                let mut track = OutTrack {
                    state: OutState::ToOpen,
                    kind,
                    owner: owner_pid,
                    owner_key: owner,
                    forward: OutForward::default(),
                };
                track.forward.active = forwarded;
                let mut opened = false;
                if let Some(i) = peer.free_slots.iter().position(|(_, k)| *k == kind) {
                    let (mid, _) = peer.free_slots.remove(i);
                    track.state = OutState::Open(mid);
                    peer.out_by_mid.insert(mid, source);
                    opened = true;
                }
                peer.out.insert(source, track);
                if opened {
                    self.request_keyframe_for(source);
                }
                self.retarget_layers(to);
            }
            RouterEvent::Unsubscribe { to, source } => {
                self.octo_mark_dirty();
                let Some(peer) = self.peers.get_mut(&to) else {
                    return;
                };
                let Some((state, kind)) = peer.out.get(&source).map(|t| (t.state, t.kind)) else {
                    return;
                };
                let viewer = matches!(peer.role, Role::Viewer { .. });
                match state {
                    OutState::ToOpen => {
                        peer.out.remove(&source);
                    }
                    OutState::Open(mid) | OutState::Negotiating(mid) if viewer => {
                        // WHEP m-lines are the client's: free the slot for the next publisher.
                        peer.out.remove(&source);
                        peer.out_by_mid.remove(&mid);
                        peer.free_slots.push((mid, kind));
                    }
                    OutState::Open(mid) | OutState::Negotiating(mid) => {
                        if let Some(t) = peer.out.get_mut(&source) {
                            t.state = OutState::ToStop(mid);
                        }
                    }
                    OutState::ToStop(_) | OutState::NegotiatingStop(_) => {}
                }
            }
            RouterEvent::Forward { to, source, on } => {
                self.octo_mark_dirty();
                let Some(track) = self.peers.get_mut(&to).and_then(|p| p.out.get_mut(&source))
                else {
                    return;
                };
                let turned_on = on && !track.forward.active;
                track.forward.active = on;
                if turned_on && track.kind == Kind::Video {
                    track.forward.awaiting_keyframe = true;
                }
                if on && matches!(track.state, OutState::Open(_)) {
                    self.request_keyframe_for(source);
                }
                self.retarget_layers(to);
            }
            RouterEvent::KeyframeDue { source } => self.request_keyframe_for(source),
            RouterEvent::DominantSpeaker { to, peer } => {
                let Some(participant) = self.router.peer(peer).map(|i| i.participant.clone())
                else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    p.signal(ServerMessage::DominantSpeaker { participant });
                }
            }
            RouterEvent::Joined { to, peer } => {
                let Some(entry) = self.roster_entry(peer) else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    p.signal(ServerMessage::ParticipantJoined { participant: entry });
                }
            }
            RouterEvent::Left { to, peer } => {
                let Some(info) = self.router_peer_participant(peer) else {
                    return;
                };
                if let Some(p) = self.peers.get(&to) {
                    p.signal(ServerMessage::ParticipantLeft { participant: info });
                }
            }
        }
    }

    fn router_peer_participant(&self, key: PeerKey) -> Option<ParticipantId> {
        self.peers
            .get(&key)
            .map(|p| p.participant.clone())
            .or_else(|| self.departed.get(&key).cloned())
    }

    /// Sends an edge offer for added and stopped tracks.
    fn negotiate(&mut self, key: PeerKey) {
        let peer = self.peers.get_mut(&key).expect("negotiating a known peer");
        let rtc = peer
            .rtc
            .as_mut()
            .expect("wants_negotiation checked the Rtc");
        let mut change = rtc.sdp_api();
        let mut opened: Vec<(SourceId, Mid)> = Vec::new();
        for (source, track) in peer.out.iter_mut() {
            match track.state {
                OutState::ToOpen => {
                    let mid = change.add_media(
                        media_kind(track.kind),
                        str0m::media::Direction::SendOnly,
                        Some(track.owner.to_string()),
                        Some(format!("{}-{}", track.owner, source.0)),
                        None,
                    );
                    track.state = OutState::Negotiating(mid);
                    opened.push((*source, mid));
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    track.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        for (source, mid) in opened {
            peer.out_by_mid.insert(mid, source);
        }
        match change.apply() {
            Some((offer, pending)) => {
                peer.pending = Some(pending);
                peer.signal(ServerMessage::Offer {
                    sdp: offer.to_sdp_string(),
                });
            }
            None => warn!(peer = key.0, "negotiation produced no offer"),
        }
        self.drain(key);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Join {
                conference,
                participant,
                name,
                role,
                signal,
                reply,
            } => {
                let key = self.new_key();
                let info = PeerInfo {
                    key,
                    participant: participant.clone(),
                    name: name.clone(),
                    role: role.clone(),
                };
                let replaced = match self.router.join(conference.clone(), info) {
                    Ok(r) => r,
                    Err(e) => {
                        // Keys are fresh, so this is a bug; refuse rather than panic.
                        warn!("router join: {e}");
                        return;
                    }
                };
                let announce = role.in_roster().then(|| name.clone());
                let peer = Peer::new(
                    key,
                    participant.clone(),
                    name,
                    conference.clone(),
                    role,
                    signal,
                );
                self.by_ufrag.insert(peer.ufrag.clone(), key);
                self.demux.add_ufrag(&peer.ufrag, self.worker);
                self.peers.insert(key, peer);
                self.placement
                    .joined(&conference, &participant, self.worker);
                if let Some(old) = replaced {
                    if let Some(p) = self.peers.get(&old) {
                        p.signal(ServerMessage::error(
                            "replaced",
                            "the same participant joined again elsewhere",
                            true,
                        ));
                    }
                    self.remove(old, "replaced");
                }
                let roster = self
                    .router
                    .roster(key)
                    .iter()
                    .filter_map(|i| self.roster_entry(i.key))
                    .collect();
                info!(peer = key.0, %participant, %conference, "joined");
                if let Some(name) = announce {
                    self.octo_local_joined(&conference, &participant, name);
                }
                let since = self.peers.get(&key).map(|p| p.since_ms);
                self.report(true, conference, participant, since);
                let _ = reply.send(Joined { key, roster });
            }
            Command::Offer { key, sdp, reply } => {
                let _ = reply.send(self.on_offer(key, &sdp));
            }
            Command::Answer { key, sdp, reply } => {
                let _ = reply.send(self.on_answer(key, &sdp));
            }
            Command::Mute { key, kind, muted } => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                match kind {
                    MediaKindName::Audio => peer.muted.0 = muted,
                    MediaKindName::Video => peer.muted.1 = muted,
                }
                let (participant, conference, now) = (
                    peer.participant.clone(),
                    peer.conference.clone(),
                    peer.muted,
                );
                self.tell_muted(key, &participant, kind, muted);
                self.octo_local_muted(&conference, &participant, now);
            }
            Command::Constraints {
                key,
                last_n,
                pinned,
                max_height,
            } => {
                let Some(peer) = self.peers.get_mut(&key) else {
                    return;
                };
                peer.max_height = max_height.filter(|h| *h > 0);
                // Bounded: a client cannot make the edge select a huge set.
                let last_n = last_n.map(|n| (n as usize).min(64));
                let pinned = pinned.into_iter().take(16).collect();
                if let Err(e) = self.router.set_receiver(key, last_n, pinned) {
                    debug!(peer = key.0, "constraints: {e}");
                }
                self.octo_mark_dirty();
                self.retarget_layers(key);
            }
            Command::Leave { key, reply } => {
                let existed = self.peers.contains_key(&key);
                self.remove(key, "left");
                if let Some(r) = reply {
                    let _ = r.send(existed);
                }
            }
            Command::Evict {
                conference,
                participant,
                code,
                not_after_ms,
            } => {
                let keys: Vec<PeerKey> = self
                    .peers
                    .values()
                    .filter(|p| {
                        p.conference == conference
                            && p.participant == participant
                            && p.since_ms <= not_after_ms
                    })
                    .map(|p| p.key)
                    .collect();
                for key in keys {
                    if let Some(p) = self.peers.get(&key) {
                        p.signal(ServerMessage::error(
                            code,
                            "this participant is connected to another edge now",
                            true,
                        ));
                    }
                    self.remove(key, code);
                }
            }
            Command::Sessions { reply } => {
                let list = self
                    .peers
                    .values()
                    .map(|p| SessionSummary {
                        key: p.key,
                        conference: p.conference.clone(),
                        participant: p.participant.clone(),
                        movable: p.signal.is_some(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Migrate { key, reason } => {
                if let Some(p) = self.peers.get(&key) {
                    info!(peer = key.0, participant = %p.participant, reason, "asking the session to move");
                    p.signal(ServerMessage::Migrate {
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }

    fn on_offer(&mut self, key: PeerKey, sdp: &str) -> Result<String, MediaError> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let advertised = self.advertised;
        let peer = self.peers.get_mut(&key).ok_or(MediaError::UnknownSession)?;
        if peer.rtc.is_some() {
            return Err(MediaError::AlreadyOffered);
        }
        let rtc = peer.create_rtc(
            Instant::now(),
            advertised,
            &self.crypto,
            &self.dtls_cert,
            self.bwe,
        );
        match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                let sdp = answer.to_sdp_string();
                self.drain(key);
                Ok(sdp)
            }
            Err(e) => {
                // Leave the session able to try again with a better offer.
                peer.rtc = None;
                peer.offered_at = None;
                Err(MediaError::BadSdp(e.to_string()))
            }
        }
    }

    fn on_answer(&mut self, key: PeerKey, sdp: &str) -> Result<(), MediaError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let peer = self.peers.get_mut(&key).ok_or(MediaError::UnknownSession)?;
        let pending = peer.pending.take().ok_or(MediaError::NoPendingOffer)?;
        let rtc = peer.rtc.as_mut().ok_or(MediaError::NoPendingOffer)?;
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            // Our offer is void; put the tracks back so the next offer carries them.
            for t in peer.out.values_mut() {
                t.state = match t.state {
                    OutState::Negotiating(_) => OutState::ToOpen,
                    OutState::NegotiatingStop(m) => OutState::ToStop(m),
                    s => s,
                };
            }
            return Err(MediaError::BadSdp(e.to_string()));
        }
        let mut opened = Vec::new();
        peer.out.retain(|source, t| match t.state {
            OutState::Negotiating(m) => {
                t.state = OutState::Open(m);
                opened.push(*source);
                true
            }
            OutState::NegotiatingStop(m) => {
                peer.out_by_mid.remove(&m);
                false
            }
            _ => true,
        });
        self.drain(key);
        // A late joiner decodes nothing until the next keyframe.
        for source in opened {
            self.request_keyframe_for(source);
        }
        Ok(())
    }

    fn report(
        &self,
        joined: bool,
        conference: ConferenceId,
        participant: ParticipantId,
        since_ms: Option<u64>,
    ) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(ParticipantEvent {
                joined,
                conference,
                participant,
                since_ms,
            });
        }
    }

    /// Ends a session everywhere.
    fn remove(&mut self, key: PeerKey, why: &str) {
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        info!(peer = key.0, participant = %peer.participant, why, "session ended");
        self.placement
            .left(&peer.conference, &peer.participant, self.worker);
        self.report(
            false,
            peer.conference.clone(),
            peer.participant.clone(),
            None,
        );
        self.departed.insert(key, peer.participant.clone());
        for a in &peer.addrs {
            self.by_addr.remove(a);
        }
        self.by_ufrag.remove(&peer.ufrag);
        self.demux.remove(&peer.ufrag, &peer.addrs);
        self.rtcp_seen.retain(|(k, _), _| *k != key);
        if let Some(rtc) = peer.rtc.as_mut() {
            rtc.disconnect();
        }
        // Dropping the signal sender closes the WebSocket session.
        peer.signal = None;
        let in_roster = peer.role.in_roster();
        let _ = self.router.leave(key);
        for s in peer.sources.values() {
            self.layer_stats.remove(s);
        }
        if in_roster {
            let sources: Vec<SourceId> = peer.sources.values().copied().collect();
            let last = self.router.local_roster(&peer.conference).is_empty();
            self.octo_local_left(&peer.conference, &peer.participant, &sources, last);
        }
        self.octo_mark_dirty();
        // Settle the Left events while the participant id is still resolvable.
        while let Some(ev) = self.router.poll_event() {
            self.on_router_event(ev);
        }
        self.departed.remove(&key);
    }
}

impl MediaLoop {
    /// A roster entry for a local or remote session, with the edge and
    /// region the participant is on (a sibling worker's is this edge).
    fn roster_entry(&self, key: PeerKey) -> Option<RosterEntry> {
        let here = (Some(self.edge.to_string()), Some(self.region.to_string()));
        if let Some(p) = self.peers.get(&key) {
            let (edge, region) = here;
            return Some(RosterEntry {
                id: p.participant.clone(),
                name: p.name.clone(),
                audio_muted: p.muted.0,
                video_muted: p.muted.1,
                edge,
                region,
            });
        }
        let info = self.router.peer(key)?;
        let (audio_muted, video_muted) = self.octo_remote_muted(key);
        let (edge, region) = match (&info.role, self.octo.as_ref()) {
            (Role::Remote { edge }, Some(o)) if !o.is_sibling(edge) => (
                Some(edge.to_string()),
                o.region_of(edge).map(ToString::to_string),
            ),
            _ => here,
        };
        Some(RosterEntry {
            id: info.participant.clone(),
            name: info.name.clone(),
            audio_muted,
            video_muted,
            edge,
            region,
        })
    }

    /// Tells every local session in `key`'s roster (but `key`) that
    /// `participant` (whose session `key` is) muted or unmuted `kind`.
    fn tell_muted(
        &self,
        key: PeerKey,
        participant: &ParticipantId,
        kind: MediaKindName,
        muted: bool,
    ) {
        let message = ServerMessage::Mute {
            participant: participant.clone(),
            kind,
            muted,
        };
        for other in self.router.roster(key) {
            if let Some(p) = self.peers.get(&other.key) {
                p.signal(message.clone());
            }
        }
    }
}
