//! The replicated selector state and its pure transition function.
//!
//! [`SelectorState::apply`] takes a [`Command`] (operations plus the time
//! the leader stamped on them) and returns a [`Response`]: no clock, no
//! I/O, so every Raft node computes the same state from the same log.

use std::collections::{BTreeMap, BTreeSet};

use geomesh_core::agent::{ParticipantRef, participant_hash};
use geomesh_core::{ConferenceId, EdgeId, GeoPoint, ParticipantId, RegionId};
use serde::{Deserialize, Serialize};

use super::command::{ApplyError, Command, Op, OpResult, Response};

mod queries;
mod recordings;
mod upkeep;

pub use recordings::{RecordingRecord, STOPPED_KEPT_MS};

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
    /// Its participants are asked to move away (with `draining`).
    #[serde(default)]
    pub migrate: bool,
    /// Draining because the process said it is shutting down (`Leave`):
    /// cleared when the edge registers again with a new boot id, unlike
    /// an operator's drain.
    #[serde(default)]
    pub leaving: bool,
    /// Its participants are released if no leader renews it by then.
    pub lease_until_ms: u64,
    /// GeoDNS address of an edge that described itself.
    #[serde(default)]
    pub public_ip: Option<std::net::IpAddr>,
    /// Registered from its own description (not in the topology): the
    /// record is forgotten when its lease lapses.
    #[serde(default)]
    pub runtime: bool,
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
    /// When the confirmed session started on its edge (the edge's clock),
    /// Unix ms: the newer of two sessions of one participant wins.
    #[serde(default)]
    pub since_ms: Option<u64>,
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
    /// Removed edges and the boot id that may not register again.
    #[serde(default)]
    removed: BTreeMap<EdgeId, String>,
    /// Bumped whenever an edge is registered anew, removed or forgotten.
    #[serde(default)]
    edges_version: u64,
    /// Conferences being recorded.
    #[serde(default)]
    recordings: BTreeMap<ConferenceId, RecordingRecord>,
    /// Edge → conferences it hosts (derived from `conferences`).
    #[serde(skip)]
    by_edge: BTreeMap<EdgeId, BTreeSet<ConferenceId>>,
    /// Edge → digest of its confirmed participants (derived; see
    /// [`geomesh_core::agent::participant_digest`]).
    #[serde(skip)]
    digests: BTreeMap<EdgeId, u64>,
    /// Edge → placements its clients have not used yet (derived): at most
    /// its capacity, so a join flood cannot grow the state without end.
    #[serde(skip)]
    pending: BTreeMap<EdgeId, u32>,
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
        self.digests.clear();
        self.pending.clear();
        for (c, ps) in &self.participants {
            for (p, r) in ps {
                if r.confirmed {
                    *self.digests.entry(r.edge.clone()).or_default() ^= participant_hash(c, p);
                } else {
                    *self.pending.entry(r.edge.clone()).or_default() += 1;
                }
            }
        }
        self.digests.retain(|_, d| *d != 0);
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
                public_ip,
                runtime,
            } => self.register(
                edge,
                EdgeRecord {
                    region: region.clone(),
                    location: *location,
                    capacity: *capacity,
                    base_url: base_url.clone(),
                    boot_id: boot_id.clone(),
                    registered_ms: now,
                    draining: false,
                    migrate: false,
                    leaving: false,
                    lease_until_ms: now.saturating_add(*lease_ms),
                    public_ip: *public_ip,
                    runtime: *runtime,
                },
            ),
            Op::SetDraining {
                edge,
                draining,
                migrate,
            } => match self.edges.get_mut(edge) {
                Some(r) => {
                    r.draining = *draining;
                    r.migrate = *draining && *migrate;
                    r.leaving = false;
                    if *draining {
                        self.release_unconfirmed(edge);
                    }
                    OpResult::Draining {
                        draining: *draining,
                    }
                }
                None => OpResult::Rejected(ApplyError::UnknownEdge(edge.clone())),
            },
            Op::Leave { edge, boot_id } => match self.edges.get_mut(edge) {
                Some(r) if &r.boot_id == boot_id => {
                    // An operator's drain outlives the process; a shutdown does not.
                    r.leaving = !r.draining || r.leaving;
                    r.draining = true;
                    r.migrate = true;
                    let released = self.release_unconfirmed(edge);
                    OpResult::EdgeChanged { released }
                }
                Some(_) => OpResult::Rejected(ApplyError::StaleBoot(edge.clone())),
                None => OpResult::Rejected(ApplyError::UnknownEdge(edge.clone())),
            },
            Op::RemoveEdge { edge } => match self.edges.remove(edge) {
                Some(r) => {
                    let released = self.release_edge(edge);
                    self.removed.insert(edge.clone(), r.boot_id);
                    self.edges_version += 1;
                    OpResult::EdgeChanged { released }
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
            Op::StartRecording {
                conference,
                recording,
                recorder,
                max_height,
            } => self.start_recording(now, conference, recording, recorder, *max_height),
            Op::StopRecording { conference } => self.stop_recording(now, conference),
            Op::MoveRecording {
                conference,
                from,
                to,
            } => self.move_recording(now, conference, from, to),
            Op::Maintain {
                live_edges,
                edge_lease_ms,
                unhealthy,
            } => self.maintain(now, live_edges, *edge_lease_ms, unhealthy),
        }
    }

    /// Registers `rec` (its `registered_ms` and drain fields are decided here).
    fn register(&mut self, edge: &EdgeId, mut rec: EdgeRecord) -> OpResult {
        if self.removed.get(edge) == Some(&rec.boot_id) {
            return OpResult::Rejected(ApplyError::Removed(edge.clone()));
        }
        self.removed.remove(edge);
        let old = self.edges.get(edge);
        let restarted = old.is_some_and(|r| r.boot_id != rec.boot_id);
        match old {
            Some(r) if !restarted => {
                rec.registered_ms = r.registered_ms;
                (rec.draining, rec.migrate, rec.leaving) = (r.draining, r.migrate, r.leaving);
            }
            // A new process of an edge that was leaving comes back in
            // service; an operator's drain stays.
            Some(r) if !r.leaving => (rec.draining, rec.migrate) = (r.draining, r.migrate),
            Some(_) => {}
            None => self.edges_version += 1,
        }
        let released = if restarted {
            self.release_edge(edge)
        } else {
            0
        };
        let draining = rec.draining;
        self.edges.insert(edge.clone(), rec);
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
            Some(r) if self.pending.get(edge).copied().unwrap_or(0) >= r.capacity.max(1) => {
                return OpResult::Rejected(ApplyError::EdgeBusy(edge.clone()));
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
                since_ms: None,
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
        let mut moved = Vec::new();
        for r in refs {
            let current = self
                .participants
                .get(&r.conference)
                .and_then(|m| m.get(&r.participant));
            match current {
                Some(rec) if &rec.edge == edge => {
                    if !rec.confirmed {
                        self.toggle_digest(edge, &r.conference, &r.participant);
                        self.count_pending(edge, false);
                    }
                    let rec = self
                        .participants
                        .get_mut(&r.conference)
                        .and_then(|m| m.get_mut(&r.participant))
                        .expect("matched above");
                    rec.confirmed = true;
                    rec.since_ms = r.since_ms.or(rec.since_ms);
                }
                // Connected elsewhere by a newer session: this one is the
                // ghost (its client moved on), not the other.
                Some(rec) if rec.confirmed && newer(rec.since_ms, r.since_ms) => {
                    moved.push(r.clone());
                    continue;
                }
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
                            since_ms: r.since_ms,
                        },
                    );
                }
            }
            recorded += 1;
        }
        OpResult::Reported {
            recorded,
            ignored: 0,
            moved,
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
        OpResult::Reported {
            recorded,
            ignored,
            moved: Vec::new(),
        }
    }

    /// Releases the placements on `edge` that its clients have not used
    /// yet (it is draining: they are placed again when they ask); a client
    /// that connects anyway is recorded by the edge's report.
    fn release_unconfirmed(&mut self, edge: &EdgeId) -> u32 {
        let gone: Vec<(ConferenceId, ParticipantId)> = self
            .placements_on(edge, None, usize::MAX)
            .into_iter()
            .filter(|(_, _, r)| !r.confirmed)
            .map(|(c, p, _)| (c.clone(), p.clone()))
            .collect();
        for (c, p) in &gone {
            self.remove_participant(c, p);
        }
        gone.len() as u32
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

    /// XORs one participant in or out of an edge's digest.
    fn toggle_digest(&mut self, edge: &EdgeId, c: &ConferenceId, p: &ParticipantId) {
        let d = self.digests.entry(edge.clone()).or_default();
        *d ^= participant_hash(c, p);
        if *d == 0 {
            self.digests.remove(edge);
        }
    }

    /// One more (`true`) or one fewer unused placement on `edge`.
    fn count_pending(&mut self, edge: &EdgeId, more: bool) {
        let n = self.pending.entry(edge.clone()).or_default();
        if more {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        if *n == 0 {
            self.pending.remove(edge);
        }
    }

    fn insert_participant(&mut self, c: &ConferenceId, p: &ParticipantId, rec: ParticipantRecord) {
        let edge = rec.edge.clone();
        if rec.confirmed {
            self.toggle_digest(&edge, c, p);
        } else {
            self.count_pending(&edge, true);
        }
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
        if rec.confirmed {
            self.toggle_digest(&rec.edge, c, p);
        } else {
            self.count_pending(&rec.edge, false);
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
}

/// Whether a recorded session start `theirs` is newer than `ours`
/// (unknown times never win).
fn newer(theirs: Option<u64>, ours: Option<u64>) -> bool {
    matches!((theirs, ours), (Some(t), Some(o)) if t > o)
}

#[cfg(test)]
#[path = "machine_test.rs"]
mod tests;
