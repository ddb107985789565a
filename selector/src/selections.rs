//! The selection log: every placement this node made, with the candidates
//! it weighed, in a bounded ring (served at `GET /v1/selections`), and one
//! structured log line per placement (`target: "geomesh::selection"`).
//!
//! Each node keeps what it decided itself: a client of the log asks every
//! selector and merges by time (`geomesh selector selections` does).

use std::collections::{BTreeMap, VecDeque};

use geomesh_core::ConferenceId;
use geomesh_core::api::{MAX_SELECTION_CANDIDATES, Selection, SelectionCandidate};

use crate::strategy::{ClusterView, Considered, Verdict};

/// Entries a node keeps: about an hour of a busy node's placements, a few
/// megabytes at most (each entry lists at most [`MAX_SELECTION_CANDIDATES`]).
pub const CAPACITY: usize = 10_000;

/// Most entries one `GET /v1/selections` returns.
pub const MAX_QUERY: usize = 5_000;

/// The ring.
#[derive(Debug)]
pub struct SelectionLog {
    entries: VecDeque<Selection>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl SelectionLog {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            dropped: 0,
        }
    }

    /// Records `s` (its `seq` is assigned here) and logs it; the oldest
    /// entry goes when the ring is full.
    pub fn record(&mut self, mut s: Selection) {
        s.seq = self.next_seq;
        self.next_seq += 1;
        tracing::info!(
            target: "geomesh::selection",
            conference = s.conference.as_str(),
            participant = s.participant.as_str(),
            edge = s.edge.as_str(),
            region = s.region.as_str(),
            reason = s.reason,
            rtt_ms = s.rtt_ms,
            rtt_source = s.rtt_source,
            location_source = s.location_source,
            moved_from = s.moved_from.as_ref().map(|e| e.as_str()),
            candidates = %candidates_line(&s.candidates),
            "placed participant"
        );
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(s);
    }

    /// Entries committed after `since_ms` (all without), of `conference`
    /// when given, oldest first, at most `limit`, and how many the ring
    /// dropped since the node started.
    pub fn query(
        &self,
        conference: Option<&ConferenceId>,
        since_ms: Option<u64>,
        limit: usize,
    ) -> (Vec<Selection>, u64) {
        let out = self
            .entries
            .iter()
            .filter(|s| since_ms.is_none_or(|t| s.at_ms > t))
            .filter(|s| conference.is_none_or(|c| &s.conference == c))
            .take(limit)
            .cloned()
            .collect();
        (out, self.dropped)
    }
}

/// The candidates of a placement as the log shows them: the chosen edge
/// and the next ones by RTT, the rest counted by verdict.
pub fn candidates(
    cluster: ClusterView<'_>,
    considered: &[Considered],
) -> (Vec<SelectionCandidate>, BTreeMap<String, u32>) {
    let mut shown = Vec::new();
    let mut more: BTreeMap<String, u32> = BTreeMap::new();
    for c in considered {
        let (Some(e), Some(r)) = (cluster.edge(c.edge), cluster.region_of(c.edge)) else {
            continue;
        };
        if shown.len() < MAX_SELECTION_CANDIDATES || c.verdict == Verdict::Chosen {
            shown.push(SelectionCandidate {
                edge: e.id.clone(),
                region: r.id.clone(),
                rtt_ms: c.rtt.map(|(ms, _)| (ms * 10.0).round() / 10.0),
                rtt_source: c.rtt.map(|(_, s)| s.as_str().to_string()),
                stress: (c.stress * 1000.0).round() / 1000.0,
                verdict: c.verdict.as_str().to_string(),
            });
        } else {
            *more.entry(c.verdict.as_str().to_string()).or_default() += 1;
        }
    }
    (shown, more)
}

/// `edge:verdict` pairs for the log line.
fn candidates_line(c: &[SelectionCandidate]) -> String {
    c.iter()
        .map(|c| format!("{}:{}", c.edge, c.verdict))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use geomesh_core::{EdgeId, ParticipantId, RegionId};

    use super::*;

    fn entry(conf: &str, at_ms: u64) -> Selection {
        Selection {
            seq: 0,
            at_ms,
            selector: "sel-1".into(),
            conference: ConferenceId::new(conf).unwrap(),
            participant: ParticipantId::new("p").unwrap(),
            edge: EdgeId::new("e").unwrap(),
            region: RegionId::new("r").unwrap(),
            reason: "nearest".into(),
            rtt_ms: 12.0,
            rtt_source: "probe".into(),
            location_source: "geoip".into(),
            moved_from: None,
            candidates: Vec::new(),
            more: BTreeMap::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_filters() {
        let mut log = SelectionLog::new(3);
        for (i, c) in ["a", "b", "a", "a"].iter().enumerate() {
            log.record(entry(c, 100 + i as u64));
        }
        let (all, dropped) = log.query(None, None, 10);
        assert_eq!(dropped, 1);
        assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), [2, 3, 4]);
        let a = ConferenceId::new("a").unwrap();
        let (only_a, _) = log.query(Some(&a), Some(102), 10);
        assert_eq!(only_a.iter().map(|s| s.at_ms).collect::<Vec<_>>(), [103]);
        assert_eq!(log.query(None, None, 1).0.len(), 1);
    }
}
