//! A link's settings and the states it goes through.

use std::time::{Duration, Instant};

use geomesh_core::{EdgeId, RegionId};

use super::LinkError;
use crate::wire::Capabilities;

/// Settings for a link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This edge.
    pub local_edge: EdgeId,
    /// This edge's region (sent in Hello).
    pub local_region: RegionId,
    /// What this edge supports (sent in Hello).
    pub capabilities: Capabilities,
    /// How often to send a Ping for RTT.
    pub ping_interval: Duration,
    /// A Ping unanswered this long fails the link.
    pub ping_timeout: Duration,
    /// The peer's Hello must arrive this soon after connecting.
    pub hello_timeout: Duration,
    /// How long the peer's state outlives a lost connection, waiting to be
    /// re-announced.
    pub resync_grace: Duration,
    /// At most one keyframe request per remote source this often.
    pub keyframe_interval: Duration,
    /// Send every packet of every announced source whether or not the peer
    /// subscribed (what Jitsi's relays do). Only for comparisons.
    pub forward_unsubscribed: bool,
}

impl LinkConfig {
    /// Defaults: ping every 1 s, fail after 10 s without a Pong or a Hello,
    /// keep the peer's state 15 s after a loss, a keyframe request per
    /// source at most every 250 ms.
    pub fn new(local_edge: EdgeId, local_region: RegionId) -> Self {
        Self {
            local_edge,
            local_region,
            capabilities: Capabilities::ALL,
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(10),
            hello_timeout: Duration::from_secs(10),
            resync_grace: Duration::from_secs(15),
            keyframe_interval: Duration::from_millis(250),
            forward_unsubscribed: false,
        }
    }
}

/// Where a link is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// No connection.
    Down,
    /// Connected; waiting for the peer's Hello.
    AwaitingHello {
        /// Since when.
        since: Instant,
    },
    /// Hello exchanged.
    Up {
        /// The peer's region.
        region: RegionId,
        /// The peer's capabilities.
        capabilities: Capabilities,
    },
    /// Stopped by an error; waits for [`super::Link::handle_disconnected`].
    Failed(LinkError),
}
