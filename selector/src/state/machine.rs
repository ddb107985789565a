//! The replicated selector state and its pure transition function.
//!
//! [`SelectorState::apply`] takes a [`Command`] (operations plus the time
//! the leader stamped on them) and returns a [`Response`]: no clock, no
//! I/O, so every Raft node computes the same state from the same log.

use std::collections::{BTreeMap, BTreeSet};

use geomesh_core::agent::ParticipantRef;
use geomesh_core::{ConferenceId, EdgeId, GeoPoint, ParticipantId, RegionId};
use serde::{Deserialize, Serialize};

use super::command::{ApplyError, Command, Op, OpResult, Response};

/// A registered edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeRecord {
    /// Its region.
    pub region: RegionId,
    /// Its region's location.
    pub location: GeoPoint,
    /// Participants at stress 1.0.
    pub capacity: u32,
    /// Base URL clients use.
    pub base_url: String,
    /// Boot id of the registered process.
    pub boot_id: String,
    /// When it (re-)registered, Unix ms.
    pub registered_ms: u64,
    /// Takes no new participants.
    pub draining: bool,
    /// Its participants are released if no leader renews it by then.
    pub lease_until_ms: u64,
}

/// Where one participant is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    /// The edge.
    pub edge: EdgeId,
    /// When it was placed, Unix ms.
    pub placed_ms: u64,
    /// The edge reported the participant connected.
    pub confirmed: bool,
    /// An unconfirmed placement lapses at this time, Unix ms.
    pub lease_until_ms: u64,
}

impl ParticipantRecord {
    /// Confirmed, or its lease has not lapsed at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.confirmed || self.lease_until_ms > now_ms
    }
}

/// Everything the selector cluster agrees on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectorState {
    /// The latest leader time applied (never decreases).
    clock_ms: u64,
    edges: BTreeMap<EdgeId, EdgeRecord>,
    /// Conference → edge → participants placed there.
    conferences: BTreeMap<ConferenceId, BTreeMap<EdgeId, u32>>,
    participants: BTreeMap<ConferenceId, BTreeMap<ParticipantId, ParticipantRecord>>,
    /// Edge → conferences it hosts (derived from `conferences`).
    #[serde(skip)]
    by_edge: BTreeMap<EdgeId, BTreeSet<ConferenceId>>,
}

impl SelectorState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds derived indexes (after deserializing a snapshot).
    pub fn rebuild_indexes(&mut self) {
        self.by_edge.clear();
        for (c, edges) in &self.conferences {
            for e in edges.keys() {
                self.by_edge.entry(e.clone()).or_default().insert(c.clone());
            }
        }
    }

    /// Applies one log entry.
    #[must_use]
    pub fn apply(&mut self, cmd: &Command) -> Response {
        // Leaders' clocks differ: time never goes backwards in the state.
        self.clock_ms = self.clock_ms.max(cmd.now_ms);
        let now = self.clock_ms;
        let results = cmd.ops.iter().map(|op| self.apply_op(now, op)).collect();
        Response { results }
    }

    fn apply_op(&mut self, now: u64, op: &Op) -> OpResult {
        match op {
            Op::RegisterEdge {
                edge,
                region,
                location,
                capacity,
                base_url,
                boot_id,
                lease_ms,
            } => self.register(
                now, edge, region, *location, *capacity, base_url, boot_id, *lease_ms,
            ),
            Op::SetDraining { edge, draining } => match self.edges.get_mut(edge) {
                Some(r) => {
                    r.draining = *draining;
                    OpResult::Draining {
                        draining: *draining,
                    }
                }
                None => OpResult::Rejected(ApplyError::UnknownEdge(edge.clone())),
            },
            Op::Join {
                conference,
                participant,
                edge,
                lease_ms,
                max_edges,
                reassign_from,
            } => self.join(
                now,
                conference,
                participant,
                edge,
                *lease_ms,
                *max_edges,
                reassign_from.as_ref(),
            ),
            Op::Joined { edge, participants } => self.joined(now, edge, participants),
            Op::Left { edge, participants } => self.left(edge, participants),
            Op::Maintain {
                live_edges,
                edge_lease_ms,
            } => self.maintain(now, live_edges, *edge_lease_ms),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        now: u64,
        edge: &EdgeId,
        region: &RegionId,
        location: GeoPoint,
        capacity: u32,
        base_url: &str,
        boot_id: &str,
        lease_ms: u64,
    ) -> OpResult {
        let lease_until_ms = now.saturating_add(lease_ms);
        let (restarted, draining) = match self.edges.get(edge) {
            Some(r) => (r.boot_id != boot_id, r.draining),
            None => (false, false),
        };
        let released = if restarted {
            self.release_edge(edge)
        } else {
            0
        };
        let registered_ms = match self.edges.get(edge) {
            Some(r) if !restarted => r.registered_ms,
            _ => now,
        };
        self.edges.insert(
            edge.clone(),
            EdgeRecord {
                region: region.clone(),
                location,
                capacity,
                base_url: base_url.to_string(),
                boot_id: boot_id.to_string(),
                registered_ms,
                draining,
                lease_until_ms,
            },
        );
        OpResult::Registered {
            restarted,
            released,
            draining,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now: u64,
        conference: &ConferenceId,
        participant: &ParticipantId,
        edge: &EdgeId,
        lease_ms: u64,
        max_edges: Option<u32>,
        reassign_from: Option<&EdgeId>,
    ) -> OpResult {
        let existing = self
            .participant(conference, participant, now)
            .map(|r| r.edge.clone());
        if let Some(current) = &existing
            && (current == edge || reassign_from != Some(current))
        {
            return OpResult::Placed {
                edge: current.clone(),
                created: false,
            };
        }
        match self.edges.get(edge) {
            None => return OpResult::Rejected(ApplyError::UnknownEdge(edge.clone())),
            Some(r) if r.draining => {
                return OpResult::Rejected(ApplyError::EdgeDraining(edge.clone()));
            }
            Some(_) => {}
        }
        // Cap check as if the old placement were already gone.
        let on_conf = self.conferences.get(conference);
        let mut spans = on_conf.map_or(0, |m| m.len());
        let hosts_new = on_conf.is_some_and(|m| m.contains_key(edge));
        if let Some(old) = &existing
            && on_conf.and_then(|m| m.get(old)) == Some(&1)
        {
            spans -= 1;
        }
        if let Some(max_edges) = max_edges
            && !hosts_new
            && spans >= max_edges as usize
        {
            return OpResult::Rejected(ApplyError::ConferenceFull {
                conference: conference.clone(),
                max_edges,
            });
        }
        self.remove_participant(conference, participant);
        self.insert_participant(
            conference,
            participant,
            ParticipantRecord {
                edge: edge.clone(),
                placed_ms: now,
                confirmed: false,
                lease_until_ms: now.saturating_add(lease_ms),
            },
        );
        OpResult::Placed {
            edge: edge.clone(),
            created: true,
        }
    }

    fn joined(&mut self, now: u64, edge: &EdgeId, refs: &[ParticipantRef]) -> OpResult {
        if !self.edges.contains_key(edge) {
            return OpResult::Rejected(ApplyError::UnknownEdge(edge.clone()));
        }
        let mut recorded = 0;
        for r in refs {
            let current = self
                .participants
                .get_mut(&r.conference)
                .and_then(|m| m.get_mut(&r.participant));
            match current {
                Some(rec) if &rec.edge == edge => rec.confirmed = true,
                _ => {
                    // The edge admitted them with a valid token: it is the truth.
                    self.remove_participant(&r.conference, &r.participant);
                    self.insert_participant(
                        &r.conference,
                        &r.participant,
                        ParticipantRecord {
                            edge: edge.clone(),
                            placed_ms: now,
                            confirmed: true,
                            lease_until_ms: now,
                        },
                    );
                }
            }
            recorded += 1;
        }
        OpResult::Reported {
            recorded,
            ignored: 0,
        }
    }

    fn left(&mut self, edge: &EdgeId, refs: &[ParticipantRef]) -> OpResult {
        if !self.edges.contains_key(edge) {
            return OpResult::Rejected(ApplyError::UnknownEdge(edge.clone()));
        }
        let (mut recorded, mut ignored) = (0, 0);
        for r in refs {
            let on_edge = self
                .participants
                .get(&r.conference)
                .and_then(|m| m.get(&r.participant))
                .is_some_and(|rec| &rec.edge == edge);
            if on_edge {
                self.remove_participant(&r.conference, &r.participant);
                recorded += 1;
            } else {
                ignored += 1;
            }
        }
        OpResult::Reported { recorded, ignored }
    }

    fn maintain(&mut self, now: u64, live: &[EdgeId], edge_lease_ms: u64) -> OpResult {
        let mut renewed = 0;
        for e in live {
            if let Some(r) = self.edges.get_mut(e) {
                r.lease_until_ms = r.lease_until_ms.max(now.saturating_add(edge_lease_ms));
                renewed += 1;
            }
        }
        let lapsed_edges: BTreeSet<EdgeId> = self
            .edges
            .iter()
            .filter(|(_, r)| r.lease_until_ms <= now)
            .map(|(e, _)| e.clone())
            .collect();
        let mut gone = Vec::new();
        for (c, ps) in &self.participants {
            for (p, rec) in ps {
                if !rec.is_live(now) || lapsed_edges.contains(&rec.edge) {
                    gone.push((c.clone(), p.clone()));
                }
            }
        }
        let released = gone.len() as u32;
        for (c, p) in gone {
            self.remove_participant(&c, &p);
        }
        OpResult::Maintained { renewed, released }
    }

    /// Releases every participant on `edge`; returns how many.
    fn release_edge(&mut self, edge: &EdgeId) -> u32 {
        let confs: Vec<ConferenceId> = self
            .by_edge
            .get(edge)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut n = 0;
        for c in confs {
            let ps: Vec<ParticipantId> = self.participants.get(&c).map_or_else(Vec::new, |m| {
                m.iter()
                    .filter(|(_, r)| &r.edge == edge)
                    .map(|(p, _)| p.clone())
                    .collect()
            });
            for p in ps {
                self.remove_participant(&c, &p);
                n += 1;
            }
        }
        n
    }

    fn insert_participant(&mut self, c: &ConferenceId, p: &ParticipantId, rec: ParticipantRecord) {
        let edge = rec.edge.clone();
        let prev = self
            .participants
            .entry(c.clone())
            .or_default()
            .insert(p.clone(), rec);
        assert!(
            prev.is_none(),
            "insert over an existing placement (remove first)"
        );
        *self
            .conferences
            .entry(c.clone())
            .or_default()
            .entry(edge.clone())
            .or_default() += 1;
        self.by_edge.entry(edge).or_default().insert(c.clone());
    }

    fn remove_participant(
        &mut self,
        c: &ConferenceId,
        p: &ParticipantId,
    ) -> Option<ParticipantRecord> {
        let ps = self.participants.get_mut(c)?;
        let rec = ps.remove(p)?;
        if ps.is_empty() {
            self.participants.remove(c);
        }
        // Counts mirror `participants`; a missing entry is a bug.
        let edges = self
            .conferences
            .get_mut(c)
            .expect("conference of a placement");
        let n = edges.get_mut(&rec.edge).expect("edge count of a placement");
        *n -= 1;
        if *n == 0 {
            edges.remove(&rec.edge);
            if let Some(s) = self.by_edge.get_mut(&rec.edge) {
                s.remove(c);
                if s.is_empty() {
                    self.by_edge.remove(&rec.edge);
                }
            }
        }
        if edges.is_empty() {
            self.conferences.remove(c);
        }
        Some(rec)
    }

    // ---- reads -------------------------------------------------------

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
        Ok(())
    }
}

#[cfg(test)]
#[path = "machine_test.rs"]
mod tests;
