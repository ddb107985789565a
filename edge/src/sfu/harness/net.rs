//! The simulated network of the virtual-time tests: datagrams held for a
//! one-way delay, lost with a seeded probability, or cut off entirely for
//! an address that is down (a kill switch). Nothing here touches a socket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A datagram in flight.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Datagram {
    pub at: Instant,
    /// Send order: ties keep it.
    pub seq: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// The network.
pub struct Net {
    queue: BinaryHeap<Reverse<Datagram>>,
    seq: u64,
    /// One-way delay of every datagram.
    pub delay: Duration,
    /// Loss probability in parts per million.
    pub loss_ppm: u32,
    /// Addresses cut off (datagrams from or to them vanish).
    pub down: HashSet<SocketAddr>,
    seed: u64,
    /// Time zero of the loss pattern.
    start: Instant,
    /// Datagrams sent, and lost to loss or to a cut.
    pub sent: u64,
    pub lost: u64,
}

impl Net {
    /// A network from `start` with `delay` each way and no loss; `seed`
    /// makes loss repeatable.
    pub fn new(start: Instant, delay: Duration, seed: u64) -> Self {
        Self {
            queue: BinaryHeap::new(),
            seq: 0,
            delay,
            loss_ppm: 0,
            down: HashSet::new(),
            seed,
            start,
            sent: 0,
            lost: 0,
        }
    }

    /// Whether what a flow sends at virtual time `n` (µs) is lost: a
    /// splitmix64 hash of the seed, the flow and the time. Datagrams sent
    /// together share their fate (loss comes in bursts), and the order in
    /// which they were written does not matter: str0m's random m-line ids
    /// and a core's hash-map order change that order from run to run, and
    /// the same seed must give the same meeting.
    fn lost(&self, from: SocketAddr, to: SocketAddr, n: u64) -> bool {
        let port = |a: SocketAddr| u64::from(a.port());
        let mut x = self.seed ^ (port(from) << 32) ^ (port(to) << 16) ^ n.wrapping_mul(0x9e37_79b9);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        ((x % 1_000_000) as u32) < self.loss_ppm
    }

    /// Sends a datagram at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.sent += 1;
        let n = now.saturating_duration_since(self.start).as_micros() as u64;
        if self.down.contains(&from) || self.down.contains(&to) || self.lost(from, to, n) {
            self.lost += 1;
            return;
        }
        self.seq += 1;
        self.queue.push(Reverse(Datagram {
            at: now + self.delay,
            seq: self.seq,
            from,
            to,
            data,
        }));
    }

    /// When the next datagram arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(d)| d.at)
    }

    /// The next datagram due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        while self.next_at()? <= now {
            let Reverse(d) = self.queue.pop()?;
            // Cut while in flight: lost.
            if self.down.contains(&d.to) || self.down.contains(&d.from) {
                self.lost += 1;
                continue;
            }
            return Some(d);
        }
        None
    }
}
