//! Media datagrams: a compact header and one RTP or RTCP packet, or one
//! fragment of such a packet (see [`super::fragment`]).

use bytes::BufMut;

use super::fragment::FragmentHeader;
use super::reader::Reader;
use super::types::{ConferenceHandle, SourceHandle};
use super::{DecodeError, MAX_MEDIA_PACKET, varint};

/// The wire value of a fragment datagram's type.
pub(super) const FRAGMENT_TYPE: u64 = 3;

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
        varint::len(self.ty.code()) + self.handles_len()
    }

    /// The bytes of the two handles.
    pub(super) fn handles_len(&self) -> usize {
        varint::len(self.conference.get().into()) + varint::len(self.source.get().into())
    }

    /// Appends the header.
    pub fn encode(&self, out: &mut impl BufMut) {
        varint::put(out, self.ty.code());
        self.put_handles(out);
    }

    pub(super) fn put_handles(&self, out: &mut impl BufMut) {
        self.conference.put(out);
        self.source.put(out);
    }

    /// Reads the header of a whole-packet datagram (type 1 or 2) from the
    /// front of `datagram`; returns it and its length.
    pub fn decode(datagram: &[u8]) -> Result<(MediaHeader, usize), DecodeError> {
        let mut r = Reader::new(datagram);
        let ty = match r.varint()? {
            1 => MediaType::Rtp,
            2 => MediaType::Rtcp,
            other => return Err(DecodeError::UnknownMediaType(other)),
        };
        let header = Self::read_handles(&mut r, ty)?;
        Ok((header, datagram.len() - r.remaining()))
    }

    pub(super) fn read_handles(r: &mut Reader<'_>, ty: MediaType) -> Result<Self, DecodeError> {
        let conference = ConferenceHandle::read(r)?;
        let source = SourceHandle::read(r)?;
        Ok(MediaHeader {
            ty,
            conference,
            source,
        })
    }
}

/// One decoded media datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDatagram<'a> {
    /// A whole RTP or RTCP packet (types 1 and 2), checked with
    /// [`check_packet`].
    Packet(MediaHeader, &'a [u8]),
    /// One fragment of a packet (type 3): its bytes are only checked to be
    /// 1–[`MAX_MEDIA_PACKET`] long; the reassembled packet is checked with
    /// [`check_packet`].
    Fragment(FragmentHeader, &'a [u8]),
}

/// Splits a media datagram into its header and packet (or fragment).
///
/// A whole packet must be a plausible RTP (version 2, at least 12 bytes)
/// or RTCP (version 2, at least 8 bytes, packet type 192–223) packet of at
/// most [`MAX_MEDIA_PACKET`] bytes ([`check_packet`]). A fragment's header
/// must have a count of 1–[`super::MAX_FRAGMENTS`] and an index below it.
/// Nothing is allocated.
pub fn decode_datagram(datagram: &[u8]) -> Result<MediaDatagram<'_>, DecodeError> {
    let mut r = Reader::new(datagram);
    let ty = match r.varint()? {
        1 => MediaType::Rtp,
        2 => MediaType::Rtcp,
        FRAGMENT_TYPE => {
            let header = FragmentHeader::read(&mut r)?;
            let chunk = &datagram[datagram.len() - r.remaining()..];
            if chunk.is_empty() {
                return Err(DecodeError::Truncated);
            }
            if chunk.len() > MAX_MEDIA_PACKET {
                return Err(DecodeError::PacketTooLong {
                    len: chunk.len(),
                    max: MAX_MEDIA_PACKET,
                });
            }
            return Ok(MediaDatagram::Fragment(header, chunk));
        }
        other => return Err(DecodeError::UnknownMediaType(other)),
    };
    let header = MediaHeader::read_handles(&mut r, ty)?;
    let packet = &datagram[datagram.len() - r.remaining()..];
    check_packet(ty, packet)?;
    Ok(MediaDatagram::Packet(header, packet))
}

/// Checks that `packet` is a plausible RTP (version 2, at least 12 bytes)
/// or RTCP (version 2, at least 8 bytes, packet type 192–223) packet of at
/// most [`MAX_MEDIA_PACKET`] bytes.
pub fn check_packet(ty: MediaType, packet: &[u8]) -> Result<(), DecodeError> {
    if packet.len() > MAX_MEDIA_PACKET {
        return Err(DecodeError::PacketTooLong {
            len: packet.len(),
            max: MAX_MEDIA_PACKET,
        });
    }
    let (expected, min) = match ty {
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
    if ty == MediaType::Rtcp && !(192..=223).contains(&packet[1]) {
        return Err(bad("packet type outside 192-223"));
    }
    Ok(())
}
