//! Prometheus metrics of one edge (`GET /metrics`).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::router::Kind;

mod counters;
pub use counters::*;

/// `direction` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Direction {
    /// Received by the edge.
    In,
    /// Sent by the edge.
    Out,
}

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum KindLabel {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl From<Kind> for KindLabel {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Audio => KindLabel::Audio,
            Kind::Video => KindLabel::Video,
        }
    }
}

/// Labels of traffic counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Traffic {
    /// In or out.
    pub direction: Direction,
}

/// Labels of media counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Media {
    /// In or out.
    pub direction: Direction,
    /// Audio or video.
    pub kind: KindLabel,
}

/// Labels of per-octo-link gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabel {
    /// The peer edge.
    pub peer: String,
}

/// Labels of per-media-worker counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// The worker's index.
    pub worker: u32,
}

/// Labels of per-octo-link traffic counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkTraffic {
    /// The peer edge.
    pub peer: String,
    /// In or out.
    pub direction: Direction,
}

/// Labels of per-octo-link drop counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkReason {
    /// The peer edge.
    pub peer: String,
    /// Why.
    pub reason: String,
}

/// A label with one free-form reason or result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: String,
}

/// Who this edge is (`geomesh_edge_info`, value 1): dashboards join on it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InfoLabels {
    /// Edge id.
    pub edge: String,
    /// Its region.
    pub region: String,
    /// The `geomesh` version.
    pub version: String,
}

/// Every metric the edge exports.
pub struct Metrics {
    registry: Registry,
    /// Sessions on this edge.
    pub participants: Gauge,
    /// Conferences with at least one session here.
    pub conferences: Gauge,
    /// UDP datagrams on the media port.
    pub datagrams: Family<Traffic, Counter>,
    /// UDP bytes on the media port.
    pub bytes: Family<Traffic, Counter>,
    /// Send calls on the media port (fewer than datagrams out: GSO sends
    /// a subscriber's run of equal-sized datagrams in one call).
    pub send_calls: Counter,
    /// Media packets handed to another media worker of this edge (a
    /// conference spread over workers).
    pub sibling_packets: Counter,
    /// Seconds each media worker spent working (not waiting): its share of
    /// a core, and how evenly the workers share the load.
    pub worker_busy: Family<WorkerLabel, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// Media frames received from publishers / written to subscribers
    /// (one per audio packet, one per video packet with the marker bit).
    pub frames: Family<Media, Counter>,
    /// RTP packets received from publishers (local or over octo) / written
    /// to subscribers.
    pub packets: Family<Media, Counter>,
    /// Media payload bytes received / written.
    pub media_bytes: Family<Media, Counter>,
    /// Datagrams dropped, by reason.
    pub dropped: Family<Reason, Counter>,
    /// Plain STUN binding requests on the media port: answered or over
    /// the rate limit.
    pub stun_probes: Family<Reason, Counter>,
    /// Join attempts, by result (`ok` or the refusal code).
    pub joins: Family<Reason, Counter>,
    /// Signaling errors sent to clients, by code.
    pub signaling_errors: Family<Reason, Counter>,
    /// Keyframe requests from subscribers: `relayed` to a local publisher,
    /// sent over an `octo` or `sibling` link, or `suppressed` (rate limit).
    pub keyframe_requests: Family<Reason, Counter>,
    /// NACKs the edge sent to publishers (from RTCP stats).
    pub nacks: Counter,
    /// PLIs the edge sent to publishers (from RTCP stats).
    pub plis: Counter,
    /// Fraction of packets lost reported per incoming stream per second (RTCP).
    pub ingress_loss: Histogram,
    /// Process CPU time, seconds (user + system), sampled at scrape.
    pub cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Participants / capacity (1.0 = at capacity).
    pub stress: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Sessions at stress 1.0 (set at start).
    pub capacity: std::sync::atomic::AtomicU32,
    /// When this edge's certificate expires, Unix seconds.
    pub cert_expiry: Gauge,
    /// `geomesh_edge_info`.
    pub info: Family<InfoLabels, Gauge>,
    /// 1 while the octo link to a peer is up.
    pub octo_link_up: Family<LinkLabel, Gauge>,
    /// Share of QUIC packets lost on the link's current connection.
    pub octo_loss: Family<LinkLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Octo connections refused before becoming links.
    pub octo_rejected: Family<Reason, Counter>,
    /// Latest Ping/Pong RTT per octo link, seconds.
    pub octo_rtt: Family<LinkLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// QUIC's RTT estimate per octo link, seconds (sampled at scrape).
    pub octo_quic_rtt: Family<LinkLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Octo media datagrams per link and direction (sampled at scrape).
    pub octo_packets: Family<LinkTraffic, Counter>,
    /// Octo media datagram bytes (octo header included).
    pub octo_bytes: Family<LinkTraffic, Counter>,
    /// Octo control stream bytes.
    pub octo_control_bytes: Family<LinkTraffic, Counter>,
    /// Octo datagrams dropped per link: too_big, congestion, malformed,
    /// backpressure, fragment_incomplete (a fragmented packet given up).
    pub octo_dropped: Family<LinkReason, Counter>,
    /// Octo media packets split into fragments (out) or reassembled from
    /// them (in) per link: packets bigger than the connection's datagrams.
    pub octo_fragmented: Family<LinkTraffic, Counter>,
    /// Packets not sent because the peer did not subscribe (selective forwarding).
    pub octo_not_wanted: Family<LinkLabel, Counter>,
    /// QUIC connections per link after the first.
    pub octo_reconnects: Family<LinkLabel, Counter>,
    /// The octo node, once started: its links are read at scrape time.
    pub octo_node: std::sync::OnceLock<std::sync::Arc<geomesh_mesh::transport::OctoNode>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics, registered under `geomesh_edge_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("geomesh_edge");
        let m = Metrics {
            participants: Gauge::default(),
            conferences: Gauge::default(),
            datagrams: Family::default(),
            bytes: Family::default(),
            send_calls: Counter::default(),
            sibling_packets: Counter::default(),
            worker_busy: Family::default(),
            frames: Family::default(),
            media_bytes: Family::default(),
            dropped: Family::default(),
            stun_probes: Family::default(),
            joins: Family::default(),
            signaling_errors: Family::default(),
            keyframe_requests: Family::default(),
            nacks: Counter::default(),
            plis: Counter::default(),
            ingress_loss: Histogram::new([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
            cpu_seconds: Counter::default(),
            stress: Gauge::default(),
            capacity: std::sync::atomic::AtomicU32::new(0),
            cert_expiry: Gauge::default(),
            info: Family::default(),
            octo_link_up: Family::default(),
            octo_loss: Family::default(),
            packets: Family::default(),
            octo_rejected: Family::default(),
            octo_rtt: Family::default(),
            octo_quic_rtt: Family::default(),
            octo_packets: Family::default(),
            octo_bytes: Family::default(),
            octo_control_bytes: Family::default(),
            octo_dropped: Family::default(),
            octo_fragmented: Family::default(),
            octo_not_wanted: Family::default(),
            octo_reconnects: Family::default(),
            octo_node: std::sync::OnceLock::new(),
            registry: Registry::default(),
        };
        registry.register(
            "participants",
            "Sessions on this edge",
            m.participants.clone(),
        );
        registry.register(
            "conferences",
            "Conferences with a session here",
            m.conferences.clone(),
        );
        registry.register(
            "udp_datagrams",
            "UDP datagrams on the media port",
            m.datagrams.clone(),
        );
        registry.register("udp_bytes", "UDP bytes on the media port", m.bytes.clone());
        registry.register(
            "udp_send_calls",
            "Send calls on the media port (one GSO call carries several datagrams)",
            m.send_calls.clone(),
        );
        registry.register(
            "sibling_packets",
            "Media packets handed to another media worker (a conference spread over workers)",
            m.sibling_packets.clone(),
        );
        registry.register(
            "worker_busy_seconds",
            "Seconds each media worker spent working rather than waiting",
            m.worker_busy.clone(),
        );
        registry.register(
            "media_frames",
            "Media frames in from publishers, out to subscribers",
            m.frames.clone(),
        );
        registry.register(
            "media_bytes",
            "Media payload bytes in and out",
            m.media_bytes.clone(),
        );
        registry.register(
            "datagrams_dropped",
            "Datagrams dropped, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "stun_probes",
            "Plain STUN binding requests on the media port (address checks), by result",
            m.stun_probes.clone(),
        );
        registry.register("joins", "Join attempts by result", m.joins.clone());
        registry.register(
            "signaling_errors",
            "Signaling errors sent, by code",
            m.signaling_errors.clone(),
        );
        registry.register(
            "keyframe_requests",
            "Subscriber keyframe requests: relayed, octo, sibling or suppressed",
            m.keyframe_requests.clone(),
        );
        registry.register("nacks_sent", "NACKs sent to publishers", m.nacks.clone());
        registry.register("plis_sent", "PLIs sent to publishers", m.plis.clone());
        registry.register(
            "ingress_loss_ratio",
            "Loss fraction per incoming stream per report",
            m.ingress_loss.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time of the edge process (user + system)",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "stress_ratio",
            "Sessions / capacity (1.0: at capacity; the selectors stop placing at the topology's stress_threshold)",
            m.stress.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When this edge's cluster certificate expires (Unix seconds)",
            m.cert_expiry.clone(),
        );
        registry.register(
            "info",
            "This edge: id, region and version (value 1)",
            m.info.clone(),
        );
        registry.register(
            "octo_link_up",
            "1 while the octo link to the peer is up",
            m.octo_link_up.clone(),
        );
        registry.register(
            "octo_loss_ratio",
            "Share of QUIC packets lost on the link's current connection",
            m.octo_loss.clone(),
        );
        registry.register(
            "media_packets",
            "RTP packets in from publishers, out to subscribers",
            m.packets.clone(),
        );
        registry.register(
            "octo_rejected",
            "Octo connections refused (certificate, identity, handshake)",
            m.octo_rejected.clone(),
        );
        registry.register(
            "octo_rtt_seconds",
            "Octo link RTT from Ping/Pong",
            m.octo_rtt.clone(),
        );
        registry.register(
            "octo_quic_rtt_seconds",
            "Octo link RTT estimated by QUIC",
            m.octo_quic_rtt.clone(),
        );
        registry.register(
            "octo_media_packets",
            "Octo media datagrams per link",
            m.octo_packets.clone(),
        );
        registry.register(
            "octo_media_bytes",
            "Octo media datagram bytes per link (octo header included)",
            m.octo_bytes.clone(),
        );
        registry.register(
            "octo_control_bytes",
            "Octo control stream bytes per link",
            m.octo_control_bytes.clone(),
        );
        registry.register(
            "octo_datagrams_dropped",
            "Octo datagrams dropped per link, by reason",
            m.octo_dropped.clone(),
        );
        registry.register(
            "octo_fragmented_packets",
            "Octo media packets sent as fragments (out) or reassembled (in) per link",
            m.octo_fragmented.clone(),
        );
        registry.register(
            "octo_media_not_wanted",
            "Packets not sent on a link because the peer did not subscribe",
            m.octo_not_wanted.clone(),
        );
        registry.register(
            "octo_reconnects",
            "Octo reconnections per link",
            m.octo_reconnects.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Copies the octo links' own counters into the exported families.
    fn sample_octo(&self) {
        let Some(node) = self.octo_node.get() else {
            return;
        };
        let catch_up = |c: &Counter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        for link in node.links() {
            let s = link.metrics();
            let peer = link.peer().to_string();
            let traffic = |direction| LinkTraffic {
                peer: peer.clone(),
                direction,
            };
            let reason = |reason: &str| LinkReason {
                peer: peer.clone(),
                reason: reason.to_string(),
            };
            let one = LinkLabel { peer: peer.clone() };
            catch_up(
                &self.octo_packets.get_or_create(&traffic(Direction::Out)),
                s.media_tx_packets,
            );
            catch_up(
                &self.octo_packets.get_or_create(&traffic(Direction::In)),
                s.media_rx_packets,
            );
            catch_up(
                &self.octo_bytes.get_or_create(&traffic(Direction::Out)),
                s.media_tx_bytes,
            );
            catch_up(
                &self.octo_bytes.get_or_create(&traffic(Direction::In)),
                s.media_rx_bytes,
            );
            catch_up(
                &self
                    .octo_control_bytes
                    .get_or_create(&traffic(Direction::Out)),
                s.control_tx_bytes,
            );
            catch_up(
                &self
                    .octo_control_bytes
                    .get_or_create(&traffic(Direction::In)),
                s.control_rx_bytes,
            );
            catch_up(
                &self.octo_dropped.get_or_create(&reason("too_big")),
                s.dropped_too_big,
            );
            catch_up(
                &self.octo_dropped.get_or_create(&reason("congestion")),
                s.dropped_congestion,
            );
            catch_up(
                &self.octo_dropped.get_or_create(&reason("malformed")),
                s.rx_malformed,
            );
            catch_up(
                &self.octo_dropped.get_or_create(&reason("backpressure")),
                s.rx_dropped_backpressure,
            );
            catch_up(
                &self
                    .octo_dropped
                    .get_or_create(&reason("fragment_incomplete")),
                s.fragments_incomplete,
            );
            catch_up(
                &self.octo_fragmented.get_or_create(&traffic(Direction::Out)),
                s.fragmented_tx_packets,
            );
            catch_up(
                &self.octo_fragmented.get_or_create(&traffic(Direction::In)),
                s.reassembled_rx_packets,
            );
            catch_up(
                &self.octo_not_wanted.get_or_create(&one),
                s.media_not_wanted,
            );
            catch_up(&self.octo_reconnects.get_or_create(&one), s.reconnects);
            let up = link.is_up();
            self.octo_link_up.get_or_create(&one).set(i64::from(up));
            if let Some(c) = link.connection_stats().filter(|_| up) {
                self.octo_loss
                    .get_or_create(&one)
                    .set(c.path.lost_packets as f64 / c.path.sent_packets.max(1) as f64);
            }
            if let Some(rtt) = s.quic_rtt {
                self.octo_quic_rtt
                    .get_or_create(&one)
                    .set(rtt.as_secs_f64());
            }
        }
    }

    /// Says who this edge is (`geomesh_edge_info`), its capacity (for
    /// `stress_ratio`) and its certificate's expiry; counters dashboards
    /// and alerts read start at zero rather than missing.
    pub fn describe(&self, edge: &str, region: &str, capacity: u32, cert_not_after: Option<u64>) {
        self.info
            .get_or_create(&InfoLabels {
                edge: edge.to_string(),
                region: region.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        self.capacity
            .store(capacity, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = cert_not_after {
            self.cert_expiry.set(i64::try_from(t).unwrap_or(i64::MAX));
        }
        for r in ["ok", "unauthorized", "full"] {
            Self::count_n(&self.joins, r, 0);
        }
        for r in ["unknown_source", "worker_backlog"] {
            Self::count_n(&self.dropped, r, 0);
        }
        for r in ["relayed", "suppressed"] {
            Self::count_n(&self.keyframe_requests, r, 0);
        }
    }

    /// Counts one occurrence of `reason` in `family`.
    pub fn count(family: &Family<Reason, Counter>, reason: &str) {
        Self::count_n(family, reason, 1);
    }

    /// Counts `n` occurrences of `reason` in `family` (a batch dropped at once).
    pub fn count_n(family: &Family<Reason, Counter>, reason: &str, n: u64) {
        family
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc_by(n);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        if let Some(cpu) = process_cpu_seconds() {
            // A counter that follows /proc: add what it grew by.
            let seen = self.cpu_seconds.get();
            if cpu > seen {
                self.cpu_seconds.inc_by(cpu - seen);
            }
        }
        let capacity = self.capacity.load(std::sync::atomic::Ordering::Relaxed);
        if capacity > 0 {
            self.stress
                .set(self.participants.get().max(0) as f64 / f64::from(capacity));
        }
        self.sample_octo();
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_prefix_and_cpu() {
        let m = Metrics::new();
        m.participants.set(3);
        Metrics::count(&m.dropped, "unknown_source");
        let text = m.encode();
        assert!(text.contains("geomesh_edge_participants 3"), "{text}");
        assert!(
            text.contains("geomesh_edge_datagrams_dropped_total{reason=\"unknown_source\"} 1"),
            "{text}"
        );
        assert!(text.contains("geomesh_edge_process_cpu_seconds"), "{text}");
    }
}
