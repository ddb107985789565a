//! The octo wire protocol, version 1: the bytes that cross between edges.
//!
//! Two channels per link (one QUIC connection per edge pair):
//!
//! - **Control** ([`ControlFrame`]): length-prefixed frames on one reliable,
//!   ordered bidirectional stream. [`FrameDecoder`] reassembles them from
//!   stream chunks; [`ControlFrame::encode`] writes one.
//! - **Media** ([`MediaHeader`]): one RTP or RTCP packet per QUIC datagram
//!   behind a header of at most [`MAX_MEDIA_HEADER`] bytes, or — when the
//!   packet does not fit the connection's datagram size — split into at
//!   most [`MAX_FRAGMENTS`] fragment datagrams ([`FragmentHeader`],
//!   [`encode_fragments`]) that the receiving link reassembles.
//!
//! Integers are QUIC varints ([`varint`]) unless a field is stated as a
//! fixed-width big-endian integer; strings are a varint byte length and
//! UTF-8 bytes. `docs/PROTOCOL.md` ("Octo wire protocol") lays every frame
//! out byte by byte.
//!
//! Decoding never panics: every malformed input is a [`DecodeError`], and
//! every limit (frame length, string lengths, handle ranges, layer counts,
//! packet sizes) is checked before anything is allocated.

mod control;
mod fragment;
mod framing;
mod media;
mod reader;
mod types;
pub mod varint;

pub use control::{ControlFrame, FrameType, Hello};
pub use fragment::{FragmentHeader, FragmentSizes, encode_fragments};
pub use framing::FrameDecoder;
pub use media::{MediaDatagram, MediaHeader, MediaType, check_packet, decode_datagram};
pub use types::{
    Capabilities, Codec, ConferenceHandle, GoodbyeReason, Layer, MediaKind, SourceHandle, SourceId,
    SourceInfo, Subscription,
};

use geomesh_core::IdError;

/// The octo protocol version this crate speaks (in [`Hello`] and the ALPN).
pub const PROTOCOL_VERSION: u64 = 1;
/// The QUIC ALPN of octo links.
pub const ALPN: &[u8] = b"geomesh-octo/1";

/// The largest control frame body (type byte and payload), in bytes.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
/// The longest id (edge, region, conference, participant) on the wire, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// The longest display name, in bytes of UTF-8.
pub const MAX_DISPLAY_NAME_LEN: usize = 255;
/// The longest Goodbye message, in bytes of UTF-8.
pub const MAX_MESSAGE_LEN: usize = 255;
/// The longest codec name (`opus`, `VP8`, `H264`), in bytes.
pub const MAX_CODEC_NAME_LEN: usize = 32;
/// The longest simulcast RID (RFC 8851 allows 16 alphanumerics, `-` and `_`).
pub const MAX_RID_LEN: usize = 16;
/// The most simulcast layers one source may have.
pub const MAX_LAYERS: usize = 8;

/// The largest RTP or RTCP packet an octo link carries: every packet an
/// edge can accept from a client. The edge's media socket reads each UDP
/// datagram into a 2048-byte buffer (`edge/src/socket.rs`), so an SRTP
/// packet from a client is at most 2048 bytes; decrypted (SRTP's auth tag
/// gone) and rewritten for the link (12-byte header, at most the 8-byte
/// audio-level extension, the payload unchanged) it is no longer. An SFU
/// must forward every packet it accepted: aiortc sends 1300-byte VP8
/// packets, other clients more. Bigger packets are refused.
pub const MAX_MEDIA_PACKET: usize = 2048;
/// The longest media header: type (1 byte) + conference handle (≤ 2 bytes)
/// + source handle (≤ 4 bytes) = 7, rounded up to the protocol's promise of 8.
pub const MAX_MEDIA_HEADER: usize = 8;
/// The largest whole-packet media datagram (a [`MAX_MEDIA_PACKET`] behind
/// a [`MAX_MEDIA_HEADER`]). A path need not carry it: a packet whose
/// datagram exceeds the connection's datagram size goes as fragments.
pub const MAX_DATAGRAM: usize = MAX_MEDIA_PACKET + MAX_MEDIA_HEADER;
/// The most fragments one packet is split into.
pub const MAX_FRAGMENTS: usize = 8;
/// The longest fragment header: a media header (≤ 7 bytes) + packet id
/// (2) + fragment byte (1) = 10, rounded up to [`MAX_MEDIA_HEADER`] + 3.
pub const MAX_FRAGMENT_HEADER: usize = MAX_MEDIA_HEADER + 3;
/// The smallest datagram size at which every packet of up to
/// [`MAX_MEDIA_PACKET`] bytes still fits in [`MAX_FRAGMENTS`] fragments.
pub const MIN_FRAGMENT_DATAGRAM: usize =
    MAX_FRAGMENT_HEADER + MAX_MEDIA_PACKET.div_ceil(MAX_FRAGMENTS);

/// Why bytes from the network are not a valid octo frame or datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a field.
    #[error("truncated: the input ends inside a field")]
    Truncated,
    /// A control frame announces more than [`MAX_FRAME_LEN`] bytes.
    #[error("control frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A control frame of length zero (it has no type byte).
    #[error("empty control frame")]
    EmptyFrame,
    /// A control frame type this version does not know.
    #[error("unknown control frame type {0:#04x}")]
    UnknownFrameType(u8),
    /// Bytes left in a frame after its last field.
    #[error("{extra} unexpected bytes after a {frame} frame")]
    TrailingBytes {
        /// The frame's name.
        frame: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A string longer than its limit.
    #[error("{field}: {len} bytes exceeds the limit of {max}")]
    StringTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A string that is not UTF-8 or not in its field's alphabet.
    #[error("{field}: invalid characters")]
    InvalidString {
        /// The field.
        field: &'static str,
    },
    /// An id that breaks its grammar.
    #[error("{field}: {error}")]
    InvalidId {
        /// The field.
        field: &'static str,
        /// Why.
        error: IdError,
    },
    /// A number outside its field's range.
    #[error("{field}: value {value} out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
    /// A media datagram type this version does not know.
    #[error("unknown media datagram type {0}")]
    UnknownMediaType(u64),
    /// A media packet larger than [`MAX_MEDIA_PACKET`].
    #[error("media packet of {len} bytes exceeds the limit of {max}")]
    PacketTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A fragment datagram whose fragment count is not 1–[`MAX_FRAGMENTS`].
    #[error("fragment count {0} is not 1-8")]
    FragmentCount(u8),
    /// A fragment datagram whose index is not below its fragment count.
    #[error("fragment index {index} is not below the fragment count {count}")]
    FragmentIndex {
        /// The fragment's index.
        index: u8,
        /// The packet's fragment count.
        count: u8,
    },
    /// A media datagram whose payload is not an RTP or RTCP packet.
    #[error("not an {expected} packet: {reason}")]
    NotMedia {
        /// `RTP` or `RTCP`.
        expected: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why a frame cannot be encoded: a field breaks a wire limit. Values built
/// through the link's API are checked before they get here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field breaks its limit.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl EncodeError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        EncodeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
