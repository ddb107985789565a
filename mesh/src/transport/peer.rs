//! One peer edge: what its driver publishes, the commands it takes, and
//! the [`LinkHandle`] the edge calls.
//!
//! The driver task ([`super::driver`]) is the one owner of the peer's
//! [`Link`]. The edge changes the link by commands (closures the driver
//! runs on it) and reads what the driver publishes after every change:
//! the forwarding table and the current connection, through an
//! atomic pointer swap, so the media hot path takes no lock.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use geomesh_core::EdgeId;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::metrics::{LinkMetrics, LinkMetricsSnapshot};
use super::sender::MediaSender;
use crate::link::{Link, MediaTable, NotSent};

/// A connection handed to a peer's driver by the dialer or the acceptor.
pub(crate) struct NewConn {
    pub(crate) conn: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) dialed_by_me: bool,
}

/// A change to the link, run by its driver.
pub(crate) type Command = Box<dyn FnOnce(&mut Link) + Send>;

/// What the driver publishes after every change to the link.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) table: MediaTable,
    /// The current connection (set while connected).
    pub(crate) conn: Option<Connection>,
}

/// Everything about one peer edge, shared by its driver, dialer and the
/// edge's [`LinkHandle`]s.
pub(crate) struct Peer {
    pub(crate) id: EdgeId,
    pub(crate) local: EdgeId,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) published: ArcSwap<Published>,
    pub(crate) conns: mpsc::UnboundedSender<NewConn>,
    /// Whether a connection is installed (the dialer waits on it).
    pub(crate) connected: watch::Sender<bool>,
    pub(crate) addr: Mutex<Option<std::net::SocketAddr>>,
    pub(crate) dialing: AtomicBool,
    /// The id of the next fragmented packet sent on the link, from any
    /// sender.
    pub(crate) packet_ids: AtomicU16,
    pub(crate) metrics: LinkMetrics,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("id", &self.id).finish()
    }
}

impl Peer {
    pub(crate) fn next_packet_id(&self) -> u16 {
        self.packet_ids.fetch_add(1, Ordering::Relaxed)
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

/// The link's driver is gone: the node shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the octo node has shut down")]
pub struct LinkGone;

/// The edge's handle on one link (one peer edge). Cheap to clone; valid
/// across reconnects. Changes are commands run by the link's driver, in
/// order; the link records them and announces them when (and every time)
/// the link comes up.
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

    /// Has the driver run `f` on the link (after every command sent
    /// before it) and send what `f` queued. Never blocks; after the node
    /// shut down, `f` is dropped.
    pub fn command(&self, f: impl FnOnce(&mut Link) + Send + 'static) {
        // Fails only when the driver is gone with the node.
        let _ = self.peer.commands.send(Box::new(f));
    }

    /// Like [`LinkHandle::command`], and waits for `f`'s result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Link) -> R + Send + 'static,
    ) -> Result<R, LinkGone> {
        let (tx, rx) = oneshot::channel();
        self.command(move |l| {
            let _ = tx.send(f(l));
        });
        rx.await.map_err(|_| LinkGone)
    }

    /// A sender of my media on this link, for one thread (see
    /// [`MediaSender`]).
    pub fn media_sender(&self) -> MediaSender {
        MediaSender::new(self.peer.clone())
    }

    /// Whether the Hello exchange finished on the current connection.
    pub fn is_up(&self) -> bool {
        self.peer.published.load().table.is_up()
    }

    /// The current connection's `max_datagram_size()`, if connected.
    pub fn max_datagram_size(&self) -> Option<usize> {
        self.peer
            .published
            .load()
            .conn
            .as_ref()?
            .max_datagram_size()
    }

    /// The latest Ping/Pong RTT.
    pub fn rtt(&self) -> Option<Duration> {
        self.peer.metrics.rtt()
    }

    /// QUIC's RTT estimate of the current connection.
    pub fn quic_rtt(&self) -> Option<Duration> {
        self.peer.published.load().conn.as_ref().map(|c| c.rtt())
    }

    /// quinn's statistics of the current connection (UDP datagrams and
    /// bytes each way, frames, path MTU, congestion window, lost packets).
    pub fn connection_stats(&self) -> Option<quinn::ConnectionStats> {
        Some(self.peer.published.load().conn.as_ref()?.stats())
    }

    /// The link's counters.
    pub fn metrics(&self) -> LinkMetricsSnapshot {
        self.peer.metrics.snapshot(self.quic_rtt())
    }
}
