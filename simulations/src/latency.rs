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
//!   octo links are direct, one hop between any two edges of a conference).

use geomesh_geoip::haversine_km;
use geomesh_selector::strategy::Calibration;

use crate::scenario::Scenario;
use crate::workload::Site;

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
    /// sites × regions: region indices nearest first.
    order: Vec<u16>,
    /// regions × regions, ms (diagonal: intra-region).
    region_rtt: Vec<f64>,
    /// regions × regions.
    source: Vec<PairSource>,
    edge_region: Vec<usize>,
    fixed_ms: f64,
    per_edge_ms: f64,
}

impl LatencyModel {
    /// Builds the tables for a scenario's regions and edges and these sites.
    pub fn new(s: &Scenario, sites: &[Site]) -> Self {
        let cal = Calibration::embedded();
        let m = s.latency.rtt_model;
        let n = s.regions.len();
        let mut access = Vec::with_capacity(sites.len() * n);
        let mut order = Vec::with_capacity(sites.len() * n);
        for site in sites {
            let row: Vec<f64> = s
                .regions
                .iter()
                .map(|r| m.rtt_between(site.location, r.location))
                .collect();
            let mut idx: Vec<u16> = (0..n as u16).collect();
            idx.sort_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]).then(a.cmp(&b)));
            access.extend_from_slice(&row);
            order.extend_from_slice(&idx);
        }
        let mut region_rtt = vec![0.0; n * n];
        let mut source = vec![PairSource::IntraRegion; n * n];
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
                source[i * n + j] = src;
            }
        }
        Self {
            regions: n,
            access,
            order,
            region_rtt,
            source,
            edge_region: s.edges.iter().map(|e| e.region).collect(),
            fixed_ms: s.latency.sender_ms + s.latency.jitter_buffer_ms + s.latency.receiver_ms,
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

    /// One-way mouth-to-ear latency from participant A to participant B, ms.
    #[inline]
    pub fn one_way(&self, site_a: u32, edge_a: usize, edge_b: usize, site_b: u32) -> f64 {
        let hops = if edge_a == edge_b { 1.0 } else { 2.0 };
        self.access_rtt(site_a, self.edge_region[edge_a]) / 2.0
            + self.edge_rtt(edge_a, edge_b) / 2.0
            + self.access_rtt(site_b, self.edge_region[edge_b]) / 2.0
            + self.fixed_ms
            + self.per_edge_ms * hops
    }
}
