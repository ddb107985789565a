//! Requests from signaling to the core, and what it answers.

use geomesh_core::{ConferenceId, ParticipantId};

use crate::messages::{MediaKindName, RosterEntry};
use crate::router::{PeerKey, Role};

/// Why the media loop refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP could not be parsed or applied.
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// The session is not known (ended, or never existed).
    #[error("unknown session")]
    UnknownSession,
    /// The session already made its offer.
    #[error("session already has an offer")]
    AlreadyOffered,
    /// No edge offer is waiting for an answer.
    #[error("no offer is awaiting an answer")]
    NoPendingOffer,
    /// The media loop has stopped.
    #[error("media loop stopped")]
    Stopped,
}

/// A join that the media loop accepted.
#[derive(Debug)]
pub struct Joined {
    /// The new session.
    pub key: PeerKey,
    /// Everyone already in the conference.
    pub roster: Vec<RosterEntry>,
}

/// Requests from signaling to the media loop.
#[derive(Debug)]
pub enum Command {
    /// Open a session.
    Join {
        /// Conference.
        conference: ConferenceId,
        /// Participant id (from the token).
        participant: ParticipantId,
        /// Display name (from the token).
        name: Option<String>,
        /// What it does.
        role: Role,
        /// A WebSocket session: it hears signaling messages
        /// ([`super::Output::Signal`]).
        signaling: bool,
        /// When it started (Unix ms: the wall clock, which the selector
        /// compares across edges to tell the newer session).
        since_ms: u64,
        /// Where the selector located the participant (the token's `loc`).
        location: Option<geomesh_core::GeoPoint>,
    },
    /// The client's offer; the response is our answer SDP.
    Offer {
        /// Session.
        key: PeerKey,
        /// SDP offer.
        sdp: String,
    },
    /// The client's answer to our offer.
    Answer {
        /// Session.
        key: PeerKey,
        /// SDP answer.
        sdp: String,
    },
    /// Mute state changed.
    Mute {
        /// Session.
        key: PeerKey,
        /// Kind.
        kind: MediaKindName,
        /// Muted.
        muted: bool,
    },
    /// What a subscriber wants to receive.
    Constraints {
        /// Session.
        key: PeerKey,
        /// Its last-N, if it set one.
        last_n: Option<u32>,
        /// Pinned participants.
        pinned: Vec<ParticipantId>,
        /// Tile heights: every tile's, and some participants'.
        tiles: crate::tiles::TileHeights,
    },
    /// End a session; the response says whether it existed.
    Leave {
        /// Session.
        key: PeerKey,
    },
    /// End this worker's sessions of a participant (it is connected to
    /// another edge by a newer session): told `code`, then closed.
    Evict {
        /// Conference.
        conference: ConferenceId,
        /// Participant.
        participant: ParticipantId,
        /// Error code the client is told (`moved`).
        code: &'static str,
        /// Only sessions that started at or before this time (Unix ms).
        not_after_ms: u64,
    },
    /// This worker's local sessions.
    Sessions,
    /// The conferences of this edge being recorded now (all of them:
    /// sessions of conferences that changed are told).
    Recording {
        /// Conferences recorded.
        conferences: std::collections::BTreeSet<ConferenceId>,
    },
    /// Ask a WebSocket session to move to another edge.
    Migrate {
        /// Session.
        key: PeerKey,
        /// Why (`draining`, `shutdown`).
        reason: &'static str,
    },
}

/// What the core answers a [`Command`] with, at once.
#[derive(Debug)]
pub enum Response {
    /// Nothing to say (mute, constraints, evict, migrate; a join the
    /// router refused, which is a bug).
    Done,
    /// To `Join`.
    Joined(Joined),
    /// To `Offer`: our answer SDP.
    Answer(Result<String, MediaError>),
    /// To `Answer`.
    Applied(Result<(), MediaError>),
    /// To `Leave`: whether the session existed.
    Left(bool),
    /// To `Sessions`.
    Sessions(Vec<SessionSummary>),
}

/// One local session, as drain and migration see it.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    /// The session.
    pub key: PeerKey,
    /// Its conference.
    pub conference: ConferenceId,
    /// Its participant.
    pub participant: ParticipantId,
    /// It has a signaling channel (a WebSocket client that can be asked to move).
    pub movable: bool,
}
