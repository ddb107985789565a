//! Moving participants off this edge without ending their calls.
//!
//! A WebSocket client is asked to move (`migrate`): it joins again through
//! the selector, which places it on another edge, connects there, and only
//! then leaves this one, so its media pauses for a reconnect, not a call.
//! WHIP/WHEP sessions have no channel to be asked on: they stay until
//! their clients end them (or the process exits).
//!
//! - An operator's `drain --migrate` ([`follow_migrate`]): one session at a
//!   time, the next once the previous has left (or after [`MOVE_TIMEOUT`]),
//!   so the other edges take the load gradually.
//! - The edge's own shutdown ([`evacuate`]): everyone at once, bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use crate::agent::AgentState;
use crate::media::MediaHandle;
use crate::router::PeerKey;

/// How long one participant may take to move before the next is asked.
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the drain looks at its sessions.
const POLL: Duration = Duration::from_millis(250);

/// Moves this edge's participants away, one by one, while the selectors
/// say it should; runs until the process ends.
pub async fn follow_migrate(media: MediaHandle, agent: Arc<AgentState>) {
    let mut asked: HashMap<PeerKey, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(POLL).await;
        if !agent.should_migrate() {
            asked.clear();
            continue;
        }
        let sessions = media.sessions().await;
        asked.retain(|k, _| sessions.iter().any(|s| s.key == *k));
        if asked.values().any(|t| t.elapsed() < MOVE_TIMEOUT) {
            continue;
        }
        let Some(next) = sessions
            .iter()
            .find(|s| s.movable && !asked.contains_key(&s.key))
        else {
            continue;
        };
        info!(participant = %next.participant, conference = %next.conference, left = sessions.len(), "drain: moving a participant");
        media.migrate(next.key, "draining").await;
        asked.insert(next.key, Instant::now());
    }
}

/// Tells sessions when their conference starts or stops being recorded
/// (the heartbeat answers say which are); runs until the process ends.
pub async fn follow_recording(media: MediaHandle, agent: Arc<AgentState>) {
    let mut told = std::collections::BTreeSet::new();
    loop {
        tokio::time::sleep(POLL).await;
        let now = agent.recording();
        if now != told {
            media.set_recording(now.clone()).await;
            told = now;
        }
    }
}

/// Asks every WebSocket session to move and waits until no session is
/// left or `deadline` passed; returns how many sessions remain.
pub async fn evacuate(media: &MediaHandle, deadline: Duration) -> usize {
    let start = Instant::now();
    let sessions = media.sessions().await;
    let movable = sessions.iter().filter(|s| s.movable).count();
    info!(
        sessions = sessions.len(),
        movable, "shutting down: asking participants to move"
    );
    for s in sessions.iter().filter(|s| s.movable) {
        media.migrate(s.key, "shutdown").await;
    }
    loop {
        let left = media.sessions().await.len();
        if left == 0 || start.elapsed() >= deadline {
            return left;
        }
        tokio::time::sleep(POLL).await;
    }
}
