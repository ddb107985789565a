//! The emulated-WAN lab's access legs (`geomesh dev --wan`): a participant
//! the selector located somewhere (the token's `loc` claim) is as far from
//! this edge as the RTT model says, so its datagrams wait half the modelled
//! round trip on the way in and half on the way out. The edge does both
//! halves, so any client — a browser, aiortc, the load generator — feels
//! the distance without help. Only in the I/O shell, only when the lab is
//! on; a session without a location is not delayed.
//!
//! - [`WanLab`]: the file `geomesh edge --wan-delays` reads (octo one-way
//!   delays by peer edge, and the access model);
//! - [`AccessLab`]: per session and remote address, the one-way delay;
//! - [`DelayLine`]: the task that holds datagrams until they are due.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use geomesh_core::{EdgeId, GeoPoint};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::socket::MediaSocket;
use crate::workers::{Batch, Datagram};

/// Datagrams the line holds at most; beyond, it drops (and counts) them,
/// as a full router queue would.
const MAX_HELD: usize = 65_536;

/// How far a located participant is from this edge: `rtt = base_ms +
/// ms_per_km × great-circle km` to `location` (the region the edge stands
/// in), plus optional impairments on each direction of the access leg.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessModel {
    /// Where the edge stands.
    pub location: GeoPoint,
    /// RTT at zero distance, ms.
    pub base_ms: f64,
    /// RTT per km, ms.
    pub ms_per_km: f64,
    /// Extra one-way delay, uniform in `[0, jitter_ms]`, per datagram.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Share of datagrams lost per direction, percent.
    #[serde(default)]
    pub loss_pct: f64,
}

/// Why a lab file is refused.
#[derive(Debug, thiserror::Error)]
pub enum WanLabError {
    /// Not JSON of either accepted shape.
    #[error(
        "not a lab file (an object of `octo` delays and `access`, or of milliseconds by edge id): {0}"
    )]
    Parse(serde_json::Error),
    /// A number out of range.
    #[error("{what} = {value}: must be finite and non-negative (loss at most 100)")]
    Range {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: f64,
    },
}

/// What `geomesh edge --wan-delays FILE` reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanLab {
    /// One-way delay to each peer edge's octo address, ms.
    pub octo: BTreeMap<EdgeId, f64>,
    /// The access legs; `None`: participants are not delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessModel>,
}

impl WanLab {
    /// Parses a lab file: this type's JSON, or (the first lab's format) an
    /// object of octo one-way milliseconds by edge id alone.
    pub fn parse(text: &str) -> Result<Self, WanLabError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Lab(WanLab),
            OctoOnly(BTreeMap<EdgeId, f64>),
        }
        let lab = match serde_json::from_str::<Shape>(text) {
            Ok(Shape::Lab(l)) => l,
            Ok(Shape::OctoOnly(octo)) => WanLab { octo, access: None },
            // The untagged error says nothing useful; the typed one does.
            Err(_) => serde_json::from_str::<WanLab>(text).map_err(WanLabError::Parse)?,
        };
        if let Some(a) = &lab.access {
            a.location.validate().map_err(|_| WanLabError::Range {
                what: "access.location",
                value: f64::NAN,
            })?;
            for (what, value) in [
                ("access.base_ms", a.base_ms),
                ("access.ms_per_km", a.ms_per_km),
                ("access.jitter_ms", a.jitter_ms),
                ("access.loss_pct", a.loss_pct),
            ] {
                if !(value.is_finite() && value >= 0.0)
                    || (what == "access.loss_pct" && value > 100.0)
                {
                    return Err(WanLabError::Range { what, value });
                }
            }
        }
        Ok(lab)
    }
}

/// The access delays of this edge's sessions.
#[derive(Debug)]
pub struct AccessLab {
    model: AccessModel,
    /// By ICE ufrag: known at join, before any address.
    by_ufrag: RwLock<HashMap<String, Duration>>,
    /// By remote address: learned from the session's first STUN request.
    by_addr: RwLock<HashMap<SocketAddr, Duration>>,
}

impl AccessLab {
    /// The lab for an edge with this access model.
    pub fn new(model: AccessModel) -> Self {
        Self {
            model,
            by_ufrag: RwLock::default(),
            by_addr: RwLock::default(),
        }
    }

    /// The model's one-way delay for a participant at `at`: half its RTT.
    pub fn one_way(&self, at: GeoPoint) -> Duration {
        let km = geomesh_geoip::haversine_km(at, self.model.location);
        Duration::from_secs_f64((self.model.base_ms + self.model.ms_per_km * km) / 2000.0)
    }

    /// The model this lab runs.
    pub fn model(&self) -> &AccessModel {
        &self.model
    }

    /// A session (by its ICE ufrag) of a participant located at `at`.
    pub fn located(&self, ufrag: &str, at: GeoPoint) {
        let d = self.one_way(at);
        self.by_ufrag
            .write()
            .expect("lab lock poisoned")
            .insert(ufrag.to_string(), d);
    }

    /// The session `ufrag` sends from `addr` (its STUN request named it).
    pub fn learn(&self, ufrag: &str, addr: SocketAddr) {
        let d = self
            .by_ufrag
            .read()
            .expect("lab lock poisoned")
            .get(ufrag)
            .copied();
        if let Some(d) = d {
            self.by_addr
                .write()
                .expect("lab lock poisoned")
                .insert(addr, d);
        }
    }

    /// The one-way delay to and from `addr`, if its session is located.
    pub fn delay(&self, addr: &SocketAddr) -> Option<Duration> {
        self.by_addr
            .read()
            .expect("lab lock poisoned")
            .get(addr)
            .copied()
    }

    /// A session ended.
    pub fn forget(&self, ufrag: &str, addrs: &[SocketAddr]) {
        self.by_ufrag
            .write()
            .expect("lab lock poisoned")
            .remove(ufrag);
        let mut by_addr = self.by_addr.write().expect("lab lock poisoned");
        for a in addrs {
            by_addr.remove(a);
        }
    }
}

/// A datagram the line holds.
#[derive(Debug)]
pub enum Held {
    /// Received: for worker `worker` when due.
    In {
        /// The worker that owns its session.
        worker: usize,
        /// The datagram.
        datagram: Datagram,
    },
    /// To send to `to` when due.
    Out {
        /// Destination.
        to: SocketAddr,
        /// Payload.
        bytes: Vec<u8>,
    },
}

struct Entry {
    due: Instant,
    seq: u64,
    held: Held,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// Hands datagrams to the delay line's task.
#[derive(Debug, Clone)]
pub struct DelayLine {
    tx: mpsc::UnboundedSender<(Instant, Held)>,
    model: AccessModel,
}

impl DelayLine {
    /// Starts the line's task: it sends held datagrams on `socket` and
    /// hands received ones to `workers` when due. It ends when every
    /// [`DelayLine`] is dropped.
    pub fn spawn(
        model: AccessModel,
        socket: Arc<MediaSocket>,
        workers: Vec<mpsc::Sender<Batch>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, socket, workers, metrics));
        Self { tx, model }
    }

    /// Holds `held` for `one_way` (plus the model's jitter), or loses it.
    pub fn hold(&self, one_way: Duration, held: Held) {
        let m = &self.model;
        if m.loss_pct > 0.0 && unit() * 100.0 < m.loss_pct {
            return;
        }
        let jitter = Duration::from_secs_f64(m.jitter_ms * unit() / 1000.0);
        // The task ends only when the edge stops: nothing to do then.
        let _ = self.tx.send((Instant::now() + one_way + jitter, held));
    }
}

/// A uniform draw in [0, 1) (the lab's impairments need no reproducibility:
/// they stand for the internet).
fn unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<(Instant, Held)>,
    socket: Arc<MediaSocket>,
    workers: Vec<mpsc::Sender<Batch>>,
    metrics: Arc<Metrics>,
) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let next = heap.peek().map(|Reverse(e)| e.due);
        tokio::select! {
            got = rx.recv() => match got {
                Some((due, held)) => {
                    if heap.len() >= MAX_HELD {
                        Metrics::count(&metrics.dropped, "lab_queue");
                    } else {
                        seq += 1;
                        heap.push(Reverse(Entry { due, seq, held }));
                    }
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
        }
        let now = Instant::now();
        // What falls due together goes to each worker as one batch.
        let mut batches: Vec<Batch> = workers.iter().map(|_| Vec::new()).collect();
        while heap.peek().is_some_and(|Reverse(e)| e.due <= now) {
            let Some(Reverse(e)) = heap.pop() else { break };
            match e.held {
                Held::In { worker, datagram } => match batches.get_mut(worker) {
                    Some(b) => b.push(datagram),
                    None => Metrics::count(&metrics.dropped, "unknown_source"),
                },
                Held::Out { to, bytes } => {
                    if socket.send(to, &bytes, None).is_err() {
                        Metrics::count(&metrics.dropped, "send_error");
                    }
                }
            }
        }
        for (w, batch) in workers.iter().zip(batches) {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            if w.try_send(batch).is_err() {
                Metrics::count_n(&metrics.dropped, "worker_backlog", n);
            }
        }
    }
}

#[cfg(test)]
#[path = "lab_test.rs"]
mod tests;
