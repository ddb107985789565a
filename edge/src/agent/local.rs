//! What the agent knows of this edge's participants, without I/O: the set
//! connected now (with its digest), the events not yet reported, and how
//! they are cut into reports that keep each participant's events in order.

use std::collections::{HashMap, HashSet};

use geomesh_core::agent::{
    MAX_REPORT_ENTRIES, ParticipantRef, ParticipantReport, PlacementEntry, participant_hash,
};
use geomesh_core::{ConferenceId, ParticipantId};

/// A participant arriving at or leaving this edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantEvent {
    /// Joined (true) or left (false).
    pub joined: bool,
    /// The conference.
    pub conference: ConferenceId,
    /// The participant.
    pub participant: ParticipantId,
    /// When the session started, Unix ms (joins).
    pub since_ms: Option<u64>,
}

type Key = (ConferenceId, ParticipantId);

/// The participants connected to this edge and the reports owed.
#[derive(Debug, Default)]
pub struct LocalParticipants {
    /// Sessions per participant (a reconnect overlaps its old session
    /// briefly) and the newest one's start.
    sessions: HashMap<Key, (u32, Option<u64>)>,
    digest: u64,
    pending: Vec<ParticipantEvent>,
}

/// Most events kept while no selector takes them.
pub const MAX_PENDING: usize = 10_000;

impl LocalParticipants {
    /// Applies an event to the set and queues it for reporting.
    pub fn handle_event(&mut self, ev: ParticipantEvent) {
        let key = (ev.conference.clone(), ev.participant.clone());
        if ev.joined {
            let e = self.sessions.entry(key).or_insert((0, None));
            if e.0 == 0 {
                self.digest ^= participant_hash(&ev.conference, &ev.participant);
            }
            e.0 += 1;
            e.1 = ev.since_ms.max(e.1);
        } else if let Some(e) = self.sessions.get_mut(&key) {
            e.0 -= 1;
            if e.0 == 0 {
                self.sessions.remove(&key);
                self.digest ^= participant_hash(&ev.conference, &ev.participant);
            }
        }
        self.pending.push(ev);
        if self.pending.len() > MAX_PENDING {
            let excess = self.pending.len() - MAX_PENDING;
            tracing::warn!(
                dropped = excess,
                "no selector reachable; dropping the oldest participant reports (a resync repairs them)"
            );
            self.pending.drain(..excess);
        }
    }

    /// The [`geomesh_core::agent::participant_digest`] of the set.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Participants connected now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No participant connected.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// When the newest session of a participant started, if connected.
    pub fn since(&self, conference: &ConferenceId, participant: &ParticipantId) -> Option<u64> {
        self.sessions
            .get(&(conference.clone(), participant.clone()))
            .and_then(|e| e.1)
    }

    /// Events are waiting to be reported.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next report: the oldest pending events, at most
    /// [`MAX_REPORT_ENTRIES`], cut before the second event of any one
    /// participant so that a selector applying `joined` before `left`
    /// still applies each participant's events in the order they happened.
    /// Returns it with the number of events it carries.
    pub fn next_report(&self) -> Option<(ParticipantReport, usize)> {
        if self.pending.is_empty() {
            return None;
        }
        let mut report = ParticipantReport::default();
        let mut seen: HashSet<(&ConferenceId, &ParticipantId)> = HashSet::new();
        let mut n = 0;
        for ev in &self.pending {
            if n == MAX_REPORT_ENTRIES || !seen.insert((&ev.conference, &ev.participant)) {
                break;
            }
            let r = ParticipantRef {
                conference: ev.conference.clone(),
                participant: ev.participant.clone(),
                since_ms: if ev.joined { ev.since_ms } else { None },
            };
            if ev.joined {
                report.joined.push(r);
            } else {
                report.left.push(r);
            }
            n += 1;
        }
        Some((report, n))
    }

    /// The first `n` pending events were reported.
    pub fn reported(&mut self, n: usize) {
        self.pending.drain(..n.min(self.pending.len()));
    }

    /// Queues what differs between the set and the cluster's record of
    /// this edge (`recorded`: every placement on it): a `joined` for each
    /// participant connected here that is not recorded as confirmed here,
    /// a `left` for each confirmed one that is not connected.
    pub fn resync(&mut self, recorded: &[PlacementEntry]) -> (usize, usize) {
        let confirmed: HashSet<Key> = recorded
            .iter()
            .filter(|r| r.confirmed)
            .map(|r| (r.conference.clone(), r.participant.clone()))
            .collect();
        let mut joined: Vec<ParticipantEvent> = self
            .sessions
            .iter()
            .filter(|(k, _)| !confirmed.contains(*k))
            .map(|((c, p), (_, since))| ParticipantEvent {
                joined: true,
                conference: c.clone(),
                participant: p.clone(),
                since_ms: *since,
            })
            .collect();
        joined
            .sort_by(|a, b| (&a.conference, &a.participant).cmp(&(&b.conference, &b.participant)));
        let mut left: Vec<ParticipantEvent> = confirmed
            .into_iter()
            .filter(|k| !self.sessions.contains_key(k))
            .map(|(conference, participant)| ParticipantEvent {
                joined: false,
                conference,
                participant,
                since_ms: None,
            })
            .collect();
        left.sort_by(|a, b| (&a.conference, &a.participant).cmp(&(&b.conference, &b.participant)));
        let counts = (joined.len(), left.len());
        self.pending.extend(joined);
        self.pending.extend(left);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geomesh_core::agent::participant_digest;

    fn ev(joined: bool, c: &str, p: &str, since: u64) -> ParticipantEvent {
        ParticipantEvent {
            joined,
            conference: c.parse().unwrap(),
            participant: p.parse().unwrap(),
            since_ms: joined.then_some(since),
        }
    }

    #[test]
    fn digest_follows_the_set_not_the_sessions() {
        let mut l = LocalParticipants::default();
        l.handle_event(ev(true, "c", "ada", 1));
        l.handle_event(ev(true, "c", "ada", 2)); // reconnect overlaps
        l.handle_event(ev(true, "c", "bob", 3));
        l.handle_event(ev(false, "c", "ada", 0));
        let (c, ada, bob) = (
            "c".parse().unwrap(),
            "ada".parse().unwrap(),
            "bob".parse().unwrap(),
        );
        assert_eq!(l.digest(), participant_digest([(&c, &ada), (&c, &bob)]));
        assert_eq!(l.since(&c, &ada), Some(2));
        l.handle_event(ev(false, "c", "ada", 0));
        assert_eq!(l.digest(), participant_digest([(&c, &bob)]));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn reports_keep_each_participants_events_in_order() {
        let mut l = LocalParticipants::default();
        // A rejoin on this edge: the old session leaves, the new one joins.
        l.handle_event(ev(false, "c", "ada", 0));
        l.handle_event(ev(true, "c", "ada", 5));
        l.handle_event(ev(true, "c", "bob", 6));
        let (r, n) = l.next_report().unwrap();
        assert_eq!(n, 1, "cut before ada's second event");
        assert_eq!(r.left.len(), 1);
        assert!(r.joined.is_empty());
        l.reported(n);
        let (r, n) = l.next_report().unwrap();
        assert_eq!(n, 2);
        assert_eq!(r.joined.len(), 2);
        assert_eq!(r.joined[0].since_ms, Some(5));
        l.reported(n);
        assert!(l.next_report().is_none());
    }

    #[test]
    fn reports_are_bounded() {
        let mut l = LocalParticipants::default();
        for i in 0..(MAX_REPORT_ENTRIES + 5) {
            l.handle_event(ev(true, "c", &format!("p{i}"), 1));
        }
        let (r, n) = l.next_report().unwrap();
        assert_eq!(
            (r.joined.len(), n),
            (MAX_REPORT_ENTRIES, MAX_REPORT_ENTRIES)
        );
        l.reported(n);
        assert_eq!(l.next_report().unwrap().1, 5);
    }

    #[test]
    fn resync_reports_the_difference() {
        let mut l = LocalParticipants::default();
        l.handle_event(ev(true, "c", "ada", 1));
        l.handle_event(ev(true, "c", "bob", 2));
        l.reported(2);
        let entry = |p: &str, confirmed| PlacementEntry {
            conference: "c".parse().unwrap(),
            participant: p.parse().unwrap(),
            confirmed,
        };
        // The cluster lost bob, still has a ghost, and a client on its way.
        let (j, left) = l.resync(&[
            entry("ada", true),
            entry("ghost", true),
            entry("new", false),
        ]);
        assert_eq!((j, left), (1, 1));
        let (r, _) = l.next_report().unwrap();
        assert_eq!(r.joined[0].participant.as_str(), "bob");
        assert_eq!(r.joined[0].since_ms, Some(2));
        assert_eq!(r.left[0].participant.as_str(), "ghost");
    }
}
