//! The node's background tasks: noting when it has no leader, and (on the
//! leader) the maintenance that releases what unhealthy edges held.

use super::*;

/// How often the leader looks for edges that just became unhealthy: their
/// participants are released at once, not at the next lease sweep.
pub(super) const UNHEALTHY_CHECK: Duration = Duration::from_millis(250);

/// Notes since when this node knows no leader (Raft metrics change when
/// the leader does).
pub(super) async fn watch_leader(shared: Arc<Shared>) {
    let mut rx = shared.raft.metrics();
    let mut stop = shared.stop.clone();
    loop {
        let leader = rx.borrow_and_update().current_leader;
        {
            let mut since = shared
                .leaderless_since
                .lock()
                .expect("leaderless_since lock poisoned");
            match (leader, *since) {
                (Some(_), _) => *since = None,
                (None, None) => *since = Some(Instant::now()),
                (None, Some(_)) => {}
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// The leader's upkeep: every `maintain_interval`, renew the leases of
/// edges heartbeating this node and release lapsed placements; and as soon
/// as a registered edge with placements stops heartbeating (health
/// timeout), release its placements so its clients are placed elsewhere.
pub(super) async fn maintain(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(UNHEALTHY_CHECK.min(shared.cfg.maintain_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep: Option<Instant> = None;
    // Edges whose placements this leader released since it last heard from
    // them: judged once per silence. An edge cut off from the leader only
    // (it still heartbeats the others) has its participants brought back
    // by its digest through another node, and they stay.
    let mut judged: std::collections::BTreeSet<geomesh_core::EdgeId> = Default::default();
    let mut recordings = crate::recording::Upkeep::default();
    loop {
        tick.tick().await;
        if !shared.is_leader() {
            last_sweep = None;
            judged.clear();
            recordings = crate::recording::Upkeep::default();
            continue;
        }
        let now = Instant::now();
        let (live, unhealthy) = {
            let soft = shared.soft();
            let live = soft.live_edges(now);
            judged.retain(|e| !live.contains(e));
            // A node that has not yet listened for a whole health timeout
            // has not heard from every edge: it judges no one.
            let unhealthy = if soft.has_listened(now) {
                shared.with_state(|st| {
                    st.edges()
                        .keys()
                        .filter(|e| {
                            !live.contains(e) && !judged.contains(*e) && st.participants_on(e) > 0
                        })
                        .cloned()
                        .collect::<Vec<_>>()
                })
            } else {
                Vec::new()
            };
            (live, unhealthy)
        };
        let recording_ops = recordings.ops(&shared, now);
        if !recording_ops.is_empty()
            && let Err(e) = shared.propose(recording_ops).await
        {
            tracing::debug!(error = %e, "recording upkeep not committed");
        }
        let sweep_due =
            last_sweep.is_none_or(|t| now.duration_since(t) >= shared.cfg.maintain_interval);
        if !sweep_due && unhealthy.is_empty() {
            continue;
        }
        if !unhealthy.is_empty() {
            tracing::info!(edges = ?unhealthy.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
                "edges stopped heartbeating: releasing their participants");
        }
        let op = Op::Maintain {
            live_edges: live,
            edge_lease_ms: u64::try_from(shared.cfg.edge_lease.as_millis()).unwrap_or(u64::MAX),
            unhealthy: unhealthy.clone(),
        };
        match shared.propose(vec![op]).await {
            Ok(_) => {
                last_sweep = Some(now);
                judged.extend(unhealthy);
            }
            Err(e) => tracing::debug!(error = %e, "maintenance entry not committed"),
        }
    }
}
