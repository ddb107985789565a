//! The octo link: a sans-IO state machine for one edge pair.
//!
//! A [`Link`] holds what this edge announces to the peer (conferences,
//! roster, sources — kept across reconnects and re-announced by itself),
//! what the peer announced, and who subscribed to what. It never touches a
//! socket or a clock:
//!
//! - **in**: [`Link::handle_connected`] / [`Link::handle_disconnected`]
//!   (a QUIC connection came and went), [`Link::handle_control`] (bytes
//!   from the control stream), [`Link::handle_datagram`] (one media
//!   datagram; the hot path returns its [`MediaIn`] directly, a fragment
//!   once its packet is complete),
//!   [`Link::handle_timeout`], and the edge's calls (`open_conference`,
//!   `add_source`, `subscribe`, …);
//! - **out**: [`Link::poll_transmit`] (bytes for the control stream),
//!   [`Link::poll_event`] ([`LinkEvent`]s for the edge),
//!   [`Link::poll_timeout`] (the next [`Deadline`] and why), and
//!   [`Link::encode_media`] (one datagram for one of my packets, or why it
//!   is not sent) and [`Link::encode_media_fragments`] (the same packet as
//!   fragments, for a connection whose datagrams are too small for it).
//!
//! ## Forwarding rule
//!
//! [`Link::encode_media`] refuses packets the peer does not want: a source
//! is sent only while the peer subscribes to it, and only the one layer
//! [`Subscription::select`] picks; when the peer asks for another layer,
//! the old one flows until the edge reports the new one's keyframe
//! ([`Link::keyframe`]), so the switch is seamless. The edge may offer every packet of every
//! source in a conference open on the link; the link filters.
//! [`LinkConfig::forward_unsubscribed`] turns the filter off (for the
//! bandwidth comparison).
//!
//! ## Fragments
//!
//! A packet whose datagram would exceed the connection's current datagram
//! size (before path-MTU discovery, or beyond the path's MTU) goes as up to
//! [`crate::wire::MAX_FRAGMENTS`] fragment datagrams, if the peer announced
//! [`Capabilities::FRAGMENTS`]. The receiving link reassembles at most
//! [`MAX_REASSEMBLING`] packets at a time and gives a packet up once as
//! many newer ones have begun (counted in [`FragmentStats::incomplete`]);
//! a complete packet is delivered as a [`MediaIn`] after the same checks
//! as an unfragmented one.
//!
//! ## Reconnects
//!
//! On a new connection the link sends Hello, waits for the peer's, then
//! re-announces all of my state and an `Announced` frame. The peer's state
//! from the old connection is kept as *stale*; what the peer re-announces
//! unchanged produces no event, and whatever it does not re-announce is
//! reported removed when its `Announced` arrives (or after
//! [`LinkConfig::resync_grace`]). My subscriptions are re-sent as the
//! sources come back. So the edge does nothing on a reconnect but log the
//! [`LinkEvent::Down`] and [`LinkEvent::Up`].

mod api;
mod config;
mod error;
mod event;
mod local;
mod media_out;
mod reassembly;
mod remote;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use geomesh_core::EdgeId;
use tracing::{debug, info, trace, warn};

pub use config::{LinkConfig, LinkState};
pub use error::{DatagramError, LinkError, NotSent, ProtocolViolation, UsageError, close_code};
pub use event::{Deadline, DownReason, LinkEvent, MediaIn, RemoteSource, TimeoutReason};
pub use media_out::{Admitted, LayerSwitches, MediaTable, encode_as_fragments, encode_whole};
pub use reassembly::{FragmentStats, MAX_REASSEMBLING};

use crate::wire::{
    Capabilities, ControlFrame, DecodeError, FragmentSizes, FrameDecoder, GoodbyeReason, Hello,
    MediaDatagram, MediaType, PROTOCOL_VERSION, SourceId, SourceInfo, Subscription,
    decode_datagram, encode_fragments, varint,
};
use local::LocalState;
use reassembly::Reassembly;
use remote::RemoteState;

/// Frames and events on their way out.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    bytes: BytesMut,
    events: VecDeque<LinkEvent>,
}

impl Outbox {
    pub(crate) fn send(&mut self, frame: &ControlFrame) {
        trace!(frame = frame.frame_type().name(), "send");
        frame
            .encode(&mut self.bytes)
            // Every frame is built from values checked at the API (ids by
            // their grammar, names clamped, SourceInfo validated, nonces < 2^62).
            .expect("outgoing frames are validated");
    }

    pub(crate) fn emit(&mut self, event: LinkEvent) {
        self.events.push_back(event);
    }
}

#[derive(Debug, Default)]
struct PingState {
    next_nonce: u64,
    next_at: Option<Instant>,
    outstanding: Option<(u64, Instant)>,
    rtt: Option<Duration>,
}

/// The octo link for one peer edge. See the module docs.
///
/// ```
/// use std::time::Instant;
/// use geomesh_core::{ConferenceId, EdgeId, RegionId};
/// use geomesh_mesh::link::{Link, LinkConfig, LinkEvent};
///
/// let cfg = |id: &str| LinkConfig::new(EdgeId::new(id).unwrap(), RegionId::new("eu").unwrap());
/// let now = Instant::now();
/// let mut a = Link::new(cfg("edge-a"), EdgeId::new("edge-b").unwrap());
/// let mut b = Link::new(cfg("edge-b"), EdgeId::new("edge-a").unwrap());
/// a.open_conference(&ConferenceId::new("standup").unwrap()).unwrap();
/// a.handle_connected(now);
/// b.handle_connected(now);
/// // The drive loop: move control bytes both ways until both are quiet,
/// // then act on events and sleep until the soonest `poll_timeout()`.
/// loop {
///     let mut moved = false;
///     while let Some(bytes) = a.poll_transmit() { b.handle_control(now, &bytes); moved = true; }
///     while let Some(bytes) = b.poll_transmit() { a.handle_control(now, &bytes); moved = true; }
///     if !moved { break; }
/// }
/// let events: Vec<LinkEvent> = std::iter::from_fn(|| b.poll_event()).collect();
/// assert!(events.iter().any(|e| matches!(e, LinkEvent::ConferenceOpened { .. })));
/// let _next_wakeup = a.poll_timeout();
/// ```
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    peer: EdgeId,
    state: LinkState,
    decoder: FrameDecoder,
    out: Outbox,
    local: LocalState,
    remote: RemoteState,
    reassembly: Reassembly,
    /// The id of my next fragmented packet.
    next_packet_id: u16,
    ping: PingState,
    span: tracing::Span,
}

impl Link {
    /// A link to `peer` — the edge id from the peer's verified certificate —
    /// with no connection yet. Local state may be set up before connecting.
    pub fn new(config: LinkConfig, peer: EdgeId) -> Self {
        let span = tracing::info_span!("octo_link", local = %config.local_edge, peer = %peer);
        Self {
            remote: RemoteState::new(peer.clone()),
            config,
            peer,
            state: LinkState::Down,
            decoder: FrameDecoder::new(),
            out: Outbox::default(),
            local: LocalState::default(),
            reassembly: Reassembly::default(),
            next_packet_id: 0,
            ping: PingState::default(),
            span,
        }
    }

    /// The peer's edge id.
    pub fn peer(&self) -> &EdgeId {
        &self.peer
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Where the link is.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// Whether the Hello exchange finished on the current connection.
    pub fn is_up(&self) -> bool {
        matches!(self.state, LinkState::Up { .. })
    }

    /// The latest Ping/Pong round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.ping.rtt
    }

    /// The tracing span of this link (the transport enters it too).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    fn peer_capabilities(&self) -> Capabilities {
        match &self.state {
            LinkState::Up { capabilities, .. } => *capabilities,
            _ => Capabilities::default(),
        }
    }

    // ---- connection lifecycle -------------------------------------------

    /// A new connection to the peer is ready: send Hello. Any previous
    /// connection must have been reported with [`Link::handle_disconnected`]
    /// (this calls it if not).
    pub fn handle_connected(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        if !matches!(self.state, LinkState::Down) {
            self.handle_disconnected(now, DownReason::Lost("replaced by a new connection".into()));
        }
        debug!("connected; sending Hello");
        self.state = LinkState::AwaitingHello { since: now };
        self.out.send(&ControlFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            edge: self.config.local_edge.clone(),
            region: self.config.local_region.clone(),
            capabilities: self.config.capabilities,
        }));
    }

    /// The connection is gone. Emits [`LinkEvent::Down`]; the peer's state
    /// turns stale (see the module docs). Does nothing if already down.
    pub fn handle_disconnected(&mut self, now: Instant, reason: DownReason) {
        let _g = self.span.clone().entered();
        if matches!(self.state, LinkState::Down) {
            return;
        }
        info!(?reason, "link down");
        self.state = LinkState::Down;
        self.decoder = FrameDecoder::new();
        self.out.bytes.clear();
        self.ping.next_at = None;
        self.ping.outstanding = None;
        self.local.disconnected();
        self.remote.disconnected(now, self.config.resync_grace);
        self.reassembly.clear();
        self.out.emit(LinkEvent::Down { reason });
    }

    /// `handle_disconnected` then `handle_connected`: a fresh connection
    /// replaces the old one.
    pub fn reset(&mut self, now: Instant, reason: DownReason) {
        self.handle_disconnected(now, reason);
        self.handle_connected(now);
    }

    fn fail(&mut self, error: LinkError) {
        if matches!(self.state, LinkState::Failed(_) | LinkState::Down) {
            return;
        }
        warn!(%error, "link failed");
        self.state = LinkState::Failed(error.clone());
        self.out.bytes.clear();
        self.out.emit(LinkEvent::Failed(error));
    }

    // ---- input ----------------------------------------------------------

    /// Bytes read from the control stream, in order.
    pub fn handle_control(&mut self, now: Instant, bytes: &[u8]) {
        let _g = self.span.clone().entered();
        if !matches!(
            self.state,
            LinkState::AwaitingHello { .. } | LinkState::Up { .. }
        ) {
            return;
        }
        self.decoder.push(bytes);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.handle_frame(now, frame);
                    if !self.is_up() && !matches!(self.state, LinkState::AwaitingHello { .. }) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(DecodeError::UnknownFrameType(ty)) => {
                    debug!(ty, "skipping an unknown control frame type");
                }
                Err(e) => {
                    self.fail(e.into());
                    return;
                }
            }
        }
    }

    /// One decoded control frame (what [`Link::handle_control`] does per
    /// frame). A frame that breaks the protocol fails the link.
    pub fn handle_frame(&mut self, now: Instant, frame: ControlFrame) {
        let _g = self.span.clone().entered();
        if let Err(e) = self.on_frame(now, frame) {
            self.fail(e);
        }
    }

    fn on_frame(&mut self, now: Instant, frame: ControlFrame) -> Result<(), LinkError> {
        use ControlFrame as F;
        trace!(frame = frame.frame_type().name(), "recv");
        if let LinkState::AwaitingHello { .. } = self.state {
            let F::Hello(hello) = frame else {
                return Err(ProtocolViolation::FrameBeforeHello(frame.frame_type()).into());
            };
            return self.hello(now, hello);
        }
        if !self.is_up() {
            return Ok(());
        }
        let out = &mut self.out;
        match frame {
            F::Hello(_) => return Err(ProtocolViolation::DuplicateHello.into()),
            F::Goodbye { reason, message } => {
                info!(?reason, %message, "peer says goodbye");
                out.emit(LinkEvent::Goodbye { reason, message });
            }
            F::Ping { nonce } => out.send(&F::Pong { nonce }),
            F::Pong { nonce } => {
                if let Some((n, sent)) = self.ping.outstanding
                    && n == nonce
                {
                    let rtt = now.saturating_duration_since(sent);
                    self.ping.outstanding = None;
                    self.ping.rtt = Some(rtt);
                    out.emit(LinkEvent::Rtt(rtt));
                }
            }
            F::Announced => {
                self.remote.expire_stale(out);
                out.emit(LinkEvent::Synced);
            }
            F::ConferenceOpen { conference, id } => {
                self.remote.conference_open(conference, id, out)?
            }
            F::ConferenceClose { conference } => self.remote.conference_close(conference, out)?,
            F::EndpointJoined {
                conference,
                participant,
                display_name,
            } => self
                .remote
                .endpoint_joined(conference, participant, display_name, out)?,
            F::EndpointLeft {
                conference,
                participant,
            } => self.remote.endpoint_left(conference, participant, out)?,
            F::EndpointMuted {
                conference,
                participant,
                audio,
                video,
            } => self
                .remote
                .endpoint_muted(conference, participant, (audio, video), out)?,
            F::SourceAdded {
                conference,
                source,
                id,
                info,
            } => self
                .remote
                .source_added(conference, source, id, info, out)?,
            F::SourceRemoved { source } => self.remote.source_removed(source, out)?,
            F::Subscribe {
                source,
                subscription,
            } => {
                if let Some((source, layer)) = self.local.subscribed(source, subscription) {
                    out.emit(LinkEvent::Subscribed {
                        source,
                        subscription,
                        layer,
                    });
                }
            }
            F::Unsubscribe { source } => {
                if let Some(source) = self.local.unsubscribed(source) {
                    out.emit(LinkEvent::Unsubscribed { source });
                }
            }
            F::KeyframeRequest { source, layer } => {
                if let Some(source) = self.local.source_of(source) {
                    out.emit(LinkEvent::KeyframeRequested { source, layer });
                }
            }
        }
        Ok(())
    }

    fn hello(&mut self, now: Instant, hello: Hello) -> Result<(), LinkError> {
        if hello.version != PROTOCOL_VERSION {
            return Err(LinkError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            });
        }
        if hello.edge != self.peer {
            return Err(LinkError::IdentityMismatch {
                certificate: self.peer.clone(),
                hello: hello.edge,
            });
        }
        info!(region = %hello.region, capabilities = hello.capabilities.bits(), "link up");
        self.state = LinkState::Up {
            region: hello.region.clone(),
            capabilities: hello.capabilities,
        };
        self.out.emit(LinkEvent::Up {
            region: hello.region,
            capabilities: hello.capabilities,
        });
        self.ping.next_at = Some(now);
        // Handles are plentiful (2^14 conferences, 2^30 sources per link),
        // and a fresh connection starts with none in use.
        self.local
            .announce_all(&mut self.out)
            .expect("a fresh connection has handles for every local conference and source");
        Ok(())
    }

    /// One media datagram from the peer: its packet, or `None` for a
    /// fragment that did not complete one (yet, or a duplicate). Errors are
    /// for counting; the link stays up.
    pub fn handle_datagram(&mut self, datagram: Bytes) -> Result<Option<MediaIn>, DatagramError> {
        let (header, packet, fragment) = match decode_datagram(&datagram)? {
            MediaDatagram::Packet(header, packet) => (header, packet, None),
            MediaDatagram::Fragment(f, chunk) => (f.media, chunk, Some(f)),
        };
        if !self.is_up() {
            return Err(DatagramError::NotUp);
        }
        let source = match self.remote.media_source(header.conference, header.source) {
            None => return Err(DatagramError::UnknownSource(header.source)),
            Some(Err(())) => {
                return Err(DatagramError::WrongConference {
                    handle: header.source,
                    conference: header.conference.get(),
                });
            }
            Some(Ok(s)) => s,
        };
        let start = datagram.len() - packet.len();
        let packet = datagram.slice(start..);
        let packet = match fragment {
            None => packet,
            Some(f) => match self.reassembly.push(&f, packet)? {
                Some(whole) => whole,
                None => return Ok(None),
            },
        };
        Ok(Some(MediaIn {
            source: source.clone(),
            ty: header.ty,
            packet,
        }))
    }

    /// How many fragmented packets were reassembled, and dropped
    /// incomplete, over the link's life.
    pub fn fragment_stats(&self) -> FragmentStats {
        self.reassembly.stats()
    }

    /// Runs timers that are due: Hello deadline, Ping, Pong deadline, resync.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _g = self.span.clone().entered();
        if let Some(deadline) = self.remote.resync_deadline()
            && now >= deadline
        {
            debug!("resync grace over: expiring what the peer did not re-announce");
            self.remote.expire_stale(&mut self.out);
        }
        match self.state {
            LinkState::AwaitingHello { since } if now >= since + self.config.hello_timeout => {
                self.fail(LinkError::HelloTimeout);
            }
            LinkState::Up { .. } => {
                let interval = self.config.keyframe_interval;
                self.remote
                    .send_deferred_keyframes(now, interval, &mut self.out);
                if let Some((_, sent)) = self.ping.outstanding {
                    if now >= sent + self.config.ping_timeout {
                        self.fail(LinkError::Unresponsive);
                    }
                } else if self.ping.next_at.is_some_and(|t| now >= t) {
                    let nonce = self.ping.next_nonce;
                    self.ping.next_nonce = (nonce + 1) & varint::MAX;
                    self.ping.outstanding = Some((nonce, now));
                    self.ping.next_at = Some(now + self.config.ping_interval);
                    self.out.send(&ControlFrame::Ping { nonce });
                }
            }
            _ => {}
        }
    }

    // ---- output ---------------------------------------------------------

    /// Bytes to write to the control stream, in order.
    #[must_use = "control bytes must be written to the stream"]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.bytes.is_empty()).then(|| self.out.bytes.split().freeze())
    }

    /// The next event for the edge.
    #[must_use = "events must be handled"]
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.out.events.pop_front()
    }

    /// When [`Link::handle_timeout`] must run next, and why.
    #[must_use = "the link must be woken at its deadline"]
    pub fn poll_timeout(&self) -> Option<Deadline> {
        let mut best: Option<Deadline> = None;
        let mut consider = |at: Option<Instant>, reason| {
            if let Some(at) = at
                && best.is_none_or(|b| at < b.at)
            {
                best = Some(Deadline { at, reason });
            }
        };
        consider(self.remote.resync_deadline(), TimeoutReason::ResyncDeadline);
        match &self.state {
            LinkState::AwaitingHello { since } => consider(
                Some(*since + self.config.hello_timeout),
                TimeoutReason::HelloDeadline,
            ),
            LinkState::Up { .. } => {
                consider(
                    self.remote.keyframe_deadline(self.config.keyframe_interval),
                    TimeoutReason::KeyframeRequest,
                );
                match self.ping.outstanding {
                    Some((_, sent)) => consider(
                        Some(sent + self.config.ping_timeout),
                        TimeoutReason::PongDeadline,
                    ),
                    None => consider(self.ping.next_at, TimeoutReason::Ping),
                }
            }
            _ => {}
        }
        best
    }
}

#[cfg(test)]
mod tests;
