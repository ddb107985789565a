//! The edge's SFU core, without I/O: one media worker's sessions (their
//! `Rtc`s), routing table, simulcast layer choice, last-N and speaker,
//! keyframe requests and the octo mirroring of its conferences.
//!
//! Drive shape (str0m's and quinn-proto's): the shell passes the time in
//! with every input — [`Sfu::handle_datagram`], [`Sfu::handle_command`],
//! [`Sfu::handle_octo`], [`Sfu::handle_sibling`], [`Sfu::handle_timeout`] —
//! then calls [`Sfu::end_round`], sends what [`Sfu::outbox`] holds and sleeps
//! until [`Sfu::poll_timeout`], which says why it wants to wake. Nothing in
//! here reads a clock, owns a socket or spawns a task: the I/O shell is
//! [`crate::media`], and the virtual-time tests (`harness`) drive several
//! cores and str0m clients on a simulated clock and network.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::{KeyframeRequest, MediaAdded, Mid};
use str0m::rtp::RtpPacket;

use geomesh_core::ParticipantId;

use crate::forward::LayerStats;
use crate::metrics::Metrics;
use crate::peer::Peer;
use crate::placement::Placement;
use crate::router::{PeerKey, Router, SourceId};
use crate::socket::Outbox;

mod apply;
pub mod command;
mod drain;
mod events;
pub(crate) mod octo;
mod output;
mod route;
mod timeout;
mod workers;

#[cfg(test)]
mod harness;

pub use command::{Command, Joined, MediaError, Response, SessionSummary};
pub(crate) use octo::Octo;
pub(crate) use output::Output;
pub use timeout::{Timeout, Wake};
pub(crate) use workers::{EdgeCoreConfig, EdgeCores, OctoNodeRef};

/// Something a drain produced, settled after the drain.
// Media frames dominate the queue; boxing them would allocate per frame.
#[allow(clippy::large_enum_variant)]
pub(super) enum Pending {
    Added(PeerKey, MediaAdded),
    Rtp(PeerKey, RtpPacket),
    Keyframe(PeerKey, KeyframeRequest),
    Connected(PeerKey),
    Bwe(PeerKey, u64),
    Dead(PeerKey, &'static str),
}

/// One media worker's SFU state: its sessions' `Rtc`s, routing table and
/// octo mirroring. Driven by the `handle_*` methods; the shell sends
/// [`Sfu::outbox`] and sleeps until [`Sfu::poll_timeout`].
pub struct Sfu {
    /// Run str0m's TWCC bandwidth estimation toward subscribers.
    bwe: bool,
    /// This worker's index and the number of workers (ids encode the worker).
    worker: usize,
    workers: usize,
    /// Datagrams of this round, sent together at its end.
    outbox: Outbox,
    /// Sessions with packets written since their last drain.
    undrained: Vec<PeerKey>,
    /// Which worker owns which address and ufrag.
    demux: Arc<crate::workers::Demux>,
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
    /// Signaling messages and reports for the shell.
    outputs: output::Outputs,
    /// Octo links to other edges, when the edge has them.
    octo: Option<Octo>,
    /// Measured simulcast layers of local sources.
    layer_stats: HashMap<SourceId, LayerStats>,
    /// Next periodic re-choice of every subscriber's simulcast layers.
    next_retarget: Instant,
    /// Reused per-packet list of subscribers.
    scratch: Vec<PeerKey>,
    /// The time of the latest input (time only moves forward).
    now: Instant,
    /// Media counters resolved once.
    counters: crate::metrics::MediaCounters,
    /// Sessions per worker and conference (which worker a join goes to).
    placement: Arc<Placement>,
    /// This edge and its region (roster entries of local sessions).
    edge: geomesh_core::EdgeId,
    region: geomesh_core::RegionId,
    /// Conferences being recorded (the cluster says): their participants
    /// are told.
    recording: std::collections::BTreeSet<geomesh_core::ConferenceId>,
}

/// Timeouts already due that one drain handles itself (then it leaves the
/// rest to the loop's timer, so a session whose clock never settles cannot
/// hold the worker).
const IMMEDIATE_TIMEOUTS: usize = 4;

/// Simulcast layers are re-chosen this often (layers come and go, bitrates move).
const RETARGET_EVERY: Duration = Duration::from_millis(500);

/// What a worker's core is built from (shared parts come from the edge).
pub(crate) struct SfuParts {
    /// Run str0m's TWCC bandwidth estimation toward subscribers.
    pub bwe: bool,
    /// This worker's index and the number of workers.
    pub worker: usize,
    pub workers: usize,
    /// Which worker owns which address and ufrag.
    pub demux: Arc<crate::workers::Demux>,
    /// The address in our ICE candidates.
    pub advertised: SocketAddr,
    pub router: Router,
    pub metrics: Arc<Metrics>,
    pub crypto: Arc<str0m::crypto::CryptoProvider>,
    pub dtls_cert: str0m::config::DtlsCert,
    pub octo: Option<Octo>,
    pub placement: Arc<Placement>,
    pub edge: geomesh_core::EdgeId,
    pub region: geomesh_core::RegionId,
}

impl Sfu {
    /// A worker's core, its clock starting at `now`.
    pub(crate) fn new(now: Instant, p: SfuParts) -> Self {
        Self {
            bwe: p.bwe,
            worker: p.worker,
            workers: p.workers,
            outbox: Outbox::default(),
            undrained: Vec::new(),
            demux: p.demux,
            counted: 0,
            advertised: p.advertised,
            router: p.router,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            pending: VecDeque::new(),
            counters: crate::metrics::MediaCounters::new(&p.metrics),
            metrics: p.metrics,
            next_key: p.worker as u64,
            rtcp_seen: HashMap::new(),
            departed: HashMap::new(),
            crypto: p.crypto,
            dtls_cert: p.dtls_cert,
            outputs: output::Outputs::default(),
            octo: p.octo,
            layer_stats: HashMap::new(),
            next_retarget: now + RETARGET_EVERY,
            scratch: Vec::new(),
            now,
            placement: p.placement,
            edge: p.edge,
            region: p.region,
            recording: std::collections::BTreeSet::new(),
        }
    }

    /// A fresh session key of this worker.
    fn new_key(&mut self) -> PeerKey {
        let k = PeerKey(self.next_key);
        self.next_key += self.workers as u64;
        k
    }

    /// Time moves forward only (inputs from several sources can arrive
    /// with slightly older stamps).
    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// A datagram from a client arrived on the media socket.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        self.advance(now);
        self.on_datagram(data, src);
    }

    /// A request from signaling.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) -> Response {
        self.advance(now);
        self.on_command(cmd)
    }

    /// The next signaling message, closed session, participant report or
    /// sibling message for the shell, in the order they happened (sibling
    /// messages after the rest).
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop() {
            return Some(o);
        }
        self.sibling_outputs();
        self.outputs.pop()
    }

    /// An event of the edge's octo node (a link's state or media).
    pub fn handle_octo(&mut self, now: Instant, ev: geomesh_mesh::transport::OctoEvent) {
        self.advance(now);
        self.on_octo_event(ev);
    }

    /// A message from a sibling worker.
    pub(crate) fn handle_sibling(&mut self, now: Instant, msg: crate::sibling::SiblingMsg) {
        self.advance(now);
        self.on_sibling(msg);
    }

    /// Runs every timer due at `now`: sessions' `Rtc`s, the router's ticks,
    /// layer re-choice, sibling links.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        self.on_timeouts(now);
    }

    /// Ends a round of inputs: settles what they produced (media to
    /// forward, keyframe requests, routing changes, renegotiations) and
    /// hands sibling workers their packets. Then [`Sfu::outbox`] holds the
    /// round's datagrams.
    pub fn end_round(&mut self) {
        self.settle();
        self.flush_siblings();
    }

    /// The round's datagrams to clients, for the shell to send.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// When the core next needs [`Sfu::handle_timeout`], and why.
    pub fn poll_timeout(&self) -> Timeout {
        let mut t = Timeout::idle(self.now);
        for p in self.peers.values() {
            if let Some(at) = p.next_timeout {
                t = t.min(Timeout::new(at, Wake::Session(p.key)));
            }
        }
        if let Some(at) = self.router.poll_timeout() {
            t = t.min(Timeout::new(at, Wake::Router));
        }
        t = t.min(Timeout::new(self.next_retarget, Wake::Layers));
        if let Some(at) = self.octo.as_ref().and_then(|o| o.poll_timeout()) {
            t = t.min(Timeout::new(at, Wake::Sibling));
        }
        t
    }

    /// Attaches a link to another edge that the virtual-time harness drives.
    #[cfg(test)]
    pub(crate) fn add_octo_port(&mut self, port: octo::Port) {
        self.octo
            .as_mut()
            .expect("cores built with always_octo")
            .add_port(port);
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }
}
