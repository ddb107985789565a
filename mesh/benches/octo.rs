//! The octo hop against a plain UDP hop, in one run on loopback:
//!
//! 1. **capacity**: 1100-byte RTP packets pushed as fast as the sender can
//!    through one link (octo: `MediaSender::send_media` → the peer's event
//!    channel; UDP: a tokio socket pair), counted at the receiver, per wall
//!    second and per CPU second of the whole process (both ends);
//! 2. **latency**: the same packets paced at 50 % of octo's measured
//!    capacity (and at a conference-like 2 000 packets/s), stamped at send
//!    and read at receive with the same clock: one-way p50/p99, octo minus
//!    UDP = what the octo hop adds;
//! 3. **overhead**: octo header bytes per packet and all bytes QUIC puts on
//!    the wire (`udp_tx.bytes` of the connection) beyond the RTP bytes.
//!
//! Run: `cargo bench -p geomesh-mesh --bench octo` (optionally
//! `-- --secs 5`). Ratios are what to compare across machines.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use geomesh_core::topology::TlsSettings;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId, Topology};
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::tls::Credentials;
use geomesh_mesh::transport::{LinkHandle, MediaSender, OctoConfig, OctoEvent, OctoNode};
use geomesh_mesh::wire::{Codec, Layer, MediaKind, MediaType, SourceId, SourceInfo, Subscription};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;

const PACKET: usize = 1100;

const TOPO: &str = r#"
version: 1
cluster: { name: bench }
tls: { dir: certs }
regions:
  - { id: eu, name: F, location: { lat: 50.1, lon: 8.7 }, provider: local, provider_region: x }
edges:
  - { id: edge-1, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:8081, octo: 127.0.0.1:4431, media_port: 10001, capacity: 10 }
  - { id: edge-2, region: eu, public_ip: 127.0.0.1, http: 127.0.0.1:8082, octo: 127.0.0.1:4432, media_port: 10002, capacity: 10 }
selectors:
  - { id: sel-1, region: eu, api: 127.0.0.1:7001, raft: 127.0.0.1:7101 }
"#;

fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// An RTP packet whose payload starts with the send time (ns since `base`).
fn packet(seq: u16, base: Instant) -> Vec<u8> {
    let mut p = vec![0u8; PACKET];
    p[0] = 0x80;
    p[1] = 111;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&4242u32.to_be_bytes());
    let ns = base.elapsed().as_nanos() as u64;
    p[12..20].copy_from_slice(&ns.to_be_bytes());
    p
}

fn stamp(p: &[u8], base: Instant) -> Duration {
    let sent = u64::from_be_bytes(p[12..20].try_into().expect("8 bytes"));
    base.elapsed().saturating_sub(Duration::from_nanos(sent))
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Something packets can be pushed through and read from.
trait Hop {
    /// Sends; false if the packet was dropped at the sender.
    fn send(&mut self, p: &[u8]) -> bool;
}

struct Octo {
    tx: MediaSender,
}

impl Hop for Octo {
    fn send(&mut self, p: &[u8]) -> bool {
        self.tx
            .send_media(SourceId(1), MediaType::Rtp, 0, false, p)
            .is_ok()
    }
}

struct Udp {
    sock: Arc<UdpSocket>,
    to: SocketAddr,
}

impl Hop for Udp {
    fn send(&mut self, p: &[u8]) -> bool {
        self.sock.try_send_to(p, self.to).is_ok()
    }
}

#[derive(Default)]
struct Sink {
    /// Packets stamped at or after this (ns since `base`) are measured.
    from_ns: AtomicU64,
    collect: AtomicBool,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

impl Sink {
    fn got(&self, p: &[u8], base: Instant) {
        if !self.collect.load(Ordering::Relaxed) {
            return;
        }
        let sent = u64::from_be_bytes(p[12..20].try_into().expect("8 bytes"));
        if sent >= self.from_ns.load(Ordering::Relaxed) {
            let l = stamp(p, base);
            self.latencies.lock().expect("lock").push(l);
        }
    }
}

fn spawn_octo_sink(mut rx: Receiver<OctoEvent>, sink: Arc<Sink>, base: Instant) {
    tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let OctoEvent::Media(m) = e {
                sink.got(&m.packet, base);
            }
        }
    });
}

fn spawn_udp_sink(sock: UdpSocket, sink: Arc<Sink>, base: Instant) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok(n) = sock.recv(&mut buf).await {
            sink.got(&buf[..n], base);
        }
    });
}

/// One paced run: what was offered after the warm-up, what arrived, the
/// process CPU time meanwhile, and sorted one-way latencies.
struct Run {
    offered: u64,
    delivered: u64,
    cpu: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn delivered_ratio(&self) -> f64 {
        self.delivered as f64 / self.offered.max(1) as f64
    }
    fn per_cpu_second(&self) -> f64 {
        self.delivered as f64 / self.cpu.as_secs_f64()
    }
    fn p(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// Sends `rate` packets/s for `secs` (1 ms ticks), measuring all but the
/// first 300 ms.
async fn paced(hop: &mut dyn Hop, sink: &Sink, rate: f64, secs: f64, base: Instant) -> Run {
    let tick = Duration::from_millis(1);
    let per_tick = rate / 1000.0;
    let mut owed = 0.0;
    let mut seq = 0u16;
    let start = tokio::time::Instant::now();
    let warmup = start + Duration::from_millis(300);
    let end = warmup + Duration::from_secs_f64(secs);
    let mut next = start;
    let mut offered = 0u64;
    let mut cpu0 = None;
    sink.latencies.lock().expect("lock").clear();
    sink.collect.store(true, Ordering::Relaxed);
    sink.from_ns.store(u64::MAX, Ordering::Relaxed);
    while next < end {
        let measuring = next >= warmup;
        if measuring && cpu0.is_none() {
            sink.from_ns
                .store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            cpu0 = Some(cpu_time());
        }
        owed += per_tick;
        while owed >= 1.0 {
            hop.send(&packet(seq, base));
            if measuring {
                offered += 1;
            }
            seq = seq.wrapping_add(1);
            owed -= 1.0;
        }
        next += tick;
        tokio::time::sleep_until(next).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cpu = cpu_time() - cpu0.expect("the run is longer than its warm-up");
    sink.collect.store(false, Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *sink.latencies.lock().expect("lock"));
    latencies.sort_unstable();
    Run {
        offered,
        delivered: latencies.len() as u64,
        cpu,
        latencies,
    }
}

fn config(tls: &TlsSettings, id: &str) -> OctoConfig {
    let creds = Credentials::load(tls, id).expect("credentials");
    OctoConfig::new(
        EdgeId::new(id).expect("id"),
        RegionId::new("eu").expect("id"),
        "127.0.0.1:0".parse().expect("addr"),
        creds,
    )
}

async fn octo_pair(dir: &Path) -> (OctoNode, OctoNode, LinkHandle, Receiver<OctoEvent>) {
    let topology = Topology::parse(TOPO, Path::new("."))
        .expect("topology")
        .topology;
    geomesh_core::credentials::init(&topology, dir, true, SystemTime::now()).expect("certs");
    let tls = TlsSettings {
        dir: dir.to_path_buf(),
    };
    let (a, _a_rx) = OctoNode::start(config(&tls, "edge-1")).await.expect("a");
    let (b, mut b_rx) = OctoNode::start(config(&tls, "edge-2")).await.expect("b");
    let ab = a.connect(
        EdgeId::new("edge-2").expect("id"),
        b.local_addr().expect("addr"),
    );
    b.connect(
        EdgeId::new("edge-1").expect("id"),
        a.local_addr().expect("addr"),
    );
    let conference = ConferenceId::new("bench").expect("id");
    let c = conference.clone();
    ab.call(move |l| l.open_conference(&c))
        .await
        .expect("driver")
        .expect("open");
    let info = SourceInfo {
        owner: ParticipantId::new("p").expect("id"),
        kind: MediaKind::Video,
        codec: Codec {
            name: "VP8".into(),
            payload_type: 96,
            clock_rate: 90_000,
        },
        layers: vec![Layer {
            rid: None,
            ssrc: 4242,
            rtx_ssrc: None,
            max_height: 720,
        }],
    };
    ab.call(move |l| l.add_source(&conference, SourceId(1), info))
        .await
        .expect("driver")
        .expect("source");
    while let Some(e) = b_rx.recv().await {
        if let OctoEvent::Link {
            event: LinkEvent::SourceAdded(s),
            ..
        } = e
        {
            b.link(&EdgeId::new("edge-1").expect("id"))
                .expect("link")
                .call(move |l| l.subscribe(s.id, Subscription::BEST))
                .await
                .expect("driver")
                .expect("subscribe");
            break;
        }
    }
    while ab
        .call(|l| l.remote_subscription(SourceId(1)))
        .await
        .expect("driver")
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (a, b, ab, b_rx)
}

fn main() {
    let secs: f64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(secs));
}

async fn run(secs: f64) {
    let base = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, _b, link, b_rx) = octo_pair(dir.path()).await;
    let octo_sink = Arc::new(Sink::default());
    spawn_octo_sink(b_rx, octo_sink.clone(), base);
    let mut octo = Octo {
        tx: link.media_sender(),
    };

    let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let tx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut udp = Udp {
        to: rx.local_addr().expect("addr"),
        sock: Arc::new(tx),
    };
    let udp_sink = Arc::new(Sink::default());
    spawn_udp_sink(rx, udp_sink.clone(), base);

    // 1. Capacity: raise the rate by half while octo delivers ≥ 99 %.
    let stats0 = link.connection_stats().expect("connected");
    let m0 = link.metrics();
    let mut ramp = Vec::new();
    let mut capacity = 0.0;
    let mut rate = 5_000.0;
    while rate <= 320_000.0 {
        let o = paced(&mut octo, &octo_sink, rate, secs, base).await;
        let u = paced(&mut udp, &udp_sink, rate, secs, base).await;
        let ok = o.delivered_ratio() >= 0.99;
        if ok {
            capacity = rate;
        }
        ramp.push((rate, o, u));
        if !ok {
            break;
        }
        rate = (rate * 1.5f64).round();
    }
    let stats1 = link.connection_stats().expect("connected");
    let m1 = link.metrics();

    // 3. Overhead, from the ramp's connection statistics (sender side).
    let tx_packets = m1.media_tx_packets - m0.media_tx_packets;
    let octo_bytes = m1.media_tx_bytes - m0.media_tx_bytes;
    let header = octo_bytes as f64 / tx_packets as f64 - PACKET as f64;
    let udp_bytes = stats1.udp_tx.bytes - stats0.udp_tx.bytes;
    let udp_datagrams = stats1.udp_tx.datagrams - stats0.udp_tx.datagrams;
    let quic = udp_bytes as f64 / tx_packets as f64 - PACKET as f64;
    let mtu = stats1.path.current_mtu;

    // 2. Latency at 50 % of octo's capacity and at a conference-like rate.
    let mut rows = Vec::new();
    for rate in [0.5 * capacity, 2_000.0] {
        let o = paced(&mut octo, &octo_sink, rate, secs, base).await;
        let u = paced(&mut udp, &udp_sink, rate, secs, base).await;
        rows.push((rate, o, u));
    }

    println!(
        "## octo hop vs plain UDP hop (loopback, {PACKET}-byte RTP packets, {secs} s per run)\n"
    );
    println!("### Capacity (paced; capacity = highest rate octo delivers ≥ 99 %)\n");
    println!(
        "| offered pkt/s | octo delivered | octo pkt per CPU-s | UDP delivered | UDP pkt per CPU-s | CPU octo / UDP |"
    );
    println!("|---|---|---|---|---|---|");
    for (rate, o, u) in &ramp {
        println!(
            "| {rate:.0} | {:.1} % | {:.0} | {:.1} % | {:.0} | {:.2} |",
            100.0 * o.delivered_ratio(),
            o.per_cpu_second(),
            100.0 * u.delivered_ratio(),
            u.per_cpu_second(),
            u.per_cpu_second() / o.per_cpu_second()
        );
    }
    println!("\ncapacity: {capacity:.0} pkt/s through one link\n");
    println!("### One-way latency (send stamp → receiver's event, same clock)\n");
    println!(
        "| rate pkt/s | octo p50 | UDP p50 | added p50 | octo p99 | UDP p99 | added p99 | samples |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (rate, o, u) in &rows {
        println!(
            "| {rate:.0} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {} / {} |",
            us(o.p(0.5)),
            us(u.p(0.5)),
            us(o.p(0.5)) - us(u.p(0.5)),
            us(o.p(0.99)),
            us(u.p(0.99)),
            us(o.p(0.99)) - us(u.p(0.99)),
            o.latencies.len(),
            u.latencies.len()
        );
    }
    println!("\n### Framing overhead per {PACKET}-byte RTP packet\n");
    println!("| | bytes | % of {PACKET} |");
    println!("|---|---|---|");
    println!(
        "| octo media header | {header:.2} | {:.2} % |",
        100.0 * header / PACKET as f64
    );
    println!(
        "| QUIC + octo (UDP payload − RTP, incl. ACKs, pings, control) | {quic:.1} | {:.2} % |",
        100.0 * quic / PACKET as f64
    );
    println!(
        "\npath MTU {mtu}; {udp_datagrams} UDP datagrams for {tx_packets} media packets; \
         dropped at the sender: too big {}, congestion {}",
        m1.dropped_too_big - m0.dropped_too_big,
        m1.dropped_congestion - m0.dropped_congestion,
    );
}
