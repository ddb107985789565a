//! What every session is told and what it hands back: the run's phases,
//! one session's plan, its events and its result. Shared by the WebRTC
//! sessions ([`crate::session`]) and the relay-floor sessions
//! ([`crate::bare`]).

use std::os::fd::AsFd;
use std::time::Instant;

use crate::accounting::{RecvStats, SentStats, Traffic};
use crate::stamp::StreamKey;

/// Where the run stands; sessions follow it through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Joining and negotiating; no media.
    Setup,
    /// Counting from now on; publishers send from the given instant.
    Publish(Instant),
    /// Publishers stop; receivers keep counting what is in flight.
    Drain,
    /// Leave and hand back the results.
    Stop,
}

/// One participant of the run.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// Index in the run (also the order of results).
    pub index: usize,
    /// Conference number.
    pub conference: usize,
    /// Conference id.
    pub conference_id: String,
    /// Display name (`pub0`, `sub3`, …).
    pub name: String,
    /// Which edge (index into the run's edges; 0 for the relay).
    pub edge: usize,
    /// The stream source number if this session publishes.
    pub source: Option<u32>,
    /// Sources this session should receive (every other publisher in its conference).
    pub receives: Vec<u32>,
    /// Remote tracks to wait for before the session is ready.
    pub expected_tracks: usize,
    /// The tile height this session tells the edge it renders
    /// (`video_constraints.max_height`): simulcast layers are chosen for it.
    pub tile_height: Option<u16>,
    /// Speaker view: the participant (by display name) this session shows
    /// on its stage, and the stage's height
    /// (`video_constraints.max_heights`; a substream per feed on Janus).
    pub stage: Option<(String, u16)>,
    /// The publisher talks: Opus every 20 ms. When false its microphone is
    /// silent and it sends what Opus DTX sends then (one comfort-noise
    /// packet per 400 ms), like most participants of a real meeting.
    pub talks: bool,
}

/// Progress a session reports while the run sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Connected and every expected remote track negotiated.
    Ready(usize),
    /// Gave up, with a short reason (counted in the report).
    Failed(usize, String),
}

/// What a session hands back at the end.
#[derive(Debug, Clone, Default)]
pub struct SessionResult {
    /// Index in the run.
    pub index: usize,
    /// Ever connected (ICE + DTLS up, or bound for the relay).
    pub connected: bool,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Frames written (during the publish phase).
    pub sent: SentStats,
    /// Frames generated per stream (what receivers should get).
    pub sent_streams: Vec<(StreamKey, u32)>,
    /// Frames skipped because the session's loop ran late.
    pub skipped_frames: u64,
    /// What arrived (from the publish phase on).
    pub recv: RecvStats,
    /// Datagrams sent, by kind.
    pub tx: Traffic,
    /// Datagrams received, by kind.
    pub rx: Traffic,
    /// The session's own UDP port (for the kernel's drop counters).
    pub local_port: Option<u16>,
    /// The server's media port, when on this host.
    pub server_port: Option<u16>,
}

/// Receive buffer asked for on every client socket. A keyframe burst from a
/// few publishers overflows Linux's default (208 KiB, counted with per-packet
/// overhead) and would be charged to the server as loss; the server's own
/// socket keeps its default.
pub const CLIENT_RCVBUF: usize = 4 << 20;

/// Raises a client socket's receive buffer (best effort: capped by
/// `net.core.rmem_max`).
pub fn enlarge_rcvbuf(sock: &impl AsFd) {
    let _ = socket2::SockRef::from(sock).set_recv_buffer_size(CLIENT_RCVBUF);
}
