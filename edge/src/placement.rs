//! Which media worker a new session goes to.
//!
//! A conference starts on its home worker (a hash of its id, stable, so
//! small meetings never cross workers: no channel, no copy). Once it has
//! `spread_above` sessions there, further sessions go to the least-loaded
//! worker, and the workers join the conference over sibling links
//! ([`crate::sibling`]): a webinar or an all-hands is no longer capped at
//! one core. A participant who joins again goes to the worker of its
//! session there, which replaces it (one session per participant, as in a
//! conference on one worker). The counts are kept by the workers themselves
//! (a session is counted when a worker accepts it and uncounted when it
//! ends, whatever ends it), read without locking the workers.

use std::collections::HashMap;
use std::sync::Mutex;

use geomesh_core::{ConferenceId, ParticipantId};

use crate::workers::worker_of_conference;

/// The default `spread_above`: below this a conference's whole fan-out is
/// a fraction of one core (a 10-person gallery meeting forwards ~3.5k
/// packets per second, a core ~100k), so keeping it whole costs nothing;
/// above it, one meeting could saturate its worker while others idle.
pub const DEFAULT_SPREAD_ABOVE: usize = 25;

/// Sessions per worker, per conference and in all.
#[derive(Debug)]
pub struct Placement {
    /// Sessions on a conference's home worker before it spreads (`None`:
    /// never).
    spread_above: Option<usize>,
    inner: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    /// Sessions per worker.
    total: Vec<usize>,
    /// Sessions per worker of each conference with sessions here.
    conferences: HashMap<ConferenceId, Vec<usize>>,
    /// Where each participant's sessions are, and how many (a replacing
    /// session is counted before the one it replaces ends).
    participants: HashMap<(ConferenceId, ParticipantId), (usize, usize)>,
}

impl Placement {
    /// `workers` workers; conferences spread after `spread_above` sessions
    /// on their home worker (`None`: never).
    pub fn new(workers: usize, spread_above: Option<usize>) -> Self {
        Self {
            spread_above,
            inner: Mutex::new(Counts {
                total: vec![0; workers.max(1)],
                conferences: HashMap::new(),
                participants: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Poisoned only if a holder panicked, which is a bug elsewhere.
        self.inner.lock().expect("placement lock poisoned")
    }

    /// The worker for a new session of `participant` in `conference`.
    pub fn choose(&self, conference: &ConferenceId, participant: &ParticipantId) -> usize {
        let c = self.lock();
        if let Some((w, _)) = c
            .participants
            .get(&(conference.clone(), participant.clone()))
        {
            return *w;
        }
        let n = c.total.len();
        let home = worker_of_conference(conference, n);
        let Some(limit) = self.spread_above else {
            return home;
        };
        let at_home = c.conferences.get(conference).map_or(0, |v| v[home]);
        if at_home < limit {
            return home;
        }
        // Least loaded; the home worker wins ties.
        (0..n)
            .min_by_key(|&w| (c.total[w], w != home))
            .unwrap_or(home)
    }

    /// Worker `w` accepted a session of `participant` in `conference`.
    pub fn joined(&self, conference: &ConferenceId, participant: &ParticipantId, w: usize) {
        let mut c = self.lock();
        let n = c.total.len();
        c.total[w] += 1;
        c.conferences
            .entry(conference.clone())
            .or_insert_with(|| vec![0; n])[w] += 1;
        c.participants
            .entry((conference.clone(), participant.clone()))
            .or_insert((w, 0))
            .1 += 1;
    }

    /// A session of `participant` in `conference` on worker `w` ended.
    pub fn left(&self, conference: &ConferenceId, participant: &ParticipantId, w: usize) {
        let mut c = self.lock();
        let key = (conference.clone(), participant.clone());
        if let Some((_, n)) = c.participants.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.participants.remove(&key);
            }
        }
        c.total[w] = c.total[w].saturating_sub(1);
        if let Some(v) = c.conferences.get_mut(conference) {
            v[w] = v[w].saturating_sub(1);
            if v.iter().all(|x| *x == 0) {
                c.conferences.remove(conference);
            }
        }
    }

    /// Conferences with sessions on this edge.
    pub fn conferences(&self) -> usize {
        self.lock().conferences.len()
    }

    /// Sessions per worker.
    #[cfg(test)]
    fn totals(&self) -> Vec<usize> {
        self.lock().total.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(s: &str) -> ConferenceId {
        s.parse().unwrap()
    }

    fn who(i: usize) -> ParticipantId {
        format!("p{i}").parse().unwrap()
    }

    #[test]
    fn small_conferences_stay_home_large_ones_spread_to_the_least_loaded() {
        let p = Placement::new(2, Some(3));
        let c = conf("all-hands");
        let home = worker_of_conference(&c, 2);
        for i in 0..3 {
            let w = p.choose(&c, &who(i));
            assert_eq!(w, home);
            p.joined(&c, &who(i), w);
        }
        // Home is full: the other worker, until it is as loaded, then
        // alternating (ties go home).
        let mut seen = Vec::new();
        for i in 3..9 {
            let w = p.choose(&c, &who(i));
            p.joined(&c, &who(i), w);
            seen.push(w);
        }
        assert_eq!(&seen[..3], &[1 - home; 3]);
        let t = p.totals();
        assert_eq!(t[0] + t[1], 9);
        assert!(t[0].abs_diff(t[1]) <= 1, "{t:?}");
        // Leaving frees the home worker again.
        for i in 0..3 {
            p.left(&c, &who(i), home);
        }
        let other = conf("standup");
        let w = p.choose(&other, &who(0));
        assert_eq!(w, worker_of_conference(&other, 2));
    }

    #[test]
    fn never_spreads_without_a_limit() {
        let p = Placement::new(4, None);
        let c = conf("webinar");
        for i in 0..100 {
            let w = p.choose(&c, &who(i));
            p.joined(&c, &who(i), w);
        }
        assert_eq!(p.totals()[worker_of_conference(&c, 4)], 100);
    }

    #[test]
    fn a_participant_joining_again_goes_to_its_sessions_worker() {
        let p = Placement::new(2, Some(1));
        let c = conf("all-hands");
        let first = p.choose(&c, &who(0));
        p.joined(&c, &who(0), first);
        let second = p.choose(&c, &who(1));
        p.joined(&c, &who(1), second);
        assert_ne!(first, second);
        // p1 again: its worker, although the other is as loaded. The new
        // session is counted before the replaced one ends.
        assert_eq!(p.choose(&c, &who(1)), second);
        p.joined(&c, &who(1), second);
        p.left(&c, &who(1), second);
        assert_eq!(p.choose(&c, &who(1)), second);
        p.left(&c, &who(1), second);
        assert_eq!(p.totals().iter().sum::<usize>(), 1);
    }
}
