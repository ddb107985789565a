//! What a link tells the edge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use geomesh_core::{ConferenceId, EdgeId, ParticipantId, RegionId};

use super::LinkError;
use crate::wire::{Capabilities, GoodbyeReason, MediaType, SourceId, SourceInfo, Subscription};

/// A source published on the peer's edge, as announced over the link.
/// Shared (`Arc`) between the link, its events and every media packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteSource {
    /// The edge it comes from (the link's peer).
    pub edge: EdgeId,
    /// Its conference.
    pub conference: ConferenceId,
    /// Its stable id on that edge: with `edge`, the key that survives reconnects.
    pub id: SourceId,
    /// Owner, kind, codec, layers.
    pub info: SourceInfo,
}

/// One media packet from the peer.
#[derive(Debug, Clone)]
pub struct MediaIn {
    /// Whose packet.
    pub source: Arc<RemoteSource>,
    /// RTP or RTCP.
    pub ty: MediaType,
    /// The packet (a slice of the datagram, no copy).
    pub packet: Bytes,
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// This side found a problem ([`LinkEvent::Failed`]) and closed.
    Failed(LinkError),
    /// The peer closed the connection with an application close code.
    PeerClosed {
        /// The code ([`super::close_code`]).
        code: u64,
        /// The peer's reason phrase.
        reason: String,
    },
    /// The connection was lost (idle timeout, reset, local shutdown…).
    Lost(String),
}

/// What changed on a link. Remote state events (`Conference*`,
/// `Endpoint*`, `Source*`) describe the peer's edge; `Subscribed`,
/// `Unsubscribed` and `KeyframeRequested` are about *my* sources.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The Hello exchange finished: the peer is who its certificate says and
    /// speaks our version. My state is being announced.
    Up {
        /// The peer's region.
        region: RegionId,
        /// The peer's capabilities.
        capabilities: Capabilities,
    },
    /// The peer finished announcing its state after its Hello. After a
    /// reconnect, whatever it had and did not re-announce has now been
    /// reported removed.
    Synced,
    /// The connection ended. Remote state is kept for the link's resync
    /// grace period: if the link comes back and the peer re-announces the
    /// same conferences, endpoints and sources, no events are repeated.
    Down {
        /// Why.
        reason: DownReason,
    },
    /// The link broke a rule or timed out and stopped; the transport closes
    /// the connection with [`LinkError::close_code`].
    Failed(LinkError),
    /// The peer opened a conference.
    ConferenceOpened {
        /// Which.
        conference: ConferenceId,
    },
    /// The peer left a conference (its endpoints and sources were reported
    /// gone just before).
    ConferenceClosed {
        /// Which.
        conference: ConferenceId,
    },
    /// A participant on the peer's edge joined (or changed its display name).
    EndpointJoined {
        /// The conference.
        conference: ConferenceId,
        /// Who.
        participant: ParticipantId,
        /// Display name.
        display_name: Option<String>,
    },
    /// A participant on the peer's edge left.
    EndpointLeft {
        /// The conference.
        conference: ConferenceId,
        /// Who.
        participant: ParticipantId,
    },
    /// A participant on the peer's edge muted or unmuted (also re-sent
    /// after a reconnect for everyone muted).
    EndpointMuted {
        /// The conference.
        conference: ConferenceId,
        /// Who.
        participant: ParticipantId,
        /// Audio muted.
        audio: bool,
        /// Video muted.
        video: bool,
    },
    /// The peer publishes a source. Subscribe with [`super::Link::subscribe`].
    SourceAdded(Arc<RemoteSource>),
    /// A remote source is gone (any subscription to it is forgotten).
    SourceRemoved(Arc<RemoteSource>),
    /// The peer wants one of my sources (or a different layer of it).
    Subscribed {
        /// My source.
        source: SourceId,
        /// What it asked for.
        subscription: Subscription,
        /// The layer the link will now forward.
        layer: u8,
    },
    /// The peer no longer wants one of my sources.
    Unsubscribed {
        /// My source.
        source: SourceId,
    },
    /// The peer asks for a keyframe of one of my sources.
    KeyframeRequested {
        /// My source.
        source: SourceId,
        /// The layer, or `None` for the one being forwarded.
        layer: Option<u8>,
    },
    /// A round-trip time measured with Ping/Pong on the control stream.
    Rtt(Duration),
    /// The peer said goodbye.
    Goodbye {
        /// Shutdown or draining.
        reason: GoodbyeReason,
        /// Its message.
        message: String,
    },
}

/// Why the link wants to be woken ([`super::Link::poll_timeout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReason {
    /// The peer's Hello is due.
    HelloDeadline,
    /// Time to send a Ping.
    Ping,
    /// The outstanding Ping's Pong is due.
    PongDeadline,
    /// Remote state from before a reconnect expires unless re-announced.
    ResyncDeadline,
    /// A keyframe request deferred by the rate limit is due.
    KeyframeRequest,
}

/// A deadline and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When.
    pub at: Instant,
    /// Why.
    pub reason: TimeoutReason,
}
