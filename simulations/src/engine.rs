//! The discrete-event engine: one strategy over one scenario's meetings.
//!
//! Events, in time order (ties: recoveries, failures, failure detections,
//! meeting ends, joins, load samples; then by index), all precomputed or
//! scheduled on a binary heap; no clock, no randomness (the meetings were
//! drawn beforehand), so a run is a pure function of its inputs.
//!
//! What the selector sees is kept apart from the truth, as in production:
//! each edge heartbeats every `heartbeat_interval` (phase-shifted per edge)
//! with the load it really has, the selector counts placements since
//! (`EdgeStatus::record_placement`), and a failed edge stays "healthy" to
//! the selector until `health_timeout` after its last heartbeat — joins
//! placed on it meanwhile are lost too ("blind placements"). At detection,
//! every participant cut off is re-placed through the same strategy.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use geomesh_selector::strategy::{ConferenceEdge, EdgeIdx, EdgeStatus, RegionIdx, RegionSite};

use crate::latency::{Endpoint, LatencyModel};
use crate::metrics::{
    EdgeReport, EdgesPerConference, LatencyHistogram, RelaySummary, StrategyReport,
};
use crate::scenario::{FailureTarget, Ms, Scenario, StrategySpec};
use crate::strategies::{Ask, choose};
use crate::workload::Meetings;

const RECOVER: u8 = 0;
const FAIL: u8 = 1;
const DETECT: u8 = 2;
const END: u8 = 3;
const JOIN: u8 = 4;
const SAMPLE: u8 = 5;
const NONE: u32 = u32::MAX;
/// Joins between progress callbacks.
const PROGRESS_EVERY: u64 = 4096;

/// Run options.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Keep every placement and pair latency (small runs and tests only).
    pub trace: bool,
}

/// One placement, in a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePlacement {
    /// When.
    pub t: Ms,
    /// Participant index.
    pub participant: u32,
    /// Edge index.
    pub edge: u32,
    /// A re-placement after a failure.
    pub replacement: bool,
}

/// One pair latency sample, in a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TracePair {
    /// When the pair formed.
    pub t: Ms,
    /// The participant who just connected.
    pub a: u32,
    /// One already there.
    pub b: u32,
    /// One-way mouth-to-ear latency, ms (the same both ways).
    pub one_way_ms: f64,
}

/// Every placement and pair sample of a run.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Placements in order.
    pub placements: Vec<TracePlacement>,
    /// Pair samples in order.
    pub pairs: Vec<TracePair>,
}

/// Connected participants per edge over time.
#[derive(Debug, Clone, Default)]
pub struct LoadSeries {
    /// Sample times, ms.
    pub times: Vec<Ms>,
    /// `loads[k][e]`: edge `e` at `times[k]`.
    pub loads: Vec<Vec<u32>>,
}

/// Everything one run produces.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The summary written out.
    pub report: StrategyReport,
    /// Pair latencies.
    pub histogram: LatencyHistogram,
    /// Load over time.
    pub load: LoadSeries,
    /// First placements per (site, region of the chosen edge): `sites × regions`.
    pub scatter: Vec<u32>,
    /// With [`RunOptions::trace`].
    pub trace: Option<Trace>,
}

#[derive(Default)]
struct Conf {
    edges: Vec<ConferenceEdge>,
    members: Vec<u32>,
    max_edges: u32,
    inter_rate: f64,
    intra_rate: f64,
    last: Ms,
    placed: bool,
    ended: bool,
}

struct EdgeTruth {
    alive: bool,
    load: u32,
    peak: u32,
    placements: u64,
    phase: Ms,
    hb_tick: i64,
    pending: Vec<u32>,
}

struct Engine<'a> {
    s: &'a Scenario,
    m: &'a Meetings,
    lat: &'a LatencyModel,
    spec: &'a StrategySpec,
    regions: Vec<RegionSite>,
    groups: Vec<u32>,
    view: Vec<EdgeStatus>,
    truth: Vec<EdgeTruth>,
    confs: Vec<Conf>,
    at: Vec<u32>,
    heap: BinaryHeap<Reverse<(Ms, u8, u32)>>,
    hist: LatencyHistogram,
    report: StrategyReport,
    epc: Vec<u64>,
    inter_bytes: f64,
    intra_bytes: f64,
    bytes_per_ms: f64,
    load: LoadSeries,
    scatter: Vec<u32>,
    trace: Option<Trace>,
}

/// Runs one strategy. `progress` gets the number of joins processed, in chunks.
pub fn run(
    s: &Scenario,
    m: &Meetings,
    lat: &LatencyModel,
    spec: &StrategySpec,
    opts: RunOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> RunOutput {
    let mut e = Engine::new(s, m, lat, spec, opts);
    let mut joins = 0u64;
    while let Some(Reverse((t, kind, id))) = e.heap.pop() {
        match kind {
            JOIN => {
                e.join(t, id);
                joins += 1;
                if joins.is_multiple_of(PROGRESS_EVERY) {
                    progress(PROGRESS_EVERY);
                }
            }
            END => e.end(t, id as usize),
            FAIL => e.fail(t, id as usize),
            DETECT => e.detect(t, id as usize),
            RECOVER => e.recover(t, id as usize),
            _ => e.sample(t),
        }
    }
    progress(joins % PROGRESS_EVERY);
    e.finish()
}

impl<'a> Engine<'a> {
    fn new(
        s: &'a Scenario,
        m: &'a Meetings,
        lat: &'a LatencyModel,
        spec: &'a StrategySpec,
        opts: RunOptions,
    ) -> Self {
        let regions: Vec<RegionSite> = s
            .regions
            .iter()
            .map(|r| RegionSite {
                id: r.id.clone(),
                location: r.location,
            })
            .collect();
        // Regions without a group are a group of their own.
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        let groups = s
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| match &r.group {
                Some(g) => {
                    let n = names.len() as u32;
                    *names.entry(g.clone()).or_insert(n)
                }
                None => 1_000_000 + i as u32,
            })
            .collect();
        let n_edges = s.edges.len() as u64;
        let view = s
            .edges
            .iter()
            .map(|e| EdgeStatus::new(e.id.clone(), RegionIdx(e.region as u32), e.capacity))
            .collect();
        let truth = (0..n_edges)
            .map(|i| EdgeTruth {
                alive: true,
                load: 0,
                peak: 0,
                placements: 0,
                phase: i * s.heartbeat_interval / n_edges,
                hb_tick: -1,
                pending: Vec::new(),
            })
            .collect();
        let mut heap = BinaryHeap::with_capacity(m.participants.len() + m.meetings.len() + 64);
        let mut last = 0;
        for (i, p) in m.participants.iter().enumerate() {
            heap.push(Reverse((p.join, JOIN, i as u32)));
        }
        for (i, mt) in m.meetings.iter().enumerate() {
            heap.push(Reverse((mt.end, END, i as u32)));
            last = last.max(mt.end);
        }
        for (i, f) in s.failures.iter().enumerate() {
            heap.push(Reverse((f.at, FAIL, i as u32)));
            last = last.max(f.at);
            if let Some(r) = f.recover_at {
                heap.push(Reverse((r, RECOVER, i as u32)));
                last = last.max(r);
            }
        }
        let mut t = 0;
        while t <= last {
            heap.push(Reverse((t, SAMPLE, 0)));
            t += s.load_sample_interval;
        }
        let report = StrategyReport {
            name: spec.name.clone(),
            kind: spec.kind,
            joins: 0,
            placed: 0,
            rejected: 0,
            over_capacity: 0,
            displaced: 0,
            displaced_rejected: 0,
            blind_placements: 0,
            latency: LatencyHistogram::default().summary(),
            edges_per_conference: EdgesPerConference::from_histogram(Vec::new()),
            relay: RelaySummary {
                inter_region_bytes: 0,
                intra_region_bytes: 0,
            },
            edges: Vec::new(),
            reasons: BTreeMap::new(),
        };
        Engine {
            s,
            m,
            lat,
            spec,
            regions,
            groups,
            view,
            truth,
            confs: (0..m.meetings.len()).map(|_| Conf::default()).collect(),
            at: vec![NONE; m.participants.len()],
            heap,
            hist: LatencyHistogram::default(),
            report,
            epc: vec![0; s.edges.len() + 1],
            inter_bytes: 0.0,
            intra_bytes: 0.0,
            bytes_per_ms: (s.media.audio_kbps + s.media.video_kbps) / 8.0,
            load: LoadSeries::default(),
            scatter: vec![0; m.sites.len() * s.regions.len()],
            trace: opts.trace.then(Trace::default),
        }
    }

    /// Delivers the heartbeats edge `e` sent up to `t` (its load has not
    /// changed since the last call, so the latest one carries it).
    fn catch_up(&mut self, e: usize, t: Ms) {
        let tr = &mut self.truth[e];
        if !tr.alive {
            return;
        }
        let k = if t >= tr.phase {
            ((t - tr.phase) / self.s.heartbeat_interval) as i64
        } else {
            -1
        };
        if k > tr.hb_tick {
            tr.hb_tick = k;
            let cap = self.view[e].capacity.max(1) as f64;
            self.view[e].heartbeat(tr.load, tr.load as f64 / cap);
        }
    }

    fn catch_up_all(&mut self, t: Ms) {
        for e in 0..self.truth.len() {
            self.catch_up(e, t);
        }
    }

    /// Asks the strategy for participant `p`.
    fn decide(&mut self, p: u32) -> Option<usize> {
        let part = self.m.participants[p as usize];
        let conf = &self.confs[part.meeting as usize];
        let ask = Ask {
            regions: &self.regions,
            edges: &self.view,
            groups: &self.groups,
            latency: self.lat,
            conference: &conf.edges,
            site: part.site,
            location: self.m.sites[part.site as usize].location,
        };
        let (e, reason) = choose(self.spec.kind, &self.spec.policy, &ask)?;
        if let Some(r) = reason {
            *self
                .report
                .reasons
                .entry(r.as_str().to_string())
                .or_default() += 1;
        }
        Some(e)
    }

    fn join(&mut self, t: Ms, p: u32) {
        self.report.joins += 1;
        self.catch_up_all(t);
        match self.decide(p) {
            None => self.report.rejected += 1,
            Some(e) => {
                self.report.placed += 1;
                let part = self.m.participants[p as usize];
                let region = self.s.edges[e].region;
                self.scatter[part.site as usize * self.s.regions.len() + region] += 1;
                self.connect(t, p, e, false);
            }
        }
    }

    /// Settles relay bytes up to `t` at the conference's current rates.
    fn settle(&mut self, c: usize, t: Ms) {
        let conf = &mut self.confs[c];
        let dt = t.saturating_sub(conf.last) as f64;
        self.inter_bytes += conf.inter_rate * dt;
        self.intra_bytes += conf.intra_rate * dt;
        conf.last = t;
    }

    /// Recomputes a conference's relay rates (bytes/ms): each edge sends one
    /// copy of each local participant's media to every other edge.
    fn rerate(&mut self, c: usize) {
        let conf = &mut self.confs[c];
        let (mut inter, mut intra) = (0.0, 0.0);
        for a in &conf.edges {
            for b in &conf.edges {
                if a.edge == b.edge {
                    continue;
                }
                let bytes = a.participants as f64 * self.bytes_per_ms;
                if self.s.edges[a.edge.get()].region == self.s.edges[b.edge.get()].region {
                    intra += bytes;
                } else {
                    inter += bytes;
                }
            }
        }
        conf.inter_rate = inter;
        conf.intra_rate = intra;
    }

    fn connect(&mut self, t: Ms, p: u32, e: usize, replacement: bool) {
        self.view[e].record_placement();
        self.truth[e].placements += 1;
        if let Some(tr) = &mut self.trace {
            tr.placements.push(TracePlacement {
                t,
                participant: p,
                edge: e as u32,
                replacement,
            });
        }
        if !self.truth[e].alive {
            self.truth[e].pending.push(p);
            self.report.blind_placements += 1;
            return;
        }
        let part = self.m.participants[p as usize];
        let c = part.meeting as usize;
        self.settle(c, t);
        for &q in &self.confs[c].members {
            let qs = self.m.participants[q as usize].site;
            let at = self.at[q as usize] as usize;
            let ms = self
                .lat
                .one_way(Endpoint::new(p, part.site), e, at, Endpoint::new(q, qs));
            self.hist.record(ms);
            if let Some(tr) = &mut self.trace {
                tr.pairs.push(TracePair {
                    t,
                    a: p,
                    b: q,
                    one_way_ms: ms,
                });
            }
        }
        let conf = &mut self.confs[c];
        conf.members.push(p);
        conf.placed = true;
        match conf.edges.iter_mut().find(|x| x.edge.get() == e) {
            Some(x) => x.participants += 1,
            None => conf.edges.push(ConferenceEdge {
                edge: EdgeIdx(e as u32),
                participants: 1,
            }),
        }
        conf.max_edges = conf.max_edges.max(conf.edges.len() as u32);
        self.at[p as usize] = e as u32;
        let tr = &mut self.truth[e];
        if tr.load >= self.view[e].capacity {
            self.report.over_capacity += 1;
        }
        tr.load += 1;
        tr.peak = tr.peak.max(tr.load);
        self.rerate(c);
    }

    /// Cuts participant `p` off its edge (which must be settled by the caller).
    fn disconnect(&mut self, p: u32) -> usize {
        let e = self.at[p as usize] as usize;
        let c = self.m.participants[p as usize].meeting as usize;
        let conf = &mut self.confs[c];
        conf.members.retain(|&q| q != p);
        if let Some(k) = conf.edges.iter().position(|x| x.edge.get() == e) {
            conf.edges[k].participants -= 1;
            if conf.edges[k].participants == 0 {
                conf.edges.remove(k);
            }
        }
        self.truth[e].load -= 1;
        self.at[p as usize] = NONE;
        e
    }

    fn end(&mut self, t: Ms, c: usize) {
        self.settle(c, t);
        let members = std::mem::take(&mut self.confs[c].members);
        for &p in &members {
            let e = self.at[p as usize] as usize;
            self.catch_up(e, t);
            self.truth[e].load -= 1;
            self.at[p as usize] = NONE;
        }
        let conf = &mut self.confs[c];
        conf.edges = Vec::new();
        conf.inter_rate = 0.0;
        conf.intra_rate = 0.0;
        conf.ended = true;
        if conf.placed {
            self.epc[conf.max_edges as usize] += 1;
        }
    }

    fn targets(&self, f: usize) -> Vec<usize> {
        match self.s.failures[f].target {
            FailureTarget::Edge(e) => vec![e],
            FailureTarget::Region(r) => self.s.edges_in(r).collect(),
        }
    }

    fn fail(&mut self, t: Ms, f: usize) {
        self.catch_up_all(t);
        for e in self.targets(f) {
            if !self.truth[e].alive {
                continue;
            }
            self.truth[e].alive = false;
            let on_edge: Vec<u32> = (0..self.at.len() as u32)
                .filter(|&p| self.at[p as usize] == e as u32)
                .collect();
            for p in on_edge {
                let c = self.m.participants[p as usize].meeting as usize;
                self.settle(c, t);
                self.disconnect(p);
                self.rerate(c);
                self.truth[e].pending.push(p);
            }
            // The selector notices `health_timeout` after the last heartbeat.
            let tr = &self.truth[e];
            let last_hb = if tr.hb_tick >= 0 {
                tr.phase + tr.hb_tick as u64 * self.s.heartbeat_interval
            } else {
                0
            };
            let at = (last_hb + self.s.health_timeout).max(t);
            self.heap.push(Reverse((at, DETECT, e as u32)));
        }
    }

    fn detect(&mut self, t: Ms, e: usize) {
        if self.truth[e].alive || !self.view[e].healthy {
            return;
        }
        self.view[e].healthy = false;
        self.replace_pending(t, e);
    }

    fn recover(&mut self, t: Ms, f: usize) {
        for e in self.targets(f) {
            if self.truth[e].alive {
                continue;
            }
            let tr = &mut self.truth[e];
            tr.alive = true;
            tr.hb_tick = if t >= tr.phase {
                ((t - tr.phase) / self.s.heartbeat_interval) as i64
            } else {
                -1
            };
            self.view[e].healthy = true;
            self.view[e].heartbeat(0, 0.0);
            // Cut off but not yet re-placed: they reconnect now.
            self.replace_pending(t, e);
        }
    }

    fn replace_pending(&mut self, t: Ms, e: usize) {
        self.catch_up_all(t);
        let pending = std::mem::take(&mut self.truth[e].pending);
        for p in pending {
            let c = self.m.participants[p as usize].meeting as usize;
            if self.confs[c].ended {
                continue;
            }
            self.report.displaced += 1;
            match self.decide(p) {
                None => self.report.displaced_rejected += 1,
                Some(e2) => self.connect(t, p, e2, true),
            }
        }
    }

    fn sample(&mut self, t: Ms) {
        self.load.times.push(t);
        self.load
            .loads
            .push(self.truth.iter().map(|tr| tr.load).collect());
    }

    fn finish(mut self) -> RunOutput {
        self.report.latency = self.hist.summary();
        let mut epc = std::mem::take(&mut self.epc);
        while epc.len() > 1 && epc.last() == Some(&0) {
            epc.pop();
        }
        self.report.edges_per_conference = EdgesPerConference::from_histogram(epc);
        self.report.relay = RelaySummary {
            inter_region_bytes: self.inter_bytes.round() as u64,
            intra_region_bytes: self.intra_bytes.round() as u64,
        };
        self.report.edges = self
            .s
            .edges
            .iter()
            .zip(&self.truth)
            .map(|(e, tr)| EdgeReport {
                id: e.id.as_str().to_string(),
                region: self.s.regions[e.region].id.as_str().to_string(),
                capacity: e.capacity,
                peak_load: tr.peak,
                peak_stress: (tr.peak as f64 / e.capacity.max(1) as f64 * 1000.0).round() / 1000.0,
                placements: tr.placements,
            })
            .collect();
        RunOutput {
            report: self.report,
            histogram: self.hist,
            load: self.load,
            scatter: self.scatter,
            trace: self.trace,
        }
    }
}
