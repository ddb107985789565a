//! Media datagrams: a compact header and one RTP or RTCP packet.

use bytes::BufMut;

use super::reader::Reader;
use super::types::{ConferenceHandle, SourceHandle};
use super::{DecodeError, MAX_MEDIA_PACKET, varint};

/// What a media datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// An RTP packet (wire value 1).
    Rtp,
    /// An RTCP compound packet, e.g. a sender report for lip sync (wire value 2).
    Rtcp,
}

impl MediaType {
    fn code(self) -> u64 {
        match self {
            MediaType::Rtp => 1,
            MediaType::Rtcp => 2,
        }
    }
}

/// The header in front of every media datagram: three varints, 3–7 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaHeader {
    /// RTP or RTCP.
    pub ty: MediaType,
    /// The sender's conference handle.
    pub conference: ConferenceHandle,
    /// The sender's source handle.
    pub source: SourceHandle,
}

impl MediaHeader {
    /// How many bytes [`MediaHeader::encode`] writes (at most
    /// [`super::MAX_MEDIA_HEADER`]).
    pub fn encoded_len(&self) -> usize {
        varint::len(self.ty.code())
            + varint::len(self.conference.get().into())
            + varint::len(self.source.get().into())
    }

    /// Appends the header.
    pub fn encode(&self, out: &mut impl BufMut) {
        varint::put(out, self.ty.code());
        self.conference.put(out);
        self.source.put(out);
    }

    /// Reads a header from the front of a datagram; returns it and its length.
    pub fn decode(datagram: &[u8]) -> Result<(MediaHeader, usize), DecodeError> {
        let mut r = Reader::new(datagram);
        let ty = match r.varint()? {
            1 => MediaType::Rtp,
            2 => MediaType::Rtcp,
            other => return Err(DecodeError::UnknownMediaType(other)),
        };
        let conference = ConferenceHandle::read(&mut r)?;
        let source = SourceHandle::read(&mut r)?;
        let header = MediaHeader {
            ty,
            conference,
            source,
        };
        Ok((header, datagram.len() - r.remaining()))
    }
}

/// Splits a media datagram into its header and packet, checking that the
/// packet is a plausible RTP (version 2, at least 12 bytes) or RTCP
/// (version 2, at least 8 bytes, packet type 192–223) packet of at most
/// [`MAX_MEDIA_PACKET`] bytes.
pub fn decode_datagram(datagram: &[u8]) -> Result<(MediaHeader, &[u8]), DecodeError> {
    let (header, n) = MediaHeader::decode(datagram)?;
    let packet = &datagram[n..];
    if packet.len() > MAX_MEDIA_PACKET {
        return Err(DecodeError::PacketTooLong {
            len: packet.len(),
            max: MAX_MEDIA_PACKET,
        });
    }
    let (expected, min) = match header.ty {
        MediaType::Rtp => ("RTP", 12),
        MediaType::Rtcp => ("RTCP", 8),
    };
    let bad = |reason| DecodeError::NotMedia { expected, reason };
    if packet.len() < min {
        return Err(bad("shorter than its fixed header"));
    }
    if packet[0] >> 6 != 2 {
        return Err(bad("version is not 2"));
    }
    if header.ty == MediaType::Rtcp && !(192..=223).contains(&packet[1]) {
        return Err(bad("packet type outside 192-223"));
    }
    Ok((header, packet))
}
