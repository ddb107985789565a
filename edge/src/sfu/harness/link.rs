//! An octo link between two edges of the virtual-time tests: a mesh
//! [`Link`] at each end (behind the cores' [`MemoryPort`]s, driven here as
//! the transport's driver does: commands, then the table published), control bytes
//! and datagrams carried with a one-way delay, and a switch that cuts the
//! connection and brings it back (as the QUIC transport's driver reports
//! a lost connection and a new one).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use geomesh_core::EdgeId;
use geomesh_mesh::link::{DownReason, Link, LinkConfig, LinkEvent, MediaIn};

use crate::sfu::octo::MemoryPort;

/// Something crossing the link.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    /// The receiving end (0 or 1).
    to: usize,
    datagram: bool,
    bytes: Bytes,
}

/// What one end of a link has for its edge's core.
pub enum LinkOutput {
    Event(LinkEvent),
    Media(MediaIn),
}

/// A link between edges `edges.0` and `edges.1` (indices in the world).
pub struct LinkSim {
    pub edges: (usize, usize),
    pub ports: [MemoryPort; 2],
    pub delay: Duration,
    pub up: bool,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
}

impl LinkSim {
    /// A link between two edges (ids and regions), connected at `now`.
    pub fn new(
        now: Instant,
        (a, b): (
            (usize, &EdgeId, &geomesh_core::RegionId),
            (usize, &EdgeId, &geomesh_core::RegionId),
        ),
        delay: Duration,
    ) -> Self {
        let port = |me: &EdgeId, region: &geomesh_core::RegionId, peer: &EdgeId| {
            MemoryPort::new(
                peer.clone(),
                Link::new(LinkConfig::new(me.clone(), region.clone()), peer.clone()),
            )
        };
        let mut l = Self {
            edges: (a.0, b.0),
            ports: [port(a.1, a.2, b.1), port(b.1, b.2, a.1)],
            delay,
            up: false,
            queue: BinaryHeap::new(),
            seq: 0,
        };
        l.connect(now);
        l
    }

    /// A new connection (both ends send Hello).
    pub fn connect(&mut self, now: Instant) {
        self.up = true;
        for p in &self.ports {
            p.drive(|l| l.handle_connected(now));
        }
    }

    /// The connection is lost: both ends see it go down, what was in
    /// flight is gone.
    pub fn cut(&mut self, now: Instant) {
        self.up = false;
        self.queue.clear();
        for p in &self.ports {
            p.drive(|l| l.handle_disconnected(now, DownReason::Lost("cut by the test".into())));
            p.datagrams.lock().expect("a test queue lock").clear();
        }
    }

    /// Takes what each end wrote and puts it on the wire.
    pub fn send(&mut self, now: Instant) {
        for from in 0..2 {
            let mut out: Vec<(bool, Bytes)> = self.ports[from].drive(|l| {
                std::iter::from_fn(|| l.poll_transmit())
                    .map(|b| (false, b))
                    .collect()
            });
            out.extend(
                self.ports[from]
                    .datagrams
                    .lock()
                    .expect("a test queue lock")
                    .drain(..)
                    .map(|b| (true, b)),
            );
            if !self.up {
                continue;
            }
            for (datagram, bytes) in out {
                self.seq += 1;
                self.queue.push(Reverse(InFlight {
                    at: now + self.delay,
                    seq: self.seq,
                    to: 1 - from,
                    datagram,
                    bytes,
                }));
            }
        }
    }

    /// Delivers what arrived by `now` and runs the ends' timers; returns,
    /// per end, what its core must hear.
    pub fn deliver(&mut self, now: Instant) -> [Vec<LinkOutput>; 2] {
        let mut out: [Vec<LinkOutput>; 2] = [Vec::new(), Vec::new()];
        while self.queue.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Reverse(f) = self.queue.pop().expect("peeked");
            let port = &self.ports[f.to];
            if f.datagram {
                // A datagram changes nothing the table holds.
                if let Ok(Some(m)) = port.lock().handle_datagram(f.bytes) {
                    out[f.to].push(LinkOutput::Media(m));
                }
            } else {
                port.drive(|l| l.handle_control(now, &f.bytes));
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            // Published before the events go out, as the driver does.
            let events: Vec<_> = p.drive(|l| {
                if l.poll_timeout().is_some_and(|d| d.at <= now) {
                    l.handle_timeout(now);
                }
                std::iter::from_fn(|| l.poll_event()).collect()
            });
            out[i].extend(events.into_iter().map(LinkOutput::Event));
        }
        out
    }

    /// When something is next due on the link.
    pub fn next_at(&self) -> Option<Instant> {
        let wire = self.queue.peek().map(|Reverse(f)| f.at);
        let timers = self
            .ports
            .iter()
            .filter_map(|p| p.lock().poll_timeout().map(|d| d.at));
        wire.into_iter().chain(timers).min()
    }
}
