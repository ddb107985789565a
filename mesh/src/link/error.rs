//! What ends a link, why a call is refused, why a datagram or packet is dropped.

use geomesh_core::{ConferenceId, EdgeId};

use crate::wire::{DecodeError, FrameType, SourceHandle, SourceId};

/// QUIC application close codes of octo connections (`CONNECTION_CLOSE`
/// error code; the reason phrase is the error's text).
pub mod close_code {
    /// Orderly close (shutdown, a peer going away).
    pub const NORMAL: u32 = 0x0;
    /// A malformed frame or a frame that breaks the protocol's rules.
    pub const PROTOCOL: u32 = 0x1;
    /// The peer speaks another protocol version.
    pub const VERSION: u32 = 0x2;
    /// The Hello's edge id is not the id in the peer's certificate.
    pub const IDENTITY: u32 = 0x3;
    /// The peer's certificate is not an edge certificate of this cluster.
    pub const NOT_AN_EDGE: u32 = 0x4;
    /// No Hello, or no Pong, in time.
    pub const TIMEOUT: u32 = 0x5;
    /// Another connection to the same peer won (see the transport docs).
    pub const DUPLICATE: u32 = 0x6;
}

/// Why a link failed. The link stops; the transport closes the connection
/// with [`LinkError::close_code`] and the error's text, then reconnects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A control frame could not be decoded.
    #[error("malformed control frame: {0}")]
    Decode(#[from] DecodeError),
    /// A well-formed frame that breaks the protocol's rules.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
    /// The peer's Hello has another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer {theirs}")]
    VersionMismatch {
        /// Ours.
        ours: u64,
        /// Theirs.
        theirs: u64,
    },
    /// The peer's Hello names another edge than its certificate.
    #[error("the peer's certificate is for edge {certificate} but its Hello says {hello}")]
    IdentityMismatch {
        /// The id from the verified certificate.
        certificate: EdgeId,
        /// The id the Hello claimed.
        hello: EdgeId,
    },
    /// No Hello arrived in time.
    #[error("no Hello within the handshake timeout")]
    HelloTimeout,
    /// A Ping went unanswered for too long.
    #[error("the peer did not answer a Ping in time")]
    Unresponsive,
}

impl LinkError {
    /// The QUIC application close code for this error ([`close_code`]).
    pub fn close_code(&self) -> u32 {
        match self {
            LinkError::Decode(_) | LinkError::Protocol(_) => close_code::PROTOCOL,
            LinkError::VersionMismatch { .. } => close_code::VERSION,
            LinkError::IdentityMismatch { .. } => close_code::IDENTITY,
            LinkError::HelloTimeout | LinkError::Unresponsive => close_code::TIMEOUT,
        }
    }
}

/// A well-formed frame that the link's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A frame other than Hello arrived first.
    #[error("{} before Hello", .0.name())]
    FrameBeforeHello(FrameType),
    /// A second Hello on one connection.
    #[error("second Hello")]
    DuplicateHello,
    /// A conference handle the peer already uses.
    #[error("conference handle {0} already open")]
    DuplicateConferenceHandle(u16),
    /// A conference the peer already opened under another handle.
    #[error("conference {0} already open")]
    DuplicateConference(ConferenceId),
    /// A conference handle the peer never opened.
    #[error("unknown conference handle {0}")]
    UnknownConference(u16),
    /// A source handle the peer already uses.
    #[error("source handle {0} already in use")]
    DuplicateSourceHandle(u32),
    /// A source id the peer already announced.
    #[error("source id {} already announced", .0.0)]
    DuplicateSourceId(SourceId),
    /// A source handle the peer never announced.
    #[error("unknown source handle {0}")]
    UnknownSource(u32),
}

/// Why a call on the link was refused (a mistake by the caller, not the peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The conference was not opened on this link.
    #[error("conference {0} is not open on this link")]
    ConferenceNotOpen(ConferenceId),
    /// The remote source is not known on this link.
    #[error("no remote source {} on this link", .0.0)]
    UnknownRemoteSource(SourceId),
    /// The source description breaks a wire limit.
    #[error("invalid source: {0}")]
    InvalidSource(#[from] crate::wire::EncodeError),
    /// A source id above 2^62 − 1.
    #[error("source id {} is above 2^62-1", .0.0)]
    SourceIdTooLarge(SourceId),
    /// Every handle is in use.
    #[error("no free {0} handle on this link")]
    OutOfHandles(&'static str),
}

/// Why an incoming datagram was dropped. Count these; the link stays up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// The bytes are not a media datagram.
    #[error("malformed datagram: {0}")]
    Decode(#[from] DecodeError),
    /// Media before the Hello exchange finished.
    #[error("media before the link is up")]
    NotUp,
    /// A source handle the peer has not announced (or just removed).
    #[error("unknown source handle {}", .0.get())]
    UnknownSource(SourceHandle),
    /// The datagram's conference handle is not its source's.
    #[error("source handle {} is not in conference handle {conference}", .handle.get())]
    WrongConference {
        /// The source.
        handle: SourceHandle,
        /// The conference handle the datagram named.
        conference: u16,
    },
    /// A fragment whose count or RTP/RTCP type differs from the earlier
    /// fragments of its packet.
    #[error("fragment of packet {packet} disagrees with its earlier fragments")]
    FragmentMismatch {
        /// The packet id.
        packet: u16,
    },
}

/// Why [`super::Link::encode_media`] (or
/// [`super::Link::encode_media_fragments`]) did not produce a datagram.
/// Only `TooLong`, `NotAnnounced`, `NoFragments` and `TooManyFragments`
/// point at a problem; the rest is the link's forwarding policy at work
/// (send only what the peer wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotSent {
    /// The link is not up.
    #[error("link not up")]
    NotUp,
    /// The source was never added to this link.
    #[error("source not announced on this link")]
    NotAnnounced,
    /// The peer has no subscriber for the source.
    #[error("the peer has not subscribed")]
    NotSubscribed,
    /// The peer wants another layer of the source.
    #[error("the peer wants layer {wanted}, not {layer}")]
    OtherLayer {
        /// The packet's layer.
        layer: u8,
        /// The layer being forwarded.
        wanted: u8,
    },
    /// The peer does not accept RTCP datagrams.
    #[error("the peer does not accept RTCP")]
    NoRtcp,
    /// The packet is larger than [`crate::wire::MAX_MEDIA_PACKET`].
    #[error("packet of {0} bytes is too long")]
    TooLong(usize),
    /// The packet needs fragments and the peer does not accept them.
    #[error("the peer does not accept fragmented media")]
    NoFragments,
    /// The packet does not fit [`crate::wire::MAX_FRAGMENTS`] fragments of
    /// the connection's datagram size.
    #[error("a packet of {len} bytes does not fit 8 fragments of {max_datagram} bytes")]
    TooManyFragments {
        /// The packet's length.
        len: usize,
        /// The datagram size.
        max_datagram: usize,
    },
}
