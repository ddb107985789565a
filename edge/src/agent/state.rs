//! What the agent shares with the edge: what selectors last said (drain,
//! migrate, where the public API is).

use super::*;

/// What the agent learned, shared with the rest of the edge.
#[derive(Default)]
pub struct AgentState {
    /// Registered with the cluster.
    pub registered: AtomicBool,
    /// The selectors asked this edge to drain.
    pub draining: AtomicBool,
    /// The selectors asked this edge to move its participants away.
    pub migrate: AtomicBool,
    /// Per local conference, the other edges hosting it (octo peers).
    pub peers: Mutex<BTreeMap<ConferenceId, Vec<EdgeId>>>,
    /// Public API base URLs of the selector nodes: where a browser that
    /// opens this edge's meeting page is sent to join.
    pub selector_apis: Mutex<Vec<String>>,
    /// An operator removed this edge from the cluster: it takes nobody new
    /// and moves its participants away until the process is restarted.
    pub removed: AtomicBool,
    /// The heartbeat period the selectors asked for, in milliseconds.
    pub(super) heartbeat_ms: AtomicU64,
    /// The cluster's edge directory version last applied to the octo
    /// allowlist (`u64::MAX`: none yet).
    pub(super) edges_version: AtomicU64,
    /// This edge's conferences being recorded (last heartbeat answer).
    pub(super) recording: Mutex<std::collections::BTreeSet<ConferenceId>>,
}

impl AgentState {
    /// Takes one heartbeat answer.
    pub(super) fn answered(&self, from: &SelectorId, resp: &HeartbeatResponse) {
        self.draining.store(resp.draining, Ordering::Relaxed);
        self.migrate.store(resp.migrate, Ordering::Relaxed);
        self.heartbeat_ms.store(
            resp.heartbeat_interval_ms.clamp(100, 60_000),
            Ordering::Relaxed,
        );
        *self.peers.lock().expect("peers lock") = resp.conferences.clone();
        *self.recording.lock().expect("recording lock") = resp.recording.iter().cloned().collect();
        debug!(selector = %from, draining = resp.draining, migrate = resp.migrate, "heartbeat answered");
    }

    /// Whether the selectors' edge directory differs from the one applied.
    pub(super) fn directory_changed(&self, version: u64) -> bool {
        self.edges_version.load(Ordering::Relaxed) != version
    }

    /// This edge's conferences being recorded, as the last heartbeat
    /// answer said.
    pub fn recording(&self) -> std::collections::BTreeSet<geomesh_core::ConferenceId> {
        self.recording.lock().expect("recording lock").clone()
    }

    /// Whether the current participants should be moved away.
    pub fn should_migrate(&self) -> bool {
        self.migrate.load(Ordering::Relaxed) || self.removed.load(Ordering::Relaxed)
    }

    /// The first selector public API URL, if any is known.
    pub fn selector_api(&self) -> Option<String> {
        self.selector_apis
            .lock()
            .expect("selector list lock")
            .first()
            .cloned()
    }
}
