//! The recorder's Prometheus metrics (`GET /metrics`, no credential, as on
//! edges and selectors), encoded per scrape from a snapshot the node's core
//! task takes: the core's counters are cumulative, so nothing is kept here.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::core::CoreCounters;

/// What one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Recordings being written now.
    pub recording: u64,
    /// Their bytes so far.
    pub bytes: u64,
    /// Their sources (files).
    pub sources: u64,
    /// Recordings started since the process started.
    pub started: u64,
    /// Recordings that ended in a write error since the process started.
    pub failed: u64,
    /// The core's counters.
    pub core: CoreCounters,
    /// Octo links up.
    pub links_up: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    recorder: String,
    region: String,
}

fn counter(registry: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, v: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// The text exposition of `s` for recorder `recorder` in `region`.
pub fn encode(recorder: &str, region: &str, s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("geomesh_recorder");
    let info = Family::<InfoLabels, Gauge>::default();
    info.get_or_create(&InfoLabels {
        recorder: recorder.to_string(),
        region: region.to_string(),
    })
    .set(1);
    r.register("info", "Who this recorder is (value 1)", info);
    gauge(
        &mut r,
        "recordings",
        "Recordings being written",
        s.recording,
    );
    gauge(
        &mut r,
        "recording_bytes",
        "Bytes written so far by the recordings being written",
        s.bytes,
    );
    gauge(
        &mut r,
        "recording_sources",
        "Files being written (one per participant's track)",
        s.sources,
    );
    gauge(
        &mut r,
        "octo_links",
        "Octo links to edges that are up",
        s.links_up,
    );
    counter(
        &mut r,
        "recordings_started",
        "Recordings (parts) started",
        s.started,
    );
    counter(
        &mut r,
        "recordings_failed",
        "Recordings stopped by a write error (a full disk)",
        s.failed,
    );
    counter(
        &mut r,
        "packets",
        "RTP packets written into recordings",
        s.core.packets,
    );
    counter(
        &mut r,
        "bad_packets",
        "Packets from octo that did not parse as RTP",
        s.core.bad_packets,
    );
    counter(
        &mut r,
        "unsupported_sources",
        "Sources of recorded conferences in a codec the recorder does not write",
        s.core.unsupported_sources,
    );
    let cpu =
        prometheus_client::metrics::counter::Counter::<f64, std::sync::atomic::AtomicU64>::default(
        );
    cpu.inc_by(geomesh_edge::metrics::process_cpu_seconds().unwrap_or(0.0));
    r.register(
        "process_cpu_seconds",
        "CPU time of this process (user + system)",
        cpu,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    prometheus_client::encoding::text::encode(&mut out, &r).expect("encode metrics");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_metric_with_its_prefix() {
        let s = Snapshot {
            recording: 2,
            bytes: 1234,
            sources: 5,
            started: 3,
            failed: 1,
            core: CoreCounters {
                packets: 99,
                bad_packets: 4,
                unsupported_sources: 1,
            },
            links_up: 6,
        };
        let text = encode("rec-1", "eu", &s);
        for line in [
            "geomesh_recorder_info{recorder=\"rec-1\",region=\"eu\"} 1",
            "geomesh_recorder_recordings 2",
            "geomesh_recorder_recording_bytes 1234",
            "geomesh_recorder_recording_sources 5",
            "geomesh_recorder_octo_links 6",
            "geomesh_recorder_recordings_started_total 3",
            "geomesh_recorder_recordings_failed_total 1",
            "geomesh_recorder_packets_total 99",
            "geomesh_recorder_bad_packets_total 4",
            "geomesh_recorder_unsupported_sources_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(
            text.contains("geomesh_recorder_process_cpu_seconds_total"),
            "{text}"
        );
    }
}
