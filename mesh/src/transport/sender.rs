//! The media hot path out: one thread's sender of my packets on one link.

use std::sync::Arc;

use bytes::BytesMut;
use quinn::Connection;

use super::metrics::{add, inc};
use super::peer::{Peer, SendError};
use crate::link::{Admitted, LayerSwitches, NotSent, encode_as_fragments, encode_whole};
use crate::wire::{MAX_MEDIA_HEADER, MediaType, SourceId};

/// Sends my packets on one link from one thread (a media worker), deciding
/// from the table the link's driver publishes: no lock, no task hop. Each
/// of my sources must be sent by one sender only (its publisher's
/// worker), which keeps the source's layer switches ([`LayerSwitches`]).
#[derive(Debug)]
pub struct MediaSender {
    peer: Arc<Peer>,
    switches: LayerSwitches,
}

impl MediaSender {
    pub(crate) fn new(peer: Arc<Peer>) -> Self {
        Self {
            peer,
            switches: LayerSwitches::default(),
        }
    }

    /// The header for a packet, and the link told of a switch of layer.
    fn admit(
        &mut self,
        table: &crate::link::MediaTable,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        len: usize,
        keyframe: bool,
    ) -> Result<Admitted, NotSent> {
        let a = self
            .switches
            .header(table, source, ty, layer, len, keyframe)?;
        if a.switched {
            let _ = self
                .peer
                .commands
                .send(Box::new(move |l: &mut crate::link::Link| {
                    l.keyframe(source, layer);
                }));
        }
        Ok(a)
    }

    /// Whether the peer wants this packet of my `source` now (see
    /// [`crate::link::Link::encode_media`]); `keyframe`: it starts a
    /// keyframe of `layer`, which completes a pending switch to that layer.
    /// Lets the edge skip serializing packets nobody wants.
    pub fn wants(&mut self, source: SourceId, ty: MediaType, layer: u8, keyframe: bool) -> bool {
        let table = self.peer.published.load();
        self.admit(&table.table, source, ty, layer, 0, keyframe)
            .is_ok()
    }

    /// Sends one RTP or RTCP packet of my source as a datagram, if the peer
    /// wants it. A packet whose datagram exceeds the connection's
    /// `max_datagram_size()` goes as fragments to a peer that accepts
    /// them. Never blocks: a packet that cannot be sent whole or in
    /// fragments, or meets a full send buffer, is dropped and counted.
    pub fn send_media(
        &mut self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        keyframe: bool,
        packet: &[u8],
    ) -> Result<(), SendError> {
        let published = self.peer.published.load();
        let admitted = self.admit(&published.table, source, ty, layer, packet.len(), keyframe);
        let m = &self.peer.metrics;
        let header = match admitted {
            Ok(a) => a.header,
            Err(e) => {
                if matches!(e, NotSent::NotSubscribed | NotSent::OtherLayer { .. }) {
                    inc(&m.media_not_wanted);
                }
                return Err(e.into());
            }
        };
        // The table says up only while a connection is installed.
        let conn = published.conn.as_ref().ok_or(NotSent::NotUp)?;
        let mut buf = BytesMut::with_capacity(packet.len() + MAX_MEDIA_HEADER);
        encode_whole(header, packet, &mut buf);
        let len = buf.len();
        let max = conn.max_datagram_size().unwrap_or(0);
        if len > max {
            if !published.table.fragments() {
                inc(&m.dropped_too_big);
                return Err(SendError::TooBig { len, max });
            }
            buf.clear();
            let sizes = match encode_as_fragments(
                header,
                self.peer.next_packet_id(),
                packet,
                max,
                &mut buf,
            ) {
                Ok(sizes) => sizes,
                Err(_) => {
                    inc(&m.dropped_too_big);
                    return Err(SendError::TooBig { len, max });
                }
            };
            return self.send_fragments(conn, buf, sizes.datagrams(), max);
        }
        if conn.datagram_send_buffer_space() < len {
            inc(&m.dropped_congestion);
            return Err(SendError::Congested);
        }
        match conn.send_datagram(buf.freeze()) {
            Ok(()) => {
                inc(&m.media_tx_packets);
                add(&m.media_tx_bytes, len);
                Ok(())
            }
            Err(quinn::SendDatagramError::TooLarge) => {
                inc(&m.dropped_too_big);
                Err(SendError::TooBig { len, max })
            }
            Err(_) => Err(NotSent::NotUp.into()),
        }
    }

    /// The cold path of [`MediaSender::send_media`]: the fragments in
    /// `buf`, of the lengths `sizes`, go out one after the other.
    #[cold]
    fn send_fragments(
        &self,
        conn: &Connection,
        buf: BytesMut,
        sizes: &[usize],
        max: usize,
    ) -> Result<(), SendError> {
        let m = &self.peer.metrics;
        let total: usize = sizes.iter().sum();
        if conn.datagram_send_buffer_space() < total {
            inc(&m.dropped_congestion);
            return Err(SendError::Congested);
        }
        let mut all = buf.freeze();
        for &n in sizes {
            match conn.send_datagram(all.split_to(n)) {
                Ok(()) => {}
                // The path shrank (black-hole detection) between fragments.
                Err(quinn::SendDatagramError::TooLarge) => {
                    inc(&m.dropped_too_big);
                    return Err(SendError::TooBig { len: n, max });
                }
                Err(_) => return Err(NotSent::NotUp.into()),
            }
        }
        inc(&m.media_tx_packets);
        inc(&m.fragmented_tx_packets);
        add(&m.media_tx_bytes, total);
        Ok(())
    }
}
