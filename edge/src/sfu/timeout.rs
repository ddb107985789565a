//! Why the core wants to wake, and when (str0m's `Output::Timeout`,
//! quinn-proto's `poll_timeout`, with the reason kept: a trace of a busy
//! worker says which timer keeps it up).

use std::time::{Duration, Instant};

use crate::router::PeerKey;

/// What a [`Timeout`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A session's `Rtc` (ICE, DTLS, RTCP, pacing).
    Session(PeerKey),
    /// The routing table's ticks (speaker, last-N, deferred keyframe requests).
    Router,
    /// The periodic re-choice of simulcast layers.
    Layers,
    /// A sibling worker's link (keep-alive, deferred keyframe requests).
    Sibling,
    /// Nothing is due: wake in a while anyway.
    Idle,
}

/// The soonest time the core needs the clock, with its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// When.
    pub at: Instant,
    /// Why.
    pub why: Wake,
}

/// With nothing due, the core still wakes this often.
const IDLE: Duration = Duration::from_secs(1);

impl Timeout {
    /// A timeout at `at` for `why`.
    pub fn new(at: Instant, why: Wake) -> Self {
        Self { at, why }
    }

    /// Nothing due: one idle period after `now`.
    pub fn idle(now: Instant) -> Self {
        Self::new(now + IDLE, Wake::Idle)
    }

    /// The sooner of the two (the first on a tie).
    pub fn min(self, other: Self) -> Self {
        if other.at < self.at { other } else { self }
    }
}
