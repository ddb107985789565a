//! The figures of one run, built from what the sessions handed back, as
//! JSON (`--json-out`) and as text.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::accounting::{RecvStats, SentStats, StreamLoss, Traffic, stream_loss};
use crate::plan::{SessionPlan, SessionResult};
use crate::stamp::{Kind, StreamKey};

/// What was run.
#[derive(Debug, Clone, Serialize)]
pub struct RunShape {
    /// `edge` or `relay`.
    pub target: String,
    /// Edge base URLs, or the relay's address.
    pub endpoints: Vec<String>,
    /// Conferences.
    pub conferences: u32,
    /// Publishers per conference.
    pub publishers: u32,
    /// Subscribers per conference.
    pub subscribers: u32,
    /// Three simulcast layers.
    pub simulcast: bool,
    /// Top video layer bitrate.
    pub video_kbps: u32,
    /// Opus sent too.
    pub audio: bool,
    /// Publishers per conference that talk (the others send Opus DTX).
    pub talkers: Option<u32>,
    /// Tile height every session asked for (gallery view).
    pub tile_height: Option<u16>,
    /// Speaker view: the stage's height.
    pub stage_height: Option<u16>,
    /// Seconds publishers sent.
    pub publish_s: f64,
    /// Seconds counted (publishing plus the drain that follows).
    pub window_s: f64,
}

/// Sessions by outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sessions {
    /// Planned.
    pub planned: u64,
    /// Ever connected (ICE + DTLS up).
    pub connected: u64,
    /// Connected and negotiated every remote track before publishing began.
    pub ready: u64,
    /// Failed (never connected, or ended early).
    pub failed: u64,
    /// Failure reasons and counts.
    pub failures: BTreeMap<String, u64>,
}

/// Loss of one kind, all streams and receivers together.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Loss {
    /// Frames receivers should have got.
    pub expected: u64,
    /// Distinct frames they got.
    pub received: u64,
    /// 1 − received ÷ expected.
    pub ratio: f64,
    /// The worst stream's ratio.
    pub worst_stream_ratio: f64,
    /// (receiver, stream) pairs with nothing received at all.
    pub receivers_missing: u64,
}

/// One-way delay quantiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Delay {
    /// Frames timed.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Figures of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindFigures {
    /// Frames written by publishers.
    pub sent_frames: u64,
    /// Frame bytes written.
    pub sent_bytes: u64,
    /// RTP datagrams publishers sent.
    pub sent_packets: u64,
    /// Bytes of those datagrams (with SRTP overhead on the edge path).
    pub sent_datagram_bytes: u64,
    /// Frames received, all receivers.
    pub received_frames: u64,
    /// Frame bytes received.
    pub received_bytes: u64,
    /// RTP datagrams received, all receivers.
    pub received_packets: u64,
    /// Bytes of those datagrams.
    pub received_datagram_bytes: u64,
    /// Received frame bitrate, all receivers together, kbit/s.
    pub received_kbps: f64,
    /// Loss.
    pub loss: Loss,
    /// One-way delay.
    pub delay_ms: Delay,
}

/// The forwarding side: an edge (or several), or the bare relay.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Server {
    /// CPU seconds used during the window (all edges; the relay thread).
    pub cpu_seconds: Option<f64>,
    /// RTP packets the receivers got during the window (what was forwarded).
    pub forwarded_packets: u64,
    /// `forwarded_packets ÷ cpu_seconds`.
    pub packets_per_cpu_second: Option<f64>,
    /// Datagrams the server itself counted out (edges: media port, incl. RTCP/STUN/DTLS).
    pub datagrams_out: Option<f64>,
    /// Datagrams the server counted in.
    pub datagrams_in: Option<f64>,
    /// Datagrams the kernel dropped at the server's socket (receive buffer
    /// full) during the window; absent when the server is on another host.
    pub socket_drops: Option<u64>,
}

/// Per-stream loss, for the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct StreamFigures {
    /// Publisher number.
    pub source: u32,
    /// Audio or video.
    pub kind: Kind,
    /// Simulcast layer.
    pub layer: u8,
    /// Frames the publisher sent.
    pub sent: u32,
    /// Loss over its receivers.
    #[serde(flatten)]
    pub loss: StreamLoss,
}

/// Everything about one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was run.
    pub run: RunShape,
    /// Sessions.
    pub sessions: Sessions,
    /// Video.
    pub video: KindFigures,
    /// Audio (when sent).
    pub audio: Option<KindFigures>,
    /// The forwarding side.
    pub server: Server,
    /// CPU seconds of the load generator's clients during the window.
    pub loadgen_cpu_seconds: f64,
    /// Frames the load generator skipped because it ran late (it was starved).
    pub loadgen_skipped_frames: u64,
    /// Datagrams the kernel dropped at the load generator's own sockets.
    pub client_socket_drops: u64,
    /// Frames without a readable stamp.
    pub bad_frames: u64,
    /// Writes the WebRTC stack refused.
    pub write_errors: u64,
    /// Mean video layers a receiver got per source (1 without simulcast; with
    /// simulcast, 1 when the server selects a layer, 3 when it forwards all).
    pub video_layers_per_receiver: f64,
    /// Per stream.
    pub streams: Vec<StreamFigures>,
    /// Where the selector placed each session (runs through a selector).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub placed: Vec<Placed>,
}

/// One session's placement, in a run through a selector.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    /// Session name (`pub0`, `sub1`, …).
    pub session: String,
    /// Conference number.
    pub conference: usize,
    /// The edge the selector chose.
    pub edge: String,
    /// Its region.
    pub region: String,
    /// Where the session said it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<geomesh_core::GeoPoint>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    /// Builds the report from the plans and what the sessions returned.
    pub fn build(
        run: RunShape,
        plans: &[SessionPlan],
        results: &[SessionResult],
        server: Server,
        loadgen_cpu_seconds: f64,
    ) -> Report {
        let mut sessions = Sessions {
            planned: plans.len() as u64,
            ..Default::default()
        };
        let mut sent_streams: BTreeMap<StreamKey, u32> = BTreeMap::new();
        let (mut sent, mut tx, mut rx) =
            (SentStats::default(), Traffic::default(), Traffic::default());
        let mut recv = RecvStats::default();
        let mut skipped = 0;
        let mut receivers = Vec::new();
        for r in results {
            sessions.connected += u64::from(r.connected);
            if let Some(f) = &r.failure {
                sessions.failed += 1;
                // Keep the reason's kind, not its details (bounded label set).
                let key = f.split(':').next().unwrap_or(f).to_string();
                *sessions.failures.entry(key).or_default() += 1;
            }
            sent.merge(&r.sent);
            tx.merge(&r.tx);
            rx.merge(&r.rx);
            recv.merge_totals(&r.recv);
            skipped += r.skipped_frames;
            for (k, n) in &r.sent_streams {
                sent_streams.insert(*k, *n);
            }
            if r.connected
                && let Some(p) = plans.get(r.index)
            {
                receivers.push((&r.recv, p.receives.as_slice()));
            }
        }
        let (mut pairs, mut layers) = (0u64, 0u64);
        for (recv, sources) in &receivers {
            for src in sources.iter() {
                pairs += 1;
                layers += recv
                    .streams
                    .keys()
                    .filter(|k| k.source == *src && k.kind == Kind::Video)
                    .count() as u64;
            }
        }
        let video_layers_per_receiver = if pairs == 0 {
            0.0
        } else {
            layers as f64 / pairs as f64
        };
        let losses = stream_loss(receivers, &sent_streams, run.simulcast);
        let publish_s = run.publish_s.max(1e-9);
        let kind = |k: Kind| -> KindFigures {
            let i = k.index();
            let mut loss = Loss::default();
            for (_, l) in losses.iter().filter(|(key, _)| key.kind == k) {
                loss.expected += l.expected;
                loss.received += l.received;
                loss.receivers_missing += l.receivers_missing;
                loss.worst_stream_ratio = loss.worst_stream_ratio.max(l.ratio());
            }
            loss.ratio = StreamLoss {
                expected: loss.expected,
                received: loss.received,
                receivers_missing: 0,
            }
            .ratio();
            let h = &recv.delay[i];
            KindFigures {
                sent_frames: sent.frames[i],
                sent_bytes: sent.bytes[i],
                sent_packets: tx.packets[i],
                sent_datagram_bytes: tx.bytes[i],
                received_frames: recv.frames[i],
                received_bytes: recv.bytes[i],
                received_packets: rx.packets[i],
                received_datagram_bytes: rx.bytes[i],
                received_kbps: recv.bytes[i] as f64 * 8.0 / publish_s / 1000.0,
                loss,
                delay_ms: Delay {
                    count: h.count(),
                    p50: ms(h.quantile(0.50)),
                    p95: ms(h.quantile(0.95)),
                    p99: ms(h.quantile(0.99)),
                    max: ms(h.max()),
                    mean: h.mean() / 1000.0,
                },
            }
        };
        let video = kind(Kind::Video);
        let audio = run.audio.then(|| kind(Kind::Audio));
        let mut server = server;
        server.forwarded_packets = rx.media_packets();
        server.packets_per_cpu_second = server
            .cpu_seconds
            .filter(|c| *c > 0.0)
            .map(|c| server.forwarded_packets as f64 / c);
        let streams = losses
            .iter()
            .map(|(k, l)| StreamFigures {
                source: k.source,
                kind: k.kind,
                layer: k.layer,
                sent: sent_streams.get(k).copied().unwrap_or(0),
                loss: *l,
            })
            .collect();
        Report {
            run,
            sessions,
            video,
            audio,
            server,
            loadgen_cpu_seconds,
            loadgen_skipped_frames: skipped,
            client_socket_drops: 0,
            bad_frames: recv.bad_frames,
            write_errors: sent.write_errors,
            video_layers_per_receiver,
            streams,
            placed: Vec::new(),
        }
    }
}

/// Edge against the relay floor.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Comparison {
    /// Edge forwarded packets per CPU-second.
    pub edge_packets_per_cpu_second: Option<f64>,
    /// Relay forwarded packets per CPU-second.
    pub relay_packets_per_cpu_second: Option<f64>,
    /// relay ÷ edge: how many times more CPU the edge spends per packet.
    pub edge_cost_vs_floor: Option<f64>,
    /// Video p50 one-way delay, edge − relay, ms.
    pub video_p50_delay_over_floor_ms: f64,
    /// Video p99 one-way delay, edge − relay, ms.
    pub video_p99_delay_over_floor_ms: f64,
}

impl Comparison {
    /// Compares two runs of the same shape.
    pub fn of(edge: &Report, relay: &Report) -> Comparison {
        let e = edge.server.packets_per_cpu_second;
        let r = relay.server.packets_per_cpu_second;
        Comparison {
            edge_packets_per_cpu_second: e,
            relay_packets_per_cpu_second: r,
            edge_cost_vs_floor: e.zip(r).map(|(e, r)| r / e),
            video_p50_delay_over_floor_ms: edge.video.delay_ms.p50 - relay.video.delay_ms.p50,
            video_p99_delay_over_floor_ms: edge.video.delay_ms.p99 - relay.video.delay_ms.p99,
        }
    }
}

/// Everything a `geomesh loadgen` invocation measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The run against the edges.
    pub edge: Option<Report>,
    /// The same load through the bare relay.
    pub relay_floor: Option<Report>,
    /// Edge against floor, when both ran.
    pub comparison: Option<Comparison>,
    /// The run against a peer SFU (`--janus`, `--mediasoup`), instead of the edges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Report>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.digits$}"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.run;
        writeln!(
            f,
            "{} ({}): {} conference(s) × {} publisher(s) + {} subscriber(s), VP8 {} kbit/s{}{}{}{}, {:.1} s publishing, {:.1} s counted",
            r.target,
            r.endpoints.join(", "),
            r.conferences,
            r.publishers,
            r.subscribers,
            r.video_kbps,
            if r.simulcast { " simulcast q/h/f" } else { "" },
            if r.audio { " + Opus" } else { "" },
            match r.talkers {
                Some(k) if r.audio => format!(" ({k} talking per conference, the others DTX)"),
                _ => String::new(),
            },
            match (r.stage_height, r.tile_height) {
                (Some(s), Some(t)) => format!(", speaker view ({s}-px stage, {t}-px tiles)"),
                (Some(s), None) => format!(", speaker view ({s}-px stage)"),
                (None, Some(t)) => format!(", {t}-px tiles"),
                (None, None) => String::new(),
            },
            r.publish_s,
            r.window_s,
        )?;
        let s = &self.sessions;
        write!(
            f,
            "  sessions: {} of {} connected, {} ready, {} failed",
            s.connected, s.planned, s.ready, s.failed
        )?;
        for (why, n) in &s.failures {
            write!(f, " [{why}: {n}]")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  {:<6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "kind",
            "sent fr",
            "sent pkts",
            "recv fr",
            "recv pkts",
            "recv kbps",
            "loss %",
            "worst %"
        )?;
        let kinds = [("video", Some(&self.video)), ("audio", self.audio.as_ref())];
        for (name, k) in kinds {
            let Some(k) = k else { continue };
            writeln!(
                f,
                "  {:<6} {:>10} {:>10} {:>10} {:>10} {:>10.0} {:>10.3} {:>10.3}",
                name,
                k.sent_frames,
                k.sent_packets,
                k.received_frames,
                k.received_packets,
                k.received_kbps,
                k.loss.ratio * 100.0,
                k.loss.worst_stream_ratio * 100.0,
            )?;
        }
        for (name, k) in kinds {
            let Some(k) = k else { continue };
            let d = &k.delay_ms;
            writeln!(
                f,
                "  {name} one-way delay ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}  ({} frames)",
                d.p50, d.p95, d.p99, d.max, d.count
            )?;
        }
        if r.simulcast {
            writeln!(
                f,
                "  simulcast: receivers got {:.2} video layers per source (1 = the server selects a layer)",
                self.video_layers_per_receiver
            )?;
        }
        let sv = &self.server;
        writeln!(
            f,
            "  {}: {} CPU-s, {} packets forwarded → {} packets per CPU-second",
            r.target,
            opt(sv.cpu_seconds, 2),
            sv.forwarded_packets,
            opt(sv.packets_per_cpu_second, 0),
        )?;
        if let Some(d) = sv.socket_drops {
            writeln!(
                f,
                "  socket drops (receive buffer full): {} at the {}, {} at the clients",
                d, r.target, self.client_socket_drops
            )?;
        }
        write!(f, "  loadgen: {:.2} CPU-s", self.loadgen_cpu_seconds)?;
        if self.loadgen_skipped_frames > 0 {
            write!(
                f,
                ", {} frames skipped (loadgen late, or a session not yet connected)",
                self.loadgen_skipped_frames
            )?;
        }
        if self.write_errors > 0 {
            write!(f, ", {} frame writes refused", self.write_errors)?;
        }
        if self.bad_frames > 0 {
            write!(f, ", {} frames without a stamp", self.bad_frames)?;
        }
        writeln!(f)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.edge {
            write!(f, "{e}")?;
        }
        if let Some(r) = &self.relay_floor {
            write!(f, "{r}")?;
        }
        if let Some(p) = &self.peer {
            write!(f, "{p}")?;
        }
        if let Some(c) = &self.comparison {
            writeln!(
                f,
                "edge vs relay floor: {} vs {} packets per CPU-second → the edge spends {}× the floor's CPU per packet; video delay over floor: p50 {:+.2} ms, p99 {:+.2} ms",
                opt(c.edge_packets_per_cpu_second, 0),
                opt(c.relay_packets_per_cpu_second, 0),
                opt(c.edge_cost_vs_floor, 1),
                c.video_p50_delay_over_floor_ms,
                c.video_p99_delay_over_floor_ms,
            )?;
        }
        Ok(())
    }
}
