//! The octo hop against a plain UDP hop, in one run on loopback. Each end
//! runs on its own thread with its own single-threaded tokio runtime,
//! pinned to its own CPU when there are two: one core each side, as two
//! edges' octo drivers would have.
//!
//! 1. **capacity**: 1100-byte RTP packets paced through one link (octo:
//!    `MediaSender::send_media` → the peer's event channel; UDP: a tokio
//!    socket pair), counted at the receiver, per CPU second of both ends
//!    and as each end's share of its core; a ×1.5 ramp, then bisection
//!    between the last rate delivered ≥ 99 % and the first that was not;
//! 2. **latency**: the same packets paced at 50 % of octo's measured
//!    capacity, at 100k packets/s (a trunk of ≈ 1 Gbit/s) and at a
//!    conference-like 2 000 packets/s, stamped at send
//!    and read at receive with the same clock: one-way p50/p99, octo minus
//!    UDP = what the octo hop adds;
//! 3. **overhead**: octo header bytes per packet and all bytes QUIC puts on
//!    the wire (`udp_tx.bytes` of the connection) beyond the RTP bytes.
//!
//! Run: `cargo bench -p geomesh-mesh --bench octo` (optionally
//! `-- --secs 5`, `-- --datagram-buffer BYTES` for quinn's datagram send
//! buffer). Ratios are what to compare across machines.

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

/// CPU time of the calling thread (each end is one thread).
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
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

/// One end of the hop: a thread with its own single-threaded tokio
/// runtime, pinned to `cpu` when given. Work for this end is spawned on
/// `handle` (octo's tasks stay on the runtime that started them).
struct Side {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Side {
    fn start(name: &str, cpu: Option<usize>) -> Side {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                pin(cpu);
                let rt = runtime();
                tx.send(rt.handle().clone()).expect("main waits");
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .expect("thread");
        Side {
            handle: rx.recv().expect("side started"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// This end's thread CPU time, read on its thread.
    async fn cpu(&self) -> Duration {
        self.handle.spawn(async { cpu_time() }).await.expect("task")
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Pins the calling thread to one CPU (best effort).
fn pin(cpu: Option<usize>) {
    use nix::sched::{CpuSet, sched_setaffinity};
    use nix::unistd::Pid;
    let Some(cpu) = cpu else { return };
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_err() {
        eprintln!("could not pin to CPU {cpu}; running unpinned");
    }
}

/// One paced run: what was offered after the warm-up, what arrived, each
/// end's CPU time meanwhile, and sorted one-way latencies.
struct Run {
    offered: u64,
    delivered: u64,
    /// Sending end, receiving end.
    cpu: [Duration; 2],
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn delivered_ratio(&self) -> f64 {
        self.delivered as f64 / self.offered.max(1) as f64
    }
    fn per_cpu_second(&self) -> f64 {
        self.delivered as f64 / (self.cpu[0] + self.cpu[1]).as_secs_f64()
    }
    /// The busier end's share of its core.
    fn core_share(&self) -> f64 {
        self.cpu[0].max(self.cpu[1]).as_secs_f64() / self.wall.as_secs_f64()
    }
    fn p(&self, q: f64) -> Duration {
        percentile(&self.latencies, q)
    }
}

/// Sends `rate` packets/s for `secs` (1 ms ticks) from this thread,
/// measuring all but the first 300 ms.
async fn paced(
    hop: &mut dyn Hop,
    sink: &Sink,
    rx: &Side,
    rate: f64,
    secs: f64,
    base: Instant,
) -> Run {
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
            cpu0 = Some((cpu_time(), rx.cpu().await, Instant::now()));
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
    let (tx0, rx0, t0) = cpu0.expect("the run is longer than its warm-up");
    let cpu = [cpu_time() - tx0, rx.cpu().await - rx0];
    let wall = t0.elapsed();
    sink.collect.store(false, Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *sink.latencies.lock().expect("lock"));
    latencies.sort_unstable();
    Run {
        offered,
        delivered: latencies.len() as u64,
        cpu,
        wall,
        latencies,
    }
}

fn config(tls: &TlsSettings, id: &str, datagram_buffer: Option<usize>) -> OctoConfig {
    let creds = Credentials::load(tls, id).expect("credentials");
    let mut c = OctoConfig::new(
        EdgeId::new(id).expect("id"),
        RegionId::new("eu").expect("id"),
        "127.0.0.1:0".parse().expect("addr"),
        creds,
    );
    if let Some(b) = datagram_buffer {
        c.datagram_send_buffer = b;
    }
    c
}

/// Node `edge-1` on this thread, `edge-2` on `rx`'s, one link between them
/// carrying one subscribed source; `edge-2` hands its media to `sink`.
async fn octo_pair(
    dir: &Path,
    rx: &Side,
    sink: Arc<Sink>,
    base: Instant,
    datagram_buffer: Option<usize>,
) -> (OctoNode, LinkHandle) {
    let topology = Topology::parse(TOPO, Path::new("."))
        .expect("topology")
        .topology;
    geomesh_core::credentials::init(&topology, dir, true, SystemTime::now()).expect("certs");
    let tls = TlsSettings {
        dir: dir.to_path_buf(),
    };
    let (a, _a_rx) = OctoNode::start(config(&tls, "edge-1", datagram_buffer))
        .await
        .expect("a");
    let a_addr = a.local_addr().expect("addr");
    let (b_addr, b_addr_rx) = tokio::sync::oneshot::channel();
    let b_tls = tls.clone();
    // The receiving end: everything of edge-2 runs on its thread.
    rx.handle.spawn(async move {
        let (b, mut events) = OctoNode::start(config(&b_tls, "edge-2", datagram_buffer))
            .await
            .expect("b");
        b_addr
            .send(b.local_addr().expect("addr"))
            .expect("main waits");
        b.connect(EdgeId::new("edge-1").expect("id"), a_addr);
        while let Some(e) = events.recv().await {
            match e {
                OctoEvent::Link {
                    event: LinkEvent::SourceAdded(s),
                    ..
                } => {
                    b.link(&EdgeId::new("edge-1").expect("id"))
                        .expect("link")
                        .call(move |l| l.subscribe(s.id, Subscription::BEST))
                        .await
                        .expect("driver")
                        .expect("subscribe");
                }
                OctoEvent::Media(m) => sink.got(&m.packet, base),
                _ => {}
            }
        }
        drop(b);
    });
    let ab = a.connect(
        EdgeId::new("edge-2").expect("id"),
        b_addr_rx.await.expect("edge-2 started"),
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
    // Bounded: the link is up within its handshake time-out.
    for _ in 0..2_000 {
        if ab
            .call(|l| l.remote_subscription(SourceId(1)))
            .await
            .expect("driver")
            .is_some()
        {
            return (a, ab);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("edge-2 did not subscribe within 10 s");
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
}

fn main() {
    let secs: f64 = arg("--secs").unwrap_or(3.0);
    let datagram_buffer: Option<usize> = arg("--datagram-buffer");
    let two = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    // The receiving end on CPU 1, the sending end (this thread) on CPU 0.
    let rx = Side::start("octo-rx", two.then_some(1));
    pin(two.then_some(0));
    runtime().block_on(run(secs, datagram_buffer, &rx, two));
}

async fn run(secs: f64, datagram_buffer: Option<usize>, rx: &Side, pinned: bool) {
    let base = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let octo_sink = Arc::new(Sink::default());
    let (_a, link) = octo_pair(dir.path(), rx, octo_sink.clone(), base, datagram_buffer).await;
    let mut octo = Octo {
        tx: link.media_sender(),
    };

    let udp_sink = Arc::new(Sink::default());
    let sink = udp_sink.clone();
    let to = rx
        .handle
        .spawn(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            let addr = sock.local_addr().expect("addr");
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok(n) = sock.recv(&mut buf).await {
                    sink.got(&buf[..n], base);
                }
            });
            addr
        })
        .await
        .expect("udp receiver");
    let tx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut udp = Udp {
        to,
        sock: Arc::new(tx),
    };

    // 1. Capacity: raise the rate by half while octo delivers ≥ 99 %, then
    //    bisect between the last rate that did and the first that did not.
    let stats0 = link.connection_stats().expect("connected");
    let m0 = link.metrics();
    let mut ramp = Vec::new();
    let mut capacity = 0.0;
    let mut failed: Option<f64> = None;
    let mut rate = 5_000.0;
    for _ in 0..20 {
        let o = paced(&mut octo, &octo_sink, rx, rate, secs, base).await;
        let u = paced(&mut udp, &udp_sink, rx, rate, secs, base).await;
        if o.delivered_ratio() >= 0.99 {
            capacity = rate;
        } else {
            failed = Some(failed.map_or(rate, |f| f.min(rate)));
        }
        ramp.push((rate, o, u));
        rate = match failed {
            None if rate * 1.5 <= 320_000.0 => (rate * 1.5f64).round(),
            None => break,
            Some(f) if f - capacity > 0.04 * capacity => ((capacity + f) / 2.0).round(),
            Some(_) => break,
        };
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

    // 2. Latency at 50 % of octo's capacity, at issue #19's trunk target
    //    (100k packets/s, ≈ 1 Gbit/s) and at a conference-like rate.
    let mut rows = Vec::new();
    for rate in [0.5 * capacity, 100_000.0, 2_000.0] {
        let o = paced(&mut octo, &octo_sink, rx, rate, secs, base).await;
        let u = paced(&mut udp, &udp_sink, rx, rate, secs, base).await;
        rows.push((rate, o, u));
    }

    println!(
        "## octo hop vs plain UDP hop (loopback, {PACKET}-byte RTP packets, {secs} s per run, \
         each end one thread{}, datagram send buffer {} bytes)\n",
        if pinned { " pinned to its own CPU" } else { "" },
        datagram_buffer.map_or_else(|| "default".to_string(), |b| b.to_string()),
    );
    println!(
        "### Capacity (paced; capacity = highest rate octo delivers ≥ 99 %; \
         core = the busier end's share of its core)\n"
    );
    println!(
        "| offered pkt/s | octo delivered | octo pkt per CPU-s | octo core | UDP delivered | UDP pkt per CPU-s | UDP core | CPU octo / UDP |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (rate, o, u) in &ramp {
        println!(
            "| {rate:.0} | {:.1} % | {:.0} | {:.2} | {:.1} % | {:.0} | {:.2} | {:.2} |",
            100.0 * o.delivered_ratio(),
            o.per_cpu_second(),
            o.core_share(),
            100.0 * u.delivered_ratio(),
            u.per_cpu_second(),
            u.core_share(),
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
         dropped at the sender: too big {}, congestion {}; QUIC during the ramp: \
         {} packets lost, {} congestion events, congestion window at the end {} bytes",
        m1.dropped_too_big - m0.dropped_too_big,
        m1.dropped_congestion - m0.dropped_congestion,
        stats1.path.lost_packets - stats0.path.lost_packets,
        stats1.path.congestion_events - stats0.path.congestion_events,
        stats1.path.cwnd,
    );
}
