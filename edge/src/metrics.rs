//! Prometheus metrics of one edge (`GET /metrics`).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::router::Kind;

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

/// A label with one free-form reason or result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why.
    pub reason: String,
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
    /// Media frames received from publishers / written to subscribers.
    pub frames: Family<Media, Counter>,
    /// Media payload bytes received / written.
    pub media_bytes: Family<Media, Counter>,
    /// Datagrams dropped, by reason.
    pub dropped: Family<Reason, Counter>,
    /// Join attempts, by result (`ok` or the refusal code).
    pub joins: Family<Reason, Counter>,
    /// Signaling errors sent to clients, by code.
    pub signaling_errors: Family<Reason, Counter>,
    /// Keyframe requests from subscribers: `relayed` or `suppressed` (rate limit).
    pub keyframe_requests: Family<Reason, Counter>,
    /// NACKs the edge sent to publishers (from RTCP stats).
    pub nacks: Counter,
    /// PLIs the edge sent to publishers (from RTCP stats).
    pub plis: Counter,
    /// Fraction of packets lost reported per incoming stream per second (RTCP).
    pub ingress_loss: Histogram,
    /// Process CPU time, seconds (user + system), sampled at scrape.
    pub cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
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
            frames: Family::default(),
            media_bytes: Family::default(),
            dropped: Family::default(),
            joins: Family::default(),
            signaling_errors: Family::default(),
            keyframe_requests: Family::default(),
            nacks: Counter::default(),
            plis: Counter::default(),
            ingress_loss: Histogram::new([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
            cpu_seconds: Gauge::default(),
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
        registry.register("joins", "Join attempts by result", m.joins.clone());
        registry.register(
            "signaling_errors",
            "Signaling errors sent, by code",
            m.signaling_errors.clone(),
        );
        registry.register(
            "keyframe_requests",
            "Subscriber keyframe requests: relayed or suppressed",
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
            "Process CPU time (user+system)",
            m.cpu_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one occurrence of `reason` in `family`.
    pub fn count(family: &Family<Reason, Counter>, reason: &str) {
        family
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        if let Some(cpu) = process_cpu_seconds() {
            self.cpu_seconds.set(cpu);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

/// User + system CPU seconds of this process, from /proc/self/stat.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux we run on.
    Some((utime + stime) / 100.0)
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
