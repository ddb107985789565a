//! The emulated WAN of the lab (`geomesh dev --wan`): every datagram the
//! octo endpoint sends is held for the one-way delay to its destination
//! before it leaves, so two edges on one machine see the RTT of the
//! regions they stand for. The kernel here has no `netem`; this is its
//! user-space stand-in, in the I/O shell and used only when the lab is on.
//! Delay is applied on the way out only: each side delays its own sends,
//! so a round trip carries both one-way delays.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{EcnCodepoint, RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One-way delays by destination address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WanDelays {
    by_addr: HashMap<SocketAddr, Duration>,
}

impl WanDelays {
    /// No delay anywhere (add destinations with [`WanDelays::set`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams to `to` wait `one_way` before they leave.
    pub fn set(&mut self, to: SocketAddr, one_way: Duration) {
        self.by_addr.insert(to, one_way);
    }

    /// The delay to `to` (zero for a destination not listed).
    pub fn to(&self, to: &SocketAddr) -> Duration {
        self.by_addr.get(to).copied().unwrap_or_default()
    }
}

/// A datagram (or GSO batch) waiting for its time.
struct Held {
    due: Instant,
    seq: u64,
    destination: SocketAddr,
    ecn: Option<EcnCodepoint>,
    contents: Vec<u8>,
    segment_size: Option<usize>,
    src_ip: Option<IpAddr>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Held>>,
    seq: u64,
}

/// A quinn socket that holds what it sends for the [`WanDelays`].
pub(crate) struct DelayedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    delays: WanDelays,
    queue: Mutex<Queue>,
    /// Wakes the sender task (shared with it: the task must not keep the
    /// socket alive).
    wake: Arc<Notify>,
}

impl fmt::Debug for DelayedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelayedSocket")
            .field("delays", &self.delays)
            .finish()
    }
}

/// Datagrams held at most: beyond it, new ones are dropped (as a full
/// router queue would), so a flood cannot grow memory without end.
const MAX_HELD: usize = 65_536;

impl DelayedSocket {
    /// Wraps `inner`; its sender task runs on the current tokio runtime
    /// until the socket is dropped.
    pub(crate) fn start(inner: Arc<dyn AsyncUdpSocket>, delays: WanDelays) -> Arc<Self> {
        let wake = Arc::new(Notify::new());
        let s = Arc::new(Self {
            inner,
            delays,
            queue: Mutex::new(Queue::default()),
            wake: wake.clone(),
        });
        tokio::spawn(send_when_due(Arc::downgrade(&s), wake));
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().expect("WAN queue lock poisoned")
    }
}

/// Sends each held datagram at its time; ends when the socket is dropped.
async fn send_when_due(socket: std::sync::Weak<DelayedSocket>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        let Some(s) = socket.upgrade() else { return };
        let next = s.lock().heap.peek().map(|Reverse(h)| h.due);
        let now = Instant::now();
        match next {
            Some(due) if due <= now => {
                let held = s.lock().heap.pop().map(|Reverse(h)| h);
                if let Some(h) = held {
                    // A full socket buffer loses the datagram, as UDP does.
                    let _ = s.inner.try_send(&Transmit {
                        destination: h.destination,
                        ecn: h.ecn,
                        contents: &h.contents,
                        segment_size: h.segment_size,
                        src_ip: h.src_ip,
                    });
                }
                continue;
            }
            Some(due) => {
                drop(s);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = notified => {}
                }
            }
            None => {
                drop(s);
                // Woken by the next send (or checks the socket is alive).
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
        }
    }
}

impl AsyncUdpSocket for DelayedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, t: &Transmit) -> io::Result<()> {
        let delay = self.delays.to(&t.destination);
        if delay.is_zero() {
            return self.inner.try_send(t);
        }
        let mut q = self.lock();
        if q.heap.len() >= MAX_HELD {
            // Dropped, as a full queue on the path would.
            return Ok(());
        }
        q.seq += 1;
        let seq = q.seq;
        q.heap.push(Reverse(Held {
            due: Instant::now() + delay,
            seq,
            destination: t.destination,
            ecn: t.ecn,
            contents: t.contents.to_vec(),
            segment_size: t.segment_size,
            src_ip: t.src_ip,
        }));
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
