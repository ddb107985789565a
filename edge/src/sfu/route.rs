//! Media through the core: a publisher's packet to its subscribers' legs, simulcast layer choice, keyframe requests.

use str0m::media::{KeyframeRequest, KeyframeRequestKind};
use str0m::rtp::RtpPacket;

use super::Sfu;
use crate::forward::{CodecRef, InPacket};
use crate::layers::{LayerInfo, pick_layer};
use crate::metrics::{Direction, Metrics};
use crate::peer::OutState;
use crate::router::{Kind, PeerKey, SourceId};

impl Sfu {
    /// A local publisher's RTP packet: into an [`InPacket`], then out.
    pub(super) fn on_rtp(&mut self, from: PeerKey, pkt: RtpPacket) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(rtc) = publisher.rtc.as_mut() else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let Some((mid, rid)) = rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let Some(&source) = publisher.sources.get(&mid) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let Some(params) = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.pt() == pt)
            .copied()
        else {
            Metrics::count(&self.metrics.dropped, "unknown_payload_type");
            return;
        };
        let layer = rid
            .and_then(|r| publisher.rids.get(&mid)?.iter().position(|x| *x == r))
            .unwrap_or(0);
        let codec = CodecRef::Local(params);
        let video = params.spec().codec.is_video();
        let ext = &pkt.header.ext_vals;
        let layers = publisher.rids.get(&mid).map_or(1, |r| r.len().clamp(1, 8));
        let input = InPacket {
            // At most 8 layers (clamped above).
            layers: layers as u8,
            layer: layer.min(7) as u8,
            ssrc: *ssrc,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            marker: pkt.header.marker,
            pt: *pt,
            keyframe: video && InPacket::detect_keyframe(codec.codec(), &pkt.payload),
            codec,
            payload: pkt.payload,
            audio_level: ext.audio_level.map(|l| (l, ext.voice_activity)),
            arrival: pkt.timestamp,
            video,
        };
        self.count_media(Direction::In, &input);
        self.forward(source, &input);
        self.octo_send(source, &input);
    }

    /// Chooses the simulcast layer of each of a subscriber's video legs
    /// from the measured layers and its tile height; a leg whose target
    /// changes asks the publisher for a keyframe (switches wait for one).
    pub(super) fn retarget_layers(&mut self, key: PeerKey) {
        let now = self.now;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // The estimate is shared equally by the simulcast legs that flow.
        let legs = peer
            .out
            .iter()
            .filter(|(s, t)| t.forward.active && self.layer_stats.contains_key(s))
            .count()
            .max(1) as u64;
        let budget = peer.bwe_bps.map(|b| b / legs);
        let mut infos: Vec<LayerInfo> = Vec::new();
        let mut wanted = Vec::new();
        let mut desired: u64 = 0;
        for (source, track) in peer.out.iter_mut() {
            if track.forward.active && track.forward.awaiting_keyframe {
                // The keyframe (or its request) may be lost: ask again.
                wanted.push(*source);
            }
            let Some(stats) = self.layer_stats.get(source) else {
                continue;
            };
            stats.infos(now, &mut infos);
            let height = peer.tiles.of(self.router.source_participant(*source));
            let target = if track.forward.active {
                pick_layer(&infos, height, budget)
            } else {
                None
            };
            if track.forward.active {
                // Probe toward the best layer the tile could use.
                let best = pick_layer(&infos, height, None);
                desired += best.map_or(0, |i| infos[i].bitrate_bps);
            }
            // A new target, or one still waiting for its keyframe (a request
            // or the keyframe itself can be lost; publishers like Chrome send
            // none unasked): ask again, rate-limited per source.
            if track.forward.switch.set_target(target).is_some()
                || track.forward.switch.pending().is_some()
            {
                wanted.push(*source);
            }
        }
        if desired > 0
            && let Some(rtc) = peer.rtc.as_mut()
        {
            use str0m::bwe::Bitrate;
            rtc.bwe()
                .set_bitrate(Bitrate::kbps(0), Bitrate::bps(desired + desired / 4));
        }
        for source in wanted {
            self.request_keyframe_for(source);
        }
        self.drain(key);
    }

    /// Writes an incoming packet to every subscriber's leg (the caller
    /// counted it in: a packet from a sibling worker was counted there).
    pub(super) fn forward(&mut self, source: SourceId, input: &InPacket) {
        if input.layers > 1 {
            self.layer_stats.entry(source).or_default().on_packet(input);
        }
        if let Some((level, _)) = input.audio_level
            && let Some((owner, _)) = self.router.source(source)
        {
            self.router
                .handle_audio_level(input.arrival, owner, level.unsigned_abs());
        }
        // A reused buffer: no allocation per packet once it has grown.
        let mut subscribers = std::mem::take(&mut self.scratch);
        subscribers.clear();
        subscribers.extend_from_slice(self.router.subscribers(source));
        for &to in &subscribers {
            let Some(sub) = self.peers.get_mut(&to) else {
                continue;
            };
            let Some(rtc) = sub.rtc.as_mut() else {
                continue;
            };
            let Some(track) = sub.out.get_mut(&source) else {
                continue;
            };
            let OutState::Open(mid) = track.state else {
                continue;
            };
            match track.forward.write(rtc, mid, input) {
                Ok(()) => {
                    if !sub.needs_drain {
                        sub.needs_drain = true;
                        self.undrained.push(to);
                    }
                    self.count_media(Direction::Out, input);
                }
                Err(skip) => {
                    if let Some(reason) = skip.counted_reason() {
                        Metrics::count(&self.metrics.dropped, reason);
                    }
                }
            }
        }
        self.scratch = subscribers;
    }

    /// Media counters: packets and payload bytes; a frame per audio packet
    /// and per video packet with the marker bit.
    pub(super) fn count_media(&self, direction: Direction, input: &InPacket) {
        let kind = if input.video {
            Kind::Video
        } else {
            Kind::Audio
        };
        self.counters.count(
            direction,
            kind,
            input.payload.len(),
            input.marker || !input.video,
        );
    }

    pub(super) fn on_keyframe_request(&mut self, key: PeerKey, req: KeyframeRequest) {
        let Some(&source) = self
            .peers
            .get(&key)
            .and_then(|p| p.out_by_mid.get(&req.mid))
        else {
            return;
        };
        self.request_keyframe_for(source);
    }

    /// Asks the publisher of `source` for a keyframe, rate-limited.
    pub(super) fn request_keyframe_for(&mut self, source: SourceId) {
        let Some((owner, kind)) = self.router.source(source) else {
            return;
        };
        if kind != Kind::Video {
            return;
        }
        if self.octo_request_keyframe(source) {
            // A remote source: the link rate-limits and carries the request.
            return;
        }
        if !self.router.keyframe_request(self.now, source) {
            Metrics::count(&self.metrics.keyframe_requests, "suppressed");
            return;
        }
        let Some(peer) = self.peers.get_mut(&owner) else {
            return;
        };
        let Some(mid) = peer
            .sources
            .iter()
            .find(|(_, s)| **s == source)
            .map(|(m, _)| *m)
        else {
            return;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            return;
        };
        // Every layer: each simulcast encoding has its own keyframes.
        let rids: Vec<Option<str0m::media::Rid>> = match peer.rids.get(&mid) {
            Some(r) if !r.is_empty() => r.iter().copied().map(Some).collect(),
            _ => vec![None],
        };
        let mut api = rtc.direct_api();
        let mut asked = false;
        for rid in rids {
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                asked = true;
            }
        }
        if asked {
            Metrics::count(&self.metrics.keyframe_requests, "relayed");
        }
        self.drain(owner);
    }
}
