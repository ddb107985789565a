//! Virtual-time tests of the SFU core (quinn's `Pair`, str0m's
//! `progress`): edges' worker cores, octo links between them and str0m
//! clients, wired by a simulated network (delay, seeded loss, a kill
//! switch), run on a clock that jumps to the next thing due. Nothing sleeps and nothing touches a
//! socket: a minute of meeting runs in well under a second, and the same
//! seed gives the same result.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};
use geomesh_mesh::transport::OctoEvent;

use super::{Command, EdgeCoreConfig, EdgeCores, Output, Response, Sfu};
use crate::metrics::Metrics;
use crate::placement::Placement;
use crate::router::Role;
use crate::sibling::SiblingRx;
use crate::tiles::TileHeights;
use crate::workers::{Demux, worker_of_id};

mod client;
mod link;
mod net;
mod tests;

pub use client::{Client, Track};
pub use link::{LinkOutput, LinkSim};
pub use net::Net;

/// Steps one [`World::run_for`] may take at most (a bug that keeps the
/// clock from moving fails the test instead of hanging it).
const MAX_STEPS: usize = 2_000_000;

/// One edge of the world.
pub struct EdgeSim {
    pub id: EdgeId,
    pub region: RegionId,
    /// Its media address.
    pub addr: SocketAddr,
    pub cores: Vec<Sfu>,
    siblings: Vec<SiblingRx>,
    /// Every worker's sibling channels (the harness carries
    /// `Output::Sibling` as the worker shell does).
    sibling_txs: Vec<crate::sibling::SiblingTx>,
    placement: Arc<Placement>,
    demux: Arc<Demux>,
    /// A dead edge's cores no longer run.
    pub alive: bool,
}

/// Edges, their clients, the links and the network between them.
pub struct World {
    pub now: Instant,
    pub edges: Vec<EdgeSim>,
    pub links: Vec<LinkSim>,
    pub clients: Vec<Client>,
    pub net: Net,
    pub conference: ConferenceId,
}

/// How a [`World`] is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Edges, each linked to every other one.
    pub edges: usize,
    /// Media workers per edge, and the conference size above which a
    /// conference spreads over them.
    pub workers: usize,
    pub spread_above: Option<usize>,
    /// One-way delay between clients and their edge, and between edges.
    pub delay: Duration,
    pub link_delay: Duration,
    /// Loss on every client datagram, in parts per million, and its seed.
    pub loss_ppm: u32,
    pub seed: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            edges: 1,
            workers: 1,
            spread_above: None,
            delay: Duration::from_millis(20),
            link_delay: Duration::from_millis(40),
            loss_ppm: 0,
            seed: 1,
        }
    }
}

impl World {
    /// Edges with nobody on them, linked to each other.
    pub fn new(setup: &Setup) -> Self {
        assert!(
            setup.edges == 1 || setup.workers == 1,
            "octo events go to worker 0: one worker per edge when edges link"
        );
        let now = Instant::now();
        let edges: Vec<EdgeSim> = (0..setup.edges)
            .map(|e| {
                let id = EdgeId::new(format!("edge-{e}")).expect("an id");
                let region = RegionId::new(format!("region-{e}")).expect("an id");
                let addr = SocketAddr::from(([127, 0, 0, 1], 3478 + e as u16));
                let built = EdgeCores::build(
                    now,
                    EdgeCoreConfig {
                        edge: id.clone(),
                        region: region.clone(),
                        advertised: addr,
                        metrics: Arc::new(Metrics::new()),
                        last_n: crate::lastn::LastNConfig::default(),
                        workers: setup.workers,
                        bwe: false,
                        spread_above: setup.spread_above,
                        octo: None,
                        always_octo: setup.edges > 1,
                        access_lab: None,
                    },
                )
                .expect("the cores build");
                let (cores, siblings) = built.cores.into_iter().unzip();
                let sibling_txs = built.sibling_txs;
                EdgeSim {
                    id,
                    region,
                    addr,
                    cores,
                    siblings,
                    sibling_txs,
                    placement: built.placement,
                    demux: built.demux,
                    alive: true,
                }
            })
            .collect();
        let mut w = Self {
            now,
            edges,
            links: Vec::new(),
            clients: Vec::new(),
            net: Net::new(now, setup.delay, setup.seed),
            conference: ConferenceId::new("vt").expect("an id"),
        };
        w.net.loss_ppm = setup.loss_ppm;
        for a in 0..setup.edges {
            for b in a + 1..setup.edges {
                let (ea, eb) = (&w.edges[a], &w.edges[b]);
                let link = LinkSim::new(
                    now,
                    ((a, &ea.id, &ea.region), (b, &eb.id, &eb.region)),
                    setup.link_delay,
                );
                let port = |p: &crate::sfu::octo::MemoryPort| {
                    crate::sfu::octo::Port::Memory(p.clone(), Default::default())
                };
                w.edges[a].cores[0].add_octo_port(port(&link.ports[0]));
                w.edges[b].cores[0].add_octo_port(port(&link.ports[1]));
                w.links.push(link);
            }
        }
        w
    }

    /// A client joins edge 0; see [`World::join_at`].
    pub fn join(&mut self, name: &str, publishing: bool) -> usize {
        self.join_at(0, name, publishing)
    }

    /// A client joins `edge` and makes its offer; its index. Publishing
    /// clients send media from when they connect. A name already in the
    /// world is the same participant joining again (a rejoin elsewhere).
    pub fn join_at(&mut self, edge: usize, name: &str, publishing: bool) -> usize {
        self.join_with(edge, name, publishing, false)
    }

    /// A client joins `edge` publishing three simulcast layers.
    pub fn join_simulcast(&mut self, edge: usize, name: &str) -> usize {
        self.join_with(edge, name, true, true)
    }

    fn join_with(&mut self, edge: usize, name: &str, publishing: bool, simulcast: bool) -> usize {
        let idx = self.clients.len();
        let addr = SocketAddr::from(([127, 0, 0, 1], 40_000 + idx as u16));
        let mut c = Client::new(name, addr, self.now, publishing);
        c.edge = edge;
        c.simulcast = simulcast;
        let participant = participant(name);
        let worker = self.edges[edge]
            .placement
            .choose(&self.conference, &participant);
        let cmd = Command::Join {
            conference: self.conference.clone(),
            participant,
            name: Some(name.to_string()),
            role: Role::Member,
            signaling: true,
            since_ms: 0,
            location: None,
        };
        let Response::Joined(joined) = self.command(edge, worker, cmd) else {
            panic!("the core answers a join with the session");
        };
        c.key = Some(joined.key);
        c.worker = worker;
        let offer = c.offer();
        self.clients.push(c);
        let cmd = Command::Offer {
            key: joined.key,
            sdp: offer,
        };
        let Response::Answer(answer) = self.command(edge, worker, cmd) else {
            panic!("the core answers an offer with its answer");
        };
        let answer = answer.expect("the core accepts a browser-like offer");
        self.clients[idx].accept_answer(&answer);
        self.settle();
        idx
    }

    /// A client leaves (as on the WebSocket's `leave`).
    pub fn leave(&mut self, idx: usize) {
        let key = self.clients[idx].key.take().expect("a joined client");
        let edge = self.clients[idx].edge;
        let worker = worker_of_id(key.0, self.edges[edge].cores.len());
        self.command(edge, worker, Command::Leave { key });
        self.net.down.insert(self.clients[idx].addr);
        self.clients[idx].publishing = false;
        self.settle();
    }

    /// Client `idx`'s tile height (`video_constraints`; 0: no limit).
    pub fn set_max_height(&mut self, idx: usize, max_height: u16) {
        self.constraints(idx, None, Vec::new(), Some(max_height));
    }

    /// Client `idx`'s `video_constraints`: last-N, pinned participants,
    /// tile height.
    pub fn constraints(
        &mut self,
        idx: usize,
        last_n: Option<u32>,
        pinned: Vec<&str>,
        max_height: Option<u16>,
    ) {
        self.send_constraints(idx, last_n, pinned, TileHeights::every(max_height));
    }

    /// Client `idx`'s tile heights: `every` tile, and `per` participant
    /// (`video_constraints` `max_height` and `max_heights`).
    pub fn set_tile_heights(&mut self, idx: usize, every: u16, per: &[(&str, u16)]) {
        let per = per.iter().map(|(p, h)| (participant(p), *h)).collect();
        self.send_constraints(idx, None, Vec::new(), TileHeights::new(Some(every), per));
    }

    fn send_constraints(
        &mut self,
        idx: usize,
        last_n: Option<u32>,
        pinned: Vec<&str>,
        tiles: TileHeights,
    ) {
        let key = self.clients[idx].key.expect("a joined client");
        let edge = self.clients[idx].edge;
        let worker = worker_of_id(key.0, self.edges[edge].cores.len());
        let pinned = pinned.into_iter().map(participant).collect();
        let cmd = Command::Constraints {
            key,
            last_n,
            pinned,
            tiles,
        };
        self.command(edge, worker, cmd);
        self.settle();
    }

    /// Edge `edge` dies: its cores stop, its clients and links are cut.
    pub fn kill_edge(&mut self, edge: usize) {
        let now = self.now;
        self.edges[edge].alive = false;
        self.net.down.insert(self.edges[edge].addr);
        for l in &mut self.links {
            if l.edges.0 == edge || l.edges.1 == edge {
                l.cut(now);
            }
        }
        for c in &mut self.clients {
            if c.edge == edge {
                c.publishing = false;
            }
        }
    }

    /// A command to a worker's core, and the round it ends; its response.
    fn command(&mut self, edge: usize, worker: usize, cmd: Command) -> Response {
        let core = &mut self.edges[edge].cores[worker];
        let response = core.handle_command(self.now, cmd);
        core.end_round();
        self.outputs(edge, worker);
        response
    }

    /// Carries out a core's outputs, as the worker's shell does: signaling
    /// messages to the session's client, sibling messages to the sibling.
    fn outputs(&mut self, edge: usize, worker: usize) {
        while let Some(o) = self.edges[edge].cores[worker].poll_output() {
            if let Output::Sibling { to, message } = o {
                self.edges[edge].sibling_txs[to].carry(message);
                continue;
            }
            let (Output::Signal { key, .. } | Output::CloseSignal(key)) = &o else {
                continue;
            };
            let Some(c) = self
                .clients
                .iter_mut()
                .find(|c| c.edge == edge && c.key == Some(*key))
            else {
                continue;
            };
            match o {
                Output::Signal { message, .. } => {
                    if let Some(tx) = &c.signal_tx {
                        let _ = tx.send(message);
                    }
                }
                _ => c.signal_tx = None,
            }
        }
    }

    /// Runs the world for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..MAX_STEPS {
            self.settle();
            if self.now >= end {
                return;
            }
            self.now = self.next_due().min(end).max(self.now);
            self.deliver();
        }
        panic!("the world did not reach its end time in {MAX_STEPS} steps");
    }

    /// The soonest thing due anywhere.
    fn next_due(&self) -> Instant {
        let mut t = self.now + Duration::from_secs(3600);
        if let Some(at) = self.net.next_at() {
            t = t.min(at);
        }
        for c in &self.clients {
            t = t.min(c.timeout);
            if c.publishing && c.connected {
                t = t.min(c.next_video).min(c.next_audio);
            }
        }
        for e in self.edges.iter().filter(|e| e.alive) {
            for core in &e.cores {
                t = t.min(core.poll_timeout().at);
            }
        }
        for l in &self.links {
            if let Some(at) = l.next_at() {
                t = t.min(at);
            }
        }
        t
    }

    /// Delivers what is due now and runs every timer due now.
    fn deliver(&mut self) {
        let now = self.now;
        while let Some(d) = self.net.pop_due(now) {
            if let Some(e) = self.edges.iter_mut().find(|e| e.addr == d.to) {
                // The socket reader's demultiplexing, as on a real edge.
                if let Some(w) = e.demux.worker(&d.data, &d.from) {
                    e.cores[w].handle_datagram(now, d.from, &d.data);
                }
            } else if let Some(c) = self.clients.iter_mut().find(|c| c.addr == d.to) {
                c.receive(now, d.from, &d.data);
            }
        }
        for c in &mut self.clients {
            c.tick(now);
        }
        self.deliver_links();
        for e in self.edges.iter_mut().filter(|e| e.alive) {
            for core in &mut e.cores {
                core.handle_timeout(now);
            }
        }
    }

    /// Hands each live edge what its links received; true if anything moved.
    fn deliver_links(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        for l in 0..self.links.len() {
            let outputs = self.links[l].deliver(now);
            let (a, b) = self.links[l].edges;
            for (end, out) in outputs.into_iter().enumerate() {
                let (me, peer) = if end == 0 { (a, b) } else { (b, a) };
                if !self.edges[me].alive {
                    continue;
                }
                let peer = self.edges[peer].id.clone();
                for o in out {
                    moved = true;
                    let ev = match o {
                        LinkOutput::Event(event) => OctoEvent::Link {
                            peer: peer.clone(),
                            event,
                        },
                        LinkOutput::Media(m) => OctoEvent::Media(m),
                    };
                    self.edges[me].cores[0].handle_octo(now, ev);
                }
            }
        }
        moved
    }

    /// Settles the current instant: rounds end, siblings, links and
    /// signaling messages are handed over, datagrams leave, until nothing
    /// moves.
    fn settle(&mut self) {
        let now = self.now;
        // Bounded: each pass hands over what the previous one produced.
        for _ in 0..64 {
            let mut moved = false;
            for i in 0..self.edges.len() {
                if !self.edges[i].alive {
                    continue;
                }
                let e = &mut self.edges[i];
                for w in 0..e.cores.len() {
                    e.cores[w].end_round();
                    let (from, net) = (e.addr, &mut self.net);
                    e.cores[w]
                        .outbox()
                        .drain(|to, data| net.send(now, from, to, data.to_vec()));
                }
                for w in 0..self.edges[i].cores.len() {
                    self.outputs(i, w);
                }
                let e = &mut self.edges[i];
                for w in 0..e.siblings.len() {
                    let mut msgs = Vec::new();
                    while let Ok(m) = e.siblings[w].control.try_recv() {
                        msgs.push(m);
                    }
                    while let Ok(m) = e.siblings[w].media.try_recv() {
                        msgs.push(m);
                    }
                    moved |= !msgs.is_empty();
                    for m in msgs {
                        e.cores[w].handle_sibling(now, m);
                    }
                }
            }
            for l in &mut self.links {
                l.send(now);
            }
            moved |= self.deliver_links();
            for i in 0..self.clients.len() {
                let c = &mut self.clients[i];
                c.on_signal();
                let answers = std::mem::take(&mut c.answers);
                let (key, edge, worker) = (c.key, c.edge, c.worker);
                let (addr, net) = (c.addr, &mut self.net);
                c.poll(|to, data| net.send(now, addr, to, data));
                for sdp in answers {
                    moved = true;
                    let Some(key) = key else { continue };
                    if !self.edges[edge].alive {
                        continue;
                    }
                    let Response::Applied(applied) =
                        self.command(edge, worker, Command::Answer { key, sdp })
                    else {
                        panic!("the core answers an answer");
                    };
                    applied.expect("the core takes the client's answer");
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the world did not settle at one instant");
    }
}

fn participant(name: &str) -> ParticipantId {
    ParticipantId::new(name).expect("a participant id")
}
