//! Per-link counters: plain atomics the edge reads and exports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::link::FragmentStats;

/// Counters for one link (one peer edge), over the node's life and across
/// reconnects. Updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub struct LinkMetrics {
    pub(crate) media_tx_packets: AtomicU64,
    pub(crate) media_tx_bytes: AtomicU64,
    pub(crate) media_rx_packets: AtomicU64,
    pub(crate) media_rx_bytes: AtomicU64,
    pub(crate) control_tx_bytes: AtomicU64,
    pub(crate) control_rx_bytes: AtomicU64,
    pub(crate) media_not_wanted: AtomicU64,
    pub(crate) fragmented_tx_packets: AtomicU64,
    pub(crate) dropped_too_big: AtomicU64,
    pub(crate) dropped_congestion: AtomicU64,
    pub(crate) rx_malformed: AtomicU64,
    pub(crate) rx_dropped_backpressure: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) rtt_us: AtomicU64,
    /// The link's [`FragmentStats`], copied by its driver.
    pub(crate) reassembled: AtomicU64,
    pub(crate) incomplete: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

/// A copy of a link's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkMetricsSnapshot {
    /// Media packets sent (a fragmented packet counts once).
    pub media_tx_packets: u64,
    /// Media datagram bytes sent (octo headers included, QUIC overhead not).
    pub media_tx_bytes: u64,
    /// Media packets received and accepted (a reassembled packet counts once).
    pub media_rx_packets: u64,
    /// Bytes of the media datagrams received and accepted (fragments too).
    pub media_rx_bytes: u64,
    /// Of the packets sent, how many went as fragments (their datagram
    /// exceeded the connection's `max_datagram_size()`).
    pub fragmented_tx_packets: u64,
    /// Of the packets received, how many were reassembled from fragments.
    pub reassembled_rx_packets: u64,
    /// Fragmented packets dropped with fragments missing (evicted by newer
    /// ones, or pending when the connection went down).
    pub fragments_incomplete: u64,
    /// Control stream bytes written.
    pub control_tx_bytes: u64,
    /// Control stream bytes read.
    pub control_rx_bytes: u64,
    /// Packets offered but not sent because the peer does not want them
    /// (no subscriber, other layer). Not an error: selective forwarding.
    pub media_not_wanted: u64,
    /// Datagrams dropped: larger than the connection's `max_datagram_size()`.
    pub dropped_too_big: u64,
    /// Datagrams dropped: QUIC's datagram send buffer was full (congestion).
    pub dropped_congestion: u64,
    /// Received datagrams that were malformed or named unknown sources.
    pub rx_malformed: u64,
    /// Received media dropped because the edge's event queue was full.
    pub rx_dropped_backpressure: u64,
    /// QUIC connections established with this peer.
    pub connections: u64,
    /// Of those, how many replaced an earlier one (reconnects).
    pub reconnects: u64,
    /// Latest Ping/Pong round-trip time on the control stream.
    pub rtt: Option<Duration>,
    /// QUIC's smoothed RTT estimate of the current connection.
    pub quic_rtt: Option<Duration>,
}

impl LinkMetrics {
    pub(crate) fn set_rtt(&self, rtt: Duration) {
        self.rtt_us.store(
            u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Copies the link's reassembly counters.
    pub(crate) fn set_fragments(&self, f: FragmentStats) {
        self.reassembled.store(f.reassembled, Ordering::Relaxed);
        self.incomplete.store(f.incomplete, Ordering::Relaxed);
    }

    /// The latest Ping/Pong RTT.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        let us = self.rtt_us.load(Ordering::Relaxed);
        (us > 0).then(|| Duration::from_micros(us))
    }

    /// Reads every counter; `quic_rtt` comes from the connection.
    pub fn snapshot(&self, quic_rtt: Option<Duration>) -> LinkMetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkMetricsSnapshot {
            media_tx_packets: g(&self.media_tx_packets),
            media_tx_bytes: g(&self.media_tx_bytes),
            media_rx_packets: g(&self.media_rx_packets),
            media_rx_bytes: g(&self.media_rx_bytes),
            fragmented_tx_packets: g(&self.fragmented_tx_packets),
            reassembled_rx_packets: g(&self.reassembled),
            fragments_incomplete: g(&self.incomplete),
            control_tx_bytes: g(&self.control_tx_bytes),
            control_rx_bytes: g(&self.control_rx_bytes),
            media_not_wanted: g(&self.media_not_wanted),
            dropped_too_big: g(&self.dropped_too_big),
            dropped_congestion: g(&self.dropped_congestion),
            rx_malformed: g(&self.rx_malformed),
            rx_dropped_backpressure: g(&self.rx_dropped_backpressure),
            connections: g(&self.connections),
            reconnects: g(&self.reconnects),
            rtt: self.rtt(),
            quic_rtt,
        }
    }
}
