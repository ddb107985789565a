//! What the state says: the reads the API, the agent and the placement
//! strategy make of it, and the invariants the tests check.

use super::*;

impl SelectorState {
    /// The latest leader time applied, Unix ms.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Registered edges.
    pub fn edges(&self) -> &BTreeMap<EdgeId, EdgeRecord> {
        &self.edges
    }

    /// One registered edge.
    pub fn edge(&self, id: &EdgeId) -> Option<&EdgeRecord> {
        self.edges.get(id)
    }

    /// A live placement.
    pub fn participant(
        &self,
        c: &ConferenceId,
        p: &ParticipantId,
        now_ms: u64,
    ) -> Option<&ParticipantRecord> {
        self.participants
            .get(c)?
            .get(p)
            .filter(|r| r.is_live(now_ms))
    }

    /// Placements of one conference (including lapsed ones not yet swept).
    pub fn conference_participants(
        &self,
        c: &ConferenceId,
    ) -> Option<&BTreeMap<ParticipantId, ParticipantRecord>> {
        self.participants.get(c)
    }

    /// Edges of one conference with their placement counts.
    pub fn conference_edges(&self, c: &ConferenceId) -> Option<&BTreeMap<EdgeId, u32>> {
        self.conferences.get(c)
    }

    /// Every conference with its edges.
    pub fn conferences(&self) -> &BTreeMap<ConferenceId, BTreeMap<EdgeId, u32>> {
        &self.conferences
    }

    /// Conferences an edge hosts, each with the other edges hosting it.
    pub fn octo_peers(&self, edge: &EdgeId) -> BTreeMap<ConferenceId, Vec<EdgeId>> {
        let mut out = BTreeMap::new();
        for c in self.by_edge.get(edge).into_iter().flatten() {
            let others = self.conferences[c]
                .keys()
                .filter(|e| *e != edge)
                .cloned()
                .collect();
            out.insert(c.clone(), others);
        }
        out
    }

    /// Digest of the confirmed participants on one edge.
    pub fn digest(&self, edge: &EdgeId) -> u64 {
        self.digests.get(edge).copied().unwrap_or(0)
    }

    /// Bumped whenever the set of registered edges changes.
    pub fn edges_version(&self) -> u64 {
        self.edges_version
    }

    /// The boot id a removed edge may not register with again.
    pub fn removed_boot(&self, edge: &EdgeId) -> Option<&str> {
        self.removed.get(edge).map(String::as_str)
    }

    /// Placements on one edge, in (conference, participant) order, after
    /// `after` (exclusive), at most `limit`.
    pub fn placements_on(
        &self,
        edge: &EdgeId,
        after: Option<(&ConferenceId, &ParticipantId)>,
        limit: usize,
    ) -> Vec<(&ConferenceId, &ParticipantId, &ParticipantRecord)> {
        let mut out = Vec::new();
        for c in self.by_edge.get(edge).into_iter().flatten() {
            if after.is_some_and(|(ac, _)| c < ac) {
                continue;
            }
            for (p, r) in &self.participants[c] {
                if &r.edge != edge || after.is_some_and(|(ac, ap)| (c, p) <= (ac, ap)) {
                    continue;
                }
                if out.len() == limit {
                    return out;
                }
                out.push((c, p, r));
            }
        }
        out
    }

    /// Placements on one edge.
    pub fn participants_on(&self, edge: &EdgeId) -> u32 {
        self.by_edge
            .get(edge)
            .into_iter()
            .flatten()
            .map(|c| self.conferences[c].get(edge).copied().unwrap_or(0))
            .sum()
    }

    /// Total placements.
    pub fn participant_count(&self) -> usize {
        self.participants.values().map(BTreeMap::len).sum()
    }

    /// Checks that the derived counts and indexes match the placements
    /// (tests and debug assertions).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts: BTreeMap<ConferenceId, BTreeMap<EdgeId, u32>> = BTreeMap::new();
        for (c, ps) in &self.participants {
            if ps.is_empty() {
                return Err(format!("empty participant map for {c}"));
            }
            for rec in ps.values() {
                *counts
                    .entry(c.clone())
                    .or_default()
                    .entry(rec.edge.clone())
                    .or_default() += 1;
            }
        }
        if counts != self.conferences {
            return Err(format!("counts {counts:?} != {:?}", self.conferences));
        }
        let mut copy = self.clone();
        copy.rebuild_indexes();
        if copy.by_edge != self.by_edge {
            return Err("by_edge index out of date".into());
        }
        if copy.pending != self.pending {
            return Err(format!("pending {:?} != {:?}", self.pending, copy.pending));
        }
        if copy.digests != self.digests {
            return Err(format!("digests {:?} != {:?}", self.digests, copy.digests));
        }
        Ok(())
    }
}
