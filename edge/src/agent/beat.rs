//! The heartbeat to one selector node, in its own task: a node that hangs
//! delays only its own heartbeats (each call has its own deadline), never
//! those to the other nodes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use geomesh_core::agent::{HEARTBEAT_PATH, Heartbeat, HeartbeatResponse};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::AgentState;
use super::client::{CallError, Selector};

/// What a heartbeat answer asks of the agent's main task.
#[derive(Debug)]
pub(crate) enum Ask {
    /// The node does not know this edge (or this boot): register again.
    Register,
    /// The cluster's record of the participants differs: compare and report.
    Resync,
    /// The current selector nodes.
    Selectors(Vec<geomesh_core::agent::SelectorEndpoint>),
    /// The cluster's edge directory has this version: read it if it is new.
    Directory(u64),
}

/// Heartbeats `sel` with the latest body every interval until aborted.
pub(crate) async fn run(
    sel: Arc<Selector>,
    mut body: watch::Receiver<Option<Heartbeat>>,
    state: Arc<AgentState>,
    asks: mpsc::UnboundedSender<Ask>,
) {
    let mut next = Instant::now();
    loop {
        tokio::time::sleep_until(next.into()).await;
        let interval = Duration::from_millis(state.heartbeat_ms.load(Ordering::Relaxed));
        next = (next + interval).max(Instant::now());
        if !state.registered.load(Ordering::Relaxed) {
            continue;
        }
        let Some(mut hb) = body.borrow_and_update().clone() else {
            continue;
        };
        // The edge's clock as this one leaves: selectors estimate skew.
        if let Some(a) = &mut hb.about {
            a.sent_ms = unix_ms();
        }
        // One interval (at least a second) per call: a late answer is
        // worth less than the next heartbeat.
        let deadline = interval.max(Duration::from_secs(1));
        match sel
            .post::<_, HeartbeatResponse>(HEARTBEAT_PATH, &hb, deadline)
            .await
        {
            Ok(resp) => {
                state.answered(&sel.id, &resp);
                if resp.resync {
                    let _ = asks.send(Ask::Resync);
                }
                if !resp.selectors.is_empty() {
                    let _ = asks.send(Ask::Selectors(resp.selectors));
                }
                if state.directory_changed(resp.edges_version) {
                    let _ = asks.send(Ask::Directory(resp.edges_version));
                }
            }
            Err(CallError::Status { status: 410, body }) => {
                if !state.removed.swap(true, Ordering::Relaxed) {
                    warn!(selector = %sel.id, %body, "this edge was removed from the cluster: moving its participants away");
                }
            }
            Err(CallError::Status { status: 409, body }) => {
                warn!(selector = %sel.id, %body, "heartbeat refused; registering again");
                state.registered.store(false, Ordering::Relaxed);
                let _ = asks.send(Ask::Register);
            }
            Err(e) => debug!(selector = %sel.id, "heartbeat: {e}"),
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
