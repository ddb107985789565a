//! Multi-core: media workers, one per core, each owning its sessions.
//!
//! An edge runs `N` media loops ([`crate::sfu::Sfu`] in a [`crate::media`] worker task), each a tokio
//! task that owns the `Rtc`s, routing table and octo state of its sessions;
//! the multi-threaded runtime spreads them over the cores. A conference
//! starts whole on one worker (mediasoup's model: its packets never cross
//! workers, no lock, no shared state) and, once large, spreads over the
//! workers ([`crate::placement`]), which then join it over in-process
//! sibling links the way octo joins edges ([`crate::sibling`]): a packet
//! for a subscriber on another worker crosses once, in that worker's batch
//! of the round. What is shared:
//!
//! - **The media port.** One task reads the UDP socket and hands each
//!   datagram, in batches, to the worker that owns its session
//!   ([`Demux`]: remote address → worker, and for a new address the STUN
//!   username's ufrag → worker). Workers send on the same socket directly,
//!   once per round ([`crate::socket::Outbox`]).
//! - **The octo node.** One task reads its events and hands each to the
//!   workers it concerns: about my sources, to the source's worker (its id
//!   encodes it); the peer's endpoints and sources, to every worker; a
//!   remote source's packets, to the workers subscribed to it
//!   ([`crate::linkshare`]).
//!
//! Ids encode their worker: session keys and source ids are `worker + k·N`,
//! so a command or an octo event about one finds its worker without a table.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use quinn_udp::RecvMeta;
use tokio::sync::mpsc;
use tracing::debug;

use geomesh_core::ConferenceId;
use geomesh_mesh::link::LinkEvent;
use geomesh_mesh::transport::OctoEvent;

use crate::lab::{AccessLab, DelayLine, Held};
use crate::metrics::{Direction, Metrics, Traffic};
use crate::socket::{MediaSocket, RECV_BATCH};

/// Bytes of datagram storage allocated at once by the reader.
const POOL: usize = 64 * 1024;

/// Batches queued per worker before the reader drops (and counts) them.
const WORKER_QUEUE: usize = 1024;

/// One datagram for a worker.
#[derive(Debug)]
pub struct Datagram {
    /// Its bytes: a slice of the reader's pool (one allocation per ~64 KiB
    /// of datagrams, not one per datagram).
    pub data: bytes::Bytes,
    /// Who sent it.
    pub src: SocketAddr,
}

/// Which worker owns which remote address and ICE ufrag. Written when a
/// session starts, learns an address or ends; read per datagram.
#[derive(Debug, Default)]
pub struct Demux {
    by_addr: RwLock<HashMap<SocketAddr, usize>>,
    by_ufrag: RwLock<HashMap<String, usize>>,
    /// The emulated-WAN lab's access delays (`None` outside the lab).
    lab: Option<Arc<AccessLab>>,
}

impl Demux {
    /// A demux that also keeps the lab's access delays.
    pub fn with_lab(lab: Option<Arc<AccessLab>>) -> Self {
        Self {
            lab,
            ..Self::default()
        }
    }

    /// The lab's access delays, when the lab is on.
    pub fn lab(&self) -> Option<&Arc<AccessLab>> {
        self.lab.as_ref()
    }

    /// The lab's one-way delay to and from `addr` (`None` outside the lab
    /// or for a session the selector did not locate).
    pub fn lab_delay(&self, addr: &SocketAddr) -> Option<std::time::Duration> {
        self.lab.as_ref()?.delay(addr)
    }

    /// A session's ICE ufrag belongs to `worker`.
    pub fn add_ufrag(&self, ufrag: &str, worker: usize) {
        self.by_ufrag
            .write()
            .expect("demux lock poisoned")
            .insert(ufrag.to_string(), worker);
    }

    /// A remote address belongs to `worker`.
    pub fn add_addr(&self, addr: SocketAddr, worker: usize) {
        self.by_addr
            .write()
            .expect("demux lock poisoned")
            .insert(addr, worker);
    }

    /// A session ended.
    pub fn remove(&self, ufrag: &str, addrs: &[SocketAddr]) {
        self.by_ufrag
            .write()
            .expect("demux lock poisoned")
            .remove(ufrag);
        let mut by_addr = self.by_addr.write().expect("demux lock poisoned");
        for a in addrs {
            by_addr.remove(a);
        }
        if let Some(lab) = &self.lab {
            lab.forget(ufrag, addrs);
        }
    }

    /// The worker for a datagram, if any.
    pub(crate) fn worker(&self, data: &[u8], src: &SocketAddr) -> Option<usize> {
        if let Some(w) = self.by_addr.read().expect("demux lock poisoned").get(src) {
            return Some(*w);
        }
        let ufrag = geomesh_core::stun::local_ufrag(data)?;
        let w = self
            .by_ufrag
            .read()
            .expect("demux lock poisoned")
            .get(ufrag)
            .copied()?;
        // A session's first datagram from an address is its STUN request.
        if let Some(lab) = &self.lab {
            lab.learn(ufrag, *src);
        }
        Some(w)
    }
}

/// A batch of datagrams for one worker.
pub type Batch = Vec<Datagram>;

/// Creates the per-worker datagram queues (each message is a batch).
pub fn datagram_queues(n: usize) -> (Vec<mpsc::Sender<Batch>>, Vec<mpsc::Receiver<Batch>>) {
    (0..n).map(|_| mpsc::channel(WORKER_QUEUE)).unzip()
}

/// `recvmmsg` calls per wakeup at most (each takes up to
/// [`RECV_BATCH`] datagrams): then the batches go to the workers, one
/// hand-over (and one worker wakeup) per batch instead of per datagram.
const READS_PER_WAKEUP: usize = 2;

/// Bytes per receive slot: room for a GRO run (segments the kernel
/// coalesced from one sender), not only for one datagram.
const SLOT: usize = 64 * 1024;

/// Reads the media socket and hands datagrams to their workers.
pub async fn read_media_socket(
    socket: Arc<MediaSocket>,
    demux: Arc<Demux>,
    workers: Vec<mpsc::Sender<Batch>>,
    metrics: Arc<Metrics>,
    lab: Option<DelayLine>,
) {
    let mut slots = vec![vec![0u8; SLOT]; RECV_BATCH];
    let mut meta = vec![RecvMeta::default(); RECV_BATCH];
    let mut pool = bytes::BytesMut::with_capacity(POOL);
    let mut batches: Vec<Batch> = (0..workers.len()).map(|_| Vec::new()).collect();
    let inbound = Traffic {
        direction: Direction::In,
    };
    let datagrams = metrics.datagrams.get_or_create(&inbound).clone();
    let mut probes = ProbeBudget::default();
    let bytes_in = metrics.bytes.get_or_create(&inbound).clone();
    loop {
        if let Err(e) = socket.readable().await {
            debug!("media socket: {e}");
            continue;
        }
        // Everything queued now, bounded: then hand over and wait again.
        for _ in 0..READS_PER_WAKEUP {
            // On the stack: no allocation per read.
            let mut free = slots.iter_mut();
            let mut bufs: [IoSliceMut<'_>; RECV_BATCH] = std::array::from_fn(|_| {
                IoSliceMut::new(free.next().expect("one slot per receive buffer"))
            });
            let n = match socket.recv_batch(&mut bufs, &mut meta) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port-unreachable from a departed client surfaces here.
                    debug!("media socket recv: {e}");
                    continue;
                }
            };
            for (m, slot) in meta[..n].iter().zip(&slots) {
                // A GRO run is several datagrams of `stride` bytes.
                for data in slot[..m.len].chunks(m.stride.max(1)) {
                    datagrams.inc();
                    bytes_in.inc_by(data.len() as u64);
                    let Some(w) = demux.worker(data, &m.addr) else {
                        // A STUN client (geomesh doctor) checking this address.
                        if let Some(reply) = geomesh_core::stun::binding_response(data, m.addr) {
                            let answered = probes.allow(std::time::Instant::now())
                                && socket.send(m.addr, &reply, None).is_ok();
                            Metrics::count(
                                &metrics.stun_probes,
                                if answered { "answered" } else { "limited" },
                            );
                            continue;
                        }
                        Metrics::count(&metrics.dropped, "unknown_source");
                        continue;
                    };
                    if pool.capacity() < data.len() {
                        pool = bytes::BytesMut::with_capacity(POOL.max(data.len()));
                    }
                    pool.extend_from_slice(data);
                    let datagram = Datagram {
                        data: pool.split().freeze(),
                        src: m.addr,
                    };
                    if let Some(line) = &lab
                        && let Some(one_way) = demux.lab_delay(&m.addr)
                    {
                        line.hold(
                            one_way,
                            Held::In {
                                worker: w,
                                datagram,
                            },
                        );
                        continue;
                    }
                    batches[w].push(datagram);
                }
            }
            if n < RECV_BATCH {
                break;
            }
        }
        for (w, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            match workers[w].try_send(std::mem::take(batch)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(lost)) => {
                    // Counted per datagram, like every other drop reason.
                    Metrics::count_n(&metrics.dropped, "worker_backlog", lost.len() as u64);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// Answers to plain STUN binding requests: a few a second at most, so the
/// media port is no reflector worth using.
struct ProbeBudget {
    tokens: f64,
    at: Option<std::time::Instant>,
}

impl Default for ProbeBudget {
    fn default() -> Self {
        Self {
            tokens: Self::BURST,
            at: None,
        }
    }
}

impl ProbeBudget {
    const RATE: f64 = 20.0;
    const BURST: f64 = 40.0;

    fn allow(&mut self, now: std::time::Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * Self::RATE;
            self.tokens = (self.tokens + refill).min(Self::BURST);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The worker that owns a conference (FNV-1a of its id: stable across runs).
pub fn worker_of_conference(conference: &ConferenceId, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in conference.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % workers as u64) as usize
}

/// The worker encoded in a session key or source id.
pub fn worker_of_id(id: u64, workers: usize) -> usize {
    (id % workers as u64) as usize
}

/// Hands octo events to the workers they concern: events about my sources
/// to the source's worker; the peer's state (endpoints, sources) to every
/// worker, since any may host the conference ([`crate::placement`]); a
/// remote source's packets to the workers that subscribed to it.
pub async fn dispatch_octo(
    mut events: mpsc::Receiver<OctoEvent>,
    workers: Vec<mpsc::Sender<OctoEvent>>,
    share: Arc<crate::linkshare::LinkShare>,
) {
    let n = workers.len();
    let mut wanting = Vec::with_capacity(n);
    while let Some(ev) = events.recv().await {
        if let OctoEvent::Media(m) = &ev {
            wanting.clear();
            share.wanting(&m.source.edge, m.source.id, &mut wanting);
            // Media is dropped rather than queued behind a busy worker.
            match wanting.as_slice() {
                [] => {}
                [w] => {
                    let _ = workers[*w].try_send(ev);
                }
                many => {
                    for w in many {
                        let _ = workers[*w].try_send(ev.clone());
                    }
                }
            }
            continue;
        }
        let target = match &ev {
            OctoEvent::Link { event, .. } => match event {
                LinkEvent::Subscribed { source, .. }
                | LinkEvent::Unsubscribed { source }
                | LinkEvent::KeyframeRequested { source, .. } => Some(worker_of_id(source.0, n)),
                _ => None,
            },
            _ => Some(0),
        };
        match target {
            Some(w) => {
                if workers[w].send(ev).await.is_err() {
                    return;
                }
            }
            None => {
                for w in &workers {
                    if w.send(ev.clone()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conferences_spread_over_workers_and_stay_put() {
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let c: ConferenceId = format!("room-{i}").parse().unwrap();
            let w = worker_of_conference(&c, 4);
            assert_eq!(w, worker_of_conference(&c, 4));
            seen[w] += 1;
        }
        assert!(seen.iter().all(|&n| n > 60), "{seen:?}");
        assert_eq!(worker_of_id(7, 4), 3);
    }
}
