//! Soft state: what this selector node heard from edges' heartbeats.
//!
//! Never replicated (each node keeps its own; edges heartbeat every node).
//! Pure: time is passed in. An edge is healthy on this node while its last
//! heartbeat is younger than the health timeout (3 heartbeat intervals by
//! default).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use geomesh_core::EdgeId;
use geomesh_core::agent::{Heartbeat, RecorderHeartbeat, RecordingReport};

/// What one edge last reported to this node.
#[derive(Debug, Clone)]
pub struct EdgeSoft {
    /// When the last heartbeat arrived.
    pub last: Instant,
    /// Its body.
    pub heartbeat: Heartbeat,
    /// Participants this node placed on it since that heartbeat.
    pub placed_since: u32,
    /// Heartbeats received since this node started.
    pub count: u64,
    /// This node's clock when the last heartbeat arrived, Unix ms (with
    /// the edge's `sent_ms`: their clock offset).
    pub received_ms: u64,
    /// Consecutive heartbeats whose digest differed from the replicated
    /// record of the edge's participants.
    pub digest_mismatches: u32,
}

/// Heartbeat-derived state of every edge, on this node.
#[derive(Debug)]
pub struct SoftState {
    edges: HashMap<EdgeId, EdgeSoft>,
    /// Recorders' last heartbeats: when, and their body.
    recorders: HashMap<EdgeId, (Instant, RecorderHeartbeat)>,
    health_timeout: Duration,
    /// When this node started listening.
    since: Instant,
}

impl SoftState {
    /// Empty, listening from `now`: every edge unhealthy until it
    /// heartbeats, but none known to be silent before [`Self::has_listened`].
    pub fn new(health_timeout: Duration, now: Instant) -> Self {
        Self {
            edges: HashMap::new(),
            recorders: HashMap::new(),
            health_timeout,
            since: now,
        }
    }

    /// Whether this node has listened long enough (two health timeouts)
    /// to have heard from every live edge. Before that, an edge it has not
    /// heard from is unknown, not dead: a node that just started (or
    /// restarted) must not release or move anyone on its say.
    pub fn has_listened(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) > self.health_timeout * 2
    }

    /// Known to be silent: not healthy, and this node has listened long
    /// enough to tell.
    pub fn is_silent(&self, edge: &EdgeId, now: Instant) -> bool {
        !self.is_healthy(edge, now) && self.has_listened(now)
    }

    /// Takes a (validated) heartbeat that arrived at `now`, `wall_ms` on
    /// this node's clock.
    pub fn heartbeat(&mut self, edge: &EdgeId, hb: Heartbeat, now: Instant, wall_ms: u64) {
        let (count, digest_mismatches) = self
            .edges
            .get(edge)
            .map_or((0, 0), |e| (e.count, e.digest_mismatches));
        self.edges.insert(
            edge.clone(),
            EdgeSoft {
                last: now,
                heartbeat: hb,
                placed_since: 0,
                count: count + 1,
                digest_mismatches,
                received_ms: wall_ms,
            },
        );
    }

    /// Records whether the edge's last digest matched the replicated state;
    /// returns how many heartbeats in a row did not. One mismatch is
    /// usually a report still on its way; two in a row are not.
    pub fn note_digest(&mut self, edge: &EdgeId, matched: bool) -> u32 {
        let Some(e) = self.edges.get_mut(edge) else {
            return 0;
        };
        e.digest_mismatches = if matched {
            0
        } else {
            e.digest_mismatches.saturating_add(1)
        };
        e.digest_mismatches
    }

    /// Forgets an edge (it restarted: its old load means nothing).
    pub fn forget(&mut self, edge: &EdgeId) {
        self.edges.remove(edge);
    }

    /// Counts a placement this node made on `edge`.
    pub fn record_placement(&mut self, edge: &EdgeId) {
        if let Some(e) = self.edges.get_mut(edge) {
            e.placed_since = e.placed_since.saturating_add(1);
        }
    }

    /// Heartbeat within the health timeout.
    pub fn is_healthy(&self, edge: &EdgeId, now: Instant) -> bool {
        self.edges
            .get(edge)
            .is_some_and(|e| now.saturating_duration_since(e.last) < self.health_timeout)
    }

    /// The last report of an edge.
    pub fn get(&self, edge: &EdgeId) -> Option<&EdgeSoft> {
        self.edges.get(edge)
    }

    /// Edges healthy at `now`, sorted.
    pub fn live_edges(&self, now: Instant) -> Vec<EdgeId> {
        let mut v: Vec<EdgeId> = self
            .edges
            .keys()
            .filter(|e| self.is_healthy(e, now))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Takes a (validated) recorder heartbeat that arrived at `now`.
    pub fn recorder_heartbeat(&mut self, recorder: &EdgeId, hb: RecorderHeartbeat, now: Instant) {
        self.recorders.insert(recorder.clone(), (now, hb));
    }

    /// A recorder's heartbeat is within the health timeout.
    pub fn is_recorder_healthy(&self, recorder: &EdgeId, now: Instant) -> bool {
        self.recorders
            .get(recorder)
            .is_some_and(|(last, _)| now.saturating_duration_since(*last) < self.health_timeout)
    }

    /// Known to be silent: not healthy, and this node listened long enough
    /// to tell.
    pub fn is_recorder_silent(&self, recorder: &EdgeId, now: Instant) -> bool {
        !self.is_recorder_healthy(recorder, now) && self.has_listened(now)
    }

    /// What a recorder last reported of one recording part.
    pub fn recording_report(&self, recorder: &EdgeId, part: &str) -> Option<&RecordingReport> {
        self.recorders
            .get(recorder)?
            .1
            .recordings
            .iter()
            .find(|r| r.recording == part)
    }

    /// The health timeout.
    pub fn health_timeout(&self) -> Duration {
        self.health_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb() -> Heartbeat {
        Heartbeat {
            boot_id: "b".into(),
            participants: 1,
            conferences: 1,
            packet_rate: 0.0,
            bitrate_bps: 0.0,
            cpu: 0.1,
            stress: 0.01,
            links: vec![],
            digest: None,
            about: None,
        }
    }

    #[test]
    fn three_missed_heartbeats_make_an_edge_unhealthy() {
        let t0 = Instant::now();
        let mut s = SoftState::new(Duration::from_secs(3), Instant::now());
        let e = EdgeId::new("e1").unwrap();
        assert!(!s.is_healthy(&e, t0), "unknown until it heartbeats");
        s.heartbeat(&e, hb(), t0, 0);
        assert!(s.is_healthy(&e, t0 + Duration::from_millis(2_999)));
        assert!(!s.is_healthy(&e, t0 + Duration::from_secs(3)));
        s.record_placement(&e);
        s.record_placement(&e);
        assert_eq!(s.get(&e).unwrap().placed_since, 2);
        s.heartbeat(&e, hb(), t0 + Duration::from_secs(4), 4000);
        assert_eq!(
            s.get(&e).unwrap().placed_since,
            0,
            "a heartbeat resets the burst count"
        );
        assert_eq!(s.live_edges(t0 + Duration::from_secs(5)), vec![e.clone()]);
        s.forget(&e);
        assert!(s.live_edges(t0 + Duration::from_secs(5)).is_empty());
    }
}
