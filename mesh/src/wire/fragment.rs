//! Fragment datagrams (type 3): an RTP or RTCP packet too big for the
//! connection's current datagram size, split into at most
//! [`MAX_FRAGMENTS`] pieces.
//!
//! ```text
//! type:       varint   3 = fragment
//! conference: varint   the sender's conference handle
//! source:     varint   the sender's source handle
//! packet:     u16      the sender's packet id on this link (wraps)
//! fragment:   u8       bit 7: the packet is RTCP (else RTP);
//!                      bits 6-4: index (0-7); bits 3-0: count (1-8)
//! chunk                the fragment's bytes (at least 1)
//! ```
//!
//! The packet is the chunks in index order. The sender splits it evenly,
//! so every chunk but the last has the same length.

use bytes::{BufMut, BytesMut};

use super::media::{FRAGMENT_TYPE, MediaHeader, MediaType};
use super::reader::Reader;
use super::{DecodeError, MAX_FRAGMENTS, MAX_MEDIA_PACKET, varint};

const RTCP_BIT: u8 = 0x80;

/// The header of one fragment datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentHeader {
    /// The whole packet's type (RTP or RTCP) and handles.
    pub media: MediaHeader,
    /// The sender's number for the packet, counted per link (wraps at 2^16).
    pub packet: u16,
    /// This fragment's place in the packet, below `count`.
    pub index: u8,
    /// How many fragments the packet has, 1–[`MAX_FRAGMENTS`].
    pub count: u8,
}

impl FragmentHeader {
    /// How many bytes [`FragmentHeader::encode`] writes (at most
    /// [`super::MAX_FRAGMENT_HEADER`]).
    pub fn encoded_len(&self) -> usize {
        varint::len(FRAGMENT_TYPE) + self.media.handles_len() + 3
    }

    /// Appends the header.
    ///
    /// # Panics
    /// If `count` is not 1–8 or `index` is not below it: the encoder
    /// ([`encode_fragments`]) only builds valid headers, so that is a bug.
    pub fn encode(&self, out: &mut impl BufMut) {
        assert!(
            (1..=MAX_FRAGMENTS).contains(&usize::from(self.count)) && self.index < self.count,
            "fragment {}/{} (a bug in the encoder)",
            self.index,
            self.count
        );
        varint::put(out, FRAGMENT_TYPE);
        self.media.put_handles(out);
        out.put_u16(self.packet);
        let rtcp = if self.media.ty == MediaType::Rtcp {
            RTCP_BIT
        } else {
            0
        };
        out.put_u8(rtcp | self.index << 4 | self.count);
    }

    /// Reads the rest of a fragment header after its type.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut handles = MediaHeader::read_handles(r, MediaType::Rtp)?;
        let packet = r.u16()?;
        let b = r.u8()?;
        if b & RTCP_BIT != 0 {
            handles.ty = MediaType::Rtcp;
        }
        let index = (b >> 4) & 0x07;
        let count = b & 0x0f;
        if count == 0 || usize::from(count) > MAX_FRAGMENTS {
            return Err(DecodeError::FragmentCount(count));
        }
        if index >= count {
            return Err(DecodeError::FragmentIndex { index, count });
        }
        Ok(FragmentHeader {
            media: handles,
            packet,
            index,
            count,
        })
    }
}

/// The lengths of the fragment datagrams [`encode_fragments`] wrote, in
/// order (2–8 of them, or 1 if the packet fit anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentSizes {
    lens: [usize; MAX_FRAGMENTS],
    count: u8,
}

impl FragmentSizes {
    /// Each fragment datagram's length, in order.
    pub fn datagrams(&self) -> &[usize] {
        &self.lens[..usize::from(self.count)]
    }

    /// All of them together.
    pub fn total(&self) -> usize {
        self.datagrams().iter().sum()
    }
}

/// Writes `packet` (the packet of `media`) as fragment datagrams of at most
/// `max_datagram` bytes each into `out`, one after the other, split as
/// evenly as the datagram size allows. `None` (and nothing written) if the
/// packet is empty, longer than [`MAX_MEDIA_PACKET`], or needs more than
/// [`MAX_FRAGMENTS`] fragments at that size.
pub fn encode_fragments(
    media: MediaHeader,
    packet_id: u16,
    packet: &[u8],
    max_datagram: usize,
    out: &mut BytesMut,
) -> Option<FragmentSizes> {
    let mut header = FragmentHeader {
        media,
        packet: packet_id,
        index: 0,
        count: 1,
    };
    let header_len = header.encoded_len();
    let room = max_datagram.checked_sub(header_len).filter(|r| *r > 0)?;
    if packet.is_empty() || packet.len() > MAX_MEDIA_PACKET {
        return None;
    }
    let count = packet.len().div_ceil(room);
    if count > MAX_FRAGMENTS {
        return None;
    }
    // count ≤ 8: fits a u8. An even split: ceil(len / count) ≤ room, and
    // ceil(len / chunk) is `count` again, so no chunk is empty.
    header.count = count as u8;
    let chunk = packet.len().div_ceil(count);
    out.reserve(packet.len() + count * header_len);
    let mut lens = [0; MAX_FRAGMENTS];
    for (i, piece) in packet.chunks(chunk).enumerate() {
        // i < count ≤ 8.
        header.index = i as u8;
        header.encode(out);
        out.extend_from_slice(piece);
        lens[i] = header_len + piece.len();
    }
    Some(FragmentSizes {
        lens,
        count: header.count,
    })
}
