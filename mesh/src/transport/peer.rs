//! One peer edge: its [`Link`], its current QUIC connection, the task that
//! drives both, and the [`LinkHandle`] the edge calls.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId};
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{Instrument, debug, trace, warn};

use super::OctoEvent;
use super::metrics::{LinkMetrics, LinkMetricsSnapshot, add, inc};
use crate::link::{DownReason, Link, LinkError, LinkEvent, NotSent, UsageError, close_code};
use crate::wire::{
    GoodbyeReason, MAX_DATAGRAM, MIN_FRAGMENT_DATAGRAM, MediaType, SourceId, SourceInfo,
    Subscription,
};

/// A connection handed to a peer's driver by the dialer or the acceptor.
pub(crate) struct NewConn {
    pub(crate) conn: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) dialed_by_me: bool,
}

pub(crate) struct Shared {
    pub(crate) link: Link,
    pub(crate) conn: Option<Connection>,
}

/// Everything about one peer edge, shared by its driver, dialer, datagram
/// reader and the edge's [`LinkHandle`]s.
pub(crate) struct Peer {
    pub(crate) id: EdgeId,
    pub(crate) local: EdgeId,
    pub(crate) shared: Mutex<Shared>,
    /// Wakes the driver after the edge changed the link.
    pub(crate) wake: Notify,
    pub(crate) conns: mpsc::UnboundedSender<NewConn>,
    /// Whether a connection is installed (the dialer waits on it).
    pub(crate) connected: watch::Sender<bool>,
    pub(crate) addr: Mutex<Option<std::net::SocketAddr>>,
    pub(crate) dialing: std::sync::atomic::AtomicBool,
    pub(crate) metrics: LinkMetrics,
}

impl Peer {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        // Poisoned only if a holder panicked, which is a bug elsewhere.
        self.shared.lock().expect("peer state lock poisoned")
    }
}

/// Why a media packet was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The link's forwarding rule or state (not wanted, not up, …).
    #[error(transparent)]
    NotSent(#[from] NotSent),
    /// Larger than the connection's `max_datagram_size()` and the peer
    /// does not accept fragments (or 8 fragments are not enough): dropped
    /// and counted.
    #[error("datagram of {len} bytes exceeds the path's {max}")]
    TooBig {
        /// Datagram length.
        len: usize,
        /// The connection's limit.
        max: usize,
    },
    /// QUIC's datagram send buffer is full: dropped and counted.
    #[error("congested: datagram send buffer full")]
    Congested,
}

/// The edge's handle on one link (one peer edge). Cheap to clone; valid
/// across reconnects. Calls that change state are recorded by the link and
/// announced when (and every time) the link comes up.
#[derive(Clone)]
pub struct LinkHandle {
    pub(crate) peer: Arc<Peer>,
}

impl std::fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHandle")
            .field("peer", &self.peer.id)
            .finish()
    }
}

impl LinkHandle {
    /// The peer's edge id (from its certificate).
    pub fn peer(&self) -> &EdgeId {
        &self.peer.id
    }

    /// Runs `f` on the link and wakes its driver to send what `f` queued.
    pub fn with_link<R>(&self, f: impl FnOnce(&mut Link) -> R) -> R {
        let r = f(&mut self.peer.lock().link);
        self.peer.wake.notify_one();
        r
    }

    /// Whether the Hello exchange finished on the current connection.
    pub fn is_up(&self) -> bool {
        self.peer.lock().link.is_up()
    }

    /// See [`Link::open_conference`].
    pub fn open_conference(&self, conference: &ConferenceId) -> Result<(), UsageError> {
        self.with_link(|l| l.open_conference(conference))
    }

    /// See [`Link::close_conference`].
    pub fn close_conference(&self, conference: &ConferenceId) {
        self.with_link(|l| l.close_conference(conference))
    }

    /// See [`Link::endpoint_joined`].
    pub fn endpoint_joined(
        &self,
        conference: &ConferenceId,
        participant: ParticipantId,
        display_name: Option<String>,
    ) -> Result<(), UsageError> {
        self.with_link(|l| l.endpoint_joined(conference, participant, display_name))
    }

    /// See [`Link::endpoint_muted`].
    pub fn endpoint_muted(
        &self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        audio: bool,
        video: bool,
    ) -> Result<(), UsageError> {
        self.with_link(|l| l.endpoint_muted(conference, participant, audio, video))
    }

    /// See [`Link::endpoint_left`].
    pub fn endpoint_left(&self, conference: &ConferenceId, participant: &ParticipantId) {
        self.with_link(|l| l.endpoint_left(conference, participant))
    }

    /// See [`Link::add_source`].
    pub fn add_source(
        &self,
        conference: &ConferenceId,
        id: SourceId,
        info: SourceInfo,
    ) -> Result<(), UsageError> {
        self.with_link(|l| l.add_source(conference, id, info))
    }

    /// See [`Link::remove_source`].
    pub fn remove_source(&self, id: SourceId) {
        self.with_link(|l| l.remove_source(id))
    }

    /// See [`Link::subscribe`].
    pub fn subscribe(
        &self,
        source: SourceId,
        subscription: Subscription,
    ) -> Result<(), UsageError> {
        self.with_link(|l| l.subscribe(source, subscription))
    }

    /// See [`Link::unsubscribe`].
    pub fn unsubscribe(&self, source: SourceId) {
        self.with_link(|l| l.unsubscribe(source))
    }

    /// See [`Link::request_keyframe`] (rate-limited per source).
    pub fn request_keyframe(
        &self,
        source: SourceId,
        layer: Option<u8>,
    ) -> Result<bool, UsageError> {
        self.with_link(|l| l.request_keyframe(Instant::now(), source, layer))
    }

    /// See [`Link::goodbye`].
    pub fn goodbye(&self, reason: GoodbyeReason, message: &str) {
        self.with_link(|l| l.goodbye(reason, message))
    }

    /// See [`Link::wants_media`] (a read: does not wake the driver).
    pub fn wants_media(&self, source: SourceId, ty: MediaType, layer: u8) -> bool {
        self.peer.lock().link.wants_media(source, ty, layer)
    }

    /// Sends one RTP or RTCP packet of my source as a datagram, if the peer
    /// wants it (see [`Link::encode_media`]). A packet whose datagram
    /// exceeds the connection's `max_datagram_size()` goes as fragments
    /// ([`Link::encode_media_fragments`]) to a peer that accepts them.
    /// Never blocks: a packet that cannot be sent whole or in fragments, or
    /// meets a full send buffer, is dropped and counted.
    pub fn send_media(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
    ) -> Result<(), SendError> {
        let m = &self.peer.metrics;
        let mut buf = BytesMut::with_capacity(packet.len() + crate::wire::MAX_MEDIA_HEADER);
        let conn = {
            let s = self.peer.lock();
            if let Err(e) = s.link.encode_media(source, ty, layer, packet, &mut buf) {
                if matches!(e, NotSent::NotSubscribed | NotSent::OtherLayer { .. }) {
                    inc(&m.media_not_wanted);
                }
                return Err(e.into());
            }
            // encode_media succeeds only while the link is up, i.e. connected.
            s.conn.clone().ok_or(NotSent::NotUp)?
        };
        let len = buf.len();
        let max = conn.max_datagram_size().unwrap_or(0);
        if len > max {
            return self.send_fragments(&conn, source, ty, layer, packet, buf);
        }
        if conn.datagram_send_buffer_space() < len {
            inc(&m.dropped_congestion);
            return Err(SendError::Congested);
        }
        match conn.send_datagram(buf.freeze()) {
            Ok(()) => {
                inc(&m.media_tx_packets);
                add(&m.media_tx_bytes, len);
                Ok(())
            }
            Err(quinn::SendDatagramError::TooLarge) => {
                inc(&m.dropped_too_big);
                Err(SendError::TooBig { len, max })
            }
            Err(_) => Err(NotSent::NotUp.into()),
        }
    }

    /// The cold path of [`LinkHandle::send_media`]: the packet's datagram
    /// in `buf` exceeds the connection's datagram size.
    #[cold]
    fn send_fragments(
        &self,
        conn: &Connection,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
        mut buf: BytesMut,
    ) -> Result<(), SendError> {
        let m = &self.peer.metrics;
        let len = buf.len();
        buf.clear();
        let max = conn.max_datagram_size().unwrap_or(0);
        let encoded = self
            .peer
            .lock()
            .link
            .encode_media_fragments(source, ty, layer, packet, max, &mut buf);
        let sizes = match encoded {
            Ok(sizes) => sizes,
            Err(NotSent::NoFragments | NotSent::TooManyFragments { .. }) => {
                inc(&m.dropped_too_big);
                return Err(SendError::TooBig { len, max });
            }
            // The link changed since `send_media` looked (unsubscribed, down).
            Err(e) => return Err(e.into()),
        };
        let total = sizes.total();
        if conn.datagram_send_buffer_space() < total {
            inc(&m.dropped_congestion);
            return Err(SendError::Congested);
        }
        let mut all = buf.freeze();
        for &n in sizes.datagrams() {
            match conn.send_datagram(all.split_to(n)) {
                Ok(()) => {}
                // The path shrank (black-hole detection) between fragments.
                Err(quinn::SendDatagramError::TooLarge) => {
                    inc(&m.dropped_too_big);
                    return Err(SendError::TooBig { len: n, max });
                }
                Err(_) => return Err(NotSent::NotUp.into()),
            }
        }
        inc(&m.media_tx_packets);
        inc(&m.fragmented_tx_packets);
        add(&m.media_tx_bytes, total);
        Ok(())
    }

    /// The current connection's `max_datagram_size()`, if connected.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.peer.lock().conn.as_ref()?.max_datagram_size()
    }

    /// The latest Ping/Pong RTT.
    pub fn rtt(&self) -> Option<Duration> {
        self.peer.lock().link.rtt()
    }

    /// QUIC's RTT estimate of the current connection.
    pub fn quic_rtt(&self) -> Option<Duration> {
        self.peer.lock().conn.as_ref().map(|c| c.rtt())
    }

    /// quinn's statistics of the current connection (UDP datagrams and
    /// bytes each way, frames, path MTU, congestion window, lost packets).
    pub fn connection_stats(&self) -> Option<quinn::ConnectionStats> {
        Some(self.peer.lock().conn.as_ref()?.stats())
    }

    /// The link's counters.
    pub fn metrics(&self) -> LinkMetricsSnapshot {
        let (quic_rtt, fragments) = {
            let s = self.peer.lock();
            (s.conn.as_ref().map(|c| c.rtt()), s.link.fragment_stats())
        };
        self.peer.metrics.snapshot(quic_rtt, fragments)
    }
}

struct Current {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    lower_dialed: bool,
    datagrams: tokio::task::JoinHandle<()>,
    /// Set when we close it because the link failed.
    failure: Option<LinkError>,
}

fn down_reason(e: &ConnectionError, failure: Option<LinkError>) -> DownReason {
    if let Some(f) = failure {
        return DownReason::Failed(f);
    }
    match e {
        ConnectionError::ApplicationClosed(c) => DownReason::PeerClosed {
            code: c.error_code.into_inner(),
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        },
        other => DownReason::Lost(other.to_string()),
    }
}

/// Reads the next chunk of the control stream, or waits forever without one.
async fn read_control(cur: &mut Option<Current>) -> Result<Option<bytes::Bytes>, String> {
    match cur {
        Some(c) => match c.recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => Err("control stream finished by the peer".into()),
            Err(e) => Err(e.to_string()),
        },
        None => std::future::pending().await,
    }
}

/// The driver: one task per peer for the node's life. Installs connections,
/// moves control bytes, runs the link's timers and forwards its events.
pub(crate) async fn drive(
    peer: Arc<Peer>,
    mut conns: mpsc::UnboundedReceiver<NewConn>,
    events: mpsc::Sender<OctoEvent>,
) {
    let span = peer.lock().link.span().clone();
    async move {
        let mut cur: Option<Current> = None;
        loop {
            let (bytes, evs, deadline) = {
                let mut s = peer.lock();
                let bytes: Vec<_> = std::iter::from_fn(|| s.link.poll_transmit()).collect();
                let evs: Vec<_> = std::iter::from_fn(|| s.link.poll_event()).collect();
                (bytes, evs, s.link.poll_timeout())
            };
            for ev in evs {
                match &ev {
                    LinkEvent::Failed(err) => {
                        if let Some(c) = &mut cur {
                            c.conn.close(
                                VarInt::from_u32(err.close_code()),
                                err.to_string().as_bytes(),
                            );
                            c.failure = Some(err.clone());
                        }
                    }
                    LinkEvent::Rtt(rtt) => peer.metrics.set_rtt(*rtt),
                    _ => {}
                }
                let event = OctoEvent::Link {
                    peer: peer.id.clone(),
                    event: ev,
                };
                // The edge dropped its receiver: it is shutting down.
                let _ = events.send(event).await;
            }
            if let Some(c) = &mut cur {
                for b in bytes {
                    add(&peer.metrics.control_tx_bytes, b.len());
                    if let Err(e) = c.send.write_all(&b).await {
                        debug!(error = %e, "control stream write failed");
                        break;
                    }
                }
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                new = conns.recv() => match new {
                    Some(new) => install(&peer, &mut cur, new, &events),
                    None => {
                        // The node is shutting down.
                        if let Some(c) = cur.take() {
                            c.datagrams.abort();
                        }
                        return;
                    }
                },
                r = read_control(&mut cur) => match r {
                    Ok(Some(chunk)) => {
                        add(&peer.metrics.control_rx_bytes, chunk.len());
                        peer.lock().link.handle_control(Instant::now(), &chunk);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // `cur` is Some: read_control only returns with a connection.
                        let c = cur.take().expect("a read result implies a connection");
                        lost(&peer, c, e, false);
                    }
                },
                _ = sleep => peer.lock().link.handle_timeout(Instant::now()),
                _ = peer.wake.notified() => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// The current connection `c` is gone. `replaced`: a new one is being
/// installed right away, so the dialer must not see a gap.
fn lost(peer: &Peer, c: Current, detail: String, replaced: bool) {
    c.datagrams.abort();
    let reason = match c.conn.close_reason() {
        Some(e) => down_reason(&e, c.failure),
        None => {
            c.conn.close(
                VarInt::from_u32(close_code::PROTOCOL),
                b"control stream lost",
            );
            c.failure
                .map(DownReason::Failed)
                .unwrap_or(DownReason::Lost(detail))
        }
    };
    {
        let mut s = peer.lock();
        s.conn = None;
        s.link.handle_disconnected(Instant::now(), reason);
    }
    if !replaced {
        peer.connected.send_replace(false);
    }
}

fn install(
    peer: &Arc<Peer>,
    cur: &mut Option<Current>,
    new: NewConn,
    events: &mpsc::Sender<OctoEvent>,
) {
    let lower_dialed = if new.dialed_by_me {
        peer.local < peer.id
    } else {
        peer.id < peer.local
    };
    if let Some(c) = cur.as_ref() {
        if c.lower_dialed && !lower_dialed {
            debug!("refusing a duplicate connection dialed by the higher id");
            new.conn.close(
                VarInt::from_u32(close_code::DUPLICATE),
                b"duplicate connection",
            );
            return;
        }
        // `cur` is Some: checked above.
        let old = cur.take().expect("current connection");
        old.conn.close(
            VarInt::from_u32(close_code::DUPLICATE),
            b"replaced by a newer connection",
        );
        lost(peer, old, "replaced by a newer connection".into(), true);
    }
    let m = &peer.metrics;
    if m.connections.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        inc(&m.reconnects);
    }
    inc(&m.connections);
    match new.conn.max_datagram_size() {
        Some(max) if max >= MAX_DATAGRAM => trace!(max, "datagram size fits every packet"),
        Some(max) if max >= MIN_FRAGMENT_DATAGRAM => {
            trace!(max, "datagram size; larger packets go as fragments")
        }
        other => warn!(
            ?other,
            need = MIN_FRAGMENT_DATAGRAM,
            "the path's datagram size is too small even for fragments; big packets will be dropped"
        ),
    }
    let datagrams = tokio::spawn(
        read_datagrams(peer.clone(), new.conn.clone(), events.clone())
            .instrument(tracing::Span::current()),
    );
    {
        let mut s = peer.lock();
        s.conn = Some(new.conn.clone());
        s.link.handle_connected(Instant::now());
    }
    *cur = Some(Current {
        conn: new.conn,
        send: new.send,
        recv: new.recv,
        lower_dialed,
        datagrams,
        failure: None,
    });
    peer.connected.send_replace(true);
}

/// The media hot path in: one task per connection.
async fn read_datagrams(peer: Arc<Peer>, conn: Connection, events: mpsc::Sender<OctoEvent>) {
    let m = &peer.metrics;
    while let Ok(datagram) = conn.read_datagram().await {
        let len = datagram.len();
        let r = peer.lock().link.handle_datagram(datagram);
        match r {
            // A fragment; its packet is not complete yet.
            Ok(None) => add(&m.media_rx_bytes, len),
            Ok(Some(media)) => {
                inc(&m.media_rx_packets);
                add(&m.media_rx_bytes, len);
                match events.try_send(OctoEvent::Media(media)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => inc(&m.rx_dropped_backpressure),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Err(e) => {
                inc(&m.rx_malformed);
                trace!(error = %e, "dropped a datagram");
            }
        }
    }
}
