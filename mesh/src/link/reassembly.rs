//! Reassembly of fragmented media packets (datagram type 3), bounded by
//! count, without a clock: at most [`MAX_REASSEMBLING`] packets wait for
//! their missing fragments (a new one evicts the oldest), and a packet is
//! given up once [`MAX_REASSEMBLING`] newer packet ids have begun (the
//! sender numbers its fragmented packets in order, and QUIC reorders
//! datagrams by far less, so its missing fragment was lost). Either way it
//! is counted in [`FragmentStats::incomplete`]. The second rule also keeps
//! a lost packet's fragments from meeting those of a later packet with the
//! same (wrapped) id.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::DatagramError;
use crate::wire::{
    DecodeError, FragmentHeader, MAX_FRAGMENTS, MAX_MEDIA_PACKET, MediaType, SourceHandle,
    check_packet,
};

/// Packets in reassembly per link at most.
pub const MAX_REASSEMBLING: usize = 16;

/// Counters of a link's reassembly, over its life (across reconnects).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentStats {
    /// Packets reassembled from fragments and delivered.
    pub reassembled: u64,
    /// Packets dropped with fragments missing: evicted by newer ones, or
    /// pending when the connection went down.
    pub incomplete: u64,
}

/// One packet waiting for fragments. Chunks are slices of their datagrams:
/// nothing is copied until the packet is complete.
#[derive(Debug)]
struct Pending {
    source: SourceHandle,
    packet: u16,
    ty: MediaType,
    count: u8,
    /// Bit i: chunk i arrived.
    have: u8,
    len: usize,
    chunks: [Bytes; MAX_FRAGMENTS],
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    pending: VecDeque<Pending>,
    stats: FragmentStats,
}

impl Reassembly {
    pub(crate) fn stats(&self) -> FragmentStats {
        self.stats
    }

    /// One fragment (`chunk` is its bytes) of a source the peer announced.
    /// Returns the whole packet, checked like an unfragmented one, once
    /// its last missing fragment arrived; `None` until then and for a
    /// duplicate.
    pub(crate) fn push(
        &mut self,
        header: &FragmentHeader,
        chunk: Bytes,
    ) -> Result<Option<Bytes>, DatagramError> {
        let ty = header.media.ty;
        let found = self
            .pending
            .iter()
            .position(|p| p.source == header.media.source && p.packet == header.packet);
        let at = match found {
            Some(at) => {
                let p = &self.pending[at];
                if p.count != header.count || p.ty != ty {
                    return Err(DatagramError::FragmentMismatch {
                        packet: header.packet,
                    });
                }
                at
            }
            None => {
                let before = self.pending.len();
                self.pending
                    .retain(|p| !superseded(header.packet, p.packet));
                self.stats.incomplete += (before - self.pending.len()) as u64;
                if self.pending.len() >= MAX_REASSEMBLING {
                    self.pending.pop_front();
                    self.stats.incomplete += 1;
                }
                self.pending.push_back(Pending {
                    source: header.media.source,
                    packet: header.packet,
                    ty,
                    count: header.count,
                    have: 0,
                    len: 0,
                    chunks: Default::default(),
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[at];
        let bit = 1u8 << header.index;
        if p.have & bit != 0 {
            return Ok(None);
        }
        let len = p.len + chunk.len();
        if len > MAX_MEDIA_PACKET {
            self.pending.remove(at);
            return Err(DecodeError::PacketTooLong {
                len,
                max: MAX_MEDIA_PACKET,
            }
            .into());
        }
        p.have |= bit;
        p.len = len;
        p.chunks[usize::from(header.index)] = chunk;
        // count ≤ 8: the mask fits a u8.
        if u16::from(p.have) != (1u16 << p.count) - 1 {
            return Ok(None);
        }
        // `at` was found or pushed above.
        let p = self.pending.remove(at).expect("the pending packet");
        let mut whole = BytesMut::with_capacity(p.len);
        for c in &p.chunks[..usize::from(p.count)] {
            whole.extend_from_slice(c);
        }
        check_packet(ty, &whole)?;
        self.stats.reassembled += 1;
        Ok(Some(whole.freeze()))
    }

    /// Packets waiting for fragments.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The connection is gone: its handles and packet ids with it.
    pub(crate) fn clear(&mut self) {
        self.stats.incomplete += self.pending.len() as u64;
        self.pending.clear();
    }
}

/// Whether packet id `old` is at least [`MAX_REASSEMBLING`] behind `new`
/// (serial arithmetic: ids wrap at 2^16).
fn superseded(new: u16, old: u16) -> bool {
    let age = new.wrapping_sub(old);
    (MAX_REASSEMBLING as u16..0x8000).contains(&age)
}
