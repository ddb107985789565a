//! Mine → peers: local conferences, endpoints and sources announced on
//! every link; local packets offered to the links that want them;
//! subscriptions to remote sources kept to what local subscribers need.

use std::collections::HashMap;

use str0m::format::Codec;
use tracing::{debug, warn};

use geomesh_core::{ConferenceId, ParticipantId};
use geomesh_mesh::link::Link;
use geomesh_mesh::transport::SendError;
use geomesh_mesh::wire::{self, MediaType, Subscription};

use super::*;
use crate::forward::{InPacket, LayerStats};
use crate::metrics::Metrics;
use crate::router::{Kind, PeerKey, SourceId};
use crate::rtp::{self, OctoRtp};
use crate::sfu::Sfu;

impl Sfu {
    /// A local participant joined `conference`: open it on every link (first
    /// local participant) and announce the endpoint.
    pub(in crate::sfu) fn octo_local_joined(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        name: Option<String>,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        octo.ensure_links();
        let first = octo.open.insert(conference.clone());
        if first {
            octo.share.opened(conference);
        }
        let (conference, participant) = (conference.clone(), participant.clone());
        octo.each_link(move |link| {
            if first && let Err(e) = link.open_conference(&conference) {
                warn!(peer = %link.peer(), "octo open_conference: {e}");
            }
            if let Err(e) = link.endpoint_joined(&conference, participant.clone(), name.clone()) {
                warn!(peer = %link.peer(), "octo endpoint_joined: {e}");
            }
        });
    }

    /// A local participant muted or unmuted: every link tells its peer.
    pub(in crate::sfu) fn octo_local_muted(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        (audio, video): (bool, bool),
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let (conference, participant) = (conference.clone(), participant.clone());
        octo.each_link(move |link| {
            if let Err(e) = link.endpoint_muted(&conference, &participant, audio, video) {
                warn!(peer = %link.peer(), "octo endpoint_muted: {e}");
            }
        });
    }

    /// A local participant left; its sources are gone; the conference
    /// closes on the links when no local roster participant remains.
    pub(in crate::sfu) fn octo_local_left(
        &mut self,
        conference: &ConferenceId,
        participant: &ParticipantId,
        sources: &[SourceId],
        last_local: bool,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        for s in sources {
            octo.first_seen.remove(s);
            octo.incomplete.remove(s);
            if octo.announced.remove(s) {
                let id = wire::SourceId(s.0);
                for link in octo.links.values() {
                    link.command(move |l| l.remove_source(id));
                }
            }
            if octo.sibling_announced.remove(s).is_some() {
                for link in octo.siblings.values_mut() {
                    link.with_link(|l| l.remove_source(wire::SourceId(s.0)));
                }
            }
        }
        let (c, p) = (conference.clone(), participant.clone());
        octo.each_link(move |link| link.endpoint_left(&c, &p));
        if last_local && octo.open.remove(conference) {
            for s in octo.siblings.values_mut() {
                s.with_link(|l| l.close_conference(conference));
            }
            // Other workers may still host it on this edge.
            if octo.share.closed(conference) {
                for link in octo.links.values() {
                    let conference = conference.clone();
                    link.command(move |l| l.close_conference(&conference));
                }
            }
        }
    }

    /// A local publisher negotiated a source: announce it to the sibling
    /// workers at once (they take every layer, so they need no heights),
    /// so their subscribers get the track before the first packet, as the
    /// publisher's own worker's do. The codec is the publisher's first
    /// negotiated one; the first packet corrects it if it differs.
    pub(in crate::sfu) fn sibling_announce(
        &mut self,
        owner: PeerKey,
        mid: str0m::media::Mid,
        source: SourceId,
    ) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if octo.siblings.is_empty() {
            return;
        }
        let Some(rtc) = self.peers.get(&owner).and_then(|p| p.rtc.as_ref()) else {
            return;
        };
        let Some(pt) = rtc.media(mid).and_then(|m| m.remote_pts().first().copied()) else {
            return;
        };
        let Some(params) = rtc.codec_config().params().iter().find(|p| p.pt() == pt) else {
            return;
        };
        let meta = CodecMeta {
            codec: params.spec().codec,
            clock_rate: params.spec().clock_rate.get(),
            pt: *pt,
        };
        announce_to_siblings(octo, &self.router, &self.peers, source, meta, None);
    }

    /// Offers a local source's packet to every link.
    pub(in crate::sfu) fn octo_send(&mut self, source: SourceId, p: &InPacket) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        let id = wire::SourceId(source.0);
        if !octo.siblings.is_empty() {
            let meta = CodecMeta::of(p);
            if octo.sibling_announced.get(&source) != Some(&meta.codec) {
                announce_to_siblings(
                    octo,
                    &self.router,
                    &self.peers,
                    source,
                    meta,
                    Some((p.layer, p.ssrc)),
                );
            }
            let mut crossed = 0;
            for s in octo.siblings.values_mut() {
                crossed += u64::from(s.send(id, p));
            }
            if crossed > 0 {
                self.metrics.sibling_packets.inc_by(crossed);
            }
        }
        if octo.links.is_empty() {
            return;
        }
        // Heights are learnt from keyframes: check again on one.
        if p.keyframe
            && octo.incomplete.contains(&source)
            && all_heights_known(&layer_heights(&self.layer_stats, source), p.layers)
        {
            octo.incomplete.remove(&source);
            octo.announced.remove(&source);
        }
        if !octo.announced.contains(&source) {
            let heights = layer_heights(&self.layer_stats, source);
            let mut known = true;
            if p.layers > 1 {
                let first = *octo.first_seen.entry(source).or_insert(p.arrival);
                known = all_heights_known(&heights, p.layers);
                if !known && p.arrival.saturating_duration_since(first) < ANNOUNCE_WAIT {
                    return;
                }
            }
            let Some((conference, info)) = source_info(
                &self.router,
                &self.peers,
                source,
                CodecMeta::of(p),
                Some((p.layer, p.ssrc)),
                &heights,
            ) else {
                return;
            };
            if !octo.open.contains(&conference) {
                return;
            }
            for link in octo.links.values() {
                let (conference, info) = (conference.clone(), info.clone());
                link.command(move |l| {
                    if let Err(e) = l.add_source(&conference, id, info) {
                        warn!(peer = %l.peer(), "octo add_source: {e}");
                    }
                });
            }
            octo.announced.insert(source);
            if !known {
                octo.incomplete.insert(source);
            }
        }
        let mut serialized = false;
        for link in octo.links.values_mut() {
            // A switch of layer waits for the new layer's keyframe.
            if !link.wants_media(id, MediaType::Rtp, p.layer, p.keyframe) {
                continue;
            }
            if !serialized {
                rtp::write(
                    &OctoRtp {
                        pt: p.pt,
                        marker: p.marker,
                        // The low 16 bits are the wire's sequence number.
                        seq: p.seq as u16,
                        ts: p.ts,
                        ssrc: p.ssrc,
                        audio_level: p.audio_level.map(|(l, v)| (l, v.unwrap_or(false))),
                        payload: p.payload.clone(),
                    },
                    &mut octo.buf,
                );
                serialized = true;
            }
            match link.send_media(id, MediaType::Rtp, p.layer, p.keyframe, &octo.buf) {
                Ok(()) | Err(SendError::NotSent(_)) => {}
                Err(e) => debug!(peer = %link.peer(), "octo send: {e}"),
            }
        }
    }

    /// Asks the publishing edge of a remote source for a keyframe.
    /// Returns false when `source` is not remote.
    pub(in crate::sfu) fn octo_request_keyframe(&mut self, source: SourceId) -> bool {
        let now = self.now;
        let Some(octo) = self.octo.as_mut() else {
            return false;
        };
        let Some((edge, id)) = octo.by_local.get(&source) else {
            return false;
        };
        let id = *id;
        let metrics = self.metrics.clone();
        // Counted where the link's rate limit decides.
        let ask = move |l: &mut Link, via: &str| match l.request_keyframe(now, id, None) {
            Ok(true) => Metrics::count(&metrics.keyframe_requests, via),
            Ok(false) => Metrics::count(&metrics.keyframe_requests, "suppressed"),
            Err(e) => debug!(peer = %l.peer(), "octo keyframe request: {e}"),
        };
        if let Some(link) = octo.links.get(edge) {
            link.command(move |l| ask(l, "octo"));
        } else if let Some(s) = octo.siblings.get_mut(edge) {
            s.with_link(|l| ask(l, "sibling"));
        }
        true
    }

    /// Routing changed: subscriptions to remote sources may need updating.
    pub(in crate::sfu) fn octo_mark_dirty(&mut self) {
        if let Some(o) = self.octo.as_mut() {
            o.dirty = true;
        }
    }

    /// Subscribes on the link to remote sources that gained their first
    /// local subscriber; unsubscribes from those that lost their last.
    pub(in crate::sfu) fn octo_reconcile(&mut self) {
        let Some(octo) = self.octo.as_mut() else {
            return;
        };
        if !std::mem::take(&mut octo.dirty) {
            return;
        }
        let mut fresh = Vec::new();
        for ((edge, id), r) in octo.sources.iter_mut() {
            // The tallest tile among local subscribers decides the layer
            // that crosses (0: someone has no limit).
            let (mut any, mut unlimited, mut tallest) = (false, false, 0u16);
            let owner = self.router.source_participant(r.local);
            for k in self.router.forwarded_to(r.local) {
                any = true;
                match self.peers.get(&k).and_then(|p| p.tiles.of(owner)) {
                    Some(h) => tallest = tallest.max(h),
                    None => unlimited = true,
                }
            }
            let want = any.then_some(Subscription {
                max_layer: Subscription::ANY_LAYER,
                max_height: if unlimited { 0 } else { tallest },
            });
            if want == r.subscribed {
                continue;
            }
            // The link asks for `target`: a sibling's link is this worker's
            // own; a peer edge's is shared by the workers and carries the
            // widest wish. Compared with the link's own state, which the
            // peer can change (a source replaced after a restart).
            let id = *id;
            let apply = move |l: &mut Link, target: Option<Subscription>| {
                if l.subscription(id) == target {
                    return Ok(());
                }
                match target {
                    Some(sub) => l.subscribe(id, sub),
                    None => {
                        l.unsubscribe(id);
                        Ok(())
                    }
                }
            };
            if let Some(s) = octo.siblings.get_mut(edge) {
                if let Err(e) = s.with_link(|l| apply(l, want)) {
                    warn!(peer = %edge, "sibling subscribe: {e}");
                    continue;
                }
            } else if let Some(link) = octo.links.get(edge) {
                let merged = octo.share.want(edge, id, octo.worker, want);
                link.command(move |l| {
                    if let Err(e) = apply(l, merged) {
                        warn!(peer = %l.peer(), "octo subscribe: {e}");
                    }
                });
            } else {
                continue;
            }
            if want.is_some() && r.subscribed.is_none() {
                fresh.push(r.local);
            }
            r.subscribed = want;
        }
        for s in fresh {
            self.request_keyframe_for(s);
        }
    }
}

fn layer_heights(stats: &HashMap<SourceId, LayerStats>, source: SourceId) -> Vec<u16> {
    stats
        .get(&source)
        .map_or(Vec::new(), |s| s.heights().collect())
}

/// Whether each of `layers` layers has a known height.
pub(super) fn all_heights_known(heights: &[u16], layers: u8) -> bool {
    heights.len() == usize::from(layers) && heights.iter().all(|h| *h > 0)
}

/// Announces a local source on every sibling link (again: replaces it).
pub(super) fn announce_to_siblings(
    octo: &mut Octo,
    router: &crate::router::Router,
    peers: &HashMap<PeerKey, crate::peer::Peer>,
    source: SourceId,
    meta: CodecMeta,
    seen: Option<(u8, u32)>,
) {
    let Some((conference, info)) = source_info(router, peers, source, meta, seen, &[]) else {
        return;
    };
    if !octo.open.contains(&conference) {
        return;
    }
    for link in octo.siblings.values_mut() {
        link.with_link(|l| {
            if let Err(e) = l.add_source(&conference, wire::SourceId(source.0), info.clone()) {
                warn!(peer = %l.peer(), "sibling add_source: {e}");
            }
        });
    }
    octo.sibling_announced.insert(source, meta.codec);
}

/// A source's codec as announced.
#[derive(Debug, Clone, Copy)]
pub(super) struct CodecMeta {
    codec: Codec,
    clock_rate: u32,
    pt: u8,
}

impl CodecMeta {
    fn of(p: &InPacket) -> Self {
        Self {
            codec: p.codec.codec(),
            clock_rate: p.codec.clock_rate(),
            pt: p.pt,
        }
    }
}

/// A local source's conference and announcement; `seen` is the layer and
/// SSRC of a packet, when one arrived.
pub(super) fn source_info(
    router: &crate::router::Router,
    peers: &HashMap<PeerKey, crate::peer::Peer>,
    source: SourceId,
    meta: CodecMeta,
    seen: Option<(u8, u32)>,
    heights: &[u16],
) -> Option<(ConferenceId, wire::SourceInfo)> {
    let (owner, kind) = router.source(source)?;
    let publisher = peers.get(&owner)?;
    let mid = publisher
        .sources
        .iter()
        .find(|(_, s)| **s == source)
        .map(|(m, _)| *m)?;
    // Other layers' SSRCs are not known yet: 0 (receivers go by layer index).
    let ssrc_of = |i: usize| match seen {
        Some((layer, ssrc)) if usize::from(layer) == i => ssrc,
        _ => 0,
    };
    let rids = publisher.rids.get(&mid).cloned().unwrap_or_default();
    let layers: Vec<wire::Layer> = if rids.is_empty() {
        vec![wire::Layer {
            rid: None,
            ssrc: ssrc_of(0),
            rtx_ssrc: None,
            max_height: 0,
        }]
    } else {
        rids.iter()
            .take(8)
            .enumerate()
            .map(|(i, r)| wire::Layer {
                rid: Some(r.to_string()),
                ssrc: ssrc_of(i),
                rtx_ssrc: None,
                max_height: heights.get(i).copied().unwrap_or(0),
            })
            .collect()
    };
    let info = wire::SourceInfo {
        owner: publisher.participant.clone(),
        kind: match kind {
            Kind::Audio => wire::MediaKind::Audio,
            Kind::Video => wire::MediaKind::Video,
        },
        codec: wire::Codec {
            name: codec_name(meta.codec).to_string(),
            payload_type: meta.pt & 0x7f,
            clock_rate: meta.clock_rate,
        },
        layers,
    };
    info.validate().ok()?;
    Some((publisher.conference.clone(), info))
}
