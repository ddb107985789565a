//! Media out: a packet of my source encoded for the peer (whole or as
//! fragments), if the peer wants it.

use bytes::BytesMut;

use super::*;

impl Link {
    /// Writes one datagram (header and packet) for a packet of my source
    /// into `out`, or says why the packet is not for the peer.
    ///
    /// `layer` is the packet's layer index in the source's
    /// [`SourceInfo::layers`] (0 for a single-layer source;
    /// [`SourceInfo::layer_of_ssrc`] finds it from the SSRC).
    pub fn encode_media(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), NotSent> {
        let header = self.local.media_header(
            source,
            ty,
            layer,
            packet.len(),
            self.peer_capabilities(),
            self.config.forward_unsubscribed,
        )?;
        out.reserve(header.encoded_len() + packet.len());
        header.encode(out);
        out.extend_from_slice(packet);
        Ok(())
    }

    /// Like [`Link::encode_media`], for a packet whose datagram would exceed
    /// the connection's `max_datagram` size: writes it as fragment
    /// datagrams of at most `max_datagram` bytes, one after the other, into
    /// `out`, and returns their lengths. Refused with
    /// [`NotSent::NoFragments`] if the peer did not announce
    /// [`Capabilities::FRAGMENTS`], and with [`NotSent::TooManyFragments`]
    /// if `max_datagram` is too small for [`crate::wire::MAX_FRAGMENTS`].
    pub fn encode_media_fragments(
        &mut self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        packet: &[u8],
        max_datagram: usize,
        out: &mut BytesMut,
    ) -> Result<FragmentSizes, NotSent> {
        let caps = self.peer_capabilities();
        let header = self.local.media_header(
            source,
            ty,
            layer,
            packet.len(),
            caps,
            self.config.forward_unsubscribed,
        )?;
        if !caps.contains(Capabilities::FRAGMENTS) {
            return Err(NotSent::NoFragments);
        }
        let sizes = encode_fragments(header, self.next_packet_id, packet, max_datagram, out)
            .ok_or(NotSent::TooManyFragments {
                len: packet.len(),
                max_datagram,
            })?;
        self.next_packet_id = self.next_packet_id.wrapping_add(1);
        Ok(sizes)
    }

    /// Whether [`Link::encode_media`] would send a packet of my `source`
    /// on `layer` now: lets the edge skip serializing packets nobody wants.
    pub fn wants_media(&self, source: SourceId, ty: MediaType, layer: u8) -> bool {
        self.local
            .media_header(
                source,
                ty,
                layer,
                0,
                self.peer_capabilities(),
                self.config.forward_unsubscribed,
            )
            .is_ok()
    }
}
