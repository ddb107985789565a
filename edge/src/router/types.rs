//! The routing table's public types: session and source keys, roles,
//! events and errors.

use geomesh_core::{EdgeId, ParticipantId};

/// One participant session on this edge (a WebSocket, WHIP or WHEP session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);

/// One published media source (one incoming m-line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u64);

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// What a session does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Publishes and receives everyone else (the meeting page, WebSocket clients).
    Member,
    /// Publishes only (WHIP).
    Publisher,
    /// Receives one publisher's audio and video (WHEP): the given
    /// participant, or else the most recent publisher.
    Viewer {
        /// The participant to watch, if the client named one.
        follow: Option<ParticipantId>,
    },
    /// A participant on another edge, mirrored from an octo link: in the
    /// roster, publishes the sources that link announces, receives nothing.
    Remote {
        /// Its edge.
        edge: EdgeId,
    },
}

impl Role {
    /// Whether the session shows in rosters (everyone but WHEP viewers).
    pub fn in_roster(&self) -> bool {
        !matches!(self, Role::Viewer { .. })
    }
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The session.
    pub key: PeerKey,
    /// Participant id (from the join token).
    pub participant: ParticipantId,
    /// Display name.
    pub name: Option<String>,
    /// Role.
    pub role: Role,
}

/// What changed; the media loop acts on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// Give `to` a track for `source` (owned by `owner`).
    Subscribe {
        /// The subscriber.
        to: PeerKey,
        /// The source.
        source: SourceId,
        /// Its publisher.
        owner: PeerKey,
        /// Its kind.
        kind: Kind,
        /// Whether packets flow on it from the start (else a later
        /// [`RouterEvent::Forward`] turns it on).
        forwarded: bool,
    },
    /// Start or stop forwarding `source` on `to`'s existing track (last-N).
    Forward {
        /// The subscriber.
        to: PeerKey,
        /// The source.
        source: SourceId,
        /// Forward from now on.
        on: bool,
    },
    /// Tell `to` who the dominant speaker is now.
    DominantSpeaker {
        /// Who to tell.
        to: PeerKey,
        /// The dominant speaker.
        peer: PeerKey,
    },
    /// Stop sending `source` to `to`.
    Unsubscribe {
        /// The subscriber.
        to: PeerKey,
        /// The source.
        source: SourceId,
    },
    /// Tell `to` that `peer` joined.
    Joined {
        /// Who to tell.
        to: PeerKey,
        /// Who joined.
        peer: PeerKey,
    },
    /// Tell `to` that `peer` left.
    Left {
        /// Who to tell.
        to: PeerKey,
        /// Who left.
        peer: PeerKey,
    },
    /// A keyframe request deferred by the rate limit is due: relay it now
    /// ([`Router::keyframe_request`] will say yes).
    KeyframeDue {
        /// The source.
        source: SourceId,
    },
}

/// Why a join is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The session key is already in use (a bug in the caller).
    #[error("session {0:?} already joined")]
    DuplicateKey(PeerKey),
    /// The session is not known.
    #[error("unknown session {0:?}")]
    UnknownPeer(PeerKey),
    /// A viewer cannot publish.
    #[error("a viewer session cannot publish")]
    ViewerCannotPublish,
}
