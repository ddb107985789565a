//! The leader's periodic upkeep (`Op::Maintain`): renewing the leases of
//! live edges and releasing what lapsed or what unhealthy edges held.

use super::*;

impl SelectorState {
    pub(super) fn maintain(
        &mut self,
        now: u64,
        live: &[EdgeId],
        edge_lease_ms: u64,
        unhealthy: &[EdgeId],
    ) -> OpResult {
        self.forget_stopped_recordings(now);
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
        let mut released = gone.len() as u32;
        for (c, p) in gone {
            self.remove_participant(&c, &p);
        }
        for e in unhealthy {
            if !live.contains(e) {
                released += self.release_edge(e);
            }
        }
        // An edge known only from its own description is forgotten with its lease.
        let before = self.edges.len();
        self.edges
            .retain(|e, r| !(r.runtime && lapsed_edges.contains(e)));
        if self.edges.len() != before {
            self.edges_version += 1;
        }
        OpResult::Maintained { renewed, released }
    }
}
