//! What the media workers share of the octo links to other edges.
//!
//! An edge has one link per peer edge, and a conference spread over several
//! workers ([`crate::placement`]) is announced on it by each of them (each
//! its own participants and sources: the link's state is the union). Two
//! things need agreement: a conference closes on the links only when no
//! worker hosts it any more, and the link carries one subscription per
//! remote source, the widest any worker wants (each worker's subscribers
//! then take the layer that comes, as across edges). The dispatcher hands
//! a remote source's packets to the workers that want it.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use geomesh_core::{ConferenceId, EdgeId};
use geomesh_mesh::wire::{SourceId, Subscription};

/// Shared by the workers and the octo dispatcher.
#[derive(Debug)]
pub struct LinkShare {
    workers: usize,
    /// Workers with local participants, per conference.
    open: Mutex<HashMap<ConferenceId, usize>>,
    /// Each worker's wish per remote source (index: worker), by peer edge:
    /// the dispatcher looks a packet's source up without building a key.
    demand: RwLock<HashMap<EdgeId, HashMap<SourceId, Wishes>>>,
}

/// One wish per worker (`None`: that worker does not want the source).
type Wishes = Vec<Option<Subscription>>;

/// Several wishes as one: the highest layer and tallest tile anyone wants
/// (0 height: someone has no limit).
fn merge(wishes: &[Option<Subscription>]) -> Option<Subscription> {
    wishes
        .iter()
        .flatten()
        .copied()
        .reduce(|a, b| Subscription {
            max_layer: a.max_layer.max(b.max_layer),
            max_height: if a.max_height == 0 || b.max_height == 0 {
                0
            } else {
                a.max_height.max(b.max_height)
            },
        })
}

impl LinkShare {
    /// For `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            open: Mutex::new(HashMap::new()),
            demand: RwLock::new(HashMap::new()),
        }
    }

    /// A worker got its first local participant of `conference`.
    pub fn opened(&self, conference: &ConferenceId) {
        *self
            .open
            .lock()
            .expect("link share lock poisoned")
            .entry(conference.clone())
            .or_default() += 1;
    }

    /// A worker lost its last local participant of `conference`; true when
    /// no worker has any (close it on the links).
    pub fn closed(&self, conference: &ConferenceId) -> bool {
        let mut open = self.open.lock().expect("link share lock poisoned");
        let Some(n) = open.get_mut(conference) else {
            return true;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            open.remove(conference);
            return true;
        }
        false
    }

    /// Worker `w` now wants `want` of a remote source. Returns what the
    /// link should be subscribed to (`None`: nothing). The caller compares
    /// it with the link's own state, which the peer can change too (a
    /// source replaced after a restart loses its subscription).
    pub fn want(
        &self,
        edge: &EdgeId,
        id: SourceId,
        w: usize,
        want: Option<Subscription>,
    ) -> Option<Subscription> {
        let mut demand = self.demand.write().expect("link share lock poisoned");
        let sources = demand.entry(edge.clone()).or_default();
        let wishes = sources
            .entry(id)
            .or_insert_with(|| vec![None; self.workers]);
        wishes[w] = want;
        let merged = merge(wishes);
        if merged.is_none() {
            sources.remove(&id);
            if sources.is_empty() {
                demand.remove(edge);
            }
        }
        merged
    }

    /// Appends to `out` the workers that want packets of a remote source.
    pub fn wanting(&self, edge: &EdgeId, id: SourceId, out: &mut Vec<usize>) {
        let demand = self.demand.read().expect("link share lock poisoned");
        if let Some(wishes) = demand.get(edge).and_then(|s| s.get(&id)) {
            out.extend(
                wishes
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.is_some())
                    .map(|(i, _)| i),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(max_height: u16) -> Option<Subscription> {
        Some(Subscription {
            max_layer: Subscription::ANY_LAYER,
            max_height,
        })
    }

    #[test]
    fn the_link_subscription_is_the_widest_wish() {
        let s = LinkShare::new(2);
        let e: EdgeId = "edge-b".parse().unwrap();
        let id = SourceId(3);
        assert_eq!(s.want(&e, id, 0, sub(180)), sub(180));
        // A taller tile on the other worker widens it; a smaller one does not.
        assert_eq!(s.want(&e, id, 1, sub(720)), sub(720));
        assert_eq!(s.want(&e, id, 0, sub(360)), sub(720));
        // No limit wins.
        assert_eq!(s.want(&e, id, 0, sub(0)), sub(0));
        let mut w = Vec::new();
        s.wanting(&e, id, &mut w);
        assert_eq!(w, vec![0, 1]);
        assert_eq!(s.want(&e, id, 0, None), sub(720));
        // The last one out unsubscribes.
        assert_eq!(s.want(&e, id, 1, None), None);
        w.clear();
        s.wanting(&e, id, &mut w);
        assert!(w.is_empty());
    }

    #[test]
    fn a_conference_closes_when_the_last_worker_leaves_it() {
        let s = LinkShare::new(2);
        let c: ConferenceId = "all-hands".parse().unwrap();
        s.opened(&c);
        s.opened(&c);
        assert!(!s.closed(&c));
        assert!(s.closed(&c));
    }
}
