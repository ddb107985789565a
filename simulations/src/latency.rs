//! The latency model (docs/SIMULATIONS.md, "Latency model").
//!
//! - participant ↔ edge RTT: the selector's fitted distance model
//!   ([`geomesh_selector::strategy::RttModel`]) on the great-circle
//!   distance to the edge's region;
//! - edge ↔ edge RTT: the measured matrix
//!   ([`geomesh_selector::strategy::Calibration`]) when both regions are
//!   measured ones, the fitted model otherwise; two edges of one region use
//!   `intra_region_rtt_ms` (default: the model at 0 km); an edge to itself 0;
//! - one-way mouth-to-ear between participants A (on edge Ea) and B (on
//!   Eb) = RTT(A, Ea)/2 + RTT(Ea, Eb)/2 + RTT(Eb, B)/2 + sender + jitter
//!   buffer + receiver + per-edge forwarding × edges traversed (1 or 2:
//!   octo links are direct, one hop between any two edges of a conference);
//! - with `latency.impairments`, each leg also has loss and jitter (base +
//!   slope × its length; access legs by the participant's access type): a
//!   lost packet is recovered by NACK one leg RTT later (RFC 4585), so a
//!   leg adds loss × its RTT on average, and the jitter buffer is
//!   max(`jitter_buffer_ms`, factor × path jitter), legs independent
//!   (path jitter = √Σ leg jitter²).

use geomesh_geoip::haversine_km;
use geomesh_selector::strategy::Calibration;

use crate::rng::SimRng;
use crate::scenario::{Impairments, Scenario};
use crate::workload::Site;

/// Stream for access types, apart from the meetings' draws (so adding
/// impairments to a scenario does not change its meetings).
const ACCESS_STREAM: u64 = 0xacce_55c1_a55e_5000;

/// Where an edge ↔ edge RTT comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// The measured matrix.
    Measured,
    /// The fitted distance model.
    Fitted,
    /// Same region.
    IntraRegion,
}

/// Precomputed RTTs for one scenario.
#[derive(Debug, Clone)]
pub struct LatencyModel {
    regions: usize,
    /// sites × regions, ms.
    access: Vec<f64>,
    /// sites × regions, km.
    access_km: Vec<f64>,
    /// sites × regions: region indices nearest first.
    order: Vec<u16>,
    /// regions × regions, km.
    region_km: Vec<f64>,
    /// Access type per participant (empty without impairments).
    class: Vec<u8>,
    impairments: Option<Impairments>,
    jitter_buffer_ms: f64,
    /// regions × regions, ms (diagonal: intra-region).
    region_rtt: Vec<f64>,
    /// regions × regions.
    source: Vec<PairSource>,
    edge_region: Vec<usize>,
    fixed_ms: f64,
    per_edge_ms: f64,
}

impl LatencyModel {
    /// Builds the tables for a scenario's regions and edges, these sites
    /// and `participants` participants (their access types are drawn here).
    pub fn new(s: &Scenario, sites: &[Site], participants: usize) -> Self {
        let cal = Calibration::embedded();
        let m = s.latency.rtt_model;
        let n = s.regions.len();
        let mut access = Vec::with_capacity(sites.len() * n);
        let mut order = Vec::with_capacity(sites.len() * n);
        let mut access_km = Vec::with_capacity(sites.len() * n);
        for site in sites {
            let km: Vec<f64> = s
                .regions
                .iter()
                .map(|r| haversine_km(site.location, r.location))
                .collect();
            let row: Vec<f64> = km.iter().map(|&d| m.rtt_ms(d)).collect();
            access_km.extend_from_slice(&km);
            let mut idx: Vec<u16> = (0..n as u16).collect();
            idx.sort_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]).then(a.cmp(&b)));
            access.extend_from_slice(&row);
            order.extend_from_slice(&idx);
        }
        let mut region_rtt = vec![0.0; n * n];
        let mut source = vec![PairSource::IntraRegion; n * n];
        let mut region_km = vec![0.0; n * n];
        let intra = s.latency.intra_region_rtt_ms.unwrap_or(m.rtt_ms(0.0));
        for (i, a) in s.regions.iter().enumerate() {
            for (j, b) in s.regions.iter().enumerate() {
                let (rtt, src) = if i == j {
                    (intra, PairSource::IntraRegion)
                } else {
                    let measured = match (&a.measured_as, &b.measured_as) {
                        (Some(x), Some(y)) => cal.rtt_ms(x, y),
                        _ => None,
                    };
                    match measured {
                        Some(v) => (v, PairSource::Measured),
                        None => (
                            m.rtt_ms(haversine_km(a.location, b.location)),
                            PairSource::Fitted,
                        ),
                    }
                };
                region_rtt[i * n + j] = rtt;
                region_km[i * n + j] = haversine_km(a.location, b.location);
                source[i * n + j] = src;
            }
        }
        let impairments = s.latency.impairments.clone();
        let class = match &impairments {
            Some(imp) => {
                let mut rng = SimRng::new(s.seed ^ ACCESS_STREAM);
                (0..participants)
                    .map(|_| {
                        let mut u = rng.unit();
                        let last = imp.access.len().saturating_sub(1);
                        imp.access
                            .iter()
                            .position(|c| {
                                u -= c.share;
                                u < 0.0
                            })
                            .unwrap_or(last) as u8
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Self {
            regions: n,
            access,
            access_km,
            order,
            region_km,
            class,
            impairments,
            jitter_buffer_ms: s.latency.jitter_buffer_ms,
            region_rtt,
            source,
            edge_region: s.edges.iter().map(|e| e.region).collect(),
            fixed_ms: s.latency.sender_ms + s.latency.receiver_ms,
            per_edge_ms: s.latency.per_edge_ms,
        }
    }

    /// RTT between a site and a region, ms.
    #[inline]
    pub fn access_rtt(&self, site: u32, region: usize) -> f64 {
        self.access[site as usize * self.regions + region]
    }

    /// Region indices by access RTT from a site, nearest first (ties: file order).
    #[inline]
    pub fn nearest_regions(&self, site: u32) -> &[u16] {
        let s = site as usize * self.regions;
        &self.order[s..s + self.regions]
    }

    /// RTT between two regions, ms, and where it comes from.
    pub fn region_rtt(&self, a: usize, b: usize) -> (f64, PairSource) {
        let k = a * self.regions + b;
        (self.region_rtt[k], self.source[k])
    }

    /// RTT between two edges, ms.
    #[inline]
    pub fn edge_rtt(&self, a: usize, b: usize) -> f64 {
        if a == b {
            0.0
        } else {
            self.region_rtt[self.edge_region[a] * self.regions + self.edge_region[b]]
        }
    }

    /// The RTT matrix between regions, row-major (what the selector is
    /// given as measured inter-region RTTs).
    pub fn region_rtt_matrix(&self) -> &[f64] {
        &self.region_rtt
    }

    /// One-way mouth-to-ear latency from participant A (at `site_a`) to
    /// participant B, ms: propagation, fixed terms, forwarding, and with
    /// impairments the mean NACK recovery delay and the jitter buffer.
    #[inline]
    pub fn one_way(&self, a: Endpoint, edge_a: usize, edge_b: usize, b: Endpoint) -> f64 {
        let (ra, rb) = (self.edge_region[edge_a], self.edge_region[edge_b]);
        let hops = if edge_a == edge_b { 1.0 } else { 2.0 };
        let (rtt_a, rtt_b) = (self.access_rtt(a.site, ra), self.access_rtt(b.site, rb));
        let rtt_e = self.edge_rtt(edge_a, edge_b);
        let base = (rtt_a + rtt_e + rtt_b) / 2.0 + self.fixed_ms + self.per_edge_ms * hops;
        let Some(imp) = &self.impairments else {
            return base + self.jitter_buffer_ms;
        };
        let leg = |who: Endpoint, region: usize| {
            let km = self.access_km[who.site as usize * self.regions + region];
            let c = &imp.access[self
                .class
                .get(who.participant as usize)
                .copied()
                .unwrap_or(0) as usize];
            (
                (c.loss_pct + imp.access_loss_pct_per_1000km * km / 1000.0) / 100.0,
                c.jitter_ms + imp.access_jitter_ms_per_1000km * km / 1000.0,
            )
        };
        let (loss_a, jit_a) = leg(a, ra);
        let (loss_b, jit_b) = leg(b, rb);
        let (loss_e, jit_e) = if edge_a == edge_b {
            (0.0, 0.0)
        } else {
            let km = self.region_km[ra * self.regions + rb];
            (
                (imp.backbone_loss_pct + imp.backbone_loss_pct_per_1000km * km / 1000.0) / 100.0,
                imp.backbone_jitter_ms + imp.backbone_jitter_ms_per_1000km * km / 1000.0,
            )
        };
        // A lost packet comes back one leg RTT later (NACK, RFC 4585).
        let recovery = loss_a.min(1.0) * rtt_a + loss_e.min(1.0) * rtt_e + loss_b.min(1.0) * rtt_b;
        let path_jitter = (jit_a * jit_a + jit_e * jit_e + jit_b * jit_b).sqrt();
        let buffer = self
            .jitter_buffer_ms
            .max(imp.jitter_buffer_factor * path_jitter);
        base + recovery + buffer
    }
}

/// One end of a pair: who, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Participant index (their access type).
    pub participant: u32,
    /// Their site.
    pub site: u32,
}

impl Endpoint {
    /// Participant `participant` at site `site`.
    pub const fn new(participant: u32, site: u32) -> Self {
        Self { participant, site }
    }
}
