//! Media out: a packet of my source encoded for the peer (whole or as
//! fragments), if the peer wants it.
//!
//! The forwarding rule is decided by [`Route`]s, the per-source part of the
//! link's state that media needs. A transport whose media is sent from
//! other threads than the link's owner publishes them as a [`MediaTable`]
//! ([`Link::media_table`]) after every change, and each sending thread
//! decides from the table through its own [`LayerSwitches`], without the
//! link: one owner per link, no lock per packet.

use std::collections::HashMap;

use bytes::BytesMut;

use super::*;
use crate::wire::{ConferenceHandle, MAX_MEDIA_PACKET, MediaHeader, SourceHandle};

/// What decides whether a packet of one of my sources goes to the peer,
/// while the source is announced on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) source: SourceHandle,
    pub(crate) conference: ConferenceHandle,
    /// The peer subscribes.
    pub(crate) subscribed: bool,
    /// The layer the subscription asks for.
    pub(crate) layer: u8,
    /// The layer that flows (see [`Link::keyframe`]).
    pub(crate) sending: Option<u8>,
}

/// The header for one packet of my source `id` on `route`, or why it is
/// not sent. The one forwarding rule, for [`Link::encode_media`] and for
/// senders that decide from a [`MediaTable`].
fn gate(
    table: &Gate,
    route: Option<Route>,
    ty: MediaType,
    layer: u8,
    len: usize,
) -> Result<MediaHeader, NotSent> {
    if !table.up {
        return Err(NotSent::NotUp);
    }
    if len > MAX_MEDIA_PACKET {
        return Err(NotSent::TooLong(len));
    }
    let r = route.ok_or(NotSent::NotAnnounced)?;
    if ty == MediaType::Rtcp && !table.caps.contains(Capabilities::RTCP) {
        return Err(NotSent::NoRtcp);
    }
    if !table.forward_unsubscribed {
        if !r.subscribed {
            return Err(NotSent::NotSubscribed);
        }
        if layer != r.sending.unwrap_or(r.layer) {
            return Err(NotSent::OtherLayer {
                layer,
                wanted: r.layer,
            });
        }
    }
    Ok(MediaHeader {
        ty,
        conference: r.conference,
        source: r.source,
    })
}

/// The link-wide part of the rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Gate {
    up: bool,
    caps: Capabilities,
    forward_unsubscribed: bool,
}

/// A copy of a link's forwarding state ([`Link::media_table`]): what a
/// sender needs to encode my packets for the peer without the link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaTable {
    gate: Gate,
    routes: HashMap<SourceId, Route>,
}

impl MediaTable {
    /// Whether the peer announced [`Capabilities::FRAGMENTS`].
    pub fn fragments(&self) -> bool {
        self.gate.caps.contains(Capabilities::FRAGMENTS)
    }

    /// Whether the link is up (the Hello exchange is done).
    pub fn is_up(&self) -> bool {
        self.gate.up
    }
}

/// One sender's layer switches made ahead of its [`MediaTable`]: when a
/// keyframe of the layer the peer waits for passes, the layer flows from
/// that packet on, though the link (which hears of it by
/// [`Link::keyframe`]) has not published the switch yet. Each source has
/// one sender (its publisher's worker), so this is the whole truth until
/// the table catches up.
#[derive(Debug, Default)]
pub struct LayerSwitches {
    ahead: HashMap<SourceId, u8>,
}

/// A packet's fate by [`LayerSwitches::header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Its datagram header.
    pub header: MediaHeader,
    /// This packet switched the source's layer: tell the link
    /// ([`Link::keyframe`]).
    pub switched: bool,
}

impl LayerSwitches {
    /// The header for one packet of my source by `table`, with this
    /// sender's switches applied; `keyframe`: the packet starts a keyframe
    /// of `layer` (a pending switch to that layer happens here).
    pub fn header(
        &mut self,
        table: &MediaTable,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        len: usize,
        keyframe: bool,
    ) -> Result<Admitted, NotSent> {
        let mut route = table.routes.get(&source).copied();
        if let Some(&ahead) = self.ahead.get(&source) {
            match route.as_mut() {
                // Switched here, not yet in the table.
                Some(r) if r.subscribed && r.layer == ahead && r.sending != Some(ahead) => {
                    r.sending = Some(ahead)
                }
                // Caught up, or the peer changed its wish since.
                _ => {
                    self.ahead.remove(&source);
                }
            }
        }
        let mut switched = false;
        if keyframe
            && table.gate.up
            && ty == MediaType::Rtp
            && let Some(r) = route.as_mut()
            && r.subscribed
            && r.layer == layer
            && r.sending != Some(layer)
        {
            r.sending = Some(layer);
            self.ahead.insert(source, layer);
            switched = true;
        }
        let header = gate(&table.gate, route, ty, layer, len)?;
        Ok(Admitted { header, switched })
    }
}

impl Link {
    /// The link's forwarding state as a [`MediaTable`], for senders that
    /// do not hold the link.
    pub fn media_table(&self) -> MediaTable {
        MediaTable {
            gate: self.gate(),
            routes: self.local.routes().collect(),
        }
    }

    fn gate(&self) -> Gate {
        Gate {
            up: self.local.is_up(),
            caps: self.peer_capabilities(),
            forward_unsubscribed: self.config.forward_unsubscribed,
        }
    }

    fn media_header(
        &self,
        source: SourceId,
        ty: MediaType,
        layer: u8,
        len: usize,
    ) -> Result<MediaHeader, NotSent> {
        gate(&self.gate(), self.local.route(source), ty, layer, len)
    }

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
        let header = self.media_header(source, ty, layer, packet.len())?;
        encode_whole(header, packet, out);
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
        let header = self.media_header(source, ty, layer, packet.len())?;
        if !self.peer_capabilities().contains(Capabilities::FRAGMENTS) {
            return Err(NotSent::NoFragments);
        }
        let sizes = encode_as_fragments(header, self.next_packet_id, packet, max_datagram, out)?;
        self.next_packet_id = self.next_packet_id.wrapping_add(1);
        Ok(sizes)
    }

    /// Whether [`Link::encode_media`] would send a packet of my `source`
    /// on `layer` now: lets the edge skip serializing packets nobody wants.
    pub fn wants_media(&self, source: SourceId, ty: MediaType, layer: u8) -> bool {
        self.media_header(source, ty, layer, 0).is_ok()
    }
}

/// Writes one datagram: `header`, then `packet`.
pub fn encode_whole(header: MediaHeader, packet: &[u8], out: &mut BytesMut) {
    out.reserve(header.encoded_len() + packet.len());
    header.encode(out);
    out.extend_from_slice(packet);
}

/// [`encode_fragments`] with its refusal as a [`NotSent`].
pub fn encode_as_fragments(
    header: MediaHeader,
    packet_id: u16,
    packet: &[u8],
    max_datagram: usize,
    out: &mut BytesMut,
) -> Result<FragmentSizes, NotSent> {
    encode_fragments(header, packet_id, packet, max_datagram, out).ok_or(
        NotSent::TooManyFragments {
            len: packet.len(),
            max_datagram,
        },
    )
}
