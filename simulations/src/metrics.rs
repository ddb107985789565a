//! What a run measures, and the summaries written out.

use serde::Serialize;

/// One-way latencies are binned at 0.1 ms up to this, with an overflow bin.
pub const HISTOGRAM_MAX_MS: f64 = 2_000.0;
const BINS_PER_MS: f64 = 10.0;
/// ITU-T G.114: one-way delay above 150 ms degrades conversation.
pub const G114_MS: f64 = 150.0;
/// A harsher second threshold (issue #17's); G.114 itself puts the limit
/// for network planning at 400 ms.
pub const HARD_MS: f64 = 300.0;

/// Pair latencies: exact count, sum, max and share above 150 ms; 0.1 ms
/// bins (values rounded to the nearest 0.1 ms) for percentiles and the CDF.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    bins: Vec<u64>,
    overflow: u64,
    count: u64,
    sum: f64,
    max: f64,
    above_g114: u64,
    above_hard: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            bins: vec![0; (HISTOGRAM_MAX_MS * BINS_PER_MS) as usize + 1],
            overflow: 0,
            count: 0,
            sum: 0.0,
            max: 0.0,
            above_g114: 0,
            above_hard: 0,
        }
    }
}

impl LatencyHistogram {
    /// Records one pair's one-way latency, ms.
    #[inline]
    pub fn record(&mut self, ms: f64) {
        self.count += 1;
        self.sum += ms;
        if ms > self.max {
            self.max = ms;
        }
        if ms > G114_MS {
            self.above_g114 += 1;
        }
        if ms > HARD_MS {
            self.above_hard += 1;
        }
        let b = (ms * BINS_PER_MS).round();
        if b >= 0.0 && (b as usize) < self.bins.len() {
            self.bins[b as usize] += 1;
        } else {
            self.overflow += 1;
        }
    }

    /// Number of pairs.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Nearest-rank percentile (0 < p ≤ 1), to 0.1 ms; `None` when empty;
    /// [`HISTOGRAM_MAX_MS`] when it falls in the overflow bin.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(i as f64 / BINS_PER_MS);
            }
        }
        Some(HISTOGRAM_MAX_MS)
    }

    /// Share of pairs at or below each whole millisecond from 0 to `to_ms`.
    pub fn cdf(&self, to_ms: u32) -> Vec<(u32, f64)> {
        let mut out = Vec::with_capacity(to_ms as usize + 1);
        let mut seen = 0u64;
        let mut bin = 0usize;
        for ms in 0..=to_ms {
            let limit = ((ms as f64 + 0.05) * BINS_PER_MS) as usize;
            while bin < self.bins.len() && bin <= limit {
                seen += self.bins[bin];
                bin += 1;
            }
            let share = if self.count == 0 {
                0.0
            } else {
                seen as f64 / self.count as f64
            };
            out.push((ms, share));
        }
        out
    }

    /// The summary written out.
    pub fn summary(&self) -> LatencySummary {
        let r1 = |v: f64| (v * 1000.0).round() / 1000.0;
        let share = |n: u64| {
            if self.count == 0 {
                0.0
            } else {
                r1(n as f64 / self.count as f64 * 100.0) / 100.0
            }
        };
        LatencySummary {
            pairs: self.count,
            mean_ms: if self.count == 0 {
                0.0
            } else {
                r1(self.sum / self.count as f64)
            },
            p50_ms: self.percentile(0.50).unwrap_or(0.0),
            p95_ms: self.percentile(0.95).unwrap_or(0.0),
            p99_ms: self.percentile(0.99).unwrap_or(0.0),
            max_ms: r1(self.max),
            share_above_150ms: share(self.above_g114),
            share_above_300ms: share(self.above_hard),
        }
    }
}

/// Pairwise one-way latency.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Participant pairs measured (each pair when it forms, and again when a
    /// failure re-forms it).
    pub pairs: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms (0.1 ms resolution).
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Share of pairs above 150 ms one way (ITU-T G.114).
    pub share_above_150ms: f64,
    /// Share of pairs above 300 ms one way.
    pub share_above_300ms: f64,
}

/// Edges per conference (the most it used at once).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgesPerConference {
    /// Conferences with at least one placed participant.
    pub conferences: u64,
    /// Mean.
    pub mean: f64,
    /// 95th percentile.
    pub p95: u32,
    /// Largest.
    pub max: u32,
    /// `histogram[k]` conferences used at most `k` edges at once.
    pub histogram: Vec<u64>,
}

impl EdgesPerConference {
    /// From the histogram.
    pub fn from_histogram(histogram: Vec<u64>) -> Self {
        let conferences: u64 = histogram.iter().sum();
        let total: u64 = histogram
            .iter()
            .enumerate()
            .map(|(k, c)| k as u64 * c)
            .sum();
        let max = histogram.iter().rposition(|&c| c > 0).unwrap_or(0) as u32;
        let rank = (0.95 * conferences as f64).ceil() as u64;
        let mut seen = 0;
        let mut p95 = 0;
        for (k, &c) in histogram.iter().enumerate() {
            seen += c;
            if seen >= rank.max(1) {
                p95 = k as u32;
                break;
            }
        }
        Self {
            conferences,
            mean: if conferences == 0 {
                0.0
            } else {
                (total as f64 / conferences as f64 * 1000.0).round() / 1000.0
            },
            p95,
            max,
            histogram,
        }
    }
}

/// One edge's load over a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeReport {
    /// Edge id.
    pub id: String,
    /// Its region.
    pub region: String,
    /// Participants it is sized for.
    pub capacity: u32,
    /// Most participants connected at once.
    pub peak_load: u32,
    /// peak_load / capacity.
    pub peak_stress: f64,
    /// Participants placed on it (joins and re-placements).
    pub placements: u64,
}

/// Octo relay traffic between edges, from per-source bitrates: each edge
/// sends one copy of each local participant's audio and video to every
/// other edge of the conference (all of which have subscribers).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelaySummary {
    /// Bytes between edges in different regions.
    pub inter_region_bytes: u64,
    /// Bytes between edges of the same region.
    pub intra_region_bytes: u64,
}

/// Everything one strategy's run reports.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyReport {
    /// Strategy label.
    pub name: String,
    /// Its rule.
    pub kind: crate::scenario::StrategyKind,
    /// Join attempts (first joins, not re-placements).
    pub joins: u64,
    /// Joins placed.
    pub placed: u64,
    /// Joins refused (no edge could take them).
    pub rejected: u64,
    /// Placements onto an edge already at or over capacity.
    pub over_capacity: u64,
    /// Participants cut off by an edge or region failure (each time).
    pub displaced: u64,
    /// Of those, re-placements refused.
    pub displaced_rejected: u64,
    /// Placements onto an edge that had failed but was not yet detected.
    pub blind_placements: u64,
    /// Pairwise one-way latency.
    pub latency: LatencySummary,
    /// Edges per conference.
    pub edges_per_conference: EdgesPerConference,
    /// Relay traffic.
    pub relay: RelaySummary,
    /// Per edge.
    pub edges: Vec<EdgeReport>,
    /// `geomesh` only: decisions by the selector's reason label.
    pub reasons: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_cdf_and_share() {
        let mut h = LatencyHistogram::default();
        for v in [10.0, 20.04, 30.0, 160.0, 2_500.0] {
            h.record(v);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.percentile(0.2), Some(10.0));
        assert_eq!(h.percentile(0.4), Some(20.0));
        assert_eq!(h.percentile(0.5), Some(30.0));
        assert_eq!(h.percentile(0.8), Some(160.0));
        assert_eq!(h.percentile(1.0), Some(HISTOGRAM_MAX_MS));
        let s = h.summary();
        assert_eq!(s.share_above_150ms, 0.4);
        assert_eq!(s.max_ms, 2_500.0);
        let cdf = h.cdf(200);
        assert_eq!(cdf[9].1, 0.0);
        assert_eq!(cdf[10].1, 0.2);
        assert_eq!(cdf[20].1, 0.4);
        assert_eq!(cdf[200].1, 0.8);
        assert_eq!(LatencyHistogram::default().percentile(0.5), None);
    }

    #[test]
    fn edges_per_conference_summary() {
        let e = EdgesPerConference::from_histogram(vec![0, 90, 8, 2]);
        assert_eq!(e.conferences, 100);
        assert_eq!(e.mean, 1.12);
        assert_eq!(e.p95, 2);
        assert_eq!(e.max, 3);
    }
}
